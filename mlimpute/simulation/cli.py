"""Command line of the simulation study: ``python -m mlimpute.simulation --help``.

Runs (or resumes) the replications, then writes the summary, the markdown tables and
the figures; :func:`mlimpute.simulation.main` calls :func:`main` here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from mlimpute._version import __version__
from mlimpute.errors import SpecificationError
from mlimpute.simulation.acceptance import acceptance, single_data_set
from mlimpute.simulation.design import DEFAULT_M, DEFAULT_SEED, METHODS
from mlimpute.simulation.markdown import provenance, to_markdown, write_markdown
from mlimpute.simulation.plots import make_figures
from mlimpute.simulation.results import load_records, stored_config, summarise, timings
from mlimpute.simulation.study import StudyConfig, _machine, available_methods, run_study


def _parse_per_experiment(
    values: Sequence[str] | None, default: dict[int, int], option: str
) -> dict[int, int]:
    """``["5", "3=25"]`` -> {1: 5, 2: 5, 3: 25}: a bare number for all, ``E=N`` for one."""
    out = dict(default)
    for v in values or ():
        try:
            if "=" in v:
                e, k = v.split("=", 1)
                out[int(e)] = int(k)
            else:
                out = dict.fromkeys(out, int(v))
        except ValueError:
            raise SpecificationError(
                f"{option} takes N or E=N (E an experiment, N a whole number), got {v!r}"
            ) from None
    return out


def _parse_m(values: Sequence[str] | None) -> dict[int, int]:
    return _parse_per_experiment(values, DEFAULT_M, "--m")


def _run(a, config: StudyConfig) -> None:
    """Run the missing replications, experiments with the same ``--reps`` together."""
    reps = _parse_per_experiment(a.reps, dict.fromkeys((1, 2, 3), 200), "--reps")
    groups: dict[int, list[int]] = {}
    for e in a.experiments:
        groups.setdefault(reps[e], []).append(e)
    done = skipped = 0
    seconds = 0.0
    for n, experiments in groups.items():
        info = run_study(
            a.out, experiments=experiments, reps=n, jobs=a.jobs, config=config, progress=not a.quiet
        )
        done, skipped = done + info["done"], skipped + info["skipped"]
        seconds += info["seconds"]
    print(
        f"ran {done} replications ({skipped} already on disk) in {seconds:.1f} s with "
        f"{a.jobs} process(es); mlimpute {__version__}; {_machine()}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m mlimpute.simulation --help``."""
    p = argparse.ArgumentParser(
        prog="python -m mlimpute.simulation",
        description="The classroom experiments of Jacobusse (2005) as a simulation study "
        "(resumable).",
    )
    p.add_argument("--experiments", type=int, nargs="+", default=[1, 2, 3], choices=[1, 2, 3])
    p.add_argument(
        "--reps",
        nargs="+",
        metavar="[E=]N",
        default=None,
        help="replications to have on disk (the missing ones are run): one number for "
        "all experiments or E=N per experiment (e.g. --reps 200 3=1000); without it "
        "nothing is run, only summarised/plotted",
    )
    p.add_argument("--jobs", type=int, default=1, help="worker processes")
    p.add_argument("--out", default="results", help="results directory (default results/)")
    p.add_argument(
        "--m",
        nargs="+",
        metavar="[E=]M",
        help="imputations: one number for all experiments or E=M per experiment "
        f"(default {' '.join(f'{e}={k}' for e, k in DEFAULT_M.items())})",
    )
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--engine", default="profiled", choices=["profiled", "statsmodels"])
    p.add_argument("--methods", nargs="+", default=None, choices=list(METHODS))
    p.add_argument(
        "--missingness",
        default="classroom",
        choices=["classroom", "ampute"],
        help="how values are deleted: 'classroom' (the stored study results) or 'ampute' "
        "(the same mechanisms through mlimpute.ampute; other random numbers)",
    )
    p.add_argument("--plots", action="store_true", help="write the figures (PNG) into --figures")
    p.add_argument("--figures", default="docs/figures", help="figure directory")
    p.add_argument(
        "--markdown",
        default=None,
        help="write the tables into this markdown file (between the results "
        "markers if it has them)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    try:
        config = StudyConfig(
            m=_parse_m(a.m),
            iterations=a.iterations,
            seed=a.seed,
            engine=a.engine,
            methods=tuple(a.methods) if a.methods else available_methods(),
            missingness=a.missingness,
        )
        if a.reps is not None:
            _run(a, config)
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
        text = (
            provenance(a.out, rec)
            + "\n\n"
            + to_markdown(summary, checks=checks, times=timings(rec))
        )
        Path(a.out).mkdir(parents=True, exist_ok=True)
        summary.to_csv(Path(a.out) / "summary.csv", index=False)
        (Path(a.out) / "summary.md").write_text(text)
        print(text)
        if a.markdown:
            print(f"wrote {write_markdown(a.markdown, text)}")
        if a.plots:
            for path in make_figures(a.out, a.figures, single=single, experiments=a.experiments):
                print(f"wrote {path}")
    except SpecificationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
