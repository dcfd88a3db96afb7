"""The logarithm and the exponential of :mod:`mlimpute.models.kernels.elementary` in
numpy, vectorised: the same floating-point operations in the same order, so the same bits
(see that module for the method)."""

from __future__ import annotations

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

__all__ = ["ex", "ln", "sum_ln"]


def ln(x) -> np.ndarray:
    """log of every element: -inf at 0, NaN below 0 and for NaN, inf at inf."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        m, e = np.frexp(x)
        low = m < SQRT_HALF
        m = np.where(low, m * 2.0, m)
        k = (e - low).astype(np.float64)
        f = m - 1.0
        s = f / (2.0 + f)
        z = s * s
        p = L[9]
        for c in L[8::-1]:
            p = p * z + c
        t = s + s
        out = k * LN2_HI + (t + (t * (z * p) + k * LN2_LO))
        if (x > 0.0).all() and (x < np.inf).all():
            return out
        out = np.where(x > 0.0, out, np.where(x == 0.0, -np.inf, np.nan))
        return np.where(x == np.inf, np.inf, out)


def ex(x) -> np.ndarray:
    """exp of every element: inf above ``EXP_MAX``, 0 below ``EXP_MIN``, NaN for NaN."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        k = np.floor(x * INV_LN2 + 0.5)
        r = (x - k * LN2_HI) - k * LN2_LO
        p = E[13]
        for c in E[12::-1]:
            p = p * r + c
        ok = (x >= EXP_MIN) & (x <= EXP_MAX)
        out = np.ldexp(p, np.where(ok, k, 0.0).astype(np.int64))
        out = np.where(ok, out, np.where(x > EXP_MAX, np.inf, 0.0))
        return np.where(np.isnan(x), np.nan, out)


def sum_ln(D: np.ndarray) -> np.ndarray:
    """The sum of :func:`ln` along the last axis, one after the other from 0.0; NaN
    where a number is not finite or not positive."""
    D = np.asarray(D, dtype=np.float64)
    if D.shape[-1] == 0:
        return np.zeros(D.shape[:-1])
    ok = ((D > 0.0) & (D < np.inf)).all(axis=-1)
    got = np.cumsum(ln(D), axis=-1)[..., -1] + 0.0
    return np.where(ok, got, np.nan)
