"""A chain's current completed columns, as the per-visit refresh of the designs reads them.

:class:`Values` holds one chain's columns on the sorted rows (with cached ``cmean()``
columns); :class:`ClusterValues` shows them one row per cluster (for level-2 and level-3
models).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pandas as pd

from mlimpute.codec import decode
from mlimpute.models.segments import Segments
from mlimpute.sampler.layout import Layout
from mlimpute.spec.formula import split_cmean_column

__all__ = ["Values", "ClusterValues"]

#: :func:`~mlimpute.spec.formula.split_cmean_column`, remembered: the refresh of the
#: designs asks it about the same few column names at every visit of every chain
_split = functools.lru_cache(maxsize=4096)(split_cmean_column)


class Values(dict):
    """The current completed columns of one chain (sorted order; codes for categories).

    ``like`` maps a categorical variable to a Series of its dtype, used to decode codes
    when formulaic re-evaluates a term (the slow refresh path).
    """

    def __init__(
        self, layout: Layout, *args: Any, like: dict[str, pd.Series] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.layout = layout
        self.like = like or {}
        self._cmean: dict[str, np.ndarray] = {}
        self._means: dict[str, np.ndarray] = {}
        self._factor_means: dict[tuple[str, str], np.ndarray] = {}

    def frame_value(self, name: str) -> np.ndarray | pd.Series:
        """The current column as formulaic should see it (decoded categories)."""
        if name in self.like:
            return decode(self[name], self.like[name])
        return self[name]

    def touch(self, name: str) -> None:
        """Forget cached cluster means of ``name`` after its imputed values changed."""
        if self._cmean:
            for key in [k for k in self._cmean if k[0] == name]:
                del self._cmean[key]
        if self._factor_means:
            for key in [k for k in self._factor_means if k[0] == name]:
                del self._factor_means[key]
        if self._means:
            self._means.pop(name, None)

    def cluster_means(self, name: str) -> np.ndarray | None:
        """The per-cluster means behind the column ``name`` when it is ``cmean(x)`` of a
        current column over the primary clusters (one value per cluster, not broadcast to
        the rows: the design refresh gathers them straight into its rows); else None.

        Examples
        --------
        >>> from mlimpute.sampler.layout import Layout
        >>> lay = Layout.from_frame(pd.DataFrame({"g": [1, 1, 2]}), "g")
        >>> v = Values(lay, x=np.array([1.0, 3.0, 5.0]))
        >>> v.cluster_means("cmean(x)").tolist(), v.cluster_means("x")
        ([2.0, 5.0], None)
        """
        split = _split(name)
        if split is None or split[0] not in self or split[1] not in (None, self.layout.group):
            return None
        if split[0] not in self._means:
            self._means[split[0]] = self.layout.segments.mean(self[split[0]])
        return self._means[split[0]]

    def factor_means(self, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        """For ``cmean(x, factor)`` of a current column over a further grouping factor:
        the per-cluster means of x and each sorted row's cluster code (the column is
        ``means[codes]``); else None.

        Examples
        --------
        >>> from mlimpute.sampler.layout import Layout
        >>> lay = Layout.from_factors(pd.DataFrame({"s": [1, 1, 2], "c": [1, 2, 3]}), "c", ("s",))
        >>> v = Values(lay, x=np.array([1.0, 3.0, 5.0]))
        >>> means, codes = v.factor_means("cmean(x, s)")
        >>> means.tolist(), codes.tolist()
        ([2.0, 5.0], [0, 0, 1])
        """
        split = _split(name)
        if split is None or split[0] not in self or split[1] in (None, self.layout.group):
            return None
        fac = self.layout.factor(split[1])
        if split not in self._factor_means:
            self._factor_means[split] = self.layout.factor_cluster_means(self[split[0]], fac)
        return self._factor_means[split], fac.codes

    def factor(self, name: str, static: pd.DataFrame) -> np.ndarray:
        if name in self:
            return self[name]
        split = _split(name)
        if split is not None and split[0] in self:
            if split not in self._cmean:  # cmean(x) or cmean(x, factor)
                per = self.factor_means(name)
                if per is None:
                    self._cmean[split] = self.layout.factor_mean(self[split[0]], split[1])
                else:
                    self._cmean[split] = np.take(per[0], per[1])
            return self._cmean[split]
        return static[name].to_numpy(dtype=np.float64)


class ClusterValues:
    """A chain's values seen one row per cluster (for level-2 models).

    Level-2 variables give their cluster value (first row), ``cmean(x)`` the cluster mean
    of x's current values, ``ranef(...)`` columns the current random effects passed in.
    """

    def __init__(
        self,
        values: Values,
        first: np.ndarray,
        ranef: dict[str, np.ndarray],
        segments: Segments | None = None,
    ) -> None:
        self.values, self.first, self.ranef = values, first, ranef
        self.like = values.like
        # the clusters whose means cmean(x) gives: the layout's, or (level-3 rows with
        # three levels) the segments of the level-3 factor over the sorted rows
        self.segments = values.layout.segments if segments is None else segments

    def __iter__(self):
        return iter([*self.values, *self.ranef])

    def __contains__(self, name) -> bool:
        return name in self.values or name in self.ranef

    def __getitem__(self, name: str) -> np.ndarray:
        if name in self.ranef:
            return self.ranef[name]
        return np.take(self.values[name], self.first)

    def factor(self, name: str, static: pd.DataFrame) -> np.ndarray:
        if name in self:
            return self[name]
        split = _split(name)
        if split is not None and split[0] in self.values:
            if split[1] is None:  # the mean over this view's clusters
                if self.segments is self.values.layout.segments:  # cached per visit
                    return self.values.cluster_means(name)
                return self.segments.mean(self.values[split[0]])
            # cmean(x, factor): the row-level mean over factor's clusters, at each cluster
            per = self.values.factor_means(name)
            if per is not None:
                return np.take(per[0], np.take(per[1], self.first))
            return np.take(self.values.factor(name, static), self.first)
        return static[name].to_numpy(dtype=np.float64)

    def frame_value(self, name: str) -> np.ndarray | pd.Series:
        if name in self.like:
            return decode(self[name], self.like[name])
        return self[name]
