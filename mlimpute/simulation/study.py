"""The runner of the simulation study: one replication, and the whole study in parallel.

:class:`StudyConfig` holds the settings; :func:`run_replication` generates, deletes,
imputes and analyses one replication; :func:`run_study` runs (or resumes) many, one JSON
file each, on :func:`mlimpute.parallel.map_blocks` (``jobs`` worker processes). See
:mod:`mlimpute.simulation` for the study itself.
"""

from __future__ import annotations

import inspect
import json
import os
import platform
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlimpute import _numba
from mlimpute._version import __version__
from mlimpute.ampute import ampute
from mlimpute.analysis import from_completed
from mlimpute.datasets import ANALYSIS_FORMULAS, IMPUTATION_FORMULAS, classroom
from mlimpute.errors import ConvergenceWarning, SpecificationError
from mlimpute.impute import impute
from mlimpute.parallel import map_blocks
from mlimpute.simulation.design import (
    _CLUSTER,
    DEFAULT_M,
    DEFAULT_SEED,
    METHODS,
    TRUE_MEANS,
    _means,
    _row,
    replication_seeds,
    single_level_formulas,
)
from mlimpute.spec.formula import parse_formula

__all__ = [
    "StudyConfig",
    "ampute_classroom",
    "available_methods",
    "replication_data",
    "run_replication",
    "run_study",
]


def available_methods() -> tuple[str, ...]:
    """The methods this installation can run.

    ``defaults`` needs :func:`mlimpute.impute` to build formulas itself from
    ``cluster=``; it is included as soon as ``impute`` takes that
    keyword.

    Returns
    -------
    tuple of str
        A subsequence of :data:`METHODS`.
    """
    has_cluster = "cluster" in inspect.signature(impute).parameters
    return tuple(m for m in METHODS if m != "defaults" or has_cluster)


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
        Size of each generated data set (Jacobusse (2005): 30 classes of 20 children).
    seed : int
        Root seed; replication ``r`` of experiment ``e`` uses ``SeedSequence([seed, e, r])``.
    engine : {"profiled", "statsmodels"}
        Mixed-model fitter of :meth:`MultiplyImputed.fit`.
    methods : tuple of str
        Methods to run (default :func:`available_methods`).
    missingness : {"classroom", "ampute"}
        How the values are deleted. ``"classroom"`` (the default, and the stored study
        results): the deletion of :func:`mlimpute.datasets.classroom`, exactly 40 % of
        ``grade`` completely at random (experiments 1 and 3), and in experiment 2
        ``relation`` and ``grade`` each missing with probability .6 for boys and .2 for
        girls. ``"ampute"``: the same mechanisms through :func:`mlimpute.ampute` (see
        :func:`ampute_classroom`): a 40 % *expected* share (binomial, not exact) and, in
        experiment 2, a logistic model on gender with the intercept solved for a 40 %
        expected share. Other random numbers, so other results than the stored ones; the
        setting is recorded in the replication files only when not the default.
    """

    m: Mapping[int, int] = field(default_factory=lambda: dict(DEFAULT_M))
    iterations: int = 20
    n_classes: int = 30
    class_size: int = 20
    seed: int = DEFAULT_SEED
    engine: str = "profiled"
    methods: tuple[str, ...] = field(default_factory=available_methods)
    missingness: str = "classroom"

    def __post_init__(self):
        if self.missingness not in MISSINGNESS:
            raise SpecificationError(
                f"missingness must be one of {list(MISSINGNESS)}, got {self.missingness!r}"
            )
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
        out = {
            "m": self.m_for(experiment),
            "iterations": int(self.iterations),
            "n_classes": int(self.n_classes),
            "class_size": int(self.class_size),
            "seed": int(self.seed),
            "engine": self.engine,
            "methods": list(self.methods),
        }
        if self.missingness != "classroom":  # files of the default keep their settings
            out["missingness"] = self.missingness
        return out


#: how a study deletes values (:attr:`StudyConfig.missingness`)
MISSINGNESS = ("classroom", "ampute")

#: the spawn-key entry of the amputation's generator, a child of the data seed that
#: ``spawn()`` never reaches (the data themselves are those of the default study)
_AMPUTE_KEY = 2**32 - 2


def ampute_classroom(data, seed: np.random.SeedSequence):
    """``data`` (a :class:`~mlimpute.datasets.Classroom`) with its values deleted again by
    :func:`mlimpute.ampute`, with the mechanisms of Jacobusse (2005).

    Experiments 1 and 3: 40 % of ``grade`` MCAR. Experiment 2: ``relation`` and ``grade``,
    independently, MAR on ``gender`` with ``strength = (logit .2 − logit .6) / 2`` per SD of
    gender: with half the children girls (gender standardised to ±1), the probability is
    .6 for boys and .2 for girls, and the intercept is solved for a 40 % expected share.

    Parameters
    ----------
    data : Classroom
    seed : numpy.random.SeedSequence
        The replication's data seed; the amputation uses a child of it of its own.

    Returns
    -------
    Classroom
        ``data`` with another ``incomplete``.

    Examples
    --------
    >>> from mlimpute.datasets import classroom
    >>> s = np.random.SeedSequence(1)
    >>> d = ampute_classroom(classroom(1, rng=1), s)
    >>> round(float(d.incomplete["grade"].isna().mean()), 1)
    0.4
    """
    g = np.random.default_rng(
        np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, _AMPUTE_KEY))
    )
    if data.experiment == 2:
        logit = np.log(0.2 / 0.8) - np.log(0.6 / 0.4)
        incomplete = ampute(
            data.complete,
            _CLUSTER,
            {"relation": 0.4, "grade": 0.4},
            mechanism="MAR",
            depends_on=["gender"],
            strength=logit / 2,
            rng=g,
        )
    else:
        incomplete = ampute(data.complete, _CLUSTER, {"grade": 0.4}, rng=g)
    return replace(data, incomplete=incomplete)


def replication_data(
    experiment: int, config: StudyConfig, seeds: Mapping[str, np.random.SeedSequence]
):
    """The complete and incomplete data of one replication: generated by
    :func:`~mlimpute.datasets.classroom` from ``seeds["data"]``, with the values deleted as
    ``config.missingness`` says (classroom()'s own deletion, or :func:`ampute_classroom`).

    Parameters
    ----------
    experiment : {1, 2, 3}
    config : StudyConfig
    seeds : dict
        The replication's seeds (:func:`~mlimpute.simulation.design.replication_seeds`).

    Returns
    -------
    Classroom

    Examples
    --------
    >>> from mlimpute.simulation.design import replication_seeds
    >>> seeds = replication_seeds(1, 0, StudyConfig().seed)
    >>> a = replication_data(1, StudyConfig(), seeds).incomplete
    >>> b = replication_data(1, StudyConfig(missingness="ampute"), seeds).incomplete
    >>> a["grade"].isna().equals(b["grade"].isna())
    False
    """
    data = classroom(
        experiment,
        n_classes=config.n_classes,
        class_size=config.class_size,
        rng=np.random.default_rng(seeds["data"]),
    )
    if config.missingness == "ampute":
        data = ampute_classroom(data, seeds["data"])
    return data


# --------------------------------------------------------------------------------------
# one replication


def _analyse(source, formula: str, engine: str) -> tuple[dict, Any]:
    res = source.fit(formula, engine=engine)
    params = {name: _row(row, "fixed") for name, row in res.summary().iterrows()}
    vc = res.variance_components()
    for name, row in vc.iterrows():
        if not str(name).startswith("ICC"):
            params[str(name)] = {
                "kind": "variance",
                "estimate": float(row["estimate"]),
                "between_sd": float(row["between_sd"]),
            }
    return params, res


def _run_method(
    method: str,
    data,
    experiment: int,
    config: StudyConfig,
    seeds: Mapping[str, np.random.SeedSequence],
) -> dict[str, Any]:
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
                    imp = impute(
                        data.incomplete,
                        cluster=_CLUSTER,
                        m=m,
                        iterations=config.iterations,
                        rng=rng,
                    )
                else:
                    forms = IMPUTATION_FORMULAS[experiment]
                    kwargs: dict[str, Any] = {}
                    if method == "single_level":
                        forms = single_level_formulas(forms)
                        kwargs["method"] = {v: "norm" for v in forms}
                    imp = impute(
                        data.incomplete, forms, m=m, iterations=config.iterations, rng=rng, **kwargs
                    )
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
    record["convergence_warning"] = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    record["warnings"] = sorted({str(w.message)[:300] for w in caught})
    return record


def run_replication(
    experiment: int, replication: int, config: StudyConfig | None = None
) -> dict[str, Any]:
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
    data = replication_data(experiment, config, seeds)
    results = {
        method: _run_method(method, data, experiment, config, seeds) for method in config.methods
    }
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


def _run_block(shared: tuple[StudyConfig, str, float], block: list[tuple[int, int]]) -> list[str]:
    """Replications ``block`` (pairs ``(experiment, replication)``), each written to its
    file; runs in a worker process too. Returns the paths."""
    config, out_dir, work = shared
    _numba.prefer(work)  # a long study: the compiled step, where installed (same numbers)
    out = []
    for experiment, replication in block:
        record = run_replication(experiment, replication, config)
        path = _path(Path(out_dir), experiment, replication)
        _write(path, record)
        out.append(str(path))
    return out


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
        Worker processes (``1``: run in this process), through
        :func:`mlimpute.parallel.map_blocks`; BLAS is pinned to one thread in every
        process, so the files do not depend on ``jobs``.
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

    def advance(n_done: int) -> None:
        bar.update(n_done - bar.n)

    try:
        # one replication per task: their costs differ (experiment 3 is slow)
        # rows x iterations x chains of the whole study: whether loading numba repays
        work = sum(600 * config.iterations * config.m_for(e) for e, _ in todo)
        map_blocks(
            _run_block,
            (config, str(out), work),
            todo,
            n_jobs=int(jobs) if jobs > 1 else None,
            progress=advance,
            block_size=1,
            name="mlimpute-replications",
        )
    finally:
        bar.close()
    info = {
        "done": len(todo),
        "skipped": skipped,
        "seconds": time.perf_counter() - t0,
        "jobs": int(jobs),
    }
    if todo:
        out.mkdir(parents=True, exist_ok=True)
        log = {
            **info,
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "version": __version__,
            "experiments": sorted({e for e, _ in todo}),
            "reps": int(reps),
            "machine": _machine(),
        }
        with open(out / "runs.jsonl", "a") as fh:
            fh.write(json.dumps(log) + "\n")
    return info


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, numpy {np.__version__}, "
        f"pandas {pd.__version__}"
    )
