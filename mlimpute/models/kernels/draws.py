"""The compiled draws of the missing values, ``x'β + z'b_j + e`` for C chains, and their
placement into the chains' columns in the same call.

Importing this module imports numba (:mod:`mlimpute.models.kernels`).
"""

from __future__ import annotations

import numpy as np

from mlimpute.models.kernels.options import jit
from mlimpute.models.kernels.refresh import place_draws

__all__ = ["draw_missing", "draw_place"]

#: SHA-256 of all the kernel modules' sources (this line blanked): see the package's docstring
SOURCES = "e7c15ed93913fec74e7049c4c8d97476a48d1b07862883f07c34f61d83a0c7e9"


@jit
def draw_missing(  # pragma: no cover - compiled
    gens, XmTs, xk, codes, ZmT, beta, b, s2, XmT0, dmask, unit, ones
):
    """``x'β + z'b_j + e`` on the missing rows of every chain (C, n_mis): :func:`_draws`."""
    out = np.empty((len(gens), XmTs[0].shape[1]))
    _draws(gens, XmTs, xk, codes, ZmT, beta, b, s2, XmT0, dmask, unit, ones, out)
    return out


@jit
def draw_place(  # pragma: no cover - compiled
    gens, XmTs, xk, codes, ZmT, beta, b, s2, XmT0, dmask, unit, ones, x, mis_idx, mean, sd
):
    """:func:`draw_missing` and :func:`~mlimpute.models.kernels.refresh.place_draws` in
    one call (the draws are still in the cache when they are placed and traced): each
    chain's draws written into its column ``x[c]`` at the rows ``mis_idx``, their mean and
    SD into ``mean``, ``sd``."""
    draws = np.empty((len(gens), XmTs[0].shape[1]))
    _draws(gens, XmTs, xk, codes, ZmT, beta, b, s2, XmT0, dmask, unit, ones, draws)
    place_draws(x, mis_idx, draws, mean, sd)


@jit
def _fit_pass(fit, first, c0, w, b0, x0, b1, x1, b2, x2, b3, x3):  # pragma: no cover
    """``fit[i] += b0 x0[i]``, then ``b1 x1[i]`` ... for the first ``w`` (1-4) columns in
    one pass, the additions in that order (from ``c0`` instead of ``fit`` if ``first``)."""
    n = fit.shape[0]
    if w == 4:
        for i in range(n):
            t = c0 if first else fit[i]
            fit[i] = (((t + b0 * x0[i]) + b1 * x1[i]) + b2 * x2[i]) + b3 * x3[i]
    elif w == 3:
        for i in range(n):
            t = c0 if first else fit[i]
            fit[i] = ((t + b0 * x0[i]) + b1 * x1[i]) + b2 * x2[i]
    elif w == 2:
        for i in range(n):
            t = c0 if first else fit[i]
            fit[i] = (t + b0 * x0[i]) + b1 * x1[i]
    else:
        for i in range(n):
            t = c0 if first else fit[i]
            fit[i] = t + b0 * x0[i]


@jit
def _draws(  # pragma: no cover - compiled
    gens, XmTs, xk, codes, ZmT, beta, b, s2, XmT0, dmask, unit, ones, out
):
    """``x'β + z'b_j + e`` on the missing rows of every chain (C, n_mis) into ``out``;
    x'β summed column after column (up to four columns a pass over the rows,
    :func:`_fit_pass`), the columns no imputation changes (not ``dmask``) read from the
    shared design ``XmT0``, those of ones (``unit``: the intercept) and Z where it is a
    column of ones (``ones``) not read at all (a product with 1.0 is exact)."""
    C = len(gens)
    p, n = XmTs[0].shape
    q = ZmT.shape[0]
    fit = np.empty(n)
    for c in range(C):
        gen = gens[c]
        sd = np.sqrt(s2[c])
        # x'β = (((0 + β_0 x_0) + β_1 x_1) + ...) row by row, up to four columns a pass;
        # leading columns of ones (the intercept) as one number: ba * 1.0 is ba
        c0 = 0.0
        a = 0
        while a < p and unit[a]:
            c0 += beta[c, a]
            a += 1
        first = True
        while a < p:
            if unit[a]:  # a column of ones further on: not read
                for i in range(n):
                    fit[i] += beta[c, a]
                a += 1
                continue
            w = 0
            while w < 4 and a + w < p and not unit[a + w]:
                w += 1
            xs = [XmTs[xk[c]][a + u] if dmask[a + u] else XmT0[a + u] for u in range(w)]
            bs = [beta[c, a + u] for u in range(w)]
            for _ in range(w, 4):  # unused places
                xs.append(xs[0])
                bs.append(0.0)
            _fit_pass(fit, first, c0, w, bs[0], xs[0], bs[1], xs[1], bs[2], xs[2], bs[3], xs[3])
            first = False
            a += w
        if first:  # no column read
            fit[:] = c0
        if ones:  # Z a column of ones: z'b_j is b_j, Z not read
            for i in range(n):
                zb = 0.0
                zb += b[c, codes[i], 0]
                out[c, i] = (fit[i] + zb) + sd * gen.standard_normal()
            continue
        for i in range(n):
            g = codes[i]
            zb = 0.0
            for u in range(q):
                zb += ZmT[u, i] * b[c, g, u]
            out[c, i] = (fit[i] + zb) + sd * gen.standard_normal()
