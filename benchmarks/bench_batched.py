"""Chains stepped together (``batch=``) against chain by chain: CPU time per Gibbs step.

A script, not a test: nothing is asserted except that the imputations are identical.
Times are CPU seconds (``time.process_time``) with BLAS at one thread (set
``OPENBLAS_NUM_THREADS=1`` before running; the machine is shared and wall time is noisy),
the best of ``--repeat`` runs after a warm-up run. The cost per Gibbs step is the
difference between runs of ``--long`` and ``--short`` iterations over
m x variables x (long - short) steps, so it excludes start-up (the first iteration, the
per-chain set-up) and every fixed cost outside the chains.

Cases: the classroom experiments 1, 2 and 3 (the classroom example of Jacobusse, 2005;
600 rows; experiment 3 has a random slope with a correlated 2x2 block) and the
experiment-2 design (two incomplete variables with ``cmean()`` terms) at ``--rows`` rows in
classes of 20, and with ``--slopes`` the experiment-3 design at those sizes.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_batched.py --m 25 --repeat 5
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from mlimpute.datasets import IMPUTATION_FORMULAS, classroom
from mlimpute.rng import chain_seeds
from mlimpute.sampler.batched import can_batch, run_block
from mlimpute.sampler.engine import build_plan
from mlimpute.spec.build import build_spec


def _cases(rows: list[int], slopes: bool):
    for exp in (1, 2, 3):
        d = classroom(exp, rng=1)
        yield f"experiment {exp}", d.incomplete, d.imputation
    for n in rows:
        df = classroom(2, n_classes=n // 20, class_size=20, rng=1).incomplete
        yield f"experiment-2 design, {n:,} rows", df, IMPUTATION_FORMULAS[2]
    for n in rows if slopes else []:
        df = classroom(3, n_classes=n // 20, class_size=20, rng=1).incomplete
        yield f"experiment-3 design, {n:,} rows", df, IMPUTATION_FORMULAS[3]


def _chains(plan, seeds, batch, iterations):
    block = [(k, s, None, iterations) for k, s in enumerate(seeds)]
    a = time.process_time()
    res = run_block(plan, block, batch)
    return time.process_time() - a, res


def _best(plan, seeds, batch, iterations, repeat):
    _chains(plan, seeds, batch, iterations)  # warm-up
    return min(_chains(plan, seeds, batch, iterations)[0] for _ in range(repeat))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--m", type=int, default=25)
    ap.add_argument("--short", type=int, default=10)
    ap.add_argument("--long", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rows", type=int, nargs="*", default=[600, 2_000, 6_000, 12_000, 20_000])
    ap.add_argument("--batches", type=int, nargs="*", default=[1, 5, 25])
    ap.add_argument("--slopes", action="store_true", help="the experiment-3 design at --rows")
    args = ap.parse_args()
    if os.environ.get("OPENBLAS_NUM_THREADS") != "1":
        print("warning: OPENBLAS_NUM_THREADS is not 1")
    seeds, _ = chain_seeds(1, args.m)
    print(f"m = {args.m}; ms per Gibbs step (CPU), steps {args.short}->{args.long} iterations")
    print("| case | rows | " + " | ".join(f"batch {b}" for b in args.batches) + " | gain |")
    print("|---|---:|" + "---:|" * (len(args.batches) + 1))
    for name, df, formulas in _cases(args.rows, args.slopes):
        spec = build_spec(df, formulas, m=args.m, iterations=args.long)
        plan = build_plan(df.copy(), spec)
        assert can_batch(plan), name
        nv = len(spec.variables)
        per_step = []
        ref = None
        for b in args.batches:
            t_s = _best(plan, seeds, b, args.short, args.repeat)
            t_l = _best(plan, seeds, b, args.long, args.repeat)
            per_step.append((t_l - t_s) / (args.m * nv * (args.long - args.short)) * 1e3)
            res = _chains(plan, seeds, b, args.short)[1]
            imp = np.concatenate([r.imputed[n] for r in res for n in plan.names])
            assert ref is None or np.array_equal(ref, imp), "batched run differs"
            ref = imp
        cells = " | ".join(f"{t:.3f}" for t in per_step)
        print(f"| {name} | {plan.layout.n:,} | {cells} | {per_step[0] / min(per_step):.2f}x |")


if __name__ == "__main__":
    main()
