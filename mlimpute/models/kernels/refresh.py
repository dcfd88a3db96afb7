"""The compiled design refresh of a block of chains, and the draws' placement and trace.

One call of :func:`refresh` writes the changing columns of every chain's design, for one
variable's model, from the chains' current values: a plain imputed variable gathered at
the model's observed and missing rows, or its cluster means (``cmean(x)`` over the
primary clusters) gathered by the rows' cluster codes. It replaces
:meth:`~mlimpute.sampler.block.Block.refresh` chain by chain and gives the same numbers
bit for bit: the cluster sums are numpy's own (``np.add.reduceat``: the segment's first
value plus the pairwise sum of the rest), divided by the cluster's row count
(``tests/sampler/test_batched_values.py`` compares them exactly). :func:`place_draws`
writes a visit's draws into the chains' columns and computes their trace mean and
standard deviation, again numpy's numbers. The sampler uses them through
:mod:`mlimpute.sampler.batched_values` and :mod:`mlimpute.sampler.engine`, only after
checking :func:`mlimpute._numba.enabled`: importing this module imports numba
(:mod:`mlimpute.models.kernels`).
"""

from __future__ import annotations

import numpy as np

from mlimpute.models.kernels.options import jit
from mlimpute.models.kernels.pairwise import _means_into, _pairwise

__all__ = ["place_draws", "refresh"]

#: SHA-256 of all the kernel modules' sources (this line blanked): see the package's docstring
SOURCES = "e7c15ed93913fec74e7049c4c8d97476a48d1b07862883f07c34f61d83a0c7e9"


@jit
def refresh(
    V, XO, XM, cols, src, kind, obs_idx, mis_idx, codes_obs, codes_mis, starts, counts
):  # pragma: no cover - compiled
    """Column ``cols[t]`` of every chain's design, observed rows ``XO`` (C, p, n_obs) and
    missing rows ``XM`` (C, p, n_mis), from the chains' values ``V[src[t]]`` (C, n): the
    values themselves at the rows ``obs_idx``/``mis_idx`` (``kind[t] == 0``) or their
    cluster means at the rows' cluster codes (``kind[t] == 1``)."""
    C = XO.shape[0]
    means = np.empty(starts.shape[0])
    for t in range(cols.shape[0]):
        a = cols[t]
        for c in range(C):
            x = V[src[t], c]
            if kind[t] == 0:
                for i in range(obs_idx.shape[0]):
                    XO[c, a, i] = x[obs_idx[i]]
                for i in range(mis_idx.shape[0]):
                    XM[c, a, i] = x[mis_idx[i]]
            else:
                _means_into(x, starts, counts, means)
                for i in range(codes_obs.shape[0]):
                    XO[c, a, i] = means[codes_obs[i]]
                for i in range(codes_mis.shape[0]):
                    XM[c, a, i] = means[codes_mis[i]]


@jit
def place_draws(x, mis_idx, draws, mean, sd):  # pragma: no cover - compiled
    """Each chain's draws (C, n_mis) written into its column ``x[c]`` at the rows
    ``mis_idx``, and their mean and standard deviation into ``mean[c]`` and ``sd[c]``,
    as :func:`mlimpute.sampler.trace_stats.mean_sd_rows` computes them (numpy's pairwise
    sums of the values and of the squared deviations, the same numbers)."""
    C, n = draws.shape
    for c in range(C):
        row = draws[c]
        xc = x[c]
        for i in range(n):
            xc[mis_idx[i]] = row[i]
        if n == 0:
            mean[c] = np.nan
            sd[c] = 0.0
            continue
        m = _pairwise(row, 0, n, 0.0, False) / n
        mean[c] = m
        if n == 1:
            sd[c] = 0.0
            continue
        sd[c] = np.sqrt(_pairwise(row, 0, n, m, True) / (n - 1))
