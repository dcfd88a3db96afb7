"""Small dense linear algebra in numpy, in the operation order of the compiled kernels
:mod:`mlimpute.models.kernels.linalg`: Cholesky factors, triangular solves, SPD solves
and inverses, and the normal and inverse-Wishart draws that use them.

Each single-matrix function takes the arguments of the kernel of the same name (without
the leading underscore) and writes the same bits: it runs the kernel's loops on Python
floats (IEEE doubles, so each ``s -= a * b`` rounds as the kernel's does). The batched
functions apply the single-matrix ones to a stack of clusters' matrices at once, looping
over the entries and computing each entry for all clusters with one numpy operation.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "backward",
    "backward_batched",
    "cholesky",
    "cholesky_batched",
    "draw_chol",
    "forward",
    "forward_batched",
    "inv_spd",
    "inv_wishart",
    "solve_spd",
]


def _div(a: float, b: float) -> float:
    """``a / b`` as IEEE divides (inf or NaN where b is zero)."""
    if b != 0.0:
        return a / b
    with np.errstate(all="ignore"):
        return float(np.float64(a) / b)


def _cholesky_rows(a: list, q: int, floor: float) -> tuple[list, int]:
    """The kernel's Cholesky loop on nested lists: the factor's rows and the number of
    columns done (q, or the column of the first pivot that is not positive where
    ``floor <= 0``; the columns before it complete, 0.0 elsewhere)."""
    L = [[0.0] * q for _ in range(q)]
    for j in range(q):
        Lj = L[j]
        d = a[j][j]
        for k in range(j):
            d -= Lj[k] * Lj[k]
        if floor > 0.0:
            d = max(d, floor)
        elif not d > 0.0:
            return L, j
        piv = math.sqrt(d)
        Lj[j] = piv
        for i in range(j + 1, q):
            Li = L[i]
            s = a[i][j]
            for k in range(j):
                s -= Li[k] * Lj[k]
            Li[j] = s / piv
    return L, q


def cholesky(a, L, floor) -> bool:
    """The kernel's ``_cholesky``: the lower Cholesky factor of the small SPD matrix
    ``a`` into ``L``, column by column; with ``floor > 0`` every pivot is floored there and
    the result is True, with ``floor = 0`` the result is False at the first pivot that is
    not positive, ``L`` then holding the columns written before it."""
    q = a.shape[0]
    rows, done = _cholesky_rows(a.tolist(), q, float(floor))
    if done == q:
        L[...] = rows
        return True
    # the kernel has written the columns before the failing pivot only
    if done:
        L[:, :done] = np.array(rows)[:, :done]
    return False


def forward(L, b, x) -> None:
    """The kernel's ``_forward``: solve ``L x = b`` (L lower triangular) into ``x``, row
    after row, each row's products subtracted from ``b[i]`` in column order."""
    q = L.shape[0]
    Lr = L.tolist()
    bl = b.tolist()
    xs = [0.0] * q
    for i in range(q):
        Li = Lr[i]
        s = bl[i]
        for k in range(i):
            s -= Li[k] * xs[k]
        xs[i] = _div(s, Li[i])
    x[:] = xs


def backward(L, b, x) -> None:
    """The kernel's ``_backward``: solve ``L' x = b`` (L lower triangular) into ``x``,
    from the last row up, each row's products subtracted from ``b[i]`` in column order."""
    q = L.shape[0]
    Lr = L.tolist()
    bl = b.tolist()
    xs = [0.0] * q
    for i in range(q - 1, -1, -1):
        s = bl[i]
        for k in range(i + 1, q):
            s -= Lr[k][i] * xs[k]
        xs[i] = _div(s, Lr[i][i])
    x[:] = xs


def solve_spd(A, h, L, mean) -> bool:
    """The kernel's ``_solve_spd``: ``A⁻¹h`` into ``mean`` and A's Cholesky factor into
    ``L``, adding 1e-10, 1e-8, ... times the mean absolute diagonal to the diagonal where
    A does not factorise; False (``mean`` untouched) if nothing does."""
    p = A.shape[0]
    if p == 0:
        return True
    ok = cholesky(A, L, 0.0)
    if not ok:
        diag = np.diagonal(A).tolist()
        scale = 0.0
        for v in diag:
            scale += abs(v)
        scale /= p
        if scale == 0.0:
            scale = 1.0
        B = A.copy()
        for eps in (1e-10, 1e-8, 1e-6, 1e-4, 1e-2):
            for i in range(p):
                B[i, i] = diag[i] + eps * scale
            if cholesky(B, L, 0.0):
                ok = True
                break
        if not ok:
            return False
    y = np.empty(p)
    forward(L, h, y)
    backward(L, y, mean)
    return True


def draw_chol(gen, L, mean, out) -> None:
    """The kernel's ``_draw_chol``: a draw of ``N(mean, (LL')⁻¹)`` into ``out``, as
    ``mean + L'⁻¹z`` with the p standard normals z drawn first."""
    p = mean.shape[0]
    z = gen.standard_normal(p)
    x = np.empty(p)
    backward(L, z, x)
    out[:] = mean + x


def _inverse_from_factor(L: list, q: int) -> list:
    """The columns of ``(LL')⁻¹`` solved from the unit vectors as the kernel solves them,
    forward then backward."""
    cols = []
    for j in range(q):
        y = [0.0] * q
        for i in range(q):
            Li = L[i]
            s = 1.0 if i == j else 0.0
            for k in range(i):
                s -= Li[k] * y[k]
            y[i] = s / Li[i]
        x = [0.0] * q
        for i in range(q - 1, -1, -1):
            s = y[i]
            for k in range(i + 1, q):
                s -= L[k][i] * x[k]
            x[i] = s / L[i][i]
        cols.append(x)
    return cols


def inv_spd(a, out) -> None:
    """The kernel's ``_inv_spd``: the inverse of a small SPD matrix into ``out`` (a 1x1 as
    ``1/a``, a 2x2 in closed form, else column by column from its Cholesky factor with
    its pivots floored at 1e-300)."""
    q = a.shape[0]
    with np.errstate(all="ignore"):
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
    L, _ = _cholesky_rows(a.tolist(), q, 1e-300)
    out[...] = np.array(_inverse_from_factor(L, q)).T


def inv_wishart(gen, df, sub, out) -> None:
    """The kernel's ``_inv_wishart``: an inverse-Wishart draw into ``out`` (k x k): the
    Bartlett factor A (its k chi-squares one at a time, then its normals row by row),
    ``T = R A'⁻¹`` with ``RR' = sub`` (pivots floored at 1e-300), and ``TT'``, every
    product summed over its inner index in order from 0.0."""
    k = sub.shape[0]
    if k == 1:
        with np.errstate(all="ignore"):
            out[0, 0] = sub[0, 0] / gen.chisquare(df)
        return
    A = [[0.0] * k for _ in range(k)]
    for i in range(k):
        A[i][i] = math.sqrt(gen.chisquare(df - i))
    z = iter(gen.standard_normal(k * (k - 1) // 2).tolist())
    for i in range(1, k):
        for j in range(i):
            A[i][j] = next(z)
    R, _ = _cholesky_rows(sub.tolist(), k, 1e-300)
    # U = A'⁻¹, column j solving A' u = e_j
    U_cols = []
    for j in range(k):
        x = [0.0] * k
        for i in range(k - 1, -1, -1):
            s = 1.0 if i == j else 0.0
            for m in range(i + 1, k):
                s -= A[m][i] * x[m]
            x[i] = _div(s, A[i][i])
        U_cols.append(x)
    T = _row_products(R, U_cols)  # T = R A'⁻¹
    out[:, :] = _row_products(T, T)  # T T'


def _row_products(A: list, B: list) -> list:
    """``[[Σ_m a[m] b[m] for b in B] for a in A]``, each sum from 0.0 in order of m."""
    out = []
    for a in A:
        row = []
        for b in B:
            s = 0.0
            for x, y in zip(a, b, strict=True):
                s += x * y
            row.append(s)
        out.append(row)
    return out


def cholesky_batched(P, floor) -> np.ndarray:
    """``cholesky(P[j], L[j], floor)`` for every cluster j of the stack ``P`` (J, q, q),
    with ``floor > 0``: the factors (J, q, q), each entry computed for all clusters at
    once in the kernel's order."""
    J, q = P.shape[0], P.shape[1]
    L = np.zeros((J, q, q))
    with np.errstate(all="ignore"):
        return _cholesky_batched_into(P, L, q, floor)


def _cholesky_batched_into(P, L, q, floor) -> np.ndarray:
    """:func:`cholesky_batched`'s loop, the factors into the zeroed ``L``."""
    for j in range(q):
        d = P[:, j, j].copy()
        for k in range(j):
            d -= L[:, j, k] * L[:, j, k]
        piv = np.sqrt(np.maximum(d, floor))  # NaN stays NaN, as max(nan, floor)
        L[:, j, j] = piv
        for i in range(j + 1, q):
            s = P[:, i, j].copy()
            for k in range(j):
                s -= L[:, i, k] * L[:, j, k]
            L[:, i, j] = s / piv
    return L


def forward_batched(L, b) -> np.ndarray:
    """``forward(L[j], b[j], x[j])`` for every cluster j: ``L`` (J, q, q) lower
    triangular, ``b`` (J, q); the solutions x (J, q)."""
    J, q = b.shape
    x = np.empty((J, q))
    with np.errstate(all="ignore"):
        for i in range(q):
            s = b[:, i].copy()
            for k in range(i):
                s -= L[:, i, k] * x[:, k]
            x[:, i] = s / L[:, i, i]
    return x


def backward_batched(L, b) -> np.ndarray:
    """``backward(L[j], b[j], x[j])`` for every cluster j: ``L`` (J, q, q) lower
    triangular, ``b`` (J, q); the solutions x (J, q) of ``L[j]' x[j] = b[j]``."""
    J, q = b.shape
    x = np.empty((J, q))
    with np.errstate(all="ignore"):
        for i in range(q - 1, -1, -1):
            s = b[:, i].copy()
            for k in range(i + 1, q):
                s -= L[:, k, i] * x[:, k]
            x[:, i] = s / L[:, i, i]
    return x
