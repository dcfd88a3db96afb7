"""The performance suite: every case, its time, its memory, and the targets.

    python benchmarks/bench_suite.py [--large] [--repeat 5] [--max-load 0.3]
                                     [--json out.json] [--update-readme]

Cases (all in-process, after import and data generation, best of ``--repeat`` runs
after a warm-up run; the 600,000- and 1,000,000-row cases best of 2 without warm-up):

* classroom experiments 1-3 (the classroom example of Jacobusse, 2005; 600 rows;
  m = 5, 5, 25; 10 iterations);
* scaling: the experiment-2 design (two incomplete level-1 variables, ``cmean()`` terms,
  random intercepts) in clusters of 20 with N = 600, 6,000, 60,000 rows (and 600,000 and
  1,000,000 with ``--large``), m = 5, 10 iterations; the log-log slope of time on N;
* the wide case: 30,000 rows in 1,500 clusters of 20, 15 variables (8 numeric, 4 binary,
  3 complete covariates, one of them at level 2), 10 incomplete (7 numeric, 3 binary,
  about 20 % missing each, at random given ``c1``), default models
  (``df.mi.impute(cluster="cluster", m=5, iterations=20)``), serially and with
  ``n_jobs=2``;
* ``imp.fit()`` of ``grade ~ skill * gender + relation + (1 + gender | class)`` over
  m = 25 imputations of experiment 3 (rng=1, 20 iterations), with the default engine
  and with ``engine="statsmodels"``, each serially and with ``n_jobs=2``.

Memory per case: the peak of Python and numpy allocations during one run
(``tracemalloc``, the data excluded), and the peak resident set size of a fresh process
that imports mlimpute, builds the data and runs the case once (``ru_maxrss``; it includes
the interpreter and the imported libraries, about 200 MiB).

The machine may be shared: the script measures, for every timed run, the cores other
processes used meanwhile (machine-wide busy time from ``/proc/stat`` minus this
process' own CPU time), keeps only runs during which that stayed below ``--max-load``
(waiting for a quiet machine and repeating busier runs, for at most ``--wait`` seconds
per case) and reports it with each row.
``--update-readme`` writes the table into ``benchmarks/README.md`` between its markers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
import tracemalloc
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import mlimpute
from mlimpute.datasets import IMPUTATION_FORMULAS, classroom

FIT_FORMULA = "grade ~ skill * gender + relation + (1 + gender | class)"
README = Path(__file__).with_name("README.md")
BEGIN, END = "<!-- bench_suite:begin -->", "<!-- bench_suite:end -->"
SCALING = [600, 6_000, 60_000]
LARGE = [600_000, 1_000_000]


# ---------------------------------------------------------------- data


def scaled(n_rows: int, cluster_size: int = 20, seed: int = 1) -> pd.DataFrame:
    """Experiment-2 data of ``n_rows`` rows in clusters of ``cluster_size``."""
    return classroom(
        2, n_classes=n_rows // cluster_size, class_size=cluster_size, rng=seed
    ).incomplete


def wide(n_rows: int = 30_000, cluster_size: int = 20, seed: int = 1) -> pd.DataFrame:
    """15 variables in clusters of 20: ``c1`` (numeric), ``c2`` (binary), ``c3`` (level 2)
    complete; ``x1..x8`` numeric and ``b1..b4`` binary, correlated within and between
    clusters (ICC about 0.2), ``x1..x7`` and ``b1..b3`` about 20 % missing at random
    given ``c1``."""
    rng = np.random.default_rng(seed)
    n_clusters = n_rows // cluster_size
    g = np.repeat(np.arange(n_clusters), cluster_size)
    k = 12

    def correlation(scale: float) -> np.ndarray:
        a = rng.normal(size=(k, k))
        s = a @ a.T / k + np.eye(k)
        d = np.sqrt(np.diag(s))
        return scale * s / np.outer(d, d)

    c1 = rng.normal(size=n_rows)
    c2 = (rng.random(n_rows) < 0.5).astype(float)
    c3 = rng.normal(size=n_clusters)[g]
    latent = (
        rng.multivariate_normal(np.zeros(k), correlation(0.25), size=n_clusters)[g]
        + rng.multivariate_normal(np.zeros(k), correlation(1.0), size=n_rows)
        + np.outer(0.4 * c1 + 0.3 * c2 + 0.3 * c3, np.linspace(0.5, 1.0, k))
    )
    df = pd.DataFrame({"cluster": g, "c1": c1, "c2": c2, "c3": c3})
    for j in range(8):
        df[f"x{j + 1}"] = latent[:, j]
    for j in range(4):
        df[f"b{j + 1}"] = (latent[:, 8 + j] > 0).astype(float)
    p_missing = 1.0 / (1.0 + np.exp(1.5 - 0.5 * c1))  # about 0.2
    for v in [f"x{j}" for j in range(1, 8)] + ["b1", "b2", "b3"]:
        df.loc[rng.random(n_rows) < p_missing, v] = np.nan
    return df


# ---------------------------------------------------------------- cases


@dataclass
class Case:
    name: str
    rows: int
    m: int
    iterations: int
    target: float | None  # seconds
    setup: Callable[[], Any]  # -> state
    run: Callable[[Any], Any]
    large: bool = False
    note: str = ""
    result: dict = field(default_factory=dict)


def _experiment(exp: int, m: int) -> tuple[Callable, Callable]:
    def setup():
        return classroom(exp, rng=1)

    def run(d):
        return d.incomplete.mi.impute(d.imputation, m=m, iterations=10, rng=1)

    return setup, run


def _scaling(n: int) -> tuple[Callable, Callable]:
    def setup():
        return scaled(n)

    def run(df):
        return df.mi.impute(IMPUTATION_FORMULAS[2], m=5, iterations=10, rng=1)

    return setup, run


def _wide(n_jobs: int | None) -> tuple[Callable, Callable]:
    def run(df):
        return df.mi.impute(cluster="cluster", m=5, iterations=20, rng=1, n_jobs=n_jobs)

    return wide, run


def _fit(**kwargs) -> tuple[Callable, Callable]:
    def setup():
        d = classroom(3, rng=1)
        return d.incomplete.mi.impute(d.imputation, m=25, iterations=20, rng=1)

    def run(imp):
        return imp.fit(FIT_FORMULA, **kwargs)

    return setup, run


def cases(large: bool) -> list[Case]:
    out = [
        Case("experiment 1", 600, 5, 10, 0.03, *_experiment(1, 5)),
        Case("experiment 2", 600, 5, 10, 0.05, *_experiment(2, 5)),
        Case("experiment 3", 600, 25, 10, None, *_experiment(3, 25)),
    ]
    targets = {60_000: 0.5, 1_000_000: 15.0}
    for n in SCALING + (LARGE if large else []):
        out.append(
            Case(f"scaling N={n:,}", n, 5, 10, targets.get(n), *_scaling(n), large=n in LARGE)
        )
    out += [
        Case("wide (15 variables, 10 incomplete)", 30_000, 5, 20, 5.0, *_wide(None)),
        Case("wide, n_jobs=2", 30_000, 5, 20, 5.0, *_wide(2)),
        Case("fit, experiment 3 (m=25)", 600, 25, 20, 0.7, *_fit()),
        Case("fit, n_jobs=2", 600, 25, 20, None, *_fit(n_jobs=2)),
        Case("fit, engine='statsmodels'", 600, 25, 20, None, *_fit(engine="statsmodels")),
        Case(
            "fit, engine='statsmodels', n_jobs=2",
            600,
            25,
            20,
            None,
            *_fit(engine="statsmodels", n_jobs=2),
        ),
    ]
    return out


# ---------------------------------------------------------------- measuring


def _cpu() -> tuple[float, float]:
    """(seconds of CPU busy on the machine, seconds of CPU used by this process and its
    reaped children)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    busy = (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
    t = os.times()
    return busy, t.user + t.system + t.children_user + t.children_system


class LoadMeter:
    """Cores used by *other* processes while the block runs: machine-wide busy time minus
    this process' own CPU time, over the wall time (Linux; nan elsewhere)."""

    def __enter__(self):
        try:
            self._start = (*_cpu(), time.perf_counter())
        except OSError:
            self._start = None
        return self

    def __exit__(self, *exc):
        if self._start is None:
            self.load = float("nan")
            return
        busy, own, wall = (*_cpu(), time.perf_counter())
        b0, o0, w0 = self._start
        self.load = max(0.0, ((busy - b0) - (own - o0)) / max(wall - w0, 1e-9))


def other_load(interval: float = 1.0) -> float:
    """Cores busy with other processes over ``interval`` seconds while we sleep."""
    with LoadMeter() as meter:
        time.sleep(interval)
    return meter.load


def wait_for_quiet(max_load: float, wait: float) -> float:
    deadline = time.monotonic() + wait
    load = other_load()
    while load > max_load and time.monotonic() < deadline:
        time.sleep(4.0)
        load = other_load()
    return load


def best_of(
    fn: Callable[[], Any], repeat: int, warmup: bool, max_load: float, wait: float
) -> tuple[float, float, int]:
    """Best time of ``repeat`` runs during which other processes used fewer than
    ``max_load`` cores; a busier run is repeated (after waiting for quiet) until the
    ``wait`` budget is spent. Returns (seconds, other load during that run, busy runs
    discarded); if no run was quiet, the best of all, with its load."""
    if warmup:
        fn()
    quiet, busy = [], []
    deadline = time.monotonic() + wait
    while len(quiet) < repeat:
        with LoadMeter() as meter:
            t = time.perf_counter()
            fn()
            secs = time.perf_counter() - t
        (quiet if not meter.load > max_load else busy).append((secs, meter.load))
        if len(quiet) + len(busy) >= repeat and time.monotonic() > deadline:
            break
        if meter.load > max_load:
            wait_for_quiet(max_load, max(0.0, deadline - time.monotonic()))
    secs, load = min(quiet or busy)
    return secs, load, len(busy)


def traced_peak(fn: Callable[[], Any]) -> float:
    """MiB: peak of Python/numpy allocations during ``fn()``."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def child_rss(name: str, large: bool) -> float:
    """MiB: peak RSS of a fresh process running case ``name`` once."""
    cmd = [sys.executable, __file__, "--child", name] + (["--large"] if large else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["maxrss_mib"]


def run_child(name: str, large: bool) -> None:
    case = next(c for c in cases(large) if c.name == name)
    state = case.setup()
    case.run(state)
    print(json.dumps({"maxrss_mib": peak_rss_mib()}))


def peak_rss_mib() -> float:
    """This process' peak resident set size: ``VmHWM`` (``ru_maxrss`` is not reset by
    ``exec`` on Linux, so a child started from a big parent would report the parent's)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def slope(rows: list[int], secs: list[float]) -> float:
    """Least-squares slope of log(seconds) on log(rows)."""
    return float(np.polyfit(np.log(rows), np.log(secs), 1)[0])


# ---------------------------------------------------------------- output


def table(done: list[Case]) -> str:
    lines = [
        "| case | rows | m | it. | seconds | target | met | traced peak MiB | "
        "peak RSS MiB | other load |",
        "|---|---:|---:|---:|---:|---:|:-:|---:|---:|---:|",
    ]
    for c in done:
        r = c.result
        target = "" if c.target is None else f"{c.target:g}"
        met = "" if c.target is None else ("yes" if r["seconds"] <= c.target else "**no**")
        lines.append(
            f"| {c.name} | {c.rows:,} | {c.m} | {c.iterations} | {r['seconds']:.3f} | "
            f"{target} | {met} | {r['traced_mib']:.1f} | {r['rss_mib']:.0f} | "
            f"{r['load']:.2f} |"
        )
    return "\n".join(lines)


def scaling_lines(done: list[Case]) -> list[str]:
    sc = [c for c in done if c.name.startswith("scaling")]
    rows, secs = [c.rows for c in sc], [c.result["seconds"] for c in sc]
    out = [
        f"Fitted log-log slope of time on N: {slope(rows, secs):.2f} over N = "
        f"{rows[0]:,}-{rows[-1]:,}"
    ]
    big = [(n, s) for n, s in zip(rows, secs, strict=True) if n >= 6_000]
    if len(big) >= 2:
        out[0] += (
            f", {slope(*zip(*big, strict=True)):.2f} over N >= 6,000 "
            "(fixed costs dominate at 600 rows)"
        )
    out[0] += "."
    return out


def update_readme(text: str) -> None:
    old = README.read_text()
    if BEGIN not in old or END not in old:
        raise SystemExit(f"{README} has no {BEGIN} ... {END} markers")
    head, rest = old.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--large", action="store_true", help="also 600,000 and 1,000,000 rows")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--only", help="run the cases whose name contains this text")
    p.add_argument(
        "--max-load",
        type=float,
        default=0.3,
        help="wait until other processes use fewer cores than this",
    )
    p.add_argument(
        "--wait",
        type=float,
        default=300.0,
        help="seconds per case to wait for a quiet machine at most",
    )
    p.add_argument("--no-memory", action="store_true", help="skip the memory runs")
    p.add_argument("--json", help="write the results to this file")
    p.add_argument("--update-readme", action="store_true")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    warnings.simplefilter("ignore")  # short runs: convergence warnings; singular fits
    if args.child:
        run_child(args.child, args.large)
        return

    started = time.strftime("%Y-%m-%d %H:%M")
    done = []
    for case in cases(args.large):
        if args.only and args.only not in case.name:
            continue
        state = case.setup()
        wait_for_quiet(args.max_load, args.wait)
        repeat, warmup = (2, False) if case.large else (args.repeat, True)
        secs, load, discarded = best_of(
            lambda c=case, s=state: c.run(s), repeat, warmup, args.max_load, args.wait
        )
        traced = rss = float("nan")
        if not args.no_memory:
            traced = traced_peak(lambda c=case, s=state: c.run(s))
            rss = child_rss(case.name, args.large)
        case.result = {
            "seconds": secs,
            "traced_mib": traced,
            "rss_mib": rss,
            "load": load,
            "discarded": discarded,
            "loadavg": os.getloadavg()[0],
        }
        done.append(case)
        print(
            f"{case.name:<38} {secs:8.3f} s  traced {traced:8.1f} MiB  RSS {rss:6.0f} MiB"
            f"  other load {load:.2f} ({discarded} busy runs discarded)",
            flush=True,
        )

    cpu = platform.processor() or platform.machine()
    command = " ".join(["python benchmarks/bench_suite.py", *sys.argv[1:]])
    header = (
        f"mlimpute {mlimpute.__version__}, Python {platform.python_version()}, numpy "
        f"{np.__version__}, {os.cpu_count()} cores ({cpu}); {started}; `{command}`"
    )
    text = "\n".join(
        [header, "", table(done), ""]
        + (scaling_lines(done) if any(c.name.startswith("scaling") for c in done) else [])
    )
    print("\n" + text)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "header": header,
                    "cases": [
                        {
                            "name": c.name,
                            "rows": c.rows,
                            "m": c.m,
                            "iterations": c.iterations,
                            "target": c.target,
                            **c.result,
                        }
                        for c in done
                    ],
                },
                indent=1,
            )
        )
    if args.update_readme:
        update_readme(text)


if __name__ == "__main__":
    main()
