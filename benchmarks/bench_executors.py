"""Seconds to run the chains serially, in a 2-process pool and on 2 dask workers.

    python benchmarks/bench_executors.py [--repeat 3]

(a) experiment 3 (600 rows, 1 incomplete variable with a random slope), m = 25;
(b) 60,000 rows in 3,000 classes (experiment 2 design, 2 incomplete variables), m = 10;
both 20 iterations. Times cover :func:`mlimpute.sampler.executors.map_chains` on a built plan,
pool start-up included (a pool lives for one call); "cold" is the first call of the
run (the forkserver imports mlimpute once), the others the best of ``--repeat`` runs.
The dask cluster (``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)``) is
started once, outside the timings; its start-up is printed. Every run is checked to be
bit-identical to the serial one.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import mlimpute
import mlimpute.parallel as par
import mlimpute.sampler.executors as ex
from mlimpute.datasets import IMPUTATION_FORMULAS, classroom
from mlimpute.rng import chain_seeds
from mlimpute.sampler.engine import build_plan
from mlimpute.spec.build import build_spec

ONE_CHAIN_PER_TASK = 10**9  # TASKS_PER_WORKER large enough for m tasks


def problems():
    d3 = classroom(3, rng=1)
    big = classroom(2, n_classes=3000, class_size=20, rng=1).incomplete
    return [
        ("exp 3, 600 rows, m=25", d3.incomplete, d3.imputation, 25),
        ("60,000 rows, m=10", big, IMPUTATION_FORMULAS[2], 10),
    ]


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def best(fn, repeat: int) -> float:
    return min(timed(fn)[0] for _ in range(repeat))


def same(a, b) -> bool:
    return all(
        all(np.array_equal(x.imputed[n], y.imputed[n]) for n in x.imputed)
        and np.array_equal(x.mean, y.mean)
        for x, y in zip(a, b, strict=True)
    )


def run_one(plan, seeds, reference, repeat, **kw):
    tasks = kw.pop("tasks_per_worker", par.TASKS_PER_WORKER)
    saved, par.TASKS_PER_WORKER = par.TASKS_PER_WORKER, tasks
    try:
        cold, out = timed(lambda: ex.map_chains(plan, seeds, **kw))
        assert same(out, reference), f"results differ from serial with {kw}"
        return cold, best(lambda: ex.map_chains(plan, seeds, **kw), repeat)
    finally:
        par.TASKS_PER_WORKER = saved


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    load0 = os.getloadavg()[0]
    cases = []
    for label, df, formulas, m in problems():
        spec = build_spec(df, formulas, m=m, iterations=20)
        t_plan, plan = timed(lambda df=df, spec=spec: build_plan(df.copy(), spec))
        seeds = chain_seeds(1, m)[0]
        reference = ex.map_chains(plan, seeds)
        cases.append((label, plan, seeds, reference, t_plan))

    rows: dict[str, list] = {}
    for _label, plan, seeds, reference, _ in cases:  # process pools before any dask thread
        rows.setdefault("serial", []).append(
            (None, best(lambda p=plan, s=seeds: ex.map_chains(p, s), args.repeat))
        )
        rows.setdefault("n_jobs=2, fork", []).append(
            run_one(plan, seeds, reference, args.repeat, n_jobs=2, start_method="fork")
        )
        rows.setdefault("n_jobs=2, fork, 1 chain/task", []).append(
            run_one(
                plan,
                seeds,
                reference,
                args.repeat,
                n_jobs=2,
                start_method="fork",
                tasks_per_worker=ONE_CHAIN_PER_TASK,
            )
        )
        rows.setdefault("n_jobs=2, forkserver", []).append(
            run_one(plan, seeds, reference, args.repeat, n_jobs=2, start_method="forkserver")
        )
        rows.setdefault("n_jobs=2, spawn", []).append(
            run_one(plan, seeds, reference, 1, n_jobs=2, start_method="spawn")
        )

    import dask
    from distributed import Client, LocalCluster

    t_cluster = []
    for tuned in (False, True):
        # dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which also turns
        # off glibc's dynamic mmap threshold: every temporary above 128 kB (a column at
        # 60,000 rows is 480 kB) is then mmap'ed, page-faulted and unmapped anew, which
        # made a chain 2.5x slower. "tuned" raises both thresholds.
        env = {"MALLOC_TRIM_THRESHOLD_": 2**27, "MALLOC_MMAP_THRESHOLD_": 2**25} if tuned else {}
        name = "dask 2 workers" + (", malloc tuned" if tuned else "")
        with dask.config.set(
            {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in env.items()}
        ):
            t = time.perf_counter()
            with (
                LocalCluster(
                    n_workers=2,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",
                    silence_logs=40,
                ) as cluster,
                Client(cluster) as c,
            ):
                t_cluster.append(time.perf_counter() - t)
                for _label, plan, seeds, reference, _ in cases:
                    rows.setdefault(name, []).append(
                        run_one(plan, seeds, reference, args.repeat, client=c)
                    )
                    if not tuned:
                        rows.setdefault(name + ", 1 chain/task", []).append(
                            run_one(
                                plan,
                                seeds,
                                reference,
                                args.repeat,
                                client=c,
                                tasks_per_worker=ONE_CHAIN_PER_TASK,
                            )
                        )

    print(
        f"mlimpute {mlimpute.__version__}, numpy {np.__version__}, "
        f"{par.usable_cores()} cores; 20 iterations; seconds (cold / best of {args.repeat})"
    )
    head = f"{'executor':32s}" + "".join(f"{c[0]:>26s}" for c in cases)
    print(head)
    print("-" * len(head))
    print(f"{'build_plan':32s}" + "".join(f"{c[4]:26.3f}" for c in cases))
    for name, vals in rows.items():
        cells = []
        for cold, warm in vals:
            s = f"{warm:.3f}" if cold is None else f"{cold:.3f} / {warm:.3f}"
            cells.append(f"{s:>26s}")
        print(f"{name:32s}" + "".join(cells))
    print(
        f"(dask LocalCluster start-up {min(t_cluster):.2f} s, not included; "
        f"blocks: {par.TASKS_PER_WORKER} tasks per worker unless '1 chain/task'; "
        f"load average {load0:.1f} before, {os.getloadavg()[0]:.1f} after)"
    )


if __name__ == "__main__":
    main()
