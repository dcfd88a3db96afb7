"""``python -m mlimpute.simulation.compatible``: run (or resume) the compatible-imputation
study and write its tables.

Examples::

    python -m mlimpute.simulation.compatible --out results/compatible --reps 500 --jobs 2
    python -m mlimpute.simulation.compatible --out results/compatible --report-only
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlimpute.simulation.compatible.designs import DESIGNS
from mlimpute.simulation.compatible.report import load, summarise, to_markdown
from mlimpute.simulation.compatible.study import METHODS, CompatibleConfig, run_study


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run the missing replications, print the tables."""
    p = argparse.ArgumentParser(
        prog="python -m mlimpute.simulation.compatible",
        description="Simulation study of model-based against chained imputation.",
    )
    p.add_argument("--out", required=True, help="results directory (resumable)")
    p.add_argument("--designs", nargs="+", default=sorted(DESIGNS), choices=sorted(DESIGNS))
    p.add_argument("--reps", type=int, default=500, help="replications per design")
    p.add_argument("--jobs", type=int, default=1, help="worker processes")
    p.add_argument("--m", type=int, default=20, help="imputations per method")
    p.add_argument("--iterations", type=int, default=30)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--markdown", help="also write the tables to this file")
    p.add_argument("--report-only", action="store_true", help="only summarise the files")
    a = p.parse_args(argv)
    if not a.report_only:
        config = CompatibleConfig(m=a.m, iterations=a.iterations, methods=tuple(a.methods))
        info = run_study(a.out, designs=a.designs, reps=a.reps, jobs=a.jobs, config=config)
        print(f"{info['done']} replications run, {info['skipped']} found, {info['seconds']:.0f} s")
    table = load(a.out)
    text = to_markdown(summarise(table), table)
    print(text)
    if a.markdown:
        Path(a.markdown).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
