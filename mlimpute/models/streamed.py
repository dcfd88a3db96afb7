"""A level-1 model's data without stored design rows: columns read in chunks of rows.

A model's :class:`~mlimpute.models.base.ModelData` holds its design matrices on the
observed and on the missing rows, refreshed at every visit: for a model with p columns
that is p numbers a row, for every model of the run, all through the run. On large data
with plain numeric predictors (data columns, imputed columns, cluster means), the design
is not needed as a matrix: each of its columns is a data column, a chain's current
column, a cluster mean of one or the intercept, and what a Gibbs step needs of them is
sums (``X'X``, ``X'y``, per-cluster sums) and, on the missing rows, the linear predictor.
:class:`StreamedData` holds where each column comes from, where the response is observed
(a byte a row) and the observed and missing rows' positions (4 bytes a row each). A step
reads the columns that vary within clusters chunk by chunk (:func:`chunks`: whole
clusters of about :data:`CHUNK_ROWS` rows), each a slice of the sorted data or of the
chain's column, the missing rows masked out of the sums; the columns constant within
clusters (intercept, cluster means, cluster-level data columns) are one value per cluster.
"""

from __future__ import annotations

import functools
import weakref
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

__all__ = ["CHUNK_ROWS", "Source", "StreamedData", "chunks"]

#: rows per chunk (whole clusters; a larger cluster is a chunk of its own)
CHUNK_ROWS = 1 << 14


@dataclass(frozen=True)
class Source:
    """Where one design column comes from.

    ``kind`` is ``"one"`` (the intercept), ``"data"`` (a data column no imputation
    changes; ``key`` names it in :attr:`StreamedData.arrays`), ``"cluster"`` (such a
    column that is constant within clusters: its value per cluster in
    :attr:`StreamedData.cluster_arrays`), ``"value"`` (a chain's current column ``key``),
    ``"cmean"`` (the cluster means of the chain's column: ``key`` is the design column,
    ``cmean(x)``) or ``"product"`` (an interaction: the product of ``parts``).
    """

    kind: str
    key: str = ""
    parts: tuple[Source, ...] = ()

    @property
    def within(self) -> bool:
        """Whether the column varies within clusters (read row by row)."""
        if self.kind == "product":
            return any(p.within for p in self.parts)
        return self.kind in ("data", "value")

    @property
    def changing(self) -> bool:
        """Whether imputations change the column."""
        if self.kind == "product":
            return any(p.changing for p in self.parts)
        return self.kind in ("value", "cmean")


def chunks(starts: np.ndarray, n: int, size: int = CHUNK_ROWS) -> tuple:
    """Sorted rows in chunks of whole clusters: per chunk ``(lo, hi, a, b, starts,
    counts)``, its rows ``lo:hi``, its clusters ``a:b`` (every cluster has rows: the
    clusters' codes follow the rows' order), where each starts within the chunk and its
    rows.

    Examples
    --------
    >>> [(lo, hi, a, b, s.tolist(), c.tolist()) for lo, hi, a, b, s, c in
    ...  chunks(np.array([0, 2, 3]), 5, size=2)]
    [(0, 2, 0, 1, [0], [2]), (2, 5, 1, 3, [0, 1], [1, 2])]
    """
    if not n:
        return ()
    ends = np.r_[starts[1:], n]
    # each chunk begins at the first cluster starting at or after a multiple of size
    first = np.unique(np.searchsorted(starts, np.arange(0, n, size)))
    first = first[first < starts.size]
    out = []
    for a, b in zip(first.tolist(), [*first[1:].tolist(), starts.size], strict=True):
        lo, hi = int(starts[a]), int(ends[b - 1])
        out.append((lo, hi, a, b, starts[a:b] - lo, ends[a:b] - starts[a:b]))
    return tuple(out)


@dataclass
class StreamedData:
    """A level-1 model's data whose design columns are read from their sources.

    The fields a model reads of :class:`~mlimpute.models.base.ModelData` that hold no
    rows (``variable``, ``n_clusters``, ``group``, ``events``, ...), the response
    ``y`` (every sorted row, NaN where missing), where it is observed (one byte a row),
    the observed and missing rows' positions (4 bytes a row), the design's column names
    and sources, and the rows in chunks of whole clusters (:func:`chunks`). A step reads
    every row of a chunk (a slice of each column: no gathering) and leaves the missing
    rows out of its sums by the mask. :meth:`refresh` points it at a chain's current
    columns; a copy for another chain (:meth:`for_chain`) shares everything else.
    """

    variable: str
    y: np.ndarray
    observed: np.ndarray
    obs_idx: np.ndarray
    mis_idx: np.ndarray
    names: list[str]
    sources: tuple[Source, ...]
    arrays: dict[str, np.ndarray]
    cluster_arrays: dict[str, np.ndarray]
    parts: tuple
    n_clusters: int
    group: str | None
    events: list[str] = field(default_factory=list)
    random_blocks: tuple[tuple[int, ...], ...] = ((0,),)
    random_correlated: tuple[bool, ...] = (True,)
    categories: tuple | None = None
    integer: bool = False
    extra_terms: tuple = ()
    #: formulaic's specification of the fixed part (for readers that evaluate it on
    #: other rows)
    spec: Any = field(default=None, repr=False, compare=False)
    #: sums of what no imputation changes, computed once and shared by the chains' copies
    cache: dict = field(default_factory=dict, repr=False, compare=False)
    #: a weak reference to the chain's current columns (set by :meth:`refresh`): a chain's
    #: columns are not kept alive by the plan after it ends
    _values: Any = field(default=None, repr=False, compare=False)
    #: ``(state, predictor)``: the linear predictor on the missing rows of the state the
    #: last step made, from that step's pass over the rows, for the draw that follows
    pending: Any = field(default=None, repr=False, compare=False)

    @property
    def n_obs(self) -> int:
        return self.obs_idx.size

    @property
    def n_mis(self) -> int:
        return self.mis_idx.size

    @property
    def y_obs(self) -> np.ndarray:
        """The observed responses (a new array)."""
        return np.take(self.y, self.obs_idx)

    def __getstate__(self) -> dict:
        """Pickled without the chain's columns (a weak reference) or a pending predictor."""
        state = self.__dict__.copy()
        state["_values"] = state["pending"] = None
        return state

    @functools.cached_property
    def within(self) -> np.ndarray:
        """Positions of the columns that vary within clusters."""
        return np.array([k for k, s in enumerate(self.sources) if s.within], dtype=np.intp)

    @functools.cached_property
    def constant(self) -> np.ndarray:
        """Positions of the columns constant within clusters."""
        return np.array([k for k, s in enumerate(self.sources) if not s.within], dtype=np.intp)

    @functools.cached_property
    def changing(self) -> np.ndarray:
        """Positions among :attr:`within` of the columns imputations change."""
        within = [self.sources[k] for k in self.within]
        return np.array([i for i, s in enumerate(within) if s.changing], dtype=np.intp)

    @property
    def values(self) -> Any:
        """The chain's current columns (:meth:`refresh`)."""
        return None if self._values is None else self._values()

    def for_chain(self) -> StreamedData:
        return replace(self, _values=None, pending=None)

    def without_rows(self) -> StreamedData:
        return self

    def refresh(self, values: Any, static: Any = None) -> None:
        """Read the dynamic columns from ``values`` (a chain's current columns) from now on."""
        self._values = None if values is None else weakref.ref(values)
        self.pending = None

    def response(self, lo: int, hi: int) -> np.ndarray:
        """The chain's current response on rows ``lo:hi`` (a view; observed where it is)."""
        return self.values[self.variable][lo:hi]

    def column(self, s: Source, part: tuple, raw: bool = False) -> np.ndarray:
        """Column ``s`` on the rows of the chunk ``part`` (:func:`chunks`): a view where it
        is one (floats, or with ``raw`` the data's own type)."""
        lo, hi, a, b, _, counts = part
        if s.kind == "product":
            out = self.column(s.parts[0], part)
            for p in s.parts[1:]:
                out = out * self.column(p, part)
            return out
        if s.kind in ("data", "value"):
            col = self.values[s.key] if s.kind == "value" else self.arrays[s.key]
            x = col[lo:hi]
        else:  # one value per cluster, on its rows
            x = np.repeat(self.cluster_value(s)[a:b], counts)
        return x if raw or x.dtype == np.float64 else x.astype(np.float64)

    def columns(self, part: tuple, raw: bool = False) -> list[np.ndarray]:
        """The within-cluster columns on the rows of the chunk ``part`` (:meth:`column`;
        a data or imputed column read here directly: this runs for every chunk)."""
        lo, hi = part[0], part[1]
        values = self.values
        out = []
        for s in self._within_sources:
            if s.kind == "value":
                x = values[s.key][lo:hi]
            elif s.kind == "data":
                x = self.arrays[s.key][lo:hi]
            else:
                x = self.column(s, part)
            out.append(x if raw or x.dtype == np.float64 else x.astype(np.float64))
        return out

    @functools.cached_property
    def _within_sources(self) -> tuple[Source, ...]:
        return tuple(self.sources[k] for k in self.within)

    def cluster_value(self, s: Source) -> np.ndarray:
        """Column ``s``, constant within clusters, one value per cluster (J,)."""
        if s.kind == "one":
            return np.ones(self.n_clusters)
        if s.kind == "cluster":
            return self.cluster_arrays[s.key]
        if s.kind == "cmean":
            return self.values.cluster_means(s.key)
        out = self.cluster_value(s.parts[0])
        for p in s.parts[1:]:
            out = out * self.cluster_value(p)
        return out

    def cluster_columns(self) -> np.ndarray:
        """The columns constant within clusters, one row per cluster (J, k)."""
        out = np.empty((self.n_clusters, self.constant.size))
        for j, k in enumerate(self.constant):
            out[:, j] = self.cluster_value(self.sources[k])
        return out
