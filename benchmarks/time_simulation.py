"""Time the classroom simulation study from a sample of its replications.

    OPENBLAS_NUM_THREADS=1 python benchmarks/time_simulation.py [--reps 100 | --full]
                                                                [--out DIR]

A script, not a test: nothing is asserted. Runs replications 0..N-1 of each classroom
experiment (``mlimpute.simulation.run_study``, its default settings: m = 5, 5, 25,
20 iterations, every method) in this one process, one experiment after the other, and
reports per experiment the CPU and wall seconds per replication (``--full``: the whole
study, no scaling). From those it scales to the published study (200 replications of
experiments 1 and 2, 1,000 of experiment 3) and compares with the time recorded in
``docs/simulation.md`` (1,400 replications in 2,205 s of wall time with 2 processes).
The estimate for 2 processes is the CPU total over 2 (replications are independent, so
two processes share them evenly); the machine may be shared, which is why the CPU
seconds are the figure to read.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from mlimpute.simulation.study import run_study

#: replications of the published study, per experiment
STUDY = {1: 200, 2: 200, 3: 1000}
#: its recorded wall time with 2 processes (docs/simulation.md), seconds
RECORDED_SECONDS = 2205.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=100, help="replications per experiment")
    p.add_argument("--full", action="store_true", help="run the whole study (200, 200, 1000)")
    p.add_argument("--out", default=None, help="keep the replication files here")
    a = p.parse_args()
    print(
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
        f"{os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC"
    )
    per = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = a.out or tmp
        for e in STUDY:
            n = STUDY[e] if a.full else a.reps
            c0, w0 = time.process_time(), time.perf_counter()
            run_study(out, experiments=[e], reps=n, jobs=1, progress=False)
            cpu, wall = time.process_time() - c0, time.perf_counter() - w0
            per[e] = (cpu / n, wall / n)
            print(
                f"experiment {e}: {n} replications, CPU {cpu:.1f} s, wall {wall:.1f} s "
                f"({cpu / n:.3f} / {wall / n:.3f} s per replication)",
                flush=True,
            )
    cpu_total = sum(per[e][0] * n for e, n in STUDY.items())
    wall_one = sum(per[e][1] * n for e, n in STUDY.items())
    two = cpu_total / 2
    print(
        f"{'whole study' if a.full else 'scaled to'} "
        f"{', '.join(f'{n} of experiment {e}' for e, n in STUDY.items())}: "
        f"CPU {cpu_total:.0f} s; one process {wall_one:.0f} s of wall time (as measured, "
        f"load included); two processes about {two:.0f} s ({two / 60:.1f} min)"
    )
    print(
        f"recorded: {RECORDED_SECONDS:.0f} s ({RECORDED_SECONDS / 60:.1f} min) with 2 "
        f"processes; target half of it, {RECORDED_SECONDS / 2:.0f} s; estimate / recorded "
        f"= {two / RECORDED_SECONDS:.2f} ({RECORDED_SECONDS / two:.2f}x faster)"
    )


if __name__ == "__main__":
    main()
