"""The IWLS-proposal Metropolis–Hastings step (mlimpute.models.iwls_mh) against exact
posteriors computed by quadrature on small problems.

Tolerances: each chain mean and variance is compared with the exact value in units of its
Monte Carlo standard error, estimated by batch means over 40 batches (which accounts for
the chain's autocorrelation, i.e. uses its effective sample size); the threshold is the
two-sided normal quantile at a family-wise level of 1e-3 over the checks made.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, gammaln
from scipy.stats import norm

from mlimpute.models.iwls_mh import _softplus, iwls_mh_step, logit_family, nb_family


def _thr(n_checks: int, alpha: float = 1e-3) -> float:
    return float(norm.isf(alpha / (2 * n_checks)))


def _batch_se(x: np.ndarray, n_batches: int = 40) -> float:
    m = x[: x.size // n_batches * n_batches].reshape(n_batches, -1).mean(axis=1)
    return float(m.std(ddof=1) / np.sqrt(n_batches))


def _chain_z(draws, mean, var):
    """z-scores of the chain's means and variances (centred at the exact means)."""
    z = []
    for k in range(draws.shape[1]):
        x = draws[:, k]
        z.append((x.mean() - mean[k]) / _batch_se(x))
        sq = (x - mean[k]) ** 2
        z.append((sq.mean() - var[k]) / _batch_se(sq))
    return np.array(z)


def _grid(log_lik, prec, b0, b1):
    """Posterior means and variances of (β₀, β₁) on a 2-D grid (prior N(0, 1/prec))."""
    B0, B1 = np.meshgrid(b0, b1, indexing="ij")
    lp = log_lik(B0[..., None], B1[..., None]) - 0.5 * (prec[0] * B0**2 + prec[1] * B1**2)
    w = np.exp(lp - lp.max())
    w /= w.sum()
    mean = np.array([(w * B0).sum(), (w * B1).sum()])
    var = np.array([(w * (B0 - mean[0]) ** 2).sum(), (w * (B1 - mean[1]) ** 2).sum()])
    return mean, var


def _logit_problem():
    rng = np.random.default_rng(30)
    x = rng.standard_normal(30)
    y = (rng.random(30) < expit(-0.4 + 1.2 * x)).astype(float)
    prec = np.array([0.1, 0.1])

    def log_lik(b0, b1):
        eta = b0 + b1 * x
        return (y * eta - np.logaddexp(0.0, eta)).sum(-1)

    mean, var = _grid(log_lik, prec, np.linspace(-4, 3, 281), np.linspace(-2, 6, 321))
    return np.c_[np.ones(30), x], y, prec, mean, var


def _nb_problem():
    rng = np.random.default_rng(31)
    x = rng.standard_normal(40)
    r = 2.0
    y = rng.poisson(rng.gamma(r, np.exp(0.8 + 0.5 * x) / r)).astype(float)
    prec = np.array([0.0, 0.05])  # flat intercept, as the models' prior

    def log_lik(b0, b1):
        eta = b0 + b1 * x
        return (
            gammaln(y + r) + r * np.log(r) + y * eta - (y + r) * np.logaddexp(np.log(r), eta)
        ).sum(-1)

    mean, var = _grid(log_lik, prec, np.linspace(-0.5, 2.0, 251), np.linspace(-0.8, 1.8, 261))
    return np.c_[np.ones(40), x], y, r, prec, mean, var


def _run(X, family, prec, n_iter=20_000, seed=1, wrong=None, start=None):
    rng = np.random.default_rng(seed)
    beta, acc = np.zeros(X.shape[1]) if start is None else start, 0
    out = np.empty((n_iter, X.shape[1]))
    fam = family if wrong is None else wrong
    for t in range(-200, n_iter):
        beta, ok = iwls_mh_step(rng, beta, X, fam, prec)
        if t >= 0:
            out[t] = beta
            acc += ok
    return out, acc / n_iter


def test_logit_step_matches_the_quadrature_posterior():
    """Means and variances of (β₀, β₁) within the threshold; acceptance in (0.6, 1)."""
    X, y, prec, mean, var = _logit_problem()
    draws, acc = _run(X, logit_family(y), prec)
    z = _chain_z(draws, mean, var)
    assert np.max(np.abs(z)) < _thr(4), (z, mean, var)
    assert 0.6 < acc < 1.0, acc


def test_nb_step_matches_the_quadrature_posterior():
    """NB(r = 2) with r known and a flat intercept: as the logit check (started at
    β₀ = log ȳ, as the models start near the mode: from β = 0 the first IWLS proposal
    overshoots on a log link, and the chain waits there)."""
    X, y, r, prec, mean, var = _nb_problem()
    draws, acc = _run(X, nb_family(y, r), prec, start=np.array([np.log(y.mean()), 0.0]))
    z = _chain_z(draws, mean, var)
    assert np.max(np.abs(z)) < _thr(4), (z, mean, var)
    assert 0.6 < acc < 1.0, acc


def test_check_rejects_a_wrong_target():
    """The same check fails when the step's target is the likelihood raised to ½ (the
    proposal unchanged): the chain's variances are then about twice the exact ones
    (seen z ≈ 7)."""
    X, y, prec, mean, var = _logit_problem()
    right = logit_family(y)

    def tempered(eta):
        ll, u, w = right(eta)
        return 0.5 * ll, u, w

    draws, _ = _run(X, right, prec, n_iter=10_000, wrong=tempered)
    assert np.max(np.abs(_chain_z(draws, mean, var))) > _thr(4)


@pytest.mark.parametrize("x", [np.array([-800.0, -3.0, 0.0, 2.0, 30.0]), np.array([1e3, -1.0])])
def test_softplus_routes_agree_with_scipy(x):
    soft, p, pq = _softplus(x)
    assert np.allclose(soft, np.logaddexp(0.0, x), rtol=1e-13, atol=0)
    assert np.allclose(p, expit(x), rtol=1e-13, atol=1e-300)
    assert np.allclose(pq, expit(x) * expit(-x), rtol=1e-12, atol=1e-300)


def test_step_is_reproducible():
    X, y, prec, *_ = _logit_problem()
    a = iwls_mh_step(np.random.default_rng(5), np.zeros(2), X, logit_family(y), prec)
    b = iwls_mh_step(np.random.default_rng(5), np.zeros(2), X, logit_family(y), prec)
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]
