"""Vectorised linear algebra shared by the conditional models.

A public module: it is the toolbox every model family, and every new one, builds its Gibbs
steps from, so its names are part of the model authors' API. The cluster segments of the
rows live in :mod:`mlimpute.models.segments`.

Everything works on stacked arrays with a leading cluster axis: a Cholesky factorisation
written out over the q×q entries (vectorised over clusters: for small q it is ~20× faster
than batched ``np.linalg.cholesky``), and normal draws in precision form. No Python loop
runs over rows or clusters; loops run over the q ≤ a-few entries of a block.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.linalg import lapack

# LAPACK directly: scipy's cho_solve / solve_triangular validate their arguments at about
# 20 us a call, 10x the solve itself for the p <= 30 systems of a Gibbs step. The calls
# below are the ones those wrappers make, so results are identical.
_potrs = lapack.dpotrs
_trtrs = lapack.dtrtrs

__all__ = [
    "chol_batched",
    "forward_batched",
    "backward_batched",
    "draw_precision_batched",
    "solve_spd",
    "draw_chol",
    "inv_wishart",
    "inv_gamma",
]


def chol_batched(a: np.ndarray) -> np.ndarray:
    """Lower Cholesky factors of a stack of SPD matrices (J, q, q), written out over q."""
    q = a.shape[-1]
    if q == 1:
        return np.sqrt(a)
    L = np.zeros_like(a)
    for j in range(q):
        d = a[:, j, j] - np.einsum("ik,ik->i", L[:, j, :j], L[:, j, :j])
        L[:, j, j] = np.sqrt(np.maximum(d, 1e-300))
        for i in range(j + 1, q):
            s = a[:, i, j] - np.einsum("ik,ik->i", L[:, i, :j], L[:, j, :j])
            L[:, i, j] = s / L[:, j, j]
    return L


def forward_batched(L: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve L x = b for a stack of lower-triangular L (J, q, q), b (J, q, ...)."""
    q = L.shape[-1]
    x = np.empty_like(b)
    d = L[:, np.arange(q), np.arange(q)].reshape((L.shape[0], q) + (1,) * (b.ndim - 2))
    for i in range(q):
        x[:, i] = (b[:, i] - np.einsum("jk,jk...->j...", L[:, i, :i], x[:, :i])) / d[:, i]
    return x


def backward_batched(L: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve L' x = b for a stack of lower-triangular L (J, q, q), b (J, q)."""
    q = L.shape[-1]
    x = np.empty_like(b)
    for i in range(q - 1, -1, -1):
        x[:, i] = (b[:, i] - np.einsum("jk,jk->j", L[:, i + 1 :, i], x[:, i + 1 :])) / L[:, i, i]
    return x


def draw_precision_batched(rng: np.random.Generator, prec: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Draw ``b_j ~ N(P_j⁻¹ h_j, P_j⁻¹)`` for a stack of precisions P (J, q, q), h (J, q).

    With ``P = L L'``: ``b = L'⁻¹ (L⁻¹ h + z)``, ``z ~ N(0, I)``. Cost O(J q³).
    """
    z = rng.standard_normal(h.shape)
    if prec.shape[-1] == 1:
        p = prec[:, 0, 0]
        return (h[:, 0] / p + z[:, 0] / np.sqrt(p))[:, None]
    L = chol_batched(prec)
    return backward_batched(L, forward_batched(L, h) + z)


def solve_spd(prec: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``P⁻¹h`` and the lower Cholesky factor of one p×p SPD matrix P.

    Imputed predictors can become (nearly) collinear with others during a run, which no
    check at set-up can foresee; then a jitter of 1e-10, 1e-8, ... times the mean diagonal
    is added until P factorises (deterministically: same data, same result).
    """
    try:
        L = np.linalg.cholesky(prec)
    except np.linalg.LinAlgError:
        scale = float(np.mean(np.abs(np.diag(prec)))) or 1.0
        for eps in (1e-10, 1e-8, 1e-6, 1e-4, 1e-2):
            try:
                L = np.linalg.cholesky(prec + eps * scale * np.eye(prec.shape[0]))
                break
            except np.linalg.LinAlgError:
                continue
        else:
            raise
    return cho_solve_lower(L, h), L


def cho_solve_lower(L: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``(L L')⁻¹ h`` by LAPACK ``potrs``, as ``scipy.linalg.cho_solve`` computes it.

    Parameters
    ----------
    L : ndarray, shape (p, p)
        Lower Cholesky factor (float64).
    h : ndarray, shape (p,) or (p, k)

    Returns
    -------
    ndarray, the shape of ``h``
    """
    if h.size == 0:
        return np.zeros(h.shape)
    x, info = _potrs(L, h, lower=1)
    if info != 0:  # pragma: no cover - only for malformed arguments
        raise ValueError(f"illegal value in argument {-info} of LAPACK potrs")
    return x


def draw_chol(
    rng: np.random.Generator, L: np.ndarray, mean: np.ndarray, scale: float = 1.0
) -> np.ndarray:
    """Draw ``N(mean, scale·(L L')⁻¹)`` given the Cholesky factor L of the precision."""
    z = rng.standard_normal(mean.shape[0])
    if z.size == 0:
        return mean + 0.0
    # L'⁻¹z; a C-ordered L is passed as the upper factor L' (what solve_triangular does)
    if L.flags.f_contiguous:
        x, info = _trtrs(L, z, lower=1, trans=1)
    else:
        x, info = _trtrs(L.T, z, lower=0, trans=0)
    if info > 0:
        raise np.linalg.LinAlgError(f"singular matrix: zero diagonal at {info - 1}")
    return mean + np.sqrt(scale) * x


@functools.lru_cache(maxsize=16)
def _strict_lower(q: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.tril_indices(q, -1)``, made once per size (read-only)."""
    rows, cols = np.tril_indices(q, -1)
    rows.setflags(write=False)
    cols.setflags(write=False)
    return rows, cols


def inv_wishart(rng: np.random.Generator, df: float, scale: np.ndarray) -> np.ndarray:
    """One draw from the inverse-Wishart(df, scale) (mean ``scale / (df - q - 1)``).

    Bartlett: ``W = C A A' C'`` ~ Wishart(df, S⁻¹) with ``C C' = S⁻¹``; return ``W⁻¹``.
    """
    q = scale.shape[0]
    if q == 1:
        return np.array([[scale[0, 0] / rng.chisquare(df)]])
    A = np.zeros((q, q))
    A.flat[:: q + 1] = np.sqrt(rng.chisquare(df - np.arange(q)))
    A[_strict_lower(q)] = rng.standard_normal(q * (q - 1) // 2)
    # W⁻¹ = (C A A' C')⁻¹ = (C A)'⁻¹ (C A)⁻¹ with C = chol(S⁻¹); use S = R R' so that
    # C = R'⁻¹ up to orthogonal rotation: W⁻¹ = R A'⁻¹ A⁻¹ R'.
    R = np.linalg.cholesky(scale)
    # the lower-triangular Bartlett factor of Wishart(df, S⁻¹) is obtained for S⁻¹ = R'⁻¹R⁻¹;
    # T = R A'^{-1}: W⁻¹ = T T'
    T = R @ _trtrs(A.T, np.eye(q), lower=0, trans=0)[0]  # = solve_triangular(A, I, trans="T")
    return T @ T.T


def inv_gamma(
    rng: np.random.Generator, shape: float | np.ndarray, rate: float | np.ndarray
) -> float | np.ndarray:
    """Draw from the inverse-gamma(shape, rate) (density ∝ x^(−shape−1) e^(−rate/x))."""
    return rate / rng.gamma(shape, 1.0, size=np.shape(rate) or None)
