"""Imputations made elsewhere: :func:`from_completed` and :class:`CompletedImputations`.

Completed data sets from R's mice, Blimp or any other imputer, wrapped so that
:func:`mlimpute.analysis.fit` and :func:`mlimpute.analysis.apply` work on them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from mlimpute.analysis.apply import apply
from mlimpute.analysis.fitting import fit
from mlimpute.analysis.results import PooledResult
from mlimpute.errors import SpecificationError
from mlimpute.result.imputed import long_form


class CompletedImputations:
    """``m`` completed data sets made elsewhere (R's mice, Blimp...), ready to analyse.

    Made by :func:`from_completed`. A :class:`~mlimpute.MultiplyImputed` stores the
    imputed cells of one incomplete DataFrame together with the imputation model and its
    traces; for imputations made elsewhere none of those is known (which cells were
    missing cannot be told reliably from the completed data), so this small class holds
    the completed data sets themselves and offers the same analysis interface:
    :attr:`m`, :meth:`complete`, :meth:`fit`, :meth:`apply`.

    Attributes
    ----------
    m : int
    columns : pandas.Index
    events : list of str
        Decisions taken while reading the data (e.g. an imputation 0 skipped).
    """

    def __init__(self, frames: Sequence[pd.DataFrame], events: Sequence[str] = ()):
        self._frames = tuple(frames)
        self.events = list(events)

    @property
    def m(self) -> int:
        return len(self._frames)

    @property
    def columns(self) -> pd.Index:
        return self._frames[0].columns

    def complete(
        self,
        which: int | Literal["all", "long"] = 1,
        *,
        imputation_column: str = "imputation",
    ) -> pd.DataFrame | Iterator[pd.DataFrame]:
        """Completed data set ``which`` (1-based), ``"all"`` (an iterator) or ``"long"``.

        Every call returns copies: changing them leaves the stored data unchanged.
        ``"long"`` stacks the data sets with a column ``imputation_column`` (default
        ``"imputation"``) first, numbering them 1..m, as
        :meth:`mlimpute.MultiplyImputed.complete` does.

        Raises
        ------
        DataError
            With ``"long"``, if the data already have a column named
            ``imputation_column``: it is never overwritten; pass another name.
        """
        if isinstance(which, str):
            if which == "all":
                return (f.copy() for f in self._frames)
            if which == "long":
                return long_form(
                    self.columns,
                    ((i, f.copy()) for i, f in enumerate(self._frames, 1)),
                    imputation_column,
                )
            raise SpecificationError(f"which must be an int, 'long' or 'all', got {which!r}")
        if (
            isinstance(which, bool)
            or not isinstance(which, (int, np.integer))
            or not (1 <= which <= self.m)
        ):
            raise SpecificationError(
                f"imputation {which!r} does not exist: imputations are numbered 1..{self.m}"
            )
        return self._frames[int(which) - 1].copy()

    def __iter__(self) -> Iterator[pd.DataFrame]:
        return self.complete("all")

    def __len__(self) -> int:
        return self.m

    def fit(self, formula: str, **kwargs: Any) -> PooledResult:
        """Fit ``formula`` on every completed data set and pool; see :func:`fit`."""
        return fit(self, formula, **kwargs)

    def apply(self, func: Callable[[pd.DataFrame], Any], **kwargs: Any) -> PooledResult:
        """Pool any per-data-set analysis; see :func:`apply`."""
        return apply(self, func, **kwargs)

    def __repr__(self) -> str:
        n = len(self._frames[0])
        return f"<CompletedImputations: m={self.m}, rows={n}, columns={list(self.columns)}>"


def _in_order(labels: Sequence[Any]) -> list:
    """Imputation labels in the order of the data sets: by numeric value when every label
    is a number or a text of one ("1".."11" as 1..11, not "1", "10", "11", "2"...),
    otherwise as they first appear."""
    values = pd.to_numeric(pd.Series(list(labels), dtype=object), errors="coerce")
    if isinstance(values.dtype, np.dtype) and values.dtype.kind in "iuf" and values.notna().all():
        order = np.argsort(values.to_numpy(), kind="stable")
        return [labels[k] for k in order]
    return list(labels)


def _skip_incomplete(dfs: pd.DataFrame, imputation: str, labels: list, events: list[str]) -> list:
    """The labels without mice's copy of the incomplete data (``include = TRUE``): the
    label whose numeric value is 0 (``0``, ``"0"``, ``0.0``), when its rows hold more
    missing values than the rows of every other label (a column missing in every data set,
    never imputed, does not count against it). Otherwise it is a completed data set (labels
    numbered from 0) and is kept. Either way ``events`` says what was done."""
    values = pd.to_numeric(pd.Series(labels, dtype=object), errors="coerce")
    per_row = dfs.drop(columns=imputation).isna().sum(axis=1)
    cells = per_row.groupby(dfs[imputation], sort=False).sum()
    kept = []
    for label, value in zip(labels, values, strict=True):
        if value != 0:
            kept.append(label)
            continue
        shown = repr(label) if isinstance(label, str) else str(label)  # not np.int64(0)
        n_missing = int(cells.get(label, 0))
        others = [int(cells.get(x, 0)) for x in labels if x != label]
        most = max(others, default=0)
        if n_missing > most:
            events.append(
                f"rows with {imputation} = {shown} (the incomplete data, {n_missing} "
                f"missing values, more than the {most} of any other data set) were skipped"
            )
        else:
            kept.append(label)
            what = (
                "have no missing values"
                if not n_missing
                else f"have {n_missing} missing values, no more than another data set"
            )
            events.append(
                f"rows with {imputation} = {shown} {what}: kept as a completed data set "
                "(only a copy of the incomplete data, as mice's include = TRUE writes it, "
                "is skipped)"
            )
    return kept


def from_completed(
    dfs: pd.DataFrame | Iterable[pd.DataFrame], imputation: str = "imputation"
) -> CompletedImputations:
    """Wrap completed data sets imputed elsewhere so that they can be analysed and pooled.

    Parameters
    ----------
    dfs : list of DataFrame or DataFrame
        Either the ``m`` completed data sets, or one long DataFrame stacking them with an
        ``imputation`` column (e.g. R's ``mice::complete(imp, "long")``, whose column is
        ``.imp``, or Blimp's stacked output). Rows with imputation 0 (``0`` or ``"0"``)
        that hold more missing values than every other data set (mice's
        ``include = TRUE`` copy of the incomplete data) are skipped; otherwise they are a
        completed data set (data sets numbered from 0) and are kept, also when a column
        missing in every data set (never imputed) leaves missing values in all of them.
        Either is noted in ``.events``. The data sets are numbered 1..m by their labels'
        numeric values when every label is a number or a text of one (``"1"`` to
        ``"11"``), otherwise in the order in which the labels first appear.
    imputation : str, default "imputation"
        Name of the imputation column of a long DataFrame; it is removed from the data
        sets. By default a frame without an ``imputation`` column but with mice's ``.imp``
        uses that one.

    Returns
    -------
    CompletedImputations
        With ``.fit()``, ``.apply()``, ``.complete(i)``; holds copies of the data.

    Raises
    ------
    SpecificationError
        If there is no data set, a data set is not a DataFrame, the data sets do not have
        the same columns or numbers of rows, or the long form lacks its imputation column.

    Examples
    --------
    >>> import mlimpute.analysis as mia
    >>> from mlimpute.datasets import classroom
    >>> df = classroom(1, rng=1).complete
    >>> mia.from_completed([df, df, df]).m
    3
    >>> long = pd.concat([df.assign(imp=i) for i in (1, 2)])
    >>> mia.from_completed(long, imputation="imp").complete(2).shape
    (600, 3)
    >>> incomplete = df.assign(grade=df["grade"].where(df["skill"] > 0))
    >>> mice_long = pd.concat([d.assign(**{".imp": i}) for i, d in enumerate([incomplete, df, df])])
    >>> mia.from_completed(mice_long).m
    2
    >>> zero_based = pd.concat([df.assign(imp=i) for i in (0, 1, 2)])
    >>> mia.from_completed(zero_based, imputation="imp").m
    3
    """
    events: list[str] = []
    if isinstance(dfs, pd.DataFrame):
        if imputation == "imputation" and ".imp" in dfs:  # mice::complete(imp, "long")
            if imputation in dfs.columns:
                raise SpecificationError(
                    "the long DataFrame has both an 'imputation' and a '.imp' column: say "
                    "which numbers the imputations (imputation='.imp' for mice's)."
                )
            imputation = ".imp"
        if imputation not in dfs.columns:
            raise SpecificationError(
                f"a single DataFrame must be in long form with an imputation column "
                f"{imputation!r}; its columns are {list(dfs.columns)} (pass imputation=...)."
            )
        if dfs[imputation].isna().any():
            raise SpecificationError(f"the imputation column {imputation!r} has missing values.")
        labels = list(pd.unique(dfs[imputation]))
        if len(labels) > 1:
            labels = _skip_incomplete(dfs, imputation, labels, events)
        frames = [dfs.loc[dfs[imputation] == v].drop(columns=imputation) for v in _in_order(labels)]
    else:
        if isinstance(dfs, (str, bytes)) or not isinstance(dfs, Iterable):
            raise SpecificationError(
                f"dfs must be a list of DataFrames or one long DataFrame, got {type(dfs).__name__}."
            )
        frames = list(dfs)
        for i, f in enumerate(frames, 1):
            if not isinstance(f, pd.DataFrame):
                raise SpecificationError(
                    f"completed data set {i} is a {type(f).__name__}, not a DataFrame."
                )
    if not frames:
        raise SpecificationError("no completed data sets given (m must be at least 1).")
    cols = frames[0].columns
    if cols.duplicated().any():
        raise SpecificationError(f"duplicated column names: {list(cols[cols.duplicated()])}")
    out = []
    for i, f in enumerate(frames, 1):
        if set(f.columns) != set(cols) or len(f.columns) != len(cols):
            extra = sorted(map(str, set(f.columns) - set(cols)))
            lacking = sorted(map(str, set(cols) - set(f.columns)))
            raise SpecificationError(
                f"completed data set {i} does not have the columns of data set 1: "
                f"missing {lacking}, extra {extra}."
            )
        if len(f) != len(frames[0]):
            raise SpecificationError(
                f"completed data set {i} has {len(f)} rows, data set 1 has {len(frames[0])}."
            )
        out.append(f[list(cols)].copy())
    return CompletedImputations(out, events)
