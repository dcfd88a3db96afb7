"""The compatible-imputation kernels against numerical integration of their targets.

Closed forms (level-1, level-2, latent means) are compared with trapezoid quadrature of the
unnormalised full conditional on a fine grid; the stochastic kernels (probit augmentation,
random-walk MH) run many independent chains and compare with quadrature moments within a
Monte Carlo error estimated from those chains.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import log_ndtr

from mlimpute.compatible.conditionals import (
    LinearTerm,
    affine_coefficients,
    conditional_moments,
    draw_probit_step,
    normal_conditional,
)
from mlimpute.compatible.level2 import ClusterTerm, level2_moments
from mlimpute.compatible.lmean import latent_mean_moments
from mlimpute.compatible.metropolis import (
    ProposalScale,
    normal_log_target,
    probit_log_target,
    rw_step,
)
from mlimpute.errors import DataError
from mlimpute.models.segments import Segments

GRID = np.linspace(-40.0, 40.0, 400_001)  # spacing 2e-4; every target below has SD > 0.05


def quad_moments(log_density: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of densities given on GRID (rows: targets; columns: grid)."""
    w = np.exp(log_density - log_density.max(axis=-1, keepdims=True))
    mass = np.trapezoid(w, GRID, axis=-1)
    mean = np.trapezoid(w * GRID, GRID, axis=-1) / mass
    var = np.trapezoid(w * (GRID - mean[..., None]) ** 2, GRID, axis=-1) / mass
    return mean, var


def log_normal(v, mean, var):
    return -0.5 * (v - mean) ** 2 / var - 0.5 * np.log(var)


@pytest.fixture
def rows():
    """Five rows of a random-slope model with an interaction x·v: c = β_x + β_xv v + b_1j."""
    rng = np.random.default_rng(11)
    n = 5
    v = rng.standard_normal(n)
    b1 = rng.normal(0, 0.5, n)
    u0 = rng.normal(0, 1, n)
    eta = lambda x: 0.3 - 0.5 * v + (0.8 + 0.6 * v + b1) * x + u0  # noqa: E731
    a, c = affine_coefficients(eta, n)
    return dict(
        mu_x=rng.normal(0, 1, n), s2x=0.7, y=rng.normal(1, 2, n), a=a, c=c, s2y=0.4, v=v, b1=b1
    )


def test_affine_coefficients_recover_slope_and_interaction(rows):
    # c must be β_x + β_xv·v + b_1j exactly
    np.testing.assert_allclose(rows["c"], 0.8 + 0.6 * rows["v"] + rows["b1"], rtol=1e-12)


def test_level1_closed_form_matches_quadrature(rows):
    r = rows
    mean, var = normal_conditional(r["mu_x"], r["s2x"], r["y"], r["a"], r["c"], r["s2y"])
    x = GRID[None, :]
    logp = log_normal(x, r["mu_x"][:, None], r["s2x"]) + log_normal(
        r["y"][:, None], r["a"][:, None] + r["c"][:, None] * x, r["s2y"]
    )
    qm, qv = quad_moments(logp)
    np.testing.assert_allclose(mean, qm, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(var, qv, rtol=1e-8)
    # dropping the analysis likelihood (x's own model alone) is far off: the check can fail
    own_mean, own_var = conditional_moments(r["mu_x"], r["s2x"])
    assert np.max(np.abs(own_mean - qm)) > 0.5
    assert np.max(np.abs(own_var - qv) / qv) > 0.5


def test_missing_outcome_drops_the_analysis_term(rows):
    r = rows
    obs = np.array([True, False, True, False, True])
    mean, var = normal_conditional(r["mu_x"], r["s2x"], r["y"], r["a"], r["c"], r["s2y"], obs)
    np.testing.assert_allclose(mean[~obs], r["mu_x"][~obs])
    np.testing.assert_allclose(var[~obs], r["s2x"])
    full = normal_conditional(r["mu_x"], r["s2x"], r["y"], r["a"], r["c"], r["s2y"])
    np.testing.assert_allclose(mean[obs], full[0][obs])


def test_several_terms_match_quadrature(rows):
    # x predicts y (analysis) and another predictor u earlier in the order: two terms
    r = rows
    rng = np.random.default_rng(2)
    u, a2, c2 = rng.normal(0, 1, 5), rng.normal(0, 1, 5), rng.normal(0, 1, 5)
    terms = [LinearTerm(r["y"], r["a"], r["c"], r["s2y"]), LinearTerm(u, a2, c2, 1.3)]
    mean, var = conditional_moments(r["mu_x"], r["s2x"], terms)
    x = GRID[None, :]
    logp = (
        log_normal(x, r["mu_x"][:, None], r["s2x"])
        + log_normal(r["y"][:, None], r["a"][:, None] + r["c"][:, None] * x, r["s2y"])
        + log_normal(u[:, None], a2[:, None] + c2[:, None] * x, 1.3)
    )
    qm, qv = quad_moments(logp)
    np.testing.assert_allclose(mean, qm, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(var, qv, rtol=1e-8)


def test_nonpositive_variance_is_an_error(rows):
    with pytest.raises(DataError, match="not positive"):
        normal_conditional(rows["mu_x"], 0.0, rows["y"], rows["a"], rows["c"], 1.0)


def chain_se(per_chain: np.ndarray) -> float:
    """Monte Carlo SE of a grand mean over independent chains: the chains' own averages
    are i.i.d., so SE = sd(per-chain averages)/√K whatever the within-chain autocorrelation
    (batch means with the chains as batches). The implied effective sample size is
    var(draws)/SE²."""
    return float(per_chain.std(ddof=1) / np.sqrt(per_chain.size))


def test_probit_augmentation_targets_the_exact_conditional():
    # stationary law of x: N(x; μ, σ²) Φ((2y − 1)(a + c x)), integrated on the grid
    rng = np.random.default_rng(5)
    mu = np.array([0.0, 1.0, -0.5, 0.3])
    a, c = np.array([0.5, -1.0, 0.2, 0.0]), np.array([2.0, 1.5, -3.0, 0.7])
    y = np.array([1, 0, 1, 1])
    s2x = 1.0
    logp = log_normal(GRID[None, :], mu[:, None], s2x) + log_ndtr(
        np.where(y == 1, 1, -1)[:, None] * (a[:, None] + c[:, None] * GRID)
    )
    qm, qv = quad_moments(logp)
    K, T, burn = 2000, 60, 40
    rep = lambda v: np.repeat(v, K)  # noqa: E731
    x = rep(mu).astype(float)
    draws = np.empty((T, 4 * K))
    for t in range(burn + T):
        x, _ = draw_probit_step(rng, x, rep(mu), s2x, rep(y), rep(a), rep(c))
        if t >= burn:
            draws[t - burn] = x
    draws = draws.reshape(T, 4, K)
    for k in range(4):
        per_chain = draws[:, k].mean(axis=0)
        per_chain2 = ((draws[:, k] - qm[k]) ** 2).mean(axis=0)
        # 4.5 SE: 8 comparisons, a false alarm has probability < 1e-4
        assert abs(per_chain.mean() - qm[k]) < 4.5 * chain_se(per_chain)
        assert abs(per_chain2.mean() - qv[k]) < 4.5 * chain_se(per_chain2)
    # the data-free conditional is clearly different for these rows
    assert np.max(np.abs(qm - mu)) > 0.3
    # the MH kernel on the probit likelihood (no latent) targets the same law
    log_target = probit_log_target(rep(mu), s2x, rep(y), lambda v: rep(a) + rep(c) * v)
    xs, scale, rates = rep(mu).astype(float), ProposalScale(), []
    draws = np.empty((T, 4 * K))
    for t in range(200 + T):
        xs, scale, rate, _ = rw_step(rng, xs, log_target, scale, 1.0, adapt=t < 200)
        if t >= 200:
            draws[t - 200] = xs
            rates.append(rate)
    assert 0.2 < np.mean(rates) < 0.7
    mh = draws.reshape(T, 4, K)
    for k in range(4):
        per_chain = mh[:, k].mean(axis=0)
        assert abs(per_chain.mean() - qm[k]) < 4.5 * chain_se(per_chain)


def test_mh_quadratic_effect_matches_quadrature():
    # y ~ N(a + b x + d x², σ²): the conditional of x is not normal (quartic log density;
    # bimodal for rows 0-2)
    rng = np.random.default_rng(7)
    mu = np.array([0.0, 0.5, -1.0, 1.0])
    s2x, s2y = 1.0, 0.5
    a, b, d = np.array([0.0, 1.0, -0.5, 0.2]), 0.5, np.array([0.8, -0.6, 1.0, 0.4])
    y = np.array([1.5, -0.5, 2.0, 0.0])
    x = GRID[None, :]
    logp = log_normal(x, mu[:, None], s2x) + log_normal(
        y[:, None], a[:, None] + b * x + d[:, None] * x**2, s2y
    )
    qm, qv = quad_moments(logp)
    K, warm, T = 2000, 300, 200
    rep = lambda v: np.repeat(v, K)  # noqa: E731
    A, D, Y, M = rep(a), rep(d), rep(y), rep(mu)
    log_target = normal_log_target(M, s2x, Y, lambda v: A + b * v + D * v * v, s2y)
    xs, scale = M.copy(), ProposalScale()
    rates, draws = [], np.empty((T, 4 * K))
    for t in range(warm + T):
        if t == warm:
            frozen = scale.log_scale
        xs, scale, rate, _ = rw_step(rng, xs, log_target, scale, np.sqrt(s2x), adapt=t < warm)
        if t >= warm:
            draws[t - warm] = xs
            rates.append(rate)
    # x's own model alone would be far off (rows 2, 3): the comparison below can fail
    assert np.max(np.abs(qm - mu)) > 0.3
    assert scale.n_adapted == warm and scale.log_scale == frozen  # no change after warm-up
    rate = float(np.mean(rates))
    assert 0.2 < rate < 0.7, rate
    draws = draws.reshape(T, 4, K)
    for k in range(4):
        per_chain = draws[:, k].mean(axis=0)
        per_chain2 = ((draws[:, k] - qm[k]) ** 2).mean(axis=0)
        ess = draws[:, k].var() / chain_se(per_chain) ** 2
        # these targets are bimodal (x² = …): the walk hops between the modes, an integrated
        # autocorrelation time of ~30 steps, far below the 300 warm-up steps
        assert ess > 0.01 * K * T
        # 4.5 SE over 8 comparisons: a false alarm has probability < 1e-4
        assert abs(per_chain.mean() - qm[k]) < 4.5 * chain_se(per_chain)
        assert abs(per_chain2.mean() - qv[k]) < 4.5 * chain_se(per_chain2)


def test_mh_adaptation_moves_toward_target_rate():
    rng = np.random.default_rng(0)
    narrow = lambda v: -0.5 * v**2 / 0.01  # noqa: E731  (SD 0.1 against a base scale 1)
    x, sc = np.zeros(1000), ProposalScale()
    for _ in range(300):
        x, sc, rate, _ = rw_step(rng, x, narrow, sc, 1.0, adapt=True)
    assert sc.scale < 0.5  # shrunk from 2.4 toward ~0.25
    assert abs(rate - 0.44) < 0.08


@pytest.fixture
def clusters():
    """Three clusters (sizes 1, 3, 4) with a cross-level interaction c_ij = γ_w + γ_wx x_ij."""
    rng = np.random.default_rng(3)
    codes = np.array([0, 1, 1, 1, 2, 2, 2, 2])
    seg = Segments.from_codes(codes, 3)
    xv = rng.standard_normal(8)
    c = 0.7 - 0.9 * xv
    a = rng.standard_normal(8)
    y = rng.normal(0, 2, 8)
    active = np.array([True, True, False, True, True, True, True, False])
    return dict(
        seg=seg,
        codes=codes,
        c=c,
        a=a,
        y=y,
        active=active,
        mu=np.array([0.2, -1, 1]),
        s2w=0.8,
        s2y=0.6,
    )


def level2_quadrature(k, extra):
    codes = k["codes"]
    w = GRID[None, :]
    logp = log_normal(w, k["mu"][:, None], k["s2w"])
    for j in range(3):  # three clusters in the test's reference computation only
        rows = np.flatnonzero((codes == j) & k["active"])
        for i in rows:
            logp[j] += log_normal(k["y"][i], k["a"][i] + k["c"][i] * GRID, k["s2y"])
    return logp + extra


def test_level2_closed_form_matches_quadrature(clusters):
    k = clusters
    term = LinearTerm(k["y"], k["a"], k["c"], k["s2y"], k["active"])
    # w_j also predicts the random effects (intercept, slope) of a level-1 model
    b = np.array([[0.5, -0.2], [1.0, 0.3], [-0.4, 0.1]])
    m0 = np.array([[0.1, 0.0], [0.0, 0.1], [0.2, -0.1]])
    dvec = np.array([0.6, -0.3])
    psi = np.array([[0.9, 0.2], [0.2, 0.3]])
    mean, var = level2_moments(k["seg"], k["mu"], k["s2w"], [term], [ClusterTerm(b, m0, dvec, psi)])
    pinv = np.linalg.inv(psi)
    resid = b[:, None, :] - m0[:, None, :] - GRID[None, :, None] * dvec
    extra = -0.5 * np.einsum("jgq,qr,jgr->jg", resid, pinv, resid)
    qm, qv = quad_moments(level2_quadrature(k, extra))
    np.testing.assert_allclose(mean, qm, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(var, qv, rtol=1e-8)
    # without the rows of the cluster the answer is clearly different
    own = level2_moments(k["seg"], k["mu"], k["s2w"])
    assert np.max(np.abs(own[0] - qm)) > 0.3


def test_latent_means_match_quadrature(clusters):
    k = clusters
    rng = np.random.default_rng(8)
    x = rng.normal(0.5, 1, 8)
    offset = rng.normal(0, 0.3, 8)
    term = LinearTerm(k["y"], k["a"], k["c"], k["s2y"], k["active"])
    mean, var = latent_mean_moments(k["seg"], k["mu"], k["s2w"], x, offset, 1.1, [term])
    extra = np.zeros((3, GRID.size))
    for j in range(3):
        for i in np.flatnonzero(k["codes"] == j):
            extra[j] += log_normal(x[i], offset[i] + GRID, 1.1)
    qm, qv = quad_moments(level2_quadrature(k, extra))
    np.testing.assert_allclose(mean, qm, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(var, qv, rtol=1e-8)


def test_level2_shape_errors(clusters):
    k = clusters
    with pytest.raises(DataError, match="one value per cluster"):
        level2_moments(k["seg"], np.zeros(4), 1.0)
    with pytest.raises(DataError, match="rows"):
        level2_moments(k["seg"], k["mu"], 1.0, [LinearTerm(np.ones(3), np.zeros(3), 1.0, 1.0)])
