"""``impute``: validate, build the plan once, run the chains, assemble the result."""

from __future__ import annotations

import warnings
from dataclasses import replace
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from . import __version__
from .engine import build_plan, run_chains
from .diagnostics import convergence_warning
from .errors import ConvergenceWarning, MlimputeWarning
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
    rng : int or numpy.random.Generator, optional
        Seed (SPEC 7). Chain k uses the k-th child of ``SeedSequence(rng)``, so results
        depend only on the seed.
    method : dict, optional
        Override the model per variable, e.g. ``{"grade": "norm"}``.
    visit : list of str, optional
        Visit order (default: the order of ``formulas``).

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
    spec = build_spec(df, formulas, m=m, iterations=iterations, method=method, visit=visit)
    seeds, entropy = chain_seeds(rng, spec.m)
    spec = replace(spec, seed=entropy)
    data = df.copy()
    plan = build_plan(data, spec)
    results = run_chains(plan, seeds) if spec.variables else []
    for e in plan.events:
        warnings.warn(e, MlimputeWarning, stacklevel=2)
    result = MultiplyImputed(_assemble(plan, results), data, spec, plan.events)
    if results:
        msg = convergence_warning(result)
        if msg is not None:
            result.events.append(msg)
            warnings.warn(msg, ConvergenceWarning, stacklevel=2)
    return result


def _assemble(plan, results) -> xr.Dataset:
    spec, order = plan.spec, plan.layout.order
    names = plan.names
    ds = xr.Dataset(attrs={"mlimpute_version": __version__, "m": spec.m,
                           "iterations": spec.iterations})
    for name in names:
        pos = order[plan.data[name].mis_idx]  # original positions of the missing rows
        srt = np.argsort(pos, kind="stable")
        if results:
            arr = np.stack([r.imputed[name][srt] for r in results])
        else:
            arr = np.empty((spec.m, len(pos)))
        ds[name] = xr.DataArray(arr, dims=("imputation", row_dim(name)),
                                coords={row_dim(name): pos[srt]})
        pn = plan.param_names(name)
        ds[param_var(name)] = xr.DataArray(
            np.stack([r.params[name] for r in results]) if results
            else np.empty((spec.m, spec.iterations, len(pn))),
            dims=("imputation", "iteration", param_dim(name)), coords={param_dim(name): pn},
        )
    if names:
        for stat in ("mean", "sd"):
            ds[stat] = xr.DataArray(np.stack([getattr(r, stat) for r in results]),
                                    dims=("imputation", "iteration", "variable"),
                                    coords={"variable": names})
    ds = ds.assign_coords(imputation=np.arange(1, spec.m + 1))
    if "iteration" in ds.dims:
        ds = ds.assign_coords(iteration=np.arange(1, spec.iterations + 1))
    return ds
