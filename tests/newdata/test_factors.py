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
