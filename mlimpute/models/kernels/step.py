"""One compiled Gibbs step, (0)-(4), of C chains from their design's sums.

Importing this module imports numba (:mod:`mlimpute.models.kernels`).
"""

from __future__ import annotations

import numpy as np

from mlimpute.models.kernels.linalg import (
    _backward,
    _cholesky,
    _draw_chol,
    _forward,
    _inv_spd,
    _inv_wishart,
    _solve_spd,
)
from mlimpute.models.kernels.mh import _mh_2x2
from mlimpute.models.kernels.options import jit
from mlimpute.models.kernels.sums import _dot, _dots

__all__ = ["step"]

#: SHA-256 of all the kernel modules' sources (this line blanked): see the package's docstring
SOURCES = "e7c15ed93913fec74e7049c4c8d97476a48d1b07862883f07c34f61d83a0c7e9"


@jit
def step(  # pragma: no cover - compiled
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
    """Steps (0)-(4) for every chain c (its generator ``gens[c]``, its design ``xk[c]``
    of the K in XTs, ZtX, XtX, Xty). Returns β, E[β], b, E[b], σ², Ψ, α and a status (0,
    or 1 + the chain whose β precision did not factorise). ``yty``: y'y
    (:func:`~mlimpute.models.kernels.sums.sum_of_squares`, computed once; read only for a
    random intercept)."""
    C = len(gens)
    p, n = XTs[0].shape
    J, q = Zty.shape
    beta_o = np.empty((C, p))
    mean_o = np.empty((C, p))
    b_o = np.empty((C, J, q))
    bm_o = np.empty((C, J, q))
    s2_o = np.empty(C)
    psi_o = np.empty((C, q, q))
    alpha_o = np.empty((C, q))
    # per chain scratch
    ZtZ_s = np.empty((J, q, q))
    cc = np.empty((J, q))
    Pinv = np.empty((q, q))
    P = np.empty((J, q, q))
    Lj = np.zeros((J, q, q))
    Cm = np.empty((q, p + 1))
    Ww = np.empty((q, p + 1))
    col = np.empty(q)
    wcol = np.empty(q)
    A = np.empty((p, p))
    h = np.empty(p)
    LA = np.zeros((p, p))
    hb = np.empty(q)
    t1 = np.empty(q)
    zq = np.empty((J, q))
    r = np.empty(0 if ones else n)  # residuals: a random intercept needs none (below)
    Wn = np.empty(q)
    fj = np.empty(J)
    rc = np.empty(J)
    W1 = np.empty((p + 1, J))
    pick = np.empty(p + 1, dtype=np.int64)
    wdot = np.empty(p + 1)
    G2 = np.empty((q, q))
    ha = np.empty(q)
    La = np.zeros((q, q))
    m_a = np.empty(q)
    S = np.empty((q, q))
    psi_xi = np.empty((q, q))
    for c in range(C):
        gen = gens[c]
        k = xk[c]
        s2 = s2_in[c]
        psi = psi_in[c].copy()
        alpha = alpha_in[c].copy()
        scale = scale_in[c]
        beta = beta_o[c]
        mean = mean_o[c]
        for j in range(J if q > 1 or mh_steps > 0 else 0):  # (q = 1: in (1) below)
            for u in range(q):
                for v in range(q):
                    ZtZ_s[j, u, v] = ZtZ[j, u, v] / s2
        # (0) collapsed MH on Ψ, then α | Ψ
        if mh_steps > 0:
            for j in range(J):
                for u in range(q):
                    s = 0.0
                    for a in range(p):
                        s += ZtX[k, j, u, a] * beta_in[c, a]
                    cc[j, u] = (Zty[j, u] - s) / s2
            _mh_2x2(gen, psi, alpha, ZtZ_s, cc, scale, nu, mh_steps, mh_step)
        # (1) P_j, L_j, [W w]; β marginal of b
        _inv_spd(psi, Pinv)
        A[:, :] = 0.0
        h[:] = 0.0
        if q == 1:  # the loop below's w_j as rows of W1 (p + 1, J), then their products
            pinv = Pinv[0, 0]
            for j in range(J):
                P[j, 0, 0] = ZtZ[j, 0, 0] / s2 + pinv
                lj = np.sqrt(max(P[j, 0, 0], 1e-300))
                Lj[j, 0, 0] = lj
                fj[j] = 1.0 / (s2 * lj)  # one division for the cluster
            Sk = ZtX[k, :, 0, :]
            for a in range(p):  # row by row (W1's layout): half the time of j outside
                wa = W1[a]
                for j in range(J):
                    wa[j] = Sk[j, a] * fj[j]
            for j in range(J):
                W1[p, j] = Zty[j, 0] * fj[j]
            for a in range(p):  # rows 0..a and p of W1 against row a, by passes of four
                for e in range(a + 1):
                    pick[e] = e
                pick[a + 1] = p
                _dots(W1[a], W1, pick, a + 2, wdot)
                for e in range(a + 1):
                    A[a, e] = wdot[e]
                h[a] = wdot[a + 1]
        for j in range(J if q > 1 else 0):
            if q == 2:  # the same operations as below, written out in scalars
                l00 = np.sqrt(max(ZtZ_s[j, 0, 0] + Pinv[0, 0], 1e-300))
                l10 = (ZtZ_s[j, 1, 0] + Pinv[1, 0]) / l00
                l11 = np.sqrt(max((ZtZ_s[j, 1, 1] + Pinv[1, 1]) - l10 * l10, 1e-300))
                Lj[j, 0, 0], Lj[j, 1, 0], Lj[j, 1, 1] = l00, l10, l11
                for a in range(p + 1):
                    c0 = (ZtX[k, j, 0, a] if a < p else Zty[j, 0]) / s2
                    c1 = (ZtX[k, j, 1, a] if a < p else Zty[j, 1]) / s2
                    w0 = c0 / l00
                    Ww[0, a] = w0
                    Ww[1, a] = (c1 - l10 * w0) / l11
                for a in range(p):
                    for e in range(a + 1):
                        A[a, e] += Ww[0, a] * Ww[0, e] + Ww[1, a] * Ww[1, e]
                    h[a] += Ww[0, a] * Ww[0, p] + Ww[1, a] * Ww[1, p]
                continue
            for u in range(q):
                for v in range(q):
                    P[j, u, v] = ZtZ_s[j, u, v] + Pinv[u, v]
            _cholesky(P[j], Lj[j], 1e-300)
            for u in range(q):
                for a in range(p):
                    Cm[u, a] = ZtX[k, j, u, a] / s2
                Cm[u, p] = Zty[j, u] / s2
            for a in range(p + 1):
                for u in range(q):
                    col[u] = Cm[u, a]
                _forward(Lj[j], col, wcol)
                for u in range(q):
                    Ww[u, a] = wcol[u]
            for a in range(p):
                for e in range(a + 1):
                    s = 0.0
                    for u in range(q):
                        s += Ww[u, a] * Ww[u, e]
                    A[a, e] += s
                s = 0.0
                for u in range(q):
                    s += Ww[u, a] * Ww[u, p]
                h[a] += s
        for a in range(p):
            for e in range(a + 1):
                v1 = XtX[k, a, e] / s2 - A[a, e]
                v2 = XtX[k, e, a] / s2 - A[a, e]
                A[a, e] = (v1 + v2) / 2
                A[e, a] = A[a, e]
            h[a] = Xty[k, a] / s2 - h[a]
        if not _solve_spd(A, h, LA, mean):
            return beta_o, mean_o, b_o, bm_o, s2_o, psi_o, alpha_o, 1 + c
        _draw_chol(gen, LA, mean, beta)
        # b_j | β and E[b_j | β̄]
        for j in range(J):
            for u in range(q):
                zq[j, u] = gen.standard_normal()
        b = b_o[c]
        bm = bm_o[c]
        inv_s2 = 1.0 / s2
        for j in range(J):
            if q == 1:  # the lines below with one division and one root a cluster
                s = 0.0
                sm = 0.0
                for a in range(p):
                    s += ZtX[k, j, 0, a] * beta[a]
                    sm += ZtX[k, j, 0, a] * mean[a]
                ipp = 1.0 / P[j, 0, 0]
                lj = Lj[j, 0, 0]
                rc[j] = Zty[j, 0] - s  # the cluster's sum of y - Xβ (a random intercept)
                b[j, 0] = rc[j] * inv_s2 * ipp + zq[j, 0] * np.sqrt(ipp)
                bm[j, 0] = (Zty[j, 0] - sm) * inv_s2 / (lj * lj)
                continue
            for u in range(q):
                s = 0.0
                sm = 0.0
                for a in range(p):
                    s += ZtX[k, j, u, a] * beta[a]
                    sm += ZtX[k, j, u, a] * mean[a]
                hb[u] = (Zty[j, u] - s) / s2
                col[u] = (Zty[j, u] - sm) / s2
            if q == 2:  # _forward, + z, _backward written out
                l00, l10, l11 = Lj[j, 0, 0], Lj[j, 1, 0], Lj[j, 1, 1]
                t0 = hb[0] / l00 + zq[j, 0]
                x1 = ((hb[1] - l10 * (hb[0] / l00)) / l11 + zq[j, 1]) / l11
                b[j, 1] = x1
                b[j, 0] = (t0 - l10 * x1) / l00
                m0 = col[0] / l00
                m1 = ((col[1] - l10 * m0) / l11) / l11
                bm[j, 1] = m1
                bm[j, 0] = (m0 - l10 * m1) / l00
            else:
                _forward(Lj[j], hb, t1)
                for u in range(q):
                    t1[u] += zq[j, u]
                _backward(Lj[j], t1, b[j])
                _forward(Lj[j], col, t1)
                _backward(Lj[j], t1, bm[j])
        # (2) parameter expansion: α | ξ
        for u in range(q):
            if not abs(alpha[u]) > 1e-150:
                alpha[u] = 1e-150
        for j in range(J):
            for u in range(q):
                b[j, u] = b[j, u] / alpha[u]  # ξ, in place
        xi = b
        G2[:, :] = 0.0
        ha[:] = 0.0
        if ones:  # Z a column of ones: the sums below per cluster, no pass over the rows
            g00 = 0.0
            h0 = 0.0
            for j in range(J):  # Z'Z = n_j; the residuals' sum y_j - (Z'X)_j β (from b's)
                xj = xi[j, 0]
                g00 += ZtZ[j, 0, 0] * (xj * xj)
                h0 += xj * rc[j]
            G2[0, 0] = g00
            ha[0] = h0
        # x'β row by row, column after column from 0.0 (no BLAS: a fixed order)
        fit = np.zeros(0 if ones else n)
        if not ones:
            Xk = XTs[k]
            for a in range(p):
                ba = beta[a]
                xa = Xk[a]
                for i in range(n):
                    fit[i] += ba * xa[i]
        if q == 1 and not ones:  # the loop below with the sums in scalars
            g00 = 0.0
            h0 = 0.0
            for i in range(n):
                ri = y[i] - fit[i]
                r[i] = ri
                w = ZT[0, i] * xi[codes[i], 0]
                g00 += w * w
                h0 += w * ri
            G2[0, 0] = g00
            ha[0] = h0
        if q == 2:  # the loop below with the sums in scalars
            g00 = 0.0
            g10 = 0.0
            g11 = 0.0
            h0 = 0.0
            h1 = 0.0
            for i in range(n):
                ri = y[i] - fit[i]
                r[i] = ri
                g = codes[i]
                w0 = ZT[0, i] * xi[g, 0]
                w1 = ZT[1, i] * xi[g, 1]
                g00 += w0 * w0
                g10 += w1 * w0
                g11 += w1 * w1
                h0 += w0 * ri
                h1 += w1 * ri
            G2[0, 0], G2[1, 0], G2[1, 1] = g00, g10, g11
            ha[0], ha[1] = h0, h1
        for i in range(n if q > 2 else 0):
            r[i] = y[i] - fit[i]
            g = codes[i]
            for u in range(q):
                Wn[u] = ZT[u, i] * xi[g, u]
            for u in range(q):
                for v in range(u + 1):
                    G2[u, v] += Wn[u] * Wn[v]
                ha[u] += Wn[u] * r[i]
        for u in range(q):
            for v in range(u + 1):
                G2[u, v] = G2[u, v] / s2
                G2[v, u] = G2[u, v]
            G2[u, u] += 2.0 / (scale[u] * scale[u])
            ha[u] = ha[u] / s2
        if not _solve_spd(G2, ha, La, m_a):
            return beta_o, mean_o, b_o, bm_o, s2_o, psi_o, alpha_o, 1 + c
        a_new = alpha_o[c]
        _draw_chol(gen, La, m_a, a_new)
        for u in range(q):
            if not abs(a_new[u]) > 1e-150:
                a_new[u] = 1e-150
        # (3) σ² | β, b
        rss = 0.0
        bxxb = 0.0
        nb = 0.0
        if ones:  # from the sums: y'y - 2β'X'y + β'X'Xβ - 2Σ b_j r_j + Σ n_j b_j²
            a0 = a_new[0]
            bxxb = 0.0
            bxy = 0.0
            for a in range(p):
                t = 0.0
                for e in range(p):
                    t += XtX[k, a, e] * beta[e]
                bxxb += beta[a] * t
                bxy += beta[a] * Xty[k, a]
            cr = 0.0
            nb = 0.0
            for j in range(J):
                bj = xi[j, 0] * a0
                cr += bj * rc[j]
                nb += ZtZ[j, 0, 0] * (bj * bj)
            rss = ((yty - 2.0 * bxy) + bxxb) - 2.0 * cr + nb
        if ones and not rss >= 1e-3 * (yty + bxxb + nb):
            # cancellation (a sum of squares below a thousandth of its terms): the pass
            # over the rows, y - Xβ column by column, then the sum of squares
            r = y.copy()
            for a in range(p):  # column by column (the rows' sums side by side), the
                xa = XTs[k][a] if dmask[a] else XT0[a]  # fixed columns from the shared design
                ba = beta[a]
                for i in range(n):
                    r[i] -= ba * xa[i]
            for i in range(n):
                r[i] -= xi[codes[i], 0] * a0
            rss = _dot(r, r)
        elif q == 1 and not ones:
            a0 = a_new[0]
            for i in range(n):
                e = r[i] - ZT[0, i] * xi[codes[i], 0] * a0
                rss += e * e
        elif q == 2:
            a0, a1 = a_new[0], a_new[1]
            for i in range(n):
                g = codes[i]
                e = r[i] - (ZT[0, i] * xi[g, 0] * a0 + ZT[1, i] * xi[g, 1] * a1)
                rss += e * e
        elif q > 2:
            for i in range(n):
                g = codes[i]
                s = 0.0
                for u in range(q):
                    s += ZT[u, i] * xi[g, u] * a_new[u]
                e = r[i] - s
                rss += e * e
        s2_new = rss / gen.chisquare(max(n, 1))
        s2_o[c] = max(s2_new, floor[c])
        # (4) Ψ_ξ | ξ per covariance block, Ψ = diag(α) Ψ_ξ diag(α)
        for u in range(q):
            for v in range(q):
                s = 0.0
                for j in range(J):
                    s += xi[j, u] * xi[j, v]
                S[u, v] = s
        psi_xi[:, :] = 0.0
        for t in range(bptr.shape[0] - 1):
            idx = bidx[bptr[t] : bptr[t + 1]]
            kb = idx.shape[0]
            sub = np.empty((kb, kb))
            for u in range(kb):
                for v in range(kb):
                    sub[u, v] = S[idx[u], idx[v]] + (2 * nu if u == v else 0.0)
            got = np.empty((kb, kb))
            _inv_wishart(gen, nu + kb - 1 + J, sub, got)
            for u in range(kb):
                for v in range(kb):
                    psi_xi[idx[u], idx[v]] = got[u, v]
        for u in range(q):
            for v in range(q):
                psi_o[c, u, v] = psi_xi[u, v] * (a_new[u] * a_new[v])
        for j in range(J):
            for u in range(q):
                b[j, u] = xi[j, u] * a_new[u]  # b = ξ∘α, in place
    return beta_o, mean_o, b_o, bm_o, s2_o, psi_o, alpha_o, 0
