"""The joint draw of ``2l.nominal``'s random effects across categories (one grouping
factor): the state of the multinomial probit, the covariance blocks of the stacked
effects, the blocked (β, b) draw, the scale move, one joint Gibbs step after the
utilities, and the start of Ψ from the clusters' category shares.
:mod:`mlimpute.models.nominal` holds the model and says what each step does.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.special import ndtri

from mlimpute.models._ml_norm_static import static
from mlimpute.models.base import ModelData
from mlimpute.models.linalg import (
    backward_batched,
    chol_batched,
    draw_chol,
    draw_precision_batched,
    forward_batched,
    inv_wishart,
    solve_spd,
)
from mlimpute.models.ml_norm_psi import psi_xi_posterior

__all__ = ["NominalState", "blocked_draw", "joint_blocks", "joint_gibbs", "scale_move"]

_ALPHA_FLOOR = 1e-150  # as MultilevelNorm: a working scale never exactly 0


@dataclass(frozen=True)
class NominalState:
    """One linear core's state per non-reference category, the latent utilities and, for
    ``2l.nominal`` with one grouping factor, the joint covariance of the categories'
    random effects (``psi``: ((K − 1)q, (K − 1)q), category-major; its diagonal blocks
    are the cores' ``psi``)."""

    cores: tuple
    latent: np.ndarray  # (n_obs, K − 1)
    psi: np.ndarray | None = None


def joint_blocks(data: ModelData, n_utilities: int) -> list[list[int]]:
    """The covariance blocks of the stacked effects (index ``k·q + c`` for category k and
    random-design column c): each block of the formula's random part, across all
    categories (a block of size ``(K − 1)·|block|``).

    Parameters
    ----------
    data : ModelData
        Model data with a random part.
    n_utilities : int
        K − 1.

    Returns
    -------
    list of list of int
    """
    q = data.Z.obs.shape[1]
    out = []
    for cols, correlated in zip(data.random_blocks, data.random_correlated, strict=True):
        for g in [list(cols)] if correlated else [[c] for c in cols]:
            out.append([k * q + c for k in range(n_utilities) for c in g])
    return out


def _cross_entries(data: ModelData, n_utilities: int) -> list[tuple[int, int]]:
    """Entries (i, j), i < j, of the joint Ψ between different categories' effects that
    the traces show: all pairs within a block, category k before k'."""
    q = data.Z.obs.shape[1]
    out = []
    for block in joint_blocks(data, n_utilities):
        for a, i in enumerate(block):
            out.extend((i, j) for j in block[a + 1 :] if j // q != i // q)
    return out


def _block_diag(blocks: list[np.ndarray]) -> np.ndarray:
    q = blocks[0].shape[0]
    out = np.zeros((q * len(blocks),) * 2)
    for k, m in enumerate(blocks):
        out[k * q : (k + 1) * q, k * q : (k + 1) * q] = m
    return out


def blocked_draw(
    rng: np.random.Generator,
    psi_inv: np.ndarray,
    ZtZ: np.ndarray,
    ZtX: np.ndarray,
    ZtW: np.ndarray,
    XtX: np.ndarray,
    XtW: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Draw (β, b) | W, Ψ of K − 1 normal equations (unit error variance) that share the
    random effects: β with b integrated out, then ``b_j | β``, all clusters at once.

    With ``P_j = Ψ⁻¹ + I ⊗ Z_j'Z_j``, ``C_j = I ⊗ Z_j'X_j`` and ``c_j = vec(Z_j'W_j)``
    (category-major), β has precision ``I ⊗ X'X − Σ_j C_j'P_j⁻¹C_j`` and precision-mean
    ``vec(X'W) − Σ_j C_j'P_j⁻¹c_j`` (Woodbury over clusters), and
    ``b_j | β ~ N(P_j⁻¹(c_j − C_jβ), P_j⁻¹)``. Cost O(J·Q²·(Q + (K − 1)p) + ((K − 1)p)³),
    Q = (K − 1)q.

    Parameters
    ----------
    rng : numpy.random.Generator
    psi_inv : ndarray, shape (Q, Q)
        Inverse of the stacked effects' covariance.
    ZtZ : ndarray, shape (J, q, q)
        Per-cluster ``Z_j'Z_j``.
    ZtX : ndarray, shape (J, q, p)
        Per-cluster ``Z_j'X_j``.
    ZtW : ndarray, shape (J, q, K − 1)
        Per-cluster ``Z_j'W_j``.
    XtX : ndarray, shape (p, p)
        ``X'X`` plus the prior precision of each category's coefficients.
    XtW : ndarray, shape (p, K − 1)
        ``X'W``.

    Returns
    -------
    beta : ndarray, shape ((K − 1)p,)
        The draw, category-major.
    b : ndarray, shape (J, Q)
        The draw given ``beta``.
    beta_mean : ndarray, shape ((K − 1)p,)
        The mean of β's marginal.
    b_mean : ndarray, shape (J, Q)
        The mean of b given ``beta_mean``.
    """
    J, q, p = ZtX.shape
    K1 = ZtW.shape[2]
    Q, Kp = K1 * q, K1 * p
    P = np.repeat(psi_inv[None], J, axis=0)
    C = np.zeros((J, Q, Kp + 1))
    for k in range(K1):  # loop over categories: the block-diagonal pieces
        s = slice(k * q, (k + 1) * q)
        P[:, s, s] += ZtZ
        C[:, s, k * p : (k + 1) * p] = ZtX
        C[:, s, Kp] = ZtW[:, :, k]
    L = chol_batched(P)
    M = forward_batched(L, C)  # L_j⁻¹[C_j c_j]
    Mf = M.reshape(J * Q, Kp + 1)
    G = Mf.T @ Mf
    A = -G[:Kp, :Kp]
    for k in range(K1):
        A[k * p : (k + 1) * p, k * p : (k + 1) * p] += XtX
    A = 0.5 * (A + A.T)
    h = XtW.T.reshape(Kp) - G[:Kp, Kp]
    mean, LA = solve_spd(A, h)
    beta = draw_chol(rng, LA, mean)
    base, MC = M[:, :, Kp], M[:, :, :Kp]
    b = backward_batched(L, base - MC @ beta + rng.standard_normal((J, Q)))
    b_mean = backward_batched(L, base - MC @ mean)
    return beta, b, mean, b_mean


def _zb(data: ModelData, b: np.ndarray) -> np.ndarray:
    """``z_i'b_{j,k}`` on the observed rows for each category: (n_obs, K − 1) from b of
    shape (J, K − 1, q)."""
    codes, Z = data.seg_obs.codes, data.Z.obs
    if static(data).ones:
        return b[codes, :, 0]
    return np.einsum("ic,ikc->ik", Z, b[codes])


def scale_move(
    rng: np.random.Generator,
    n_latent: int,
    resid: np.ndarray,
    beta: np.ndarray,
    beta_prec: np.ndarray,
    alpha: np.ndarray,
    scale: np.ndarray,
) -> float:
    """The factor c of the scale move ``(W, β, α) → (cW, cβ, cα)`` (ξ and Ψ_ξ kept, so
    ``b → cb`` and ``Ψ → c²Ψ``), drawn from its exact conditional (a marginal data
    augmentation step, Liu & Sabatti 2000; Imai & van Dyk 2005).

    The truncation of W by y is unchanged by c > 0. The joint density of the expanded
    state is Gaussian in (W − Xβ − Zb), β (prior precision ``beta_prec``) and α (prior
    ``N(0, A²/2)``), so at the moved state it is ``exp(−c²T/2)`` with
    ``T = Σ resid² + Σ beta_prec·β² + Σ 2α²/A²``; the Jacobian is ``c^d``,
    ``d = n_latent + dim β + dim α``, and with the Haar measure dc/c of the scale group,
    ``c²  ~ Gamma(d/2, rate T/2)``.

    Parameters
    ----------
    rng : numpy.random.Generator
    n_latent : int
        Number of latent utilities moved (``W.size``).
    resid : ndarray
        ``W − Xβ − Zb``.
    beta : ndarray
        All categories' coefficients.
    beta_prec : ndarray
        Their prior precisions (0 for a flat prior), the same shape.
    alpha : ndarray
        Working scales α.
    scale : ndarray
        Their prior scales A.

    Returns
    -------
    float
    """
    d = n_latent + beta.size + alpha.size
    T = np.sum(resid**2) + np.sum(beta_prec * beta**2) + np.sum(2.0 * alpha**2 / scale**2)
    return float(np.sqrt(rng.gamma(0.5 * d, 2.0 / T)))


def joint_gibbs(
    rng: np.random.Generator,
    state: NominalState,
    data: ModelData,
    W: np.ndarray,
    beta_prec: np.ndarray,
    nu: float,
) -> NominalState:
    """Steps 2–5 of the module docstring: (β, b) jointly, the working scales α, Ψ, then
    the scale move.

    Parameters
    ----------
    rng : numpy.random.Generator
    state : NominalState
        Current state (its cores give α and the prior scales A; ``psi`` the joint Ψ, the
        cores' block-diagonal one where absent).
    data : ModelData
        Model data with one grouping factor.
    W : ndarray, shape (n_obs, K − 1)
        The current utilities.
    beta_prec : ndarray, shape (p,)
        Prior precision of each category's coefficients (prior mean 0).
    nu : float
        Huang–Wand ν.

    Returns
    -------
    NominalState
        With the new cores (β_k, b_k, diagonal block of Ψ, α_k), ``W`` and Ψ.
    """
    X, Z, seg = data.X.obs, data.Z.obs, data.seg_obs
    st = static(data)
    J, q, p, K1 = data.n_clusters, st.q, X.shape[1], W.shape[1]
    Q = K1 * q
    cores = state.cores
    # per-cluster sums (shared by all utilities but Z'W)
    ZtZ = st.ZtZ if st.ZtZ is not None else seg.sum(Z[:, :, None] * Z[:, None, :])
    if st.ones:
        ZtX, ZtW = seg.sum(X)[:, None, :], seg.sum(W)[:, None, :]
    else:
        ZtX = seg.sum(Z[:, :, None] * X[:, None, :])
        ZtW = seg.sum(Z[:, :, None] * W[:, None, :])  # (J, q, K − 1)
    alpha = np.concatenate([c.alpha for c in cores])
    alpha = np.where(np.abs(alpha) > _ALPHA_FLOOR, alpha, _ALPHA_FLOOR)
    scale = np.concatenate([c.scale for c in cores])
    psi = state.psi if state.psi is not None else _block_diag([c.psi for c in cores])
    aa = np.outer(alpha, alpha)
    psi_inv = np.linalg.inv(psi / aa) / aa  # Ψ⁻¹ = diag(1/α) Ψ_ξ⁻¹ diag(1/α)
    psi_inv = 0.5 * (psi_inv + psi_inv.T)
    # (2) β with b integrated out, then b_j | β
    XtX = X.T @ X
    XtX[np.diag_indices(p)] += beta_prec
    beta, b, mean, b_mean = blocked_draw(rng, psi_inv, ZtZ, ZtX, ZtW, XtX, X.T @ W)
    # (3) parameter expansion: α of category k | ξ, β is a q-dim regression of w_k − Xβ_k
    xi = b / alpha
    xi3 = xi.reshape(J, K1, q)
    B = beta.reshape(K1, p)
    c = ZtW - ZtX @ B.T  # Z_j'(W_j − X_jβ_k): (J, q, K − 1)
    gram = np.einsum("jkc,jkd,jcd->kcd", xi3, xi3, ZtZ)
    rhs = np.einsum("jkc,jck->kc", xi3, c)
    idx = np.arange(q)
    gram[:, idx, idx] += 2.0 / scale.reshape(K1, q) ** 2  # α ~ N(0, A²/2)
    alpha = draw_precision_batched(rng, gram, rhs).reshape(Q)
    alpha = np.where(np.abs(alpha) > _ALPHA_FLOOR, alpha, _ALPHA_FLOOR)
    b = xi * alpha
    # (4) Ψ_ξ | ξ per covariance block, Ψ = diag(α) Ψ_ξ diag(α)
    S = xi.T @ xi
    psi_xi = np.zeros((Q, Q))
    for g in joint_blocks(data, K1):
        psi_xi[np.ix_(g, g)] = inv_wishart(rng, *psi_xi_posterior(nu, J, S[np.ix_(g, g)]))
    # (5) scale move: (W, β, α) → c·(W, β, α), ξ and Ψ_ξ kept (b → cb, Ψ → c²Ψ)
    resid = W - X @ B.T - _zb(data, b.reshape(J, K1, q))
    c = scale_move(rng, W.size, resid, beta, np.tile(beta_prec, K1), alpha, scale)
    W, beta, mean, alpha, b = c * W, c * beta, c * mean, c * alpha, c * b
    b_mean = c * b_mean
    psi = psi_xi * np.outer(alpha, alpha)
    new = []
    for k in range(K1):
        s, t = slice(k * q, (k + 1) * q), slice(k * p, (k + 1) * p)
        new.append(
            replace(
                cores[k],
                beta=beta[t],
                b=b[:, s],
                sigma2=1.0,
                psi=psi[s, s],
                alpha=alpha[s],
                beta_mean=mean[t],
                b_mean=b_mean[:, s],
            )
        )
    return NominalState(tuple(new), W, psi)


def _floor_pd(m: np.ndarray, floor: float) -> np.ndarray:
    """The symmetric ``m`` with its eigenvalues raised to at least ``floor``."""
    val, vec = np.linalg.eigh(0.5 * (m + m.T))
    return (vec * np.maximum(val, floor)) @ vec.T


def _share_start(data: ModelData, rank: np.ndarray, cores: tuple) -> tuple[tuple, np.ndarray]:
    """The start of the random intercepts of ``2l.nominal`` from the clusters' category
    shares (no random numbers): per cluster ``z_jk = Φ⁻¹((n_jk + ½)/(n_jk + n_jr + 1))``,
    the probit of category k against the reference r; their covariance over clusters less
    the mean binomial noise (``p(1 − p)/(m·φ(z)²)`` on the diagonal), floored to positive
    definite, is Ψ's block of the intercepts, and the centred ``z_j`` shrunk by
    ``Ψ_kk/(Ψ_kk + noise_jk)`` the intercepts b. The other entries keep the cores' moment
    starts; without an intercept among the random effects, those alone."""
    Z = data.Z.obs
    q, J, K1 = Z.shape[1], data.n_clusters, len(cores)
    psi = _block_diag([c.psi for c in cores])
    ones = np.flatnonzero(np.all(Z == 1.0, axis=0)) if Z.shape[0] else np.zeros(0, np.intp)
    if ones.size == 0 or J < 2:
        return cores, psi
    c0 = int(ones[0])
    codes = data.seg_obs.codes
    n = np.bincount(codes * (K1 + 1) + rank, minlength=J * (K1 + 1)).reshape(J, K1 + 1)
    m = n[:, 1:] + n[:, :1] + 1.0
    p = (n[:, 1:] + 0.5) / m
    z = ndtri(p)
    noise = p * (1 - p) / (m * (np.exp(-0.5 * z**2) / np.sqrt(2 * np.pi)) ** 2)
    zc = z - z.mean(axis=0)
    S = zc.T @ zc / (J - 1)
    S[np.diag_indices(K1)] -= noise.mean(axis=0)
    S = _floor_pd(S, 0.01)
    idx = np.arange(K1) * q + c0
    psi[np.ix_(idx, idx)] = S
    for g in joint_blocks(data, K1):  # cross entries of a block may need the floor too
        psi[np.ix_(g, g)] = _floor_pd(psi[np.ix_(g, g)], 1e-8 * np.trace(psi[np.ix_(g, g)]))
    shrink = np.diag(S) / (np.diag(S) + noise)  # (J, K − 1)
    out = []
    for k, core_state in enumerate(cores):
        s = slice(k * q, (k + 1) * q)
        b = core_state.b.copy()
        b[:, c0] = shrink[:, k] * zc[:, k]
        out.append(replace(core_state, b=b, psi=psi[s, s], alpha=np.sqrt(np.diag(psi[s, s]))))
    return tuple(out), psi
