"""Small dense linear algebra inside the compiled kernels: Cholesky factors, triangular
solves, SPD solves and inverses, and the normal and inverse-Wishart draws that use them.

Importing this module imports numba (:mod:`mlimpute.models.kernels`).
"""

from __future__ import annotations

import numpy as np

from mlimpute.models.kernels.options import jit

__all__ = []

#: SHA-256 of all the kernel modules' sources (this line blanked): see the package's docstring
SOURCES = "e7c15ed93913fec74e7049c4c8d97476a48d1b07862883f07c34f61d83a0c7e9"


@jit
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


@jit
def _forward(L, b, x):  # pragma: no cover - compiled
    """Solve L x = b (L lower triangular), b and x vectors."""
    q = L.shape[0]
    for i in range(q):
        s = b[i]
        for k in range(i):
            s -= L[i, k] * x[k]
        x[i] = s / L[i, i]


@jit
def _backward(L, b, x):  # pragma: no cover - compiled
    """Solve L' x = b (L lower triangular), b and x vectors."""
    q = L.shape[0]
    for i in range(q - 1, -1, -1):
        s = b[i]
        for k in range(i + 1, q):
            s -= L[k, i] * x[k]
        x[i] = s / L[i, i]


@jit
def _solve_spd(A, h, L, mean):  # pragma: no cover - compiled
    """``A⁻¹h`` into mean and A's Cholesky factor into L, with
    :func:`~mlimpute.models.linalg.solve_spd`'s jitter (1e-10, 1e-8, ... times the mean
    absolute diagonal) where A does not factorise; False if nothing does."""
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


@jit
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


@jit
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


@jit
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
