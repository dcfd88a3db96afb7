"""The row order and cluster structure shared by every model of one imputation run.

Rows are sorted by cluster once (:class:`Layout`), so segment sums are ``reduceat`` calls;
further grouping factors (three-level and cross-classified data) are
:class:`GroupingFactor` s on the sorted rows.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlimpute.codec import sorted_codes
from mlimpute.models.segments import Segments
from mlimpute.spec.defaults import factor_codes
from mlimpute.spec.formula import factor_columns

__all__ = ["GroupingFactor", "Layout"]


@dataclass(frozen=True)
class GroupingFactor:
    """A grouping factor other than the primary one, on the sorted rows of a :class:`Layout`.

    Attributes
    ----------
    name : str
        As in :attr:`ParsedFormula.random_terms <mlimpute.spec.formula.ParsedFormula.random_terms>`.
    codes : ndarray of int
        Cluster code of each sorted row (non-decreasing when ``contains_primary``, except
        for a factor crossing the outer one of three nested levels: see
        :meth:`Layout.from_factors`).
    labels : pandas.Index
        Label of each code.
    contains_primary : bool
        Every primary cluster lies within one cluster of this factor (school ⊃ class).
    nested_in_primary : bool
        Every cluster of this factor lies within one primary cluster.
    """

    name: str
    codes: np.ndarray
    labels: pd.Index
    contains_primary: bool
    nested_in_primary: bool

    @property
    def n_clusters(self) -> int:
        return len(self.labels)

    @functools.cached_property
    def row_counts(self) -> np.ndarray:
        """Rows per cluster, at least 1 (the divisor of a cluster mean)."""
        return np.maximum(np.bincount(self.codes, minlength=self.n_clusters), 1)


def _pairs(a: np.ndarray, b: np.ndarray) -> int:
    """Number of distinct (a, b) code pairs."""
    return np.unique(a.astype(np.int64) * (int(b.max()) + 1) + b).size if a.size else 0


def _first_seen(codes: np.ndarray, labels: pd.Index) -> tuple[np.ndarray, pd.Index]:
    """Codes renumbered in order of first appearance (non-decreasing when grouped)."""
    uniq, first = np.unique(codes, return_index=True)
    by_first = uniq[np.argsort(first, kind="stable")]
    new = np.empty(len(labels), dtype=np.intp)
    new[by_first] = np.arange(by_first.size)
    return new[codes], labels[by_first]


def _grouped(codes: np.ndarray) -> bool:
    """Whether each code's rows are contiguous."""
    if codes.size < 2:
        return True
    runs = 1 + int(np.count_nonzero(codes[1:] != codes[:-1]))
    return runs == np.unique(codes).size


@dataclass(frozen=True)
class Layout:
    """Row order and cluster structure shared by every model of one imputation run.

    Attributes
    ----------
    stored_order : ndarray or None
        ``stored_order[k]`` is the original position of sorted row ``k``; None where the
        rows were sorted already (not kept: 8 bytes a row). Read :attr:`order`.
    segments : Segments
        Cluster segments of all rows (sorted).
    labels : pandas.Index
        Cluster label of each code.
    group : str or None
        The cluster column (the primary grouping factor: the innermost level).
    factors : tuple of GroupingFactor
        Further grouping factors (three-level and cross-classified data); rows are sorted
        by the factors containing the primary one first, outermost first.
    """

    stored_order: np.ndarray | None
    segments: Segments
    labels: pd.Index
    group: str | None
    factors: tuple[GroupingFactor, ...] = ()

    def __post_init__(self) -> None:
        # rows that are sorted already (each cluster's rows together, in order): the order
        # is not kept (8 bytes a row), :attr:`order` makes it when asked
        o = self.stored_order
        if o is not None and o.size and o[0] == 0 and np.all(o[1:] - o[:-1] == 1):
            object.__setattr__(self, "stored_order", None)

    @property
    def order(self) -> np.ndarray:
        """``order[k]`` is the original position of sorted row ``k`` (a new array where
        the rows were sorted already).

        Examples
        --------
        >>> Layout.from_frame(pd.DataFrame({"g": [2, 1, 2]}), "g").order.tolist()
        [1, 0, 2]
        >>> lay = Layout.from_frame(pd.DataFrame({"g": [1, 1, 2]}), "g")
        >>> lay.order.tolist(), lay.stored_order is None
        ([0, 1, 2], True)
        """
        if self.stored_order is None:
            return np.arange(self.segments.codes.size)
        return self.stored_order

    def factor(self, name: str) -> GroupingFactor:
        """The further grouping factor ``name``."""
        for f in self.factors:
            if f.name == name:
                return f
        raise KeyError(name)

    @classmethod
    def from_factors(
        cls, df: pd.DataFrame, group: str, others: tuple[str, ...], outer: str | None = None
    ) -> Layout:
        """Rows sorted by the factors that contain ``group`` (outermost first), then by
        ``group``; nesting (every class in one school) is found in the data.

        ``outer`` (three levels: the hierarchy's outer factor, school) must come out with
        contiguous clusters (the level-3 segments). Where a factor with fewer clusters
        that contains ``group`` but crosses ``outer`` (a teacher of classes in several
        schools) would split them, ``outer`` becomes the first sort key; that factor's
        codes are then not sorted, which its term's cluster sums (bincount) do not need.
        Otherwise the order is the one above.

        Examples
        --------
        >>> df = pd.DataFrame({"s": [2, 1, 2, 1], "c": ["a", "b", "b", "a"]})
        >>> lay = Layout.from_factors(df, "s:c", ("s",))
        >>> lay.order.tolist(), lay.codes.tolist(), lay.factor("s").codes.tolist()
        ([3, 1, 0, 2], [0, 1, 2, 3], [0, 0, 1, 1])
        >>> df = pd.DataFrame({"s": [1, 1, 2, 2], "c": [1, 2, 1, 2], "t": [1, 2, 2, 1]})
        >>> lay = Layout.from_factors(df, "s:c", ("s", "t"), outer="s")
        >>> lay.factor("s").codes.tolist(), lay.factor("t").codes.tolist()
        ([0, 0, 1, 1], [0, 1, 0, 1])
        """
        codes, labels = factor_codes(df, group)
        J = len(labels)
        raw = []
        for name in others:
            c, lab = factor_codes(df, name)
            contains = _pairs(codes, c) == J
            nested = _pairs(c, codes) == len(lab)
            raw.append((name, c, lab, contains, nested))
        # outermost (fewest clusters) most significant: np.lexsort sorts by its last key
        containing = sorted((r for r in raw if r[3]), key=lambda r: -len(r[2]))
        order = np.lexsort([codes, *(r[1] for r in containing)])
        top = next((r for r in containing if r[0] == outer), None)
        if top is not None and not _grouped(top[1][order]):
            # a crossed containing factor went first: the outer factor first instead
            keys = [r for r in containing if r is not top] + [top]
            order = np.lexsort([codes, *(r[1] for r in keys)])
        codes, labels = _first_seen(codes[order], labels)
        factors = []
        for name, c, lab, contains, nested in raw:
            c = c[order]
            if contains:
                c, lab = _first_seen(c, lab)
            factors.append(GroupingFactor(name, c, lab, contains, nested))
        return cls(order, Segments.from_codes(codes, J), labels, group, tuple(factors))

    @classmethod
    def from_frame(cls, df: pd.DataFrame, group: str | None) -> Layout:
        n = len(df)
        if group is None:
            codes = np.zeros(n, dtype=np.intp)
            labels = pd.Index([0])
        elif len(factor_columns(group)) > 1:
            return cls.from_factors(df, group, ())
        else:
            codes, labels = sorted_codes(df[group])
            labels = pd.Index(labels)
        order = np.argsort(codes, kind="stable")
        return cls(order, Segments.from_codes(codes[order], len(labels)), labels, group)

    @classmethod
    def single(cls, n: int) -> Layout:
        """n rows in one cluster (the cluster rows of a level-2 model)."""
        codes = np.zeros(n, dtype=np.intp)
        return cls(np.arange(n), Segments.from_codes(codes, 1), pd.Index([0]), None)

    @property
    def n(self) -> int:
        return self.segments.codes.size

    @property
    def codes(self) -> np.ndarray:
        return self.segments.codes

    def cluster_mean(self, x: np.ndarray) -> np.ndarray:
        """Cluster mean of ``x`` broadcast back to the (sorted) rows."""
        return np.take(self.segments.mean(x), self.codes)

    def factor_mean(self, x: np.ndarray, factor: str | None) -> np.ndarray:
        """Mean of ``x`` over the rows of each cluster of the grouping factor ``factor``
        (None or the primary one: :meth:`cluster_mean`), broadcast back to the rows: the
        column ``cmean(x, factor)``.

        Examples
        --------
        >>> df = pd.DataFrame({"s": [1, 1, 1, 2], "c": [1, 2, 2, 3]})
        >>> lay = Layout.from_factors(df, "c", ("s",))
        >>> lay.factor_mean(np.array([1.0, 2.0, 3.0, 7.0]), "s").tolist()
        [2.0, 2.0, 2.0, 7.0]
        """
        if factor is None or factor == self.group:
            return self.cluster_mean(x)
        fac = self.factor(factor)
        return np.take(self.factor_cluster_means(x, fac), fac.codes)

    @staticmethod
    def factor_cluster_means(x: np.ndarray, fac: GroupingFactor) -> np.ndarray:
        """Mean of ``x`` (sorted rows) over each cluster of ``fac``, one value per cluster."""
        return np.bincount(fac.codes, weights=x, minlength=fac.n_clusters) / fac.row_counts
