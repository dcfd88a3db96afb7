"""impute_new() after a run with several grouping factors (mlimpute.newdata.factors)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from mlimpute.errors import DataError


@pytest.fixture(scope="module")
def unique_classes():
    """Three levels, class ids unique across schools (the class column alone nests)."""
    r = np.random.default_rng(2)
    S, C, P = 12, 3, 8
    school = np.repeat(np.arange(S), C * P)
    cls = np.repeat(np.arange(S * C), P)
    x = r.normal(size=school.size)
    y = x + r.normal(0, 0.7, S)[school] + r.normal(0, 0.5, S * C)[cls] + r.normal(size=x.size)
    df = pd.DataFrame({"school": school, "cls": cls, "x": x, "y": y})
    df.loc[r.random(len(df)) < 0.3, "y"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imp = df.mi.impute(cluster=["school", "cls"], m=2, iterations=3, rng=1)
    return df, imp


@pytest.mark.parametrize(
    ("school", "cls", "where"),
    [
        ([5], [0], "'school' 0 and 5"),  # a seen class in another seen school
        ([50], [0], "'school' 0 and 50"),  # a seen class in a new school
        ([0, 1], [999, 999], "'school' 0 and 1"),  # one new class in two schools
    ],
)
def test_new_rows_changing_the_nesting_are_a_data_error(unique_classes, school, cls, where):
    _, imp = unique_classes
    new = pd.DataFrame({"school": school, "cls": cls, "x": 0.1, "y": np.nan})
    with pytest.raises(DataError, match=f"'cls' {cls[0]} would lie in {where}"):
        imp.impute_new(new, rng=1)


def test_new_rows_keeping_the_nesting_are_completed(unique_classes):
    _, imp = unique_classes
    new = pd.DataFrame({"school": [0, 0, 50, 50], "cls": [0, 998, 999, 999], "x": 0.1, "y": np.nan})
    out = imp.impute_new(new, rng=1)
    assert all(frame["y"].notna().all() for frame in out)


def test_new_school_effects_are_redrawn_every_sweep_as_in_training():
    """A new school with y (level 1) and s (school level) all missing. With the parameters
    fixed, a training iteration draws the school's and its classes' effects afresh, then y
    and s | cmean(y, school): s is an AR(1) process with gain γβ and innovation variance
    γ²(ψ_s + ψ_c/C + σ²/(CP)) + σ_s², whose stationary law is N(μ, V). Effects held at
    one draw make the SD about 1.5× too large here."""
    r = np.random.default_rng(3)
    S, C, P = 30, 3, 6
    school = np.repeat(np.arange(S), C * P)
    cls = np.tile(np.repeat(np.arange(C), P), S)
    s = r.normal(0, 1.5, S)
    u = r.normal(0, 0.7, S)[school] + r.normal(0, 0.5, S * C)[school * C + cls]
    y = s[school] + u + r.normal(size=school.size)
    df = pd.DataFrame({"school": school, "class": cls, "y": y, "s": s[school]})
    df.loc[r.random(len(df)) < 0.3, "y"] = np.nan
    df.loc[np.isin(school, [0, 1]), "s"] = np.nan
    f = {"y": "~ s + (1 | school) + (1 | school:class)", "s": "~ cmean(y, school)"}
    imp = df.mi.impute(f, cluster=["school", "class"], m=4, iterations=20, rng=1)
    K = 60  # new schools, independent given the fixed parameters
    new = pd.DataFrame(
        {
            "school": np.repeat(np.arange(1000, 1000 + K), C * P),
            "class": np.tile(np.repeat(np.arange(C), P), K),
            "y": np.nan,
            "s": np.nan,
        }
    )
    out = imp.impute_new(new, rng=3, sweeps=25)
    z = []
    for k, frame in enumerate(out):
        sy, ss = imp.chains[k].states["y"], imp.chains[k].states["s"]
        terms = [sy.primary, *sy.extra]
        psi = {t.b.shape[0]: float(t.psi[0, 0]) for t in terms}
        psi_c, psi_s = psi[S * C], psi[S]
        c, beta = sy.primary.beta
        a, gamma = ss.beta
        s2, s2_s = float(sy.primary.sigma2), float(ss.sigma2)
        gain = gamma * beta
        assert 0.3 < gain < 0.95
        mu = (a + gamma * c) / (1 - gain)
        var = (gamma**2 * (psi_s + psi_c / C + s2 / (C * P)) + s2_s) / (1 - gain**2)
        z.append((frame.groupby("school")["s"].first().to_numpy() - mu) / np.sqrt(var))
    z = np.concatenate(z)
    # N = 240 independent standardised draws: SE of the SD 1/sqrt(2N) = 0.046, of the mean
    # 1/sqrt(N) = 0.065; 4 SE bounds
    assert abs(z.mean()) < 4 / np.sqrt(z.size)
    assert abs(z.std(ddof=1) - 1) < 4 / np.sqrt(2 * z.size)


@pytest.fixture(scope="module")
def shifted():
    """Three levels with y (normal) and b (binary) incomplete, x complete; runs without a
    shift, with δ = 0 and with δ = 1.5 for y, −1 / +1 for b. Nothing reads y or b but
    their own models, which fit on the observed rows: the chains' states do not depend on
    the shift, so the new rows' draws use the same random numbers in every run."""
    r = np.random.default_rng(4)
    S, C, P = 12, 3, 8
    school = np.repeat(np.arange(S), C * P)
    cls = np.repeat(np.arange(S * C), P)
    x = r.normal(size=school.size)
    u = r.normal(0, 0.7, S)[school] + r.normal(0, 0.5, S * C)[cls]
    y = x + u + r.normal(size=x.size)
    b = (0.5 * x + u + r.normal(size=x.size) > 0).astype(float)
    df = pd.DataFrame({"school": school, "cls": cls, "x": x, "y": y, "b": b})
    df.loc[r.random(len(df)) < 0.3, "y"] = np.nan
    df.loc[r.random(len(df)) < 0.3, "b"] = np.nan
    f = {
        "y": "~ x + (1 | school) + (1 | cls)",
        "b": "~ x + (1 | school) + (1 | cls)",
    }
    kw = dict(cluster=["school", "cls"], method={"b": "2l.bin"}, m=2, iterations=3, rng=1)
    runs = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for key, delta in [
            ("none", None),
            ("zero", {"y": 0.0, "b": 0.0}),
            ("y only", {"y": 1.5, "b": 0.0}),
            ("up", {"y": 1.5, "b": 1.0}),
            ("down", {"y": 1.5, "b": -1.0}),
        ]:
            runs[key] = df.mi.impute(f, **kw, **({} if delta is None else {"delta": delta}))
    K = 40  # new rows: seen classes, a new class in a seen school, a new school
    new = pd.DataFrame(
        {
            "school": np.r_[np.zeros(K, int), np.ones(K, int), np.full(K, 50)],
            "cls": np.r_[np.zeros(K, int), np.full(K, 998), np.full(K, 999)],
            "x": np.tile(np.linspace(-1, 1, K), 3),
            "y": np.nan,
            "b": np.nan,
        }
    )
    return runs, new


def test_zero_shift_new_rows_are_bit_identical_to_no_shift(shifted):
    """δ = 0 everywhere (the specification then holds no shift), and δ = 0 for b next to
    a shift of y: b's new imputations are those of the run without shifts, bit for bit."""
    runs, new = shifted
    a = runs["none"].impute_new(new, rng=5)
    b = runs["zero"].impute_new(new, rng=5)
    c = runs["y only"].impute_new(new, rng=5)
    for fa, fb, fc in zip(a, b, c, strict=True):
        pd.testing.assert_frame_equal(fa, fb, check_exact=True)
        pd.testing.assert_series_equal(fa["b"], fc["b"], check_exact=True)
        pd.testing.assert_frame_equal(fa.drop(columns="y"), fc.drop(columns="y"))


def test_shift_of_a_normal_variable_moves_its_new_imputations_by_delta(shifted):
    """The shift is added after the draw, which uses the same random numbers: exactly
    the unshifted imputations + δ (the two-level path adds it the same way)."""
    runs, new = shifted
    a = runs["none"].impute_new(new, rng=5)
    b = runs["up"].impute_new(new, rng=5)
    for fa, fb in zip(a, b, strict=True):
        np.testing.assert_array_equal(fb["y"].to_numpy(), fa["y"].to_numpy() + 1.5)
        assert fa["y"].notna().all()


def test_shift_of_a_binary_variable_moves_the_imputed_share(shifted):
    """δ on the latent scale of the probit: δ > 0 raises the share of imputed 1s, δ < 0
    lowers it (docs/user_guide/sensitivity.md)."""
    runs, new = shifted
    share = {
        key: np.mean([f["b"].to_numpy(float).mean() for f in runs[key].impute_new(new, rng=5)])
        for key in ("down", "none", "up")
    }
    # 240 draws per run: SE of a share at most 0.032; a latent shift of 1 SD moves it
    # by about 0.3
    assert share["down"] + 0.15 < share["none"] < share["up"] - 0.15


def test_shifted_new_rows_are_bit_identical_with_two_jobs(shifted):
    runs, new = shifted
    a = runs["up"].impute_new(new, rng=5)
    b = runs["up"].impute_new(new, rng=5, n_jobs=2)
    for fa, fb in zip(a, b, strict=True):
        pd.testing.assert_frame_equal(fa, fb, check_exact=True)
