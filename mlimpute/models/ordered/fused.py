"""The step with a random intercept's sums: the numpy twin of
:func:`mlimpute.models.kernels.fused.step_intercept` (the same arguments, the same
numbers)."""

from __future__ import annotations

from mlimpute.models.ordered.step import step
from mlimpute.models.ordered.sums import _intercept_sums

__all__ = ["step_intercept"]


def step_intercept(gens, XTs, xk, y, codes, ZT, ZtZ, Zty, split, ZtX, kept, *rest):
    """:func:`~mlimpute.models.ordered.sums._intercept_sums` (its arguments after ``XTs``
    and ``y`` in ``split``), then :func:`~mlimpute.models.ordered.step.step` on them."""
    ZtX, XtX, Xty = _intercept_sums(XTs, y, *split, ZtX, kept)
    return step(gens, XTs, xk, y, codes, ZT, ZtZ, Zty, ZtX, XtX, Xty, *rest)
