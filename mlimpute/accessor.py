"""The ``.mi`` DataFrame accessor: thin, holds only the DataFrame, delegates."""

from __future__ import annotations

import pandas as pd

__all__ = ["MIAccessor"]


@pd.api.extensions.register_dataframe_accessor("mi")
class MIAccessor:
    """Multilevel multiple imputation on a DataFrame: ``df.mi.impute(...)``.

    pandas builds the accessor anew on every attribute access, so it keeps nothing but
    the DataFrame; state lives in the returned objects.
    """

    def __init__(self, df: pd.DataFrame):
        self._df = df

    def impute(self, formulas=None, **kwargs):
        """Multiply impute this DataFrame; see :func:`mlimpute.impute` for the options.

        Examples
        --------
        >>> import mlimpute
        >>> df = mlimpute.datasets.classroom(1, rng=1).incomplete
        >>> imp = df.mi.impute({"grade": "~ skill + (1 | class)"}, m=2, iterations=5, rng=1)
        >>> imp.m
        2
        """
        from .impute import impute

        return impute(self._df, formulas, **kwargs)

    def describe(self, cluster=None):
        """Per-variable descriptives: missingness, mean/SD or levels, ICC, level, model.

        See :func:`mlimpute.describe.describe` for the columns and the ICC estimator.

        Examples
        --------
        >>> import mlimpute
        >>> df = mlimpute.datasets.classroom(2, rng=1).incomplete
        >>> d = df.mi.describe(cluster="class")
        >>> d.loc["grade", "model"], d.loc["skill", "level"]
        ('2l.norm', 2)
        """
        from .describe import describe

        return describe(self._df, cluster=cluster)

    def pattern(self):
        """The missing-data pattern, like mice's ``md.pattern``; ``.plot()`` draws it.

        See :func:`mlimpute.pattern.missing_pattern`.

        Examples
        --------
        >>> import mlimpute
        >>> df = mlimpute.datasets.classroom(2, rng=1).incomplete
        >>> df.mi.pattern().n_missing.to_dict()
        {'class': 0, 'skill': 0, 'gender': 0, 'grade': 256, 'relation': 260}
        """
        from .pattern import missing_pattern

        return missing_pattern(self._df)
