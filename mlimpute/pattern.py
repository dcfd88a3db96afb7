"""The missing-data pattern of a DataFrame, as R mice's ``md.pattern()`` shows it.

A *pattern* is the set of variables a row is missing. :func:`missing_pattern` counts the rows
of each distinct pattern and lays them out the way ``md.pattern`` does (van Buuren &
Groothuis-Oudshoorn 2011, after Schafer 1997):

- one column per variable, 1 = observed and 0 = missing, the variables ordered by their
  number of missing values, fewest first (ties keep the DataFrame's column order);
- one row per distinct pattern, labelled by the number of rows that have it, ordered by the
  pattern read as a string of missingness indicators (``"0"`` observed, ``"1"`` missing, in
  the column order above) sorted lexicographically. The complete rows come first; after
  them a pattern missing only the last (most often missing) variable comes before one
  missing only the first. This is mice's ``order(pat)``, so the row order is mice's;
  it is *not* a sort by the number of missing values;
- a last column (labelled ``""``) with the number of variables missing in the pattern;
- a last row (labelled ``""``) with the number of missing values of each variable and, in
  the corner, the total number of missing cells.

Missing means what :meth:`pandas.DataFrame.isna` says: ``NaN``, ``None``, ``NaT`` and
``pd.NA`` alike.

References
----------
.. [1] van Buuren, S. & Groothuis-Oudshoorn, K. (2011). mice: Multivariate Imputation by
   Chained Equations in R. *Journal of Statistical Software* 45(3), 1-67.
.. [2] Schafer, J. L. (1997). *Analysis of Incomplete Multivariate Data*. Chapman & Hall.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mlimpute.colours import IMPUTED_COLOUR, OBSERVED_COLOUR
from mlimpute.errors import DataError, DataTypeError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["MissingPattern", "missing_pattern"]


class MissingPattern:
    """The distinct missing-data patterns of a DataFrame with their counts.

    Built by :func:`missing_pattern`; see there for the layout. The object is read-only:
    every property returns a new object.

    Parameters
    ----------
    observed : numpy.ndarray of bool, shape (k, p)
        One row per pattern, True where the variable is observed, in display order.
    counts : numpy.ndarray of int, shape (k,)
        Number of rows with each pattern.
    columns : pandas.Index
        The ``p`` variable labels, in display order.

    Examples
    --------
    >>> import pandas as pd
    >>> from mlimpute.pattern import missing_pattern
    >>> df = pd.DataFrame({"x": [1.0, None, 3.0], "y": [1, 2, 3]})
    >>> missing_pattern(df).counts.tolist()
    [2, 1]
    """

    def __init__(self, observed: np.ndarray, counts: np.ndarray, columns: pd.Index):
        self._observed = np.asarray(observed, dtype=bool)
        self._counts = np.asarray(counts, dtype=np.int64)
        self._columns = pd.Index(columns)
        self._observed.setflags(write=False)
        self._counts.setflags(write=False)

    # -- views ---------------------------------------------------------------------------

    @property
    def table(self) -> pd.DataFrame:
        """The ``md.pattern`` table: patterns, per-pattern and per-variable missing counts.

        Index: the count of each pattern, then ``""`` for the totals row. Columns: the
        variables, then ``""`` for the number of missing variables per pattern. All cells
        are integers.
        """
        missing = ~self._observed
        body = np.column_stack([self._observed.astype(np.int64), missing.sum(axis=1)])
        per_variable = (missing * self._counts[:, None]).sum(axis=0)
        totals = np.append(per_variable, per_variable.sum())
        values = np.vstack([body, totals])
        index = pd.Index([*self._counts.tolist(), ""], dtype=object)
        columns = pd.Index([*self._columns.tolist(), ""], dtype=object)
        return pd.DataFrame(values, index=index, columns=columns)

    @property
    def patterns(self) -> pd.DataFrame:
        """The patterns alone: 1 = observed, 0 = missing; index the counts (named ``count``)."""
        return pd.DataFrame(
            self._observed.astype(np.int64),
            index=pd.Index(self._counts, name="count"),
            columns=self._columns.copy(),
        )

    @property
    def counts(self) -> pd.Series:
        """Number of rows with each pattern, in display order."""
        return pd.Series(self._counts.copy(), name="count")

    @property
    def n_missing(self) -> pd.Series:
        """Number of missing values of each variable, in display order (fewest first)."""
        per_variable = ((~self._observed) * self._counts[:, None]).sum(axis=0)
        return pd.Series(per_variable, index=self._columns.copy(), name="n_missing")

    # -- display -------------------------------------------------------------------------

    def _summary(self) -> str:
        n_rows = int(self._counts.sum())
        n_cells = n_rows * len(self._columns)
        n_missing = int(self.n_missing.sum())
        share = n_missing / n_cells if n_cells else 0.0
        return (
            f"MissingPattern: {len(self._counts)} pattern(s) in {n_rows} rows of "
            f"{len(self._columns)} variables; {n_missing} missing cells ({share:.1%})"
        )

    def __repr__(self) -> str:
        return f"{self._summary()}\n{self.table.to_string()}"

    def _repr_html_(self) -> str:
        return f"<p>{self._summary()}</p>\n{self.table.to_html()}"

    # -- plot ----------------------------------------------------------------------------

    def plot(self, ax: Axes | None = None, *, rotate_names: bool = False) -> Figure:
        """Draw the pattern as ``md.pattern`` does: a grid of observed and missing cells.

        One row of squares per pattern (blue observed, red missing), the most complete
        pattern at the top; the pattern counts on the left, the number of missing variables
        per pattern on the right, the missing values per variable along the bottom and the
        total in the bottom-right corner.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Axes to draw into; a new figure is made when omitted.
        rotate_names : bool, default False
            Write the variable names vertically (for long names or many variables).

        Returns
        -------
        matplotlib.figure.Figure
            The figure holding the plot.

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import pandas as pd
        >>> from mlimpute.pattern import missing_pattern
        >>> df = pd.DataFrame({"x": [1.0, None, 3.0], "y": [1, None, 3], "z": [1, 2, 3]})
        >>> fig = missing_pattern(df).plot()
        >>> len(fig.axes)
        1
        """
        import matplotlib.pyplot as plt
        from matplotlib.colors import ListedColormap

        n_patterns, n_vars = self._observed.shape
        if ax is None:
            # Square cells of ~0.4 in, wide enough for horizontal names (~0.09 in a
            # character), the whole figure capped at 14 in a side.
            longest = max(len(str(name)) for name in self._columns)
            cell = 0.4 if rotate_names else max(0.4, 0.09 * longest)
            width = cell * (n_vars + 2)
            height = cell * (n_patterns + 2) + (0.09 * longest if rotate_names else 0.0)
            scale = min(1.0, 14.0 / width, 14.0 / height)
            fig, ax = plt.subplots(figsize=(width * scale, height * scale))
        else:
            fig = ax.figure

        # Row i (pattern i) spans y in [k - i - 1, k - i]: the first pattern on top.
        cells = self._observed[::-1].astype(np.int64)
        cmap = ListedColormap([IMPUTED_COLOUR, OBSERVED_COLOUR])  # mice's mdc(2), mdc(1)
        ax.pcolormesh(
            np.arange(n_vars + 1),
            np.arange(n_patterns + 1),
            cells,
            cmap=cmap,
            vmin=0,
            vmax=1,
            edgecolors="0.2",
            linewidth=0.5,
        )
        x_mid = np.arange(n_vars) + 0.5
        y_mid = n_patterns - np.arange(n_patterns) - 0.5
        n_missing_var = self.n_missing.to_numpy()
        n_missing_pattern = (~self._observed).sum(axis=1)
        text = {"fontsize": "small"}
        for x, name, total in zip(x_mid, self._columns, n_missing_var, strict=True):
            if rotate_names:
                ax.text(x, n_patterns + 0.2, str(name), ha="center", va="bottom", rotation=90)
            else:
                ax.text(x, n_patterns + 0.2, str(name), ha="center", va="bottom")
            ax.text(x, -0.2, str(total), ha="center", va="top", **text)
        for y, count, n_mis in zip(y_mid, self._counts, n_missing_pattern, strict=True):
            ax.text(-0.2, y, str(count), ha="right", va="center", **text)
            ax.text(n_vars + 0.2, y, str(n_mis), ha="left", va="center", **text)
        ax.text(n_vars + 0.2, -0.2, str(int(n_missing_var.sum())), ha="left", va="top", **text)

        ax.set_xlim(-1.0, n_vars + 1.0)
        ax.set_ylim(-1.0, n_patterns + 1.0)
        ax.set_aspect("equal")
        ax.set_axis_off()
        return fig


def missing_pattern(df: pd.DataFrame) -> MissingPattern:
    """Tabulate the missing-data patterns of a DataFrame, like R mice's ``md.pattern()``.

    Parameters
    ----------
    df : pandas.DataFrame
        The data; it is not modified. ``NaN``, ``None``, ``NaT`` and ``pd.NA`` count as
        missing.

    Returns
    -------
    MissingPattern
        Its ``.table`` is mice's matrix: variables ordered by their number of missing values
        (fewest first, ties in column order), one row per distinct pattern labelled by its
        count (1 = observed, 0 = missing), ordered lexicographically by the pattern's
        missingness string as mice does (complete rows first), a last column with the
        number of missing variables per pattern and a last row with the missing values per
        variable and their total.

    Raises
    ------
    DataTypeError
        ``df`` is not a DataFrame.
    DataError
        ``df`` has no rows or no columns, or a column is labelled ``""`` (the label of the
        margins).

    Notes
    -----
    One pass over the ``n x p`` missingness mask plus a sort of its rows:
    ``O(n p log n)``. Unlike mice, a single column is accepted.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from mlimpute.pattern import missing_pattern
    >>> df = pd.DataFrame(
    ...     {"age": [1, 2, 3, 1, 2, 3],
    ...      "bmi": [22.0, np.nan, 30.1, np.nan, 25.2, np.nan],
    ...      "hyp": [1.0, np.nan, 1.0, 2.0, 1.0, 1.0],
    ...      "chl": [187.0, np.nan, np.nan, 229.0, np.nan, 204.0]}
    ... )
    >>> missing_pattern(df)  # doctest: +NORMALIZE_WHITESPACE
    MissingPattern: 4 pattern(s) in 6 rows of 4 variables; 7 missing cells (29.2%)
       age  hyp  bmi  chl
    1    1    1    1    1  0
    2    1    1    1    0  1
    2    1    1    0    1  1
    1    1    0    0    0  3
         0    1    3    3  7
    """
    if not isinstance(df, pd.DataFrame):
        raise DataTypeError(f"missing_pattern needs a pandas DataFrame, got {type(df).__name__}")
    n_rows, n_vars = df.shape
    if n_vars == 0:
        raise DataError("missing_pattern needs at least one column, the DataFrame has none")
    if n_rows == 0:
        raise DataError("missing_pattern needs at least one row, the DataFrame has none")
    if any(isinstance(c, str) and c == "" for c in df.columns):
        raise DataError('a column is labelled "", which the pattern table uses for its margins')

    missing = df.isna().to_numpy(dtype=bool)
    order = np.argsort(missing.sum(axis=0), kind="stable")
    missing = missing[:, order]
    # np.unique over rows sorts them lexicographically with False < True: the same order as
    # sorting mice's "0"/"1" strings, so complete rows come first.
    unique_missing, counts = np.unique(missing, axis=0, return_counts=True)
    return MissingPattern(~unique_missing, counts, df.columns[order])
