"""Count and logit kernels against exact posteriors computed by quadrature on a grid.

Monte Carlo tolerances. Chains: the standard error of a posterior-mean estimate is from
batch means (the chain cut into 40 batches; SE = sd(batch means)/√40, which accounts for
autocorrelation: the effective sample size is n·var(draws)/(40·var(batch means))); a
posterior variance is the mean of ``(θ − θ̄)²`` and gets its SE the same way. Independent
draws (many parallel chains, or direct draws): SE = sd/√n. Each test checks N statistics
and holds the family-wise false-alarm rate at 1e-3 by Bonferroni: |z| < Φ⁻¹(1 − 0.001/2N).
Each exact check is paired with a wrong kernel that the same statistics reject.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, log_expit
from scipy.stats import nbinom, norm, poisson

from mlimpute.models.counts_kernels import (
    draw_nb,
    draw_poisson,
    draw_zero_inflated,
    logit_gibbs_step,
    nb_dispersion_step,
    nb_loglik,
    nb_pseudo,
    poisson_eta_step,
    weighted_gaussian_step,
    zero_indicator,
)
from mlimpute.models.polya_gamma import draw_pg


def _thr(n_checks: int, alpha: float = 1e-3) -> float:
    return float(norm.isf(alpha / (2 * n_checks)))


def _batch_se(x: np.ndarray, n_batches: int = 40) -> float:
    m = x[: x.size // n_batches * n_batches].reshape(n_batches, -1).mean(axis=1)
    return float(m.std(ddof=1) / np.sqrt(n_batches))


def _chain_z(draws: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """z-scores of the chain's posterior means and variances against exact values."""
    draws = np.atleast_2d(draws.T).T
    z = []
    for k in range(draws.shape[1]):
        x = draws[:, k]
        z.append((x.mean() - mean[k]) / _batch_se(x))
        sq = (x - mean[k]) ** 2  # centred at the exact mean: E = exact variance
        z.append((sq.mean() - cov[k, k]) / _batch_se(sq))
    return np.array(z)


def _grid_moments(log_post: np.ndarray, axes: list[np.ndarray]):
    """Posterior mean and covariance from log-density values on a regular grid."""
    w = np.exp(log_post - log_post.max())
    w /= w.sum()
    mesh = np.meshgrid(*axes, indexing="ij")
    mean = np.array([np.sum(w * g) for g in mesh])
    cov = np.array(
        [
            [np.sum(w * (g - mean[i]) * (h - mean[j])) for j, h in enumerate(mesh)]
            for i, g in enumerate(mesh)
        ]
    )
    return mean, cov


# -- logit ----------------------------------------------------------------------------------
def _logit_problem():
    rng = np.random.default_rng(30)
    X = np.c_[np.ones(30), rng.standard_normal(30)]
    y = (rng.random(30) < expit(X @ np.array([-0.4, 1.2]))).astype(float)
    prec = np.array([0.1, 0.1])  # N(0, 10) prior on each coefficient
    b0 = np.linspace(-4, 3, 281)
    b1 = np.linspace(-2, 6, 321)
    B0, B1 = np.meshgrid(b0, b1, indexing="ij")
    eta = B0[..., None] * X[:, 0] + B1[..., None] * X[:, 1]
    log_post = (y * log_expit(eta) + (1 - y) * log_expit(-eta)).sum(-1)
    log_post -= 0.5 * (prec[0] * B0**2 + prec[1] * B1**2)
    mean, cov = _grid_moments(log_post, [b0, b1])
    return X, y, prec, mean, cov


def _run_logit(step, n_iter=6000, seed=1):
    X, y, prec, mean, cov = _logit_problem()
    rng = np.random.default_rng(seed)
    beta = np.zeros(2)
    out = np.empty((n_iter, 2))
    for t in range(-200, n_iter):
        beta = step(rng, beta, X, y, prec)
        if t >= 0:
            out[t] = beta
    return out, mean, cov


def test_logit_gibbs_matches_the_quadrature_posterior():
    draws, mean, cov = _run_logit(lambda *a: logit_gibbs_step(*a)[0])
    z = _chain_z(draws, mean, cov)
    assert np.max(np.abs(z)) < _thr(4), (z, mean, cov)


def test_logit_check_rejects_a_kernel_ignoring_the_weights():
    def wrong(rng, beta, X, y, prec):  # ω replaced by its mean at η = 0, E PG(1, 0) = 1/4
        w = np.full(y.size, 0.25)
        return weighted_gaussian_step(rng, X, (y - 0.5) / w, w, prec)

    draws, mean, cov = _run_logit(wrong)
    assert np.max(np.abs(_chain_z(draws, mean, cov))) > _thr(4)


# -- Poisson log-rate -------------------------------------------------------------------------
POISSON_CASES = [  # (y, m, v)
    (0.0, 0.5, 1.0),
    (3.0, 0.0, 0.5),
    (40.0, 2.0, 2.0),
    (0.0, 3.0, 0.1),
    (1.0, -2.0, 4.0),
    (200.0, 0.0, 9.0),
]


def _poisson_exact(y, m, v):
    g = np.linspace(m - 12 * np.sqrt(v), max(m, np.log(y + 1)) + 12 * np.sqrt(v), 40001)
    lp = y * g - np.exp(g) - (g - m) ** 2 / (2 * v)
    w = np.exp(lp - lp.max())
    w /= w.sum()
    mu = np.sum(w * g)
    return mu, np.sum(w * (g - mu) ** 2)


def _poisson_chains(kernel, n_chains=20_000, n_steps=25, seed=4):
    """Independent chains, one per copy of each case, all in one vectorised call."""
    rng = np.random.default_rng(seed)
    y, m, v = (np.repeat(col, n_chains) for col in np.array(POISSON_CASES).T)
    eta = m + 3.0  # a poor start
    acc = np.zeros(y.size)
    for _ in range(n_steps):
        eta, a = kernel(rng, eta, y, m, v)
        acc += a
    return eta.reshape(len(POISSON_CASES), n_chains), acc.reshape(len(POISSON_CASES), -1)


def _poisson_z(eta):
    z = []
    for (y, m, v), e in zip(POISSON_CASES, eta, strict=True):
        mu, var = _poisson_exact(y, m, v)
        n = e.size
        z.append((e.mean() - mu) / (e.std() / np.sqrt(n)))
        sq = (e - mu) ** 2
        z.append((sq.mean() - var) / (sq.std() / np.sqrt(n)))
    return np.array(z)


def test_poisson_log_rate_step_matches_the_quadrature_conditional():
    eta, acc = _poisson_chains(poisson_eta_step)
    z = _poisson_z(eta)
    assert np.max(np.abs(z)) < _thr(2 * len(POISSON_CASES)), z
    rates = acc.mean(axis=1) / 25
    assert np.all(rates > 0.7), rates  # the Laplace-t proposal fits well


def test_poisson_check_rejects_the_proposal_without_the_metropolis_correction():
    def always_accept(rng, eta, y, m, v):
        new, _ = poisson_eta_step(rng, np.full_like(eta, 1e3), y, m, v)  # target(1e3) = 0
        return new, np.ones(eta.shape, dtype=bool)

    eta, _ = _poisson_chains(always_accept)
    assert np.max(np.abs(_poisson_z(eta))) > _thr(2 * len(POISSON_CASES))


# -- negative binomial ------------------------------------------------------------------------
PSI_PRIOR_SD = 10.0


def _nb_problem():
    rng = np.random.default_rng(12)
    y = rng.negative_binomial(2.0, 2.0 / 5.0, size=120).astype(float)  # mean 3, r = 2
    psi = np.linspace(0.5, 1.6, 166)  # posterior mean 1.06, SD 0.08
    rho = np.linspace(-2.0, 14.0, 481)  # log r (the right tail follows the prior)
    P, R = np.meshgrid(psi, rho, indexing="ij")
    vals, counts = np.unique(y, return_counts=True)  # the likelihood by distinct value
    ll = (counts * nb_loglik(vals, P[..., None], np.exp(R)[..., None])).sum(-1)
    log_post = ll - P**2 / (2 * PSI_PRIOR_SD**2) - R**2 / (2 * 2.5**2)
    return y, _grid_moments(log_post, [psi, rho])


def _run_nb(right_tilt=True, n_iter=5000, seed=2):
    y, (mean, cov) = _nb_problem()
    rng = np.random.default_rng(seed)
    X = np.ones((y.size, 1))
    psi, r = np.log(y.mean() + 0.5), 1.0
    out = np.empty((n_iter, 2))
    acc = 0
    for t in range(-300, n_iter):
        # wrong: ω tilted by the log-mean ψ instead of logit p = ψ − log r
        omega, z = nb_pseudo(rng, y, np.full(y.size, psi if right_tilt else psi + np.log(r)), r)
        psi = weighted_gaussian_step(rng, X, z, omega, [PSI_PRIOR_SD**-2])[0]
        r, a = nb_dispersion_step(rng, r, y, np.full(y.size, psi), step=0.7)
        if t >= 0:
            out[t] = psi, np.log(r)
            acc += a
    return out, mean, cov, acc / n_iter


def test_negative_binomial_kernels_match_the_quadrature_posterior():
    draws, mean, cov, acc = _run_nb()
    z = _chain_z(draws, mean, cov)
    assert np.max(np.abs(z)) < _thr(4), (z, mean, cov)
    assert 0.2 < acc < 0.8


def test_negative_binomial_check_rejects_a_wrong_tilt():
    draws, mean, cov, _ = _run_nb(right_tilt=False)
    assert np.max(np.abs(_chain_z(draws, mean, cov))) > _thr(4)


def test_nb_loglik_is_the_negative_binomial_pmf():
    y = np.array([0.0, 1.0, 7.0, 60.0])
    mu, r = np.array([0.3, 2.0, 5.0, 50.0]), 1.7
    assert np.allclose(nb_loglik(y, np.log(mu), r), nbinom.logpmf(y, r, r / (r + mu)))


def test_nb_pseudo_uses_shape_y_plus_r_and_tilt_logit_p():
    y, psi, r = np.array([0.0, 4.0]), np.array([0.3, 1.0]), 1.6
    omega, z = nb_pseudo(np.random.default_rng(8), y, psi, r)
    omega2 = draw_pg(np.random.default_rng(8), y + r, psi - np.log(r))
    assert np.array_equal(omega, omega2)
    assert np.allclose(z, (y - r) / (2 * omega) + np.log(r))


# -- zero inflation ----------------------------------------------------------------------------
def test_zero_indicator_frequencies_match_the_conditional():
    rng = np.random.default_rng(6)
    n = 200_000
    logit_pi = np.tile([-1.0, 0.0, 2.0], n // 3 + 1)[:n]
    log_f0 = np.tile([-0.5, -3.0, -0.1, -1.0], n // 4 + 1)[:n]
    y = np.where(rng.random(n) < 0.7, 0, 3)
    s = zero_indicator(rng, y, logit_pi, log_f0)
    assert not s[y > 0].any()
    pi, f0 = expit(logit_pi), np.exp(log_f0)
    p = pi / (pi + (1 - pi) * f0)
    zero = y == 0
    key = (logit_pi * 10 + log_f0)[zero]  # 12 (π, f0) combinations
    z = []
    for k in np.unique(key):
        sel = key == k
        pk = p[zero][sel][0]
        z.append((s[zero][sel].mean() - pk) / np.sqrt(pk * (1 - pk) / sel.sum()))
    assert np.max(np.abs(z)) < _thr(len(z))


def _zip_problem():
    rng = np.random.default_rng(21)
    n = 60
    y = np.where(rng.random(n) < 0.3, 0, rng.poisson(2.5, n)).astype(float)
    a0, b0, prec = 1.0, 0.1, 0.1  # λ ~ Gamma(1, rate 0.1); logit π ~ N(0, 10)
    lp = np.linspace(-5, 2.5, 301)
    ll = np.linspace(-0.5, 2.2, 271)  # log λ
    LP, LL = np.meshgrid(lp, ll, indexing="ij")
    pi, lam = expit(LP)[..., None], np.exp(LL)[..., None]
    like = np.where(
        y == 0, np.log(pi + (1 - pi) * np.exp(-lam)), np.log1p(-pi) + poisson.logpmf(y, lam)
    ).sum(-1)
    log_post = like - prec * LP**2 / 2 + a0 * LL - b0 * np.exp(LL)  # prior on log λ
    return y, (a0, b0, prec), _grid_moments(log_post, [lp, ll])


def _run_zip(use_indicator=True, n_iter=5000, seed=3):
    y, (a0, b0, prec), (mean, cov) = _zip_problem()
    rng = np.random.default_rng(seed)
    X = np.ones((y.size, 1))
    beta, lam = np.zeros(1), 1.0
    out = np.empty((n_iter, 2))
    for t in range(-200, n_iter):
        if use_indicator:
            s = zero_indicator(rng, y, np.full(y.size, beta[0]), np.full(y.size, -lam))
        else:  # wrong: every observed zero taken as structural
            s = y == 0
        beta, _ = logit_gibbs_step(rng, beta, X, s.astype(float), [prec])
        lam = rng.gamma(a0 + y[~s].sum(), 1 / (b0 + (~s).sum()))
        if t >= 0:
            out[t] = beta[0], np.log(lam)
    return out, mean, cov


def test_zero_inflated_poisson_matches_the_quadrature_posterior():
    draws, mean, cov = _run_zip()
    z = _chain_z(draws, mean, cov)
    assert np.max(np.abs(z)) < _thr(4), (z, mean, cov)


def test_zero_inflated_check_rejects_all_zeros_structural():
    draws, mean, cov = _run_zip(use_indicator=False)
    assert np.max(np.abs(_chain_z(draws, mean, cov))) > _thr(4)


# -- imputation draws -------------------------------------------------------------------------
def _pmf_z(draws, pmf, kmax):
    """z-scores of the frequencies of 0..kmax−1 against the pmf (binomial SEs)."""
    n = draws.size
    freq = np.bincount(np.minimum(draws, kmax), minlength=kmax + 1)[:kmax] / n
    p = pmf(np.arange(kmax))
    return (freq - p) / np.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("log_mu", [np.log(0.4), np.log(6.0)])
def test_count_draws_follow_their_pmf(log_mu):
    rng = np.random.default_rng(10)
    n, r = 100_000, 1.7
    yp = draw_poisson(rng, np.full(n, log_mu))
    yn = draw_nb(rng, np.full(n, log_mu), r)
    assert yp.dtype == yn.dtype == np.int64 and yp.min() >= 0 and yn.min() >= 0
    mu = np.exp(log_mu)
    zp = _pmf_z(yp, lambda k: poisson.pmf(k, mu), 8)
    zn = _pmf_z(yn, lambda k: nbinom.pmf(k, r, r / (r + mu)), 8)
    assert np.max(np.abs(np.r_[zp, zn])) < _thr(16)
    wrong = draw_nb(rng, np.full(n, log_mu), 1.3 * r)  # the same check sees a 30 % error in r
    assert np.max(np.abs(_pmf_z(wrong, lambda k: nbinom.pmf(k, r, r / (r + mu)), 8))) > _thr(16)


def test_zero_inflated_draws_have_the_zero_share():
    rng = np.random.default_rng(13)
    n, lam, lpi = 200_000, 2.0, -0.5
    y = draw_zero_inflated(rng, draw_poisson(rng, np.full(n, np.log(lam))), np.full(n, lpi))
    assert y.dtype == np.int64
    p0 = expit(lpi) + (1 - expit(lpi)) * np.exp(-lam)
    assert abs((y == 0).mean() - p0) / np.sqrt(p0 * (1 - p0) / n) < _thr(2)
    p3 = (1 - expit(lpi)) * poisson.pmf(3, lam)
    assert abs((y == 3).mean() - p3) / np.sqrt(p3 * (1 - p3) / n) < _thr(2)


def test_huge_log_rates_do_not_overflow():
    rng = np.random.default_rng(0)
    assert draw_poisson(rng, np.array([800.0]))[0] > 0
    assert draw_nb(rng, np.array([800.0]), 2.0)[0] > 0
    eta, _ = poisson_eta_step(rng, np.zeros(2), np.array([0.0, 5000.0]), np.array([30.0, 0.0]), 1.0)
    assert np.all(np.isfinite(eta))


def test_weighted_gaussian_step_moments():
    # β | z, w ~ N(V X'Wz, V): checked on independent draws
    rng = np.random.default_rng(9)
    X = np.c_[np.ones(5), np.arange(5.0)]
    z, w = np.array([1.0, 0.0, 2.0, 1.0, 3.0]), np.array([0.5, 2.0, 1.0, 0.3, 4.0])
    prec = np.array([0.2, 1.0])
    V = np.linalg.inv(X.T @ (w[:, None] * X) + np.diag(prec))
    m = V @ (X.T @ (w * z) + prec * np.array([1.0, -1.0]))
    d = np.array([weighted_gaussian_step(rng, X, z, w, prec, [1.0, -1.0]) for _ in range(4000)])
    se = np.sqrt(np.diag(V) / d.shape[0])
    assert np.max(np.abs((d.mean(0) - m) / se)) < _thr(4)
    var_se = np.diag(V) * np.sqrt(2 / d.shape[0])
    assert np.max(np.abs((d.var(0) - np.diag(V)) / var_se)) < _thr(4)


def test_dispersion_step_loglik_differences_are_nb_loglik_differences():
    """The fast r-dependent log-likelihood of the dispersion step differs between two r
    exactly as the full NB log-likelihood does."""
    from mlimpute.models.counts_kernels import _nb_loglik_in_r, _nb_r_context

    rng = np.random.default_rng(0)
    y = rng.poisson(rng.gamma(2.0, 1.5, size=300)).astype(float)
    log_mu = rng.normal(1.0, 0.5, 300)
    y_big = y.copy()
    y_big[:3] = [1e5, 2e6, 7e6]  # counts beyond the bincount range: the np.unique branch
    for yy in (y, y_big):
        ctx = _nb_r_context(yy, log_mu)
        for r1, r2 in ((0.3, 2.0), (2.0, 50.0)):
            fast = _nb_loglik_in_r(yy, log_mu, r2, ctx) - _nb_loglik_in_r(yy, log_mu, r1, ctx)
            full = nb_loglik(yy, log_mu, r2).sum() - nb_loglik(yy, log_mu, r1).sum()
            assert fast == pytest.approx(full, rel=1e-10, abs=1e-8)
