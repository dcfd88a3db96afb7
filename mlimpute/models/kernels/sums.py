"""The design's sums inside the compiled kernels: per-cluster ``Z'X``, ``X'X`` and
``X'y``, the random intercept's sums from the columns no imputation changes, and the
dot products (fixed order, four running sums) they are summed with.

Importing this module imports numba (:mod:`mlimpute.models.kernels`).
"""

from __future__ import annotations

import numpy as np

from mlimpute.models.kernels.options import jit

__all__ = ["design_sums", "fixed_columns", "intercept_sums", "response_sums", "sum_of_squares"]

#: SHA-256 of all the kernel modules' sources (this line blanked): see the package's docstring
SOURCES = "e7c15ed93913fec74e7049c4c8d97476a48d1b07862883f07c34f61d83a0c7e9"


@jit
def design_sums(XTs, y, codes, ZT, J):  # pragma: no cover - compiled
    """Per-cluster ``Z'X`` (K, J, q, p), ``X'X`` (K, p, p) and ``X'y`` (K, p) of the K
    fixed designs ``XTs`` (a list of transposed designs, each (p, n)). Every entry of
    ``X'X`` and ``X'y`` is the :func:`_dot` of two rows (``X'X[a, e]`` of rows a and e,
    e <= a, mirrored; ``X'y[a]`` of row a and y), several a pass (:func:`_dots`), not
    BLAS's (whose order of additions is its own); ``Z'X`` sums row after row within a
    cluster."""
    K = len(XTs)
    p, n = XTs[0].shape
    q = ZT.shape[0]
    ZtX = np.zeros((K, J, q, p))
    XtX = np.zeros((K, p, p))
    Xty = np.zeros((K, p))
    idx = np.arange(p)
    got = np.empty(p)
    for k in range(K):
        Xk = XTs[k]
        for a in range(p):
            _dots(Xk[a], Xk, idx, a + 1, got)  # rows 0..a against row a
            for e in range(a + 1):
                XtX[k, a, e] = got[e]
                XtX[k, e, a] = got[e]
        _dots(y, Xk, idx, p, got)  # y against every row, four a pass
        for a in range(p):
            Xty[k, a] = got[a]
        for i in range(n):
            g = codes[i]
            for r in range(q):
                z = ZT[r, i]
                for a in range(p):
                    ZtX[k, g, r, a] += z * Xk[a, i]
    return ZtX, XtX, Xty


@jit
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


@jit
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


@jit
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


@jit
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


@jit
def intercept_sums(  # pragma: no cover - compiled
    XTs, y, XT0, dmask, Sy, ptr, first, nobs, dyn, const, ZtX0, XtX0, Xty0, ST0, mT0
):
    """:func:`_intercept_sums` into a new ``Z'X``."""
    ZtX = np.empty((len(XTs), Sy.shape[0], 1, XTs[0].shape[0]))
    return _intercept_sums(
        XTs, y, XT0, dmask, Sy, ptr, first, nobs, dyn, const, ZtX0, XtX0, Xty0, ST0, mT0, ZtX, False
    )


@jit
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


@jit
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


@jit
def sum_of_squares(y):  # pragma: no cover - compiled
    """y'y as :func:`~mlimpute.models.kernels.step.step` takes it (summed as :func:`_dot` sums)."""
    return _dot(y, y)


@jit
def response_sums(y, codes, ZT, J):  # pragma: no cover - compiled
    """Per-cluster ``Z'y`` (J, q) of the response."""
    q = ZT.shape[0]
    Zty = np.zeros((J, q))
    for i in range(y.shape[0]):
        for r in range(q):
            Zty[codes[i], r] += ZT[r, i] * y[i]
    return Zty
