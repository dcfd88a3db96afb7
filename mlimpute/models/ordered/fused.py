"""The step with a random intercept's sums, and with the missing values' draws: the numpy
twins of :mod:`mlimpute.models.kernels.fused` (the same arguments, the same numbers)."""

from __future__ import annotations

import numpy as np

from mlimpute.models.ordered.draws import _draws, place_draws
from mlimpute.models.ordered.step import step
from mlimpute.models.ordered.sums import _intercept_sums

__all__ = ["step_draw_place", "step_intercept"]


def step_intercept(gens, XTs, xk, y, codes, ZT, ZtZ, Zty, split, ZtX, kept, *rest):
    """:func:`~mlimpute.models.ordered.sums._intercept_sums` (its arguments after ``XTs``
    and ``y`` in ``split``), then :func:`~mlimpute.models.ordered.step.step` on them."""
    ZtX, XtX, Xty = _intercept_sums(XTs, y, *split, ZtX, kept)
    return step(gens, XTs, xk, y, codes, ZT, ZtZ, Zty, ZtX, XtX, Xty, *rest)


def step_draw_place(gens, XTs, xk, y, codes, ZT, ZtZ, Zty, split, ZtX, kept, *rest):
    """:func:`step_intercept`, then (where the step succeeded) the draws of the missing
    rows from the new β, b and σ², placed and traced (the last eleven arguments: the
    missing rows' designs, codes, Z', shared design, masks, and ``x, mis_idx, mean, sd``)."""
    step_args, (XmTs, codes_mis, ZmT, XmT0, dmask_mis, unit, ones_mis, x, mis_idx, mean, sd) = (
        rest[:-11],
        rest[-11:],
    )
    got = step_intercept(gens, XTs, xk, y, codes, ZT, ZtZ, Zty, split, ZtX, kept, *step_args)
    if got[7] == 0:
        draws = np.empty((len(gens), XmTs[0].shape[1]))
        _draws(gens, XmTs, xk, codes_mis, ZmT, got[0], got[2], got[4], XmT0, dmask_mis,
               unit, ones_mis, draws)  # fmt: skip
        place_draws(x, mis_idx, draws, mean, sd)
    return got
