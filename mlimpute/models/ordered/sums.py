"""The design's sums in the kernels' order, in numpy: the mirrors of
:mod:`mlimpute.models.kernels.sums` (per-cluster ``Z'X``, ``X'X`` and ``X'y``, a random
intercept's sums from the columns no imputation changes, and the dot products with four
running sums that they are summed with), bit for bit.

Two constructions give the kernels' sequential sums. A sum within clusters, row after
row from 0.0, is :func:`numpy.bincount` with the summands as weights (it adds each
weight to its bin in the order of the rows). A dot product's four running sums are the
column sums of its products laid out four to a row, which ``np.add.reduce`` along the
rows adds row after row (the lanes are the inner loop, the rows the outer one) from 0.0
(numpy 2's reductions start from the identity; 0.0 is added to each lane's sum after
all the same, which keeps the kernels' sign of a zero sum should a numpy start from the
first row). numpy's own ``np.sum``, ``np.dot`` and ``@`` group the additions otherwise
(pairwise, BLAS's blocks) and are not used.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "design_sums",
    "dot",
    "dots",
    "lane_dots",
    "lane_dots_first",
    "fixed_columns",
    "intercept_sums",
    "response_sums",
    "sum_of_squares",
]


def lane_dots_first(P: np.ndarray) -> np.ndarray:
    """The sums of the products ``P`` along the first axis as the kernels' ``_dot`` adds
    them: the first ``n - n % 4`` entries into four running sums side by side (entry i
    into sum ``i % 4``, in order, from 0.0), the last ``n % 4`` into the first sum in
    order, then ``(s0 + s1) + (s2 + s3)``. The running sums are ``np.add.reduce`` of the
    entries laid out by four along the first axis, which it adds row after row (the rows
    of all the other entries are its inner loop)."""
    n = P.shape[0]
    m = n - n % 4
    if m:
        lanes = np.add.reduce(P[:m].reshape((m // 4, 4) + P.shape[1:]), axis=0) + 0.0
    else:
        lanes = np.zeros((4,) + P.shape[1:])
    for i in range(m, n):  # the tail (at most three entries), into the first sum
        lanes[0] += P[i]
    return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3])


def lane_dots(P: np.ndarray) -> np.ndarray:
    """:func:`lane_dots_first` along the last axis of ``P``."""
    return lane_dots_first(np.ascontiguousarray(np.moveaxis(P, -1, 0)))


def dots(x: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``dot(x, B[t])`` for every row t of ``B`` (T, n), (T,): :func:`lane_dots_first` of
    the products ``B[t, i] * x[i]`` laid out (n, T)."""
    B = np.asarray(B, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    P = np.multiply(B.T, x[:, None], out=np.empty((B.shape[1], B.shape[0])))
    return lane_dots_first(P)


def dot(a: np.ndarray, b: np.ndarray) -> float:
    """``a @ b`` of two rows as the kernels' ``_dot`` sums it (four running sums, a
    fixed order; see :func:`dots`), a float."""
    return float(dots(a, np.asarray(b)[None, :])[0])


def sum_of_squares(y: np.ndarray) -> float:
    """y'y as the kernels' ``sum_of_squares`` gives it (:func:`dot` of y with itself)."""
    return dot(y, y)


def _cluster_sums(codes: np.ndarray, w: np.ndarray, J: int) -> np.ndarray:
    """The sums of ``w`` by cluster (J,), each row after row from 0.0."""
    return np.bincount(codes, weights=w, minlength=J)


def response_sums(y: np.ndarray, codes: np.ndarray, ZT: np.ndarray, J: int) -> np.ndarray:
    """Per-cluster ``Z'y`` (J, q) of the response, as the kernels' ``response_sums``:
    the products ``Z[i, r] * y[i]`` summed row after row within each cluster."""
    q = ZT.shape[0]
    Zty = np.zeros((J, q))
    for r in range(q):
        Zty[:, r] = _cluster_sums(codes, ZT[r] * y, J)
    return Zty


def design_sums(
    XTs: Sequence[np.ndarray], y: np.ndarray, codes: np.ndarray, ZT: np.ndarray, J: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-cluster ``Z'X`` (K, J, q, p), ``X'X`` (K, p, p) and ``X'y`` (K, p) of the K
    transposed designs ``XTs`` (each (p, n)), as the kernels' ``design_sums``: each
    entry of ``X'X`` and ``X'y`` the :func:`dot` of two rows (``X'X[a, e]`` of rows a
    and e for e <= a, mirrored), ``Z'X[g, r, a]`` the products ``z * x`` summed row after
    row within cluster g."""
    K = len(XTs)
    p, n = XTs[0].shape
    q = ZT.shape[0]
    ZtX = np.zeros((K, J, q, p))
    XtX = np.zeros((K, p, p))
    Xty = np.zeros((K, p))
    # one bincount for every (r, a): bin (g * q + r) * p + a, rows in order within each
    bins = (codes[None, None, :] * (q * p) + np.arange(q * p).reshape(q, p, 1)).ravel()
    for k in range(K):
        Xk = XTs[k]
        for a in range(p):
            got = dots(Xk[a], Xk[: a + 1])
            XtX[k, a, : a + 1] = got
            XtX[k, : a + 1, a] = got
        if p:
            Xty[k] = dots(y, Xk)
        W = ZT[:, None, :] * Xk[None, :, :]  # z * x, each product formed first
        ZtX[k] = np.bincount(bins, weights=W.ravel(), minlength=J * q * p).reshape(J, q, p)
    return ZtX, XtX, Xty


def fixed_columns(
    XT0: np.ndarray, ZtX0: np.ndarray, first: np.ndarray, const: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The cluster sums (from ``ZtX0``, (J, 1, p)) and, for the cluster-constant columns,
    the cluster values (at each cluster's first observed row ``first[j]``; 0 for the
    other columns and the empty clusters, ``first[j] == -1``) of the design ``XT0``
    (p, n) by column, (p, J) each, as the kernels' ``fixed_columns``."""
    p = XT0.shape[0]
    ST = np.ascontiguousarray(ZtX0[:, 0, :].T, dtype=np.float64)
    mT = np.zeros((p, ZtX0.shape[0]))
    for a in range(p):
        if const[a]:
            mT[a] = _at_first(XT0[a], first)
    return ST, mT


def _at_first(x: np.ndarray, first: np.ndarray) -> np.ndarray:
    """``x[first[j]]`` for each cluster j, 0.0 where ``first[j] == -1``."""
    seen = first >= 0
    out = np.zeros(first.shape[0])
    out[seen] = x[first[seen]]
    return out


def intercept_sums(
    XTs, y, XT0, dmask, Sy, ptr, first, nobs, dyn, const, ZtX0, XtX0, Xty0, ST0, mT0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_intercept_sums` into a new ``Z'X`` (K, J, 1, p), as the kernels'
    ``intercept_sums``."""
    ZtX = np.empty((len(XTs), Sy.shape[0], 1, XTs[0].shape[0]))
    return _intercept_sums(
        XTs, y, XT0, dmask, Sy, ptr, first, nobs, dyn, const, ZtX0, XtX0, Xty0, ST0, mT0, ZtX, False
    )


def _intercept_sums(
    XTs, y, XT0, dmask, Sy, ptr, first, nobs, dyn, const, ZtX0, XtX0, Xty0, ST0, mT0, ZtX, kept
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random intercept's ``Z'X``, ``X'X`` and ``X'y`` of the K designs ``XTs`` from
    the sums of the columns no imputation changes, as the kernels' ``_intercept_sums``
    (its arguments, ``ZtX`` written in place; ``dyn`` the columns ``dmask`` marks, in
    order): a changing cluster-constant column's cluster values are read at ``first``
    and its cluster sums are ``nobs * m``, a changing column that varies within clusters
    is summed row after row over each cluster's rows ``ptr[j]:ptr[j + 1]``; an entry of
    ``X'X`` with a cluster-constant column is the :func:`dot` over clusters of the
    constant column's values and the other's cluster sums, any other entry with a
    changing column (and ``X'y``) the :func:`dot` of two rows; a later changing column
    writes its row and column of ``X'X`` over what an earlier one wrote. The designs are
    taken several at a time (their rows side by side)."""
    K = len(XTs)
    p, n = XTs[0].shape
    XtX = np.empty((K, p, p))
    Xty = np.empty((K, p))
    XtX[:] = XtX0
    Xty[:] = Xty0
    if not kept:
        ZtX[:, :, 0, :] = ZtX0[None, :, 0, :]
    step = max(1, _BLOCK // max(1, (p + 1) * n))
    for k0 in range(0, K, step):
        _block(
            XTs[k0 : k0 + step], k0, y, XT0, dmask, Sy, ptr, first, nobs, dyn, const,
            ST0, mT0, ZtX, XtX, Xty,
        )  # fmt: skip
    return ZtX, XtX, Xty


#: numbers a block of designs' products may hold at once (16 MB)
_BLOCK = 1 << 21


def _by_column(Xd, dyn, ptr, first, nobs, const, J):
    """The changing columns' cluster values and cluster sums, (k, p, J) each (zeros for
    the other columns), from their rows ``Xd`` (k, len(dyn), n) of k designs."""
    k = Xd.shape[0]
    p = len(const)
    mT = np.zeros((k, p, J))
    ST = np.zeros((k, p, J))
    lo, hi = int(ptr[0]), int(ptr[J])
    rows = np.repeat(np.arange(J), np.diff(ptr))  # the cluster of each row lo..hi-1
    bins = (np.arange(k)[:, None] * J + rows[None, :]).ravel()
    for t, a in enumerate(dyn):
        if const[a]:
            seen = first >= 0
            mT[:, a, seen] = Xd[:, t, first[seen]]
            ST[:, a] = nobs * mT[:, a]
        else:
            w = np.ascontiguousarray(Xd[:, t, lo:hi]).ravel()
            ST[:, a] = np.bincount(bins, weights=w, minlength=k * J).reshape(k, J)
    return mT, ST


def _changing_rows(XTs, dyn) -> np.ndarray:
    """The changing columns of the designs ``XTs``, (k, len(dyn), n)."""
    return np.stack([np.stack([X[a] for a in dyn]) for X in XTs]) if dyn else None


def _block(XTs, k0, y, XT0, dmask, Sy, ptr, first, nobs, dyn, const, ST0, mT0, ZtX, XtX, Xty):
    """The changing columns' ``Z'X`` entries, and their entries of ``X'X`` and ``X'y`` in
    the kernel's order, of the designs ``XTs`` (chains ``k0, k0 + 1, ...``)."""
    J = Sy.shape[0]
    dyn = [int(a) for a in dyn]
    if not dyn:
        return
    Xd = _changing_rows(XTs, dyn)
    k, n = Xd.shape[0], Xd.shape[2]
    p = len(const)
    at = {a: t for t, a in enumerate(dyn)}
    mT, ST = _by_column(Xd, dyn, ptr, first, nobs, const, J)
    out = slice(k0, k0 + k)
    for a in dyn:
        ZtX[out, :, 0, a] = ST[:, a]

    def values(c: int) -> np.ndarray:  # a cluster-constant column's values by cluster
        return mT[:, c] if dmask[c] else mT0[c][None, :]

    def sums(c: int) -> np.ndarray:  # a column's cluster sums
        return ST[:, c] if dmask[c] else ST0[c][None, :]

    for a in dyn:
        pick = []
        for e in range(p):
            if const[a] or const[e]:
                f, g = (e, a) if const[a] else (a, e)
                s = lane_dots(np.broadcast_to(values(g), (k, J)) * sums(f))
                XtX[out, a, e] = s
                XtX[out, e, a] = s
            else:
                pick.append(e)
        if const[a]:
            Xty[out, a] = lane_dots(mT[:, a] * Sy[None, :])
            continue
        x = Xd[:, at[a]]  # (k, n)
        P = np.empty((n, k, len(pick) + 1))  # the products, rows first
        for t, e in enumerate(pick):
            col = Xd[:, at[e]] if dmask[e] else XT0[e][None, :]
            P[:, :, t] = (col * x).T
        P[:, :, len(pick)] = (y[None, :] * x).T
        got = lane_dots_first(P)  # (k, len(pick) + 1)
        XtX[out, a, pick] = got[:, :-1]
        XtX[out, pick, a] = got[:, :-1]
        Xty[out, a] = got[:, -1]
