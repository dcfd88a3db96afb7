"""The logarithm and the exponential of the compiled kernels, written out in floating-point
operations that their numpy twins repeat one for one (:mod:`mlimpute.models.ordered.elementary`),
so that both give the same bits (the C library's ``log`` and ``exp``, which numba calls,
and numpy's vectorised ones differ in the last bit now and then).

* ``log x``: ``x = m 2^e`` exactly (``frexp``), m moved into [√½, √2); with ``s = (m -
  1)/(m + 1)`` and ``z = s²``, ``log m = 2s + 2s z (1/3 + z/5 + ... + z⁹/21)`` (the series
  of 2 atanh s; |s| <= 0.172, so the terms left out are below 1e-17 of the sum), plus
  ``e log 2`` in two parts;
* ``exp x``: ``x = k log 2 + r`` with k the nearest integer to ``x / log 2`` and |r| <=
  log(2)/2 (r in two parts), ``exp r`` by its Taylor polynomial to degree 13 (Horner),
  scaled by ``2^k`` exactly (``ldexp``).

Both are within a few units in the last place of the correctly rounded values
(``tests/models/ordered/test_elementary.py``). Importing this module imports numba
(:mod:`mlimpute.models.kernels`).
"""

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
from mlimpute.models.kernels.options import jit

__all__ = []

#: SHA-256 of all the kernel modules' sources (this line blanked): see the package's docstring
SOURCES = "e7c15ed93913fec74e7049c4c8d97476a48d1b07862883f07c34f61d83a0c7e9"


@jit
def _ln(x):  # pragma: no cover - compiled
    """log x: -inf at 0, NaN below 0 and for NaN, inf at inf."""
    if not x > 0.0:
        return -np.inf if x == 0.0 else np.nan
    if x == np.inf:
        return np.inf
    m, e = math.frexp(x)
    if m < SQRT_HALF:
        m = m * 2.0
        e -= 1
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    p = L[9]
    p = p * z + L[8]
    p = p * z + L[7]
    p = p * z + L[6]
    p = p * z + L[5]
    p = p * z + L[4]
    p = p * z + L[3]
    p = p * z + L[2]
    p = p * z + L[1]
    p = p * z + L[0]
    t = s + s
    k = float(e)
    return k * LN2_HI + (t + (t * (z * p) + k * LN2_LO))


@jit
def _ex(x):  # pragma: no cover - compiled
    """exp x: inf above :data:`EXP_MAX`, 0 below :data:`EXP_MIN`, NaN for NaN."""
    if x != x:
        return np.nan
    if x > EXP_MAX:
        return np.inf
    if x < EXP_MIN:
        return 0.0
    k = np.floor(x * INV_LN2 + 0.5)
    r = (x - k * LN2_HI) - k * LN2_LO
    p = E[13]
    p = p * r + E[12]
    p = p * r + E[11]
    p = p * r + E[10]
    p = p * r + E[9]
    p = p * r + E[8]
    p = p * r + E[7]
    p = p * r + E[6]
    p = p * r + E[5]
    p = p * r + E[4]
    p = p * r + E[3]
    p = p * r + E[2]
    p = p * r + E[1]
    p = p * r + E[0]
    return math.ldexp(p, int(k))


@jit
def _sum_ln(d):  # pragma: no cover - compiled
    """The sum of the logarithms of the numbers ``d`` (NaN if any is not finite or not
    positive), with a logarithm for each 64 of them: each split exactly into a mantissa
    in [0.5, 1) and a binary exponent (``frexp``), the mantissas of 64 consecutive
    numbers (the last group shorter) multiplied one after the other from 1.0 (a product
    that can neither overflow nor underflow), the products' :func:`_ln` added group after
    group from 0.0, and the integer sum E of the exponents added last as ``E log 2``."""
    J = d.shape[0]
    for j in range(J):
        if not (d[j] > 0.0 and d[j] < np.inf):
            return np.nan
    acc = 0.0
    E = 0
    for g in range(0, J, 64):
        prod = 1.0
        for j in range(g, min(g + 64, J)):
            m, e = math.frexp(d[j])
            prod *= m
            E += e
        acc += _ln(prod)
    return acc + (E * LN2_HI + E * LN2_LO)
