"""The ``.mi`` DataFrame accessor: thin, holds only the DataFrame, delegates."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlimpute._forward import forwards

if TYPE_CHECKING:
    import numpy as np

    from mlimpute.pattern import MissingPattern
    from mlimpute.result.imputed import MultiplyImputed

__all__ = ["MIAccessor"]


@pd.api.extensions.register_dataframe_accessor("mi")
class MIAccessor:
    """Multilevel multiple imputation on a DataFrame: ``df.mi.impute(...)``.

    pandas builds the accessor anew on every attribute access, so it keeps nothing but
    the DataFrame; state lives in the returned objects.
    """

    def __init__(self, df: pd.DataFrame):
        self._df = df

    @forwards("mlimpute.impute:impute", drop=("df",))
    def impute(
        self,
        formulas: Mapping[str, str] | Sequence[str] | None = None,
        *,
        m: int = 5,
        iterations: int = 20,
        rng: int | np.random.Generator | None = None,
        method: Mapping[str, Any] | None = None,
        visit: Sequence[str] | None = None,
        cluster: str | Sequence[str] | None = None,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        heteroscedastic: bool | Sequence[str] = False,
        max_categories: int = 50,
        n_jobs: int | None = None,
        client: Any = None,
        progress: bool | None = None,
        model: str | None = None,
        auxiliary: Sequence[str] | str | None = None,
        delta: Mapping[str, float] | None = None,
        delta_cluster_sd: Mapping[str, float] | None = None,
        transform: Mapping[str, str] | None = None,
        bounds: Mapping[str, tuple[float, float]] | None = None,
        batch: str | int = "auto",
        family: str | None = None,
    ) -> MultiplyImputed:
        """Multiply impute this DataFrame with (multilevel) chained equations.

        The same as :func:`mlimpute.impute` with this DataFrame as ``df``.

        Examples
        --------
        >>> import mlimpute
        >>> df = mlimpute.datasets.classroom(1, rng=1).incomplete
        >>> imp = df.mi.impute({"grade": "~ skill + (1 | class)"}, m=2, iterations=5, rng=1)
        >>> imp.m
        2
        """
        from mlimpute.impute import impute

        return impute(
            self._df,
            formulas,
            m=m,
            iterations=iterations,
            rng=rng,
            method=method,
            visit=visit,
            cluster=cluster,
            include=include,
            exclude=exclude,
            heteroscedastic=heteroscedastic,
            max_categories=max_categories,
            n_jobs=n_jobs,
            client=client,
            progress=progress,
            model=model,
            auxiliary=auxiliary,
            delta=delta,
            delta_cluster_sd=delta_cluster_sd,
            transform=transform,
            bounds=bounds,
            batch=batch,
            family=family,
        )

    @forwards("mlimpute.describe:describe", drop=("df",))
    def describe(self, cluster: Hashable | None = None) -> pd.DataFrame:
        """Per-variable descriptives: missingness, mean/SD or levels, ICC, level, model.

        The same as :func:`mlimpute.describe.describe` with this DataFrame as ``df``.

        Examples
        --------
        >>> import mlimpute
        >>> df = mlimpute.datasets.classroom(2, rng=1).incomplete
        >>> d = df.mi.describe(cluster="class")
        >>> d.loc["grade", "model"], d.loc["skill", "level"]
        ('2l.norm', 2)
        """
        from mlimpute.describe import describe

        return describe(self._df, cluster=cluster)

    @forwards("mlimpute.pattern:missing_pattern", drop=("df",))
    def pattern(self) -> MissingPattern:
        """The missing-data pattern, like mice's ``md.pattern``; ``.plot()`` draws it.

        The same as :func:`mlimpute.pattern.missing_pattern` on this DataFrame.

        Examples
        --------
        >>> import mlimpute
        >>> df = mlimpute.datasets.classroom(2, rng=1).incomplete
        >>> df.mi.pattern().n_missing.to_dict()
        {'class': 0, 'skill': 0, 'gender': 0, 'grade': 256, 'relation': 260}
        """
        from mlimpute.pattern import missing_pattern

        return missing_pattern(self._df)

    @forwards("mlimpute.ampute:ampute", drop=("df",))
    def ampute(
        self,
        cluster: Hashable | None = None,
        prop: Mapping[Hashable, float] | None = None,
        *,
        mechanism: str | Mapping[Hashable, str] = "MCAR",
        depends_on: str
        | Sequence[Hashable]
        | Mapping[Hashable, str | Sequence[Hashable]]
        | None = None,
        level: int | Mapping[Hashable, int] = 1,
        systematic: float | Mapping[Hashable, float] = 0.0,
        strength: float | Mapping[Hashable, float] = 1.0,
        rng: int | np.random.Generator | None = None,
    ) -> pd.DataFrame:
        """A copy with values deleted by a logistic missingness model (for simulations).

        The same as :func:`mlimpute.ampute.ampute` with this DataFrame as ``df``.

        Examples
        --------
        >>> import mlimpute
        >>> df = mlimpute.datasets.classroom(1, rng=1).complete
        >>> out = df.mi.ampute("class", {"grade": 0.3}, level=1, rng=2)
        >>> bool(out["grade"].isna().any()), bool(df["grade"].isna().any())
        (True, False)
        """
        from mlimpute.ampute import ampute

        return ampute(
            self._df,
            cluster,
            prop,
            mechanism=mechanism,
            depends_on=depends_on,
            level=level,
            systematic=systematic,
            strength=strength,
            rng=rng,
        )
