"""Benchmark: pooled analysis of the seed's experiment 3 (``imp.fit``), m = 25.

Run ``python benchmarks/bench_fit.py [--m 25] [--repeat 3] [--top 15]``. Prints the
seconds for ``imp.fit("grade ~ skill*gender + relation + (1 + gender | class)")`` with
both mixed-model engines, the seconds per complete-data fit, a breakdown (completing the
data sets, materialising the designs, fitting, pooling) and the cProfile functions with
the most cumulative time. A script, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time
import warnings

import numpy as np

import mlimpute  # noqa: F401  (registers the .mi accessor)
from mlimpute import _mixedlm
from mlimpute.analysis import _Model
from mlimpute.datasets import classroom
from mlimpute.formula import parse_formula
from mlimpute.pooling import pool

FORMULA = "grade ~ skill*gender + relation + (1 + gender | class)"


def best_of(repeat: int, func) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = func()
        times.append(time.perf_counter() - start)
    return min(times), out


def breakdown(imp, engine: str) -> dict[str, float]:
    """Seconds spent completing, materialising, fitting and pooling (one pass)."""
    model = _Model(parse_formula(FORMULA), "lmm", cluster="class", engine=engine)
    t0 = time.perf_counter()
    frames = list(imp.complete("all"))
    t1 = time.perf_counter()
    designs = [model.design(df, i) for i, df in enumerate(frames, 1)]
    t2 = time.perf_counter()
    fits = [model.fit(d, reml=True) for d in designs]
    t3 = time.perf_counter()
    pool(np.array([f.fe_params for f in fits]), np.array([f.cov_fe for f in fits]),
         dfcom=model.dfcom(fits[0]), names=model.fixed_names)
    t4 = time.perf_counter()
    return {"complete(i)": t1 - t0, "design (formulaic)": t2 - t1, "fit": t3 - t2,
            "pool": t4 - t3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=25)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()

    data = classroom(3, rng=1)
    start = time.perf_counter()
    imp = data.incomplete.mi.impute(data.imputation, m=args.m, iterations=20, rng=1)
    print(f"imputation (m={args.m}, 20 iterations): {time.perf_counter() - start:.2f} s "
          "(not part of the benchmark)")
    print(f"analysis model: {FORMULA}   (600 rows, 30 classes)\n")

    warnings.simplefilter("ignore")  # singular-fit notes are not what is measured here
    for engine in ("statsmodels", "profiled"):
        secs, res = best_of(args.repeat, lambda e=engine: imp.fit(FORMULA, engine=e))
        print(f"engine={engine:<12} imp.fit: {secs:6.2f} s   per fit: {secs / args.m:.4f} s"
              f"   (best of {args.repeat}; singular fits: {len(res.singular)})")
        parts = breakdown(imp, engine)
        total = sum(parts.values())
        print("    " + "   ".join(f"{k} {v:.3f} s ({100 * v / total:.0f} %)"
                                  for k, v in parts.items()))

    # where the time of one statsmodels fit goes
    model = _Model(parse_formula(FORMULA), "lmm", cluster="class")
    design = model.design(imp.complete(1), 1)
    fit_args = (design.y, design.X, design.Z, design.groups)
    sm_secs, _ = best_of(args.repeat, lambda: _mixedlm.fit_mixedlm(*fit_args))
    prof = _mixedlm._Profiled(*fit_args, np.ones((2, 2), bool), True)
    check_secs, _ = best_of(args.repeat, lambda: prof.minimise(prof.theta_of(np.eye(2))))
    evals = 0
    original = prof.deviance

    def counted(theta):
        nonlocal evals
        evals += 1
        return original(theta)

    prof.deviance = counted
    prof.minimise(prof.theta_of(np.eye(2)))
    per_eval, _ = best_of(5, lambda: [original(prof.theta_of(np.eye(2))) for _ in range(200)])
    print(f"\none fit, statsmodels engine: {sm_secs:.4f} s; the profiled-deviance "
          f"optimisation alone: {check_secs:.4f} s ({evals} deviance evaluations of "
          f"{1e6 * per_eval / 200:.0f} us)")

    profiler = cProfile.Profile()
    profiler.enable()
    imp.fit(FORMULA)
    profiler.disable()
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(args.top)
    print("\ncProfile of imp.fit (statsmodels engine), by cumulative time:")
    print("\n".join(line for line in stream.getvalue().splitlines()[4:] if line.strip()))


if __name__ == "__main__":
    main()
