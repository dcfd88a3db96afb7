"""One Gibbs step of :class:`~mlimpute.models.ml_norm.MultilevelNorm` for a block of chains.

The same arithmetic as :meth:`MultilevelNorm.gibbs` and :meth:`MultilevelNorm.draw_missing`
on two of the paths they take with the default half-t prior, a homoscedastic residual and
no row weights: a random intercept ``(1 | g)`` (without the split design of many rows per
cluster), and a random part of two or more columns (random slopes, ``(1 + x | g)``,
``(1 + x || g)``...), for C chains at once: the per-cluster work runs on arrays with a
leading chain axis, and every random number is drawn from the chain's own generator in
the order the single-chain step draws it. The random part is one the imputations do not
change, or, for the analysis model of a model-based imputation (:func:`stackable`), one
they change (each chain's sums of its own Z); :func:`gibbs_block` also takes each
chain's own response (a predictor's model fitted to its completed column). Each chain's
numbers are therefore bit-for-bit those of the single-chain step:

* element-wise operations (divisions by σ², the 1×1 precisions and Cholesky factors, the
  draws of b, the expansion) run on the stacked arrays: element-wise arithmetic does not
  depend on the shape it runs in;
* everything that sums (segment sums, ``X'X``, ``X'y``, the sums over clusters, the
  residual sum of squares) runs per chain, on arrays of the same shape and memory layout
  as the single-chain step uses, and so do the LAPACK calls (numpy's stacked
  ``cholesky`` and ``inv`` call the same routine on each matrix); where the design does not change
  with the imputations, its sums are computed once and shared, which gives the same
  numbers;
* with random slopes, the per-cluster q×q work (the precisions, their Cholesky factors
  written out over q, the triangular solves, the draws of b and their means) runs on the
  chains × clusters stacked along the one leading axis the single-chain functions take
  (the same functions, row by row the same operations), and the collapsed
  Metropolis–Hastings proposals on a correlated 2×2 Ψ run all chains through one kernel,
  :func:`~mlimpute.models.ml_norm.mh_2x2_stacked`, which the single chain also uses.

:func:`eligible` says which models and data this path covers; the batched chain runner
(:mod:`mlimpute.sampler.batched`) uses it for nothing else. Where the kernels serve the
data, :func:`step_block` (:func:`~mlimpute.models.ml_norm_compiled.usable`) and
:func:`draw_missing_block` (:func:`~mlimpute.models.ml_norm_compiled.compiled_draws`)
hand the block to them (compiled or their numpy twins, one call for the block, the
numbers of the single-chain step, which takes them too); the arithmetic above serves
the rest (a correlated block of Ψ other than one 2×2, for instance) and the analysis
model of a model-based imputation (:func:`gibbs_block`).
"""

from __future__ import annotations

import numpy as np

from mlimpute.models._ml_norm_static import block_path, static
from mlimpute.models.base import ModelData
from mlimpute.models.linalg import (
    _trtrs,
    backward_batched,
    cho_solve_lower,
    chol_batched,
    draw_chol,
    forward_batched,
    inv_gamma,
    solve_spd,
)
from mlimpute.models.ml_norm import (
    MultilevelNorm,
    MultilevelNormState,
    _kernel,
    _psi_collapsed_mh,
    mh_2x2_stacked,
    psi_xi_posterior,
    start_states,
)

__all__ = [
    "eligible",
    "stackable",
    "init_block",
    "step_block",
    "gibbs_block",
    "draw_missing_block",
    "param_block",
    "random_slopes",
]


def eligible(model: object, data: ModelData) -> bool:
    """Whether ``model`` on ``data`` takes the path :func:`step_block` reproduces."""
    if type(model) is not MultilevelNorm or model.prior == "iw":
        return False
    return block_path(data)


def stackable(model: object, data: ModelData) -> bool:
    """Whether :func:`step_block` reproduces ``model``'s step on ``data``: the paths of
    :func:`eligible`, and a random part of two or more columns that the imputations change
    (the analysis model of a model-based imputation, ``(1 + x | g)`` with x imputed; each
    chain's per-cluster sums of its own Z)."""
    if eligible(model, data):
        return True
    if type(model) is not MultilevelNorm or model.prior == "iw":
        return False
    if data.extra_terms or data.Z is None or not data.Z.dynamic:
        return False
    return static(data).q >= 2


def random_slopes(data: ModelData) -> bool:
    """Whether ``data`` takes the random-slope path (else the random intercept's)."""
    return data.Z is not None and not static(data).ones


class _Shared:
    """The design sums of one step: computed once when the design is static (every chain
    sees the same X), else per chain; the response is each data's observed rows (static)
    or, with ``ys``, each chain's own."""

    def __init__(self, datas: list[ModelData], ys: list[np.ndarray] | None = None) -> None:
        d0 = datas[0]
        self.seg = d0.seg_obs
        self.ys = [d0.y_obs] * len(datas) if ys is None else ys
        by_id = {id(y): self.seg.sum(y)[:, None] for y in self.ys}
        self.Zty = [by_id[id(y)] for y in self.ys]  # (J, 1) per chain
        if d0.X.dynamic:
            self.X = [d.X.obs for d in datas]
            self.Xmis = [d.X.mis for d in datas]
        else:
            self.X = [d0.X.obs] * len(datas)
            self.Xmis = [d0.X.mis] * len(datas)
        self._cache: dict[tuple[int, int], tuple] = {}

    def sums(self, c: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``Z'X`` (J, 1, p), ``X'X`` and ``X'y`` of chain c (unscaled)."""
        X, y = self.X[c], self.ys[c]
        key = (id(X), id(y))
        got = self._cache.get(key)
        if got is None:
            got = self._cache[key] = (self.seg.sum(X)[:, None, :], X.T @ X, X.T @ y)
        return got


def init_block(
    model: MultilevelNorm, rngs: list[np.random.Generator], datas: list[ModelData]
) -> list[MultilevelNormState]:
    """``model.init(rngs[c], datas[c])`` for every chain, bit-for-bit: the start (least
    squares, moments; no random numbers) by the model's own code, once for chains that
    share a static design, then its Gibbs step by :func:`step_block`."""
    return step_block(model, rngs, start_states(model, datas), datas)


def step_block(
    model: MultilevelNorm,
    rngs: list[np.random.Generator],
    states: list[MultilevelNormState],
    datas: list[ModelData],
) -> list[MultilevelNormState]:
    """One Gibbs step of every chain: ``model.step(rngs[c], states[c], datas[c])`` for each
    c, bit-for-bit, with the per-cluster arithmetic stacked over the chains."""
    kernel = _kernel(model, datas[0])
    if kernel is not None:
        return kernel.step_chains(model, rngs, states, datas, MultilevelNormState)
    return gibbs_block(model, rngs, states, datas)


def gibbs_block(
    model: MultilevelNorm,
    rngs: list[np.random.Generator],
    states: list[MultilevelNormState],
    datas: list[ModelData],
    ys: list[np.ndarray] | None = None,
) -> list[MultilevelNormState]:
    """``model.gibbs(rngs[c], states[c], datas[c], ys[c])`` for each c, bit-for-bit
    (:meth:`MultilevelNorm.gibbs`'s arithmetic, never the kernels'); ``ys`` (each chain's
    response on its data's observed rows; a random intercept only) defaults to each
    data's ``y_obs``."""
    if random_slopes(datas[0]):
        if ys is not None:
            raise ValueError("gibbs_block takes responses ys for a random intercept only")
        return _step_slopes(model, rngs, states, datas)
    C = len(states)
    sh = _Shared(datas, ys)
    st = static(datas[0])
    seg = sh.seg
    p = sh.X[0].shape[1]
    J = datas[0].n_clusters
    s2 = np.array([s.sigma2 for s in states], dtype=np.float64)  # (C,)
    s2b = s2[:, None, None, None]
    psi = np.stack([s.psi for s in states])  # (C, 1, 1)
    # (1) the cluster precision P_j = Z'Z/σ² + 1/Ψ, L = √P, [W w] = [Z'X Z'y]/σ²/L
    ZtZ_s = st.ZtZ[None] / s2b  # (C, J, 1, 1)
    P = ZtZ_s + (1.0 / psi)[:, None]
    L = np.sqrt(P)
    sums = [sh.sums(c) for c in range(C)]
    Cm = np.empty((C, J, 1, p + 1))  # [Z'X Z'y] of each chain (copies: exact)
    Cm[:, :, :, :p] = np.stack([sm[0] for sm in sums])
    Cm[:, :, :, p] = np.stack(sh.Zty)
    Ww = Cm / s2b / L
    XtX = np.stack([sm[1] for sm in sums])
    Xty = np.stack([sm[2] for sm in sums])
    G = np.empty((C, p, p))
    g = np.empty((C, p))
    for c in range(C):
        W, wv = Ww[c][:, :, :p], Ww[c][:, :, p]
        G[c] = np.einsum("jqp,jqr->pr", W, W)
        g[c] = np.einsum("jqp,jq->p", W, wv)
    A = XtX / s2[:, None, None] - G
    h = Xty / s2[:, None] - g
    A = (A + A.transpose(0, 2, 1)) / 2
    means = _solve_spd_block(A, h)
    betas = [draw_chol(rngs[c], LA, mean) for c, (mean, LA) in enumerate(means)]
    means = [mean for mean, _ in means]
    # b_j | β (draw_precision_batched, q = 1) and E[b_j | β̄]
    hb = np.empty((C, J, 1))
    cb = np.empty((C, J, 1))
    for c in range(C):
        ZtX = sums[c][0]
        hb[c] = sh.Zty[c] - ZtX @ betas[c]
        cb[c] = sh.Zty[c] - ZtX @ means[c]
    hb = hb / s2[:, None, None]
    z = np.stack([rngs[c].standard_normal((J, 1)) for c in range(C)])
    pp = P[:, :, 0, 0]
    b = (hb[:, :, 0] / pp + z[:, :, 0] / np.sqrt(pp))[:, :, None]
    Lq = L[:, :, :, 0]  # (C, J, 1)
    b_mean = cb / s2[:, None, None] / Lq / Lq
    # (2) parameter expansion
    alpha = np.stack([s.alpha for s in states])  # (C, 1)
    alpha = np.where(np.abs(alpha) > 1e-150, alpha, 1e-150)
    xi = b / alpha[:, None, :]
    Wn = np.take(xi, seg.codes, axis=1)  # (C, n, 1)
    rs = []
    WtW = np.empty((C, 1, 1))
    ha = np.empty((C, 1))
    for c in range(C):
        r = sh.ys[c] - sh.X[c] @ betas[c]
        Wc = Wn[c]
        WtW[c] = Wc.T @ Wc
        ha[c] = Wc.T @ r
        rs.append(r)
    scale = np.stack([s.scale for s in states])  # (C, 1)
    prec = WtW / s2[:, None, None] + (2.0 / scale**2)[:, :, None]  # np.diag of one value
    sol = _solve_spd_block(prec, ha / s2[:, None])
    a = np.stack([draw_chol(rngs[c], sol[c][1], sol[c][0]) for c in range(C)])  # (C, 1)
    a = np.where(np.abs(a) > 1e-150, a, 1e-150)
    bs = xi * a[:, None, :]
    # (3) σ² | β, b and (4) Ψ_ξ | ξ (one scalar block), each chain's draws in its order
    sigma2 = []
    pxi = np.empty(C)
    for c in range(C):
        resid = rs[c] - Wn[c] @ a[c]
        s2c = float(resid @ resid) / rngs[c].chisquare(max(resid.size, 1))
        sigma2.append(max(s2c, states[c].sigma2_floor))
        S = xi[c].T @ xi[c]
        pxi[c] = (2 * model.nu * 1.0 + S[0, 0]) / rngs[c].chisquare(model.nu + 1 - 1 + J)
    psi = pxi[:, None, None] * (a[:, :, None] * a[:, None, :])  # Ψ_ξ ∘ outer(α, α)
    return _next_states(states, betas, bs, sigma2, psi, a, means, b_mean)


def _next_states(states, betas, bs, sigma2, psi, alpha, means, b_mean):
    """Each chain's new :class:`MultilevelNormState` (scale and σ² floor carried over)."""
    return [
        MultilevelNormState(
            betas[c],
            bs[c],
            sigma2[c],
            psi[c],
            alpha[c],
            s.scale,
            means[c],
            b_mean[c],
            None,
            s.sigma2_floor,
        )
        for c, s in enumerate(states)
    ]


class _SlopeSums:
    """The design sums of the random-slope step that do not change with σ², Ψ or the draws:
    per-cluster ``Z'Z`` (J, q, q), ``Z'X`` (J, q, p), ``Z'y`` (J, q), ``X'X`` and ``X'y``,
    by the calls :func:`~mlimpute.models.ml_norm._cluster_stats` and ``_Weights.gram``
    make; once when the design is static (every chain sees the same X and Z), else per
    chain. ``ZtZ`` and ``Zty`` are (J, q, q) and (J, q), or (C, J, q, q) and (C, J, q) for
    a random part the imputations change; ``Z`` is (n, q) or (C, n, q)."""

    def __init__(self, datas: list[ModelData]) -> None:
        d0 = datas[0]
        self.seg, self.y = d0.seg_obs, d0.y_obs
        seg, y = self.seg, self.y
        self.dynamic_z = d0.Z.dynamic
        if self.dynamic_z:  # each chain's own random part
            self.Zs = [d.Z.obs for d in datas]
            self.Z = np.stack(self.Zs)
            self.ZtZ = np.stack([seg.sum(Z[:, :, None] * Z[:, None, :]) for Z in self.Zs])
            self.Zty = np.stack([seg.sum(Z * y[:, None]) for Z in self.Zs])
        else:
            self.Z = d0.Z.obs
            self.Zs = [self.Z] * len(datas)
            self.ZtZ = static(d0).ZtZ
            self.Zty = seg.sum(self.Z * y[:, None])
        self.X = [d.X.obs for d in datas] if d0.X.dynamic else [d0.X.obs] * len(datas)
        self._cache: dict[tuple[int, int], tuple] = {}

    def sums(self, c: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``Z'X``, ``X'X`` and ``X'y`` of chain c (unscaled)."""
        X, Z = self.X[c], self.Zs[c]
        key = (id(X), id(Z))
        got = self._cache.get(key)
        if got is None:
            ZtX = self.seg.sum(Z[:, :, None] * X[:, None, :])
            got = self._cache[key] = (ZtX, X.T @ X, X.T @ self.y)
        return got


def _step_slopes(
    model: MultilevelNorm,
    rngs: list[np.random.Generator],
    states: list[MultilevelNormState],
    datas: list[ModelData],
) -> list[MultilevelNormState]:
    """:func:`step_block` for a static random part of q ≥ 2 columns: steps (0)–(4) of
    :meth:`MultilevelNorm.gibbs` on its general path, chains × clusters stacked."""
    C = len(states)
    d0 = datas[0]
    st = static(d0)
    sh = _SlopeSums(datas)
    seg, y, Z = sh.seg, sh.y, sh.Z
    J, q = sh.ZtZ.shape[-3], st.q
    p = sh.X[0].shape[1]
    sums = [sh.sums(c) for c in range(C)]
    s2 = np.array([s.sigma2 for s in states], dtype=np.float64)  # (C,)
    ZtZ_s = (sh.ZtZ if sh.dynamic_z else sh.ZtZ[None]) / s2[:, None, None, None]  # (C, J, q, q)
    psi = np.stack([s.psi for s in states])
    alpha = np.stack([s.alpha for s in states])
    scale = np.stack([s.scale for s in states])
    # (0) collapsed MH on Ψ, then α | Ψ
    if model.mh_steps and st.mh:
        beta0 = np.stack([s.beta for s in states])
        c0 = (sh.Zty - _cluster_products(sums, beta0)) / s2[:, None, None]  # (C, J, q)
        if q == 2 and d0.random_correlated == (True,):
            n, step = model.mh_steps, model.mh_step
            zs = np.empty((C, n, 3))
            us = np.empty((C, n))
            for c, rng in enumerate(rngs):  # each chain's normals, then its uniforms
                zs[c] = rng.standard_normal((n, 3))
                us[c] = rng.random(n)
            # as _mh_2x2 scales and logs them (element-wise: the same values)
            psi = mh_2x2_stacked(psi, ZtZ_s, c0, scale, model.nu, step, zs * step, np.log(us))
            rate = model.nu * np.linalg.inv(psi)[:, [0, 1], [0, 1]] + 1 / scale**2
            a = np.stack([inv_gamma(rngs[c], (model.nu + 2) / 2, rate[c]) for c in range(C)])
            alpha = np.where(alpha < 0, -1.0, 1.0) / np.sqrt(a)
        else:  # other block structures: the single-chain update, chain by chain
            got = [
                _psi_collapsed_mh(
                    rngs[c],
                    psi[c],
                    alpha[c],
                    ZtZ_s[c],
                    c0[c],
                    scale[c],
                    model.nu,
                    d0,
                    model.mh_steps,
                    model.mh_step,
                )
                for c in range(C)
            ]
            psi = np.stack([g[0] for g in got])
            alpha = np.stack([g[1] for g in got])
    # (1) P_j = Z'Z/σ² + Ψ⁻¹, L_j, [W w] = L⁻¹[Z'X Z'y]/σ² over chains × clusters
    Cm = np.empty((C, J, q, p + 1))
    Cm[..., :p] = np.stack([sm[0] for sm in sums])
    Cm[..., p] = sh.Zty
    P = (ZtZ_s + np.linalg.inv(psi)[:, None]).reshape(C * J, q, q)
    L = chol_batched(P)
    Ww = forward_batched(L, (Cm / s2[:, None, None, None]).reshape(C * J, q, p + 1))
    Ww = Ww.reshape(C, J, q, p + 1)
    W, wv = Ww[..., :p], Ww[..., p]
    XtX = np.stack([sm[1] for sm in sums])
    Xty = np.stack([sm[2] for sm in sums])
    A = XtX / s2[:, None, None] - np.einsum("cjqp,cjqr->cpr", W, W)
    h = Xty / s2[:, None] - np.einsum("cjqp,cjq->cp", W, wv)
    A = (A + A.transpose(0, 2, 1)) / 2
    solved = _solve_spd_block(A, h)
    betas = [draw_chol(rngs[c], LA, mean) for c, (mean, LA) in enumerate(solved)]
    means = [mean for mean, _ in solved]
    hb = (sh.Zty - _cluster_products(sums, np.stack(betas))) / s2[:, None, None]
    z = np.stack([rngs[c].standard_normal((J, q)) for c in range(C)])
    b = backward_batched(L, forward_batched(L, hb.reshape(C * J, q)) + z.reshape(C * J, q))
    b = b.reshape(C, J, q)
    cb = (sh.Zty - _cluster_products(sums, np.stack(means))) / s2[:, None, None]
    b_mean = backward_batched(L, forward_batched(L, cb.reshape(C * J, q))).reshape(C, J, q)
    # (2) parameter expansion: α | ξ, each chain's products, the factorisations stacked
    alpha = np.where(np.abs(alpha) > 1e-150, alpha, 1e-150)
    xi = b / alpha[:, None, :]
    rs = []
    Zc = Z if sh.dynamic_z else Z[None]
    Wns = Zc * np.take(xi, seg.codes, axis=1)  # (C, n, q): Z ∘ ξ of each row
    G = np.empty((C, q, q))
    ha = np.empty((C, q))
    for c in range(C):
        r = y - sh.X[c] @ betas[c]
        Wn = Wns[c]
        G[c] = Wn.T @ Wn
        ha[c] = Wn.T @ r
        rs.append(r)
    D = np.zeros((C, q, q))  # np.diag(2 / A²) of each chain: α_k ~ N(0, A_k²/2)
    D[:, np.arange(q), np.arange(q)] = 2.0 / scale**2
    prec = G / s2[:, None, None] + D
    ha = ha / s2[:, None]
    a_new = []
    sigma2 = []
    for c, (m_a, La) in enumerate(_solve_spd_block(prec, ha)):
        a_c = draw_chol(rngs[c], La, m_a)
        a_c = np.where(np.abs(a_c) > 1e-150, a_c, 1e-150)
        # (3) σ² | β, b
        resid = rs[c] - Wns[c] @ a_c
        s2c = float(resid @ resid) / rngs[c].chisquare(max(resid.size, 1))
        sigma2.append(max(s2c, states[c].sigma2_floor))
        a_new.append(a_c)
    a = np.stack(a_new)
    # (4) Ψ_ξ | ξ per covariance block, Ψ = diag(α) Ψ_ξ diag(α)
    psi = _psi_xi_block(model, rngs, xi, d0) * (a[:, :, None] * a[:, None, :])
    bs = xi * a[:, None, :]
    return _next_states(states, betas, bs, sigma2, psi, a, means, b_mean)


def _cluster_products(sums: list, beta: np.ndarray) -> np.ndarray:
    """``Z_j'X_j β`` of every chain and cluster: (C, J, q) from each chain's (J, q, p)
    cluster sums and its β (C, p)."""
    S = np.stack([sm[0] for sm in sums])
    return np.matmul(S, beta[:, None, :, None])[..., 0]


def _psi_xi_block(
    model: MultilevelNorm, rngs: list[np.random.Generator], xi: np.ndarray, data: ModelData
) -> np.ndarray:
    """``model._psi_xi(rngs[c], xi[c], data)`` for every chain (C, q, q), bit-for-bit: each
    block's inverse-Wishart draw with the random numbers from each chain's generator and
    the factorisations stacked over the chains (:func:`_inv_wishart_block`)."""
    C, J, q = xi.shape
    out = np.zeros((C, q, q))
    S = np.stack([x.T @ x for x in xi])
    for g in model._blocks(data):
        idx = np.ix_(g, g)
        df, sub = psi_xi_posterior(model.nu, J, S[:, idx[0], idx[1]])
        out[:, idx[0], idx[1]] = _inv_wishart_block(rngs, df, sub)
    return out


def _inv_wishart_block(rngs: list[np.random.Generator], df: float, scale: np.ndarray) -> np.ndarray:
    """``inv_wishart(rngs[c], df, scale[c])`` for every c (C, k, k), bit-for-bit: the
    Bartlett factor's numbers drawn chain by chain in its order, the Cholesky factors and
    products stacked (numpy calls the same BLAS/LAPACK routine on each matrix), the
    triangular solve per chain (LAPACK ``trtrs``, as :func:`inv_wishart`)."""
    C, k = scale.shape[0], scale.shape[1]
    if k == 1:
        return np.stack([[[scale[c, 0, 0] / rngs[c].chisquare(df)]] for c in range(C)])
    A = np.zeros((C, k, k))
    diag, low = np.diag_indices(k), np.tril_indices(k, -1)
    for c, rng in enumerate(rngs):
        A[c][diag] = np.sqrt(rng.chisquare(df - np.arange(k)))
        A[c][low] = rng.standard_normal(k * (k - 1) // 2)
    R = np.linalg.cholesky(scale)
    eye = np.eye(k)
    Ainv = np.stack([_trtrs(A[c].T, eye, lower=0, trans=0)[0] for c in range(C)])
    T = R @ Ainv
    return T @ T.transpose(0, 2, 1)


def _solve_spd_block(A: np.ndarray, h: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """``solve_spd(A[c], h[c])`` for every c: the Cholesky factors by one call of numpy's
    stacked factorisation (LAPACK ``potrf`` on each matrix, as for one matrix), the solves
    per matrix; where some matrix does not factorise, :func:`solve_spd` on each (its
    jitter)."""
    try:
        L = np.linalg.cholesky(A)
    except np.linalg.LinAlgError:
        return [solve_spd(A[c], h[c]) for c in range(A.shape[0])]
    return [(cho_solve_lower(L[c], h[c]), L[c]) for c in range(A.shape[0])]


def draw_missing_block(
    rngs: list[np.random.Generator],
    states: list[MultilevelNormState],
    datas: list[ModelData],
) -> np.ndarray:
    """``model.draw_missing(rngs[c], states[c], datas[c])`` for every chain, stacked
    (C, n_mis)."""
    d0 = datas[0]
    from mlimpute.models import ml_norm_compiled

    if ml_norm_compiled.compiled_draws(d0):
        return ml_norm_compiled.draw_missing_chains(rngs, states, datas)
    C, n_mis = len(states), d0.n_mis
    if random_slopes(d0):  # x'β + z'b_j + e, each chain's own products
        z = np.stack([rng.standard_normal(n_mis) for rng in rngs])
        e = np.sqrt(np.array([s.sigma2 for s in states], dtype=np.float64))[:, None] * z
        xzb = np.empty((C, n_mis))
        for c in range(C):
            s, d = states[c], datas[c]
            zb = np.einsum("nq,nq->n", d.Z.mis, np.take(s.b, d.codes_mis, axis=0))
            xzb[c] = d.X.mis @ s.beta + zb
        return xzb + e
    e = np.empty((C, n_mis))
    xb = np.empty((C, n_mis))
    dynamic = d0.X.dynamic
    for c in range(C):
        s = states[c]
        e[c] = np.sqrt(s.sigma2) * rngs[c].standard_normal(n_mis)
        X = datas[c].X.mis if dynamic else d0.X.mis
        xb[c] = X @ s.beta
    b0 = np.stack([s.b[:, 0] for s in states])  # (C, J)
    return xb + np.take(b0, d0.codes_mis, axis=1) + e


def param_block(states: list[MultilevelNormState], data: ModelData) -> np.ndarray:
    """``model.param_vector`` of every chain, stacked (C, k)."""
    st = static(data)
    from mlimpute.models.ml_norm_compiled import stacked  # (the step's arrays, if it made them)

    got = stacked(states)
    betas, psi, s2 = got["beta"], got["psi"], got["sigma2"]
    return np.concatenate((betas, psi[:, st.psi_rows, st.psi_cols], s2[:, None]), axis=1)
