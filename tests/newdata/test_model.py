"""impute_new() after model-based imputation (mlimpute.newdata.model).

The statistical checks compare many conditionally independent draws of one new cell (many
identical new rows, parameters fixed at chain 1's final state) with the full conditional of
that cell computed by quadrature from the state, by a Kolmogorov–Smirnov test. The KS
p-value is uniform under the null: with the fixed rng the test is deterministic, and a
threshold of 1e-3 leaves a 0.1 % false-alarm chance per check when the code is right. Each
check also shows the test's power: the conditional with a likelihood term dropped (or with
the random-effect variance left out) is rejected at p < 1e-6 by the same draws.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import mlimpute
from mlimpute.errors import DataError, UnsupportedError
from mlimpute.sampler.compatible import ANALYSIS
from mlimpute.sampler.engine import build_plan

N_DRAWS = 1500

# the training runs are short on purpose (the checks condition on chain 1's final state,
# whatever it is): their convergence warnings are expected
pytestmark = pytest.mark.filterwarnings("ignore::mlimpute.errors.ConvergenceWarning")


def _data(seed: int = 0) -> pd.DataFrame:
    r = np.random.default_rng(seed)
    J, n = 30, 10
    g = np.repeat(np.arange(J), n)
    z = r.normal(size=J)[g]
    x = 0.3 * z + 0.5 * r.normal(size=J)[g] + r.normal(size=J * n)
    u0, u1 = r.normal(size=J), 0.5 * r.normal(size=J)
    y = 1 + (0.5 + u1[g]) * x + 0.3 * z + u0[g] + r.normal(size=J * n)
    df = pd.DataFrame({"g": g, "z": z, "x": x, "y": y})
    df.loc[r.random(J * n) < 0.2, "x"] = np.nan
    df.loc[r.random(J * n) < 0.1, "y"] = np.nan
    return df


@pytest.fixture(scope="module")
def df():
    return _data()


@pytest.fixture(scope="module")
def imp(df):
    return mlimpute.impute(df, model="y ~ x + z + (1 + x | g)", m=2, iterations=15, rng=3)


def _state(imp, name):
    """Chain 1's final state of ``name``'s model with its design names."""
    plan = build_plan(imp.data, imp.spec)
    st = imp.chains[0].states[ANALYSIS if name == imp.spec.model.response else name]
    d = plan.analysis if name == imp.spec.model.response else plan.data[name]
    return st, list(d.X.names), plan.layout.labels


def _grid_cdf(logpdf, lo=-12.0, hi=12.0, k=40001):
    """The CDF of an unnormalised log density by quadrature (trapezoid on a fine grid)."""
    grid = np.linspace(lo, hi, k)
    lp = logpdf(grid)
    dens = np.exp(lp - lp.max())
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(grid))])
    cum /= cum[-1]
    return lambda v: np.interp(v, grid, cum)


def _repeat(row: dict, k: int, index_start: int = 100) -> pd.DataFrame:
    out = pd.DataFrame({c: [v] * k for c, v in row.items()})
    out.index = np.arange(index_start, index_start + k)
    return out


def test_missing_predictor_of_a_seen_cluster_follows_its_full_conditional(df, imp):
    label, zj, yv = 3, float(df.loc[df.g == 3, "z"].iloc[0]), 3.0
    new = _repeat({"g": label, "z": zj, "x": np.nan, "y": yv}, N_DRAWS)[df.columns]
    out = imp.impute_new(new, rng=11)
    draws = out.complete(1)["x"].to_numpy()
    sa, xa, labels = _state(imp, "y")
    sx, xx, _ = _state(imp, "x")
    j = int(np.flatnonzero(labels == label)[0])
    bx = dict(zip(xx, sx.beta, strict=True))
    ba = dict(zip(xa, sa.beta, strict=True))
    mu_x = bx["Intercept"] + bx["z"] * zj + sx.b[j, 0]
    a = ba["Intercept"] + ba["z"] * zj + sa.b[j, 0]
    c = ba["x"] + sa.b[j, 1]

    def full(v):  # own model x analysis model at the observed y
        return -0.5 * (v - mu_x) ** 2 / sx.sigma2 - 0.5 * (yv - a - c * v) ** 2 / sa.sigma2

    assert stats.kstest(draws, _grid_cdf(full)).pvalue > 1e-3
    # power: the own model alone (the analysis model's likelihood dropped) is rejected
    own = _grid_cdf(lambda v: -0.5 * (v - mu_x) ** 2 / sx.sigma2)
    assert stats.kstest(draws, own).pvalue < 1e-6


def test_non_linear_predictor_by_metropolis_hastings_follows_its_full_conditional(df):
    imp = mlimpute.impute(df, model="y ~ x + I(x**2) + z + (1 | g)", m=1, iterations=15, rng=5)
    label, zj, yv = 4, float(df.loc[df.g == 4, "z"].iloc[0]), 2.5
    new = _repeat({"g": label, "z": zj, "x": np.nan, "y": yv}, N_DRAWS)[df.columns]
    out = imp.impute_new(new, rng=12, sweeps=40)
    draws = out.complete(1)["x"].to_numpy()
    sa, xa, labels = _state(imp, "y")
    sx, xx, _ = _state(imp, "x")
    j = int(np.flatnonzero(labels == label)[0])
    bx = dict(zip(xx, sx.beta, strict=True))
    ba = dict(zip(xa, sa.beta, strict=True))
    mu_x = bx["Intercept"] + bx["z"] * zj + sx.b[j, 0]
    sq = next(k for k in ba if "**" in k)

    def full(v):
        eta = ba["Intercept"] + ba["x"] * v + ba[sq] * v**2 + ba["z"] * zj + sa.b[j, 0]
        return -0.5 * (v - mu_x) ** 2 / sx.sigma2 - 0.5 * (yv - eta) ** 2 / sa.sigma2

    assert stats.kstest(draws, _grid_cdf(full)).pvalue > 1e-3
    own = _grid_cdf(lambda v: -0.5 * (v - mu_x) ** 2 / sx.sigma2)
    assert stats.kstest(draws, own).pvalue < 1e-6


def test_new_clusters_draw_their_effects_from_psi(df, imp):
    # one row per new cluster: y | x = 1 ~ N(β0 + βx + βz z, ψ00 + 2ψ01 + ψ11 + σ²)
    k = N_DRAWS
    new = pd.DataFrame({"g": 1000 + np.arange(k), "z": 0.0, "x": 1.0, "y": np.nan})[df.columns]
    out = imp.impute_new(new, rng=13)
    draws = out.complete(1)["y"].to_numpy()
    sa, xa, _ = _state(imp, "y")
    ba = dict(zip(xa, sa.beta, strict=True))
    z1 = np.array([1.0, 1.0])
    var = float(z1 @ sa.psi @ z1) + sa.sigma2
    m = ba["Intercept"] + ba["x"]
    assert stats.kstest(draws, "norm", args=(m, np.sqrt(var))).pvalue > 1e-3
    assert stats.kstest(draws, "norm", args=(m, np.sqrt(sa.sigma2))).pvalue < 1e-6
    # x and y both missing in a new cluster: x from its own model, N(α0, ψx + σx²)
    new2 = new.assign(x=np.nan)
    out2 = imp.impute_new(new2, rng=14)
    sx, xx, _ = _state(imp, "x")
    bx = dict(zip(xx, sx.beta, strict=True))
    xd = out2.complete(1)["x"].to_numpy()
    sdx = np.sqrt(sx.psi[0, 0] + sx.sigma2)
    assert stats.kstest(xd, "norm", args=(bx["Intercept"], sdx)).pvalue > 1e-3


def test_observed_cells_untouched_dtypes_index_and_new_df_unchanged(df, imp):
    new = df.iloc[:8].copy()
    new.index = [f"r{i}" for i in range(8)]
    new.loc["r0", "x"] = np.nan
    new.loc["r1", "y"] = np.nan
    new.loc["r2", ["x", "y"]] = np.nan
    new.loc["r3", "g"] = 77  # a new cluster
    new.loc["r3", "x"] = np.nan
    before = new.copy()
    out = imp.impute_new(new, rng=1)
    pd.testing.assert_frame_equal(new, before)
    assert out.m == imp.m
    seen = new.notna()
    for k in range(1, out.m + 1):
        c = out.complete(k)
        assert list(c.index) == list(new.index)
        assert (c.dtypes == new.dtypes).all()
        assert not c.isna().any().any()
        pd.testing.assert_frame_equal(c[seen].fillna(0), new[seen].fillna(0))


def test_bit_identical_for_a_seed_and_whatever_the_executor(df, imp):
    new = df.iloc[:20].copy()
    new.loc[new.index[::2], "x"] = np.nan
    new.loc[new.index[::3], "y"] = np.nan
    new.loc[new.index[:5], "g"] = 500
    a = imp.impute_new(new, rng=7)
    b = imp.impute_new(new, rng=7, n_jobs=2)
    c = imp.impute_new(new, rng=8)
    for k in (1, 2):
        pd.testing.assert_frame_equal(a.complete(k), b.complete(k))
    assert not a.complete(1).equals(c.complete(1))


def test_level2_predictor_of_a_new_cluster_is_drawn_once_per_cluster(df):
    d = df.copy()
    r = np.random.default_rng(1)
    d.loc[np.isin(d.g, r.choice(30, 6, replace=False)), "z"] = np.nan
    imp = mlimpute.impute(d, model="y ~ x + z + (1 | g)", m=2, iterations=10, rng=2)
    new = pd.DataFrame(
        {"g": [2, 2, 900, 900, 900, 901], "z": np.nan, "x": [0.1, np.nan, 1, 2, np.nan, 0]}
    )
    new["y"] = [1.0, 0.0, np.nan, 2.0, 1.0, 0.5]
    new.loc[5, "z"] = 0.7  # a new cluster with its value given
    out = imp.impute_new(new[d.columns], rng=3)
    for k in (1, 2):
        c = out.complete(k)
        assert c.loc[2:4, "z"].nunique() == 1  # one draw for cluster 900
        assert c.loc[5, "z"] == 0.7
        # a seen cluster's value is where the chain left it
        assert c.loc[0, "z"] == c.loc[1, "z"] == imp.complete(k).loc[d.g == 2, "z"].iloc[0]


def test_categorical_predictor_and_binary_outcome():
    r = np.random.default_rng(4)
    J, n = 25, 8
    g = np.repeat(np.arange(J), n)
    x = r.normal(size=J * n)
    s = np.where(r.random(J * n) < 0.5, "a", "b")
    lat = 0.5 * x + (s == "b") + r.normal(size=J)[g] + r.normal(size=J * n)
    df = pd.DataFrame({"g": g, "x": x, "s": s, "y": (lat > 0.5).astype(float)})
    df.loc[r.random(J * n) < 0.2, "s"] = np.nan
    df.loc[r.random(J * n) < 0.2, "x"] = np.nan
    df.loc[r.random(J * n) < 0.1, "y"] = np.nan
    imp = mlimpute.impute(df, model="y ~ x + s + (1 | g)", m=2, iterations=8, rng=1)
    new = df.iloc[:10].copy()
    new.loc[new.index[:4], "s"] = np.nan
    new.loc[new.index[2:6], "y"] = np.nan
    new.loc[new.index[5:], "g"] = 99
    out = imp.impute_new(new, rng=2)
    for k in (1, 2):
        c = out.complete(k)
        assert not c.isna().any().any()
        assert set(c["s"]) <= {"a", "b"}
        assert set(c["y"]) <= {0.0, 1.0}


def test_refusals_name_what_is_not_supported(df, imp):
    shifted = mlimpute.impute(
        df, model="y ~ x + z + (1 | g)", m=1, iterations=3, rng=1, delta={"x": 0.5}
    )
    with pytest.raises(UnsupportedError, match="delta"):
        shifted.impute_new(df.iloc[:3])
    bad = df.iloc[:3].copy()
    bad.loc[bad.index[0], "z"] = np.nan  # complete in training: no model imputes it
    with pytest.raises(DataError, match="'z'"):
        imp.impute_new(bad)
    with pytest.raises(DataError, match="w"):
        imp.impute_new(df.iloc[:3].assign(w=1.0))


# -- several grouping factors (chained imputation): mlimpute.newdata.factors -------------------
def _schools(seed=2, S=20, C=3, P=8):
    r = np.random.default_rng(seed)
    school = np.repeat(np.arange(S), C * P)
    cls = np.tile(np.repeat(np.arange(C), P), S)
    n = len(school)
    x = r.normal(size=n)
    u = r.normal(0, 0.7, S)[school] + r.normal(0, 0.5, S * C)[school * C + cls]
    y = x + u + r.normal(size=n)
    df = pd.DataFrame({"school": school, "class": cls, "x": x, "y": y})
    df.loc[r.random(n) < 0.3, "y"] = np.nan
    df.loc[r.random(n) < 0.2, "x"] = np.nan
    return df


@pytest.fixture(scope="module")
def schools():
    df = _schools()
    f = {
        "y": "~ x + (1 | school) + (1 | school:class)",
        "x": "~ y + (1 | school) + (1 | school:class)",
    }
    return df, df.mi.impute(f, cluster=["school", "class"], m=2, iterations=15, rng=1)


def test_several_factors_new_classes_and_new_schools_draw_each_terms_effects(schools):
    # x = 0 observed, y missing, one row per new cluster: a new class in a seen school has
    # y ~ N(β0 + b_school0, ψ_class + σ²); a new class in a new school adds ψ_school
    df, imp = schools
    plan = build_plan(imp.data, imp.spec)
    st = imp.chains[0].states["y"]
    names = list(plan.data["y"].X.names)
    assert plan.data["y"].extra_terms[0].group == "school"
    beta0 = dict(zip(names, st.primary.beta, strict=True))["Intercept"]
    # the seen school with the largest effect in the state: the power check below
    # (that effect left out) then does not depend on one school's effect being large
    s0 = int(np.argmax(np.abs(st.extra[0].b[:, 0])))
    label = plan.layout.factor("school").labels[s0]
    psi_c, psi_s = st.primary.psi[0, 0], st.extra[0].psi[0, 0]
    k = N_DRAWS
    a = pd.DataFrame({"school": label, "class": 1000 + np.arange(k), "x": 0.0, "y": np.nan})
    b = a.assign(school=1000 + np.arange(k), **{"class": 0})
    ya = imp.impute_new(a, rng=1).complete(1)["y"].to_numpy()
    yb = imp.impute_new(b, rng=2).complete(1)["y"].to_numpy()
    sd_a = np.sqrt(psi_c + st.sigma2)
    sd_b = np.sqrt(psi_s + psi_c + st.sigma2)
    m_a = beta0 + st.extra[0].b[s0, 0]
    assert stats.kstest(ya, "norm", args=(m_a, sd_a)).pvalue > 1e-3
    assert stats.kstest(yb, "norm", args=(beta0, sd_b)).pvalue > 1e-3
    # power: the seen school's effect, or the new school's variance, left out is rejected
    assert stats.kstest(ya, "norm", args=(beta0, sd_a)).pvalue < 1e-6
    # a sample variance has relative SE sqrt(2/(k-1)) (3.7 % here): ψ_school is 25 % of
    # the variance in chain 1's state, so leaving it out would be 4+ SE away
    assert psi_s / sd_a**2 > 6 * np.sqrt(2 / (k - 1))  # the check below has power
    assert yb.var(ddof=1) / sd_a**2 > 1 + 3 * np.sqrt(2 / (k - 1))


def test_several_factors_seen_class_uses_the_chains_effects(schools):
    df, imp = schools
    plan = build_plan(imp.data, imp.spec)
    st = imp.chains[0].states["y"]
    beta = dict(zip(plan.data["y"].X.names, st.primary.beta, strict=True))
    s0 = int(plan.layout.factor("school").labels.get_loc(2))
    c0 = int(plan.layout.labels.get_loc((2, 1)))
    new = pd.DataFrame({"school": 2, "class": 1, "x": 0.0, "y": np.nan}, index=range(N_DRAWS))
    y = imp.impute_new(new, rng=3).complete(1)["y"].to_numpy()
    m = beta["Intercept"] + st.extra[0].b[s0, 0] + st.primary.b[c0, 0]
    assert stats.kstest(y, "norm", args=(m, np.sqrt(st.sigma2))).pvalue > 1e-3


def test_several_factors_bit_identical_observed_untouched(schools):
    df, imp = schools
    new = df.iloc[:16].copy()
    new.loc[new.index[:4], "class"] = 77  # a new class in a seen school
    new.loc[new.index[4:8], ["school", "class"]] = [500, 0]  # a new school
    new.loc[new.index[::3], "y"] = np.nan
    new.loc[new.index[1::3], "x"] = np.nan
    before = new.copy()
    a = imp.impute_new(new, rng=5)
    b = imp.impute_new(new, rng=5, n_jobs=2)
    pd.testing.assert_frame_equal(new, before)
    for k in (1, 2):
        ca = a.complete(k)
        pd.testing.assert_frame_equal(ca, b.complete(k))
        assert not ca.isna().any().any() and (ca.dtypes == new.dtypes).all()
        seen = new.notna()
        pd.testing.assert_frame_equal(ca[seen].fillna(0), new[seen].fillna(0))


def test_a_small_new_cluster_with_cluster_means_stays_near_the_data():
    # chained defaults with cluster means: a new school of two rows, x and y both missing
    # in one of them. With its effects held at one draw over the sweeps, the school-mean
    # coefficients fitted on 24-row schools amplified it (measured: -300 and -1200 within
    # 10 sweeps); redrawn every sweep as in training, the values stay within the data
    from tests.test_three_level import three_level

    df = three_level()
    imp = df.mi.impute(cluster=["school", "class"], m=2, iterations=5, rng=1)
    new = df.iloc[8:10].copy()
    new[["school", "class"]] = [8888, 7777]
    new.loc[new.index[0], ["x", "y"]] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error", mlimpute.errors.MlimputeWarning)
        out = imp.impute_new(new, rng=3)
    for frame in out:
        assert (frame[["x", "y"]].abs() < 10 * df[["x", "y"]].std()).all().all()


def test_new_imputations_far_from_the_data_are_flagged():
    from types import SimpleNamespace

    from mlimpute.newdata.model import warn_far

    df = _schools()
    imp = SimpleNamespace(data=df)
    far = SimpleNamespace(imputed={"y": np.array([0.0, 300.0 * df["y"].std()])})
    with pytest.warns(mlimpute.errors.MlimputeWarning, match=r"'y'\].*diverged"):
        warn_far(imp, [far], ["y"])
    near = SimpleNamespace(imputed={"y": np.array([0.0, float(df["y"].mean())])})
    with warnings.catch_warnings():
        warnings.simplefilter("error", mlimpute.errors.MlimputeWarning)
        warn_far(imp, [near], ["y"])


def test_transforms_fitted_on_the_data_are_refused_by_name():
    df = _schools()
    f = {"y": "~ center(x) + (1 | school) + (1 | school:class)"}
    imp = df.mi.impute(f, cluster=["school", "class"], m=1, iterations=2, rng=1)
    with pytest.raises(UnsupportedError, match=r"center\(\)"):
        imp.impute_new(df.iloc[:3])


def test_count_outcome_is_refused_by_name(df):
    r = np.random.default_rng(1)
    d = df.assign(y=r.poisson(2.0, len(df)).astype(float))
    d.loc[::7, "y"] = np.nan
    imp = mlimpute.impute(
        d, model="y ~ x + z + (1 | g)", family="poisson", m=1, iterations=3, rng=1
    )
    with pytest.raises(UnsupportedError, match="family='poisson'"):
        imp.impute_new(d.iloc[:3])
