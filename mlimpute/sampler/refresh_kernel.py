"""The compiled (numba) design refresh of a block of chains stepped together.

Importing this module imports numba: only :mod:`mlimpute.sampler.batched` imports it,
after checking :func:`mlimpute._numba.enabled`. One call of :func:`refresh` writes the
changing columns of every chain's design, for one variable's model, from the chains'
current values: a plain imputed variable gathered at the model's observed and missing
rows, or its cluster means (``cmean(x)`` over the primary clusters) gathered by the rows'
cluster codes. It replaces :meth:`~mlimpute.sampler.block.Block.refresh` chain by chain
(a few microseconds of Python per chain and visit) and gives the same numbers bit for bit:
the cluster sums are numpy's own (``np.add.reduceat``: the segment's first value plus the
pairwise sum of the rest, :func:`_pairwise`), divided by the cluster's row count, so the
draws that follow are those of the numpy refresh (``tests/sampler/test_refresh_kernel.py``
compares them exactly). :func:`place_draws` writes a visit's draws into the chains'
columns and computes their trace mean and standard deviation, again numpy's numbers.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["cluster_means", "place_draws", "refresh"]

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")

#: numpy's block size of its pairwise summation
_BLOCK = 128


@_jit
def _block_sum(x, lo, n, m, sq):  # pragma: no cover - compiled
    """numpy's sum of up to 128 values ``x[lo:lo + n]`` (with ``sq``: of the squares of
    ``x - m``, each formed as numpy forms ``d = x - m; d * d``): a plain loop below 8
    values, else eight running sums."""
    if n < 8:
        res = -0.0
        for i in range(lo, lo + n):
            res += _term(x[i], m, sq)
        return res
    r0, r1 = _term(x[lo], m, sq), _term(x[lo + 1], m, sq)
    r2, r3 = _term(x[lo + 2], m, sq), _term(x[lo + 3], m, sq)
    r4, r5 = _term(x[lo + 4], m, sq), _term(x[lo + 5], m, sq)
    r6, r7 = _term(x[lo + 6], m, sq), _term(x[lo + 7], m, sq)
    i = 8
    top = n - n % 8
    while i < top:
        k = lo + i
        r0 += _term(x[k], m, sq)
        r1 += _term(x[k + 1], m, sq)
        r2 += _term(x[k + 2], m, sq)
        r3 += _term(x[k + 3], m, sq)
        r4 += _term(x[k + 4], m, sq)
        r5 += _term(x[k + 5], m, sq)
        r6 += _term(x[k + 6], m, sq)
        r7 += _term(x[k + 7], m, sq)
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += _term(x[lo + i], m, sq)
        i += 1
    return res


@_jit
def _term(v, m, sq):  # pragma: no cover - compiled
    """A summand: v, or with ``sq`` the square of ``v - m``."""
    if sq:
        d = v - m
        return d * d
    return v


@_jit
def _pairwise(x, lo, n, m=0.0, sq=False):  # pragma: no cover - compiled
    """Sum of ``x[lo:lo + n]`` (with ``sq``: of the squares of ``x - m``) in numpy's
    pairwise order (``pairwise_sum`` of its ``add`` loop): :func:`_block_sum` up to 128
    values, else the sums of the two halves (the first a multiple of 8 long) added. The
    halving runs on an explicit stack, not by recursion (numba's cache does not keep
    recursive functions reliably)."""
    if n <= _BLOCK:
        return _block_sum(x, lo, n, m, sq)
    los = np.empty(64, dtype=np.int64)
    ns = np.empty(64, dtype=np.int64)
    phase = np.zeros(64, dtype=np.int64)
    sums = np.empty(64)
    sp = 0  # pending ranges
    rp = 0  # finished sums
    los[0], ns[0], phase[0] = lo, n, 0
    sp = 1
    while sp > 0:
        t = sp - 1
        k = ns[t]
        if k <= _BLOCK:
            sums[rp] = _block_sum(x, los[t], k, m, sq)
            rp += 1
            sp -= 1
            continue
        k2 = k // 2
        k2 -= k2 % 8
        if phase[t] == 0:  # the first half
            phase[t] = 1
            los[sp], ns[sp], phase[sp] = los[t], k2, 0
            sp += 1
        elif phase[t] == 1:  # the second half
            phase[t] = 2
            los[sp], ns[sp], phase[sp] = los[t] + k2, k - k2, 0
            sp += 1
        else:  # both done: first + second
            rp -= 1
            sums[rp - 1] = sums[rp - 1] + sums[rp]
            sp -= 1
    return sums[0]


@_jit
def _means_into(x, starts, counts, out):  # pragma: no cover - compiled
    """Per-cluster means of ``x`` (rows sorted by cluster, every cluster non-empty) into
    ``out``, as :meth:`Segments.mean <mlimpute.models.segments.Segments.mean>`."""
    J = starts.shape[0]
    n = x.shape[0]
    for j in range(J):
        s0 = starts[j]
        e = starts[j + 1] if j + 1 < J else n
        s = x[s0]
        m = e - s0 - 1
        if m > _BLOCK:
            s += _pairwise(x, s0 + 1, m, 0.0, False)
        elif m > 0:  # _pairwise's first branch, called directly: a third of the time
            s += _block_sum(x, s0 + 1, m, 0.0, False)
        out[j] = s / counts[j]


@_jit
def cluster_means(x, starts, counts):  # pragma: no cover - compiled
    """Per-cluster means of ``x`` (J,), for the tests."""
    out = np.empty(starts.shape[0])
    _means_into(x, starts, counts, out)
    return out


@_jit
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


@_jit
def place_draws(x, mis_idx, draws, mean, sd):  # pragma: no cover - compiled
    """Each chain's draws (C, n_mis) written into its column ``x[c]`` at the rows
    ``mis_idx``, and their mean and standard deviation into ``mean[c]`` and ``sd[c]``,
    as :func:`mlimpute.sampler.batched._mean_sd_rows` computes them (numpy's pairwise
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
