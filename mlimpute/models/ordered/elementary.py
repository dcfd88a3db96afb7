"""The logarithm and the exponential of :mod:`mlimpute.models.kernels.elementary` in
numpy, vectorised: the same floating-point operations in the same order, so the same bits
(see that module for the method)."""

from __future__ import annotations

import math

import numpy as np

from mlimpute.models.kernels.constants import (
    EXP_MAX,
    EXP_MIN,
    INV_LN2,
    LN2_HI,
    LN2_LO,
    SQRT_HALF,
    E,
    L,
)

__all__ = [
    "ex",
    "ex_float",
    "ln",
    "ln_float",
    "mantissa_products",
    "sum_from_products",
    "sum_ln",
]


def _log_series(m, k):
    """``k log 2 + log m`` for m in [√½, √2) and an exponent k, floats or arrays alike
    (the same operations): ``log m = 2s + 2s z (1/3 + z/5 + ...)``, ``s = (m - 1)/(m +
    1)``, ``z = s²``."""
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    p = L[9]
    for c in L[8::-1]:
        p = p * z + c
    t = s + s
    return k * LN2_HI + (t + (t * (z * p) + k * LN2_LO))


def _exp_series(r):
    """``exp r`` for |r| <= log(2)/2 by its Taylor polynomial (Horner), floats or arrays
    alike."""
    p = E[13]
    for c in E[12::-1]:
        p = p * r + c
    return p


def ln(x) -> np.ndarray:
    """log of every element: -inf at 0, NaN below 0 and for NaN, inf at inf."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        m, e = np.frexp(x)
        low = m < SQRT_HALF
        m = np.where(low, m * 2.0, m)
        out = _log_series(m, (e - low).astype(np.float64))
        if (x > 0.0).all() and (x < np.inf).all():
            return out
        out = np.where(x > 0.0, out, np.where(x == 0.0, -np.inf, np.nan))
        return np.where(x == np.inf, np.inf, out)


def ln_float(x: float) -> float:
    """:func:`ln` of one number, in Python floats (the same operations: for one chain,
    where numpy's calls on one-element arrays would cost more than the arithmetic)."""
    if not x > 0.0:
        return -math.inf if x == 0.0 else math.nan
    if x == math.inf:
        return math.inf
    m, e = math.frexp(x)
    if m < SQRT_HALF:
        m = m * 2.0
        e -= 1
    return _log_series(m, float(e))


def ex_float(x: float) -> float:
    """:func:`ex` of one number, in Python floats (the same operations)."""
    if x != x:
        return math.nan
    if x > EXP_MAX:
        return math.inf
    if x < EXP_MIN:
        return 0.0
    k = math.floor(x * INV_LN2 + 0.5)
    kf = float(k)
    r = (x - kf * LN2_HI) - kf * LN2_LO
    p = _exp_series(r)
    return math.ldexp(p, k)


def ex(x) -> np.ndarray:
    """exp of every element: inf above ``EXP_MAX``, 0 below ``EXP_MIN``, NaN for NaN."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        k = np.floor(x * INV_LN2 + 0.5)
        r = (x - k * LN2_HI) - k * LN2_LO
        p = _exp_series(r)
        ok = (x >= EXP_MIN) & (x <= EXP_MAX)
        out = np.ldexp(p, np.where(ok, k, 0.0).astype(np.int64))
        out = np.where(ok, out, np.where(x > EXP_MAX, np.inf, 0.0))
        return np.where(np.isnan(x), np.nan, out)


def mantissa_products(D: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What :func:`sum_ln` takes the logarithms of, for every row of ``D`` (C, J): the
    products of the mantissas of 64 consecutive numbers, one factor after the other
    (C, groups), the integer sums of the binary exponents (C,), and whether every number
    of the row is finite and positive (C,)."""
    C, J = D.shape
    ok = ((D > 0.0) & (D < np.inf)).all(axis=1)
    m, e = np.frexp(D)
    groups = -(-J // 64)
    cols = np.ones((C, groups * 64))
    cols[:, :J] = m
    prods = np.multiply.reduce(cols.reshape(C, groups, 64).transpose(0, 2, 1).copy(), axis=1)
    return prods, e.sum(axis=1, dtype=np.int64), ok


def sum_from_products(logs: np.ndarray, exps: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """:func:`sum_ln` from the logarithms of :func:`mantissa_products`' products."""
    acc = np.cumsum(logs, axis=1)[:, -1] + 0.0 if logs.shape[1] else np.zeros(logs.shape[0])
    E = exps.astype(np.float64)
    return np.where(ok, acc + (E * LN2_HI + E * LN2_LO), np.nan)


def sum_ln(D: np.ndarray) -> np.ndarray:
    """The kernels' ``_sum_ln`` of every row of ``D`` (C, J): the sum of the logarithms
    of the row's numbers (NaN if any is not finite or not positive), a logarithm for each
    64 of them (see that function)."""
    prods, exps, ok = mantissa_products(np.asarray(D, dtype=np.float64))
    return sum_from_products(ln(prods), exps, ok)
