"""Assembly of the result Dataset of an imputation run from the chains' results.

The names and dimensions are those of :mod:`mlimpute.schema`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from mlimpute._version import __version__
from mlimpute.schema import param_dim, param_var, row_dim

__all__ = ["assemble"]


def assemble(plan: Any, results: Sequence[Any]) -> xr.Dataset:
    """The result Dataset of a run, laid out as :mod:`mlimpute.schema` describes.

    Built in one constructor call (one ``ds[name] = ...`` per variable aligns and merges
    each time: 4 ms against 1 ms for a small run).

    Parameters
    ----------
    plan : Plan
        The plan the chains ran (:func:`mlimpute.sampler.engine.build_plan`).
    results : sequence of ChainResult
        One per chain, in chain order (may be empty: a run with nothing to impute).

    Returns
    -------
    xarray.Dataset
        Imputed values in the original row order, parameter and ``mean``/``sd`` traces.

    Examples
    --------
    >>> from mlimpute.datasets import classroom
    >>> from mlimpute.rng import chain_seeds
    >>> from mlimpute.sampler.engine import build_plan, run_chains
    >>> from mlimpute.spec.build import build_spec
    >>> df = classroom(1, rng=1).incomplete
    >>> spec = build_spec(df, {"grade": "~ skill + (1 | class)"}, m=2, iterations=3)
    >>> plan = build_plan(df, spec)
    >>> ds = assemble(plan, run_chains(plan, chain_seeds(1, 2)[0]))
    >>> ds["grade"].dims, ds["mean"].dims
    (('imputation', 'grade:row'), ('imputation', 'iteration', 'variable'))
    """
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
            np.stack([r.params[name] for r in results])
            if results
            else np.empty((spec.m, spec.iterations, len(pn))),
        )
        coords[param_dim(name)] = pn
    if names:
        for stat in ("mean", "sd"):
            data_vars[stat] = (
                ("imputation", "iteration", "variable"),
                np.stack([getattr(r, stat) for r in results]),
            )
        coords["variable"] = names
    coords["imputation"] = np.arange(1, spec.m + 1)
    if names:
        coords["iteration"] = np.arange(1, spec.iterations + 1)
    return xr.Dataset(
        data_vars,
        coords,
        attrs={"mlimpute_version": __version__, "m": spec.m, "iterations": spec.iterations},
    )
