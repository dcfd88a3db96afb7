"""One Gibbs step, (0)-(4), of C chains from their design's sums: the numpy twin of
:func:`mlimpute.models.kernels.step.step` (the same arguments, the same numbers).

The chains run one after another; within a chain every operation runs on whole arrays of
clusters or rows, in the kernel's order: each sum over clusters or rows is sequential
(``np.cumsum`` along the summed axis, or ``np.bincount`` per cluster), each product and
quotient is formed as the kernel forms it, and the small matrices go through
:mod:`mlimpute.models.ordered.linalg`.
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
from mlimpute.models.ordered.mh import mh_2x2
from mlimpute.models.ordered.sums import dot

__all__ = ["step"]


def seq(v: np.ndarray) -> np.ndarray | float:
    """Sum along the first axis, element after element from 0.0 (a loop's
    ``s = 0.0; s += v[i]``): zero for no elements, never ``-0.0``."""
    if v.shape[0] == 0:
        return np.zeros(v.shape[1:]) if v.ndim > 1 else 0.0
    return np.cumsum(v, axis=0)[-1] + 0.0


def _floored(a: np.ndarray) -> np.ndarray:
    """A working scale with ``|α| ≤ 1e-150`` (or NaN) replaced by 1e-150."""
    return np.where(np.abs(a) > 1e-150, a, 1e-150)


def _linear(M: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """``Σ_a M[..., a] β_a``, the terms added one after another from 0.0."""
    out = np.zeros(M.shape[:-1])
    for a in range(M.shape[-1]):
        out = out + M[..., a] * beta[a]
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
    b, E[b], σ², Ψ, α and a status (0, or 1 + the chain whose precision did not
    factorise)."""
    C = len(gens)
    p, n = XTs[0].shape
    J, q = Zty.shape
    out = (
        np.empty((C, p)),
        np.empty((C, p)),
        np.empty((C, J, q)),
        np.empty((C, J, q)),
        np.empty(C),
        np.empty((C, q, q)),
        np.empty((C, q)),
    )
    env = (XTs, y, codes, ZT, ZtZ, Zty, ZtX, XtX, Xty, nu, mh_steps, mh_step, bidx, bptr)
    env += (bool(ones), XT0, dmask, float(yty))
    for c in range(C):
        got = _chain(gens[c], int(xk[c]), s2_in[c], psi_in[c], alpha_in[c], scale_in[c],
                     floor[c], beta_in[c], env)  # fmt: skip
        if got is None:
            return (*out, 1 + c)
        for arr, val in zip(out, got, strict=True):
            arr[c] = val
    return (*out, 0)


def _chain(gen, k, s2, psi, alpha, scale, floor, beta_in, env):
    """One chain's step; None where a precision does not factorise."""
    XTs, y, codes, ZT, ZtZ, Zty, ZtX, XtX, Xty, nu, mh_steps, mh_step, bidx, bptr = env[:14]
    ones, XT0, dmask, yty = env[14:]
    s2 = float(s2)
    p, n = XTs[0].shape
    J, q = Zty.shape
    Sk = ZtX[k]  # (J, q, p)
    psi = np.array(psi, dtype=np.float64)
    alpha = np.array(alpha, dtype=np.float64)
    ZtZ_s = ZtZ / s2
    # (0) collapsed MH on Ψ, then α | Ψ
    if mh_steps > 0:
        cc = (Zty - _linear(Sk, beta_in)) / s2
        mh_2x2(gen, psi, alpha, ZtZ_s, cc, scale, nu, mh_steps, mh_step)
    # (1) P_j, L_j, [W w]; β marginal of b
    Pinv = np.empty((q, q))
    inv_spd(psi, Pinv)
    A = np.zeros((p, p))
    h = np.zeros(p)
    L = None
    if q == 1:
        P = ZtZ[:, 0, 0] / s2 + Pinv[0, 0]
        lj = np.sqrt(np.maximum(P, 1e-300))
        fj = 1.0 / (s2 * lj)
        W1 = np.empty((p + 1, J))
        W1[:p] = Sk[:, 0, :].T * fj
        W1[p] = Zty[:, 0] * fj
        for a in range(p):
            for e in range(a + 1):
                A[a, e] = dot(W1[a], W1[e])
            h[a] = dot(W1[a], W1[p])
    elif q == 2:
        l00 = np.sqrt(np.maximum(ZtZ_s[:, 0, 0] + Pinv[0, 0], 1e-300))
        l10 = (ZtZ_s[:, 1, 0] + Pinv[1, 0]) / l00
        l11 = np.sqrt(np.maximum((ZtZ_s[:, 1, 1] + Pinv[1, 1]) - l10 * l10, 1e-300))
        Cm = np.concatenate([Sk, Zty[:, :, None]], axis=2) / s2  # (J, 2, p + 1)
        w0 = Cm[:, 0, :] / l00[:, None]
        w1 = (Cm[:, 1, :] - l10[:, None] * w0) / l11[:, None]
        terms = w0[:, :p, None] * w0[:, None, :] + w1[:, :p, None] * w1[:, None, :]
        got = seq(terms)  # (p, p + 1): column p is h's
        A[:, :] = got[:, :p]
        h[:] = got[:, p]
        L = (l00, l10, l11)
    else:
        P = ZtZ_s + Pinv
        L = cholesky_batched(P, 1e-300)
        Cm = np.concatenate([Sk, Zty[:, :, None]], axis=2) / s2
        Ww = np.empty_like(Cm)  # (J, q, p + 1): L_j⁻¹ column by column
        for a in range(p + 1):
            Ww[:, :, a] = forward_batched(L, Cm[:, :, a])
        terms = np.zeros((J, p, p + 1))
        for u in range(q):
            terms = terms + Ww[:, u, :p, None] * Ww[:, u, None, :]
        got = seq(terms)
        A[:, :] = got[:, :p]
        h[:] = got[:, p]
    low = np.tril(A)
    XtXk = XtX[k]
    v1 = XtXk / s2 - low
    v2 = XtXk.T / s2 - low
    sym = np.tril((v1 + v2) / 2)
    A = sym + np.tril(sym, -1).T
    h = Xty[k] / s2 - h
    LA = np.zeros((p, p))
    mean = np.empty(p)
    if not solve_spd(A, h, LA, mean):
        return None
    beta = np.empty(p)
    draw_chol(gen, LA, mean, beta)
    # b_j | β and E[b_j | β̄]
    zq = gen.standard_normal(J * q).reshape(J, q)
    inv_s2 = 1.0 / s2
    s = _linear(Sk, beta)  # (J, q)
    sm = _linear(Sk, mean)
    rc = None
    if q == 1:
        ipp = 1.0 / P
        rc = Zty[:, 0] - s[:, 0]
        b = (rc * inv_s2 * ipp + zq[:, 0] * np.sqrt(ipp))[:, None]
        bm = ((Zty[:, 0] - sm[:, 0]) * inv_s2 / (lj * lj))[:, None]
    elif q == 2:
        l00, l10, l11 = L
        hb = (Zty - s) / s2
        col = (Zty - sm) / s2
        t0 = hb[:, 0] / l00 + zq[:, 0]
        x1 = ((hb[:, 1] - l10 * (hb[:, 0] / l00)) / l11 + zq[:, 1]) / l11
        b = np.stack([(t0 - l10 * x1) / l00, x1], axis=1)
        m0 = col[:, 0] / l00
        m1 = ((col[:, 1] - l10 * m0) / l11) / l11
        bm = np.stack([(m0 - l10 * m1) / l00, m1], axis=1)
    else:
        hb = (Zty - s) / s2
        col = (Zty - sm) / s2
        b = backward_batched(L, forward_batched(L, hb) + zq)
        bm = backward_batched(L, forward_batched(L, col))
    # (2) parameter expansion: α | ξ
    alpha = _floored(alpha)
    xi = b / alpha
    G2 = np.zeros((q, q))
    ha = np.zeros(q)
    r = None
    if ones:
        x0 = xi[:, 0]
        G2[0, 0] = seq(ZtZ[:, 0, 0] * (x0 * x0))
        ha[0] = seq(x0 * rc)
    else:
        fit = np.zeros(n)
        Xk = XTs[k]
        for a in range(p):
            fit = fit + beta[a] * Xk[a]
        r = y - fit
        Wn = [ZT[u] * xi[codes, u] for u in range(q)]
        cols = [Wn[u] * Wn[v] for u in range(q) for v in range(u + 1)]
        cols += [Wn[u] * r for u in range(q)]
        got = seq(np.stack(cols, axis=1))
        t = 0
        for u in range(q):
            for v in range(u + 1):
                G2[u, v] = got[t]
                t += 1
        ha[:] = got[t:]
    for u in range(q):
        for v in range(u + 1):
            G2[u, v] = G2[u, v] / s2
            G2[v, u] = G2[u, v]
        G2[u, u] += 2.0 / (scale[u] * scale[u])
        ha[u] = ha[u] / s2
    La = np.zeros((q, q))
    m_a = np.empty(q)
    if not solve_spd(G2, ha, La, m_a):
        return None
    a_new = np.empty(q)
    draw_chol(gen, La, m_a, a_new)
    a_new = _floored(a_new)
    # (3) σ² | β, b
    rss = 0.0
    if ones:
        a0 = float(a_new[0])
        bl, XtXl, Xtyl = beta.tolist(), XtXk.tolist(), Xty[k].tolist()
        bxxb = 0.0
        bxy = 0.0
        for a in range(p):
            t = 0.0
            for e in range(p):
                t += XtXl[a][e] * bl[e]
            bxxb += bl[a] * t
            bxy += bl[a] * Xtyl[a]
        bj = xi[:, 0] * a0
        cr = float(seq(bj * rc))
        nb = float(seq(ZtZ[:, 0, 0] * (bj * bj)))
        rss = ((yty - 2.0 * bxy) + bxxb) - 2.0 * cr + nb
        if not rss >= 1e-3 * (yty + bxxb + nb):  # cancellation: a pass over the rows
            res = np.array(y, dtype=np.float64)
            for a in range(p):
                xa = XTs[k][a] if dmask[a] else XT0[a]
                res = res - beta[a] * xa
            res = res - xi[codes, 0] * a0
            rss = dot(res, res)
    else:
        if q == 1:  # z b α as the kernel writes it for one and two columns (no 0.0)
            fitted = (ZT[0] * xi[codes, 0]) * a_new[0]
        elif q == 2:
            fitted = (ZT[0] * xi[codes, 0]) * a_new[0] + (ZT[1] * xi[codes, 1]) * a_new[1]
        else:
            fitted = np.zeros(n)
            for u in range(q):
                fitted = fitted + (ZT[u] * xi[codes, u]) * a_new[u]
        e = r - fitted
        rss = float(seq(e * e))
    s2_new = rss / gen.chisquare(max(n, 1))
    s2_out = max(s2_new, floor)
    # (4) Ψ_ξ | ξ per covariance block, Ψ = diag(α) Ψ_ξ diag(α)
    S = seq(xi[:, :, None] * xi[:, None, :])  # (q, q)
    psi_xi = np.zeros((q, q))
    for t in range(bptr.shape[0] - 1):
        idx = np.asarray(bidx[bptr[t] : bptr[t + 1]])
        kb = idx.shape[0]
        sub = S[np.ix_(idx, idx)] + np.where(np.eye(kb, dtype=bool), 2 * nu, 0.0)
        got = np.empty((kb, kb))
        inv_wishart(gen, nu + kb - 1 + J, sub, got)
        psi_xi[np.ix_(idx, idx)] = got
    psi_new = psi_xi * (a_new[:, None] * a_new[None, :])
    return beta, mean, xi * a_new, bm, s2_out, psi_new, a_new
