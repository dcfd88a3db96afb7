"""``impute``: validate, build the plan once, run the chains, assemble the result."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from . import __version__
from .diagnostics import convergence_warning
from .engine import build_plan
from .errors import ConvergenceWarning, MlimputeWarning, warn
from .executors import map_chains
from .imputed import MultiplyImputed, param_dim, param_var, row_dim
from .rng import chain_seeds
from .spec import build_spec

__all__ = ["impute"]


def impute(
    df: pd.DataFrame,
    formulas: Mapping[str, str] | Sequence[str] | None = None,
    *,
    m: int = 5,
    iterations: int = 20,
    rng: int | np.random.Generator | None = None,
    method: Mapping[str, str] | None = None,
    visit: Sequence[str] | None = None,
    cluster: str | None = None,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    heteroscedastic: bool | Sequence[str] = False,
    n_jobs: int | None = None,
    client: Any = None,
    progress: bool | None = None,
) -> MultiplyImputed:
    """Multiply impute ``df`` with (multilevel) chained equations.

    Parameters
    ----------
    df : DataFrame
        The incomplete data; never modified.
    formulas : dict or list of str
        ``{"grade": "~ skill + (1 + gender | class)"}``: one lme4-style formula per
        incomplete variable (or a list of ``"grade ~ ..."`` strings). A random part selects
        the multilevel normal model (``2l.norm``), otherwise ``norm``; ``cmean(x)`` is the
        cluster mean of ``x``, recomputed at every visit.
    m : int
        Number of imputations (independent chains).
    iterations : int
        Visits of every incomplete variable per chain.
    rng : int, numpy.random.SeedSequence or numpy.random.Generator, optional
        The random seed. Chain k uses the k-th child of ``SeedSequence(rng)`` (of the given
        SeedSequence, or of the Generator's), so results depend only on the seed. None:
        fresh entropy, recorded in ``imp.spec`` so the run can be repeated.
    method : dict, optional
        Override the model per variable, e.g. ``{"grade": "norm"}``.
    visit : list of str, optional
        Visit order (default: the order of ``formulas``).
    cluster : str, optional
        The cluster column. With it, every incomplete variable without a formula gets the
        default model (see :mod:`mlimpute.defaults`): level-1 variables a random intercept
        plus the cluster means of their level-1 predictors, level-2 variables the level-2
        model; probit for binary, ordered probit for ordered, multinomial probit for
        unordered categoricals. ``imp.spec`` shows what was used.
    include, exclude : list of str, optional
        Columns the default models use (the cluster column and identifier-like columns are
        left out automatically; ``imp.events`` says which).
    heteroscedastic : bool or list of str
        Cluster-specific residual variances (``2l.norm.het``, mice's ``2l.norm``) for all
        multilevel numeric variables, or for the ones listed; for longitudinal data.
    n_jobs : int, optional
        Worker processes for the chains (-1: all cores). Results are identical to the serial
        run for the same seed.
    client : dask.distributed.Client, optional
        Run the chains as tasks on this cluster (data scattered once).
    progress : bool, optional
        A progress bar over chains × iterations; default: in a terminal and in a Jupyter
        notebook (a widget bar, with ipywidgets installed), never when the environment
        variable ``CI`` is set.

    Returns
    -------
    MultiplyImputed

    Examples
    --------
    >>> from mlimpute.datasets import classroom
    >>> df = classroom(1, rng=1).incomplete
    >>> imp = impute(df, {"grade": "~ skill + (1 | class)"}, m=3, iterations=10, rng=1)
    >>> imp.dataset["grade"].shape
    (3, 240)
    """
    spec = build_spec(df, formulas, m=m, iterations=iterations, method=method, visit=visit,
                      cluster=cluster, include=include, exclude=exclude,
                      heteroscedastic=heteroscedastic)
    seeds, entropy = chain_seeds(rng, spec.m)
    spec = replace(spec, seed=entropy)
    data = df.copy()
    plan = build_plan(data, spec)
    results = []
    if spec.variables:
        bar = _progress_bar(progress, spec.m * spec.iterations)
        try:
            results = map_chains(plan, seeds, n_jobs=n_jobs, client=client,
                                 progress=None if bar is None else
                                 (lambda done: bar.update(done * spec.iterations - bar.n)))
        finally:
            if bar is not None:
                bar.close()
    for e in plan.events:
        warn(e, MlimputeWarning)
    result = MultiplyImputed(_assemble(plan, results), data, spec, plan.events)
    if results:
        msg = convergence_warning(result)
        if msg is not None:
            result.events.append(msg)
            warn(msg, ConvergenceWarning)
    return result


def _progress_bar(progress: bool | None, total: int):
    """A tqdm bar when asked, or by default when interactive (a terminal or a Jupyter
    notebook, where ``tqdm.auto`` draws a widget), never by default under CI."""
    if progress is None:
        from .display import in_notebook

        progress = (sys.stderr.isatty() or in_notebook()) and not os.environ.get("CI")
    if not progress:
        return None
    from tqdm.auto import tqdm

    tqdm.monitor_interval = 0  # no monitor thread: it would make fork-based pools unsafe
    return tqdm(total=total, desc="imputing", unit="it", leave=False)


def _assemble(plan, results) -> xr.Dataset:
    """The result Dataset in one constructor call (one ``ds[name] = ...`` per variable
    aligns and merges each time: 4 ms against 1 ms for a small run)."""
    spec, order = plan.spec, plan.layout.order
    names = plan.names
    data_vars, coords = {}, {}
    for name in names:
        pos = order[plan.missing_rows(name)]  # original positions of the missing rows
        srt = np.argsort(pos, kind="stable")
        if results:
            arr = np.stack([r.imputed[name][srt] for r in results])
        else:
            arr = np.empty((spec.m, len(pos)))
        data_vars[name] = (("imputation", row_dim(name)), arr)
        coords[row_dim(name)] = pos[srt]
        pn = plan.param_names(name)
        data_vars[param_var(name)] = (
            ("imputation", "iteration", param_dim(name)),
            np.stack([r.params[name] for r in results]) if results
            else np.empty((spec.m, spec.iterations, len(pn))),
        )
        coords[param_dim(name)] = pn
    if names:
        for stat in ("mean", "sd"):
            data_vars[stat] = (("imputation", "iteration", "variable"),
                               np.stack([getattr(r, stat) for r in results]))
        coords["variable"] = names
    coords["imputation"] = np.arange(1, spec.m + 1)
    if names:
        coords["iteration"] = np.arange(1, spec.iterations + 1)
    return xr.Dataset(data_vars, coords, attrs={"mlimpute_version": __version__, "m": spec.m,
                                                "iterations": spec.iterations})
