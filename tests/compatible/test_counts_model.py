"""Counts in model-based imputation: a Poisson / negative-binomial analysis model
(``impute(model=..., family=...)``) and an incomplete count predictor with its own count
model (:mod:`mlimpute.compatible.counts`).

The exact-posterior checks run the real chain (:func:`run_compatible_chain`) with every
model's parameter step replaced by the identity after the first iteration: the chain then
only redraws the missing values, whose stationary law is their full conditional given the
frozen parameters, computed here independently (a sum over 0..K for a count, quadrature
for a continuous value).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.special import gammaln

import mlimpute
from mlimpute.errors import DataTypeError, SpecificationError, UnsupportedError
from mlimpute.sampler.compatible import ANALYSIS, run_compatible_chain
from mlimpute.sampler.engine import build_plan
from mlimpute.spec.model import build_model_spec


def _frozen_chain(df, model, family, T, seed):
    """Run one model-based chain whose parameters are frozen after the first iteration;
    returns the per-iteration mean of each imputed column (the draw itself when one value
    is missing), the final states and the plan."""
    spec = build_model_spec(df, model, None, m=1, iterations=T, family=family)
    plan = build_plan(df, spec)

    def keep(rng, state, *args):
        return state

    plan.analysis_model.step = keep
    for mod in plan.models.values():
        mod.step = keep
        mod.gibbs = keep
    _, mean, _, _, states = run_compatible_chain(plan, np.random.default_rng(seed), T=T)
    return {n: mean[:, k] for k, n in enumerate(plan.names)}, states, plan


def _batch_se(draws: np.ndarray, batches: int = 40) -> float:
    """Monte Carlo SE of a mean of autocorrelated draws by batch means."""
    b = draws[: draws.size // batches * batches].reshape(batches, -1).mean(axis=1)
    return float(b.std(ddof=1) / np.sqrt(batches))


def _clusters(J, size, rng):
    return np.repeat(np.arange(J), size)


def test_count_predictor_draws_match_the_discrete_full_conditional():
    """One missing count k (own model 2l.poisson) in a normal analysis y ~ k + (1 | g):
    its draws match p(k) ∝ PLN(k; m, σ²) · N(y; β0 + βk k + b_j, σ_y²), summed over
    k = 0..60 (PLN: the own model's Poisson–log-normal pmf by 80-node Gauss–Hermite).

    The independence sampler's draws are close to independent; the tolerance on each of
    P(k = j) and on E(k) is 4.5 batch-means SEs (40 batches). Dropping the analysis
    factor moves E(k) from the exact value by far more (asserted: the test has power).
    """
    rng = np.random.default_rng(3)
    J, size = 30, 8
    g = _clusters(J, size, rng)
    k = rng.poisson(3.0, J * size)
    y = 1.0 + 0.8 * k + rng.normal(0, 0.5, J)[g] + rng.normal(0, 1.0, J * size)
    row = 5
    y[row] = y.mean() + 3.0  # an informative outcome: pulls k up
    kk = pd.array(k, dtype="Int64")
    kk[row] = pd.NA
    df = pd.DataFrame({"y": y, "k": kk, "g": g})
    draws, states, plan = _frozen_chain(df, "y ~ k + (1 | g)", None, 1600, 1)
    assert plan.models["k"].method == "2l.poisson"
    d = draws["k"][100:]
    st, sa = states["k"], states[ANALYSIS]
    j = g[row]
    m = float(st.core.beta[0] + st.core.b[j, 0])
    s2 = float(st.core.sigma2)
    K = np.arange(61)
    t, w = np.polynomial.hermite_e.hermegauss(80)
    eta = m + np.sqrt(s2) * t
    log_own = np.log(
        (np.exp(K[:, None] * eta - np.exp(eta) - gammaln(K + 1)[:, None]) * w).sum(axis=1)
    )
    mu_y = sa.beta[0] + sa.beta[1] * K + sa.b[j, 0]
    log_an = -0.5 * (y[row] - mu_y) ** 2 / sa.sigma2
    p = np.exp(log_own + log_an - (log_own + log_an).max())
    p /= p.sum()
    own = np.exp(log_own - log_own.max())
    own /= own.sum()
    exact_mean = float(p @ K)
    se = _batch_se(d)
    assert abs(d.mean() - exact_mean) < 4.5 * se + 1e-9, (d.mean(), exact_mean, se)
    assert abs(float(own @ K) - exact_mean) > 10 * se  # the analysis term matters
    for v in K[p > 0.03]:
        ind = (d == v).astype(float)
        assert abs(ind.mean() - p[v]) < 4.5 * _batch_se(ind) + 1e-3, (v, ind.mean(), p[v])
    assert np.all(d == np.round(d)) and d.min() >= 0


def test_continuous_predictor_under_poisson_outcome_matches_quadrature():
    """One missing x in visits ~ x + (1 | g) (Poisson): the random-walk MH draws match
    N(x; μ_x, σ_x²) · Poisson(y; exp(β0 + βx x + b_j + e)) with the row's log-rate
    residual e held fixed (the move of (x, η) the sampler makes), by quadrature.

    Tolerance: 4.5 batch-means SEs on the mean and on the variance (E(x²) with the
    batch-means SE of x²). The own model alone is asserted to be far off.
    """
    rng = np.random.default_rng(5)
    J, size = 30, 8
    g = _clusters(J, size, rng)
    x = rng.normal(0, 1, J * size)
    y = rng.poisson(np.exp(0.3 + 0.7 * x + rng.normal(0, 0.3, J)[g])).astype(float)
    row = 11
    y[row] = 12.0  # many visits: pulls x up
    xm = x.copy()
    xm[row] = np.nan
    df = pd.DataFrame({"visits": y, "x": xm, "g": g})
    draws, states, plan = _frozen_chain(df, "visits ~ x + (1 | g)", "poisson", 2000, 2)
    d = draws["x"][200:]
    st, sa = states["x"], states[ANALYSIS]
    j = g[row]
    mu_x = float(st.beta[0] + st.b[j, 0])
    lin = lambda v: sa.core.beta[0] + sa.core.beta[1] * v + sa.core.b[j, 0]  # noqa: E731
    e = sa.eta[row] - lin(draws["x"][-1])  # y complete: row = its position among the rows
    grid = np.linspace(mu_x - 12, mu_x + 12, 200_001)
    logp = -0.5 * (grid - mu_x) ** 2 / st.sigma2 + y[row] * (lin(grid) + e) - np.exp(lin(grid) + e)
    w = np.exp(logp - logp.max())
    w /= np.trapezoid(w, grid)
    mean = np.trapezoid(w * grid, grid)
    m2 = np.trapezoid(w * grid**2, grid)
    assert abs(d.mean() - mean) < 4.5 * _batch_se(d), (d.mean(), mean)
    assert abs((d**2).mean() - m2) < 4.5 * _batch_se(d**2), ((d**2).mean(), m2)
    assert abs(mu_x - mean) > 10 * _batch_se(d)  # the Poisson factor matters


def test_count_predictor_under_poisson_outcome_matches_its_discrete_conditional():
    """One missing count k in visits ~ k + (1 | g) (Poisson outcome): p(k) ∝ PLN(k; m,
    σ²) · Poisson(y; exp(β0 + βk k + b_j + e)), e the row's log-rate residual held
    fixed; summed over k = 0..60. Tolerances as in the normal-outcome test."""
    rng = np.random.default_rng(13)
    J, size = 30, 8
    g = _clusters(J, size, rng)
    k = rng.poisson(2.0, J * size)
    y = rng.poisson(np.exp(0.2 + 0.3 * k + rng.normal(0, 0.3, J)[g])).astype(float)
    row = 7
    y[row] = 14.0  # many visits: pulls k up
    kk = pd.array(k, dtype="Int64")
    kk[row] = pd.NA
    df = pd.DataFrame({"visits": y, "k": kk, "g": g})
    draws, states, plan = _frozen_chain(df, "visits ~ k + (1 | g)", "poisson", 1600, 3)
    d = draws["k"][100:]
    st, sa = states["k"], states[ANALYSIS]
    j = g[row]
    K = np.arange(61)
    t, w = np.polynomial.hermite_e.hermegauss(80)
    eta = float(st.core.beta[0] + st.core.b[j, 0]) + np.sqrt(float(st.core.sigma2)) * t
    log_own = np.log(
        (np.exp(K[:, None] * eta - np.exp(eta) - gammaln(K + 1)[:, None]) * w).sum(axis=1)
    )
    lin = lambda v: sa.core.beta[0] + sa.core.beta[1] * v + sa.core.b[j, 0]  # noqa: E731
    e = sa.eta[row] - lin(draws["k"][-1])
    log_an = y[row] * (lin(K) + e) - np.exp(lin(K) + e)
    p = np.exp(log_own + log_an - (log_own + log_an).max())
    p /= p.sum()
    own = np.exp(log_own - log_own.max())
    own /= own.sum()
    se = _batch_se(d)
    assert abs(d.mean() - p @ K) < 4.5 * se + 1e-9, (d.mean(), p @ K, se)
    assert abs(own @ K - p @ K) > 10 * se
    for v in K[p > 0.03]:
        ind = (d == v).astype(float)
        assert abs(ind.mean() - p[v]) < 4.5 * _batch_se(ind) + 1e-3, (v, ind.mean(), p[v])


def _binary_under_counts(family: str, rows) -> tuple:
    """visits ~ b + (1 | g) on 30 clusters of 8: b binary (P(b = 1) = 0.4), log-mean
    0.2 + 1.2 b + u_j (u_j ~ N(0, 0.3²)), Poisson counts (``"negative_binomial"``: mixed
    by a gamma of shape 3); b missing and visits = 9 on ``rows``. Returns the frozen
    chain's trace of b (1,200 iterations), its final states of b's and the analysis model
    and the clusters of ``rows``."""
    rng = np.random.default_rng(9)
    J, size = 30, 8
    g = _clusters(J, size, rng)
    b = (rng.random(J * size) < 0.4).astype(float)
    mu = np.exp(0.2 + 1.2 * b + rng.normal(0, 0.3, J)[g])
    y = rng.poisson(mu if family == "poisson" else rng.gamma(3.0, mu / 3.0)).astype(float)
    y[rows] = 9.0
    bm = b.copy()
    bm[rows] = np.nan
    df = pd.DataFrame({"visits": y, "b": bm, "g": g})
    draws, states, _ = _frozen_chain(df, "visits ~ b + (1 | g)", family, 1200, 4)
    return draws["b"], states["b"], states[ANALYSIS], g[rows]


def test_binary_predictor_under_poisson_outcome_matches_its_exact_conditional():
    """One missing binary b in visits ~ b + (1 | g) (Poisson): drawn exactly over {0, 1}
    with P(b = 1) ∝ Φ(m_j) · Poisson(y; exp(β0 + βb + b_j + e)) (own probit model; e the
    row's log-rate residual, held fixed). Tolerance 4.5 batch-means SEs; the own model
    alone is asserted to be far off."""
    from scipy.stats import norm

    row = 17
    trace, st, sa, j = _binary_under_counts("poisson", row)
    d = trace[50:]
    p1 = norm.cdf(st.core.beta[0] + st.core.b[j, 0])
    lin = lambda v: sa.core.beta[0] + sa.core.beta[1] * v + sa.core.b[j, 0]  # noqa: E731
    e = sa.eta[row] - lin(trace[-1])
    ll = lambda v: 9.0 * (lin(v) + e) - np.exp(lin(v) + e)  # noqa: E731
    w1, w0 = p1 * np.exp(ll(1.0) - ll(0.0)), 1 - p1
    exact = w1 / (w1 + w0)
    se = _batch_se(d)
    assert abs(d.mean() - exact) < 4.5 * se + 1e-3, (d.mean(), exact, se)
    assert abs(p1 - exact) > 10 * se + 1e-3


def test_binary_predictor_under_negative_binomial_outcome_matches_its_exact_conditional():
    """As above with a negative-binomial outcome and two missing rows (in two clusters):
    P(b = 1) ∝ Φ(m_j) · NB(y; r, exp(β0 + βb + b_j)) (the marginal NB likelihood, no
    residual); the traced mean of the two draws matches the mean of the two exact
    probabilities. Tolerance 4.5 batch-means SEs; the own model alone is asserted to be
    far off."""
    from scipy.stats import nbinom, norm

    trace, st, sa, j = _binary_under_counts("negative_binomial", np.array([17, 100]))
    d = trace[50:]
    p1 = norm.cdf(st.core.beta[0] + st.core.b[j, 0])
    m = np.exp(sa.core.beta[0] + sa.core.beta[1] * np.array([[0.0], [1.0]]) + sa.core.b[j, 0])
    lik = nbinom.pmf(9, sa.r, sa.r / (sa.r + m))  # (category, row)
    exact = float(np.mean(p1 * lik[1] / (p1 * lik[1] + (1 - p1) * lik[0])))
    se = _batch_se(d)
    assert abs(d.mean() - exact) < 4.5 * se + 1e-3, (d.mean(), exact, se)
    assert abs(p1.mean() - exact) > 10 * se + 1e-3


def _sim(seed, J=40, size=10, family="poisson", r=2.0):
    """Multilevel counts: k ~ Poisson(exp(0.7 + 0.3 z)), log μ = 0.4 + 0.5 x + 0.2 z +
    0.1 k + u_j (var 0.25); Poisson or NB(r) outcome. 30 % of y missing at random on x
    and z, 20 % of k at random on z."""
    rng = np.random.default_rng(seed)
    n = J * size
    g = np.repeat(np.arange(J), size)
    x = 0.4 * rng.standard_normal(J)[g] + rng.standard_normal(n)
    z = rng.standard_normal(n)
    k = rng.poisson(np.exp(0.7 + 0.3 * z))
    mu = np.exp(0.4 + 0.5 * x + 0.2 * z + 0.1 * k + rng.normal(0, 0.5, J)[g])
    y = rng.poisson(mu if family == "poisson" else rng.gamma(r, mu / r))
    full = pd.DataFrame({"y": y, "x": x, "z": z, "k": pd.array(k, dtype="Int64"), "g": g})
    df = full.copy()
    df["y"] = df["y"].astype("Int64")
    my = rng.random(n) < 1 / (1 + np.exp(-(-0.95 + 0.8 * x + 0.5 * z)))
    mk = rng.random(n) < 1 / (1 + np.exp(-(-1.4 + 0.5 * z)))
    df.loc[my, "y"] = pd.NA
    df.loc[mk, "k"] = pd.NA
    return full, df


FORMULA = "y ~ x + z + k + (1 | g)"


@pytest.fixture(scope="module")
def pois():
    full, df = _sim(11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imp = df.mi.impute(model=FORMULA, family="poisson", m=4, iterations=30, rng=4)
    return full, df, imp


def test_spec_family_dtypes_and_observed_values(pois):
    full, df, imp = pois
    assert imp.spec.family == "poisson"
    assert imp.spec.methods == {"k": "2l.poisson", "y": "2l.poisson"}
    assert "family='poisson'" in repr(imp.spec)
    for i in (1, 4):
        c = imp.complete(i)
        assert str(c["y"].dtype) == "Int64" and str(c["k"].dtype) == "Int64"
        assert not c.isna().any().any()
        for col in ("y", "k"):
            v = c[col].to_numpy(dtype=float)
            assert (v >= 0).all() and (v == np.round(v)).all()
            obs = df[col].notna().to_numpy()
            assert np.array_equal(v[obs], df[col].to_numpy(dtype=float, na_value=np.nan)[obs])
    names = list(imp.traces["x:params"]["x:param"].values) if "x:params" in imp.traces else []
    assert names == []  # x is complete here
    k_names = list(imp.traces["k:params"]["k:param"].values)
    assert k_names[-1] == "accept(MH)"
    acc = imp.traces["k:params"].sel({"k:param": "accept(MH)"}).values[:, 10:]
    assert 0.3 < acc.mean() <= 1.0


def test_fit_defaults_to_the_family_and_matches_complete_data(pois):
    """imp.fit() fits the Poisson GLMM; pooled fixed effects within 2.5·se·√fmi (fmi
    floored at 0.05, the Monte Carlo error of m = 4; as test_impute_model.py) of the
    complete-data fit."""
    full, df, imp = pois
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = imp.fit()
        comp = mlimpute.from_completed([full, full]).fit(FORMULA, family="poisson")
    assert "poisson" in res.model
    est, ce = res.summary(), comp.summary()
    sd = est["se"] * np.sqrt(np.maximum(est["fmi"], 0.05))
    gap = (est["estimate"] - ce["estimate"]).abs()
    assert (gap < 2.5 * sd).all(), pd.DataFrame({"gap": gap, "sd": sd})


def test_zero_share_of_imputed_counts(pois):
    """The completed y's share of zeros within 4 points of the complete data's (m = 4
    data sets of 400 rows: a binomial SE of about 1 point on the pooled share)."""
    full, _, imp = pois
    zeros = np.mean([(imp.complete(i)["y"] == 0).mean() for i in range(1, 5)])
    assert abs(zeros - (full["y"] == 0).mean()) < 0.04


@pytest.mark.parametrize("family", ["poisson", "negative_binomial"])
def test_parameter_draws_centre_on_the_glmm_fit(family):
    """With 3 of 300 outcomes missing (completely at random) the analysis model's draws
    are its posterior given the observed rows: their means are within 0.5 SE (the gap
    between posterior mean and ML estimate, O(SE/√n), plus a weak prior) + 4 Monte Carlo
    SEs (batch means over both chains) of the GLMM fit of those rows."""
    rng = np.random.default_rng(8)
    J, size = 30, 10
    g = np.repeat(np.arange(J), size)
    x = rng.standard_normal(J * size)
    mu = np.exp(0.5 + 0.4 * x + rng.normal(0, 0.4, J)[g])
    y = rng.poisson(mu if family == "poisson" else rng.gamma(2.0, mu / 2.0)).astype(float)
    df = pd.DataFrame({"y": y, "x": x, "g": g})
    df.loc[[3, 100, 200], "y"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imp = df.mi.impute(model="y ~ x + (1 | g)", family=family, m=2, iterations=120, rng=3)
        ml = mlimpute.from_completed([df.dropna()] * 2).fit("y ~ x + (1 | g)", family=family)
    tr = imp.traces["y:params"].isel(iteration=slice(30, None))
    s = ml.summary()
    for term in ("Intercept", "x"):
        d = tr.sel({"y:param": term}).values
        mcse = np.hypot(_batch_se(d[0], 15), _batch_se(d[1], 15)) / 2
        gap = abs(d.mean() - s.loc[term, "estimate"])
        assert gap < 0.5 * s.loc[term, "se"] + 4 * mcse, (term, gap, s.loc[term, "se"], mcse)
    if family == "negative_binomial":
        r = tr.sel({"y:param": "r"}).values.mean()
        assert 1.0 < r < 5.0  # the true dispersion is 2


def test_negative_binomial_outcome_and_overdispersed_count_predictor():
    full, df = _sim(12, family="nb")
    rng = np.random.default_rng(0)
    k = rng.negative_binomial(1.0, 0.25, len(df))
    df["k"] = pd.array(np.where(df["k"].isna(), pd.NA, k), dtype="Int64")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imp = df.mi.impute(model=FORMULA, family="negative_binomial", m=2, iterations=10, rng=1)
    assert imp.spec.methods == {"k": "2l.nb", "y": "2l.nb"}
    c = imp.complete(2)
    assert (c["y"] >= 0).all() and (c["k"] >= 0).all()


def test_continuous_predictor_traces_and_iterate_is_bit_identical():
    full, df = _sim(13, J=20)
    df.loc[df.index % 5 == 0, "x"] = np.nan
    kw = dict(model=FORMULA, family="poisson", m=2, rng=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        long = df.mi.impute(iterations=8, **kw)
        cont = df.mi.impute(iterations=5, **kw).iterate(3)
        other = df.mi.impute(iterations=8, n_jobs=2, **kw)
    names = list(long.traces["x:params"]["x:param"].values)
    assert names[-2:] == ["accept(MH)", "scale(MH)"]
    for a in (cont, other):
        for i in (1, 2):
            pd.testing.assert_frame_equal(long.complete(i), a.complete(i))
        for v in ("x:params", "k:params", "y:params"):
            np.testing.assert_array_equal(long.traces[v].values, a.traces[v].values)


def test_spec_saves_and_reloads_with_its_family(pois, tmp_path):
    from mlimpute.io.stored_spec import spec_from_dict, spec_to_dict

    _, _, imp = pois
    assert spec_from_dict(spec_to_dict(imp.spec)) == imp.spec


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(family="zip"), UnsupportedError, "zero-inflated"),
        (dict(family="binomial"), UnsupportedError, "binomial"),
        (dict(family="poison"), SpecificationError, "unknown family"),
        (dict(family="nb"), SpecificationError, "negative_binomial"),
    ],
)
def test_family_errors(pois, kwargs, error, match):
    _, df, _ = pois
    with pytest.raises(error, match=match):
        df.mi.impute(model=FORMULA, m=1, iterations=2, **kwargs)


def test_unsupported_count_designs_are_named(pois):
    _, df, _ = pois
    with pytest.raises(SpecificationError, match="family= needs model="):
        df.mi.impute(family="poisson", m=1, iterations=2)
    bad = df.assign(y=df["y"].astype(float) + 0.5)
    with pytest.raises(DataTypeError, match="non-negative integers"):
        bad.mi.impute(model=FORMULA, family="poisson", m=1, iterations=2)
    rng = np.random.default_rng(0)
    w = rng.standard_normal(df["g"].nunique())[df["g"]]
    lvl2 = df.assign(w=np.where(df["g"] % 4 == 0, np.nan, w))
    with pytest.raises(UnsupportedError, match="level-2"):
        lvl2.mi.impute(model="y ~ x + k + w + (1 | g)", family="poisson", m=1, iterations=2)
    with pytest.raises(UnsupportedError, match="lmean"):
        df.drop(columns="k").assign(x=df["x"].where(df.index % 7 > 0)).mi.impute(
            model="y ~ x + lmean(x) + (1 | g)", family="poisson", m=1, iterations=2
        )
    two = df.assign(k2=df["k"])
    with pytest.raises(UnsupportedError, match="one incomplete count predictor"):
        two.mi.impute(model="y ~ x + k + k2 + (1 | g)", m=1, iterations=2)


def test_toml_model_table_carries_the_family(pois):
    """``[model] family = "poisson"``: written from the specification and by ``mlimpute
    init --model ... --family``, read back, rerun bit for bit, pooled with that family."""
    from mlimpute.specfile import init_spec, loads_spec

    _, df, _ = pois
    small = df[df["g"] < 10]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imp = small.mi.impute(model=FORMULA, family="poisson", m=2, iterations=4, rng=3)
        text = imp.spec.to_toml()
        assert 'family = "poisson"' in text
        study = loads_spec(text)
        assert study.family == "poisson" and study.pooled_analysis.family == "poisson"
        again = study.impute(small)
    for i in (1, 2):
        pd.testing.assert_frame_equal(imp.complete(i), again.complete(i))
    init = init_spec(small, model=FORMULA, family="negative_binomial", seed=1)
    assert loads_spec(init).family == "negative_binomial"
    with pytest.raises(SpecificationError, match="needs an analysis model"):
        init_spec(small, cluster="g", family="poisson")


def test_same_model_normal_then_poisson_outcome():
    """The same analysis model text first with a normal, then with a Poisson outcome:
    the second run draws x by Metropolis–Hastings (nothing cached from the first)."""
    full, df = _sim(14, J=15)
    df.loc[df.index % 4 == 0, "x"] = np.nan
    normal = df.assign(y=np.log1p(df["y"].astype(float)), k=df["k"].astype(float))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = normal.mi.impute(model=FORMULA, m=1, iterations=2, rng=1)
        b = df.mi.impute(model=FORMULA, family="poisson", m=1, iterations=2, rng=1)
    assert "accept(MH)" not in list(a.traces["x:params"]["x:param"].values)
    assert "accept(MH)" in list(b.traces["x:params"]["x:param"].values)


def test_cli_init_model_family_then_run(tmp_path, capsys):
    """``mlimpute init data.csv --model ... --family poisson`` writes the family; ``run``
    imputes with it and pools the Poisson GLMM (a CSV count column with gaps reads as
    floats: fine for the outcome, whose observed values are whole numbers)."""
    from mlimpute.cli import main
    from mlimpute.specfile import read_spec

    _, df = _sim(15, J=12)
    data = tmp_path / "d.csv"
    df.drop(columns="k").to_csv(data, index=False)
    spec = tmp_path / "m.toml"
    model = "y ~ x + z + (1 | g)"
    args = ["init", str(data), "--model", model, "--family", "poisson", "-m", "2"]
    assert main([*args, "--iterations", "3", "--seed", "4", "-o", str(spec)]) == 0
    assert read_spec(spec).family == "poisson"
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["run", str(spec), "--quiet", "--no-progress"]) == 0
    assert "poisson" in capsys.readouterr().out


def _three_level_counts():
    rng = np.random.default_rng(5)
    school = np.repeat(np.arange(6), 20)
    cls = np.repeat(np.arange(24), 5)
    x = rng.normal(size=120)
    y = rng.poisson(np.exp(0.3 + 0.4 * x + rng.normal(0, 0.3, 6)[school]))
    df = pd.DataFrame({"school": school, "cls": cls, "x": x, "y": y}).astype({"y": "Int64"})
    df.loc[rng.random(120) < 0.2, "y"] = pd.NA
    return df


def test_count_family_with_several_terms_is_refused_by_name():
    df = _three_level_counts()
    with pytest.raises(UnsupportedError, match="family='poisson'.*several random-effect"):
        mlimpute.impute(df, model="y ~ x + (1 | school) + (1 | cls)", family="poisson", m=1, rng=1)


def test_shifts_with_a_count_outcome_are_refused_by_name():
    df = _three_level_counts()
    df.loc[::7, "x"] = np.nan
    with pytest.raises(UnsupportedError, match="count variable"):
        mlimpute.impute(
            df, model="y ~ x + (1 | cls)", family="poisson", delta={"x": 0.5}, m=1, rng=1
        )
