"""Benchmark: pooled analysis of classroom experiment 3 (``imp.fit``), m = 25.

Run ``python benchmarks/bench_fit.py [--m 25] [--repeat 3] [--top 15]``. Prints the
seconds for ``imp.fit("grade ~ skill*gender + relation + (1 + gender | class)")`` with
the default engine (serially and with ``n_jobs=2``) and with ``engine="statsmodels"``,
the seconds per complete-data fit, a breakdown (completing the data sets, materialising
the designs, fitting, pooling), one fit by each optimiser (Newton from lme4's start and
warm-started, the Nelder-Mead fallback) and the cProfile functions with the most
cumulative time. A script, not a test: nothing is asserted.

``python benchmarks/bench_fit.py --multiterm [--repeat 3]`` times models with several
random-effect terms instead (:mod:`mlimpute.analysis.fitters.multiterm`): a three-level
random-intercept fit on 60,000 rows (1,000 schools x 4 classes x 15 pupils) from lme4's
start and warm-started, next to the two-level fit (classes only) of the same rows; the
same with a class-level random slope; ``imp.fit`` of the three-level model on m = 5
completed data sets of those rows; crossed fits (2,000 pupils in 100 schools x 50
neighbourhoods, and 20,000 pupils in 1,000 x 500).
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
from mlimpute.analysis.fitters import multiterm as _multiterm
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
    parser.add_argument("--multiterm", action="store_true", help="several-term models")
    args = parser.parse_args()
    if args.multiterm:
        multiterm(args.repeat)
        return

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


def _three_level(rng, n_s=1000, n_c=4, n_p=15, slope=False):
    school = np.repeat(np.arange(n_s), n_c * n_p)
    cls = np.repeat(np.arange(n_s * n_c), n_p)
    x = rng.normal(size=school.size)
    y = (
        1.0
        + 0.5 * x
        + rng.normal(0.0, np.sqrt(0.5), n_s)[school]
        + rng.normal(0.0, np.sqrt(0.3), n_s * n_c)[cls]
        + (rng.normal(0.0, 0.3, n_s * n_c)[cls] * x if slope else 0.0)
        + rng.normal(size=school.size)
    )
    return y, x, school, cls


def multiterm(repeat: int) -> None:
    """Timings of several-term fits (see the module docstring)."""
    import pandas as pd

    rng = np.random.default_rng(1)
    y, x, school, cls = _three_level(rng)
    n = y.size
    one = np.ones(n)
    X = np.column_stack([one, x])
    print(f"three-level data: {n} rows, 1000 schools x 4 classes x 15 pupils\n")
    for label, zc in (("random intercepts", one[:, None]), ("class slope of x", X)):
        terms = [
            _multiterm.make_term(one, school, name="school"),
            _multiterm.make_term(zc, cls, name="class"),
        ]
        cold, f = best_of(repeat, lambda t=terms: _multiterm.fit_multiterm(y, X, t))
        warm, _ = best_of(
            repeat, lambda t=terms, f=f: _multiterm.fit_multiterm(y, X, t, start=f.theta)
        )
        two, _ = best_of(repeat, lambda z=zc: _mixedlm.fit_mixedlm(y, X, z, cls))
        print(
            f"{label:<18} three-level fit {cold:.3f} s (warm start {warm:.3f} s); "
            f"two-level fit (classes only) {two:.3f} s"
        )
    frame = pd.DataFrame({"y": y, "x": x, "school": school, "cls": cls})
    copies = []
    for _ in range(5):
        c = frame.copy()
        rows = rng.random(n) < 0.3
        c.loc[rows, "y"] += rng.normal(0.0, 0.3, rows.sum())
        copies.append(c)
    imp = mlimpute.from_completed(copies)
    for formula in ("y ~ x + (1 | school/cls)", "y ~ x + (1 | cls)"):
        secs, _ = best_of(repeat, lambda f=formula: imp.fit(f))
        print(f"imp.fit({formula!r}), m = 5: {secs:.3f} s ({secs / 5:.3f} s per imputation)")
    print()
    for n_rows, n_s, n_h in ((2000, 100, 50), (20000, 1000, 500)):
        school, hood = rng.integers(0, n_s, n_rows), rng.integers(0, n_h, n_rows)
        yc = (
            rng.normal(0.0, 0.55, n_s)[school]
            + rng.normal(0.0, 0.55, n_h)[hood]
            + rng.normal(size=n_rows)
        )
        one = np.ones(n_rows)
        terms = [
            _multiterm.make_term(one, school, name="school"),
            _multiterm.make_term(one, hood, name="neighbourhood"),
        ]
        ones = one[:, None]
        secs, f = best_of(
            repeat, lambda t=terms, yc=yc, X1=ones: _multiterm.fit_multiterm(yc, X1, t)
        )
        print(
            f"crossed, {n_rows} rows, {n_s} schools x {n_h} neighbourhoods: {secs:.3f} s "
            f"({f.optimizer})"
        )


if __name__ == "__main__":
    main()
