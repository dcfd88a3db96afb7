"""2l.norm: checks that fail when a full conditional is wrong."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from mlimpute.datasets import classroom
from mlimpute.models import get_model
from tests.conftest import batch_se, model_data, run_steps


def _grid_posterior(df, nu=2.0):
    """Exact posterior means of (β, D0, σ²) for y ~ x + (1|g) by 2-D quadrature.

    With a flat prior on β, integrating β out leaves the REML likelihood; the priors are
    p(σ²) ∝ 1/σ² and half-t(ν, A) on sqrt(D0) with A = sd(y) (the model's default).
    """
    y = df["y"].to_numpy()
    X = np.c_[np.ones(len(df)), df["x"].to_numpy()]
    g = pd.factorize(df["g"])[0]
    nj = np.bincount(g)
    s = np.stack([np.bincount(g, X[:, k]) for k in range(2)], 1)  # (J, p)
    t = np.bincount(g, y)
    XtX, Xty, yty = X.T @ X, X.T @ y, y @ y
    A = np.std(y)
    d0 = np.exp(np.linspace(np.log(1e-4), np.log(30.0), 500))[:, None, None]
    s2 = np.exp(np.linspace(np.log(0.3), np.log(4.0), 300))[None, :, None]
    w = d0 / (s2 + nj * d0)  # (G1, G2, J)
    M = XtX - np.einsum("abj,jp,jq->abpq", w, s, s)
    h = Xty - np.einsum("abj,jp,j->abp", w, s, t)
    q = yty - np.einsum("abj,j->ab", w, t**2)
    bhat = np.linalg.solve(M, h[..., None])[..., 0]
    rss = (q - np.einsum("abp,abp->ab", bhat, h)) / s2[..., 0]
    logdet_v = ((nj - 1) * np.log(s2) + np.log(s2 + nj * d0)).sum(-1)
    logdet_m = np.linalg.slogdet(M / s2[..., None])[1]
    ll = -0.5 * (logdet_v + logdet_m + rss)
    tau = np.sqrt(d0[..., 0])
    log_prior = -(nu + 1) / 2 * np.log1p(tau**2 / (nu * A**2)) - np.log(tau)  # p(D0)
    log_post = ll + log_prior - np.log(s2[..., 0]) + np.log(d0[..., 0]) + np.log(s2[..., 0])
    wgt = np.exp(log_post - log_post.max())
    wgt /= wgt.sum()
    assert wgt[0].sum() + wgt[-1].sum() + wgt[:, 0].sum() + wgt[:, -1].sum() < 1e-3
    return {
        "Intercept": np.sum(wgt * bhat[..., 0]),
        "x": np.sum(wgt * bhat[..., 1]),
        "var(Intercept|g)": np.sum(wgt * d0[..., 0]),
        "var(Residual)": np.sum(wgt * s2[..., 0]),
    }


def _small_icc_data(seed=3, J=15, n=10):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(J), n)
    x = rng.normal(size=J * n)
    y = 1 + 0.5 * x + rng.normal(0, np.sqrt(0.15), J)[g] + rng.normal(size=J * n)
    return pd.DataFrame({"g": g, "x": x, "y": y})


def test_posterior_means_match_exact_quadrature():
    df = _small_icc_data()
    exact = _grid_posterior(df)
    data = model_data(df, "~ x + (1 | g)", "y")
    model = get_model("2l.norm").factory()
    draws = run_steps(model, data, 8000, seed=11)
    names = model.param_names(data)
    mean, se = draws.mean(0), batch_se(draws)
    for k, name in enumerate(names):
        # 4 Monte Carlo SEs (batch means): a false alarm has probability < 1e-4 per
        # parameter; a wrong full conditional (e.g. Ψ's df off by one: ~1/J = 7 % of D0)
        # moves D0's mean by > 10 SEs here.
        assert abs(mean[k] - exact[name]) < 4 * se[k], (name, mean[k], exact[name], se[k])


def test_posterior_agrees_with_reml_random_slopes():
    """Random slopes: posterior means of β within 0.25 posterior SD of REML (n = 600)."""
    d = classroom(3, rng=5, n_classes=60).complete
    data = model_data(d, "~ skill * gender + relation + (1 + gender | class)", "grade")
    model = get_model("2l.norm").factory()
    draws = run_steps(model, data, 2000, seed=2)
    names = model.param_names(data)
    fit = smf.mixedlm(
        "grade ~ skill * gender + relation", d, groups=d["class"], re_formula="~gender"
    ).fit(reml=True)
    # with a flat prior the marginal posterior of β is centred at the GLS estimate given the
    # variance components; variance-component uncertainty moves it by ≪ its SD.
    for term in ["Intercept", "skill", "gender", "skill:gender", "relation"]:
        k = names.index(term)
        assert abs(draws[:, k].mean() - fit.fe_params[term]) < 0.25 * draws[:, k].std(), term
    # residual variance: posterior SD ≈ 0.17 at n = 1200; posterior mean within 2 SD
    k = names.index("var(Residual)")
    assert abs(draws[:, k].mean() - fit.scale) < 2 * draws[:, k].std()
    # D0: skewed posterior; median within one posterior SD of REML
    k = names.index("var(Intercept|class)")
    assert abs(np.median(draws[:, k]) - fit.cov_re.iloc[0, 0]) < draws[:, k].std()


def test_near_zero_variance_mixes_and_stays_finite():
    """A true slope variance of 0: draws stay finite and positive, the chain keeps moving."""
    rng = np.random.default_rng(4)
    J, n = 30, 8
    g = np.repeat(np.arange(J), n)
    x = rng.normal(size=J * n)
    y = x + rng.normal(0, 1, J)[g] + rng.normal(size=J * n)
    df = pd.DataFrame({"g": g, "x": x, "y": y})
    data = model_data(df, "~ x + (1 + x | g)", "y")
    model = get_model("2l.norm").factory()
    draws = run_steps(model, data, 1500, seed=3)
    assert np.all(np.isfinite(draws))
    k = model.param_names(data).index("var(x|g)")
    assert np.all(draws[:, k] > 0)
    ac = np.corrcoef(draws[:-1, k], draws[1:, k])[0, 1]
    assert ac < 0.9  # the parameter expansion keeps a near-zero variance moving


def test_scale_invariance():
    """Priors scale with the data: y·1e6 gives the same imputations ·1e6."""
    df = _small_icc_data(seed=5)
    df.loc[::4, "y"] = np.nan
    big = df.assign(y=df["y"] * 1e6, x=df["x"] * 1e-6)
    a = df.mi.impute({"y": "~ x + (1 + x | g)"}, m=2, iterations=5, rng=9)
    b = big.mi.impute({"y": "~ x + (1 + x | g)"}, m=2, iterations=5, rng=9)
    np.testing.assert_allclose(b.dataset["y"].values, a.dataset["y"].values * 1e6, rtol=1e-6)


@pytest.mark.parametrize("prior", ["half-t", "iw"])
def test_both_priors_run(prior):
    d = classroom(3, rng=1).complete
    data = model_data(d, "~ gender + (1 + gender | class)", "grade")
    draws = run_steps(get_model("2l.norm").factory(prior=prior), data, 50)
    assert np.all(np.isfinite(draws))


def test_closed_form_marginal_matches_dense():
    """log p(y | β, σ², Ψ) (b integrated out) against dense per-cluster normal densities."""
    from scipy import stats

    from mlimpute.models.ml_norm import _log_marginal

    rng = np.random.default_rng(0)
    J, n, s2 = 6, 5, 1.7
    Z = np.stack([np.ones(J * n), rng.normal(size=J * n)], 1)
    r = rng.normal(size=J * n) * 2
    g = np.repeat(np.arange(J), n)
    ZtZ = np.stack([(Z[g == j].T @ Z[g == j]) for j in range(J)]) / s2
    c = np.stack([Z[g == j].T @ r[g == j] for j in range(J)]) / s2

    def dense(psi):
        return sum(
            stats.multivariate_normal(
                np.zeros(n), s2 * np.eye(n) + Z[g == j] @ psi @ Z[g == j].T
            ).logpdf(r[g == j])
            for j in range(J)
        )

    psi_a, psi_b = np.array([[0.7, 0.2], [0.2, 0.4]]), np.array([[2.0, -0.5], [-0.5, 0.3]])
    # only differences in Ψ matter (the MH ratio); the Ψ-free constant cancels
    for fn_psi in (psi_a, psi_b):
        assert np.isfinite(_log_marginal(fn_psi, ZtZ, c))
    np.testing.assert_allclose(
        _log_marginal(psi_a, ZtZ, c) - _log_marginal(psi_b, ZtZ, c),
        dense(psi_a) - dense(psi_b),
        rtol=1e-10,
    )
    # the general (Cholesky) path agrees with the closed form: embed in a 3×3 problem
    # with a third, independent effect whose data contribution is zero
    Z3 = np.concatenate([ZtZ, np.zeros((J, 2, 1))], 2)
    Z3 = np.concatenate([Z3, np.zeros((J, 1, 3))], 1)
    c3 = np.concatenate([c, np.zeros((J, 1))], 1)
    emb = lambda p: np.block([[p, np.zeros((2, 1))], [np.zeros((1, 2)), np.ones((1, 1))]])  # noqa: E731
    np.testing.assert_allclose(
        _log_marginal(emb(psi_a), Z3, c3) - _log_marginal(emb(psi_b), Z3, c3),
        dense(psi_a) - dense(psi_b),
        rtol=1e-10,
    )


def test_three_random_effects_general_path():
    """q = 3 (general MH path): finite draws and β centred on REML."""
    d = classroom(3, rng=8, n_classes=40).complete
    data = model_data(d, "~ skill + gender + relation + (1 + gender + relation | class)", "grade")
    model = get_model("2l.norm").factory()
    draws = run_steps(model, data, 600, seed=4, burn=100)
    assert np.all(np.isfinite(draws))
    fit = smf.ols("grade ~ skill + gender + relation", d).fit()
    names = model.param_names(data)
    for term in ("skill", "gender", "relation"):
        k = names.index(term)
        # OLS and the mixed-model estimate differ by < 1 SE here; 3 posterior SDs is loose
        # but catches a broken sampler (wrong sign, exploding draws)
        assert abs(draws[:, k].mean() - fit.params[term]) < 3 * draws[:, k].std()


@pytest.mark.slow
def test_collapsed_mh_and_plain_gibbs_target_the_same_random_slope_posterior():
    """The collapsed MH step on Ψ (step 0) leaves the posterior unchanged: posterior means of
    D0, D01, D1 and σ² with and without it agree (experiment-3 data, a correlated 2×2 Ψ).

    This is the check behind the comparison with pan and jomo (``benchmarks/
    compare_pan_jomo.py``): the gap there is the prior, not the sampler. Tolerance: 4.5
    standard errors of the difference (batch means of both chains; the two agree within
    1 SE here). With the Jacobian of step 0 off by one power (L_11², L_22 for L_11³, L_22²)
    D1's mean fell from 0.35 to 0.23, about 7 standard errors of the difference.
    """
    d = classroom(3, rng=1).incomplete.dropna()
    data = model_data(d, "~ skill * gender + relation + (1 + gender | class)", "grade")
    runs = []
    for kw in ({}, {"mh_steps": 0}):
        model = get_model("2l.norm").factory(**kw)
        draws = run_steps(model, data, 6000, seed=3, burn=200)
        runs.append((draws.mean(0), batch_se(draws)))
    names = model.param_names(data)
    for name in ("var(Intercept|class)", "cov(Intercept,gender|class)", "var(gender|class)"):
        k = names.index(name)
        (m1, s1), (m2, s2) = runs
        assert abs(m1[k] - m2[k]) < 4.5 * np.hypot(s1[k], s2[k]), (name, m1[k], m2[k])


def test_inverse_wishart_option_scales_with_the_data():
    """``prior="iw"`` takes its scale from the data (sd(y)/sd(z)·prior_scale), unlike pan's
    identity in the data's units: y·1e3 gives the same imputations ·1e3. An identity scale
    would change the imputations (its pull is 1e6 times weaker after rescaling)."""
    df = _small_icc_data(seed=6)
    df.loc[::3, "y"] = np.nan
    big = df.assign(y=df["y"] * 1e3)
    method = {"y": ("2l.norm", {"prior": "iw", "prior_scale": 0.2})}
    a = df.mi.impute({"y": "~ x + (1 + x | g)"}, m=2, iterations=5, rng=8, method=method)
    b = big.mi.impute({"y": "~ x + (1 + x | g)"}, m=2, iterations=5, rng=8, method=method)
    np.testing.assert_allclose(b.dataset["y"].values, a.dataset["y"].values * 1e3, rtol=1e-6)
