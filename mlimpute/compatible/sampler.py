"""A reference Gibbs sampler for a random slope on an incomplete predictor.

The model (design (a) of the compatible-imputation study)::

    analysis   y_ij = γ0 + γ1 z_j + (γ2 + u1j) x_ij + u0j + e_ij,
               (u0j, u1j) ~ N(0, Ψ),  e_ij ~ N(0, σ²)
    x's model  x_ij = α0 + α1 z_j + r_j + ε_ij,  r_j ~ N(0, τ),  ε_ij ~ N(0, σ_x²)

with y and x incomplete and z complete. One iteration of :func:`run_compatible`:

(i)   analysis parameters given the completed (y, x): γ from its marginal given (σ², Ψ)
      (the random effects integrated out by the Woodbury identity over clusters), then
      ``(u0j, u1j)`` jointly per cluster from ``N(P_j⁻¹Z_j'(y_j − X_jγ)/σ², P_j⁻¹)`` with
      ``P_j = Z_j'Z_j/σ² + Ψ⁻¹`` (batched 2×2 Cholesky), ``σ² = SSR/χ²(n)``
      (``p(σ²) ∝ 1/σ²``) and ``Ψ ~ IW(ν₀ + J, S₀ + Σ_j u_j u_j')``;
(ii)  x's model parameters, the same step with q = 1 (a random intercept);
(iii) missing x from its closed-form full conditional
      (:func:`~mlimpute.compatible.conditionals.draw_normal_conditional`) with
      ``μ_x = α0 + α1 z_j + r_j``, ``a = γ0 + γ1 z_j + u0j``, ``c = γ2 + u1j``; the
      outcome term is dropped where y is missing;
(iv)  missing y from the analysis model given the new x.

Everything is vectorised over rows and clusters (segment sums over rows sorted by
cluster); the only Python loop runs over iterations. This module proves the kernels; the
imputation engine wires the same kernels into its chains.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlimpute.compatible.conditionals import draw_normal_conditional
from mlimpute.errors import DataError

# the vectorised linear algebra of the multilevel models
from mlimpute.models.linalg import (
    chol_batched,
    draw_chol,
    draw_precision_batched,
    forward_batched,
    inv_wishart,
    solve_spd,
)
from mlimpute.models.segments import Segments

__all__ = ["LMMState", "lmm_step", "CompatibleRun", "run_compatible"]


@dataclass(frozen=True)
class LMMState:
    """Parameters of one normal linear mixed model ``y = Xβ + Zb_j + e``."""

    beta: np.ndarray  # (p,)
    b: np.ndarray  # (J, q)
    sigma2: float
    psi: np.ndarray  # (q, q)


def lmm_step(
    rng: np.random.Generator,
    seg: Segments,
    y: np.ndarray,
    X: np.ndarray,
    Z: np.ndarray,
    state: LMMState,
    psi_df: float,
    psi_scale: np.ndarray,
) -> LMMState:
    """One Gibbs step of a normal linear mixed model on complete (y, X, Z).

    β | σ², Ψ with b integrated out: ``N(A⁻¹h, A⁻¹)``, ``A = X'X/σ² − Σ_j W_j'W_j``,
    ``h = X'y/σ² − Σ_j W_j'w_j``, ``W_j = L_j⁻¹Z_j'X_j/σ²``, ``w_j = L_j⁻¹Z_j'y_j/σ²``,
    ``L_jL_j' = P_j = Z_j'Z_j/σ² + Ψ⁻¹``; then ``b_j | β ~ N(P_j⁻¹Z_j'(y_j − X_jβ)/σ², P_j⁻¹)``,
    ``σ² | β, b = SSR/χ²(n)`` and ``Ψ | b ~ IW(ψ_df + J, ψ_scale + Σ_j b_j b_j')``.
    Cost O(n(p + q)² + J q²p + p³).

    Parameters
    ----------
    rng : numpy.random.Generator
    seg : Segments
        Rows sorted by cluster.
    y : ndarray, shape (n,)
    X : ndarray, shape (n, p)
    Z : ndarray, shape (n, q)
    state : LMMState
        Current σ² and Ψ (β and b are redrawn).
    psi_df, psi_scale : float, ndarray (q, q)
        Inverse-Wishart prior of Ψ.

    Returns
    -------
    LMMState

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> seg = Segments.from_codes(np.repeat(np.arange(20), 5), 20)
    >>> X = np.column_stack([np.ones(100), rng.standard_normal(100)])
    >>> y = X @ [1.0, 2.0] + np.repeat(rng.standard_normal(20), 5) + rng.standard_normal(100)
    >>> st = LMMState(np.zeros(2), np.zeros((20, 1)), 1.0, np.eye(1))
    >>> st = lmm_step(rng, seg, y, X, X[:, :1], st, 2.0, 0.01 * np.eye(1))
    >>> st.b.shape, st.psi.shape
    ((20, 1), (1, 1))
    """
    n, p = X.shape
    s2 = state.sigma2
    ZtZ = seg.sum(Z[:, :, None] * Z[:, None, :])
    ZtX = seg.sum(Z[:, :, None] * X[:, None, :])
    Zty = seg.sum(Z * y[:, None])
    P = ZtZ / s2 + np.linalg.inv(state.psi)
    L = chol_batched(P)
    Ww = forward_batched(L, np.concatenate([ZtX, Zty[:, :, None]], axis=2) / s2)
    W, w = Ww[:, :, :p], Ww[:, :, p]
    A = X.T @ X / s2 - np.einsum("jqp,jqr->pr", W, W)
    h = X.T @ y / s2 - np.einsum("jqp,jq->p", W, w)
    mean, LA = solve_spd((A + A.T) / 2, h)
    beta = draw_chol(rng, LA, mean)
    b = draw_precision_batched(rng, P, (Zty - ZtX @ beta) / s2)
    resid = y - X @ beta - np.einsum("nq,nq->n", Z, np.take(b, seg.codes, axis=0))
    sigma2 = float(resid @ resid) / rng.chisquare(n)
    psi = inv_wishart(rng, psi_df + seg.n_clusters, psi_scale + b.T @ b)
    return LMMState(beta, b, sigma2, psi)


@dataclass(frozen=True)
class CompatibleRun:
    """Result of :func:`run_compatible`.

    Attributes
    ----------
    trace : dict of str to ndarray
        Per iteration: ``gamma`` (T, 3) = (γ0, γ1, γ2); ``psi`` (T, 3) = (var(u0),
        cov(u0, u1), var(u1)); ``sigma2`` (T,); ``alpha`` (T, 2); ``tau`` (T,);
        ``sigma2_x`` (T,).
    imputations : list of (y, x)
        Completed y and x (the caller's row order) at the ``saved`` iterations.
    saved : ndarray of int
        Iterations (0-based) at which the completed data were kept.
    """

    trace: dict[str, np.ndarray]
    imputations: list[tuple[np.ndarray, np.ndarray]]
    saved: np.ndarray


def run_compatible(
    rng: np.random.Generator,
    y: np.ndarray,
    x: np.ndarray,
    z: np.ndarray,
    cluster: np.ndarray,
    *,
    iterations: int = 1000,
    m: int = 0,
    prior_scale: float = 0.01,
) -> CompatibleRun:
    """Impute y and x under the random-slope model (module docstring) by Gibbs sampling.

    Parameters
    ----------
    rng : numpy.random.Generator
    y : ndarray, shape (n,)
        Outcome, NaN where missing.
    x : ndarray, shape (n,)
        Level-1 predictor with a random slope, NaN where missing.
    z : ndarray, shape (n,)
        Complete level-2 predictor (its cluster's value on every row).
    cluster : ndarray, shape (n,)
        Cluster labels (any order).
    iterations : int
        Gibbs iterations.
    m : int
        Number of completed data sets to keep, evenly spaced over the second half of
        the iterations (the first half is warm-up).
    prior_scale : float
        Inverse-Wishart priors ``IW(q + 1, prior_scale·diag(s_k²))`` for Ψ and τ, with
        ``s_k`` the SD of the outcome per SD of the k-th random-effect column (the
        outcome's SD for an intercept): weak for any J beyond a handful.

    Returns
    -------
    CompatibleRun

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> g = np.repeat(np.arange(30), 5)
    >>> z = np.repeat(rng.standard_normal(30), 5)
    >>> x = np.repeat(rng.standard_normal(30), 5) + rng.standard_normal(150)
    >>> y = 1 + 0.5 * z + 0.5 * x + rng.standard_normal(150)
    >>> x[::4] = np.nan
    >>> y[1::7] = np.nan
    >>> run = run_compatible(rng, y, x, z, g, iterations=50, m=2)
    >>> run.trace["psi"].shape, len(run.imputations), bool(np.isnan(run.imputations[0][1]).any())
    ((50, 3), 2, False)
    """
    y, x, z = (np.asarray(v, dtype=float) for v in (y, x, z))
    n = y.shape[0]
    for name, v in (("x", x), ("z", z), ("cluster", np.asarray(cluster))):
        if v.shape != (n,):
            raise DataError(f"{name} must have shape ({n},) like y, got {v.shape}")
    if not np.all(np.isfinite(z)):
        raise DataError("z must be complete and finite")
    if iterations < 1 or m < 0:
        raise DataError("iterations must be positive and m non-negative")
    labels, codes = np.unique(np.asarray(cluster), return_inverse=True)
    order = np.argsort(codes, kind="stable")
    seg = Segments.from_codes(codes[order], labels.size)
    y, x, z = y[order].copy(), x[order].copy(), z[order]
    y_mis, x_mis = np.isnan(y), np.isnan(x)
    if y_mis.all() or x_mis.all():
        raise DataError("y and x need observed values")
    # start: missing x at the observed cluster mean (the grand mean where none), y at its mean
    with np.errstate(invalid="ignore", divide="ignore"):
        cm = seg.sum(np.where(x_mis, 0.0, x)) / seg.sum((~x_mis).astype(float))
    fill = np.take(cm, seg.codes)
    x[x_mis] = np.where(np.isfinite(fill), fill, np.nanmean(x))[x_mis]
    y[y_mis] = np.nanmean(y)
    vy, vx = float(np.var(y[~y_mis])), float(np.var(x[~x_mis]))
    J = seg.n_clusters
    one = np.ones(n)
    Xx = np.column_stack([one, z])
    Zx = one[:, None]
    an = LMMState(np.zeros(3), np.zeros((J, 2)), vy / 2, np.diag([vy / 4, vy / vx / 4]))
    xm = LMMState(np.zeros(2), np.zeros((J, 1)), vx / 2, np.array([[vx / 4]]))
    an_prior = prior_scale * np.diag([vy, vy / vx])
    xm_prior = prior_scale * np.array([[vx]])
    saved = (
        np.unique(np.linspace(iterations // 2, iterations - 1, m).round().astype(int))
        if m
        else np.zeros(0, dtype=int)
    )
    trace = {
        k: np.empty((iterations,) + s)
        for k, s in (
            ("gamma", (3,)),
            ("psi", (3,)),
            ("sigma2", ()),
            ("alpha", (2,)),
            ("tau", ()),
            ("sigma2_x", ()),
        )
    }
    imputations = []
    undo = np.argsort(order)
    rows_x = np.flatnonzero(x_mis)
    obs_at_x = ~y_mis[rows_x]
    for t in range(iterations):
        # (i) analysis model given the completed data
        Xa = np.column_stack([one, z, x])
        an = lmm_step(rng, seg, y, Xa, Xa[:, [0, 2]], an, 3.0, an_prior)
        # (ii) x's own model
        xm = lmm_step(rng, seg, x, Xx, Zx, xm, 2.0, xm_prior)
        # (iii) missing x from the closed form: own model × analysis likelihood
        u = np.take(an.b, seg.codes, axis=0)
        a = an.beta[0] + an.beta[1] * z + u[:, 0]
        c = an.beta[2] + u[:, 1]
        mu_x = Xx @ xm.beta + np.take(xm.b[:, 0], seg.codes)
        x[rows_x] = draw_normal_conditional(
            rng, mu_x[rows_x], xm.sigma2, y[rows_x], a[rows_x], c[rows_x], an.sigma2, obs_at_x
        )
        # (iv) missing y from the analysis model given the new x
        eta = a + c * x
        y[y_mis] = eta[y_mis] + np.sqrt(an.sigma2) * rng.standard_normal(int(y_mis.sum()))
        trace["gamma"][t] = an.beta
        trace["psi"][t] = an.psi[0, 0], an.psi[0, 1], an.psi[1, 1]
        trace["sigma2"][t] = an.sigma2
        trace["alpha"][t] = xm.beta
        trace["tau"][t] = xm.psi[0, 0]
        trace["sigma2_x"][t] = xm.sigma2
        if t in saved:
            imputations.append((y[undo].copy(), x[undo].copy()))
    return CompatibleRun(trace, imputations, saved)
