"""The missing values' draws, ``x'β + z'b_j + e`` for C chains, and their placement: the
numpy twins of :mod:`mlimpute.models.kernels.draws` and
:func:`mlimpute.models.kernels.refresh.place_draws` (the same arguments, the same
numbers)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["draw_missing", "draw_place", "place_draws"]


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


def draw_place(
    gens, XmTs, xk, codes, ZmT, beta, b, s2, XmT0, dmask, unit, ones, x, mis_idx, mean, sd
) -> None:
    """:func:`draw_missing`, then :func:`place_draws`."""
    draws = draw_missing(gens, XmTs, xk, codes, ZmT, beta, b, s2, XmT0, dmask, unit, ones)
    place_draws(x, mis_idx, draws, mean, sd)


def place_draws(x, mis_idx, draws, mean, sd) -> None:
    """Each chain's draws written into its column ``x[c]`` at the rows ``mis_idx``, their
    mean and standard deviation (numpy's pairwise sums) into ``mean[c]`` and ``sd[c]``."""
    C, n = draws.shape
    for c in range(C):
        row = draws[c]
        x[c][mis_idx] = row
        if n == 0:
            mean[c], sd[c] = np.nan, 0.0
            continue
        m = np.add.reduce(row) / n
        mean[c] = m
        if n == 1:
            sd[c] = 0.0
            continue
        d = row - m
        sd[c] = math.sqrt(np.add.reduce(d * d) / (n - 1))
