"""One Gibbs step, (0)-(4), of C chains from their design's sums: the numpy twin of
:func:`mlimpute.models.kernels.step.step` (the same arguments, the same numbers).

Every operation runs on whole arrays of chains × clusters (and, chain by chain, of rows),
in the kernel's order: each sum over clusters or rows is sequential (``np.cumsum`` along
the summed axis), each dot product over clusters takes the kernel's four running sums,
each product and quotient is formed as the kernel forms it; the small matrices of each
chain (its β and α precisions, its Ψ) and its random draws go through
:mod:`mlimpute.models.ordered.linalg` and :mod:`mlimpute.models.ordered.mh` chain by
chain, each chain drawing from its own generator in the kernel's order.
"""

from __future__ import annotations

import numpy as np

from mlimpute.models.ordered.linalg import (
    backward_batched,
    cholesky_batched,
    draw_chol,
    forward_batched,
    inv_spd,
    inv_wishart,
    solve_spd,
)
from mlimpute.models.ordered.mh import mh_2x2, mh_2x2_chains
from mlimpute.models.ordered.sums import dot, lane_dots_first

__all__ = ["step"]


def seq(v: np.ndarray, axis: int = 0) -> np.ndarray | float:
    """Sum along ``axis``, element after element from 0.0 (a loop's ``s = 0.0;
    s += v[i]``): zero for no elements, never ``-0.0``."""
    if v.shape[axis] == 0:
        shape = v.shape[:axis] + v.shape[axis + 1 :]
        return np.zeros(shape) if shape else 0.0
    if v.ndim == 1:
        return np.cumsum(v)[-1] + 0.0
    return np.cumsum(v, axis=axis).take(-1, axis=axis) + 0.0


def _lower(a: int, p: int) -> list[int]:
    """The columns of row a of β's precision the step sums (0..a), and p (h's)."""
    return [*range(a + 1), p]


def _floored(a: np.ndarray) -> np.ndarray:
    """A working scale with ``|α| ≤ 1e-150`` (or NaN) replaced by 1e-150."""
    return np.where(np.abs(a) > 1e-150, a, 1e-150)


def _linear(M: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``Σ_a M[c, ..., a] B[c, a]`` for each chain c, the terms added one after another
    from 0.0."""
    out = np.zeros(M.shape[:-1])
    extra = (None,) * (M.ndim - 2)
    for a in range(M.shape[-1]):
        out = out + M[..., a] * B[(slice(None), a, *extra)]
    return out


def step(
    gens,
    XTs,
    xk,
    y,
    codes,
    ZT,
    ZtZ,
    Zty,
    ZtX,
    XtX,
    Xty,
    s2_in,
    psi_in,
    alpha_in,
    scale_in,
    floor,
    beta_in,
    nu,
    mh_steps,
    mh_step,
    bidx,
    bptr,
    ones,
    XT0,
    dmask,
    yty,
):
    """Steps (0)-(4) for every chain c, as the kernel of the same name: returns β, E[β],
    b, E[b], σ², Ψ, α and a status (0, or 1 + the first chain whose precision did not
    factorise; the arrays are then incomplete)."""
    C = len(gens)
    p, n = XTs[0].shape
    J, q = Zty.shape
    xk = np.asarray(xk, dtype=np.intp)
    s2 = np.asarray(s2_in, dtype=np.float64)
    s2c = s2[:, None]
    s2d = s2[:, None, None]
    Sk = ZtX[xk]  # (C, J, q, p)
    XtXk, Xtyk = XtX[xk], Xty[xk]
    psi = np.array(psi_in, dtype=np.float64)
    alpha = np.array(alpha_in, dtype=np.float64)
    scale = np.asarray(scale_in, dtype=np.float64)
    ZtZ_s = ZtZ[None] / s2[:, None, None, None]  # (C, J, q, q)
    beta_o, mean_o = np.empty((C, p)), np.empty((C, p))
    s2_o, alpha_o = np.empty(C), np.empty((C, q))
    failed = (beta_o, mean_o, np.empty((C, J, q)), np.empty((C, J, q)), s2_o)
    failed += (np.empty((C, q, q)), alpha_o)
    # (0) collapsed MH on Ψ, then α | Ψ
    if mh_steps > 0:
        cc = (Zty[None] - _linear(Sk, np.asarray(beta_in, dtype=np.float64))) / s2d
        if C == 1:  # one chain: its scalars without numpy's calls on one-element arrays
            mh_2x2(gens[0], psi[0], alpha[0], ZtZ_s[0], cc[0], scale[0], nu, mh_steps, mh_step)
        else:
            mh_2x2_chains(gens, psi, alpha, ZtZ_s, cc, scale, nu, mh_steps, mh_step)
    # (1) P_j, L_j, [W w]; β marginal of b
    Pinv = np.empty((C, q, q))
    for c in range(C):
        inv_spd(psi[c], Pinv[c])
    A = np.zeros((C, p, p))
    h = np.zeros((C, p))
    if q == 1:
        P = ZtZ[None, :, 0, 0] / s2c + Pinv[:, 0, 0][:, None]  # (C, J)
        lj = np.sqrt(np.maximum(P, 1e-300))
        fj = 1.0 / (s2c * lj)
        W1 = np.empty((J, C, p + 1))  # the clusters first: the sums over them run down
        W1[:, :, :p] = np.transpose(Sk[:, :, 0, :], (1, 0, 2)) * fj.T[:, :, None]
        W1[:, :, p] = Zty[:, 0, None] * fj.T
        for a in range(p):  # row a of A: the products with rows 0..a
            A[:, a, : a + 1] = lane_dots_first(W1[:, :, a, None] * W1[:, :, : a + 1])
        h[:] = lane_dots_first(W1[:, :, :p] * W1[:, :, p, None])
    elif q == 2:
        l00 = np.sqrt(np.maximum(ZtZ_s[:, :, 0, 0] + Pinv[:, None, 0, 0], 1e-300))
        l10 = (ZtZ_s[:, :, 1, 0] + Pinv[:, None, 1, 0]) / l00
        l11 = np.sqrt(np.maximum((ZtZ_s[:, :, 1, 1] + Pinv[:, None, 1, 1]) - l10 * l10, 1e-300))
        Cm = np.concatenate([Sk, np.broadcast_to(Zty[None, :, :, None], (C, J, q, 1))], axis=3)
        Cm = Cm / s2[:, None, None, None]  # (C, J, 2, p + 1)
        w0 = Cm[:, :, 0, :] / l00[:, :, None]
        w1 = (Cm[:, :, 1, :] - l10[:, :, None] * w0) / l11[:, :, None]
        for a in range(p):  # row a of A and h, summed over the clusters
            e = _lower(a, p)
            got = seq(w0[:, :, a, None] * w0[:, :, e] + w1[:, :, a, None] * w1[:, :, e], axis=1)
            A[:, a, : a + 1] = got[:, : a + 1]
            h[:, a] = got[:, a + 1]
    else:
        P = ZtZ_s + Pinv[:, None]
        L = cholesky_batched(P.reshape(C * J, q, q), 1e-300)
        Cm = np.concatenate([Sk, np.broadcast_to(Zty[None, :, :, None], (C, J, q, 1))], axis=3)
        Cm = (Cm / s2[:, None, None, None]).reshape(C * J, q, p + 1)
        Ww = np.empty_like(Cm)  # L_j⁻¹ column by column
        for a in range(p + 1):
            Ww[:, :, a] = forward_batched(L, Cm[:, :, a])
        Ww = Ww.reshape(C, J, q, p + 1)
        for a in range(p):
            e = _lower(a, p)
            terms = np.zeros((C, J, a + 2))
            for u in range(q):
                terms = terms + Ww[:, :, u, a, None] * Ww[:, :, u, e]
            got = seq(terms, axis=1)
            A[:, a, : a + 1] = got[:, : a + 1]
            h[:, a] = got[:, a + 1]
    low = np.tril(A)
    v1 = XtXk / s2d - low
    v2 = np.swapaxes(XtXk, 1, 2) / s2d - low
    sym = np.tril((v1 + v2) / 2)
    A = sym + np.swapaxes(np.tril(sym, -1), 1, 2)
    h = Xtyk / s2c - h
    LA = np.zeros((C, p, p))
    for c in range(C):
        if not solve_spd(A[c], h[c], LA[c], mean_o[c]):
            return (*failed, 1 + c)
        draw_chol(gens[c], LA[c], mean_o[c], beta_o[c])
    beta, mean = beta_o, mean_o
    # b_j | β and E[b_j | β̄]
    zq = np.stack([g.standard_normal(J * q).reshape(J, q) for g in gens]) if C else None
    inv_s2 = 1.0 / s2
    s = _linear(Sk, beta)  # (C, J, q)
    sm = _linear(Sk, mean)
    rc = None
    if q == 1:
        ipp = 1.0 / P
        rc = Zty[None, :, 0] - s[:, :, 0]
        b = (rc * inv_s2[:, None] * ipp + zq[:, :, 0] * np.sqrt(ipp))[:, :, None]
        bm = ((Zty[None, :, 0] - sm[:, :, 0]) * inv_s2[:, None] / (lj * lj))[:, :, None]
    elif q == 2:
        hb = (Zty[None] - s) / s2d
        col = (Zty[None] - sm) / s2d
        t0 = hb[:, :, 0] / l00 + zq[:, :, 0]
        x1 = ((hb[:, :, 1] - l10 * (hb[:, :, 0] / l00)) / l11 + zq[:, :, 1]) / l11
        b = np.stack([(t0 - l10 * x1) / l00, x1], axis=2)
        m0 = col[:, :, 0] / l00
        m1 = ((col[:, :, 1] - l10 * m0) / l11) / l11
        bm = np.stack([(m0 - l10 * m1) / l00, m1], axis=2)
    else:
        hb = ((Zty[None] - s) / s2d).reshape(C * J, q)
        col = ((Zty[None] - sm) / s2d).reshape(C * J, q)
        b = backward_batched(L, forward_batched(L, hb) + zq.reshape(C * J, q))
        bm = backward_batched(L, forward_batched(L, col))
        b, bm = b.reshape(C, J, q), bm.reshape(C, J, q)
    # (2) parameter expansion: α | ξ
    alpha = _floored(alpha)
    xi = b / alpha[:, None, :]
    G2 = np.zeros((C, q, q))
    ha = np.zeros((C, q))
    r = None
    if ones:
        x0 = xi[:, :, 0]
        G2[:, 0, 0] = seq(ZtZ[None, :, 0, 0] * (x0 * x0), axis=1)
        ha[:, 0] = seq(x0 * rc, axis=1)
    else:
        r = np.empty((C, n))
        for c in range(C):
            Xk = XTs[int(xk[c])]
            fit = np.zeros(n)
            for a in range(p):
                fit = fit + beta[c, a] * Xk[a]
            r[c] = y - fit
            Wn = [ZT[u] * xi[c, codes, u] for u in range(q)]
            cols = [Wn[u] * Wn[v] for u in range(q) for v in range(u + 1)]
            cols += [Wn[u] * r[c] for u in range(q)]
            got = seq(np.stack(cols, axis=1))
            G2[c][np.tril_indices(q)] = got[: q * (q + 1) // 2]
            ha[c] = got[q * (q + 1) // 2 :]
    for u in range(q):
        for v in range(u + 1):
            G2[:, u, v] = G2[:, u, v] / s2
            G2[:, v, u] = G2[:, u, v]
        G2[:, u, u] += 2.0 / (scale[:, u] * scale[:, u])
        ha[:, u] = ha[:, u] / s2
    La = np.zeros((C, q, q))
    m_a = np.empty((C, q))
    for c in range(C):
        if not solve_spd(G2[c], ha[c], La[c], m_a[c]):
            return (*failed, 1 + c)
        draw_chol(gens[c], La[c], m_a[c], alpha_o[c])
    a_new = _floored(alpha_o)
    # (3) σ² | β, b
    if ones:
        a0 = a_new[:, 0]
        bxxb = np.zeros(C)
        bxy = np.zeros(C)
        for a in range(p):
            t = np.zeros(C)
            for e in range(p):
                t = t + XtXk[:, a, e] * beta[:, e]
            bxxb = bxxb + beta[:, a] * t
            bxy = bxy + beta[:, a] * Xtyk[:, a]
        bj = xi[:, :, 0] * a0[:, None]
        cr = seq(bj * rc, axis=1)
        nb = seq(ZtZ[None, :, 0, 0] * (bj * bj), axis=1)
        rss = ((yty - 2.0 * bxy) + bxxb) - 2.0 * cr + nb
        for c in np.flatnonzero(~(rss >= 1e-3 * (yty + bxxb + nb))):  # cancellation
            res = np.array(y, dtype=np.float64)
            for a in range(p):
                res = res - beta[c, a] * (XTs[int(xk[c])][a] if dmask[a] else XT0[a])
            res = res - xi[c, codes, 0] * a0[c]
            rss[c] = dot(res, res)
    else:
        rss = np.empty(C)
        for c in range(C):
            zx = [ZT[u] * xi[c, codes, u] for u in range(q)]
            if q == 1:  # z b α as the kernel writes it for one and two columns (no 0.0)
                fitted = zx[0] * a_new[c, 0]
            elif q == 2:
                fitted = zx[0] * a_new[c, 0] + zx[1] * a_new[c, 1]
            else:
                fitted = np.zeros(n)
                for u in range(q):
                    fitted = fitted + zx[u] * a_new[c, u]
            e = r[c] - fitted
            rss[c] = seq(e * e)
    for c in range(C):
        s2_new = float(rss[c]) / gens[c].chisquare(max(n, 1))
        s2_o[c] = max(s2_new, float(floor[c]))
    # (4) Ψ_ξ | ξ per covariance block, Ψ = diag(α) Ψ_ξ diag(α)
    S = seq(xi[:, :, :, None] * xi[:, :, None, :], axis=1)  # (C, q, q)
    psi_xi = np.zeros((C, q, q))
    for t in range(bptr.shape[0] - 1):
        idx = np.asarray(bidx[bptr[t] : bptr[t + 1]])
        kb = idx.shape[0]
        sub = S[:, idx[:, None], idx[None, :]] + np.where(np.eye(kb, dtype=bool), 2 * nu, 0.0)
        df = nu + kb - 1 + J
        for c in range(C):
            got = np.empty((kb, kb))
            inv_wishart(gens[c], df, sub[c], got)
            psi_xi[c][np.ix_(idx, idx)] = got
    psi_new = psi_xi * (a_new[:, :, None] * a_new[:, None, :])
    return beta, mean, xi * a_new[:, None, :], bm, s2_o, psi_new, a_new, 0
