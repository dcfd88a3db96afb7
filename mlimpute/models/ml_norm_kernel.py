"""The compiled (numba) kernels of :class:`~mlimpute.models.ml_norm.MultilevelNorm`'s
Gibbs step; :mod:`mlimpute.models.ml_norm_compiled` says when they run and calls them.

Importing this module imports numba. The kernels run steps (0)-(4) of
:meth:`MultilevelNorm.gibbs <mlimpute.models.ml_norm.MultilevelNorm.gibbs>` and
:meth:`MultilevelNorm.draw_missing <mlimpute.models.ml_norm.MultilevelNorm.draw_missing>`
with the default half-t prior, one residual variance and a random part that the
imputations do not change, for C chains in one call: a loop over the chains inside the
kernel, each drawing from its own ``numpy.random.Generator`` (numba draws numpy's own
streams) in the order the numpy step draws. The collapsed Metropolis-Hastings proposals
(step 0) are compiled for a correlated 2x2 random part.

The arithmetic is the numpy step's, operation by operation, except that sums over rows
and clusters run in plain loops (numpy's reductions, BLAS and LAPACK group them
differently), the small inverses and Cholesky factors are written out and the MH
target sums its log-determinants as logs of products of four; for a random intercept
(Z a column of ones) the changing design's sums and α's sums take the per-cluster and
column-by-column forms of :func:`intercept_sums` and :func:`step`, the residual sum of
squares comes from the sums already at hand (``y'y - 2β'X'y + β'X'Xβ - 2Σ b_j r_j +
Σ n_j b_j²``, r_j the cluster's sum of y - Xβ; where it is below a thousandth of its
terms, which would cancel, from a pass over the rows), the products of the clusters'
whitened sums that make β's precision run as dot products over the clusters, and the
b draws multiply by reciprocals: the numbers agree with
the numpy step's to round-off (``tests/models/test_ml_norm_kernel.py``: parameters and
imputations after 50 steps within a relative 1e-9), not bit for bit.

The design refresh and the placement of the draws that
:mod:`mlimpute.sampler.refresh_kernel` offers are compiled here too (the last section:
numpy's numbers bit for bit), so that :func:`draw_place` can draw, place and trace a
visit's missing values in one call.

Compiled at first use and cached on disk (``cache=True``; about 15 s on one core, then
about 1 s a process to import numba and load the cache). Every compiled function of
the step lives in this one module: numba's cache is invalidated by a change of the
module's own file only, not of another module's functions it calls.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = [
    "design_sums",
    "fixed_columns",
    "intercept_sums",
    "response_sums",
    "step",
    "draw_missing",
]

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")


# -- small dense linear algebra ------------------------------------------------------------
@_jit
def _cholesky(a, L, floor):  # pragma: no cover - compiled
    """Lower Cholesky factor of a small SPD matrix into L. With ``floor > 0`` every pivot
    is floored there (as ``chol_batched``, floor 1e-300) and the result is True; with
    ``floor = 0`` the result is False where a pivot is not positive (as LAPACK ``potrf``
    fails)."""
    q = a.shape[0]
    for j in range(q):
        d = a[j, j]
        for k in range(j):
            d -= L[j, k] * L[j, k]
        if floor > 0.0:
            d = max(d, floor)
        elif not d > 0.0:
            return False
        L[j, j] = np.sqrt(d)
        for i in range(j + 1, q):
            s = a[i, j]
            for k in range(j):
                s -= L[i, k] * L[j, k]
            L[i, j] = s / L[j, j]
        for i in range(j):
            L[i, j] = 0.0
    return True


@_jit
def _forward(L, b, x):  # pragma: no cover - compiled
    """Solve L x = b (L lower triangular), b and x vectors."""
    q = L.shape[0]
    for i in range(q):
        s = b[i]
        for k in range(i):
            s -= L[i, k] * x[k]
        x[i] = s / L[i, i]


@_jit
def _backward(L, b, x):  # pragma: no cover - compiled
    """Solve L' x = b (L lower triangular), b and x vectors."""
    q = L.shape[0]
    for i in range(q - 1, -1, -1):
        s = b[i]
        for k in range(i + 1, q):
            s -= L[k, i] * x[k]
        x[i] = s / L[i, i]


@_jit
def _solve_spd(A, h, L, mean):  # pragma: no cover - compiled
    """``A⁻¹h`` into mean and A's Cholesky factor into L, with :func:`solve_spd`'s jitter
    (1e-10, 1e-8, ... times the mean absolute diagonal) where A does not factorise;
    False if nothing does."""
    p = A.shape[0]
    if p == 0:
        return True
    ok = _cholesky(A, L, 0.0)
    if not ok:
        scale = 0.0
        for i in range(p):
            scale += abs(A[i, i])
        scale /= p
        if scale == 0.0:
            scale = 1.0
        B = A.copy()
        for eps in (1e-10, 1e-8, 1e-6, 1e-4, 1e-2):
            for i in range(p):
                B[i, i] = A[i, i] + eps * scale
            if _cholesky(B, L, 0.0):
                ok = True
                break
        if not ok:
            return False
    y = np.empty(p)
    _forward(L, h, y)
    _backward(L, y, mean)
    return True


@_jit
def _draw_chol(gen, L, mean, out):  # pragma: no cover - compiled
    """``N(mean, (LL')⁻¹)`` into out: ``mean + L'⁻¹z``."""
    p = mean.shape[0]
    z = np.empty(p)
    for i in range(p):
        z[i] = gen.standard_normal()
    x = np.empty(p)
    _backward(L, z, x)
    for i in range(p):
        out[i] = mean[i] + x[i]


@_jit
def _inv_spd(a, out):  # pragma: no cover - compiled
    """Inverse of a small SPD matrix (a 1x1 as ``1/a``, a 2x2 in closed form, else by
    its Cholesky factor)."""
    q = a.shape[0]
    if q == 1:
        out[0, 0] = 1.0 / a[0, 0]
        return
    if q == 2:
        det = a[0, 0] * a[1, 1] - a[0, 1] * a[1, 0]
        out[0, 0] = a[1, 1] / det
        out[1, 1] = a[0, 0] / det
        out[0, 1] = -a[0, 1] / det
        out[1, 0] = -a[1, 0] / det
        return
    L = np.zeros((q, q))
    _cholesky(a, L, 1e-300)
    e = np.zeros(q)
    y = np.empty(q)
    x = np.empty(q)
    for j in range(q):
        e[:] = 0.0
        e[j] = 1.0
        _forward(L, e, y)
        _backward(L, y, x)
        out[:, j] = x


# -- the design's sums ----------------------------------------------------------------------
@_jit
def design_sums(XTs, y, codes, ZT, J):  # pragma: no cover - compiled
    """Per-cluster ``Z'X`` (K, J, q, p), ``X'X`` (K, p, p) and ``X'y`` (K, p) of the K
    fixed designs ``XTs`` (a list of transposed designs, each (p, n))."""
    K = len(XTs)
    p, n = XTs[0].shape
    q = ZT.shape[0]
    ZtX = np.zeros((K, J, q, p))
    XtX = np.zeros((K, p, p))
    Xty = np.zeros((K, p))
    for k in range(K):
        Xk = XTs[k]
        if p > 0 and n > 0:
            XtX[k] = np.dot(Xk, Xk.T)
            Xty[k] = np.dot(Xk, y)
        for i in range(n):
            g = codes[i]
            for r in range(q):
                z = ZT[r, i]
                for a in range(p):
                    ZtX[k, g, r, a] += z * Xk[a, i]
    return ZtX, XtX, Xty


@_jit
def _dot(a, b):  # pragma: no cover - compiled
    """``a @ b`` of two rows, with four running sums (a fixed order)."""
    n = a.shape[0]
    s0 = s1 = s2 = s3 = 0.0
    i = 0
    while i + 4 <= n:
        s0 += a[i] * b[i]
        s1 += a[i + 1] * b[i + 1]
        s2 += a[i + 2] * b[i + 2]
        s3 += a[i + 3] * b[i + 3]
        i += 4
    while i < n:
        s0 += a[i] * b[i]
        i += 1
    return (s0 + s1) + (s2 + s3)


@_jit
def _dot2(x, b0, b1):  # pragma: no cover - compiled
    """``(x @ b0, x @ b1)``, each summed as :func:`_dot` sums it, in one pass over x."""
    n = x.shape[0]
    p0 = p1 = p2 = p3 = 0.0
    q0 = q1 = q2 = q3 = 0.0
    i = 0
    while i + 4 <= n:
        x0, x1, x2, x3 = x[i], x[i + 1], x[i + 2], x[i + 3]
        p0 += x0 * b0[i]
        p1 += x1 * b0[i + 1]
        p2 += x2 * b0[i + 2]
        p3 += x3 * b0[i + 3]
        q0 += x0 * b1[i]
        q1 += x1 * b1[i + 1]
        q2 += x2 * b1[i + 2]
        q3 += x3 * b1[i + 3]
        i += 4
    while i < n:
        p0 += x[i] * b0[i]
        q0 += x[i] * b1[i]
        i += 1
    return (p0 + p1) + (p2 + p3), (q0 + q1) + (q2 + q3)


@_jit
def _dot4(x, b0, b1, b2, b3):  # pragma: no cover - compiled
    """``x @ b0`` ... ``x @ b3``, each summed as :func:`_dot` sums it, in one pass over x:
    sixteen running sums side by side instead of four (the products' additions are
    what bounds a dot product here, one after another)."""
    n = x.shape[0]
    p0 = p1 = p2 = p3 = 0.0
    q0 = q1 = q2 = q3 = 0.0
    r0 = r1 = r2 = r3 = 0.0
    s0 = s1 = s2 = s3 = 0.0
    i = 0
    while i + 4 <= n:
        x0, x1, x2, x3 = x[i], x[i + 1], x[i + 2], x[i + 3]
        p0 += x0 * b0[i]
        p1 += x1 * b0[i + 1]
        p2 += x2 * b0[i + 2]
        p3 += x3 * b0[i + 3]
        q0 += x0 * b1[i]
        q1 += x1 * b1[i + 1]
        q2 += x2 * b1[i + 2]
        q3 += x3 * b1[i + 3]
        r0 += x0 * b2[i]
        r1 += x1 * b2[i + 1]
        r2 += x2 * b2[i + 2]
        r3 += x3 * b2[i + 3]
        s0 += x0 * b3[i]
        s1 += x1 * b3[i + 1]
        s2 += x2 * b3[i + 2]
        s3 += x3 * b3[i + 3]
        i += 4
    while i < n:
        p0 += x[i] * b0[i]
        q0 += x[i] * b1[i]
        r0 += x[i] * b2[i]
        s0 += x[i] * b3[i]
        i += 1
    return (
        (p0 + p1) + (p2 + p3),
        (q0 + q1) + (q2 + q3),
        (r0 + r1) + (r2 + r3),
        (s0 + s1) + (s2 + s3),
    )


@_jit
def _dots(x, B, idx, m, out):  # pragma: no cover - compiled
    """``out[t] = x @ B[idx[t]]`` for t < m, as :func:`_dot` sums each, four (then two,
    then one) at a time in one pass over x."""
    t = 0
    while m - t >= 4:
        out[t], out[t + 1], out[t + 2], out[t + 3] = _dot4(
            x, B[idx[t]], B[idx[t + 1]], B[idx[t + 2]], B[idx[t + 3]]
        )
        t += 4
    if m - t >= 2:
        out[t], out[t + 1] = _dot2(x, B[idx[t]], B[idx[t + 1]])
        t += 2
    if m - t == 1:
        out[t] = _dot(x, B[idx[t]])


@_jit
def intercept_sums(  # pragma: no cover - compiled
    XTs, y, XT0, dmask, Sy, ptr, first, nobs, dyn, const, ZtX0, XtX0, Xty0, ST0, mT0
):
    """:func:`_intercept_sums` into a new ``Z'X``."""
    ZtX = np.empty((len(XTs), Sy.shape[0], 1, XTs[0].shape[0]))
    return _intercept_sums(
        XTs, y, XT0, dmask, Sy, ptr, first, nobs, dyn, const, ZtX0, XtX0, Xty0, ST0, mT0, ZtX, False
    )


@_jit
def _intercept_sums(  # pragma: no cover - compiled
    XTs, y, XT0, dmask, Sy, ptr, first, nobs, dyn, const, ZtX0, XtX0, Xty0, ST0, mT0, ZtX, kept
):
    """:func:`design_sums` for a random intercept (Z a column of ones), from the sums of
    the columns no imputation changes (``ZtX0``, ``XtX0``, ``Xty0``, computed once):
    only the changing columns ``dyn`` are summed again. A column constant within clusters
    (``const``: the intercept, ``cmean()`` terms, level-2 variables; value m_j in cluster j,
    read at the cluster's first observed row ``first[j]``) is summed per cluster:
    its cluster sums are n_j m_j, its products with a column x are the sums over clusters
    of m_j times x's cluster sums and X'y's entry the sum of m_j times y's (``Sy``); a
    column that varies within clusters takes a pass over its rows (``ptr``: where each
    cluster's observed rows start). The columns no imputation changes are read from the
    design ``XT0`` that the chains share (``dmask``: the changing ones), which stays in
    the cache from chain to chain, and so are their cluster sums and values by column
    (``ST0``, ``mT0``, (p, J): :func:`fixed_columns`). ``Z'X`` is written into ``ZtX``
    (K, J, 1, p); with ``kept`` its columns no imputation changes hold ``ZtX0``'s
    already (a chain's own array, kept from call to call) and are not copied again."""
    K = len(XTs)
    p, n = XTs[0].shape
    J = Sy.shape[0]
    XtX = np.empty((K, p, p))
    Xty = np.empty((K, p))
    # the cluster sums (ST) and cluster values (mT) by column, so that their products
    # are dot products: the changing columns' rows per chain, the others' from ST0, mT0
    ST = np.empty((p, J))
    mT = np.empty((p, J))
    pick = np.empty(p + 1, dtype=np.int64)
    got = np.empty(4)
    cols = [y, y, y, y]
    for k in range(K):
        Xk = XTs[k]
        S = ZtX[k, :, 0, :]
        if not kept:
            S[:, :] = ZtX0[:, 0, :]
        XtX[k] = XtX0
        Xty[k] = Xty0
        for a in dyn:
            x = Xk[a]
            if const[a]:
                for j in range(J):
                    mT[a, j] = x[first[j]] if first[j] >= 0 else 0.0
                for j in range(J):
                    ST[a, j] = nobs[j] * mT[a, j]
                    S[j, a] = ST[a, j]
            else:
                for j in range(J):
                    s = 0.0
                    for i in range(ptr[j], ptr[j + 1]):
                        s += x[i]
                    ST[a, j] = s
                    S[j, a] = s
        for a in dyn:
            x = Xk[a]
            m = 0  # the columns that vary within clusters: products by passes over rows
            for e in range(p):
                if const[a] or const[e]:
                    f = e if const[a] else a
                    g = a if const[a] else e
                    s = _dot(mT[g] if dmask[g] else mT0[g], ST[f] if dmask[f] else ST0[f])
                    XtX[k, a, e] = s
                    XtX[k, e, a] = s
                else:
                    pick[m] = e
                    m += 1
            if const[a]:
                Xty[k, a] = _dot(mT[a], Sy)  # a changing column (in dyn)
                continue
            pick[m] = p  # and y
            m += 1
            t = 0
            while t < m:  # four (two, one) products a pass, each summed as _dot sums it
                w = 4 if m - t >= 4 else (2 if m - t >= 2 else 1)
                for u in range(w):
                    e = pick[t + u]
                    cols[u] = y if e == p else (Xk[e] if dmask[e] else XT0[e])
                if w == 4:
                    got[0], got[1], got[2], got[3] = _dot4(x, cols[0], cols[1], cols[2], cols[3])
                elif w == 2:
                    got[0], got[1] = _dot2(x, cols[0], cols[1])
                else:
                    got[0] = _dot(x, cols[0])
                for u in range(w):
                    e = pick[t + u]
                    if e == p:
                        Xty[k, a] = got[u]
                    else:
                        XtX[k, a, e] = got[u]
                        XtX[k, e, a] = got[u]
                t += w
    return ZtX, XtX, Xty


@_jit
def fixed_columns(XT0, ZtX0, first, const):  # pragma: no cover - compiled
    """The cluster sums (from ``ZtX0``) and, for the cluster-constant columns, the cluster
    values (at each cluster's first observed row; 0 for others and empty clusters) of a
    design by column, (p, J) each: what :func:`intercept_sums` reads of the columns no
    imputation changes."""
    p = XT0.shape[0]
    J = ZtX0.shape[0]
    ST = np.empty((p, J))
    mT = np.zeros((p, J))
    for a in range(p):
        for j in range(J):
            ST[a, j] = ZtX0[j, 0, a]
        if const[a]:
            for j in range(J):
                if first[j] >= 0:
                    mT[a, j] = XT0[a, first[j]]
    return ST, mT


@_jit
def sum_of_squares(y):  # pragma: no cover - compiled
    """y'y as :func:`step` takes it (summed as :func:`_dot` sums)."""
    return _dot(y, y)


@_jit
def response_sums(y, codes, ZT, J):  # pragma: no cover - compiled
    """Per-cluster ``Z'y`` (J, q) of the response."""
    q = ZT.shape[0]
    Zty = np.zeros((J, q))
    for i in range(y.shape[0]):
        for r in range(q):
            Zty[codes[i], r] += ZT[r, i] * y[i]
    return Zty


# -- step (0): collapsed MH on a correlated 2x2 Ψ ------------------------------------------
@_jit
def _log_target_2x2(l11, l21, l22, zc, buf, inv0, inv1, nu):  # pragma: no cover
    """``_mh_2x2``'s target at the Cholesky factor (l11, l21, l22); ``zc`` (6, J) holds
    the clusters' Z'Z/σ² entries 11, 22, 12 and c1², c1c2, c2²; ``buf`` (2, J) scratch.

    The log-determinants of the clusters' precisions are summed as logs of products of
    four (each factor within 1e±75, so that no product overflows; others one by one):
    a quarter of the logarithms, the same sum to round-off."""
    J = zc.shape[1]
    s11, s12, s22 = l11 * l11, l11 * l21, l21 * l21 + l22 * l22
    det = s11 * s22 - s12 * s12
    a11, a22, a12 = s22 / det, s11 / det, s12 / det
    dp = buf[0]
    qd = buf[1]
    for j in range(J):  # no sums here: the compiler vectorises this loop
        p11 = zc[0, j] + a11
        p22 = zc[1, j] + a22
        p12 = zc[2, j] - a12
        det_p = p11 * p22 - p12 * p12
        dp[j] = det_p
        qd[j] = (p22 * zc[3, j] - 2 * p12 * zc[4, j] + p11 * zc[5, j]) / det_p
    logdet_p = 0.0
    quad = 0.0
    prod = 1.0
    k = 0
    for j in range(J):
        quad += qd[j]
        det_p = dp[j]
        if 1e-75 < det_p < 1e75:
            prod *= det_p
            k += 1
            if k == 4:
                logdet_p += np.log(prod)
                prod = 1.0
                k = 0
        else:
            logdet_p += np.log(det_p)
    if k:
        logdet_p += np.log(prod)
    log_lik = -0.5 * (J * np.log(det) + logdet_p - quad)
    g11, g22 = np.log(l11), np.log(l22)
    log_prior = -(nu + 4) * (g11 + g22) - (nu + 2) / 2 * (
        np.log(nu * s22 / det + inv0) + np.log(nu * s11 / det + inv1)
    )
    return log_lik + log_prior + 3 * g11 + 2 * g22


@_jit
def _mh_2x2(gen, psi, alpha, ZtZ_s, cc, scale, nu, n_steps, step):  # pragma: no cover
    """``_psi_collapsed_mh`` on one correlated 2x2 Ψ: the proposals, then α | Ψ; psi and
    alpha updated in place."""
    z = np.empty((n_steps, 3))
    for i in range(n_steps):
        for k in range(3):
            z[i, k] = gen.standard_normal() * step
    u = np.empty(n_steps)
    for i in range(n_steps):
        u[i] = np.log(gen.random())
    inv0, inv1 = 1 / (scale[0] * scale[0]), 1 / (scale[1] * scale[1])
    J = cc.shape[0]
    zc = np.empty((6, J))
    buf = np.empty((2, J))
    for j in range(J):
        c1, c2 = cc[j, 0], cc[j, 1]
        zc[0, j], zc[1, j], zc[2, j] = ZtZ_s[j, 0, 0], ZtZ_s[j, 1, 1], ZtZ_s[j, 0, 1]
        zc[3, j], zc[4, j], zc[5, j] = c1 * c1, c1 * c2, c2 * c2
    l11 = np.sqrt(psi[0, 0])
    l21 = psi[1, 0] / l11
    l22 = np.sqrt(psi[1, 1] - l21 * l21)
    cur = _log_target_2x2(l11, l21, l22, zc, buf, inv0, inv1, nu)
    for i in range(n_steps):
        n11, n22 = l11 * np.exp(z[i, 0]), l22 * np.exp(z[i, 1])
        d = z[i, 2] * l22
        n21 = l21 + d
        sn, sl, dd = step * n22, step * l22, d * d
        log_q = np.log(l22 / n22) - dd / (2 * (sn * sn)) + dd / (2 * (sl * sl))
        new = _log_target_2x2(n11, n21, n22, zc, buf, inv0, inv1, nu)
        if u[i] < new - cur + log_q:
            l11, l21, l22, cur = n11, n21, n22, new
    psi[0, 0] = l11 * l11
    psi[0, 1] = psi[1, 0] = l11 * l21
    psi[1, 1] = l21 * l21 + l22 * l22
    det = psi[0, 0] * psi[1, 1] - psi[0, 1] * psi[1, 0]
    inv_d = (psi[1, 1] / det, psi[0, 0] / det)
    shape = (nu + 2) / 2
    for k in range(2):
        rate = nu * inv_d[k] + 1 / (scale[k] * scale[k])
        a = rate / gen.gamma(shape, 1.0)
        alpha[k] = (-1.0 if alpha[k] < 0 else 1.0) / np.sqrt(a)


# -- step (4): the inverse-Wishart draw of a block -------------------------------------------
@_jit
def _inv_wishart(gen, df, sub, out):  # pragma: no cover - compiled
    """``inv_wishart(gen, df, sub)`` into out (k x k): Bartlett factor A (its chi-squares,
    then its normals row by row), ``T = R A'⁻¹`` with ``RR' = sub``, ``TT'``."""
    k = sub.shape[0]
    if k == 1:
        out[0, 0] = sub[0, 0] / gen.chisquare(df)
        return
    A = np.zeros((k, k))
    for i in range(k):
        A[i, i] = np.sqrt(gen.chisquare(df - i))
    for i in range(1, k):
        for j in range(i):
            A[i, j] = gen.standard_normal()
    R = np.zeros((k, k))
    _cholesky(sub, R, 1e-300)
    # U = A'⁻¹ (upper triangular): column j solves A' u = e_j
    U = np.zeros((k, k))
    e = np.zeros(k)
    x = np.empty(k)
    for j in range(k):
        e[:] = 0.0
        e[j] = 1.0
        _backward(A, e, x)
        U[:, j] = x
    T = np.zeros((k, k))
    for i in range(k):
        for j in range(k):
            s = 0.0
            for m in range(k):
                s += R[i, m] * U[m, j]
            T[i, j] = s
    for i in range(k):
        for j in range(k):
            s = 0.0
            for m in range(k):
                s += T[i, m] * T[j, m]
            out[i, j] = s


# -- one Gibbs step of C chains ---------------------------------------------------------------
@_jit
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
    or 1 + the chain whose β precision did not factorise). ``yty``: y'y (:func:`sum_of_squares`,
    computed once; read only for a random intercept)."""
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
        fit = np.dot(beta, XTs[k]) if p > 0 and n > 0 and not ones else np.zeros(0)
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


@_jit
def step_intercept(  # pragma: no cover - compiled
    gens,
    XTs,
    xk,
    y,
    codes,
    ZT,
    ZtZ,
    Zty,
    split,
    ZtX,
    kept,
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
    """:func:`_intercept_sums` (its arguments after ``XTs`` and ``y`` in the tuple
    ``split``, then ``ZtX`` and ``kept``) and :func:`step` on its sums, in one call: the
    sums are still in the cache when the step reads them."""
    ZtX, XtX, Xty = _intercept_sums(
        XTs,
        y,
        split[0],
        split[1],
        split[2],
        split[3],
        split[4],
        split[5],
        split[6],
        split[7],
        split[8],
        split[9],
        split[10],
        split[11],
        split[12],
        ZtX,
        kept,
    )
    return step(
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
    )


@_jit
def step_draw_place(  # pragma: no cover - compiled
    gens,
    XTs,
    xk,
    y,
    codes,
    ZT,
    ZtZ,
    Zty,
    split,
    ZtX,
    kept,
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
    XmTs,
    codes_mis,
    ZmT,
    XmT0,
    dmask_mis,
    unit,
    ones_mis,
    x,
    mis_idx,
    mean,
    sd,
):
    """:func:`step_intercept`, then (where the step succeeded) :func:`draw_place` from the
    new β, b and σ², in one call; returns the step's results."""
    got = step_intercept(
        gens,
        XTs,
        xk,
        y,
        codes,
        ZT,
        ZtZ,
        Zty,
        split,
        ZtX,
        kept,
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
    )
    if got[7] == 0:
        draws = np.empty((len(gens), XmTs[0].shape[1]))
        _draws(
            gens,
            XmTs,
            xk,
            codes_mis,
            ZmT,
            got[0],
            got[2],
            got[4],
            XmT0,
            dmask_mis,
            unit,
            ones_mis,
            draws,
        )
        place_draws(x, mis_idx, draws, mean, sd)
    return got


@_jit
def draw_missing(  # pragma: no cover - compiled
    gens, XmTs, xk, codes, ZmT, beta, b, s2, XmT0, dmask, unit, ones
):
    """``x'β + z'b_j + e`` on the missing rows of every chain (C, n_mis): :func:`_draws`."""
    out = np.empty((len(gens), XmTs[0].shape[1]))
    _draws(gens, XmTs, xk, codes, ZmT, beta, b, s2, XmT0, dmask, unit, ones, out)
    return out


@_jit
def draw_place(  # pragma: no cover - compiled
    gens, XmTs, xk, codes, ZmT, beta, b, s2, XmT0, dmask, unit, ones, x, mis_idx, mean, sd
):
    """:func:`draw_missing` and :func:`place_draws` in one call (the draws are still in
    the cache when they are placed and traced): each chain's draws written into its
    column ``x[c]`` at the rows ``mis_idx``, their mean and SD into ``mean``, ``sd``."""
    draws = np.empty((len(gens), XmTs[0].shape[1]))
    _draws(gens, XmTs, xk, codes, ZmT, beta, b, s2, XmT0, dmask, unit, ones, draws)
    place_draws(x, mis_idx, draws, mean, sd)


@_jit
def _fit_pass(fit, first, c0, w, b0, x0, b1, x1, b2, x2, b3, x3):  # pragma: no cover
    """``fit[i] += b0 x0[i]``, then ``b1 x1[i]`` ... for the first ``w`` (1-4) columns in
    one pass, the additions in that order (from ``c0`` instead of ``fit`` if ``first``)."""
    n = fit.shape[0]
    if w == 4:
        for i in range(n):
            t = c0 if first else fit[i]
            fit[i] = (((t + b0 * x0[i]) + b1 * x1[i]) + b2 * x2[i]) + b3 * x3[i]
    elif w == 3:
        for i in range(n):
            t = c0 if first else fit[i]
            fit[i] = ((t + b0 * x0[i]) + b1 * x1[i]) + b2 * x2[i]
    elif w == 2:
        for i in range(n):
            t = c0 if first else fit[i]
            fit[i] = (t + b0 * x0[i]) + b1 * x1[i]
    else:
        for i in range(n):
            t = c0 if first else fit[i]
            fit[i] = t + b0 * x0[i]


@_jit
def _draws(  # pragma: no cover - compiled
    gens, XmTs, xk, codes, ZmT, beta, b, s2, XmT0, dmask, unit, ones, out
):
    """``x'β + z'b_j + e`` on the missing rows of every chain (C, n_mis) into ``out``;
    x'β summed column after column (up to four columns a pass over the rows,
    :func:`_fit_pass`), the columns no imputation changes (not ``dmask``) read from the
    shared design ``XmT0``, those of ones (``unit``: the intercept) and Z where it is a
    column of ones (``ones``) not read at all (a product with 1.0 is exact)."""
    C = len(gens)
    p, n = XmTs[0].shape
    q = ZmT.shape[0]
    fit = np.empty(n)
    for c in range(C):
        gen = gens[c]
        sd = np.sqrt(s2[c])
        # x'β = (((0 + β_0 x_0) + β_1 x_1) + ...) row by row, up to four columns a pass;
        # leading columns of ones (the intercept) as one number: ba * 1.0 is ba
        c0 = 0.0
        a = 0
        while a < p and unit[a]:
            c0 += beta[c, a]
            a += 1
        first = True
        while a < p:
            if unit[a]:  # a column of ones further on: not read
                for i in range(n):
                    fit[i] += beta[c, a]
                a += 1
                continue
            w = 0
            while w < 4 and a + w < p and not unit[a + w]:
                w += 1
            xs = [XmTs[xk[c]][a + u] if dmask[a + u] else XmT0[a + u] for u in range(w)]
            bs = [beta[c, a + u] for u in range(w)]
            for _ in range(w, 4):  # unused places
                xs.append(xs[0])
                bs.append(0.0)
            _fit_pass(fit, first, c0, w, bs[0], xs[0], bs[1], xs[1], bs[2], xs[2], bs[3], xs[3])
            first = False
            a += w
        if first:  # no column read
            fit[:] = c0
        if ones:  # Z a column of ones: z'b_j is b_j, Z not read
            for i in range(n):
                zb = 0.0
                zb += b[c, codes[i], 0]
                out[c, i] = (fit[i] + zb) + sd * gen.standard_normal()
            continue
        for i in range(n):
            g = codes[i]
            zb = 0.0
            for u in range(q):
                zb += ZmT[u, i] * b[c, g, u]
            out[c, i] = (fit[i] + zb) + sd * gen.standard_normal()


# -- the design refresh and the draws' placement (mlimpute.sampler.refresh_kernel) -------
#: numpy's block size of its pairwise summation
_BLOCK = 128


@_jit
def _block_sum(x, lo, n, m, sq):  # pragma: no cover - compiled
    """numpy's sum of up to 128 values ``x[lo:lo + n]`` (with ``sq``: of the squares of
    ``x - m``, each formed as numpy forms ``d = x - m; d * d``): a plain loop below 8
    values, else eight running sums."""
    if n < 8:
        res = -0.0
        for i in range(lo, lo + n):
            res += _term(x[i], m, sq)
        return res
    r0, r1 = _term(x[lo], m, sq), _term(x[lo + 1], m, sq)
    r2, r3 = _term(x[lo + 2], m, sq), _term(x[lo + 3], m, sq)
    r4, r5 = _term(x[lo + 4], m, sq), _term(x[lo + 5], m, sq)
    r6, r7 = _term(x[lo + 6], m, sq), _term(x[lo + 7], m, sq)
    i = 8
    top = n - n % 8
    while i < top:
        k = lo + i
        r0 += _term(x[k], m, sq)
        r1 += _term(x[k + 1], m, sq)
        r2 += _term(x[k + 2], m, sq)
        r3 += _term(x[k + 3], m, sq)
        r4 += _term(x[k + 4], m, sq)
        r5 += _term(x[k + 5], m, sq)
        r6 += _term(x[k + 6], m, sq)
        r7 += _term(x[k + 7], m, sq)
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += _term(x[lo + i], m, sq)
        i += 1
    return res


@_jit
def _term(v, m, sq):  # pragma: no cover - compiled
    """A summand: v, or with ``sq`` the square of ``v - m``."""
    if sq:
        d = v - m
        return d * d
    return v


@_jit
def _pairwise(x, lo, n, m=0.0, sq=False):  # pragma: no cover - compiled
    """Sum of ``x[lo:lo + n]`` (with ``sq``: of the squares of ``x - m``) in numpy's
    pairwise order (``pairwise_sum`` of its ``add`` loop): :func:`_block_sum` up to 128
    values, else the sums of the two halves (the first a multiple of 8 long) added. The
    halving runs on an explicit stack, not by recursion (numba's cache does not keep
    recursive functions reliably)."""
    if n <= _BLOCK:
        return _block_sum(x, lo, n, m, sq)
    los = np.empty(64, dtype=np.int64)
    ns = np.empty(64, dtype=np.int64)
    phase = np.zeros(64, dtype=np.int64)
    sums = np.empty(64)
    sp = 0  # pending ranges
    rp = 0  # finished sums
    los[0], ns[0], phase[0] = lo, n, 0
    sp = 1
    while sp > 0:
        t = sp - 1
        k = ns[t]
        if k <= _BLOCK:
            sums[rp] = _block_sum(x, los[t], k, m, sq)
            rp += 1
            sp -= 1
            continue
        k2 = k // 2
        k2 -= k2 % 8
        if phase[t] == 0:  # the first half
            phase[t] = 1
            los[sp], ns[sp], phase[sp] = los[t], k2, 0
            sp += 1
        elif phase[t] == 1:  # the second half
            phase[t] = 2
            los[sp], ns[sp], phase[sp] = los[t] + k2, k - k2, 0
            sp += 1
        else:  # both done: first + second
            rp -= 1
            sums[rp - 1] = sums[rp - 1] + sums[rp]
            sp -= 1
    return sums[0]


@_jit
def _means_into(x, starts, counts, out):  # pragma: no cover - compiled
    """Per-cluster means of ``x`` (rows sorted by cluster, every cluster non-empty) into
    ``out``, as :meth:`Segments.mean <mlimpute.models.segments.Segments.mean>`."""
    J = starts.shape[0]
    n = x.shape[0]
    for j in range(J):
        s0 = starts[j]
        e = starts[j + 1] if j + 1 < J else n
        s = x[s0]
        m = e - s0 - 1
        if m > _BLOCK:
            s += _pairwise(x, s0 + 1, m, 0.0, False)
        elif m > 0:  # _pairwise's first branch, called directly: a third of the time
            s += _block_sum(x, s0 + 1, m, 0.0, False)
        out[j] = s / counts[j]


@_jit
def cluster_means(x, starts, counts):  # pragma: no cover - compiled
    """Per-cluster means of ``x`` (J,), for the tests."""
    out = np.empty(starts.shape[0])
    _means_into(x, starts, counts, out)
    return out


@_jit
def refresh(
    V, XO, XM, cols, src, kind, obs_idx, mis_idx, codes_obs, codes_mis, starts, counts
):  # pragma: no cover - compiled
    """Column ``cols[t]`` of every chain's design, observed rows ``XO`` (C, p, n_obs) and
    missing rows ``XM`` (C, p, n_mis), from the chains' values ``V[src[t]]`` (C, n): the
    values themselves at the rows ``obs_idx``/``mis_idx`` (``kind[t] == 0``) or their
    cluster means at the rows' cluster codes (``kind[t] == 1``)."""
    C = XO.shape[0]
    means = np.empty(starts.shape[0])
    for t in range(cols.shape[0]):
        a = cols[t]
        for c in range(C):
            x = V[src[t], c]
            if kind[t] == 0:
                for i in range(obs_idx.shape[0]):
                    XO[c, a, i] = x[obs_idx[i]]
                for i in range(mis_idx.shape[0]):
                    XM[c, a, i] = x[mis_idx[i]]
            else:
                _means_into(x, starts, counts, means)
                for i in range(codes_obs.shape[0]):
                    XO[c, a, i] = means[codes_obs[i]]
                for i in range(codes_mis.shape[0]):
                    XM[c, a, i] = means[codes_mis[i]]


@_jit
def place_draws(x, mis_idx, draws, mean, sd):  # pragma: no cover - compiled
    """Each chain's draws (C, n_mis) written into its column ``x[c]`` at the rows
    ``mis_idx``, and their mean and standard deviation into ``mean[c]`` and ``sd[c]``,
    as :func:`mlimpute.sampler.batched._mean_sd_rows` computes them (numpy's pairwise
    sums of the values and of the squared deviations, the same numbers)."""
    C, n = draws.shape
    for c in range(C):
        row = draws[c]
        xc = x[c]
        for i in range(n):
            xc[mis_idx[i]] = row[i]
        if n == 0:
            mean[c] = np.nan
            sd[c] = 0.0
            continue
        m = _pairwise(row, 0, n, 0.0, False) / n
        mean[c] = m
        if n == 1:
            sd[c] = 0.0
            continue
        sd[c] = np.sqrt(_pairwise(row, 0, n, m, True) / (n - 1))
