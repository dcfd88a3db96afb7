"""numpy's pairwise summation, compiled: sums and per-cluster means with numpy's own
numbers, bit for bit.

Importing this module imports numba (:mod:`mlimpute.models.kernels`).
"""

from __future__ import annotations

import numpy as np

from mlimpute.models.kernels.options import jit

__all__ = ["cluster_means"]

#: SHA-256 of all the kernel modules' sources (this line blanked): see the package's docstring
SOURCES = "e7c15ed93913fec74e7049c4c8d97476a48d1b07862883f07c34f61d83a0c7e9"


#: numpy's block size of its pairwise summation
_BLOCK = 128


@jit
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


@jit
def _term(v, m, sq):  # pragma: no cover - compiled
    """A summand: v, or with ``sq`` the square of ``v - m``."""
    if sq:
        d = v - m
        return d * d
    return v


@jit
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


@jit
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


@jit
def cluster_means(x, starts, counts):  # pragma: no cover - compiled
    """Per-cluster means of ``x`` (J,), for the tests."""
    out = np.empty(starts.shape[0])
    _means_into(x, starts, counts, out)
    return out
