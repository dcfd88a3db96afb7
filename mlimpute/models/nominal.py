"""Unordered categories: (multilevel) multinomial probit with correlated cluster effects.

Model. For K observed categories (reference r = the first), K − 1 latent utilities
``w_jk = x'β_k + z'b_jk + ε_k``, ``ε ~ N(0, I)``, and ``y = argmax(0, w_1..)`` (0 standing
for the reference). For ``2l.nominal`` a cluster's random effects of all utilities are
stacked, ``b_j = (b_j1, …, b_j,K−1)`` ((K − 1)·q values), and drawn jointly,
``b_j ~ N(0, Ψ)`` with a full (K − 1)q × (K − 1)q covariance Ψ (as jomo does for a
categorical variable): a cluster that pushes its rows towards one category and away from
two others at once is a correlation of −1… +1 between the categories' effects, which the
sampler estimates. Where the formula makes random effects uncorrelated (``||``, separate
terms), each such block is kept apart within a category and correlated across categories
(an intercept with the intercepts, a slope with the same slope).

Why this model: it is the multinomial probit of Albert & Chib (1993) with the latent
errors' covariance fixed at the identity. Fixing it removes the scale and rotation
non-identifiability of the full multinomial probit (which jomo handles with a constrained
covariance draw) and keeps every step conjugate and vectorised; what it gives up is
correlation between the utilities' row-level errors, which matters little for imputation
(category probabilities given x and the cluster are still flexible). The dependence
between categories within a cluster is carried by Ψ. Earlier versions gave each utility
its own random effects, independent across categories; with one cluster effect on a latent
scale cut into three categories that lost an eighth of the between-cluster variance of the
first category's indicator and inflated the middle one's. A multilevel PMM on a single
latent score would not respect an unordered variable; a multinomial logit would need
Pólya-Gamma augmentation per category for the same structure.

One Gibbs step of ``2l.nominal`` (one grouping factor):

1. For each k in turn (a loop over categories, vectorised over rows), ``w_k`` from its
   normal truncated by the observed category: above ``max(0, w_{−k})`` where ``y = k``,
   below ``w_y`` where ``y`` is another non-reference category, below 0 where ``y = r``.
2. (β, b) jointly given (W, Ψ): the K − 1 equations share only b, so with
   ``P_j = Ψ⁻¹ + I_{K−1} ⊗ Z_j'Z_j`` the stacked ``β = (β_1, …, β_{K−1})`` is drawn from its
   marginal with b integrated out (Woodbury over clusters, as in
   :class:`~mlimpute.models.ml_norm.MultilevelNorm`; precision
   ``I ⊗ X'X + diag(ridge) − Σ_j C_j'P_j⁻¹C_j``, ``C_j = I ⊗ Z_j'X_j``, plus the
   :func:`~mlimpute.models._latent.slope_precision` ridge), then
   ``b_j | β ~ N(P_j⁻¹ vec(Z_j'(W_j − X_jβ_k)), P_j⁻¹)`` for all clusters at once. The
   blocked draw keeps the intercepts from random-walking along the β₀/mean(b) ridge (the
   plain b-then-β Gibbs sampler does when clusters are informative), for every category at
   once, which a per-category blocked draw conditional on the other categories' effects
   would not (the correlation in Ψ would then couple the categories' ridges).
3. Parameter expansion as in :class:`~mlimpute.models.ml_norm.MultilevelNorm`:
   ``Ψ = diag(α) Ψ_ξ diag(α)``, ``b_j = α∘ξ_j``; given ξ and β the scales α of one
   category's effects are a q-dimensional regression of ``w_k − Xβ_k`` on ``z∘ξ_{g,k}``
   (prior ``α ~ N(0, A²/2)``; computed from the cluster sums, no pass over the rows).
4. ``Ψ_ξ | ξ ~ IW(ν + Q − 1 + J, 2ν·I + Σ_j ξ_jξ_j')`` per covariance block of size Q.
   With steps 3–4 the prior of Ψ is Huang & Wand's (2013) with ν = 2: a half-t(2, A) on
   each SD (``A = 1`` for an intercept on the latent scale, ``1/sd(z)`` for a slope) and
   uniform marginal correlations, the prior of ``2l.norm`` and of the other latent models.
5. A scale move (marginal data augmentation; Liu & Sabatti 2000, Imai & van Dyk 2005):
   ``(W, β, α) → c·(W, β, α)`` with ξ and Ψ_ξ kept (so ``b → cb``, ``Ψ → c²Ψ``); the
   truncation by y is unchanged for c > 0, and with the Jacobian ``c^d`` (d = the number
   of utilities, coefficients and scales) and the Haar measure dc/c,
   ``c² ~ Gamma(d/2, rate T/2)``, T the sum of squares of the residuals ``W − Xβ − Zb``,
   of the coefficients weighted by their prior precision and of ``α·√2/A``
   (:func:`scale_move`). Without it the latent scale, and with it Ψ, grows only through
   the utilities' draws, by about a quarter of the remaining gap per step.

Start of ``2l.nominal`` with one grouping factor (no random numbers, then one step): the
utilities of a row at +½ for its own category, −½ where it is the reference, 0 for the
other categories (a valid point of the truncation; coding the others −½ pushed the
clusters' mean utilities towards a negative correlation); each category's core from the
moments of these utilities; with a random intercept, the intercepts' block of Ψ from the
clusters' shares, ``z_jk = Φ⁻¹((n_jk + ½)/(n_jk + n_jr + 1))`` (category k against the
reference), their covariance over clusters less the mean binomial noise, floored to
positive definite, and the intercepts b from the centred ``z_j`` shrunk accordingly. The
moments of the ±½ utilities alone gave about 0.05× the stationary Ψ, which took 40–50
steps to reach; now the reviewer's design (40 clusters × 15) is there by about 5–15.
The single-level model and several grouping factors start from utilities at ±½.

Missing values: the argmax of fresh utilities. Cost per step: K − 1 passes over the rows
for the utilities (O(n_obs·K²)), the cluster sums O(n_obs·q·(p + q + K)), and per cluster a
Cholesky factorisation and a triangular solve of size Q = (K − 1)q, O(J·Q²·(Q + K·p)),
plus one (K − 1)p system for β.

The single-level ``nominal`` and ``2l.nominal`` with several grouping factors (whose core
is :class:`~mlimpute.models.ml_multi.MultiTermNorm`) keep one normal-model Gibbs step per
utility with σ² = 1 (independent random effects per category for the latter).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.special import ndtri

from mlimpute.models._latent import (
    core_param_names,
    core_param_vector,
    linear_core,
    slope_precision,
    truncnorm,
)
from mlimpute.models._ml_norm_static import static
from mlimpute.models.base import ModelBase, ModelData
from mlimpute.models.linalg import (
    backward_batched,
    chol_batched,
    draw_chol,
    draw_precision_batched,
    forward_batched,
    inv_wishart,
    solve_spd,
)
from mlimpute.models.ml_norm import MultilevelNorm
from mlimpute.models.ml_norm_psi import psi_xi_posterior
from mlimpute.models.registry import register

__all__ = ["MultinomialProbit", "MultilevelMultinomialProbit", "NominalState"]

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


def _present(data: ModelData) -> tuple[np.ndarray, np.ndarray]:
    """Observed categories (sorted codes) and each observed row's rank among them."""
    levels, rank = np.unique(data.y_obs.astype(np.intp), return_inverse=True)
    return levels, rank


def _joint(data: ModelData, n_utilities: int) -> bool:
    """Whether the categories' random effects are drawn jointly: one grouping factor (the
    core is :class:`MultilevelNorm`) and at least one non-reference category."""
    return n_utilities > 0 and type(linear_core(data)) is MultilevelNorm


def _draw_utility(
    rng: np.random.Generator, W: np.ndarray, k: int, eta: np.ndarray, rank: np.ndarray
) -> None:
    """Draw ``W[:, k]`` in place from ``N(eta, 1)`` truncated by the observed category."""
    rows = np.arange(W.shape[0])
    others = np.delete(W, k, axis=1)
    best_other = np.maximum(others.max(axis=1, initial=-np.inf), 0.0)
    chosen = np.where(rank > 0, W[rows, np.maximum(rank - 1, 0)], 0.0)
    is_k = rank == k + 1
    lower = np.where(is_k, best_other, -np.inf)
    upper = np.where(is_k, np.inf, chosen)
    W[:, k] = truncnorm(rng, eta, lower, upper)


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


class _NominalBase(ModelBase):
    def init(self, rng: np.random.Generator, data: ModelData) -> NominalState:
        """Utilities ±0.5 by the observed category (0 for another category's row and
        the start of Ψ from the clusters' shares, :func:`_share_start`, where the effects
        are joint), each core's start, then one step."""
        levels, rank = _present(data)
        K = len(levels)
        W = np.where(rank[:, None] == np.arange(1, K)[None, :], 0.5, -0.5)
        core = linear_core(data)
        if _joint(data, K - 1):  # moment starts per category (no random numbers)
            W = np.where(rank[:, None] > 0, W + 0.5, W)  # another category's row: 0
            cores = tuple(core.start_state(data, W[:, k], sigma2=1.0) for k in range(K - 1))
            cores, psi = _share_start(data, rank, cores)
            return self.step(rng, NominalState(cores, W, psi), data)
        cores = tuple(
            core.start(rng, data, W[:, k], sigma2=1.0, beta_prec=slope_precision(data))
            for k in range(K - 1)
        )
        return self.step(rng, NominalState(cores, W), data)

    def step(self, rng: np.random.Generator, state: NominalState, data: ModelData) -> NominalState:
        """Each category's utilities, then the joint draw of the coefficients, random
        effects and their covariance (:func:`joint_gibbs`); single-level and with several
        grouping factors, each category's utilities then its core's Gibbs step."""
        core = linear_core(data)
        _, rank = _present(data)
        W = state.latent.copy()
        cores = list(state.cores)
        K1 = W.shape[1]
        if _joint(data, K1):
            for k in range(K1):  # loop over categories, not rows
                _draw_utility(rng, W, k, core.predict(cores[k], data, "obs"), rank)
            return joint_gibbs(rng, state, data, W, slope_precision(data), core.nu)
        for k in range(K1):  # loop over categories, not rows
            _draw_utility(rng, W, k, core.predict(cores[k], data, "obs"), rank)
            cores[k] = core.gibbs(
                rng, cores[k], data, W[:, k], sigma2=1.0, beta_prec=slope_precision(data)
            )
        return NominalState(tuple(cores), W)

    def draw_missing(
        self, rng: np.random.Generator, state: NominalState, data: ModelData
    ) -> np.ndarray:
        """The category of the largest fresh utility (the reference's is 0)."""
        levels, _ = _present(data)
        core = linear_core(data)
        W = np.stack([core.predict(c, data, "mis") for c in state.cores], axis=1)
        W = W + rng.standard_normal(W.shape)
        k = np.where(W.max(axis=1, initial=-np.inf) > 0, W.argmax(axis=1) + 1, 0)
        return levels[k].astype(np.float64)

    def param_names(self, data: ModelData) -> list[str]:
        """The core's names per non-reference category code, ``[code] name``; with joint
        random effects then the covariances between categories' effects,
        ``cov([code] effect,[code'] effect'|group)``."""
        levels, _ = _present(data)
        names = core_param_names(linear_core(data), data)
        out = [f"[{lev}] {n}" for lev in levels[1:] for n in names]
        K1 = len(levels) - 1
        if _joint(data, K1):
            q, z, g = data.Z.obs.shape[1], data.Z.names, data.group
            lev = levels[1:]
            out += [
                f"cov([{lev[i // q]}] {z[i % q]},[{lev[j // q]}] {z[j % q]}|{g})"
                for i, j in _cross_entries(data, K1)
            ]
        return out

    def param_vector(self, state: NominalState, data: ModelData) -> np.ndarray:
        """As :meth:`param_names`."""
        core = linear_core(data)
        parts = [core_param_vector(core, c, data) for c in state.cores]
        K1 = len(state.cores)
        if _joint(data, K1):
            psi = state.psi
            if psi is None:
                psi = _block_diag([c.psi for c in state.cores])
            entries = np.array(_cross_entries(data, K1), dtype=np.intp).reshape(-1, 2)
            parts.append(psi[entries[:, 0], entries[:, 1]])
        return np.concatenate(parts) if parts else np.zeros(0)

    def random_effect_names(self, data: ModelData) -> list[str]:
        """``<category>:<effect>`` for each non-reference category (in code order) and each
        random effect of its utility, e.g. ``b:Intercept``, ``c:Intercept``; category
        labels where the data carry them (``data.categories``), codes otherwise."""
        levels, _ = _present(data)
        names = linear_core(data).random_effect_names(data)
        labels = data.categories
        cats = [labels[k] if labels is not None else k for k in levels[1:].tolist()]
        return [f"{c}:{n}" for c in cats for n in names]

    def random_effects(self, state: NominalState, data: ModelData) -> tuple[np.ndarray, list[str]]:
        """Each category's utility random effects, side by side: (J, (K − 1)·q), on the
        latent scale (a cluster's effect on choosing that category over the reference)."""
        core = linear_core(data)
        blocks = [core.random_effects(c, data)[0] for c in state.cores]
        b = np.concatenate(blocks, axis=1) if blocks else np.zeros((data.n_clusters, 0))
        return b, self.random_effect_names(data)


@register(
    "2l.nominal", multilevel=True, kinds=("nominal", "binary"), default_for=[("nominal", 1, True)]
)
class MultilevelMultinomialProbit(_NominalBase):
    """Multilevel multinomial probit for an unordered categorical variable, the categories'
    random effects correlated (one (K − 1)q × (K − 1)q covariance)."""


@register(
    "nominal",
    multilevel=False,
    kinds=("nominal", "binary"),
    aliases=("polyreg",),
    default_for=[("nominal", 1, False)],
)
class MultinomialProbit(_NominalBase):
    """Single-level multinomial probit for an unordered categorical variable."""
