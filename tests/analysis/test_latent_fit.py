"""Tests of mlimpute.analysis.fitters.latent: ML of the latent covariate model.

Checked from first principles:

* the log-likelihood at given parameters against the dense normal density of each
  cluster's (x, y) vector (unequal clusters, a cluster-level covariate): 1e-9 relative,
  rounding only;
* with equal cluster sizes the maximum against the closed form (within and between
  moments): 1e-6;
* the optimum on unequal clusters: no better likelihood nearby, and the standard errors
  against an independent second-difference Hessian of :func:`latent_loglike` in the
  model's own parameters (1 % relative: the second differences' error is of order 1e-4);
* on simulated design (d) complete data the ML estimate of the contextual effect b2
  averages within 3 Monte Carlo SEs of the truth (its small-sample bias, +0.005 over
  20,000 data sets, is half an SE at this size).
"""

from __future__ import annotations

import numpy as np
import pytest

from mlimpute.analysis.fitters.latent import (
    NOT_POSITIVE_DEFINITE,
    LatentFit,
    closed_form,
    fit_latent,
    latent_loglike,
    positive_definite,
)
from mlimpute.errors import DataError
from mlimpute.simulation.compatible.designs import DESIGNS


def simulate(J=150, seed=3, sizes=(2, 9), w_effect=0.4):
    rng = np.random.default_rng(seed)
    n = rng.integers(sizes[0], sizes[1], J)
    codes = np.repeat(np.arange(J), n)
    N = codes.size
    w = rng.normal(size=J)
    xi = w_effect * w + 0.6 * rng.normal(size=J)
    x = xi[codes] + rng.normal(size=N)
    y = 0.3 * w[codes] + 0.5 * x + 0.3 * xi[codes] + 0.5 * rng.normal(size=J)[codes]
    y = y + rng.normal(size=N)
    return x, y, codes, np.c_[np.ones(J), w]


def dense_loglike(x, y, codes, W, p):
    """Sum over clusters of the log density of the cluster's stacked (x, y) rows."""
    bt = p["b1"] + p["b2"]
    sw = np.array(
        [
            [p["sigma2_x"], p["b1"] * p["sigma2_x"]],
            [p["b1"] * p["sigma2_x"], p["b1"] ** 2 * p["sigma2_x"] + p["sigma2"]],
        ]
    )
    sb = np.array([[p["tau"], bt * p["tau"]], [bt * p["tau"], bt**2 * p["tau"] + p["psi"]]])
    total = 0.0
    for j in range(W.shape[0]):  # a reference computation: a loop is fine here
        rows = codes == j
        nj = int(rows.sum())
        C = np.kron(np.eye(nj), sw) + np.kron(np.ones((nj, nj)), sb)
        mx = W[j] @ p["alpha"]
        my = W[j] @ p["gamma"] + bt * mx
        z = np.c_[x[rows] - mx, y[rows] - my].ravel()
        total -= 0.5 * (2 * nj * np.log(2 * np.pi) + np.linalg.slogdet(C)[1])
        total -= 0.5 * z @ np.linalg.solve(C, z)
    return total


PARAMS = dict(
    gamma=np.array([0.1, 0.2]),
    b1=0.4,
    b2=0.5,
    alpha=np.array([-0.2, 0.3]),
    tau=0.4,
    sigma2_x=1.1,
    psi=0.3,
    sigma2=0.9,
)


def test_loglike_equals_dense_density():
    x, y, codes, W = simulate()
    ours = latent_loglike(x, y, codes, W, PARAMS)
    assert ours == pytest.approx(dense_loglike(x, y, codes, W, PARAMS), rel=1e-9)


@pytest.mark.parametrize("rep", range(3))
def test_closed_form_on_equal_clusters(rep):
    complete, _ = DESIGNS["d"].generate(np.random.default_rng(100 + rep))
    codes = np.unique(complete["g"], return_inverse=True)[1]
    x, y = complete["x"].to_numpy(), complete["y"].to_numpy()
    cf = closed_form(x, y, codes)
    assert cf["tau"] > 0 and cf["psi"] > 0  # inside the parameter space: the maximum
    f = fit_latent(x, y, codes)
    assert f.converged
    assert f.fe_params[1] == pytest.approx(cf["b1"], abs=1e-6)
    assert f.fe_params[2] == pytest.approx(cf["b2"], abs=1e-6)
    assert f.tau == pytest.approx(cf["tau"], abs=1e-6)
    assert f.sigma2_x == pytest.approx(cf["sigma2_x"], abs=1e-6)
    assert f.cov_re[0, 0] == pytest.approx(cf["psi"], abs=1e-6)
    assert f.scale == pytest.approx(cf["sigma2"], abs=1e-6)


def test_closed_form_with_a_cluster_level_covariate():
    x, y, codes, W = simulate(J=200, sizes=(4, 5), seed=8)  # every cluster of size 4
    cf = closed_form(x, y, codes, W)
    assert cf["tau"] > 0 and cf["psi"] > 0
    f = fit_latent(x, y, codes, W)
    assert f.fe_params[3] == pytest.approx(cf["b2"], abs=1e-6)


def test_optimum_and_standard_errors_on_unequal_clusters():
    x, y, codes, W = simulate()
    f = fit_latent(x, y, codes, W)
    assert isinstance(f, LatentFit) and f.converged and not f.singular
    k = W.shape[1]
    theta = np.r_[
        f.fe_params, f.x_params, f.tau, f.sigma2_x, f.cov_re[0, 0], f.scale
    ]  # (γ, b1, b2, α, τ, σx², ψ, σ²)

    def ll(t):
        p = dict(
            gamma=t[:k],
            b1=t[k],
            b2=t[k + 1],
            alpha=t[k + 2 : 2 * k + 2],
            tau=t[-4],
            sigma2_x=t[-3],
            psi=t[-2],
            sigma2=t[-1],
        )
        return latent_loglike(x, y, codes, W, p)

    best = ll(theta)
    assert best == pytest.approx(f.llf, rel=1e-12)
    rng = np.random.default_rng(0)
    for _ in range(20):
        assert ll(theta + 1e-3 * rng.normal(size=theta.size)) < best
    # independent observed information: second differences of function values
    p, h = theta.size, 1e-4
    H = np.empty((p, p))
    eye = np.eye(p) * h
    for i in range(p):
        for j in range(i, p):
            H[i, j] = H[j, i] = (
                ll(theta + eye[i] + eye[j])
                - ll(theta + eye[i] - eye[j])
                - ll(theta - eye[i] + eye[j])
                + ll(theta - eye[i] - eye[j])
            ) / (4 * h * h)
    se = np.sqrt(np.diag(np.linalg.inv(-H)))
    np.testing.assert_allclose(np.sqrt(np.diag(f.cov_all)), se, rtol=1e-2)
    np.testing.assert_allclose(f.cov_fe, f.cov_all[: k + 2, : k + 2])


def test_contextual_effect_unbiased_on_design_d():
    """ML of b2 on complete design (d) data: mean within 3 MC SEs of 0.3 (R = 300)."""
    design = DESIGNS["d"]
    est = []
    for r in range(300):
        complete, _ = design.generate(np.random.default_rng([7, r]))
        codes = np.unique(complete["g"], return_inverse=True)[1]
        f = fit_latent(complete["x"].to_numpy(), complete["y"].to_numpy(), codes)
        est.append(f.fe_params[2])
    est = np.array(est)
    mcse = est.std(ddof=1) / np.sqrt(est.size)
    assert abs(est.mean() - design.truth["lmean(x)"]) < 3 * mcse


def test_errors():
    x, y, codes, W = simulate()
    x = x.copy()
    x[0] = np.nan
    with pytest.raises(DataError, match="complete"):
        fit_latent(x, y, codes, W)
    x, y, codes, W = simulate()
    with pytest.raises(DataError, match="collinear"):
        fit_latent(x, y, codes, np.c_[W, 2 * W[:, 1]])
    with pytest.raises(DataError, match="equal cluster sizes"):
        closed_form(x, y, codes, W)


def _no_between_variance(seed):
    """30 clusters of 6; x has no cluster effect (latent variance 0), y a large one."""
    rng = np.random.default_rng(seed)
    codes = np.repeat(np.arange(30), 6)
    x = rng.normal(size=180)
    y = x + 1.4 * rng.normal(size=30)[codes] + rng.normal(size=180)
    return x, y, codes


def test_positive_definite_scaled_by_the_diagonal():
    assert positive_definite(np.diag([1e-12, 1e6]))  # units do not matter
    assert positive_definite(np.array([[4.0, 1.9], [1.9, 1.0]]))
    assert not positive_definite(np.array([[4.0, 2.0], [2.0, 1.0]]))  # singular
    assert not positive_definite(np.array([[1.0, 1.0 - 1e-10], [1.0 - 1e-10, 1.0]]))
    assert not positive_definite(np.array([[1.0, 2.0], [2.0, 1.0]]))  # indefinite
    assert not positive_definite(np.array([[-1.0, 0.0], [0.0, 1.0]]))
    assert not positive_definite(np.array([[np.nan, 0.0], [0.0, 1.0]]))


def test_boundary_fit_has_no_standard_errors():
    """Latent variance at its boundary (τ ~ 1e-11): the observed information is not
    positive definite; its inverse (variances of -2e9 and -9e11 here) is no covariance."""
    f = fit_latent(*_no_between_variance(9))
    assert f.boundary and f.tau < 1e-6
    assert NOT_POSITIVE_DEFINITE in f.messages
    assert np.isnan(f.cov_fe).all() and np.isnan(f.cov_all).all()
    assert np.all(np.isfinite(f.fe_params))
    ok = fit_latent(*_no_between_variance(0))  # a small latent variance, not at the boundary
    assert not ok.boundary and np.all(np.diag(ok.cov_fe) > 0)
