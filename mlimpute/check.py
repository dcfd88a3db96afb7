"""``imp.check()``: the imputation models against the observed data.

Two checks, both drawn from the model states where the chains stopped (parameters fixed,
predictors at each chain's completed values):

* **posterior-predictive checks** (Gelman, Meng & Stern 1996): for every imputed variable,
  ``replicates`` replicated data sets of its observed cells per chain; per cluster the
  observed mean and within-cluster SD are compared with their replicated distribution
  (``p_value`` = the share of replicates with a statistic at least as large as the
  observed one, ties counted half: values near 0 or 1 flag a misfit), and per variable the
  intraclass correlation (one-way ANOVA estimator) and the overall mean and SD;
* **over-imputation** (as micemd's ``overimpute``, Audigier et al. 2018): a random share of
  the observed cells is imputed as if it were missing, and the table reports how often the
  central ``level`` interval of those draws (over chains and replicates) covers the observed
  value, per cluster and overall. A well-fitting model covers about ``level`` of them. The
  states were fitted with these cells observed, so the coverage is a little optimistic
  compared with micemd's refits; it is the check one can afford on a finished run.

Numeric variables get all rows; binary and ordered variables are checked on their codes
(the mean of a binary 0/1 is a proportion; no coverage); unordered variables with more
than two categories are not checked (a note in ``table.attrs["notes"]``).
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from mlimpute.codec import column_kind
from mlimpute.errors import SpecificationError, UnsupportedError
from mlimpute.parallel import one_blas_thread
from mlimpute.result.imputed import MultiplyImputed, chain_states
from mlimpute.rng import chain_seeds
from mlimpute.sampler.design import Block, ClusterValues
from mlimpute.sampler.engine import build_plan, start_values
from mlimpute.sampler.ranefs import ranef_arrays
from mlimpute.spec.arguments import is_real_number

__all__ = ["check"]

COLUMNS = ["variable", "check", "cluster", "observed", "replicated", "p_value", "n"]


def check(
    imp: MultiplyImputed,
    *,
    share: float = 0.2,
    level: float = 0.9,
    replicates: int = 40,
    rng: int | np.random.SeedSequence | np.random.Generator | None = None,
    cluster: str | None = None,
) -> pd.DataFrame:
    """Compare the observed data with data drawn from the final model states.

    Parameters
    ----------
    imp : MultiplyImputed
        A finished run that knows where its chains stopped.
    share : float, default 0.2
        Share of each variable's observed cells that are over-imputed.
    level : float, default 0.9
        Level of the intervals whose coverage is reported.
    replicates : int, default 40
        Replicated data sets per chain (m × replicates draws per cell in all).
    rng : int, SeedSequence or Generator, optional
        The random seed (the same seed gives the same table).
    cluster : str, optional
        The column whose clusters the per-cluster checks use; default the run's cluster
        column (with several grouping factors the innermost one: the classes, also when
        class ids repeat across schools). Give it to check a single-level imputation of
        clustered data.

    Returns
    -------
    DataFrame
        One row per variable, check and cluster (``"all"`` for a whole variable), columns
        ``variable``, ``check`` (``"mean"``, ``"sd"``, ``"icc"``, ``"coverage"``),
        ``cluster``, ``observed`` (the statistic on the observed data, or the observed
        coverage), ``replicated`` (its mean over the replicates, or the nominal ``level``),
        ``p_value`` (posterior-predictive; for coverage the two-sided binomial p-value of
        the observed coverage under ``level``) and ``n`` (observed cells, or over-imputed
        cells). ``table.attrs`` holds the settings and notes.

    Raises
    ------
    SpecificationError
        On bad arguments, or if the result does not know where its chains stopped.
    UnsupportedError
        After model-based imputation (``model=``).

    Examples
    --------
    >>> import mlimpute
    >>> from mlimpute.datasets import classroom
    >>> df = classroom(1, rng=1).incomplete
    >>> imp = df.mi.impute({"grade": "~ skill + (1 | class)"}, m=2, iterations=5, rng=1)
    >>> table = imp.check(rng=1)
    >>> sorted(table["check"].unique())
    ['coverage', 'icc', 'mean', 'sd']
    """
    if not (is_real_number(share) and 0 < share <= 1):
        raise SpecificationError(f"share must be in (0, 1], got {share!r}")
    if not (is_real_number(level) and 0 < level < 1):
        raise SpecificationError(f"level must be in (0, 1), got {level!r}")
    if isinstance(replicates, bool) or not isinstance(replicates, (int, np.integer)):
        raise SpecificationError(f"replicates must be a positive int, got {replicates!r}")
    if replicates < 1:
        raise SpecificationError(f"replicates must be a positive int, got {replicates!r}")
    spec = imp.spec
    if spec.model is not None:
        raise UnsupportedError("check() after model-based imputation (model=) is not supported yet")
    chains = chain_states(imp, "check()") if spec.variables else imp.chains
    cluster = spec.cluster if cluster is None else cluster
    if cluster is not None and cluster not in imp.data.columns and cluster != spec.cluster:
        raise SpecificationError(f"cluster={cluster!r} is not a column of the data")
    seeds, _ = chain_seeds(rng, imp.m + 1)
    select_rng = np.random.default_rng(seeds[-1])
    notes: list[str] = []
    with one_blas_thread():
        plan = build_plan(imp.data, spec)
        level2 = {v.name for v in spec.variables if v.level == 2}
        level3 = {v.name for v in spec.variables if v.level == 3}
        checked = []
        for v in spec.variables:
            kind = column_kind(imp.data[v.name])
            if kind == "nominal" or kind == "other":
                notes.append(f"{v.name}: unordered categories are not checked")
                continue
            checked.append(v.name)
        if cluster is not None:
            all_codes, labels = _factorize(imp.data, cluster)
            if (all_codes < 0).any():
                raise SpecificationError(f"the cluster column {cluster!r} has missing values")
            all_codes = all_codes[plan.layout.order]  # sorted rows, as the models see them
        else:
            all_codes, labels = np.zeros(len(imp.data), dtype=np.intp), pd.Index(["all"])
        # per variable: cluster codes of its observed cells and the over-imputed cells
        groups, selected = {}, {}
        for name in checked:
            d = plan.data[name]
            if name in level2 or name in level3:
                groups[name] = (np.zeros(d.n_obs, dtype=np.intp), 1, pd.Index(["all"]))
            else:
                groups[name] = (all_codes[d.obs_idx], len(labels), labels)
            if column_kind(imp.data[name]) == "numeric":
                n_sel = max(1, int(round(share * d.n_obs)))
                selected[name] = np.sort(select_rng.choice(d.n_obs, size=n_sel, replace=False))
        # replicates, summarised chain by chain: memory m × replicates × (clusters + the
        # over-imputed cells), never m × replicates × rows
        stats: dict[str, list[dict[str, np.ndarray]]] = {n: [] for n in checked}
        for k, chain in enumerate(chains or []):
            g = np.random.default_rng(seeds[k])
            values, _ = start_values(plan, g, chain)  # the chain's completed data: no draws
            for name in checked:
                d = plan.stored(name)
                if name in level2:
                    first = plan.layout.segments.starts
                    view = ClusterValues(values, first, ranef_arrays(plan, name, chain.states))
                    d.refresh(view, plan.cluster_static)
                elif name in level3:  # one row per school, as the chains saw it
                    top = plan.top_segments
                    d.refresh(ClusterValues(values, top.starts, {}, top), plan.top_static)
                else:
                    d.refresh(values, plan.static)
                rd = _at_observed_rows(d)
                model, state = plan.models[name], chain.states[name]
                Y = np.vstack([model.draw_missing(g, state, rd) for _ in range(replicates)])
                codes, J, _ = groups[name]
                stats[name].append(_summaries(Y, codes, J, selected.get(name)))
    rows: list[dict[str, Any]] = []
    for name in checked:
        y = plan.data[name].y_obs
        codes, J, cl = groups[name]
        rep = {key: np.concatenate([s[key] for s in stats[name]]) for key in stats[name][0]}
        per_cluster = name not in level2 and name not in level3 and cluster is not None
        rows += _cluster_rows(name, y, rep, codes, J, cl, per_cluster=per_cluster)
        if per_cluster:
            rows.append(_icc_row(name, y, rep["icc"], codes, J))
        if name in selected:
            sel = selected[name]
            lo, hi = np.quantile(rep["cells"], [(1 - level) / 2, (1 + level) / 2], axis=0)
            inside = (y[sel] >= lo) & (y[sel] <= hi)
            rows += _coverage_rows(name, inside, codes[sel], J, cl, level, per_cluster=per_cluster)
    table = pd.DataFrame(rows, columns=COLUMNS)
    table.attrs.update(
        {
            "share": share,
            "level": level,
            "replicates": replicates,
            "m": imp.m,
            "cluster": cluster,
            "notes": notes,
        }
    )
    return table


def _at_observed_rows(d):
    """``d`` with its observed rows as the rows to draw: replicated data of the observed
    cells from the model's own ``draw_missing``."""
    X = _obs_as_mis(d.X)
    Z = None if d.Z is None else _obs_as_mis(d.Z)
    view = replace(d, X=X, Z=Z, mis_idx=d.obs_idx, codes_mis=d.seg_obs.codes)
    extra = getattr(d, "extra_terms", ()) or ()
    if extra:  # further grouping factors: their terms too, and the models' cache afresh
        terms = tuple(replace(t, Z=_obs_as_mis(t.Z), codes_mis=t.codes_obs) for t in extra)
        view = replace(view, extra_terms=terms, cache={})
    return view


def _factorize(data: pd.DataFrame, cluster: str) -> tuple[np.ndarray, pd.Index]:
    """Sorted codes and labels of ``cluster``: a column, or the innermost of several
    grouping factors written ``school:class`` (labels ``"3:1"``)."""
    if cluster in data.columns:
        return pd.factorize(data[cluster], sort=True)
    parts = cluster.split(":")
    keys = pd.MultiIndex.from_frame(data[parts])
    codes, labels = pd.factorize(keys, sort=True)
    return codes, pd.Index([":".join(map(str, k)) for k in labels])


def _obs_as_mis(b: Block) -> Block:
    """``b`` with its observed rows also as the rows to draw."""
    return Block(b.names, b.obs, b.obs, b.fast, b.slow, b.spec)


def _ppp(obs: np.ndarray, rep: np.ndarray) -> np.ndarray:
    """Share of replicates (rows of ``rep``) at least as large as ``obs``, ties half."""
    with np.errstate(invalid="ignore"):
        gt = (rep > obs).mean(axis=0)
        eq = (rep == obs).mean(axis=0)
    out = gt + 0.5 * eq
    out[np.isnan(obs)] = np.nan
    return out


def _segment_stats(Y: np.ndarray, codes: np.ndarray, J: int):
    """Per cluster: counts, means and SDs (ddof 1; NaN below 2 cells) of each row of Y."""
    M = sparse.csr_matrix(
        (np.ones(codes.size), (np.arange(codes.size), codes)), shape=(codes.size, J)
    )
    n = np.asarray(M.sum(axis=0)).ravel()
    s1 = np.asarray(M.T @ Y.T).T
    s2 = np.asarray(M.T @ (Y * Y).T).T
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / n
        var = (s2 - n * mean**2) / (n - 1)
        sd = np.sqrt(np.clip(var, 0, None))
    mean = np.where(n > 0, mean, np.nan)
    sd = np.where(n > 1, sd, np.nan)
    return n, mean, sd


def _summaries(Y: np.ndarray, codes: np.ndarray, J: int, sel) -> dict[str, np.ndarray]:
    """What the table needs of replicates ``Y`` (one per row): cluster means and SDs,
    overall mean and SD, ICC, and the draws of the over-imputed cells."""
    _, mean, sd = _segment_stats(Y, codes, J)
    return {
        "mean": mean,
        "sd": sd,
        "all_mean": Y.mean(axis=1),
        "all_sd": Y.std(axis=1, ddof=1) if Y.shape[1] > 1 else np.full(Y.shape[0], np.nan),
        "icc": _icc(Y, codes, J),
        "cells": Y[:, sel] if sel is not None else np.empty((Y.shape[0], 0)),
    }


def _cluster_rows(name, y, rep, codes, J, cl, per_cluster: bool) -> list[dict]:
    n, m_obs, s_obs = _segment_stats(y[None, :], codes, J)
    rows = []
    if per_cluster:
        for stat, o, r in (("mean", m_obs[0], rep["mean"]), ("sd", s_obs[0], rep["sd"])):
            p = _ppp(o, r)
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # clusters of one cell: SD NaN
                rr = np.nanmean(r, axis=0)
            for j in np.flatnonzero(n > 0):
                rows.append(
                    {
                        "variable": name,
                        "check": stat,
                        "cluster": cl[j],
                        "observed": o[j],
                        "replicated": rr[j],
                        "p_value": p[j],
                        "n": int(n[j]),
                    }
                )
    sd_obs = y.std(ddof=1) if y.size > 1 else np.nan
    for stat, o, r in (("mean", y.mean(), rep["all_mean"]), ("sd", sd_obs, rep["all_sd"])):
        rows.append(
            {
                "variable": name,
                "check": stat,
                "cluster": "all",
                "observed": float(o),
                "replicated": float(r.mean()),
                "p_value": float(_ppp(np.array([o]), r[:, None])[0]),
                "n": int(y.size),
            }
        )
    return rows


def _icc(Y: np.ndarray, codes: np.ndarray, J: int) -> np.ndarray:
    """One-way ANOVA intraclass correlation of each row of Y (clusters with cells only)."""
    n, mean, _ = _segment_stats(Y, codes, J)
    keep = n > 0
    n, mean = n[keep], mean[:, keep]
    N, K = n.sum(), keep.sum()
    if K < 2 or N - K < 1:
        return np.full(Y.shape[0], np.nan)
    grand = Y.mean(axis=1, keepdims=True)
    ssb = (n * (mean - grand) ** 2).sum(axis=1)
    sst = ((Y - grand) ** 2).sum(axis=1)
    msb = ssb / (K - 1)
    msw = (sst - ssb) / (N - K)
    n0 = (N - (n**2).sum() / N) / (K - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (msb - msw) / (msb + (n0 - 1) * msw)


def _icc_row(name, y, r, codes, J) -> dict:
    o = _icc(y[None, :], codes, J)[0]
    return {
        "variable": name,
        "check": "icc",
        "cluster": "all",
        "observed": float(o),
        "replicated": float(np.nanmean(r)) if np.isfinite(r).any() else np.nan,
        "p_value": float(_ppp(np.array([o]), r[:, None])[0]),
        "n": int(y.size),
    }


def _binom_p(k: int, n: int, p: float) -> float:
    """Two-sided exact binomial p-value of k successes in n trials (probability p)."""
    from scipy.stats import binomtest

    return float(binomtest(int(k), int(n), p).pvalue) if n > 0 else np.nan


def _coverage_rows(name, inside, codes, J, cl, level, per_cluster: bool) -> list[dict]:
    rows = []
    if per_cluster:
        n = np.bincount(codes, minlength=J)
        hit = np.bincount(codes, weights=inside.astype(float), minlength=J)
        for j in np.flatnonzero(n > 0):
            rows.append(
                {
                    "variable": name,
                    "check": "coverage",
                    "cluster": cl[j],
                    "observed": hit[j] / n[j],
                    "replicated": level,
                    "p_value": _binom_p(hit[j], n[j], level),
                    "n": int(n[j]),
                }
            )
    rows.append(
        {
            "variable": name,
            "check": "coverage",
            "cluster": "all",
            "observed": float(inside.mean()),
            "replicated": level,
            "p_value": _binom_p(inside.sum(), inside.size, level),
            "n": int(inside.size),
        }
    )
    return rows
