"""The compiled (numba) design refresh of a block of chains, and the draws' placement.

Importing this module imports numba: only code that has checked
:func:`mlimpute._numba.enabled` imports it (:mod:`mlimpute.sampler.batched`,
:mod:`mlimpute.sampler.engine`, :mod:`mlimpute.sampler.batched_values`). One call of
:func:`refresh` writes the changing columns of every chain's design, for one variable's
model, from the chains' current values: a plain imputed variable gathered at the model's
observed and missing rows, or its cluster means (``cmean(x)`` over the primary clusters)
gathered by the rows' cluster codes. It replaces
:meth:`~mlimpute.sampler.block.Block.refresh` chain by chain (a few microseconds of Python
per chain and visit) and gives the same numbers bit for bit: the cluster sums are numpy's
own (``np.add.reduceat``: the segment's first value plus the pairwise sum of the rest),
divided by the cluster's row count, so the draws that follow are those of the numpy
refresh (``tests/sampler/test_refresh_kernel.py`` compares them exactly).
:func:`place_draws` writes a visit's draws into the chains' columns and computes their
trace mean and standard deviation, again numpy's numbers.

The compiled functions themselves are in :mod:`mlimpute.models.kernels` (its
:mod:`~mlimpute.models.kernels.refresh` and :mod:`~mlimpute.models.kernels.pairwise`),
with the step's: its draws' kernel places and traces them too
(:func:`~mlimpute.models.kernels.draws.draw_place`).
"""

from __future__ import annotations

from mlimpute.models.kernels.pairwise import cluster_means
from mlimpute.models.kernels.refresh import place_draws, refresh

__all__ = ["cluster_means", "place_draws", "refresh"]
