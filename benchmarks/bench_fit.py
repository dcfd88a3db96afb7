"""Benchmark: pooled analysis of classroom experiment 3 (``imp.fit``), m = 25.

Run ``python benchmarks/bench_fit.py [--m 25] [--repeat 3] [--top 15]``. Prints the
seconds for ``imp.fit("grade ~ skill*gender + relation + (1 + gender | class)")`` with
the default engine (serially and with ``n_jobs=2``) and with ``engine="statsmodels"``,
the seconds per complete-data fit, a breakdown (completing the data sets, materialising
the designs, fitting, pooling), one fit by each optimiser (Newton from lme4's start and
warm-started, the Nelder-Mead fallback) and the cProfile functions with the most
cumulative time. A script, not a test: nothing is asserted.
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
from mlimpute.analysis import _Model
from mlimpute.analysis.fitters import mixedlm as _mixedlm
from mlimpute.datasets import classroom
from mlimpute.pooling import pool
from mlimpute.spec.formula import parse_formula

FORMULA = "grade ~ skill*gender + relation + (1 + gender | class)"


def best_of(repeat: int, func) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = func()
        times.append(time.perf_counter() - start)
    return min(times), out


def breakdown(imp, engine: str) -> dict[str, float]:
    """Seconds spent completing, materialising, fitting and pooling (one serial pass, as
    imp.fit does it: imputation 1 from lme4's start, the others from its estimates)."""
    model = _Model(parse_formula(FORMULA), "lmm", cluster="class", engine=engine)
    t0 = time.perf_counter()
    frames = [imp.complete(i) for i in range(1, imp.m + 1)]
    t1 = time.perf_counter()
    designs = [model.design(df, i) for i, df in enumerate(frames, 1)]
    t2 = time.perf_counter()
    first = model.fit(designs[0], reml=True)
    fits = [first] + [model.fit(d, reml=True, start=model.warm_start(first)) for d in designs[1:]]
    t3 = time.perf_counter()
    pool(
        np.array([f.fe_params for f in fits]),
        np.array([f.cov_fe for f in fits]),
        dfcom=model.dfcom(fits[0]),
        names=model.fixed_names,
    )
    t4 = time.perf_counter()
    return {"complete(i)": t1 - t0, "design": t2 - t1, "fit": t3 - t2, "pool": t4 - t3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=25)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()

    data = classroom(3, rng=1)
    warnings.simplefilter("ignore")  # singular-fit notes and R-hat are not measured here
    start = time.perf_counter()
    imp = data.incomplete.mi.impute(data.imputation, m=args.m, iterations=20, rng=1)
    print(
        f"imputation (m={args.m}, 20 iterations): {time.perf_counter() - start:.2f} s "
        "(not part of the benchmark)"
    )
    print(f"analysis model: {FORMULA}   (600 rows, 30 classes)\n")

    for engine, kw in (("profiled", {}), ("profiled", {"n_jobs": 2}), ("statsmodels", {})):
        secs, res = best_of(args.repeat, lambda e=engine, k=kw: imp.fit(FORMULA, engine=e, **k))
        label = f"engine={engine}" + "".join(f", {k}={v}" for k, v in kw.items())
        print(
            f"{label:<32} imp.fit: {secs:6.3f} s   per fit: {secs / args.m:.4f} s"
            f"   (best of {args.repeat}; singular fits: {len(res.singular)})"
        )
        if not kw:
            parts = breakdown(imp, engine)
            total = sum(parts.values())
            print(
                "    "
                + "   ".join(f"{k} {v:.3f} s ({100 * v / total:.0f} %)" for k, v in parts.items())
            )

    # one fit by each optimiser
    model = _Model(parse_formula(FORMULA), "lmm", cluster="class")
    designs = [model.design(imp.complete(i), i) for i in range(1, imp.m + 1)]
    d1, d2 = designs[0], designs[1]
    first = _mixedlm.fit_mixedlm(d1.y, d1.X, d1.Z, d1.groups)
    mask = np.ones((2, 2), bool)
    rows = []
    for label, fn in [
        ("Newton, lme4's start", lambda p: p.minimise_newton(p.theta_of(np.eye(2)))),
        ("Newton, warm start", lambda p: p.minimise_newton(first.theta)),
        ("Nelder-Mead (fallback)", lambda p: p.minimise(p.theta_of(np.eye(2)))),
    ]:
        prof = _mixedlm._Profiled(d2.y, d2.X, d2.Z, d2.groups, mask, True)
        secs, _ = best_of(args.repeat, lambda f=fn, p=prof: f(p))
        rows.append((label, secs, prof.evaluations // args.repeat))
    sm_secs, _ = best_of(
        args.repeat, lambda: _mixedlm.fit_mixedlm(d2.y, d2.X, d2.Z, d2.groups, engine="statsmodels")
    )
    print("\none fit (imputation 2), the optimisation alone:")
    for label, secs, n in rows:
        print(f"    {label:<24} {1e3 * secs:7.2f} ms  ({n} deviance evaluations)")
    print(f"    {'statsmodels engine':<24} {1e3 * sm_secs:7.2f} ms  (whole fit)")

    profiler = cProfile.Profile()
    profiler.enable()
    imp.fit(FORMULA)
    profiler.disable()
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(args.top)
    print("\ncProfile of imp.fit (default engine), by cumulative time:")
    print("\n".join(line for line in stream.getvalue().splitlines()[4:] if line.strip()))


if __name__ == "__main__":
    main()
