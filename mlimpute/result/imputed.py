"""The result of an imputation run: imputed cells in an xarray Dataset, data kept once.

:class:`MultiplyImputed` sits in the result layer, below the analysis (:mod:`mlimpute.analysis`)
and the files (:mod:`mlimpute.io`), which take it as their input. Its convenience methods
``fit``, ``apply``, ``to_netcdf``, ``to_zarr``, ``to_csv``, ``to_parquet`` and
``to_stata`` are one-line delegations to those higher layers, as ``DataFrame.to_parquet``
is in pandas: each imports its function when called (never at import time, so importing
the result loads neither the fitters nor the file back-ends). These seven imports are the
only upward imports of the package; the layering contract in ``pyproject.toml`` lists each
of them by name, so that no other upward import can appear unnoticed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from mlimpute._forward import forwards
from mlimpute.codec import decode
from mlimpute.errors import DataError, SpecificationError, UnsupportedError
from mlimpute.schema import row_dim
from mlimpute.spec.build import ImputationSpec

if TYPE_CHECKING:  # xarray is imported by whoever builds or reads the dataset
    import xarray as xr

    from mlimpute.analysis.results import PooledResult
    from mlimpute.result.plot import ImputedPlots

__all__ = ["MultiplyImputed", "chain_states", "long_form"]


def chain_states(imp: Any, what: str, instead: str = "") -> list:
    """Where every chain of ``imp`` stopped (its final values and model states), for
    ``what`` (the method that needs them); refused, saying why a result may lack them.

    Examples
    --------
    >>> class Bare:  # a result without its chains
    ...     chains, m = None, 2
    >>> chain_states(Bare(), "check()")
    Traceback (most recent call last):
    ...
    mlimpute.errors.SpecificationError: check() needs where every chain stopped, ...
    """
    chains = getattr(imp, "chains", None)
    if chains is None or len(chains) != imp.m:
        raise SpecificationError(
            f"{what} needs where every chain stopped, and this result does not hold it (it "
            "is the completion of new data by impute_new(), was read from a file saved "
            f"without chain states, or was built by hand){instead}"
        )
    return chains


def long_form(
    columns: pd.Index, frames: Iterable[tuple[int, pd.DataFrame]], imputation_column: str
) -> pd.DataFrame:
    """Completed data sets ``(i, frame)`` stacked, with ``imputation_column`` (holding
    ``i``) first: the ``complete("long")`` of every result.

    Raises
    ------
    SpecificationError
        If ``imputation_column`` is not a non-empty string.
    DataError
        If ``columns`` (the data's) already hold ``imputation_column``: a data column is
        never overwritten.
    """
    name = imputation_column
    if not isinstance(name, str) or not name:
        raise SpecificationError(f"imputation_column must be a non-empty column name, got {name!r}")
    if name in columns:
        raise DataError(
            f"the data have a column {name!r}, so complete('long') cannot number "
            f"the imputations in a column of that name; pass "
            f"imputation_column='.imp' (or another unused name)"
        )
    stacked = []
    for i, frame in frames:
        frame.insert(0, name, i)
        stacked.append(frame)
    return pd.concat(stacked, axis=0)


class MultiplyImputed:
    """m completed versions of one DataFrame, stored as imputed cells only.

    Attributes
    ----------
    dataset : xarray.Dataset
        Per imputed variable ``v``: ``v`` with dims ``(imputation, "v:row")`` (the
        coordinate holds the row positions in the original data); traces ``mean`` and
        ``sd`` of the imputed values with dims ``(imputation, iteration, variable)``;
        per variable ``"v:params"`` with dims ``(imputation, iteration, "v:param")``: the
        model parameters (fixed effects, random-effect (co)variances, residual variance).
    data : pandas.DataFrame
        The observed data (one copy, never modified).
    spec : ImputationSpec
        What was run: formulas, methods, cluster, m, iterations, seed.
    events : list of str
        Decisions taken on the way (dropped collinear predictors, unused formulas...).
    chains : list or None
        Where each chain stopped (its generator state, last model states and imputed
        values), one per imputation, so that :meth:`iterate` and :meth:`extend` can go
        on; None when unknown.

    Notes
    -----
    Memory is m × (number of missing cells) plus traces; :meth:`complete` builds a
    completed data set on demand.
    """

    def __init__(
        self,
        dataset: xr.Dataset,
        data: pd.DataFrame,
        spec: ImputationSpec,
        events: list[str] | None = None,
        *,
        chains: Sequence[Any] | None = None,
        like: dict[str, pd.Series] | None = None,
    ):
        self.dataset = dataset
        self.data = data
        self.spec = spec
        self.events = list(events or [])
        self.chains = None if chains is None else list(chains)
        #: per variable, a Series whose categories the imputed codes refer to, where they
        #: are not the data column's own (new data lacking some training categories)
        self.like = dict(like) if like else None

    # -- basic facts ----------------------------------------------------------------------
    @property
    def m(self) -> int:
        return int(self.dataset.sizes.get("imputation", self.spec.m))

    @property
    def variables(self) -> list[str]:
        """The imputed variables, in visit order."""
        return [v.name for v in self.spec.variables]

    def imputed(self, name: str) -> pd.DataFrame:
        """Imputed values of ``name``: one row per missing cell, one column per imputation.

        The index holds the original index labels of the missing rows. The values are
        those :meth:`complete` writes into the cells, in the column's own dtype
        (categories, strings and booleans as such, integers rounded).
        """
        if not isinstance(name, str) or name not in self.variables:
            raise SpecificationError(f"{name!r} was not imputed; imputed: {self.variables}")
        pos = self.dataset[name][row_dim(name)].to_numpy()
        index = self.data.index[pos]
        dtype = self.data[name].dtype
        columns = {
            i: pd.Series(self._decoded(name, i), index=index, dtype=dtype, copy=False)
            for i in range(1, self.m + 1)
        }
        out = pd.DataFrame(columns, index=index)
        out.columns = pd.RangeIndex(1, self.m + 1, name="imputation")
        return out

    def _decoded(self, name: str, i: int) -> Any:
        """The imputed values of ``name`` in imputation ``i`` (from 1), in the column's
        dtype: what :meth:`complete` and :meth:`imputed` hold."""
        col = self.data[name]
        like = self.like.get(name, col) if self.like else col
        return decode(self.dataset[name].isel(imputation=i - 1).to_numpy(), like)

    # -- completed data -------------------------------------------------------------------
    def complete(
        self,
        which: int | Literal["long", "all"] = 1,
        *,
        include: bool = False,
        imputation_column: str = "imputation",
    ) -> pd.DataFrame | Iterator[pd.DataFrame]:
        """Completed data.

        Parameters
        ----------
        which : int, "long" or "all"
            An int ``i`` returns completed data set ``i``, counted from **1** as in mice
            (``0`` returns the incomplete data). ``"long"`` stacks all m with an
            ``imputation`` column first (1..m; with ``include=True`` also 0 for the
            original data). ``"all"`` returns an iterator over the m data sets.
        include : bool
            With ``"long"``, prepend the incomplete data as imputation 0.
        imputation_column : str
            With ``"long"``, the name of the column numbering the data sets (default
            ``"imputation"``; mice calls it ``".imp"``).

        Returns
        -------
        DataFrame or iterator of DataFrame
            Original index, column order and dtypes are kept. Observed values are never
            converted (an ``Int64`` value above 2**53 comes back exactly); imputed values
            of integer columns are drawn on the real line and rounded.

        Raises
        ------
        DataError
            With ``"long"``, if the data already have a column named
            ``imputation_column``: it is never overwritten; pass another name.

        Examples
        --------
        >>> import mlimpute
        >>> from mlimpute.datasets import classroom
        >>> df = classroom(1, rng=1).incomplete
        >>> imp = df.mi.impute({"grade": "~ skill + (1 | class)"}, m=2, iterations=5, rng=1)
        >>> imp.complete(1)["grade"].isna().sum(), imp.complete("long").shape
        (np.int64(0), (1200, 4))
        """
        if isinstance(which, str):
            if which == "all":
                return (self._complete_one(i) for i in range(1, self.m + 1))
            if which == "long":
                first = 0 if include else 1
                return long_form(
                    self.data.columns,
                    ((i, self._complete_one(i)) for i in range(first, self.m + 1)),
                    imputation_column,
                )
            raise SpecificationError(f"which must be an int, 'long' or 'all', got {which!r}")
        if isinstance(which, bool) or not isinstance(which, (int, np.integer)):
            raise SpecificationError(f"which must be an int, 'long' or 'all', got {which!r}")
        if not 0 <= which <= self.m:
            raise SpecificationError(
                f"imputation {which} does not exist: imputations are numbered 1..{self.m} "
                "(0 is the incomplete data)"
            )
        return self._complete_one(int(which))

    def _complete_one(self, i: int) -> pd.DataFrame:
        out = self.data.copy()
        if i == 0:
            return out
        for name in self.variables:
            da = self.dataset[name]
            pos = da[row_dim(name)].to_numpy()
            col = out[name]
            # only the imputed cells are decoded and written: observed values never pass
            # through float64 (which would change integers above 2**53)
            values = self._decoded(name, i)
            arr = col.array.copy()
            arr[pos] = values
            # an explicit dtype: pandas would infer ``str`` for an object column of strings
            out[name] = pd.Series(arr, index=out.index, dtype=col.dtype, copy=False)
        return out

    def __iter__(self) -> Iterator[pd.DataFrame]:
        return self.complete("all")

    def __len__(self) -> int:
        return self.m

    # -- diagnostics (a lower layer) and analysis (a higher one, imported when called) ---
    @property
    def traces(self) -> xr.Dataset:
        """Chain traces: ``mean``/``sd`` of imputed values and each model's parameters."""
        names = [k for k, v in self.dataset.data_vars.items() if "iteration" in v.dims]
        return self.dataset[names]

    def _kept(self, burn: int | None) -> xr.Dataset:
        """Traces after discarding ``burn`` iterations (default: the first half)."""
        traces = self.traces
        n_iter = traces.sizes.get("iteration", 0)
        if burn is None:
            burn = n_iter // 2
            if 0 < n_iter - burn < 4:
                raise DataError(
                    f"the second half of {n_iter} iterations has {n_iter - burn} draws per "
                    "chain; R-hat and ESS need at least 4: run more iterations (8 or more) or "
                    "pass burn=0 to use every iteration"
                )
        else:
            from mlimpute.diagnostics.convergence import check_burn

            burn = check_burn(burn, n_iter)
        return traces.isel(iteration=slice(burn, None))

    def rhat(self, *, burn: int | None = None) -> xr.Dataset:
        """Rank-normalised split R-hat of every trace (Vehtari et al. 2021).

        ``burn`` discards the first iterations; by default the first half, the draws the
        convergence warning and :func:`mlimpute.diagnostics.rhat_table` look at (``burn=0``:
        all iterations). See :func:`mlimpute.diagnostics.rhat`.
        """
        from mlimpute.diagnostics import rhat

        return rhat(self._kept(burn))

    def ess(self, *, burn: int | None = None, kind: Literal["bulk", "tail"] = "bulk") -> xr.Dataset:
        """Bulk or tail effective sample size of every trace (Vehtari et al. 2021).

        ``burn`` as for :meth:`rhat` (default: the first half is discarded).
        """
        from mlimpute.diagnostics import ess_bulk, ess_tail

        if not isinstance(kind, str) or kind not in ("bulk", "tail"):
            raise SpecificationError(f"kind must be 'bulk' or 'tail', got {kind!r}")
        return (ess_bulk if kind == "bulk" else ess_tail)(self._kept(burn))

    def converged(self, threshold: float | None = None, *, burn: int | None = None) -> bool:
        """Whether the chains of every trace have mixed, judged by R-hat.

        Parameters
        ----------
        threshold : float, optional
            By default (None) each trace is held to its own limit, the ``limit`` column
            of :func:`mlimpute.diagnostics.rhat_table`: the R-hat that converged chains of
            this run's length, with that trace's autocorrelation, exceed on some trace in
            at most 5 % of runs. This is exactly the check behind the
            :class:`~mlimpute.errors.ConvergenceWarning` (see
            :func:`mlimpute.diagnostics.convergence_warning`), so with the default
            ``burn`` the result is False exactly when that warning fires (for runs of 8
            or more iterations). A number (at least 1) holds every trace to that one
            R-hat instead, e.g. ``1.01`` for long runs; a fixed 1.1 is too strict for the
            few draws a short imputation run keeps.
        burn : int, optional
            Iterations to discard first; by default the first half, as for :meth:`rhat`
            (``burn=0``: all iterations).

        Returns
        -------
        bool
            True when no trace has an R-hat above its limit (or ``threshold``) and no
            trace has non-finite draws. A constant trace (a parameter that is fixed)
            counts as converged.

        Raises
        ------
        DataError
            Fewer than 4 iterations are left after ``burn``, or ``threshold`` is below 1.
        DataTypeError
            ``threshold`` is not a number or ``burn`` not a whole number.

        See Also
        --------
        mlimpute.diagnostics.rhat_table : the R-hat and limit of every trace.

        Examples
        --------
        >>> import mlimpute
        >>> from mlimpute.datasets import classroom
        >>> df = classroom(1, rng=1).incomplete
        >>> imp = df.mi.impute({"grade": "~ skill + (1 | class)"}, m=5, iterations=40, rng=1)
        >>> imp.converged()
        True
        >>> imp.converged(threshold=1.0)  # every trace held to R-hat < 1: fails
        False
        """
        from mlimpute.diagnostics import check_threshold, converged

        if threshold is not None:
            check_threshold(threshold)  # before the traces are read
        flags = converged(self._kept(burn), threshold=threshold)
        return bool(all(bool(v.all()) for v in flags.data_vars.values()))

    @property
    def plot(self) -> ImputedPlots:
        """Plots of this result: ``imp.plot.trace()``, ``.density()``, ``.strip()``."""
        from mlimpute.result.plot import ImputedPlots

        return ImputedPlots(self)

    @forwards("mlimpute.analysis.fitting:fit", drop=("imp",))
    def fit(
        self,
        formula: str | None = None,
        *,
        reml: bool = True,
        family: Any = None,
        link: str | None = None,
        nagq: int | None = None,
        dfcom: float | None = None,
        cluster: str | None = None,
        engine: Literal["profiled", "statsmodels"] = "profiled",
        n_jobs: int | None = None,
        client: Any = None,
        latent: Literal["auto", "plausible", "ml"] = "auto",
    ) -> PooledResult:
        """Fit ``formula`` on each completed data set and pool the results.

        The same as :func:`mlimpute.analysis.fit` on this result.
        """
        from mlimpute.analysis.fitting import fit

        return fit(
            self,
            formula,
            reml=reml,
            family=family,
            link=link,
            nagq=nagq,
            dfcom=dfcom,
            cluster=cluster,
            engine=engine,
            n_jobs=n_jobs,
            client=client,
            latent=latent,
        )

    @forwards("mlimpute.analysis.apply:apply", drop=("imp",))
    def apply(
        self,
        func: Callable[[pd.DataFrame], Any],
        *,
        dfcom: float | None = None,
        names: Sequence[str] | None = None,
    ) -> PooledResult:
        """Pool any per-data-set analysis: ``func`` on each completed data set, Rubin's rules.

        The same as :func:`mlimpute.analysis.apply` on this result.
        """
        from mlimpute.analysis.apply import apply

        return apply(self, func, dfcom=dfcom, names=names)

    # -- more iterations, more imputations: mlimpute.impute (imported when called) -------
    def iterate(self, n: int, *, n_jobs: int | None = None, client: Any = None) -> MultiplyImputed:
        """Run every chain ``n`` more iterations from where it stopped.

        The result is bit-identical to a run with ``iterations`` increased by ``n`` and the
        same ``rng``: the same imputations and the same traces (the old iterations
        followed by the new ones), whatever ``n_jobs`` or ``client``.

        Parameters
        ----------
        n : int
            Further iterations of every chain.
        n_jobs, client
            Where the chains run, as for :func:`mlimpute.impute`.

        Returns
        -------
        MultiplyImputed
            A new result; this one is left as it is.

        Raises
        ------
        SpecificationError
            If ``n`` is not a positive int, or the result does not know where its chains
            stopped.

        Examples
        --------
        >>> import mlimpute
        >>> from mlimpute.datasets import classroom
        >>> df = classroom(1, rng=1).incomplete
        >>> f = {"grade": "~ skill + (1 | class)"}
        >>> imp = mlimpute.impute(df, f, m=2, iterations=5, rng=1).iterate(3)
        >>> longer = mlimpute.impute(df, f, m=2, iterations=8, rng=1)
        >>> bool(imp.dataset.equals(longer.dataset))
        True
        """
        from mlimpute.impute import iterate_result

        return iterate_result(self, n, n_jobs=n_jobs, client=client)

    def extend(self, k: int, *, n_jobs: int | None = None, client: Any = None) -> MultiplyImputed:
        """Add ``k`` imputations (new chains), as if ``m + k`` had been asked for at first.

        Chain ``m + j`` uses the same seed as in a run with ``m + k`` imputations and the
        same ``rng``, so the result is bit-identical to that run.

        Parameters
        ----------
        k : int
            Imputations to add.
        n_jobs, client
            Where the new chains run, as for :func:`mlimpute.impute`.

        Returns
        -------
        MultiplyImputed
            A new result with ``m + k`` imputations; this one is left as it is.

        Raises
        ------
        SpecificationError
            If ``k`` is not a positive int, or the result does not know its chains' seeds.

        Examples
        --------
        >>> import mlimpute
        >>> from mlimpute.datasets import classroom
        >>> df = classroom(1, rng=1).incomplete
        >>> f = {"grade": "~ skill + (1 | class)"}
        >>> imp = mlimpute.impute(df, f, m=2, iterations=5, rng=1).extend(1)
        >>> bool(imp.dataset.equals(mlimpute.impute(df, f, m=3, iterations=5, rng=1).dataset))
        True
        """
        from mlimpute.impute import extend_result

        return extend_result(self, k, n_jobs=n_jobs, client=client)

    # -- new data and checks: mlimpute.newdata, mlimpute.check (imported when called) ---
    @forwards("mlimpute.newdata:impute_new", drop=("imp",))
    def impute_new(
        self,
        new_df: pd.DataFrame,
        *,
        rng: Any = None,
        sweeps: int | None = None,
        n_jobs: int | None = None,
        client: Any = None,
    ) -> MultiplyImputed:
        """Complete new rows with the models where each chain stopped (parameters fixed).

        The same as :func:`mlimpute.newdata.impute_new` on this result.
        """
        from mlimpute.newdata import impute_new

        return impute_new(self, new_df, rng=rng, sweeps=sweeps, n_jobs=n_jobs, client=client)

    @forwards("mlimpute.check:check", drop=("imp",))
    def check(
        self,
        *,
        share: float = 0.2,
        level: float = 0.9,
        replicates: int = 40,
        rng: Any = None,
        cluster: str | None = None,
    ) -> pd.DataFrame:
        """Compare the observed data with data drawn from the final model states
        (posterior-predictive p-values per cluster, coverage of over-imputed cells).

        The same as :func:`mlimpute.check.check` on this result.
        """
        from mlimpute.check import check

        return check(
            self, share=share, level=level, replicates=replicates, rng=rng, cluster=cluster
        )

    # -- saving: mlimpute.io (a higher layer, imported when called) ---------------------
    def to_netcdf(self, path: str | os.PathLike) -> None:
        """Save as netCDF-4 (h5netcdf), losslessly; see :func:`mlimpute.io.to_netcdf`."""
        self._check_savable()
        from mlimpute.io import to_netcdf

        to_netcdf(self, path)

    def to_zarr(self, path: str | os.PathLike) -> None:
        """Save as a zarr store, losslessly; see :func:`mlimpute.io.to_zarr`."""
        self._check_savable()
        from mlimpute.io import to_zarr

        to_zarr(self, path)

    def _check_savable(self) -> None:
        if self.like:
            raise UnsupportedError(
                f"these completions of new data impute categories of {sorted(self.like)} "
                "that the new data do not hold, and netCDF/zarr files cannot keep them yet; "
                "save the completed data with to_csv() or to_parquet() instead"
            )

    @forwards("mlimpute.io.flat:to_csv", drop=("imp",))
    def to_csv(
        self,
        path: str | os.PathLike,
        *,
        include: bool = False,
        index: bool | None = None,
        imputation_column: str = "imputation",
        **kwargs: Any,
    ) -> list[Path]:
        """Completed data to CSV (``{i}`` in the name: one file each).

        The same as :func:`mlimpute.io.to_csv` on this result.
        """
        from mlimpute.io.flat import to_csv

        return to_csv(
            self,
            path,
            include=include,
            index=index,
            imputation_column=imputation_column,
            **kwargs,
        )

    @forwards("mlimpute.io.flat:to_parquet", drop=("imp",))
    def to_parquet(
        self,
        path: str | os.PathLike,
        *,
        include: bool = False,
        imputation_column: str = "imputation",
        **kwargs: Any,
    ) -> list[Path]:
        """Completed data to parquet.

        The same as :func:`mlimpute.io.to_parquet` on this result.
        """
        from mlimpute.io.flat import to_parquet

        return to_parquet(
            self, path, include=include, imputation_column=imputation_column, **kwargs
        )

    @forwards("mlimpute.io.flat:to_stata", drop=("imp",))
    def to_stata(
        self,
        path: str | os.PathLike,
        *,
        include: bool = False,
        imputation_column: str = "imputation",
        **kwargs: Any,
    ) -> list[Path]:
        """Completed data to Stata .dta.

        The same as :func:`mlimpute.io.to_stata` on this result.
        """
        from mlimpute.io.flat import to_stata

        return to_stata(self, path, include=include, imputation_column=imputation_column, **kwargs)

    # -- display --------------------------------------------------------------------------
    def _repr_html_(self) -> str:
        from mlimpute.result.display import imputed_html

        return imputed_html(self)

    def __repr__(self) -> str:
        from mlimpute.result.display import imputed_text

        return imputed_text(self)
