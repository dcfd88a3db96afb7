"""Plots of an imputation run: convergence traces and observed-vs-imputed distributions.

``imp.plot`` returns an :class:`ImputedPlots`; its methods draw the three plots mice users
look at after imputing (van Buuren 2018, §6.5-6.6):

- :meth:`ImputedPlots.trace` -- chain means and SDs of the imputed values (and optionally
  every model parameter) over the iterations, one line per chain, like ``plot(imp)``;
- :meth:`ImputedPlots.density` -- the distribution of the observed values (thick blue) and,
  per imputation, of the imputed values (thin red), like ``densityplot(imp)``;
- :meth:`ImputedPlots.strip` -- observed (blue) and imputed (red) values by imputation
  number, 0 being the observed data, like ``stripplot(imp)``.

Every method returns a :class:`matplotlib.figure.Figure` made with :mod:`matplotlib.pyplot`
(close it with ``plt.close(fig)`` when drawing many). matplotlib is imported when a plot is
drawn, the package never picks a backend and never calls ``plt.show()``.

References
----------
.. [1] van Buuren, S. (2018). *Flexible Imputation of Missing Data*, 2nd ed. CRC Press.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from mlimpute.colours import IMPUTED_COLOUR, OBSERVED_COLOUR
from mlimpute.errors import DataError, SpecificationError, UnsupportedError, warn
from mlimpute.schema import param_dim, param_var
from mlimpute.spec.arguments import positive_int

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from mlimpute.result.imputed import MultiplyImputed

__all__ = ["ImputedPlots", "OBSERVED_COLOUR", "IMPUTED_COLOUR", "DISCRETE_MAX_VALUES"]

#: :meth:`ImputedPlots.density` draws histograms instead of kernel densities for variables
#: whose observed values are integers taking at most this many distinct values.
DISCRETE_MAX_VALUES = 10

_PANEL_WIDTH = 3.2
_PANEL_HEIGHT = 2.4


class ImputedPlots:
    """Plots of a :class:`~mlimpute.result.imputed.MultiplyImputed`, reached as ``imp.plot``.

    Parameters
    ----------
    imp : MultiplyImputed
        The imputation result; only read.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import mlimpute
    >>> from mlimpute.datasets import classroom
    >>> df = classroom(1, rng=1).incomplete
    >>> imp = df.mi.impute({"grade": "~ skill + (1 | class)"}, m=3, iterations=10, rng=1)
    >>> fig = imp.plot.trace()
    >>> [ax.get_title() for ax in fig.axes]
    ['grade: mean', 'grade: sd']
    """

    def __init__(self, imp: MultiplyImputed):
        self._imp = imp

    def __repr__(self) -> str:
        return (
            "ImputedPlots: .trace(variables, params=False), .density(variables), "
            ".strip(variables), .check()"
        )

    # -- helpers -------------------------------------------------------------------------

    def _variables(self, variables: str | Sequence[str] | None) -> list[str]:
        imputed = list(self._imp.variables)
        if not imputed:
            raise DataError("nothing was imputed: no variable had missing values to plot")
        if variables is None:
            return imputed
        if isinstance(variables, str):
            names = [variables]
        elif isinstance(variables, Sequence) or (
            hasattr(variables, "__iter__") and not isinstance(variables, (bytes, dict))
        ):
            names = list(variables)
        else:
            raise SpecificationError(
                f"variables must be a variable name or a list of names, got {variables!r}"
            )
        unknown = [v for v in names if not isinstance(v, str) or v not in imputed]
        if unknown:
            raise SpecificationError(
                f"{unknown[0]!r} was not imputed; imputed variables: {imputed}"
            )
        if not names:
            raise SpecificationError("variables is empty; name at least one imputed variable")
        return names

    def _numeric(self, variables: str | Sequence[str] | None, plot: str) -> list[str]:
        """The variables to draw on a numeric axis: a named variable whose values are not
        numbers (text, unordered categories) is refused; with ``variables=None`` such
        variables are left out with a warning."""
        names = self._variables(variables)
        kept = [n for n in names if _numeric_values(self._imp.data[n])]
        skipped = [n for n in names if n not in kept]
        if skipped and variables is not None:
            raise UnsupportedError(
                f"{plot}() draws values on a numeric axis, and {skipped[0]!r} holds "
                "categories without numeric values or order (text, or an unordered "
                "categorical); compare its category frequencies in imp.complete() instead"
            )
        if skipped:
            warn(
                f"{plot}(): left out {skipped}, whose categories have no numeric values or "
                "order (text, or an unordered categorical)"
            )
        if not kept:
            raise DataError(
                f"{plot}() has nothing to draw: every imputed variable holds categories "
                "without numeric values or order"
            )
        return kept

    def _observed(self, name: str) -> np.ndarray:
        values = _as_float(self._imp.data[name])
        return values[~np.isnan(values)]

    def _imputed(self, name: str) -> np.ndarray:
        """The imputed values (decoded, as complete() writes them): imputations × cells."""
        table = self._imp.imputed(name)
        return np.array([_as_float(table[c]) for c in table.columns]).reshape(
            table.shape[1], table.shape[0]
        )

    # -- plots ---------------------------------------------------------------------------

    def trace(
        self,
        variables: str | Sequence[str] | None = None,
        *,
        params: bool = False,
        ncols: int | None = None,
    ) -> Figure:
        """Trace plots: chain mean and SD of the imputed values over the iterations.

        One line per chain (imputation). Chains that have mixed overlap and show no trend
        after the first iterations; lines that stay apart mean more iterations are needed
        (see also :meth:`MultiplyImputed.rhat`).

        Parameters
        ----------
        variables : str or list of str, optional
            Imputed variables to show (default: all, in visit order).
        params : bool, default False
            Also draw one panel per parameter of each variable's model (fixed effects,
            random-effect (co)variances, residual variance).
        ncols : int, optional
            Panels per row; default 2 (4 with ``params=True``). Each variable starts a row.

        Returns
        -------
        matplotlib.figure.Figure
            ``2`` axes per variable (mean, sd), plus one per parameter with
            ``params=True``; titled ``"<variable>: <trace>"``.

        Raises
        ------
        SpecificationError
            A requested variable was not imputed.
        DataError
            Nothing was imputed.

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import mlimpute
        >>> from mlimpute.datasets import classroom
        >>> df = classroom(1, rng=1).incomplete
        >>> imp = df.mi.impute({"grade": "~ skill + (1 | class)"}, m=3, iterations=10, rng=1)
        >>> len(imp.plot.trace(params=True).axes)  # mean, sd and 4 parameters
        6
        """
        import matplotlib.pyplot as plt

        names = self._variables(variables)
        ds = self._imp.dataset
        panels: list[list[tuple[str, np.ndarray]]] = []
        for name in names:
            block = [
                (
                    f"{name}: {stat}",
                    ds[stat].sel(variable=name).transpose("imputation", "iteration").to_numpy(),
                )
                for stat in ("mean", "sd")
            ]
            if params:
                da = ds[param_var(name)].transpose("imputation", "iteration", param_dim(name))
                values = da.to_numpy()
                labels = [str(p) for p in da[param_dim(name)].to_numpy()]
                block += [(f"{name}: {label}", values[:, :, k]) for k, label in enumerate(labels)]
            panels.append(block)

        ncols = positive_int(ncols, "ncols") if ncols is not None else (4 if params else 2)
        rows_per_block = [-(-len(block) // ncols) for block in panels]
        n_rows = sum(rows_per_block)
        iterations = ds["iteration"].to_numpy() if "iteration" in ds.coords else None
        m = ds.sizes["imputation"]
        colours = _chain_colours(m)

        fig = plt.figure(
            figsize=(_PANEL_WIDTH * ncols + (1.0 if m <= 10 else 0.0), _PANEL_HEIGHT * n_rows),
            layout="constrained",
        )
        grid = fig.add_gridspec(n_rows, ncols)
        row = 0
        lines = []
        for block, block_rows in zip(panels, rows_per_block, strict=True):
            for k, (title, values) in enumerate(block):
                ax = fig.add_subplot(grid[row + k // ncols, k % ncols])
                x = iterations if iterations is not None else np.arange(1, values.shape[1] + 1)
                ax.set_prop_cycle(color=colours)
                marker = "." if values.shape[1] < 3 else None
                lines = ax.plot(x, values.T, linewidth=1.0, marker=marker)
                ax.set_title(title, fontsize="medium")
                ax.tick_params(labelsize="small")
            row += block_rows
        fig.supxlabel("iteration", fontsize="medium")
        if m <= 10:
            fig.legend(
                lines,
                [str(i) for i in ds["imputation"].to_numpy()],
                title="imputation",
                loc="outside right upper",
                fontsize="small",
            )
        return fig

    def density(
        self,
        variables: str | Sequence[str] | None = None,
        *,
        ncols: int | None = None,
    ) -> Figure:
        """Observed vs imputed distributions, per variable and per imputation.

        The observed values in thick blue, the imputed values of each imputation in thin
        red (mice's ``densityplot``). Imputed values are drawn as :meth:`complete` writes
        them (integers rounded; ordered numeric categories, such as a Likert item 1..5, at
        their values; booleans at 0 and 1). Kernel density estimates
        (:class:`scipy.stats.gaussian_kde`, Scott's bandwidth), or step histograms with
        one bin per integer when the observed values are integers with at most
        :data:`DISCRETE_MAX_VALUES` distinct values. A set of values without spread (one
        imputed cell, say) is drawn as a vertical line. Under MAR the imputed
        distribution may differ from the observed one; a large difference is worth a
        look, not necessarily a fault.

        Parameters
        ----------
        variables : str or list of str, optional
            Imputed variables to show (default: all, in visit order).
        ncols : int, optional
            Panels per row (default: up to 3).

        Returns
        -------
        matplotlib.figure.Figure
            One axes per variable, titled with the variable's name.

        Raises
        ------
        SpecificationError
            A requested variable was not imputed.
        UnsupportedError
            A requested variable holds categories without numeric values or order (text,
            an unordered categorical); with ``variables=None`` such variables are left
            out with a warning.
        DataError
            Nothing was imputed, or nothing but such variables.

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import mlimpute
        >>> from mlimpute.datasets import classroom
        >>> data = classroom(2, rng=1)
        >>> imp = data.incomplete.mi.impute(data.imputation, m=3, iterations=10, rng=1)
        >>> [ax.get_title() for ax in imp.plot.density().axes]
        ['relation', 'grade']
        """
        from scipy import stats

        names = self._numeric(variables, "density")
        fig, axes = _panel_grid(len(names), ncols)
        for ax, name in zip(axes, names, strict=True):
            observed = self._observed(name)
            imputed = self._imputed(name)
            everything = np.concatenate([observed, imputed.ravel()])
            everything = everything[np.isfinite(everything)]
            lo, hi = float(everything.min()), float(everything.max())
            discrete = (
                np.all(observed == np.round(observed))
                and np.unique(observed).size <= DISCRETE_MAX_VALUES
            )
            if discrete:
                edges = np.arange(np.floor(lo) - 0.5, np.ceil(hi) + 1.0)
                grid = edges
            else:
                pad = 0.1 * (hi - lo) if hi > lo else 1.0
                grid = np.linspace(lo - pad, hi + pad, 256)
            for values in imputed:
                _draw_distribution(ax, values, grid, discrete, IMPUTED_COLOUR, 1.0, stats)
            _draw_distribution(ax, observed, grid, discrete, OBSERVED_COLOUR, 2.5, stats)
            ax.set_title(str(name), fontsize="medium")
            ax.set_xlabel(str(name), fontsize="small")
            ax.set_ylabel("density", fontsize="small")
            ax.tick_params(labelsize="small")
        _legend(axes[0])
        return fig

    def strip(
        self,
        variables: str | Sequence[str] | None = None,
        *,
        ncols: int | None = None,
        jitter: float = 0.15,
    ) -> Figure:
        """Observed and imputed values by imputation number, like mice's ``stripplot``.

        At ``x = 0`` the observed values; at ``x = 1..m`` completed data set ``x``: its
        observed values in blue and its imputed values in red. Points are jittered
        horizontally with a fixed-seed generator, so the same result always gives the
        same picture.

        Parameters
        ----------
        variables : str or list of str, optional
            Imputed variables to show (default: all, in visit order).
        ncols : int, optional
            Panels per row (default: up to 3).
        jitter : float, default 0.15
            Half-width of the uniform horizontal jitter.

        Returns
        -------
        matplotlib.figure.Figure
            One axes per variable, titled with the variable's name.

        Raises
        ------
        SpecificationError
            A requested variable was not imputed, or ``jitter`` is not a number >= 0.
        UnsupportedError
            A requested variable holds categories without numeric values or order (text,
            an unordered categorical); with ``variables=None`` such variables are left
            out with a warning.
        DataError
            Nothing was imputed, or nothing but such variables.

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import mlimpute
        >>> from mlimpute.datasets import classroom
        >>> df = classroom(1, rng=1).incomplete
        >>> imp = df.mi.impute({"grade": "~ skill + (1 | class)"}, m=3, iterations=10, rng=1)
        >>> fig = imp.plot.strip("grade")
        >>> [t.get_text() for t in fig.axes[0].get_xticklabels()]
        ['0', '1', '2', '3']
        """
        if (
            isinstance(jitter, bool)
            or not isinstance(jitter, (int, float, np.integer, np.floating))
            or not 0 <= jitter < np.inf
        ):
            raise SpecificationError(f"jitter must be a finite number >= 0, got {jitter!r}")
        names = self._numeric(variables, "strip")
        fig, axes = _panel_grid(len(names), ncols)
        rng = np.random.default_rng(0)
        m = self._imp.dataset.sizes["imputation"]
        for ax, name in zip(axes, names, strict=True):
            observed = self._observed(name)
            imputed = self._imputed(name)
            x_obs = np.repeat(np.arange(m + 1, dtype=np.float64), observed.size)
            x_obs += rng.uniform(-jitter, jitter, x_obs.size)
            x_imp = np.repeat(np.arange(1, m + 1, dtype=np.float64), imputed.shape[1])
            x_imp += rng.uniform(-jitter, jitter, x_imp.size)
            ax.scatter(
                x_obs,
                np.tile(observed, m + 1),
                s=6,
                color=OBSERVED_COLOUR,
                linewidths=0,
                label="observed",
            )
            ax.scatter(
                x_imp, imputed.ravel(), s=6, color=IMPUTED_COLOUR, linewidths=0, label="imputed"
            )
            ax.set_xticks(np.arange(m + 1))
            ax.set_xlim(-0.6, m + 0.6)
            ax.set_title(str(name), fontsize="medium")
            ax.set_xlabel("imputation (0 = observed data)", fontsize="small")
            ax.set_ylabel(str(name), fontsize="small")
            ax.tick_params(labelsize="small")
        _legend(axes[0], points=True)
        return fig

    def check(self, table=None, **kwargs) -> Figure:
        """The checks of :meth:`MultiplyImputed.check` against the observed data, drawn.

        One row of panels per variable: the posterior-predictive p-value of each cluster's
        mean and within-cluster SD (points; the dashed lines mark 0.025 and 0.975, outside
        which a cluster is poorly reproduced), and the coverage of the over-imputed cells
        of each cluster against the number of cells (the dashed line is the nominal level).
        Panel titles give the whole variable's figures (ICC p-value, overall coverage).

        Parameters
        ----------
        table : DataFrame, optional
            A table from ``imp.check()``; computed with ``kwargs`` when not given.
        **kwargs
            Passed to :meth:`MultiplyImputed.check` (``rng=``, ``share=``, ``cluster=``...).

        Returns
        -------
        matplotlib.figure.Figure

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import mlimpute
        >>> from mlimpute.datasets import classroom
        >>> df = classroom(1, rng=1).incomplete
        >>> imp = df.mi.impute({"grade": "~ skill + (1 | class)"}, m=2, iterations=5, rng=1)
        >>> fig = imp.plot.check(rng=1)
        >>> [ax.get_title().split(":")[1].strip()[:9] for ax in fig.axes]
        ['cluster m', 'within-cl', 'coverage ']
        """
        if table is None:
            table = self._imp.check(**kwargs)
        elif kwargs:
            raise SpecificationError("pass a table or check() options, not both")
        names = list(dict.fromkeys(table["variable"]))
        if not names:
            raise DataError("the check table is empty: no variable was checked")
        checks = ("mean", "sd", "coverage")
        fig, axes = _panel_grid(3 * len(names), 3)
        level = float(table.attrs.get("level", 0.9))
        for i, name in enumerate(names):
            rows = table[table["variable"] == name]
            every = rows[rows["cluster"] == "all"].set_index("check")
            per = rows[rows["cluster"] != "all"]
            for k, what in enumerate(checks):
                ax = axes[3 * i + k]
                sub = per[per["check"] == what]
                if what == "coverage":
                    ax.scatter(sub["n"], sub["observed"], s=14, color=IMPUTED_COLOUR)
                    ax.axhline(level, color="grey", linestyle="--", linewidth=1)
                    ax.set_ylim(-0.05, 1.05)
                    ax.set_xlabel("over-imputed cells in the cluster", fontsize="small")
                    ax.set_ylabel("coverage", fontsize="small")
                    cov = every["observed"].get("coverage", np.nan)
                    title = f"{name}: coverage {cov:.2f} (nominal {level:.2f})"
                else:
                    ax.scatter(np.arange(len(sub)), sub["p_value"], s=14, color=OBSERVED_COLOUR)
                    for y in (0.025, 0.975):
                        ax.axhline(y, color="grey", linestyle="--", linewidth=1)
                    ax.set_ylim(-0.05, 1.05)
                    ax.set_xlabel("cluster", fontsize="small")
                    ax.set_ylabel("p-value", fontsize="small")
                    label = "cluster means" if what == "mean" else "within-cluster SDs"
                    title = f"{name}: {label}"
                    if what == "mean" and "icc" in every.index:
                        title += f" (ICC p = {every.loc['icc', 'p_value']:.2f})"
                ax.set_title(title, fontsize="medium")
                ax.tick_params(labelsize="small")
        return fig


def _numeric_values(col) -> bool:
    """Whether the values of ``col`` can be drawn on a numeric axis: numbers, booleans
    (0/1), or ordered categories that are numbers (a Likert item 1..5)."""
    import pandas as pd

    dtype = col.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return bool(dtype.ordered) and pd.api.types.is_numeric_dtype(dtype.categories.dtype)
    return pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)


def _as_float(col) -> np.ndarray:
    """The values of ``col`` as float64, NaN where missing (categories by their value)."""
    import pandas as pd

    if isinstance(col.dtype, pd.CategoricalDtype):
        col = col.astype(np.float64)
    return col.to_numpy(dtype=np.float64, na_value=np.nan)


def _chain_colours(m: int) -> list:
    import matplotlib as mpl

    if m <= 10:
        return [mpl.colormaps["tab10"](i) for i in range(m)]
    return list(mpl.colormaps["viridis"](np.linspace(0.0, 0.95, m)))


def _panel_grid(n: int, ncols: int | None) -> tuple[Figure, list[Axes]]:
    """A constrained-layout figure with ``n`` axes in rows of ``ncols`` (unused removed)."""
    import matplotlib.pyplot as plt

    ncols = min(3, n) if ncols is None else positive_int(ncols, "ncols")
    n_rows = -(-n // ncols)
    fig, axes = plt.subplots(
        n_rows,
        ncols,
        squeeze=False,
        layout="constrained",
        figsize=(1.2 * _PANEL_WIDTH * ncols, 1.2 * _PANEL_HEIGHT * n_rows),
    )
    flat = list(axes.ravel())
    for ax in flat[n:]:
        fig.delaxes(ax)
    return fig, flat[:n]


def _draw_distribution(
    ax: Axes, values: np.ndarray, grid: np.ndarray, discrete: bool, colour: str, width: float, stats
) -> None:
    """A KDE or step histogram of ``values`` on ``grid``; a vertical line without spread."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return
    if discrete:
        ax.hist(values, bins=grid, density=True, histtype="step", color=colour, linewidth=width)
    elif np.ptp(values) == 0:
        ax.axvline(values[0], color=colour, linewidth=width)
    else:
        ax.plot(grid, stats.gaussian_kde(values)(grid), color=colour, linewidth=width)


def _legend(ax: Axes, *, points: bool = False) -> None:
    from matplotlib.lines import Line2D

    if points:
        style = [{"linestyle": "none", "marker": "o"}] * 2
    else:
        style = [{"linewidth": 2.5}, {"linewidth": 1.0}]
    handles = [
        Line2D([], [], color=colour, **kw)
        for colour, kw in zip((OBSERVED_COLOUR, IMPUTED_COLOUR), style, strict=True)
    ]
    ax.legend(handles, ["observed", "imputed"], fontsize="small", frameon=False)
