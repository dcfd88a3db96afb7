"""Seconds for imputation. A script, not a test.

    python benchmarks/bench_impute.py [--large]

Times are the best of several runs, in-process, after import and a warm-up run.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
import warnings

import numpy as np
import pandas as pd

import mlimpute
from mlimpute.datasets import IMPUTATION_FORMULAS, classroom


def scaled(n_rows: int, cluster_size: int = 20, seed: int = 1) -> pd.DataFrame:
    """Experiment-2-like data of ``n_rows`` rows in clusters of ``cluster_size``."""
    return classroom(
        2, n_classes=n_rows // cluster_size, class_size=cluster_size, rng=seed
    ).incomplete


def best_of(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    warnings.simplefilter("ignore")  # short benchmark runs trigger convergence warnings
    p = argparse.ArgumentParser()
    p.add_argument("--large", action="store_true", help="also 600,000 and 1,000,000 rows")
    args = p.parse_args()
    rows = []
    for exp, m in ((1, 5), (2, 5), (3, 25)):
        d = classroom(exp, rng=1)
        t = best_of(
            lambda d=d, m=m: d.incomplete.mi.impute(d.imputation, m=m, iterations=10, rng=1), 5
        )
        rows.append((f"experiment {exp} (m={m}, 10 it)", len(d.incomplete), t))
    sizes = [600, 6_000, 60_000] + ([600_000, 1_000_000] if args.large else [])
    for n in sizes:
        df = scaled(n)
        f = IMPUTATION_FORMULAS[2]
        t = best_of(
            lambda df=df, f=f: df.mi.impute(f, m=5, iterations=10, rng=1), 3 if n <= 60_000 else 1
        )
        tracemalloc.start()
        df.mi.impute(f, m=5, iterations=10, rng=1)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rows.append((f"N={n:,} (2 incomplete, m=5, 10 it)", n, t, peak / 2**20))
    print(f"mlimpute {mlimpute.__version__}, numpy {np.__version__}")
    for r in rows:
        mem = f"  peak {r[3]:7.1f} MiB" if len(r) > 3 else ""
        print(f"{r[0]:<45} {r[2]:8.3f} s{mem}")


if __name__ == "__main__":
    main()
