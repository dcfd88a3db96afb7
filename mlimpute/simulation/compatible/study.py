"""Runner of the compatible-imputation study: one replication, and many, resumable.

Each replication draws one data set of a design (:mod:`.designs`) and analyses it five
ways: the complete data (the benchmark), model-based imputation (``model=``), chained
imputation with the best hand-written formulas, chained imputation with the defaults
(``cluster="g"``) and complete cases. One JSON file per replication under
``<out>/design<d>/replication<r>.json``; a rerun skips the files that exist and refuses
files made with other settings.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlimpute._version import __version__
from mlimpute.analysis import from_completed
from mlimpute.errors import ConvergenceWarning, SpecificationError
from mlimpute.impute import impute
from mlimpute.parallel import map_blocks
from mlimpute.simulation.compatible.designs import DESIGNS, Design
from mlimpute.simulation.study import _machine, _write
from mlimpute.spec.formula import parse_formula

__all__ = ["METHODS", "CompatibleConfig", "run_replication", "run_study"]

#: The ways each data set is analysed, in table order.
METHODS = ("complete", "model", "chained", "defaults", "complete_cases")


@dataclass(frozen=True)
class CompatibleConfig:
    """Settings of the study; every replication file records them.

    Attributes
    ----------
    m : int
        Imputations per method.
    iterations : int
        Iterations of every chain (model-based and chained alike).
    seed : int
        Root: replication ``r`` of design ``d`` uses ``SeedSequence([seed, k, r])`` with
        ``k`` the design's position (a = 0 … d = 3).
    methods : tuple of str
    """

    m: int = 20
    iterations: int = 30
    seed: int = 2026
    methods: tuple[str, ...] = METHODS

    def __post_init__(self):
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise SpecificationError(f"unknown methods {unknown}; known: {list(METHODS)}")
        if self.m < 2 or self.iterations < 1:
            raise SpecificationError(
                f"m must be at least 2 and iterations positive, got {self.m}, {self.iterations}"
            )
        object.__setattr__(self, "methods", tuple(self.methods))

    def settings(self) -> dict[str, Any]:
        """JSON-ready settings (a stored file must match them)."""
        return {**asdict(self), "methods": list(self.methods)}


def _seeds(design: str, replication: int, seed: int) -> dict[str, np.random.SeedSequence]:
    k = sorted(DESIGNS).index(design)
    children = np.random.SeedSequence([seed, k, replication]).spawn(1 + len(METHODS))
    return {"data": children[0], **dict(zip(METHODS, children[1:], strict=True))}


def _params(res, design: Design) -> dict[str, dict[str, float]]:
    """Pooled estimates with SE and CI of every parameter with a known truth."""
    out: dict[str, dict[str, float]] = {}
    tables = (("fixed", res.summary()), ("variance", res.variance_components()))
    for kind, table in tables:
        for name, row in table.iterrows():
            key = design.aliases.get(str(name), str(name))
            if key in design.truth:
                out[key] = {
                    "kind": kind,
                    **{k: float(row[k]) for k in ("estimate", "se", "ci_low", "ci_high")},
                }
    return out


def _source(method: str, design: Design, complete, incomplete, config, seed):
    """What the analysis is fitted to, and the formula it uses."""
    rng = np.random.default_rng(seed)
    common = {"m": config.m, "iterations": config.iterations, "rng": rng}
    if method == "complete":
        return from_completed([complete] * 2), design.analysis
    if method == "complete_cases":
        used = sorted(parse_formula(design.analysis).variables)
        return from_completed([incomplete.dropna(subset=used)] * 2), design.analysis
    if method == "model":
        return impute(incomplete, model=design.model, **common), None
    if method == "chained":
        return impute(incomplete, dict(design.chained), **common), design.analysis
    return impute(incomplete, cluster="g", **common), design.analysis


def _run_method(method, design, complete, incomplete, config, seed) -> dict[str, Any]:
    record: dict[str, Any] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            t0 = time.perf_counter()
            source, formula = _source(method, design, complete, incomplete, config, seed)
            t1 = time.perf_counter()
            # lmean(x) analysed as plausible values, as the published tables were made
            # (their "ML analysis" rows: benchmarks/lmean_ml_study.py)
            res = source.fit(formula, latent="plausible")
            record["seconds"] = {"impute": t1 - t0, "fit": time.perf_counter() - t1}
            record["params"] = _params(res, design)
        except Exception as exc:  # recorded and reported by the summary, never hidden
            record["error"] = f"{type(exc).__name__}: {exc}"
    record["convergence_warning"] = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    record["warnings"] = sorted({str(w.message)[:300] for w in caught})
    return record


def run_replication(
    design: str, replication: int, config: CompatibleConfig | None = None
) -> dict[str, Any]:
    """Generate, delete, impute and analyse one replication of one design.

    Parameters
    ----------
    design : {"a", "b", "c", "d"}
    replication : int
    config : CompatibleConfig, optional

    Returns
    -------
    dict
        JSON-ready: ``design``, ``replication``, ``settings``, ``version``, ``truth``,
        ``seconds`` and ``results``: per method ``params`` (per parameter ``kind``,
        ``estimate``, ``se``, ``ci_low``, ``ci_high``) and ``seconds``, or ``error``.

    Examples
    --------
    >>> cfg = CompatibleConfig(m=2, iterations=2, methods=("complete", "model"))
    >>> rec = run_replication("a", 0, cfg)
    >>> sorted(rec["results"]), rec["truth"]["x"]
    (['complete', 'model'], 0.5)
    """
    config = config or CompatibleConfig()
    if design not in DESIGNS:
        raise SpecificationError(f"design must be one of {sorted(DESIGNS)}, got {design!r}")
    d = DESIGNS[design]
    seeds = _seeds(design, replication, config.seed)
    t0 = time.perf_counter()
    complete, incomplete = d.generate(np.random.default_rng(seeds["data"]))
    results = {
        method: _run_method(method, d, complete, incomplete, config, seeds[method])
        for method in config.methods
    }
    return {
        "design": design,
        "replication": int(replication),
        "settings": config.settings(),
        "version": __version__,
        "truth": dict(d.truth),
        "seconds": time.perf_counter() - t0,
        "results": results,
    }


def _path(out: Path, design: str, replication: int) -> Path:
    return out / f"design{design}" / f"replication{replication:04d}.json"


def _run_block(shared: tuple[CompatibleConfig, str], block: list[tuple[str, int]]) -> list[str]:
    config, out = shared
    paths = []
    for design, replication in block:
        path = _path(Path(out), design, replication)
        _write(path, run_replication(design, replication, config))
        paths.append(str(path))
    return paths


def run_study(
    out_dir,
    *,
    designs: Sequence[str] = ("a", "b", "c", "d"),
    reps: int | Mapping[str, int] = 500,
    jobs: int = 1,
    config: CompatibleConfig | None = None,
) -> dict[str, Any]:
    """Run (or resume) replications ``0 .. reps - 1`` of each design, one file each.

    Parameters
    ----------
    out_dir : path
    designs : sequence of str
    reps : int or dict
        Replications per design (a dict gives them per design).
    jobs : int
        Worker processes (through :func:`mlimpute.parallel.map_blocks`; the files do not
        depend on it).
    config : CompatibleConfig, optional

    Returns
    -------
    dict
        ``done``, ``skipped``, ``seconds`` and ``jobs``; a call that ran something also
        appends this to ``<out_dir>/runs.jsonl``.

    Examples
    --------
    >>> import tempfile
    >>> cfg = CompatibleConfig(m=2, iterations=2, methods=("complete",))
    >>> with tempfile.TemporaryDirectory() as out:
    ...     first = run_study(out, designs=["c"], reps=2, config=cfg)
    ...     again = run_study(out, designs=["c"], reps=2, config=cfg)
    >>> first["done"], again["skipped"]
    (2, 2)
    """
    config = config or CompatibleConfig()
    out = Path(out_dir)
    per = reps if isinstance(reps, Mapping) else dict.fromkeys(designs, int(reps))
    todo, skipped = [], 0
    for d in designs:
        if d not in DESIGNS:
            raise SpecificationError(f"unknown design {d!r}; known: {sorted(DESIGNS)}")
        for r in range(int(per.get(d, 0))):
            path = _path(out, d, r)
            if not path.exists():
                todo.append((d, r))
                continue
            stored = json.loads(path.read_text()).get("settings")
            if stored != config.settings():
                raise SpecificationError(
                    f"{path} was made with settings {stored}, not {config.settings()}: use "
                    "another output directory or delete it."
                )
            skipped += 1
    t0 = time.perf_counter()
    map_blocks(
        _run_block,
        (config, str(out)),
        todo,
        n_jobs=int(jobs) if jobs > 1 else None,
        block_size=1,
        name="mlimpute-compatible-study",
    )
    info = {"done": len(todo), "skipped": skipped, "seconds": time.perf_counter() - t0}
    info["jobs"] = int(jobs)
    if todo:
        log = {**info, "date": time.strftime("%Y-%m-%d %H:%M:%S"), "version": __version__}
        log["designs"] = sorted({d for d, _ in todo})
        log["machine"] = _machine()
        with open(out / "runs.jsonl", "a") as fh:
            fh.write(json.dumps(log) + "\n")
    return info
