"""Figures of the simulation study (:mod:`mlimpute.simulation`).

The figures of Jacobusse (2005): per-replication estimates by method (:func:`plot_replications`),
one data set imputed ``m`` times (:func:`plot_single_data_set`) and the PNG files of
both (:func:`make_figures`). Matplotlib is imported only when a figure is made, and
figures are built without pyplot so that scripts need no backend.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mlimpute.errors import SpecificationError
from mlimpute.simulation.acceptance import SingleDataSet
from mlimpute.simulation.design import LABELS
from mlimpute.simulation.results import _order, load_records

if TYPE_CHECKING:
    from matplotlib.figure import Figure


_TICKS = {
    "complete": "complete\ndata",
    "complete_cases": "complete\ncases",
    "single_level": "single-\nlevel",
    "multilevel": "multi-\nlevel",
    "defaults": "defaults",
}


def _figure(n_panels: int, ncols: int, width: float = 2.8, height: float = 2.4) -> tuple:
    from matplotlib.figure import Figure

    nrows = -(-n_panels // ncols)
    fig = Figure(figsize=(width * ncols, height * nrows + 0.5), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def _param_title(name: str) -> str:
    return f"{LABELS[name]} = {name}" if name in LABELS else name


def plot_replications(
    records: str | os.PathLike | pd.DataFrame,
    experiment: int,
    *,
    methods: Sequence[str] | None = None,
    ncols: int = 4,
) -> Figure:
    """The figures of Jacobusse (2005): per-replication estimates of every parameter by method.

    One panel per parameter (fixed effects, variance components and, for experiment 2,
    the means); in each, one column of points per method (one point per replication),
    a black bar at their mean and a red line at the true value.

    Parameters
    ----------
    records : path or DataFrame
        A results directory or the table of :func:`load_records`.
    experiment : int
    methods : sequence of str, optional
        Methods to show (default: all in the records).
    ncols : int, default 4

    Returns
    -------
    matplotlib.figure.Figure
    """
    rec = records if isinstance(records, pd.DataFrame) else load_records(records)
    rec = rec[(rec["experiment"] == experiment) & rec["error"].isna() & rec["true"].notna()]
    if rec.empty:
        raise SpecificationError(f"no results for experiment {experiment}")
    rec = _order(rec)
    present = list(dict.fromkeys(rec["method"]))
    methods = [m for m in (methods or present) if m in present]
    params = list(dict.fromkeys(rec["parameter"]))
    fig, axes = _figure(len(params), min(ncols, len(params)))
    jitter = np.random.default_rng(0)
    colours = {
        "complete": "0.45",
        "complete_cases": "tab:orange",
        "single_level": "tab:purple",
        "multilevel": "tab:green",
        "defaults": "tab:blue",
    }
    for ax, name in zip(axes, params, strict=True):
        sub = rec[rec["parameter"] == name]
        for k, method in enumerate(methods):
            y = sub.loc[sub["method"] == method, "estimate"].to_numpy()
            x = k + jitter.uniform(-0.18, 0.18, y.size)
            ax.plot(x, y, "o", ms=3, alpha=0.6, color=colours.get(method, "k"), mew=0)
            if y.size:
                ax.hlines(y.mean(), k - 0.3, k + 0.3, color="k", lw=1.5)
        ax.axhline(sub["true"].iloc[0], color="tab:red", lw=1.2)
        ax.set_xticks(range(len(methods)))
        ax.set_xticklabels([_TICKS.get(m, m) for m in methods], fontsize="x-small")
        ax.set_title(_param_title(name), fontsize="small")
        ax.tick_params(axis="y", labelsize="x-small")
    n = rec["replication"].nunique()
    fig.suptitle(
        f"Experiment {experiment}: estimates in {n} replications (red: true value, black: mean)",
        fontsize="medium",
    )
    return fig


def plot_single_data_set(single: SingleDataSet, *, ncols: int = 4) -> Figure:
    """Jacobusse's (2005) experiment-3 figures: the ``m`` per-imputation estimates of one data set.

    Panels for B3 (``skill:gender``), D0, D1 and D01 (those present): the estimate of each
    completed data set against the imputation number, the complete-data value (blue), the
    complete-case value (orange, dash-dotted: what the observed data alone say), the
    pooled value (black, dotted), the data-generating value (red, dashed) and for B3 the
    pooled 95 % CI (grey band).

    Parameters
    ----------
    single : SingleDataSet
    ncols : int, default 4

    Returns
    -------
    matplotlib.figure.Figure
    """
    wanted = [
        "skill:gender",
        "var(Intercept|class)",
        "var(gender|class)",
        "cov(Intercept,gender|class)",
    ]
    params = [p for p in wanted if p in single.per_imputation] or list(single.per_imputation)
    fig, axes = _figure(len(params), min(ncols, len(params)))
    truth = dict(single.truth)
    truth.setdefault("cov(Intercept,gender|class)", 0.0)
    for ax, name in zip(axes, params, strict=True):
        y = single.per_imputation[name]
        ax.plot(y.index, y.to_numpy(), "o", ms=3.5, color="tab:green")
        if name in single.summary.index:
            s = single.summary.loc[name]
            ax.axhspan(s["ci_low"], s["ci_high"], color="0.88", zorder=0, label="pooled 95 % CI")
        ax.axhline(y.mean(), color="k", ls=":", lw=1.2, label="pooled")
        ax.axhline(single.complete[name], color="tab:blue", lw=1.4, label="complete data")
        ax.axhline(
            single.complete_cases[name], color="tab:orange", ls="-.", lw=1.0, label="complete cases"
        )
        if name in truth:
            ax.axhline(truth[name], color="tab:red", ls="--", lw=1.0, label="true")
        ax.set_title(_param_title(name), fontsize="small")
        ax.set_xlabel("imputation", fontsize="x-small")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.tick_params(labelsize="x-small")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="outside lower center",
        ncols=len(labels),
        fontsize="x-small",
        frameon=False,
    )
    fig.suptitle(
        f"Experiment {single.experiment}: one data set imputed {len(single.per_imputation)} times",
        fontsize="medium",
    )
    return fig


def make_figures(
    out_dir: str | os.PathLike,
    fig_dir: str | os.PathLike = "docs/figures",
    *,
    single: SingleDataSet | None = None,
    experiments: Sequence[int] | None = None,
    dpi: int = 80,
) -> list[Path]:
    """Write the figures of Jacobusse (2005) as PNG files.

    ``experiment<e>_replications.png`` for every experiment with results in ``out_dir``,
    and ``experiment3_single_data_set.png`` if ``single`` is given.

    Parameters
    ----------
    out_dir : path
        Results directory.
    fig_dir : path, default "docs/figures"
    single : SingleDataSet, optional
    experiments : sequence of int, optional
        Only these experiments (default: all with results).
    dpi : int, default 80

    Returns
    -------
    list of pathlib.Path
    """
    fig_dir = Path(fig_dir)
    fig_dir.mkdir(parents=True, exist_ok=True)
    rec = load_records(out_dir)
    if experiments is not None:
        rec = rec[rec["experiment"].isin(list(experiments))]
    paths = []
    for e in sorted(rec["experiment"].unique()) if not rec.empty else []:
        path = fig_dir / f"experiment{e}_replications.png"
        plot_replications(rec, int(e)).savefig(path, dpi=dpi)
        paths.append(path)
    if single is not None:
        path = fig_dir / f"experiment{single.experiment}_single_data_set.png"
        plot_single_data_set(single).savefig(path, dpi=dpi)
        paths.append(path)
    return paths
