"""Rows sorted by cluster: :class:`Segments`, the cluster structure every model sees.

The sampler sorts rows by cluster once (:class:`mlimpute.sampler.design.Layout`); every
model's data carries the :class:`Segments` of its observed rows (``data.seg_obs``), so
per-cluster sums are one ``np.add.reduceat`` call. It lives in the models layer because the
models compute with it; the sampler builds it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Segments"]


@dataclass(frozen=True)
class Segments:
    """Rows sorted by cluster code: where each non-empty cluster starts.

    Parameters
    ----------
    codes : ndarray of int, shape (n,)
        Cluster code of each row, non-decreasing.
    n_clusters : int
        Number of clusters J (codes lie in ``0..J-1``; clusters may be empty).

    Attributes
    ----------
    nonempty : ndarray of int
        Codes of the clusters with at least one row.
    starts : ndarray of int
        First row of each non-empty cluster.
    counts : ndarray of int, shape (J,)
        Rows per cluster.

    Examples
    --------
    >>> seg = Segments.from_codes(np.array([0, 0, 2]), 3)
    >>> seg.sum(np.array([1.0, 2.0, 5.0])).tolist(), seg.counts.tolist()
    ([3.0, 0.0, 5.0], [2, 0, 1])
    """

    codes: np.ndarray
    n_clusters: int
    nonempty: np.ndarray
    starts: np.ndarray
    counts: np.ndarray

    @classmethod
    def from_codes(cls, codes: np.ndarray, n_clusters: int) -> Segments:
        """Segments of sorted cluster ``codes``; unsorted codes raise ``ValueError``."""
        codes = np.asarray(codes, dtype=np.intp)
        if not codes.size:
            return cls(codes, n_clusters, codes, codes, np.zeros(n_clusters, dtype=np.intp))
        if np.any(codes[1:] < codes[:-1]):
            raise ValueError("codes must be sorted")
        breaks = np.flatnonzero(codes[1:] != codes[:-1])
        starts = np.empty(breaks.size + 1, dtype=np.intp)
        starts[0] = 0
        np.add(breaks, 1, out=starts[1:])
        nonempty = codes[starts]
        if nonempty[0] < 0:
            raise ValueError("codes must be non-negative")
        # rows per cluster, from the starts (np.bincount's length and values)
        counts = np.zeros(max(n_clusters, int(nonempty[-1]) + 1), dtype=np.intp)
        counts[nonempty] = np.diff(starts, append=codes.size)
        return cls(codes, n_clusters, nonempty, starts, counts)

    def sum(self, values: np.ndarray) -> np.ndarray:
        """Per-cluster sums of ``values`` (n, ...) → (J, ...); empty clusters give 0."""
        if self.starts.size == self.n_clusters and values.dtype == np.float64:
            return np.add.reduceat(values, self.starts, axis=0)  # no empty cluster
        out = np.zeros((self.n_clusters,) + values.shape[1:], dtype=np.float64)
        if self.starts.size:
            out[self.nonempty] = np.add.reduceat(values, self.starts, axis=0)
        return out

    def mean(self, values: np.ndarray) -> np.ndarray:
        """Per-cluster means (J, ...); NaN for empty clusters."""
        with np.errstate(invalid="ignore", divide="ignore"):
            s = self.sum(values)
            return s / self.counts.reshape((-1,) + (1,) * (s.ndim - 1))
