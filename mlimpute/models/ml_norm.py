"""Multilevel normal model for a level-1 continuous variable (mice ``2l.pan``/``2l.lmer``).

Model (DESIGN §3.2)::

    y_ij = x_ij'β + z_ij'b_j + e_ij,   b_j ~ N(0, Ψ),   e_ij ~ N(0, σ²)

Priors: flat on β, ``p(σ²) ∝ 1/σ²``, and for Ψ by default the Huang & Wand (2013)
hierarchical inverse-Wishart with ν = 2: each random-effect SD gets a half-t(2, A_k) prior
and correlations are uniform. The scales are set from the data,
``A_k = sd(y_obs) / sd(z_k)`` (``sd(y_obs)`` for an intercept), so the prior does not depend
on the units of the data (rescaling y or z rescales Ψ's prior with it).
``prior="iw"`` gives the inverse-Wishart(q, diag(A_k²)) that pan and jomo use on
standardised data, kept for comparison (``benchmarks/bench_priors.py``).

One Gibbs step, given the current completed data (observed rows of y only):

1. (β, b) jointly given (σ², Ψ): β from its marginal ``N(A⁻¹h, A⁻¹)`` with
   ``A = X'X/σ² − Σ_j C_j'P_j⁻¹C_j``, ``h = X'y/σ² − Σ_j C_j'P_j⁻¹Z_j'y_j/σ²``,
   ``C_j = Z_j'X_j/σ²``, ``P_j = Z_j'Z_j/σ² + Ψ⁻¹`` (Woodbury over clusters); then
   ``b_j ~ N(P_j⁻¹Z_j'(y_j − X_jβ)/σ², P_j⁻¹)``. Clusters with no observed y get
   ``b_j ~ N(0, Ψ)``. The blocked draw removes the β₀/mean(b) ridge along which the plain
   b-then-β Gibbs sampler random-walks when clusters are informative.
2. ``σ² = SSR / χ²(n_obs)``.
3. Ψ given b per covariance block: ``IW(ν + k − 1 + J, 2ν·diag(1/a) + Σ_j b_j b_j')`` for a
   correlated block of size k (an inverse-gamma per column for ``||`` blocks), then
   ``a_k ~ IG((ν + k)/2, ν(Ψ⁻¹)_kk + 1/A_k²)``.

Missing values: ``y = x'β + z'b_j + e`` with a fresh ``e``.

Cost per step: O(n_obs·(p² + p·q + q²) + J·q²·p + p³): segment sums (``reduceat`` over
rows sorted by cluster) and a Cholesky written out over q, vectorised over clusters.

References
----------
Huang, A. & Wand, M. P. (2013). Simple marginally noninformative prior distributions for
covariance matrices. *Bayesian Analysis* 8(2), 439–452.
Schafer, J. L. & Yucel, R. M. (2002). Computational strategies for multivariate linear
mixed-effects models with missing values. *JCGS* 11(2), 437–457.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from . import register
from ._linalg import (
    chol_batched,
    draw_chol,
    draw_precision_batched,
    forward_batched,
    inv_gamma,
    inv_wishart,
    solve_spd,
)

__all__ = ["MultilevelNorm", "MultilevelNormState"]

NU = 2.0  # Huang–Wand ν: half-t(2) on each SD, uniform marginal on correlations


@dataclass(frozen=True)
class MultilevelNormState:
    beta: np.ndarray  # (p,)
    b: np.ndarray  # (J, q)
    sigma2: float
    psi: np.ndarray  # (q, q)
    a: np.ndarray  # (q,) Huang–Wand auxiliary variables
    scale: np.ndarray  # (q,) prior scales A_k


@register("2l.norm", multilevel=True, kinds=("numeric",), aliases=("2l.pan", "2l.lmer"))
class MultilevelNorm:
    """Multilevel normal model with random intercepts and slopes (homoscedastic)."""

    def __init__(self, prior: Literal["half-t", "iw"] = "half-t"):
        if prior not in ("half-t", "iw"):
            raise ValueError(f"prior must be 'half-t' or 'iw', got {prior!r}")
        self.prior = prior

    # -- set-up ---------------------------------------------------------------------------
    def init(self, data, rng: np.random.Generator) -> MultilevelNormState:
        y, X, Z = data.y_obs, data.X.obs, data.Z.obs
        q, J = Z.shape[1], data.n_clusters
        sd_y = float(np.std(y)) if y.size > 1 else 1.0
        sd_y = sd_y if sd_y > 0 else 1.0
        sd_z = np.std(Z, axis=0)
        scale = np.where(sd_z > 1e-12 * np.abs(Z).max(axis=0, initial=1.0),
                         sd_y / np.where(sd_z > 0, sd_z, 1.0), sd_y)
        beta = np.linalg.lstsq(X, y, rcond=None)[0] if X.shape[1] else np.zeros(0)
        sigma2 = max(float(np.var(y - X @ beta)) if y.size else 1.0, 1e-12 * sd_y**2) / 2
        psi = np.diag((scale / 2) ** 2)
        state = MultilevelNormState(beta, np.zeros((J, q)), sigma2, psi, scale**2, scale)
        return self.step(rng, state, data)

    # -- one Gibbs step -------------------------------------------------------------------
    def step(self, rng: np.random.Generator, state: MultilevelNormState, data):
        y, X, Z, seg = data.y_obs, data.X.obs, data.Z.obs, data.seg_obs
        p, q = X.shape[1], Z.shape[1]
        s2 = state.sigma2
        psi_inv = np.linalg.inv(state.psi)
        # per-cluster sufficient statistics (J, q, q), (J, q, p), (J, q)
        ZtZ = seg.sum(Z[:, :, None] * Z[:, None, :])
        ZtX = seg.sum(Z[:, :, None] * X[:, None, :])
        Zty = seg.sum(Z * y[:, None])
        P = ZtZ / s2 + psi_inv
        L = chol_batched(P)
        # (1) β marginal of b: A = X'X/σ² − Σ W'W, h = X'y/σ² − Σ W'w with W = L⁻¹C
        Ww = forward_batched(L, np.concatenate([ZtX, Zty[:, :, None]], axis=2) / s2)
        W, w = Ww[:, :, :p], Ww[:, :, p]
        A = (X.T @ X) / s2 - np.einsum("jqp,jqr->pr", W, W)
        h = (X.T @ y) / s2 - np.einsum("jqp,jq->p", W, w)
        A = (A + A.T) / 2
        mean, LA = solve_spd(A, h)
        beta = draw_chol(rng, LA, mean)
        #     b_j | β
        b = draw_precision_batched(rng, P, (Zty - ZtX @ beta) / s2)
        # (2) σ² | β, b
        resid = y - X @ beta - np.einsum("nq,nq->n", Z, np.take(b, seg.codes, axis=0))
        sigma2 = float(resid @ resid) / rng.chisquare(max(y.size, 1))
        # (3) Ψ, a | b
        psi, a = self._draw_psi(rng, b, state.a, state.scale, data)
        return MultilevelNormState(beta, b, sigma2, psi, a, state.scale)

    def _draw_psi(self, rng, b, a, scale, data):
        J, q = b.shape
        psi = np.zeros((q, q))
        a = a.copy()
        S = b.T @ b
        for cols, correlated in zip(data.random_blocks, data.random_correlated):
            groups = [list(cols)] if correlated else [[c] for c in cols]
            for g in groups:
                k = len(g)
                Sg = S[np.ix_(g, g)]
                if self.prior == "iw":
                    psi[np.ix_(g, g)] = inv_wishart(rng, k + J, np.diag(scale[g] ** 2) + Sg)
                    continue
                sg = inv_wishart(rng, NU + k - 1 + J, np.diag(2 * NU / a[g]) + Sg)
                psi[np.ix_(g, g)] = sg
                a[g] = inv_gamma(rng, (NU + k) / 2,
                                 NU * np.diag(np.linalg.inv(sg)) + 1 / scale[g] ** 2)
        return psi, a

    # -- imputation -----------------------------------------------------------------------
    def draw_missing(self, rng: np.random.Generator, state: MultilevelNormState, data):
        bz = np.einsum("nq,nq->n", data.Z.mis, np.take(state.b, data.codes_mis, axis=0))
        e = np.sqrt(state.sigma2) * rng.standard_normal(data.n_mis)
        return data.X.mis @ state.beta + bz + e

    # -- traces ---------------------------------------------------------------------------
    def param_names(self, data) -> list[str]:
        return [*data.X.names, *_psi_names(data), "var(Residual)"]

    def param_vector(self, state: MultilevelNormState, data) -> np.ndarray:
        rows, cols = zip(*_psi_entries(data))
        return np.r_[state.beta, state.psi[list(rows), list(cols)], state.sigma2]


def _psi_entries(data) -> list[tuple[int, int]]:
    """Traced entries of Ψ: each variance, then the covariances within correlated blocks."""
    out = []
    for block, correlated in zip(data.random_blocks, data.random_correlated):
        for i_, i in enumerate(block):
            out.append((i, i))
            if correlated:
                out.extend((i, j) for j in block[:i_])
    return out


def _psi_names(data) -> list[str]:
    names, g = data.Z.names, data.group
    return [f"var({names[i]}|{g})" if i == j else f"cov({names[j]},{names[i]}|{g})"
            for i, j in _psi_entries(data)]
