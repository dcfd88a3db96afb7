"""The seed's three classroom experiments as a reproducible simulation study (issue 9).

Jacobusse (IMPS 2005) generated classroom data (children in classes, DESIGN §4), deleted
values, imputed them with a single-level and with a multilevel model, and analysed every
completed data set with the true multilevel model. This module repeats that study:

* **Data.** Replication ``r`` of experiment ``e`` draws its data and all its imputations
  from ``SeedSequence([seed, e, r])`` (child 0: the data; child 1, 2, 3: the
  ``single_level``, ``multilevel`` and ``defaults`` imputations), so every replication can
  be rerun on its own and does not depend on the methods chosen, the order replications
  run in or the number of processes.
* **Methods.** ``complete`` (the data before deletion), ``complete_cases`` (listwise
  deletion), ``single_level`` (Bayesian linear regression, mice's ``norm``: the
  multilevel imputation formulas without random part and cluster means), ``multilevel``
  (:data:`mlimpute.datasets.IMPUTATION_FORMULAS`) and, once :func:`mlimpute.impute`
  accepts ``cluster=``, ``defaults`` (``df.mi.impute(cluster="class")``). Every data set
  is analysed with :data:`mlimpute.datasets.ANALYSIS_FORMULAS` (REML) and pooled by
  Rubin's rules; a single data set through :func:`mlimpute.from_completed` with two
  identical copies (``B = 0``: the complete-data answer).
* **Means** (experiment 2): the mean of ``grade`` and ``relation``, on the observed values
  (complete cases) or on every completed data set, with a cluster-robust standard error
  ``sqrt(J/(J-1) * sum_j s_j^2) / n`` (``s_j`` the sum of the deviations from the mean in
  class ``j``) pooled by Rubin's rules with ``dfcom = J - 1``.
* **Measures**, per method and parameter: true value, mean estimate, bias, relative
  bias, mean difference from the same replication's complete-data estimate, empirical SD,
  RMSE, mean SE, 95 % CI coverage of the true value (and of the complete-data estimate)
  and mean CI width (fixed effects and means), Monte Carlo SE of the bias and seconds per
  imputation run. See :func:`summarise` and :func:`acceptance`.

Replications run in parallel processes and each is written to its own JSON file
``<out>/experiment<e>/replication<r>.json``; a rerun skips the files that exist.

Command line::

    python -m mlimpute.simulation --experiments 1 2 3 --reps 200 --jobs 2 --out results/
    python -m mlimpute.simulation --out results/ --plots --markdown docs/simulation.md

References
----------
Jacobusse, G. (2005). Multiple imputation of missing data in a multilevel setting.
IMPS 2005, Tilburg. (The seed presentation.)

Morris, T. P., White, I. R. & Crowther, M. J. (2019). Using simulation studies to
evaluate statistical methods. Statistics in Medicine 38, 2074-2102.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import sys
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import __version__
from .analysis import from_completed
from .datasets import ANALYSIS_FORMULAS, IMPUTATION_FORMULAS, classroom
from .errors import ConvergenceWarning, SpecificationError
from .formula import cmean_column, parse_formula, ranef_column
from .impute import impute
from .pooling import pool_scalar

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "METHODS",
    "DEFAULT_SEED",
    "DEFAULT_M",
    "TRUE_MEANS",
    "LABELS",
    "SEED_FIGURE_FORMULA",
    "StudyConfig",
    "available_methods",
    "single_level_formulas",
    "replication_seeds",
    "run_replication",
    "run_study",
    "load_records",
    "summarise",
    "timings",
    "acceptance",
    "SingleDataSet",
    "single_data_set",
    "to_markdown",
    "write_markdown",
    "plot_replications",
    "plot_single_data_set",
    "make_figures",
    "stored_config",
    "provenance",
    "main",
]

#: Every method the study knows, in table order; ``defaults`` only where available.
METHODS = ("complete", "complete_cases", "single_level", "multilevel", "defaults")
#: Root seed of the study (the date of the seed talk).
DEFAULT_SEED = 20050705
#: Imputations per experiment (the seed imputed experiment 3 25 times).
DEFAULT_M = {1: 5, 2: 5, 3: 25}
#: Population means of the incomplete variables: E[relation] = 0.5 * P(girl) = 0.25 and
#: E[grade] = 10 + E[skill] + P(girl) + 0.8 * E[relation] = 10.7 (see ``classroom``).
TRUE_MEANS = {2: {"grade": 10.7, "relation": 0.25}}
#: The seed's names of the parameters.
LABELS = {
    "Intercept": "B0",
    "skill": "B1",
    "skill:gender": "B3",
    "var(Intercept|class)": "D0",
    "var(gender|class)": "D1",
    "cov(Intercept,gender|class)": "D01",
    "var(Residual)": "S",
}
#: Analysis model of the single-data-set figure of experiment 3: the true model with a
#: free intercept-slope covariance, so that D01 is estimated as in the seed.
SEED_FIGURE_FORMULA = "grade ~ skill * gender + relation + (1 + gender | class)"

_CLUSTER = "class"
_SPAWN = {"data": 0, "single_level": 1, "multilevel": 2, "defaults": 3}
_METHOD_TITLES = {
    "complete": "complete data",
    "complete_cases": "complete cases",
    "single_level": "single-level MI",
    "multilevel": "multilevel MI",
    "defaults": "default MI",
}
_TICKS = {
    "complete": "complete\ndata",
    "complete_cases": "complete\ncases",
    "single_level": "single-\nlevel",
    "multilevel": "multi-\nlevel",
    "defaults": "defaults",
}
_MARKERS = ("<!-- simulation-results:start -->", "<!-- simulation-results:end -->")


def available_methods() -> tuple[str, ...]:
    """The methods this installation can run.

    ``defaults`` needs :func:`mlimpute.impute` to build formulas itself from
    ``cluster=`` (a later issue); it is included as soon as ``impute`` takes that
    keyword.

    Returns
    -------
    tuple of str
        A subsequence of :data:`METHODS`.
    """
    has_cluster = "cluster" in inspect.signature(impute).parameters
    return tuple(m for m in METHODS if m != "defaults" or has_cluster)


def single_level_formulas(formulas: Mapping[str, str]) -> dict[str, str]:
    """The single-level counterparts of multilevel imputation formulas.

    Drops the random part and the ``cmean()`` / ``ranef()`` terms, leaving the linear
    regression on the other variables that the seed calls single-level imputation.

    Parameters
    ----------
    formulas : dict
        ``{variable: "~ ... + (1 | class)"}``.

    Returns
    -------
    dict

    Examples
    --------
    >>> single_level_formulas({"grade": "~ relation + cmean(relation) + (1 | class)"})
    {'grade': '~ relation'}
    """
    out = {}
    for name, text in formulas.items():
        parsed = parse_formula(text)
        drop = {cmean_column(v) for v in parsed.cmeans} | {ranef_column(v) for v in parsed.ranefs}
        terms = [t.strip() for t in parsed.fixed.split("+")]
        keep = [t for t in terms if t and t.strip("`") not in drop and not t.startswith("ranef(")]
        out[name] = "~ " + (" + ".join(keep) if keep else "1")
    return out


@dataclass(frozen=True)
class StudyConfig:
    """Settings of a study; a replication file records them and a rerun must match.

    Attributes
    ----------
    m : dict
        Imputations per experiment (default :data:`DEFAULT_M`).
    iterations : int
        Iterations of every imputation run.
    n_classes, class_size : int
        Size of each generated data set (the seed: 30 classes of 20 children).
    seed : int
        Root seed; replication ``r`` of experiment ``e`` uses ``SeedSequence([seed, e, r])``.
    engine : {"profiled", "statsmodels"}
        Mixed-model fitter of :meth:`MultiplyImputed.fit`.
    methods : tuple of str
        Methods to run (default :func:`available_methods`).
    """

    m: Mapping[int, int] = field(default_factory=lambda: dict(DEFAULT_M))
    iterations: int = 20
    n_classes: int = 30
    class_size: int = 20
    seed: int = DEFAULT_SEED
    engine: str = "profiled"
    methods: tuple[str, ...] = field(default_factory=available_methods)

    def __post_init__(self):
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise SpecificationError(f"unknown methods {unknown}; known: {list(METHODS)}")
        missing = [m for m in self.methods if m not in available_methods()]
        if missing:
            raise SpecificationError(
                f"methods {missing} are not available in this installation "
                f"(available: {list(available_methods())})"
            )
        object.__setattr__(self, "m", {int(k): int(v) for k, v in dict(self.m).items()})
        object.__setattr__(self, "methods", tuple(self.methods))
        if any(v < 2 for v in self.m.values()):
            raise SpecificationError(f"m must be at least 2 for every experiment, got {self.m}")
        if self.iterations < 1:
            raise SpecificationError(f"iterations must be positive, got {self.iterations}")

    def m_for(self, experiment: int) -> int:
        """Number of imputations of ``experiment``."""
        return self.m.get(int(experiment), DEFAULT_M.get(int(experiment), 5))

    def settings(self, experiment: int) -> dict[str, Any]:
        """The settings that determine a replication of ``experiment`` (JSON-ready)."""
        return {
            "m": self.m_for(experiment),
            "iterations": int(self.iterations),
            "n_classes": int(self.n_classes),
            "class_size": int(self.class_size),
            "seed": int(self.seed),
            "engine": self.engine,
            "methods": list(self.methods),
        }


def replication_seeds(
    experiment: int, replication: int, seed: int = DEFAULT_SEED
) -> dict[str, np.random.SeedSequence]:
    """Independent seed sequences for the data and each imputation of one replication.

    Parameters
    ----------
    experiment, replication : int
    seed : int, default :data:`DEFAULT_SEED`

    Returns
    -------
    dict
        ``{"data", "single_level", "multilevel", "defaults"}`` to children of
        ``SeedSequence([seed, experiment, replication])``.

    Examples
    --------
    >>> s = replication_seeds(1, 0)
    >>> s["data"].spawn_key, s["multilevel"].spawn_key
    ((0,), (2,))
    """
    root = np.random.SeedSequence([int(seed), int(experiment), int(replication)])
    children = root.spawn(len(_SPAWN))
    return {name: children[k] for name, k in _SPAWN.items()}


# --------------------------------------------------------------------------------------
# one replication


def _cluster_mean(y: np.ndarray, groups: np.ndarray) -> tuple[float, float, int]:
    """Mean of ``y`` and its cluster-robust variance; the number of clusters."""
    codes, uniques = pd.factorize(groups)
    n, J = y.size, uniques.size
    mean = float(y.mean())
    s = np.bincount(codes, weights=y - mean, minlength=J)
    var = J / (J - 1.0) * float(np.sum(s * s)) / n**2
    return mean, var, J


def _means(frames: Sequence[pd.DataFrame], variables: Iterable[str]) -> dict[str, dict]:
    """Pooled means of ``variables`` (observed values only) with cluster-robust SEs."""
    out = {}
    for v in variables:
        est, var, n_clusters = [], [], []
        for f in frames:
            y = f[v].to_numpy(dtype=float)
            keep = ~np.isnan(y)
            e, s2, J = _cluster_mean(y[keep], f[_CLUSTER].to_numpy()[keep])
            est.append(e)
            var.append(s2)
            n_clusters.append(J)
        if len(est) == 1:  # one data set: pooled as two identical copies (B = 0)
            est, var = est * 2, var * 2
        row = pool_scalar(est, var, dfcom=min(n_clusters) - 1.0).table(names=[f"mean({v})"])
        out[f"mean({v})"] = _row(row.iloc[0], "mean")
    return out


def _row(s: pd.Series, kind: str) -> dict[str, Any]:
    return {"kind": kind, **{k: float(s[k]) for k in ("estimate", "se", "df", "ci_low", "ci_high")}}


def _analyse(source, formula: str, engine: str) -> tuple[dict, Any]:
    res = source.fit(formula, engine=engine)
    params = {name: _row(row, "fixed") for name, row in res.summary().iterrows()}
    vc = res.variance_components()
    for name, row in vc.iterrows():
        if not str(name).startswith("ICC"):
            params[str(name)] = {"kind": "variance", "estimate": float(row["estimate"]),
                                 "between_sd": float(row["between_sd"])}
    return params, res


def _run_method(method: str, data, experiment: int, config: StudyConfig,
                seeds: Mapping[str, np.random.SeedSequence]) -> dict[str, Any]:
    formula = ANALYSIS_FORMULAS[experiment]
    m = config.m_for(experiment)
    record: dict[str, Any] = {"seconds": {"impute": None, "fit": None}}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            t0 = time.perf_counter()
            if method == "complete":
                frames = [data.complete]
                source = from_completed(frames * 2)
            elif method == "complete_cases":
                used = sorted(parse_formula(formula).variables)
                frames = [data.incomplete]
                source = from_completed([data.incomplete.dropna(subset=used)] * 2)
            else:
                rng = np.random.default_rng(seeds[method])
                if method == "defaults":
                    imp = impute(data.incomplete, cluster=_CLUSTER, m=m,
                                 iterations=config.iterations, rng=rng)
                else:
                    forms = IMPUTATION_FORMULAS[experiment]
                    kwargs: dict[str, Any] = {}
                    if method == "single_level":
                        forms = single_level_formulas(forms)
                        kwargs["method"] = {v: "norm" for v in forms}
                    imp = impute(data.incomplete, forms, m=m, iterations=config.iterations,
                                 rng=rng, **kwargs)
                record["seconds"]["impute"] = time.perf_counter() - t0
                frames = list(imp.complete("all"))
                source = imp
            t1 = time.perf_counter()
            params, res = _analyse(source, formula, config.engine)
            record["seconds"]["fit"] = time.perf_counter() - t1
            record["singular"] = len(res.singular)
            record["nonconverged"] = len(res.nonconverged)
            if experiment in TRUE_MEANS:
                params.update(_means(frames, TRUE_MEANS[experiment]))
            record["params"] = params
        except Exception as exc:  # recorded and reported by summarise(), never hidden
            record["error"] = f"{type(exc).__name__}: {exc}"
    record["convergence_warning"] = any(issubclass(w.category, ConvergenceWarning)
                                        for w in caught)
    record["warnings"] = sorted({str(w.message)[:300] for w in caught})
    return record


def run_replication(experiment: int, replication: int,
                    config: StudyConfig | None = None) -> dict[str, Any]:
    """Generate, delete, impute and analyse one replication of one experiment.

    Parameters
    ----------
    experiment : {1, 2, 3}
    replication : int
        Replication number (0, 1, ...); with ``config.seed`` it determines the data and
        every imputation.
    config : StudyConfig, optional

    Returns
    -------
    dict
        JSON-ready: ``experiment``, ``replication``, ``settings``, ``version``, ``truth``,
        ``seconds`` and ``results``: per method ``params`` (per parameter ``kind``,
        ``estimate`` and, for fixed effects and means, ``se, df, ci_low, ci_high``),
        ``seconds`` (``impute``, ``fit``), ``singular``, ``convergence_warning``,
        ``warnings``; or ``error`` if the method failed.

    Examples
    --------
    >>> cfg = StudyConfig(m={1: 2}, iterations=3, methods=("complete", "multilevel"))
    >>> rec = run_replication(1, 0, cfg)
    >>> sorted(rec["results"]), rec["results"]["complete"]["params"]["skill"]["kind"]
    (['complete', 'multilevel'], 'fixed')
    """
    config = config or StudyConfig()
    if experiment not in ANALYSIS_FORMULAS:
        raise SpecificationError(f"experiment must be 1, 2 or 3, got {experiment!r}")
    seeds = replication_seeds(experiment, replication, config.seed)
    t0 = time.perf_counter()
    data = classroom(experiment, n_classes=config.n_classes, class_size=config.class_size,
                     rng=np.random.default_rng(seeds["data"]))
    results = {method: _run_method(method, data, experiment, config, seeds)
               for method in config.methods}
    return {
        "experiment": int(experiment),
        "replication": int(replication),
        "settings": config.settings(experiment),
        "version": __version__,
        "truth": dict(data.truth),
        "seconds": time.perf_counter() - t0,
        "results": results,
    }


# --------------------------------------------------------------------------------------
# the study: parallel, resumable


def _path(out_dir: Path, experiment: int, replication: int) -> Path:
    return Path(out_dir) / f"experiment{experiment}" / f"replication{replication:04d}.json"


def _write(path: Path, record: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, path)


def _init_worker() -> None:
    global _BLAS_LIMIT
    from threadpoolctl import threadpool_limits

    _BLAS_LIMIT = threadpool_limits(1)  # noqa: F841  (kept alive for the worker's life)


_BLAS_LIMIT = None


def _task(experiment: int, replication: int, config: StudyConfig, out_dir: str) -> str:
    record = run_replication(experiment, replication, config)
    path = _path(Path(out_dir), experiment, replication)
    _write(path, record)
    return str(path)


def run_study(
    out_dir: str | os.PathLike,
    *,
    experiments: Sequence[int] = (1, 2, 3),
    reps: int = 200,
    jobs: int = 1,
    config: StudyConfig | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run (or resume) the replications of a study, one JSON file per replication.

    Parameters
    ----------
    out_dir : path
        Results directory; ``<out_dir>/experiment<e>/replication<r>.json``.
    experiments : sequence of int
    reps : int
        Replications ``0 .. reps - 1`` of each experiment; existing files are skipped.
    jobs : int
        Worker processes (``1``: run in this process). Each worker pins BLAS to one thread.
    config : StudyConfig, optional
    progress : bool
        Show a progress bar (tqdm, only on a terminal).

    Returns
    -------
    dict
        ``done`` (replications run now), ``skipped`` (found on disk), ``seconds`` (wall
        time of this call), ``jobs``. Calls that ran something also append this, with
        the date, version and machine, to ``<out_dir>/runs.jsonl``.

    Raises
    ------
    SpecificationError
        If a file on disk was made with other settings (use another ``out_dir``).
    """
    from tqdm import tqdm

    config = config or StudyConfig()
    out = Path(out_dir)
    todo, skipped = [], 0
    for r in range(int(reps)):
        for e in experiments:
            path = _path(out, e, r)
            if path.exists():
                stored = json.loads(path.read_text()).get("settings")
                if stored != config.settings(e):
                    raise SpecificationError(
                        f"{path} was made with settings {stored}, not {config.settings(e)}: "
                        "use another output directory or delete it."
                    )
                skipped += 1
            else:
                todo.append((int(e), r))
    # the slow experiment 3 first, so that the workers finish together
    todo.sort(key=lambda t: (-config.m_for(t[0]) * (2 if t[0] == 3 else 1), t[1], t[0]))
    t0 = time.perf_counter()
    bar = tqdm(total=len(todo), disable=None if progress else True, desc="replications")
    try:
        if jobs <= 1:
            for e, r in todo:
                _task(e, r, config, str(out))
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=int(jobs), initializer=_init_worker) as pool:
                futures = [pool.submit(_task, e, r, config, str(out)) for e, r in todo]
                for fut in as_completed(futures):
                    fut.result()
                    bar.update()
    finally:
        bar.close()
    info = {"done": len(todo), "skipped": skipped, "seconds": time.perf_counter() - t0,
            "jobs": int(jobs)}
    if todo:
        out.mkdir(parents=True, exist_ok=True)
        log = {**info, "date": time.strftime("%Y-%m-%d %H:%M:%S"), "version": __version__,
               "experiments": sorted({e for e, _ in todo}), "reps": int(reps),
               "machine": _machine()}
        with open(out / "runs.jsonl", "a") as fh:
            fh.write(json.dumps(log) + "\n")
    return info


# --------------------------------------------------------------------------------------
# summaries


def load_records(out_dir: str | os.PathLike) -> pd.DataFrame:
    """All replication results as one long table.

    Parameters
    ----------
    out_dir : path

    Returns
    -------
    pandas.DataFrame
        One row per experiment, replication, method and parameter, with ``kind``,
        ``estimate``, ``se``, ``ci_low``, ``ci_high``, ``true`` (NaN if unknown),
        ``complete`` (the same replication's complete-data estimate), ``impute_s``,
        ``fit_s``, ``singular``, ``convergence_warning`` and ``error`` (a method that failed
        has one row with parameter ``""``).
    """
    rows = []
    for path in sorted(Path(out_dir).glob("experiment*/replication*.json")):
        rec = json.loads(path.read_text())
        e = rec["experiment"]
        truth = dict(rec["truth"])
        truth.update({f"mean({v})": t for v, t in TRUE_MEANS.get(e, {}).items()})
        complete = rec["results"].get("complete", {}).get("params", {})
        for method, res in rec["results"].items():
            base = {"experiment": e, "replication": rec["replication"], "method": method,
                    "impute_s": res["seconds"]["impute"], "fit_s": res["seconds"]["fit"],
                    "singular": res.get("singular", 0),
                    "convergence_warning": res.get("convergence_warning", False),
                    "error": res.get("error")}
            if "error" in res:
                rows.append({**base, "parameter": ""})
                continue
            for name, p in res["params"].items():
                rows.append({**base, "parameter": name, "kind": p["kind"],
                             "estimate": p["estimate"], "se": p.get("se", np.nan),
                             "ci_low": p.get("ci_low", np.nan),
                             "ci_high": p.get("ci_high", np.nan),
                             "true": truth.get(name, np.nan),
                             "complete": complete.get(name, {}).get("estimate", np.nan)})
    cols = ["experiment", "replication", "method", "parameter", "kind", "estimate", "se",
            "ci_low", "ci_high", "true", "complete", "impute_s", "fit_s", "singular",
            "convergence_warning", "error"]
    return pd.DataFrame(rows, columns=cols)


def _order(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["_m"] = df["method"].map({m: k for k, m in enumerate(METHODS)})
    kinds = {"fixed": 0, "variance": 1, "mean": 2}
    df["_k"] = df["kind"].map(kinds)
    df = df.sort_values(["experiment", "_m", "_k"], kind="stable")
    return df.drop(columns=["_m", "_k"]).reset_index(drop=True)


def summarise(out_dir: str | os.PathLike | pd.DataFrame) -> pd.DataFrame:
    """Performance of every method for every parameter with a known true value.

    Parameters
    ----------
    out_dir : path or DataFrame
        A results directory, or the table of :func:`load_records`.

    Returns
    -------
    pandas.DataFrame
        One row per experiment, method and parameter: ``label`` (the seed's name),
        ``kind``, ``n`` (replications), ``true``, ``mean``, ``bias``, ``rel_bias``
        (``bias / true``), ``diff_complete`` (mean of estimate minus the same
        replication's complete-data estimate), ``emp_sd``, ``rmse``, ``mcse_bias``
        (``emp_sd / sqrt(n)``), ``mcse_diff`` (Monte Carlo SE of ``diff_complete``, much
        smaller: the data's own sampling error cancels), ``std_bias`` (``bias / emp_sd``),
        and for fixed effects and means ``mean_se``, ``coverage`` (of the true value by the
        95 % CI), ``cover_complete`` (of the complete-data estimate), ``ci_width``;
        ``impute_s`` (mean seconds per imputation run), ``conv_warn`` (share of imputation
        runs with a convergence warning), ``singular`` (mean number of boundary fits per
        replication) and ``failed`` (replications in which the method raised).
    """
    rec = out_dir if isinstance(out_dir, pd.DataFrame) else load_records(out_dir)
    if rec.empty:
        return pd.DataFrame()
    failed = (rec[rec["error"].notna()].groupby(["experiment", "method"]).size()
              .rename("failed"))
    ok = rec[rec["error"].isna() & rec["true"].notna()].copy()
    ok["err"] = ok["estimate"] - ok["true"]
    ok["diff"] = ok["estimate"] - ok["complete"]
    ok["cov"] = ((ok["ci_low"] <= ok["true"]) & (ok["true"] <= ok["ci_high"])).astype(float)
    ok["covc"] = ((ok["ci_low"] <= ok["complete"]) & (ok["complete"] <= ok["ci_high"])
                  ).astype(float)
    ok["width"] = ok["ci_high"] - ok["ci_low"]
    has_ci = ok["ci_low"].notna()
    ok.loc[~has_ci, ["cov", "covc"]] = np.nan
    g = ok.groupby(["experiment", "method", "parameter"], sort=False)
    out = pd.DataFrame({
        "kind": g["kind"].first(),
        "n": g["estimate"].count(),
        "true": g["true"].first(),
        "mean": g["estimate"].mean(),
        "bias": g["err"].mean(),
        "diff_complete": g["diff"].mean(),
        "emp_sd": g["estimate"].std(ddof=1),
        "rmse": np.sqrt(g["err"].apply(lambda e: float(np.mean(e**2)))),
        "mean_se": g["se"].mean(),
        "coverage": g["cov"].mean(),
        "cover_complete": g["covc"].mean(),
        "ci_width": g["width"].mean(),
        "sd_diff": g["diff"].std(ddof=1),
        "impute_s": g["impute_s"].mean(),
        "conv_warn": g["convergence_warning"].mean(),
        "singular": g["singular"].mean(),
    }).reset_index()
    out["rel_bias"] = out["bias"] / out["true"].where(out["true"] != 0)
    out["mcse_bias"] = out["emp_sd"] / np.sqrt(out["n"])
    out["mcse_diff"] = out.pop("sd_diff") / np.sqrt(out["n"])
    out["std_bias"] = out["bias"] / out["emp_sd"]
    out["label"] = out["parameter"].map(LABELS).fillna("")
    out = out.merge(failed.reset_index(), on=["experiment", "method"], how="left")
    out["failed"] = out["failed"].fillna(0).astype(int)
    out.loc[out["method"].isin(["complete", "complete_cases"]), "conv_warn"] = np.nan
    cols = ["experiment", "method", "parameter", "label", "kind", "n", "true", "mean", "bias",
            "rel_bias", "diff_complete", "emp_sd", "rmse", "mcse_bias", "mcse_diff",
            "std_bias", "mean_se", "coverage", "cover_complete", "ci_width", "impute_s",
            "conv_warn", "singular", "failed"]
    return _order(out[cols])


def timings(out_dir: str | os.PathLike | pd.DataFrame) -> pd.DataFrame:
    """Mean seconds per replication by experiment and method (imputation and analysis).

    Parameters
    ----------
    out_dir : path or DataFrame
        A results directory, or the table of :func:`load_records`.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``experiment, method``: ``n``, ``impute_s``, ``fit_s``, ``total_s``.
        The rows ``method == "all"`` sum the methods: the CPU seconds of one replication.
    """
    rec = out_dir if isinstance(out_dir, pd.DataFrame) else load_records(out_dir)
    per = rec.drop_duplicates(["experiment", "replication", "method"])
    g = per.groupby(["experiment", "method"])
    t = pd.DataFrame({"n": g.size(), "impute_s": g["impute_s"].mean(),
                      "fit_s": g["fit_s"].mean()})
    t["total_s"] = t[["impute_s", "fit_s"]].fillna(0).sum(axis=1)
    allm = t.groupby(level="experiment")[["impute_s", "fit_s", "total_s"]].sum()
    allm["n"] = t.groupby(level="experiment")["n"].max()
    allm.index = pd.MultiIndex.from_arrays([allm.index, ["all"] * len(allm)],
                                           names=["experiment", "method"])
    t = pd.concat([t, allm[t.columns]]).reset_index()
    t["_m"] = t["method"].map({m: k for k, m in enumerate((*METHODS, "all"))})
    return t.sort_values(["experiment", "_m"]).drop(columns="_m").set_index(
        ["experiment", "method"])


@dataclass(frozen=True)
class SingleDataSet:
    """One data set imputed ``m`` times: per-imputation and complete-data estimates.

    Attributes
    ----------
    experiment : int
    formula : str
        The analysis model.
    per_imputation : pandas.DataFrame
        ``m`` rows (imputation 1..m): fixed effects and variance components
        (``var(...)``, ``cov(...)``, ``var(Residual)``) of each completed data set.
    complete : pandas.Series
        The same quantities on the data before deletion.
    complete_cases : pandas.Series
        The same quantities on the complete cases (what the observed data alone say).
    summary : pandas.DataFrame
        The pooled fixed effects (:meth:`PooledResult.summary`).
    variance_components : pandas.DataFrame
        The pooled variance components.
    truth : dict
        Data-generating values.
    """

    experiment: int
    formula: str
    per_imputation: pd.DataFrame
    complete: pd.Series
    complete_cases: pd.Series
    summary: pd.DataFrame
    variance_components: pd.DataFrame
    truth: dict


def _vc_per_imputation(res) -> pd.DataFrame:
    names = [n for n in res.variance_components().index if not str(n).startswith("ICC")]
    effects = [n[4:].split("|")[0] for n in names if n.startswith("var(") and "|" in n]
    rows = []
    for f in res.fits:
        row = {}
        for n in names:
            if n == "var(Residual)":
                row[n] = f.scale
            else:
                a, _, b = n[n.index("(") + 1:n.index("|")].partition(",")
                i, j = effects.index(a), effects.index(b or a)
                row[n] = f.cov_re[i, j]
        rows.append(row)
    return pd.DataFrame(rows, index=pd.RangeIndex(1, len(rows) + 1, name="imputation"))


def single_data_set(
    experiment: int = 3,
    *,
    replication: int = 0,
    config: StudyConfig | None = None,
    formula: str | None = None,
) -> SingleDataSet:
    """The seed's last figure: one data set imputed ``m`` times (multilevel imputation).

    The data and imputations are those of ``replication`` of the study with ``config``;
    the analysis model is :data:`SEED_FIGURE_FORMULA` for experiment 3 (so that the
    intercept-slope covariance D01 is estimated, as in the seed) and the true model
    otherwise. The expected value of each per-imputation estimate is the complete-data
    estimate, not the data-generating value.

    Parameters
    ----------
    experiment : {1, 2, 3}, default 3
    replication : int, default 0
    config : StudyConfig, optional
        ``m``, ``iterations``, ``seed``, sizes and engine (default: the study's).
    formula : str, optional
        Analysis model instead of the default.

    Returns
    -------
    SingleDataSet

    Examples
    --------
    >>> s = single_data_set(3, config=StudyConfig(m={3: 3}, iterations=5))
    >>> s.per_imputation.shape[0], "cov(Intercept,gender|class)" in s.complete.index
    (3, True)
    """
    config = config or StudyConfig()
    if formula is None:
        formula = SEED_FIGURE_FORMULA if experiment == 3 else ANALYSIS_FORMULAS[experiment]
    seeds = replication_seeds(experiment, replication, config.seed)
    data = classroom(experiment, n_classes=config.n_classes, class_size=config.class_size,
                     rng=np.random.default_rng(seeds["data"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imp = impute(data.incomplete, IMPUTATION_FORMULAS[experiment],
                     m=config.m_for(experiment), iterations=config.iterations,
                     rng=np.random.default_rng(seeds["multilevel"]))
        res = imp.fit(formula, engine=config.engine)
        used = sorted(parse_formula(formula).variables)
        fits = [from_completed([d] * 2).fit(formula, engine=config.engine)
                for d in (data.complete, data.incomplete.dropna(subset=used))]
    per = pd.concat([res.per_imputation, _vc_per_imputation(res)], axis=1)
    complete, cc = (pd.concat([f.summary()["estimate"], f.variance_components()["estimate"]])
                    .reindex(per.columns) for f in fits)
    return SingleDataSet(experiment, formula, per, complete, cc, res.summary(),
                         res.variance_components(), dict(data.truth))


def acceptance(summary: pd.DataFrame, single: SingleDataSet | None = None) -> pd.DataFrame:
    """The acceptance targets of DESIGN §4 checked against a summary.

    Parameters
    ----------
    summary : pandas.DataFrame
        From :func:`summarise`.
    single : SingleDataSet, optional
        Experiment 3's single data set (:func:`single_data_set`).

    Returns
    -------
    pandas.DataFrame
        One row per check: ``experiment``, ``check``, ``parameter``, ``value`` (as
        text), ``target`` and ``passed``.

    Notes
    -----
    * multilevel imputation: |relative bias| < 5 % for each fixed effect, < 10 % for D0,
      D1 and S; 95 % CI coverage of each fixed effect in [0.92, 0.98];
    * single-level imputation: D0 more than 40 % too low (the seed's finding);
    * experiment 2: the complete-case means of ``grade`` and ``relation`` are biased
      and the multilevel-imputed ones are not. Bias is measured against the same
      replication's complete-data mean (an unbiased estimate of the true mean, with the
      data's sampling error removed) and called a bias when it is more than 3 Monte
      Carlo SEs from 0;
    * experiment 3: on one data set imputed ``m`` times, the pooled CI of B3 covers the
      complete-data estimate and the complete-data D0, D1 and D01 lie within the middle
      90 % of the ``m`` per-imputation estimates; over all replications, the share of
      pooled CIs of B3 that cover the complete-data estimate.
    """
    rows = []

    def add(e, check, param, value, target, passed):
        rows.append({"experiment": e, "check": check, "parameter": param, "value": value,
                     "target": target, "passed": bool(passed)})

    ml = summary[summary["method"] == "multilevel"]
    for _, r in ml.iterrows():
        name = f"{r['label']} {r['parameter']}".strip() if r["label"] else r["parameter"]
        if r["kind"] == "fixed":
            add(r["experiment"], "multilevel: relative bias", name,
                f"{100 * r['rel_bias']:+.1f} %", "within ±5 %", abs(r["rel_bias"]) < 0.05)
            add(r["experiment"], "multilevel: 95 % CI coverage", name,
                f"{r['coverage']:.3f}", "0.92-0.98", 0.92 <= r["coverage"] <= 0.98)
        elif r["kind"] == "variance":
            add(r["experiment"], "multilevel: relative bias", name,
                f"{100 * r['rel_bias']:+.1f} %", "within ±10 %", abs(r["rel_bias"]) < 0.10)
    sl = summary[(summary["method"] == "single_level")
                 & (summary["parameter"] == "var(Intercept|class)")]
    for _, r in sl.iterrows():
        add(r["experiment"], "single-level: D0 too low", "D0 var(Intercept|class)",
            f"{100 * r['rel_bias']:+.1f} %", "below -40 %", r["rel_bias"] < -0.40)
    means = summary[(summary["kind"] == "mean")
                    & summary["method"].isin(["complete_cases", "multilevel"])]
    for _, r in means.iterrows():
        t = float(np.divide(r["diff_complete"], r["mcse_diff"]))
        text = (f"{r['diff_complete']:+.3f} vs complete data ({t:+.1f} MCSE); "
                f"{r['bias']:+.3f} vs true")
        if r["method"] == "complete_cases":
            add(r["experiment"], "complete cases: mean biased", r["parameter"], text,
                "|bias| > 3 MCSE", abs(t) > 3)
        else:
            add(r["experiment"], "multilevel: mean unbiased", r["parameter"], text,
                "|bias| < 3 MCSE", abs(t) < 3)
    b3 = summary[(summary["method"] == "multilevel") & (summary["parameter"] == "skill:gender")]
    for _, r in b3.iterrows():
        add(r["experiment"], "multilevel: pooled CI covers complete-data B3 (all reps)",
            "B3 skill:gender", f"{r['cover_complete']:.3f}", "(reported)", True)
    if single is not None:
        e = single.experiment
        if "skill:gender" in single.summary.index:
            s = single.summary.loc["skill:gender"]
            c = single.complete["skill:gender"]
            add(e, f"one data set, m = {len(single.per_imputation)}: pooled CI covers "
                "complete-data B3", "B3 skill:gender",
                f"{c:.3f} in [{s['ci_low']:.3f}, {s['ci_high']:.3f}]", "covered",
                s["ci_low"] <= c <= s["ci_high"])
        for name in ("var(Intercept|class)", "var(gender|class)", "cov(Intercept,gender|class)"):
            if name not in single.per_imputation:
                continue
            v = single.per_imputation[name]
            lo, hi = np.quantile(v, [0.05, 0.95])
            c = single.complete[name]
            add(e, "one data set: complete-data value among the per-imputation estimates",
                f"{LABELS[name]} {name}",
                f"{c:.3f} in [{lo:.3f}, {hi:.3f}] (mean {v.mean():.3f}, "
                f"{int((v < c).sum())}/{v.size} below)", "within 5-95 %", lo <= c <= hi)
    return pd.DataFrame(rows, columns=["experiment", "check", "parameter", "value", "target",
                                       "passed"])


# --------------------------------------------------------------------------------------
# markdown


def _fmt(v: Any, spec: str) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return ""
    if spec == "%":
        return f"{100 * v:+.1f} %"
    return format(v, spec)


def _md_table(df: pd.DataFrame, formats: Mapping[str, str]) -> str:
    cols = list(formats)
    lines = ["| " + " | ".join(cols) + " |",
             "|" + "|".join("---" if formats[c] == "s" else "---:" for c in cols) + "|"]
    for _, r in df.iterrows():
        cells = [str(r[c]) if formats[c] == "s" else _fmt(r[c], formats[c]) for c in cols]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def to_markdown(
    summary: pd.DataFrame,
    *,
    checks: pd.DataFrame | None = None,
    times: pd.DataFrame | None = None,
    heading: str = "###",
) -> str:
    """Markdown tables of a study: one per experiment, the checks and the timings.

    Parameters
    ----------
    summary : pandas.DataFrame
        From :func:`summarise`.
    checks : pandas.DataFrame, optional
        From :func:`acceptance`.
    times : pandas.DataFrame, optional
        From :func:`timings`.
    heading : str, default "###"
        Markdown heading level of the sections.

    Returns
    -------
    str
    """
    parts = []
    fmts = {"method": "s", "parameter": "s", "n": "d", "true": ".3f", "mean": ".3f",
            "bias": "+.3f", "rel. bias": "%", "vs complete": "+.3f", "emp. SD": ".3f",
            "RMSE": ".3f", "mean SE": ".3f", "coverage": ".3f", "CI width": ".3f",
            "s/imputation": ".2f"}
    for e, block in summary.groupby("experiment", sort=True):
        t = block.assign(
            method=block["method"].map(_METHOD_TITLES),
            parameter=[f"{lab} `{p}`" if lab else f"`{p}`"
                       for lab, p in zip(block["label"], block["parameter"], strict=True)],
        ).rename(columns={"rel_bias": "rel. bias", "diff_complete": "vs complete",
                          "emp_sd": "emp. SD", "rmse": "RMSE", "mean_se": "mean SE",
                          "ci_width": "CI width", "impute_s": "s/imputation"})
        t["n"] = t["n"].astype(int)
        parts.append(f"{heading} Experiment {e}\n\n{_md_table(t, fmts)}")
        fails = block.drop_duplicates("method")
        fails = fails[fails["failed"] > 0]
        if len(fails):
            parts.append("Failed replications: " + ", ".join(
                f"{_METHOD_TITLES[m]} {n}" for m, n in zip(fails["method"], fails["failed"],
                                                           strict=True)))
    if checks is not None and len(checks):
        c = checks.assign(passed=checks["passed"].map({True: "yes", False: "**no**"}))
        c["experiment"] = c["experiment"].astype(str)
        parts.append(f"{heading} Acceptance checks\n\n" + _md_table(
            c, {"experiment": "s", "check": "s", "parameter": "s", "value": "s",
                "target": "s", "passed": "s"}))
    diag = summary.drop_duplicates(["experiment", "method"])
    diag = diag[~diag["method"].isin(["complete", "complete_cases"])]
    if len(diag):
        d = diag.assign(experiment=diag["experiment"].astype(str),
                        method=diag["method"].map(_METHOD_TITLES))
        parts.append(f"{heading} Diagnostics\n\n" + _md_table(
            d.rename(columns={"conv_warn": "runs with R-hat warning",
                              "singular": "singular fits per replication"}),
            {"experiment": "s", "method": "s", "n": "d", "runs with R-hat warning": ".2f",
             "singular fits per replication": ".2f", "failed": "d"}))
    if times is not None and len(times):
        tt = times.reset_index()
        tt["experiment"] = tt["experiment"].astype(str)
        tt["n"] = tt["n"].astype(int)
        parts.append(f"{heading} Seconds per replication (one process)\n\n" + _md_table(
            tt, {"experiment": "s", "method": "s", "n": "d", "impute_s": ".3f",
                 "fit_s": ".3f", "total_s": ".3f"}))
    return "\n\n".join(parts) + "\n"


def write_markdown(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` into a markdown file between the results markers.

    If ``path`` holds the markers ``<!-- simulation-results:start -->`` and
    ``<!-- simulation-results:end -->``, only the text between them is replaced (so a
    hand-written document keeps its prose); otherwise the file is (over)written with the
    markers and ``text``.

    Parameters
    ----------
    path : path
    text : str
        E.g. from :func:`to_markdown`.

    Returns
    -------
    pathlib.Path
    """
    path = Path(path)
    start, end = _MARKERS
    block = f"{start}\n{text.rstrip()}\n{end}"
    old = path.read_text() if path.exists() else ""
    if start in old and end in old:
        head, rest = old.split(start, 1)
        new = head + block + rest.split(end, 1)[1]
    else:
        new = block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new)
    return path


# --------------------------------------------------------------------------------------
# figures (matplotlib, built without pyplot so that scripts need no backend)


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
    """The seed's figures: per-replication estimates of every parameter by method.

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
    colours = {"complete": "0.45", "complete_cases": "tab:orange",
               "single_level": "tab:purple", "multilevel": "tab:green",
               "defaults": "tab:blue"}
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
    fig.suptitle(f"Experiment {experiment}: estimates in {n} replications "
                 "(red: true value, black: mean)", fontsize="medium")
    return fig


def plot_single_data_set(single: SingleDataSet, *, ncols: int = 4) -> Figure:
    """The seed's experiment-3 figures: the ``m`` per-imputation estimates of one data set.

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
    wanted = ["skill:gender", "var(Intercept|class)", "var(gender|class)",
              "cov(Intercept,gender|class)"]
    params = [p for p in wanted if p in single.per_imputation] or list(single.per_imputation)
    fig, axes = _figure(len(params), min(ncols, len(params)))
    truth = dict(single.truth)
    truth.setdefault("cov(Intercept,gender|class)", 0.0)
    for ax, name in zip(axes, params, strict=True):
        y = single.per_imputation[name]
        ax.plot(y.index, y.to_numpy(), "o", ms=3.5, color="tab:green")
        if name in single.summary.index:
            s = single.summary.loc[name]
            ax.axhspan(s["ci_low"], s["ci_high"], color="0.88", zorder=0,
                       label="pooled 95 % CI")
        ax.axhline(y.mean(), color="k", ls=":", lw=1.2, label="pooled")
        ax.axhline(single.complete[name], color="tab:blue", lw=1.4, label="complete data")
        ax.axhline(single.complete_cases[name], color="tab:orange", ls="-.", lw=1.0,
                   label="complete cases")
        if name in truth:
            ax.axhline(truth[name], color="tab:red", ls="--", lw=1.0, label="true")
        ax.set_title(_param_title(name), fontsize="small")
        ax.set_xlabel("imputation", fontsize="x-small")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.tick_params(labelsize="x-small")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels),
               fontsize="x-small", frameon=False)
    fig.suptitle(f"Experiment {single.experiment}: one data set imputed "
                 f"{len(single.per_imputation)} times", fontsize="medium")
    return fig


def make_figures(
    out_dir: str | os.PathLike,
    fig_dir: str | os.PathLike = "docs/figures",
    *,
    single: SingleDataSet | None = None,
    experiments: Sequence[int] | None = None,
    dpi: int = 80,
) -> list[Path]:
    """Write the seed's figures as PNG files.

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


# --------------------------------------------------------------------------------------
# command line


def stored_config(out_dir: str | os.PathLike, experiment: int) -> StudyConfig:
    """The :class:`StudyConfig` with which ``experiment``'s results in ``out_dir`` were made.

    Parameters
    ----------
    out_dir : path
    experiment : int

    Returns
    -------
    StudyConfig

    Raises
    ------
    SpecificationError
        If ``out_dir`` has no results of ``experiment``.
    """
    first = next(iter(sorted(Path(out_dir).glob(f"experiment{experiment}/replication*.json"))),
                 None)
    if first is None:
        raise SpecificationError(f"no results of experiment {experiment} in {out_dir}")
    st = json.loads(first.read_text())["settings"]
    return StudyConfig(m={experiment: st["m"]}, iterations=st["iterations"],
                       n_classes=st["n_classes"], class_size=st["class_size"],
                       seed=st["seed"], engine=st["engine"],
                       methods=tuple(m for m in st["methods"] if m in available_methods()))


def provenance(out_dir: str | os.PathLike, records: pd.DataFrame | None = None) -> str:
    """One paragraph saying what the tables of ``out_dir`` rest on.

    Replications per experiment, imputations, iterations, seed, mlimpute version(s) and
    the runs logged in ``<out_dir>/runs.jsonl`` (wall time, processes, machine).

    Parameters
    ----------
    out_dir : path
    records : pandas.DataFrame, optional
        The table of :func:`load_records` (read from ``out_dir`` when omitted).

    Returns
    -------
    str
    """
    rec = load_records(out_dir) if records is None else records
    parts = []
    for e in sorted(rec["experiment"].unique()):
        st = stored_config(out_dir, int(e))
        n = rec.loc[rec["experiment"] == e, "replication"].nunique()
        parts.append(f"experiment {e}: {n} replications, m = {st.m_for(int(e))}")
    st = stored_config(out_dir, int(rec["experiment"].min()))
    text = (f"**Results of {'; '.join(parts)}; {st.iterations} iterations, seed {st.seed}, "
            f"engine `{st.engine}`.**")
    log = Path(out_dir) / "runs.jsonl"
    if log.exists():
        runs = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        if runs:
            done = sum(r["done"] for r in runs)
            secs = sum(r["seconds"] for r in runs)
            last = runs[-1]
            text += (f" Run in {len(runs)} session(s): {done} replications in {secs:.0f} s "
                     f"wall time ({secs / 60:.1f} min) with {last['jobs']} process(es); last "
                     f"run {last['date']}, mlimpute {last['version']}, {last['machine']}.")
    return text


def _parse_m(values: Sequence[str] | None) -> dict[int, int]:
    m = dict(DEFAULT_M)
    for v in values or ():
        if "=" in v:
            e, k = v.split("=", 1)
            m[int(e)] = int(k)
        else:
            m = dict.fromkeys(m, int(v))
    return m


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, numpy {np.__version__}, "
            f"pandas {pd.__version__}")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m mlimpute.simulation --help``."""
    p = argparse.ArgumentParser(
        prog="python -m mlimpute.simulation",
        description="The seed's classroom experiments as a simulation study (resumable).",
    )
    p.add_argument("--experiments", type=int, nargs="+", default=[1, 2, 3],
                   choices=[1, 2, 3])
    p.add_argument("--reps", type=int, default=None,
                   help="replications per experiment to have on disk (run the missing "
                        "ones); without it nothing is run, only summarised/plotted")
    p.add_argument("--jobs", type=int, default=1, help="worker processes")
    p.add_argument("--out", default="results", help="results directory (default results/)")
    p.add_argument("--m", nargs="+", metavar="[E=]M",
                   help="imputations: one number for all experiments or E=M per experiment "
                        f"(default {' '.join(f'{e}={k}' for e, k in DEFAULT_M.items())})")
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--engine", default="profiled", choices=["profiled", "statsmodels"])
    p.add_argument("--methods", nargs="+", default=None, choices=list(METHODS))
    p.add_argument("--plots", action="store_true",
                   help="write the seed's figures (PNG) into --figures")
    p.add_argument("--figures", default="docs/figures", help="figure directory")
    p.add_argument("--markdown", default=None,
                   help="write the tables into this markdown file (between the results "
                        "markers if it has them)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    try:
        config = StudyConfig(m=_parse_m(a.m), iterations=a.iterations, seed=a.seed,
                             engine=a.engine,
                             methods=tuple(a.methods) if a.methods else available_methods())
        if a.reps is not None:
            info = run_study(a.out, experiments=a.experiments, reps=a.reps, jobs=a.jobs,
                             config=config, progress=not a.quiet)
            print(f"ran {info['done']} replications ({info['skipped']} already on disk) in "
                  f"{info['seconds']:.1f} s with {info['jobs']} process(es); mlimpute "
                  f"{__version__}; {_machine()}")
        rec = load_records(a.out)
        rec = rec[rec["experiment"].isin(a.experiments)]
        if rec.empty:
            print(f"no results in {a.out}/ (run with --reps)", file=sys.stderr)
            return 1
        summary = summarise(rec)
        single = None
        if (a.plots or a.markdown) and 3 in set(rec["experiment"]):
            single = single_data_set(3, config=stored_config(a.out, 3))
        checks = acceptance(summary, single)
        text = provenance(a.out, rec) + "\n\n" + to_markdown(
            summary, checks=checks, times=timings(rec))
        Path(a.out).mkdir(parents=True, exist_ok=True)
        summary.to_csv(Path(a.out) / "summary.csv", index=False)
        (Path(a.out) / "summary.md").write_text(text)
        print(text)
        if a.markdown:
            print(f"wrote {write_markdown(a.markdown, text)}")
        if a.plots:
            for path in make_figures(a.out, a.figures, single=single,
                                     experiments=a.experiments):
                print(f"wrote {path}")
    except SpecificationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
