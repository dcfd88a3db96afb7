"""Tests of mlimpute.pooling and mlimpute.analysis.fitters.mixedlm.

Reference values come from R (mice 3.15, mitml 0.4-4, lme4 1.1-31) in the fixture
``tests/data/pooling_reference.json``. Tolerances:

* Rubin's rules, D1 and D2 from the stored estimates are closed-form: they reproduce R to
  rounding (observed <= 5e-14); we assert 1e-8 (mice) and 1e-6 (mitml D1/D2).
* D3 and the pooled variance components need our own ML refits (statsmodels MixedLM) of
  the ten stored completed data sets. statsmodels and lme4 maximise the same likelihood;
  what is left is where each optimiser stops (lme4: bobyqa on the profiled deviance;
  statsmodels: bfgs with gtol = 1e-8). Observed agreement ~1e-7; we assert 1e-5, well
  inside the 1e-3 required.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from formulaic import model_matrix
from scipy import stats

from mlimpute.analysis.fitters.mixedlm import (
    MixedFit,
    block_mask,
    fit_glm,
    fit_mixedlm,
    fit_ols,
    glm_loglike,
    mixedlm_loglike,
    ols_loglike,
    pooled_parameters,
)
from mlimpute.errors import MlimputeWarning, PoolingError
from mlimpute.pooling import (
    PooledEstimates,
    barnard_rubin_df,
    d1,
    d2,
    d3,
    pool,
    pool_scalar,
    pool_variance_components,
    wald_statistics,
)

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "pooling_reference.json"


@pytest.fixture(scope="module")
def ref() -> dict:
    return json.loads(FIXTURE.read_text())


def assert_rel(actual, expected, rtol, what=""):
    np.testing.assert_allclose(
        np.asarray(actual, float), np.asarray(expected, float), rtol=rtol, atol=0, err_msg=what
    )


# --------------------------------------------------------------------------------------
# mice: pool.scalar() and pool() of lm fits


def test_pool_scalar_matches_mice(ref):
    for i, case in enumerate(ref["pool_scalar"]):
        res = pool_scalar(case["Q"], case["U"], dfcom=case["dfcom"])
        got = {
            "qbar": res.qbar[0],
            "ubar": res.ubar[0, 0],
            "b": res.b[0, 0],
            "t": res.t[0, 0],
            "df": res.df[0],
            "r": res.riv[0],
            "fmi": res.fmi[0],
        }
        for key, value in got.items():
            assert_rel(value, case[key], 1e-8, f"pool_scalar case {i}: {key}")


def test_pool_lm_matches_mice(ref):
    lm = ref["pool_lm"]
    res = pool(lm["estimates"], lm["covariances"], dfcom=lm["dfcom"], names=lm["names"])
    pooled = lm["pooled"]
    assert_rel(res.qbar, pooled["estimate"], 1e-8)
    assert_rel(np.diag(res.ubar), pooled["ubar"], 1e-8)
    assert_rel(np.diag(res.b), pooled["b"], 1e-8)
    assert_rel(np.diag(res.t), pooled["t"], 1e-8)
    for ours, theirs in [("df", "df"), ("riv", "riv"), ("lambda_", "lambda"), ("fmi", "fmi")]:
        assert_rel(getattr(res, ours), pooled[theirs], 1e-8, theirs)

    table = res.table()
    assert list(table.index) == lm["names"]
    assert list(table.columns) == [
        "estimate",
        "se",
        "t",
        "df",
        "p",
        "ci_low",
        "ci_high",
        "riv",
        "lambda",
        "fmi",
    ]
    summary = lm["summary"]
    for ours, theirs in [
        ("estimate", "estimate"),
        ("se", "std.error"),
        ("t", "statistic"),
        ("df", "df"),
        ("p", "p.value"),
        ("ci_low", "2.5 %"),
        ("ci_high", "97.5 %"),
    ]:
        assert_rel(table[ours], summary[theirs], 1e-8, theirs)


# --------------------------------------------------------------------------------------
# mitml: testEstimates(), testModels() D1 and D2 from the stored lme4 estimates


def test_testestimates_matches_mitml(ref):
    mixed = ref["mixed"]
    te = mixed["testEstimates"]["estimates"]
    table = pool(mixed["estimates"], mixed["covariances"], names=mixed["names"]).table()
    for ours, theirs in [
        ("estimate", "Estimate"),
        ("se", "Std.Error"),
        ("t", "t.value"),
        ("df", "df"),
        ("riv", "RIV"),
        ("fmi", "FMI"),
    ]:
        assert_rel(table[ours], te[theirs], 1e-8, theirs)
    # mitml computes 2 * (1 - pt(|t|, df)), which cancels to exactly 0 for the intercept
    # (t = 33); our survival function gives ~1e-60 there, so compare absolutely.
    np.testing.assert_allclose(table["p"], te["P(>|t|)"], rtol=1e-8, atol=1e-15)


def _tested(mixed):
    """The coefficients the reduced model drops: gender and skill:gender."""
    full = mixed["names"]
    keep = [full.index(n) for n in ("gender", "skill:gender")]
    q = np.asarray(mixed["estimates"])[:, keep]
    u = np.asarray(mixed["covariances"])[:, keep][:, :, keep]
    return q, u


def _assert_test(result, expected, rtol):
    assert result.df1 == expected["df1"]
    assert_rel(result.statistic, expected["F.value"], rtol, "F")
    assert_rel(result.df2, expected["df2"], rtol, "df2")
    assert_rel(result.p, expected["P(>F)"], rtol, "p")
    assert_rel(result.riv, expected["RIV"], rtol, "RIV")


def test_d1_matches_mitml(ref):
    q, u = _tested(ref["mixed"])
    res = d1(q, u)  # mitml's df.com = NULL: the Li, Raghunathan & Rubin (1991) df
    assert res.method == "D1"
    _assert_test(res, ref["mixed"]["D1"], 1e-6)


def test_d2_matches_mitml_with_wald_statistics(ref):
    q, u = _tested(ref["mixed"])
    res = d2(wald_statistics(q, u), k=2)  # mitml's default use = "wald"
    assert res.method == "D2"
    _assert_test(res, ref["mixed"]["D2"], 1e-6)


# --------------------------------------------------------------------------------------
# ML refits of the stored completed data sets: D3 and variance components


@pytest.fixture(scope="module")
def refits(ref):
    """ML fits of grade ~ skill * gender + (1 | class) and grade ~ skill + (1 | class)."""
    mixed = ref["mixed"]
    assert mixed["model_full"] == "grade ~ skill * gender + (1 | class), ML"
    assert mixed["model_reduced"] == "grade ~ skill + (1 | class), ML"
    out = {"full": [], "reduced": []}
    for data in mixed["data_completed"]:
        frame = pd.DataFrame(data)
        z = np.ones((len(frame), 1))
        for key, rhs in (("full", "skill * gender"), ("reduced", "skill")):
            design = (
                frame["grade"].to_numpy(),
                np.asarray(model_matrix(rhs, frame)),
                z,
                frame["class"].to_numpy(),
            )
            out[key].append((design, fit_mixedlm(*design, reml=False)))
    return out


def test_refits_reproduce_lme4_estimates(ref, refits):
    fits = [fit for _, fit in refits["full"]]
    assert all(f.converged and not f.messages for f in fits)
    assert_rel([f.fe_params for f in fits], ref["mixed"]["estimates"], 1e-5)
    cov = np.array([f.cov_fe for f in fits])
    expected = np.array(ref["mixed"]["covariances"])
    # relative to the standard errors, so that near-zero covariances do not dominate
    sd = np.sqrt(np.einsum("lii->li", expected))
    assert np.max(np.abs(cov - expected) / (sd[:, :, None] * sd[:, None, :])) < 1e-5


def test_d3_matches_mitml(ref, refits):
    full, reduced = refits["full"], refits["reduced"]
    lr_own = np.array([2 * (f.llf - r.llf) for (_, f), (_, r) in zip(full, reduced, strict=True)])
    at_full = pooled_parameters([f for _, f in full])
    at_reduced = pooled_parameters([r for _, r in reduced])
    lr_pooled = np.array(
        [
            2 * (mixedlm_loglike(*df, *at_full) - mixedlm_loglike(*dr, *at_reduced))
            for (df, _), (dr, _) in zip(full, reduced, strict=True)
        ]
    )
    k = full[0][1].n_params - reduced[0][1].n_params
    assert k == 2
    res = d3(lr_own, lr_pooled, k)
    assert res.method == "D3"
    _assert_test(res, ref["mixed"]["D3"], 1e-5)


def test_d1_d2_from_refits_match_mitml(ref, refits):
    fits = [f for _, f in refits["full"]]
    q = np.array([f.fe_params[2:] for f in fits])
    u = np.array([f.cov_fe[2:, 2:] for f in fits])
    _assert_test(d1(q, u), ref["mixed"]["D1"], 1e-5)
    _assert_test(d2(wald_statistics(q, u), 2), ref["mixed"]["D2"], 1e-5)


def test_variance_components_match_mitml(ref, refits):
    fits = [f for _, f in refits["full"]]
    tau = np.array([f.cov_re[0, 0] for f in fits])
    sigma2 = np.array([f.scale for f in fits])
    extra = ref["mixed"]["testEstimates"]
    names = extra["extra_rownames"]
    # mitml averages the ICC computed within each imputation
    table = pool_variance_components(np.column_stack([tau, sigma2, tau / (tau + sigma2)]), names)
    assert list(table.columns) == ["estimate", "between_sd"]
    assert_rel(table["estimate"], extra["extra"]["Estimate"], 1e-5)
    assert_rel(
        table["between_sd"],
        [tau.std(ddof=1), sigma2.std(ddof=1), (tau / (tau + sigma2)).std(ddof=1)],
        1e-12,
    )
    assert np.all(table["between_sd"] > 0)


# --------------------------------------------------------------------------------------
# _mixedlm: the likelihood against a dense computation and statsmodels


def _dense_loglike(y, X, Z, groups, beta, tau, sigma2):
    same = groups[:, None] == groups[None, :]
    V = np.where(same, Z @ tau @ Z.T, 0.0) + sigma2 * np.eye(y.size)
    r = y - X @ beta
    _, logdet = np.linalg.slogdet(V)
    return -0.5 * (y.size * np.log(2 * np.pi) + logdet + r @ np.linalg.solve(V, r))


def _random_slope_data(seed, n_groups=30, n=10):
    """Random intercept and gender slope; the ML estimates are interior for seeds 0-5."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_groups), n)
    x = rng.normal(size=groups.size)
    g = rng.integers(0, 2, size=groups.size).astype(float)
    b = rng.multivariate_normal([0, 0], [[1.0, 0.2], [0.2, 0.5]], size=n_groups)
    y = 1 + 0.5 * x + 0.3 * g + b[groups, 0] + b[groups, 1] * g + rng.normal(size=groups.size)
    perm = rng.permutation(groups.size)  # rows need not be sorted by cluster
    X = np.column_stack([np.ones_like(x), x, g])[perm]
    Z = np.column_stack([np.ones_like(g), g])[perm]
    return y[perm], X, Z, groups[perm]


@pytest.mark.parametrize("q", [1, 2])
def test_mixedlm_loglike_equals_dense_computation(q):
    y, X, Z, groups = _random_slope_data(1)
    Z = Z[:, :q]
    tau = np.array([[1.3, 0.2], [0.2, 0.4]])[:q, :q]
    beta = np.array([0.8, 0.4, 0.1])
    expected = _dense_loglike(y, X, Z, groups, beta, tau, 2.1)
    assert mixedlm_loglike(y, X, Z, groups, beta, tau, 2.1) == pytest.approx(expected, rel=1e-12)
    # a singular random-effect covariance (slope variance 0) is allowed
    tau0 = np.zeros((q, q))
    tau0[0, 0] = 1.0
    expected = _dense_loglike(y, X, Z, groups, beta, tau0, 2.1)
    assert mixedlm_loglike(y, X, Z, groups, beta, tau0, 2.1) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("reml", [False, True])
def test_fit_mixedlm_agrees_with_statsmodels(reml):
    y, X, Z, groups = _random_slope_data(2)
    fit = fit_mixedlm(y, X, Z, groups, reml=reml)
    res = sm.MixedLM(y, X, groups, exog_re=Z).fit(reml=reml, method="bfgs", gtol=1e-8)
    np.testing.assert_allclose(fit.fe_params, res.fe_params, rtol=1e-6)
    np.testing.assert_allclose(fit.cov_re, res.cov_re, rtol=1e-5)
    assert fit.scale == pytest.approx(res.scale, rel=1e-6)
    assert fit.llf == pytest.approx(res.llf, rel=1e-10)
    assert fit.n_params == 3 + 3 + 1 and fit.n_groups == 30 and fit.nobs == 300
    assert fit.converged and not fit.messages
    # the fixed-effect covariance is lme4's (X' V^-1 X)^-1; statsmodels' inverse
    # Hessian differs from it only by the small fixed-by-variance cross terms
    # (here ~1% of the variances; compared on the correlation scale)
    sd = np.sqrt(np.diag(fit.cov_fe))
    assert np.max(np.abs(fit.cov_fe - res.cov_params()[:3, :3]) / np.outer(sd, sd)) < 2e-2
    # and it is exactly the GLS covariance at the estimates
    tau, s2 = fit.cov_re, fit.scale
    v = np.where(groups[:, None] == groups[None, :], Z @ tau @ Z.T, 0.0) + s2 * np.eye(y.size)
    np.testing.assert_allclose(fit.cov_fe, np.linalg.inv(X.T @ np.linalg.solve(v, X)), rtol=1e-10)
    if not reml:  # at the ML estimates our likelihood is statsmodels' profile likelihood
        at_fit = mixedlm_loglike(y, X, Z, groups, fit.fe_params, fit.cov_re, fit.scale)
        assert at_fit == pytest.approx(res.llf, rel=1e-10)


def test_ols_fit_and_loglike_agree_with_statsmodels():
    y, X, _, _ = _random_slope_data(3)
    fit = fit_ols(y, X)
    res = sm.OLS(y, X).fit()
    np.testing.assert_allclose(fit.params, res.params, rtol=1e-10)
    np.testing.assert_allclose(fit.cov_params, res.cov_params(), rtol=1e-10)
    assert fit.llf == pytest.approx(res.llf, rel=1e-12)
    assert fit.df_resid == res.df_resid and fit.n_params == 4
    assert ols_loglike(y, X, res.params, fit.sigma2_ml) == pytest.approx(res.llf, rel=1e-12)


def test_block_mask():
    np.testing.assert_array_equal(
        block_mask([(2, False), (1, True)]),
        [[True, False, False], [False, True, False], [False, False, True]],
    )
    assert block_mask([(2, True)]).all()


def test_uncorrelated_fit_is_the_constrained_ml_optimum():
    """(1 + g || group): Tau diagonal, and no diagonal Tau nearby has a higher likelihood."""
    y, X, Z, groups = _random_slope_data(0)
    fit = fit_mixedlm(y, X, Z, groups, reml=False, blocks=[(2, False)])
    assert fit.cov_re[0, 1] == fit.cov_re[1, 0] == 0.0 and fit.converged
    assert fit.n_cov_params == 2 and fit.n_params == 3 + 2 + 1
    # the same model written as two blocks
    two = fit_mixedlm(y, X, Z, groups, reml=False, blocks=[(1, True), (1, True)])
    np.testing.assert_allclose(two.cov_re, fit.cov_re, rtol=1e-6, atol=1e-12)

    def profiled(tau_diag, s2):
        tau = np.diag(tau_diag)
        v = np.where(groups[:, None] == groups[None, :], Z @ tau @ Z.T, 0.0) + s2 * np.eye(y.size)
        beta = np.linalg.solve(X.T @ np.linalg.solve(v, X), X.T @ np.linalg.solve(v, y))
        return mixedlm_loglike(y, X, Z, groups, beta, tau, s2)

    best = profiled(np.diag(fit.cov_re), fit.scale)
    assert best == pytest.approx(fit.llf, rel=1e-10)
    for j in range(3):
        for h in (0.97, 1.03):
            params = np.r_[np.diag(fit.cov_re), fit.scale]
            params[j] *= h
            assert profiled(params[:2], params[2]) < best


def _no_cluster_effect(seed):
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(20), 10)
    x = rng.normal(size=200)
    X = np.column_stack([np.ones(200), x])
    return 1 + x + rng.normal(size=200), X, np.ones((200, 1)), groups


def test_singular_follows_lme4_isSingular():
    y, X, Z, groups = _no_cluster_effect(6)  # the ML and REML variances are 0
    for engine in ("statsmodels", "profiled"):
        fit = fit_mixedlm(y, X, Z, groups, engine=engine)
        assert fit.singular and fit.cov_re[0, 0] < 1e-8 and fit.converged
    y2 = y + np.random.default_rng(0).normal(size=20)[groups]
    assert not fit_mixedlm(y2, X, Z, groups).singular
    # a correlation of +-1 is singular too, with both variances positive
    perfect = MixedFit(
        np.zeros(1), np.eye(1), np.array([[1.0, 1.0], [1.0, 1.0]]), 1.0, 0.0, True, 10, 2, True, ()
    )
    assert perfect.singular and perfect.cov_re.diagonal().min() > 0


def _profile_optimum(y, X, Z, groups):
    """ML random-intercept variance by a brute-force 1-d search on the dense likelihood."""
    from scipy.optimize import minimize_scalar

    def neg(tau):
        v = np.where(groups[:, None] == groups[None, :], tau, 0.0)
        best = minimize_scalar(
            lambda ls2: -_profile_beta(y, X, Z, groups, v, tau, np.exp(ls2)),
            bounds=(-3, 3),
            method="bounded",
            options={"xatol": 1e-12},
        )
        return best.fun

    res = minimize_scalar(neg, bounds=(0, 2), method="bounded", options={"xatol": 1e-10})
    return res.x, -res.fun


def _profile_beta(y, X, Z, groups, v_re, tau, s2):
    v = v_re + s2 * np.eye(y.size)
    beta = np.linalg.solve(X.T @ np.linalg.solve(v, X), X.T @ np.linalg.solve(v, y))
    return mixedlm_loglike(y, X, Z, groups, beta, [[tau]], s2)


def test_fit_reaches_the_optimum_where_statsmodels_stops_short():
    """statsmodels' bfgs/lbfgs stop at tau = 0.196 (llf -287.14) on these data; the check
    on the profiled deviance finds the optimum, 0.0917 (llf -286.27)."""
    y, X, Z, groups = _no_cluster_effect(4)
    tau, llf = _profile_optimum(y, X, Z, groups)
    for engine in ("statsmodels", "profiled"):
        fit = fit_mixedlm(y, X, Z, groups, reml=False, engine=engine)
        assert fit.cov_re[0, 0] == pytest.approx(tau, rel=1e-5)
        assert fit.llf == pytest.approx(llf, abs=1e-8)
        assert fit.converged and not fit.singular
    fit = fit_mixedlm(y, X, Z, groups, reml=False, engine="statsmodels")
    assert any("stopped short" in msg for msg in fit.messages)


@pytest.mark.parametrize("reml", [False, True])
def test_engines_agree(reml):
    y, X, Z, groups = _random_slope_data(3)
    a = fit_mixedlm(y, X, Z, groups, reml=reml)
    b = fit_mixedlm(y, X, Z, groups, reml=reml, engine="profiled")
    np.testing.assert_allclose(a.fe_params, b.fe_params, rtol=1e-6)
    np.testing.assert_allclose(a.cov_re, b.cov_re, rtol=1e-4, atol=1e-6)
    assert a.llf == pytest.approx(b.llf, abs=1e-7)


def test_glm_fit_and_loglike_agree_with_statsmodels():
    y, X, _, _ = _random_slope_data(5)
    yb = (y > 1).astype(float)
    fit = fit_glm(yb, X, sm.families.Binomial())
    res = sm.GLM(yb, X, family=sm.families.Binomial()).fit()
    np.testing.assert_allclose(fit.params, res.params, rtol=1e-10)
    np.testing.assert_allclose(fit.cov_params, res.cov_params(), rtol=1e-10)
    assert fit.llf == pytest.approx(res.llf, rel=1e-12) and fit.df_resid == 297
    assert fit.converged and fit.n_params == 3
    at = glm_loglike(yb, X, sm.families.Binomial(), res.params)
    assert at == pytest.approx(res.llf, rel=1e-12)


# --------------------------------------------------------------------------------------
# B = 0 and m = 1


def test_identical_imputations_give_the_complete_data_answer():
    y, X, _, _ = _random_slope_data(4)
    fit = fit_ols(y, X)
    m = 5
    for dfcom in (fit.df_resid, np.inf):
        res = pool(np.tile(fit.params, (m, 1)), np.tile(fit.cov_params, (m, 1, 1)), dfcom=dfcom)
        np.testing.assert_array_equal(res.qbar, fit.params)
        np.testing.assert_array_equal(res.t, fit.cov_params)
        np.testing.assert_array_equal(res.b, 0.0)
        np.testing.assert_array_equal(res.riv, 0.0)
        np.testing.assert_array_equal(res.lambda_, 0.0)
        np.testing.assert_array_equal(res.fmi, 0.0)
        np.testing.assert_array_equal(res.df, dfcom)
        table = res.table()
        assert np.all(np.isfinite(table.drop(columns="df").to_numpy()))
    # with dfcom = n - p the table is statsmodels' complete-data OLS table
    ols = sm.OLS(y, X).fit()
    table = pool(
        np.tile(fit.params, (m, 1)), np.tile(fit.cov_params, (m, 1, 1)), dfcom=fit.df_resid
    ).table()
    np.testing.assert_allclose(table["p"], ols.pvalues, rtol=1e-10)
    np.testing.assert_allclose(table[["ci_low", "ci_high"]], ols.conf_int(), rtol=1e-10)


def test_identical_tests_give_the_complete_data_tests():
    y, X, _, _ = _random_slope_data(5)
    full, reduced = fit_ols(y, X), fit_ols(y, X[:, :1])
    m, k = 4, 2
    q = np.tile(full.params[1:], (m, 1))
    u = np.tile(full.cov_params[1:, 1:], (m, 1, 1))
    wald = float(wald_statistics(q[:1], u[:1])[0])
    for res in (d1(q, u), d2(np.full(m, wald), k)):
        assert res.riv == 0.0 and res.df2 == np.inf
        assert res.statistic == pytest.approx(wald / k, rel=1e-12)
        assert res.p == pytest.approx(stats.chi2.sf(wald, k), rel=1e-10)
    res = d1(q, u, dfcom=full.df_resid)
    assert res.df2 == full.df_resid
    assert res.p == pytest.approx(stats.f.sf(wald / k, k, full.df_resid), rel=1e-10)
    # D3 with m identical data sets is the classical likelihood-ratio test
    lr = 2 * (full.llf - reduced.llf)
    at_full = ols_loglike(y, X, full.params, full.sigma2_ml)
    at_reduced = ols_loglike(y, X[:, :1], reduced.params, reduced.sigma2_ml)
    res = d3(np.full(m, lr), np.full(m, 2 * (at_full - at_reduced)), k)
    assert res.riv == 0.0 and res.df2 == np.inf
    assert res.statistic == pytest.approx(lr / k, rel=1e-12)
    assert res.p == pytest.approx(stats.chi2.sf(lr, k), rel=1e-10)


def test_single_imputation_is_refused_clearly():
    with pytest.raises(PoolingError, match="at least 2 imputations"):
        pool([[1.0, 2.0]], [np.eye(2)])
    with pytest.raises(PoolingError, match="at least 2 imputations"):
        pool_scalar([1.0], [0.1])
    with pytest.raises(PoolingError, match="at least 2 imputations"):
        d1([[1.0, 2.0]], [np.eye(2)])
    with pytest.raises(PoolingError, match="m >= 2"):
        d2([3.0], 1)
    with pytest.raises(PoolingError, match="m >= 2"):
        d3([3.0], [2.0], 1)
    with pytest.raises(PoolingError, match="m >= 2"):
        pool_variance_components([[1.0, 2.0]], ["a", "b"])
    with pytest.raises(PoolingError, match="m >= 2"):
        barnard_rubin_df(1, [0.1], [0.2])


# --------------------------------------------------------------------------------------
# properties


def _random_inputs(seed, m=7, k=3, info=1.0):
    """m estimates of k parameters on different scales; r is about 1 / info."""
    rng = np.random.default_rng(seed)
    scale = np.array([1.0, 0.1, 3.0])[:k]
    q = rng.normal(size=(m, k)) * scale + np.array([2.0, -1.0, 0.5])[:k]
    a = rng.normal(size=(m, k, k)) * 0.3
    u = (a @ np.swapaxes(a, 1, 2) + 0.8 * np.eye(k)) * np.outer(scale, scale) * info
    return q, u


@pytest.mark.parametrize("seed", range(5))
def test_results_do_not_depend_on_the_order_of_imputations(seed):
    q, u = _random_inputs(seed)
    perm = np.random.default_rng(100 + seed).permutation(q.shape[0])
    a, b = pool(q, u, dfcom=30), pool(q[perm], u[perm], dfcom=30)
    for field in ("qbar", "ubar", "b", "t", "riv", "lambda_", "fmi", "df", "se"):
        np.testing.assert_allclose(getattr(a, field), getattr(b, field), rtol=1e-12)
    for fn in (
        lambda q, u: d1(q, u),
        lambda q, u: d1(q, u, dfcom=30),
        lambda q, u: d2(wald_statistics(q, u), q.shape[1]),
    ):
        x, y = fn(q, u), fn(q[perm], u[perm])
        np.testing.assert_allclose(
            [x.statistic, x.df2, x.p, x.riv], [y.statistic, y.df2, y.p, y.riv], rtol=1e-12
        )
    lr_own, lr_pooled = np.abs(q[:, 0]) * 10 + 5, np.abs(q[:, 0]) * 9 + 4
    x, y = d3(lr_own, lr_pooled, 2), d3(lr_own[perm], lr_pooled[perm], 2)
    np.testing.assert_allclose([x.statistic, x.df2, x.p], [y.statistic, y.df2, y.p], rtol=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_pooled_quantities_are_in_range(seed):
    q, u = _random_inputs(seed)
    for dfcom in (5.0, 40.0, np.inf):
        res = pool(q, u, dfcom=dfcom)
        assert np.all((res.lambda_ > 0) & (res.lambda_ < 1))
        assert np.all((res.fmi > 0) & (res.fmi < 1))
        assert np.all(res.df > 0) and np.all(res.df <= dfcom)
        np.testing.assert_allclose(res.riv, res.lambda_ / (1 - res.lambda_), rtol=1e-12)
        np.testing.assert_allclose(res.se, np.sqrt(np.diag(res.t)), rtol=1e-15)
        # mice's and mitml's form of the fmi is the same number
        np.testing.assert_allclose(
            res.fmi, (res.riv + 2 / (res.df + 3)) / (res.riv + 1), rtol=1e-12
        )
        table = res.table(alpha=0.1)
        half = stats.t.ppf(0.95, res.df) * res.se
        np.testing.assert_allclose(table["ci_high"] - table["estimate"], half, rtol=1e-12)
        np.testing.assert_allclose(table["estimate"] - table["ci_low"], half, rtol=1e-12)
    # the df grows towards Rubin's as the complete-data df grows
    dfs = [pool(q, u, dfcom=c).df for c in (10.0, 100.0, 1e4, np.inf)]
    assert all(np.all(a < b) for a, b in zip(dfs[:-1], dfs[1:], strict=True))


def test_pool_scalar_equals_pool_with_variances():
    q, u = _random_inputs(7)
    variances = np.einsum("lii->li", u)
    a = pool_scalar(q, variances, dfcom=20)
    for j in range(q.shape[1]):
        b = pool_scalar(q[:, j], variances[:, j], dfcom=20)
        c = pool(q, u, dfcom=20)
        for field in ("qbar", "riv", "lambda_", "fmi", "df", "se"):
            assert getattr(a, field)[j] == pytest.approx(getattr(b, field)[0], rel=1e-14)
            assert getattr(c, field)[j] == pytest.approx(getattr(b, field)[0], rel=1e-14)
    assert np.count_nonzero(a.b - np.diag(np.diag(a.b))) == 0


def test_d1_reduces_to_the_scalar_t_test():
    q, u = _random_inputs(8, m=5, k=1)
    scalar = pool(q, u)
    for dfcom in (np.inf, 25.0):  # t = k (m - 1) = 4: Rubin's / Barnard-Rubin df
        res = d1(q, u, dfcom=dfcom)
        tval = scalar.qbar[0] / scalar.se[0]
        assert res.statistic == pytest.approx(tval**2, rel=1e-12)
        assert res.riv == pytest.approx(scalar.riv[0], rel=1e-12)
        assert res.df2 == pytest.approx(pool(q, u, dfcom=dfcom).df[0], rel=1e-12)


def test_reiter_df_tends_to_the_li_df():
    q, u = _random_inputs(9, m=10, k=3, info=2.0)  # r ~ 0.6
    li = d1(q, u)
    assert 0.2 < li.riv < 1
    assert d1(q, u, dfcom=1e12).df2 == pytest.approx(li.df2, rel=1e-6)
    dfs = [d1(q, u, dfcom=c).df2 for c in (30.0, 100.0, 1000.0)]
    assert 4 < dfs[0] < dfs[1] < dfs[2] < li.df2


def test_reiter_df_outside_its_domain_warns():
    q, u = _random_inputs(9, m=10, k=3, info=0.05)  # r ~ 25: too much missing information
    with pytest.warns(MlimputeWarning, match="Reiter"):
        res = d1(q, u, dfcom=30)
    assert res.df2 == 4.0 and 0 < res.p < 1


def test_pooled_results_are_immutable():
    q, u = _random_inputs(10)
    res = pool(q, u)
    assert isinstance(res, PooledEstimates)
    with pytest.raises(ValueError):
        res.qbar[0] = 1.0
    with pytest.raises(AttributeError):
        res.m = 3  # type: ignore[misc]


def test_d2_and_d3_edge_cases():
    # D2 may be negative (then p = 1); tiny negative LR statistics are rounding
    res = d2([0.0, 9.0, -1e-12], k=3)
    assert res.statistic < 0 and res.p == 1.0
    with pytest.raises(PoolingError, match=">= 0"):
        d2([1.0, -0.5], k=1)
    # D3's r can be negative; ariv="positive" truncates it
    lr_own, lr_pooled = np.array([5.0, 6.0, 5.5]), np.array([5.4, 6.3, 5.9])
    assert d3(lr_own, lr_pooled, 1).riv < 0
    assert d3(lr_own, lr_pooled, 1, ariv="positive").riv == 0.0
    with pytest.raises(PoolingError, match="undefined"):
        d3([1.0, 1.0], [5.0, 5.0], 1)
    with pytest.raises(PoolingError, match="positive integer"):
        d2([1.0, 2.0], k=0)


def test_bad_input_names_the_parameter():
    q, u = _random_inputs(11, k=2)
    u[:, 1, 1] = 0.0
    u[:, 0, 1] = u[:, 1, 0] = 0.0
    with pytest.raises(PoolingError, match="'slope'"):
        pool(q, u, names=["icept", "slope"])
    with pytest.raises(PoolingError, match="shape"):
        pool(q, u[:, :1, :1])
    with pytest.raises(PoolingError, match="not finite"):
        pool(np.where(q > 0, np.nan, q), u)
    with pytest.raises(PoolingError, match="complete-data df"):
        pool(q, np.abs(u) + np.eye(2), dfcom=0)


def test_barnard_rubin_df_limits():
    # b = 0 gives the complete-data df; dfcom = inf gives Rubin's (m - 1) / lambda^2
    np.testing.assert_array_equal(barnard_rubin_df(5, [0.0, 0.0], [1.0, 1.0], 30), [30, 30])
    assert barnard_rubin_df(5, [0.0], [1.0])[0] == np.inf
    lam = 1.2 * 0.2 / 1.0
    assert barnard_rubin_df(5, [0.2], [1.0])[0] == pytest.approx(4 / lam**2, rel=1e-14)
