"""Count models (``poisson``, ``2l.poisson``, ``nb``, ``2l.nb``).

The contract test (``check_model``) runs over them in tests/models/test_contract.py.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
from numpy.polynomial.hermite_e import hermegauss
from scipy.special import gammaln

import mlimpute
from mlimpute.errors import SpecificationError
from mlimpute.models import counts
from mlimpute.models import poisson_step as pstep
from mlimpute.models.counts import (
    MultilevelNegativeBinomial,
    MultilevelPoisson,
    NegativeBinomial,
    Poisson,
)
from mlimpute.models.counts_kernels import (
    LOG_R_PRIOR_SD,
    _poisson_mode,
    cached_slope_precision,
    nb_loglik,
)
from mlimpute.models.poisson_step import SIGMA2_PRIOR_DF, SIGMA2_PRIOR_SCALE
from tests.conftest import array_model_data, batch_se, run_steps


def _grid_moments(logpost, g0, g1, f1):
    """Posterior means of the first coordinate and of ``f1`` of the second on a grid."""
    A, B = np.meshgrid(g0, g1, indexing="ij")
    lp = logpost(A, B)
    w = np.exp(lp - lp.max())
    w /= w.sum()
    return np.array([(w * A).sum(), (w * f1(B)).sum()])


# -- (1) exact posteriors of intercept-only single-level models, by quadrature ------------
def _poisson_exact(y):
    """Posterior means of (β₀, σ²) of y_i ~ Poisson(e^η_i), η_i ~ N(β₀, σ²): flat β₀,
    scaled-inverse-χ²(ν₀, s₀²) σ². Each p(y_i | β₀, σ²) by 80-point Gauss–Hermite, the
    posterior on a 201 × 201 grid of (β₀, log σ²)."""
    nodes, weights = hermegauss(80)
    weights = weights / weights.sum()
    vals, cnt = np.unique(y, return_counts=True)
    nu, s0 = SIGMA2_PRIOR_DF, SIGMA2_PRIOR_SCALE

    def logpost(b0, tau):
        eta = b0[..., None] + np.exp(tau / 2)[..., None] * nodes  # (..., K)
        ll = 0.0
        for v, c in zip(vals, cnt, strict=True):
            lik = np.exp(v * eta - np.exp(eta) - gammaln(v + 1)) @ weights
            ll = ll + c * np.log(lik)
        return ll - nu / 2 * tau - nu * s0 / (2 * np.exp(tau))  # prior on log σ² incl. Jacobian

    m = np.log(y.mean())
    return _grid_moments(
        logpost, np.linspace(m - 1.2, m + 1.2, 201), np.linspace(-16, 1.5, 351), np.exp
    )


def _nb_exact(y):
    """Posterior means of (β₀, r) of y_i ~ NB(r, mean e^β₀): flat β₀, log r ~ N(0, 2.5²)."""

    def logpost(b0, tau):
        ll = nb_loglik(y[None, None, :], b0[..., None], np.exp(tau)[..., None]).sum(-1)
        return ll - tau**2 / (2 * LOG_R_PRIOR_SD**2)

    m = np.log(y.mean())
    return _grid_moments(
        logpost, np.linspace(m - 1.0, m + 1.0, 201), np.linspace(-2.5, 4.5, 201), np.exp
    )


def _z_exact(model, data, exact, n_iter, seed=5):
    """|chain mean − exact| / MC SE (batch means), for β₀ and the second parameter."""
    draws = run_steps(model, data, n_iter, seed=seed, burn=0)[500:]
    names = model.param_names(data)
    cols = [0, names.index("var(Residual)" if "var(Residual)" in names else "r")]
    d = draws[:, cols]
    return np.abs((d.mean(0) - exact) / batch_se(d))


def test_poisson_matches_exact_posterior():
    """Chain means of β₀ and σ² within 4 MC SEs of the quadrature (overdispersed data)."""
    rng = np.random.default_rng(3)
    y = rng.poisson(np.exp(0.5 + 0.7 * rng.standard_normal(60)))
    data = array_model_data(np.ones((60, 1)), y, ["Intercept"])
    z = _z_exact(Poisson(), data, _poisson_exact(y.astype(float)), 6000)
    assert np.all(z < 4.0), z


def test_nb_matches_exact_posterior():
    """Chain means of β₀ and r within 4 MC SEs of the quadrature."""
    rng = np.random.default_rng(4)
    y = rng.poisson(rng.gamma(2.0, 3.0 / 2.0, size=80))  # NB(r = 2, mean 3)
    data = array_model_data(np.ones((80, 1)), y, ["Intercept"])
    z = _z_exact(NegativeBinomial(), data, _nb_exact(y.astype(float)), 5000)
    assert np.all(z < 4.0), z


def test_exact_check_rejects_a_wrong_beta_target(monkeypatch):
    """The same check fails when the target of the β step (Metropolis–Hastings with an
    IWLS proposal) is the NB likelihood at ψ + log r instead of ψ (the shift of the
    success log-odds ``ψ − log r`` left out); its acceptance rate is still traced."""
    rng = np.random.default_rng(4)
    y = rng.poisson(rng.gamma(2.0, 3.0 / 2.0, size=80))
    data = array_model_data(np.ones((80, 1)), y, ["Intercept"])
    exact = _nb_exact(y.astype(float))
    real = counts.nb_family

    def wrong(y, r):
        family = real(y, r)
        return lambda eta: family(eta + np.log(r))

    monkeypatch.setattr(counts, "nb_family", wrong)
    assert _z_exact(NegativeBinomial(), data, exact, 3000).max() > 8.0


def test_nb_beta_step_acceptance_is_traced_and_high():
    """``accept(beta)``: the running acceptance rate of the β step, in (0.7, 1] on the
    exact-posterior data (the IWLS proposal is close to the posterior for 80 rows)."""
    rng = np.random.default_rng(4)
    y = rng.poisson(rng.gamma(2.0, 3.0 / 2.0, size=80))
    data = array_model_data(np.ones((80, 1)), y, ["Intercept"])
    model = NegativeBinomial()
    names = model.param_names(data)
    assert names[-3:] == ["r", "accept(r)", "accept(beta)"]
    draws = run_steps(model, data, 500, seed=5, burn=0)
    assert 0.7 < draws[-1, -1] <= 1.0


def test_exact_check_rejects_poisson_without_metropolis_correction(monkeypatch):
    """The same check fails when every t proposal of η is accepted (no MH correction):
    seen z ≈ 9 for β₀ over 6000 steps (the non-centred moves on log σ² keep σ² close to
    its posterior: z ≈ 0.6; with the local move alone z ≈ 24 for σ²)."""
    rng = np.random.default_rng(3)
    y = rng.poisson(np.exp(0.5 + 0.7 * rng.standard_normal(60)))
    data = array_model_data(np.ones((60, 1)), y, ["Intercept"])
    exact = _poisson_exact(y.astype(float))

    def always(rng, eta, y, mean, var, log_y=None):  # the kernel's t₄ proposal, always accepted
        v = np.broadcast_to(np.asarray(var, dtype=float), mean.shape)
        mode, s = _poisson_mode(np.asarray(y, dtype=float), mean, v)
        return mode + s * rng.standard_t(4.0, size=mean.shape), np.ones(mean.shape, bool)

    monkeypatch.setattr(pstep, "poisson_eta_step", always)
    assert _z_exact(Poisson(), data, exact, 6000).max() > 6.0


def test_poisson_residual_variance_small_on_equidispersed_counts():
    """On exactly Poisson counts (n = 200, log μ = 1 + 0.4x) the likelihood is flat for
    σ² below about U = 0.03–0.05, so the posterior of σ² is the prior cut off there: for
    scaled-inverse-χ²(1, s₀²) its mean is 0.0014–0.0018 at s₀² = 1e-4 (the default) and
    0.011–0.015 at the former s₀² = 0.01 (which gave 0.011 here, and ≈ μ²σ² extra
    spread to every imputation). Bound 0.005; the chain mean over 1800 steps is seen at
    0.0014 with a batch-means MC SE of 0.0004 (9 SEs below the bound)."""
    rng = np.random.default_rng(7)
    n = 200
    x = rng.standard_normal(n)
    y = rng.poisson(np.exp(1.0 + 0.4 * x))
    data = array_model_data(np.c_[np.ones(n), x], y, ["Intercept", "x"])
    model = Poisson()
    draws = run_steps(model, data, 2000, seed=1, burn=200)
    s2 = draws[:, model.param_names(data).index("var(Residual)")]
    assert s2.mean() < 0.005, (s2.mean(), batch_se(s2[:, None]))


# -- (2) multilevel recovery ---------------------------------------------------------------
def _multilevel(kind, seed=0):
    """J = 50 × 12, β = (0.5, 0.4), random-intercept SD 0.5; NB with r = 2."""
    rng = np.random.default_rng(seed)
    J, n = 50, 12
    g = np.repeat(np.arange(J), n)
    x = rng.standard_normal(J * n)
    psi = 0.5 + 0.4 * x + rng.normal(0.0, 0.5, J)[g]
    if kind == "poisson":
        y = rng.poisson(np.exp(psi))
    else:
        y = rng.poisson(rng.gamma(2.0, np.exp(psi) / 2.0))
    X = np.column_stack([np.ones(J * n), x])
    return array_model_data(X, y, ["Intercept", "x"], g, J, Z=np.ones((J * n, 1)))


@pytest.mark.parametrize(
    ("model", "kind", "truth"),
    [
        (MultilevelPoisson(), "poisson", {"Intercept": 0.5, "x": 0.4, "var(Intercept|g)": 0.5}),
        (
            MultilevelNegativeBinomial(),
            "nb",
            {"Intercept": 0.5, "x": 0.4, "var(Intercept|g)": 0.5, "r": 2.0},
        ),
    ],
)
def test_multilevel_recovery(model, kind, truth):
    """Each posterior mean within 3 posterior SDs of the truth (a 99.7 % band for the
    posterior's own uncertainty; the MC error of 1,000 draws with IACT ≤ 20 is < 0.15 SD).
    The random-intercept variance is compared as an SD."""
    data = _multilevel(kind)
    names = model.param_names(data)
    draws = run_steps(model, data, 1200, seed=2, burn=0)[200:]
    k = names.index("var(Intercept|g)")
    draws[:, k] = np.sqrt(draws[:, k])
    for name, value in truth.items():
        col = draws[:, names.index(name)]
        assert abs(col.mean() - value) < 3 * col.std(), (name, col.mean(), col.std())
    accept = draws[:, names.index("accept(eta)" if kind == "poisson" else "accept(r)")]
    assert 0.2 < accept[-1] <= 1.0


def test_check_refuses_non_counts():
    X = np.ones((4, 1))
    for bad in ([0, 1, 2.5, 3], [0, -1, 2, 3]):
        data = array_model_data(X, np.array(bad, dtype=float), ["Intercept"], variable="visits")
        for model in (Poisson(), NegativeBinomial()):
            with pytest.raises(SpecificationError, match="'visits'"):
                model.check(data)


# -- (3) through the public API ------------------------------------------------------------
def _count_frame(seed=7, J=50, n=12):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(J), n)
    x = rng.standard_normal(J * n)
    visits = rng.poisson(np.exp(0.5 + 0.4 * x + rng.normal(0, 0.5, J)[g])).astype("int64")
    full = pd.DataFrame({"g": g, "x": x, "visits": visits})
    miss = rng.random(J * n) < 1 / (1 + np.exp(1.2 - 0.8 * x))  # MAR given x, ~25 %
    return full, miss


@pytest.mark.parametrize("dtype", ["float64", "Int64"])
def test_api_2l_poisson_imputes_counts_and_pooled_glmm(dtype):
    """Non-negative integer imputations in the column's dtype, observed values kept; the
    pooled Poisson GLMM within 2 pooled SEs of the complete-data fit."""
    full, miss = _count_frame()
    df = full.astype({"visits": dtype})
    df.loc[miss, "visits"] = np.nan if dtype == "float64" else pd.NA
    before = df.copy()
    imp = df.mi.impute(
        {"visits": "~ x + (1 | g)"}, method={"visits": "2l.poisson"}, m=3, iterations=20, rng=1
    )
    pd.testing.assert_frame_equal(df, before)
    for k in range(1, imp.m + 1):
        c = imp.complete(k)["visits"]
        assert c.dtype == df["visits"].dtype and c.notna().all()
        v = c.to_numpy(dtype=float)
        assert np.all(v >= 0) and np.all(v == np.round(v))
        assert (c[~miss] == df.loc[~miss, "visits"]).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pooled = imp.fit("visits ~ x + (1 | g)", family="poisson").summary()
        cd = mlimpute.from_completed([full, full]).fit("visits ~ x + (1 | g)", family="poisson")
    diff = (pooled["estimate"] - cd.summary()["estimate"]).abs()
    assert (diff < 2 * pooled["se"]).all(), diff / pooled["se"]


def test_api_nb_and_single_level_on_int64_nullable():
    """``2l.nb`` and ``poisson`` through ``impute`` on an Int64 column."""
    full, miss = _count_frame(seed=8, J=30, n=10)
    df = full.astype({"visits": "Int64"})
    df.loc[miss, "visits"] = pd.NA
    for method, formula in (("2l.nb", "~ x + (1 | g)"), ("poisson", "~ x"), ("nb", "~ x")):
        imp = df.mi.impute({"visits": formula}, method={"visits": method}, m=2, iterations=5, rng=2)
        c = imp.complete(1)["visits"]
        assert c.dtype == pd.Int64Dtype() and c.notna().all() and (c >= 0).all()
        assert (c[~miss] == df.loc[~miss, "visits"]).all()


def test_walk_scale_is_kept_only_for_the_same_counts():
    """The non-centred β walk's factor (from ``y + ½``) and ``X'y`` are kept in
    ``data.cache`` and reused for equal counts only: data sharing the cache with other
    counts (as the compatible sampler's completed columns do) get their own, bit for bit
    the ones computed afresh."""
    rng = np.random.default_rng(8)
    X = np.c_[np.ones(50), rng.standard_normal(50)]
    y = rng.poisson(2.0, 50).astype(float)
    data = array_model_data(X, y, ["Intercept", "x"])
    prec = cached_slope_precision(data)
    first = pstep._beta_walk(data, prec)
    assert pstep._beta_walk(data, prec) is first
    other = dataclasses.replace(data, y_obs=y + rng.poisson(1.0, 50))
    assert other.cache is data.cache
    theirs = pstep._beta_walk(other, prec)
    fresh = pstep._beta_walk(array_model_data(X, other.y_obs, ["Intercept", "x"]), prec)
    for a, b, c in zip(theirs, fresh, first, strict=True):
        assert np.array_equal(a, b) and not np.array_equal(a, c)
    np.testing.assert_allclose(theirs[1], X.T @ other.y_obs, rtol=1e-12)
    again = pstep._beta_walk(data, prec)
    assert all(np.array_equal(a, b) for a, b in zip(again, first, strict=True))


def test_noncentred_ratio_sums_the_active_rows_despite_overflow_elsewhere():
    """The non-centred moves' log-likelihood change by dot products (``e^η`` set to 0
    outside the active rows) equals the row-wise masked sum, also when a move overflows
    ``e^δ`` on a row outside them (0·∞: the masked sum is taken instead)."""
    rng = np.random.default_rng(4)
    y = rng.poisson(2.0, 200).astype(float)
    active = rng.random(200) < 0.7
    y[~active] = 0.0
    eta = rng.normal(0.5, 0.5, 200)
    mu = np.where(active, np.exp(eta), 0.0)
    overflow = rng.normal(0.0, 0.1, 200)
    overflow[np.flatnonzero(~active)[0]] = 800.0
    for d in (rng.normal(0.0, 0.1, 200), overflow):
        with np.errstate(over="ignore", invalid="ignore"):
            got = pstep._log_ratio(y, mu, d, np.expm1(d), float(y @ d), active)
            ll, _ = pstep._shift(y, np.exp(eta), d, active)
        assert np.isfinite(got)
        np.testing.assert_allclose(got, float(ll.sum()), rtol=1e-12)


def test_poisson_step_reuse_of_x_beta_gives_the_same_chain():
    """Starting a step from the last step's ``x'β`` (kept in the state) changes no draw:
    the chain is bit-identical to one that drops it at every step."""
    rng = np.random.default_rng(6)
    X = np.c_[np.ones(120), rng.standard_normal(120)]
    y = rng.poisson(np.exp(0.3 + 0.5 * X[:, 1])).astype(float)
    data = array_model_data(X, y, ["Intercept", "x"])
    model = Poisson()
    a = model.init(np.random.default_rng(1), data)
    b = a
    ra, rb = np.random.default_rng(2), np.random.default_rng(2)
    reused = 0
    for _ in range(80):
        reused += a.mean is not None and a.mean[0] is a.core.beta
        a = model.step(ra, a, data)
        b = model.step(rb, dataclasses.replace(b, mean=None), data)
        assert np.array_equal(a.eta, b.eta)
        assert np.array_equal(model.param_vector(a, data), model.param_vector(b, data))
    assert reused > 10
