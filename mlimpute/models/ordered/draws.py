"""The missing values' draws, ``x'β + z'b_j + e`` for C chains: the numpy twin of
:func:`mlimpute.models.kernels.draws.draw_missing` (the same arguments, the same
numbers). The kernels that also place and trace the draws serve only the sampler's
compiled refresh, which runs with the compiled step, and have no twin."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["draw_missing"]


def _fit(beta: np.ndarray, XmT: np.ndarray, XmT0: np.ndarray, dmask, unit, n: int) -> np.ndarray:
    """``x'β`` row by row, ``((c0 + β_a x_a) + β_b x_b) + ...`` column after column, where
    c0 sums the leading columns of ones' coefficients and a later column of ones adds
    its coefficient (as the kernel, which does not read them)."""
    p = beta.shape[0]
    c0 = 0.0
    a = 0
    while a < p and unit[a]:
        c0 += float(beta[a])
        a += 1
    fit = None
    while a < p:
        x = np.full(n, c0) if fit is None else fit
        if unit[a]:
            fit = x + beta[a]
        else:
            fit = x + beta[a] * (XmT[a] if dmask[a] else XmT0[a])
        a += 1
    return np.full(n, c0) if fit is None else fit


def _draws(gens, XmTs, xk, codes, ZmT, beta, b, s2, XmT0, dmask, unit, ones, out) -> None:
    """``x'β + z'b_j + e`` on the missing rows of every chain (C, n_mis) into ``out``."""
    p, n = XmTs[0].shape
    q = ZmT.shape[0]
    codes = np.asarray(codes, dtype=np.intp)
    for c in range(len(gens)):
        sd = math.sqrt(s2[c])
        fit = _fit(beta[c], XmTs[int(xk[c])], XmT0, dmask, unit, n)
        if ones:
            zb = 0.0 + b[c, codes, 0]
        else:
            zb = np.zeros(n)
            for u in range(q):
                zb = zb + ZmT[u] * b[c, codes, u]
        out[c] = (fit + zb) + sd * gens[c].standard_normal(n)


def draw_missing(gens, XmTs, xk, codes, ZmT, beta, b, s2, XmT0, dmask, unit, ones) -> np.ndarray:
    """``x'β + z'b_j + e`` on the missing rows of every chain (C, n_mis)."""
    out = np.empty((len(gens), XmTs[0].shape[1]))
    _draws(gens, XmTs, xk, codes, ZmT, beta, b, s2, XmT0, dmask, unit, ones, out)
    return out
