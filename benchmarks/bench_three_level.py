"""Time per Gibbs step of the several-terms normal model, and its mixing.

    python benchmarks/bench_three_level.py [--steps 60] [--mixing 4000]

(a) **Speed**: pupils in classes in schools (30 pupils per class, 4 classes per school,
random intercepts for class and school, 4 row-level predictors and a class mean), at
15,000 / 30,000 / 60,000 observed rows: seconds per step of
:class:`~mlimpute.models.ml_multi.MultiTermNorm` against the two-level
:class:`~mlimpute.models.ml_norm.MultilevelNorm` on the same rows and design with the
class term only; and a crossed design (300 × 200 factors) at 60,000 rows. Median of
``--steps`` steps after 5 warm-up steps, one BLAS thread, CPU time of the thread
(``time.thread_time``: on a shared machine wall time measures the other processes too).

(b) **Mixing**: 30 schools × 4 classes × 10 or 30 pupils (variances 0.5 / 0.3 / 1):
lag-1 autocorrelation and effective draws per step (initial positive sequence, cut at
autocorrelation < 0.05) of the intercept and the three variances, for the model as it is,
without the joint (school, class) block, and without the translation move against β.

(c) **Three- vs two-level imputation** (``--reps N``, default off): N data sets of 50
schools × 4 classes × 15 pupils (variances 0.5 / 0.3 / 1; y and x 30 % missing completely
at random), ``mlimpute.impute`` with ``cluster=["school", "class"]`` and with
``cluster="class"`` (m = 5, 10 iterations); the nested-ANOVA variance components of y,
averaged over the imputations and data sets, relative to the complete data's.
"""

from __future__ import annotations

import argparse
import os
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from mlimpute.models.ml_multi import MultiTermNorm  # noqa: E402
from mlimpute.models.ml_multi_data import (  # noqa: E402
    example_three_level,
    term_data,
)
from mlimpute.models.ml_norm import MultilevelNorm  # noqa: E402


def three_level(n_rows: int, pupils: int = 30, classes: int = 4, rng: int = 0):
    """Three-level data with ``n_rows`` rows (90 % of y observed) and the two-level
    version of the same rows (class term only)."""
    gen = np.random.default_rng(rng)
    n_schools = n_rows // (pupils * classes)
    n = n_schools * classes * pupils
    school = np.repeat(np.arange(n_schools), classes * pupils)
    klass = np.repeat(np.arange(n_schools * classes), pupils)
    x = gen.standard_normal((n, 4))
    cmean = np.bincount(klass, x[:, 0]) / np.bincount(klass)
    X = np.column_stack([np.ones(n), x, cmean[klass]])
    y = (
        X @ np.array([1.0, 0.5, -0.3, 0.2, 0.0, 0.4])
        + gen.normal(0, np.sqrt(0.5), n_schools)[school]
        + gen.normal(0, np.sqrt(0.3), klass.max() + 1)[klass]
        + gen.standard_normal(n)
    )
    names = ["Intercept", "x1", "x2", "x3", "x4", "cmean(x1)"]
    one = np.ones((n, 1))
    observed = gen.random(n) >= 0.1
    d3 = term_data(
        y,
        X,
        names,
        ("class", klass, one, ["Intercept"]),
        [("school", school, one, ["Intercept"])],
        observed,
    )
    d2 = term_data(y, X, names, ("class", klass, one, ["Intercept"]), [], observed)
    return d2, d3


def crossed(n: int = 60_000, n_a: int = 300, n_b: int = 200, rng: int = 0):
    gen = np.random.default_rng(rng)
    a = gen.integers(0, n_a, n)
    b = gen.integers(0, n_b, n)
    x = gen.standard_normal((n, 4))
    X = np.column_stack([np.ones(n), x])
    y = X @ np.array([1.0, 0.5, -0.3, 0.2, 0.0])
    y = y + gen.normal(0, 0.55, n_a)[a] + gen.normal(0, 0.55, n_b)[b] + gen.standard_normal(n)
    one = np.ones((n, 1))
    names = ["Intercept", "x1", "x2", "x3", "x4"]
    return term_data(
        y,
        X,
        names,
        ("a", a, one, ["Intercept"]),
        [("b", b, one, ["Intercept"])],
        gen.random(n) >= 0.1,
    )


def seconds_per_step(models_and_data, steps: int) -> list[float]:
    """Median seconds per step + draw_missing of each (model, data), the models' steps
    interleaved so that a busy machine slows them alike."""
    runs = []
    for model, data in models_and_data:
        rng = np.random.default_rng(1)
        state = model.init(rng, data)
        for _ in range(5):
            state = model.step(rng, state, data)
        runs.append([model, data, rng, state, []])
    for _ in range(steps):
        for run in runs:
            model, data, rng, state, times = run
            t0 = time.thread_time()
            state = model.step(rng, state, data)
            model.draw_missing(rng, state, data)
            times.append(time.thread_time() - t0)
            run[3] = state
    return [float(np.median(run[4])) for run in runs]


class _NoJointBlock(MultiTermNorm):
    nested_block = False


class _NoTranslation(_NoJointBlock):
    @staticmethod
    def _shift_beta(rng, ts, beta, ti, beta_prec):
        return ts, beta


def _ess_per_draw(x: np.ndarray, max_lag: int = 300) -> float:
    x = x - x.mean()
    v = float(x @ x)
    s = 0.0
    for k in range(1, max_lag):
        r = float(x[k:] @ x[:-k]) / v
        if r < 0.05:
            break
        s += r
    return 1.0 / (1.0 + 2.0 * s)


def mixing(steps: int) -> None:
    print("\n(b) mixing: lag-1 autocorrelation / effective draws per step")
    for pupils in (10, 30):
        d = example_three_level(n_schools=30, classes=4, pupils=pupils, rng=3, missing=0.0)
        for label, cls in (
            ("as is", MultiTermNorm),
            ("no joint block", _NoJointBlock),
            ("neither", _NoTranslation),
        ):
            model = cls()
            rng = np.random.default_rng(1)
            state = model.init(rng, d)
            out = np.empty((steps, len(model.param_names(d))))
            for i in range(steps + 500):
                state = model.step(rng, state, d)
                if i >= 500:
                    out[i - 500] = model.param_vector(state, d)
            names = model.param_names(d)
            cells = []
            for name in (
                "Intercept",
                "var(Intercept|school)",
                "var(Intercept|class)",
                "var(Residual)",
            ):
                x = out[:, names.index(name)]
                lag1 = float(np.corrcoef(x[1:], x[:-1])[0, 1])
                cells.append(f"{name} {lag1:.2f}/{_ess_per_draw(x):.2f}")
            print(f"  {pupils} pupils, {label:15s} " + "; ".join(cells))


def _simulate(seed: int):
    import pandas as pd

    g = np.random.default_rng(seed)
    school = np.repeat(np.arange(50), 60)
    klass = np.repeat(np.arange(200), 15)
    x = g.standard_normal(3000) + g.normal(0, 0.5, 50)[school]
    w = g.normal(0, 1, 200)[klass]
    y = (
        1
        + 0.5 * x
        + 0.3 * w
        + g.normal(0, np.sqrt(0.5), 50)[school]
        + g.normal(0, np.sqrt(0.3), 200)[klass]
        + g.standard_normal(3000)
    )
    df = pd.DataFrame({"school": school, "class": klass, "x": x, "w": w, "y": y})
    inc = df.copy()
    inc.loc[g.random(3000) < 0.3, "y"] = np.nan
    inc.loc[g.random(3000) < 0.3, "x"] = np.nan
    return df, inc


def _anova(y: np.ndarray, school: np.ndarray, klass: np.ndarray) -> np.ndarray:
    """Balanced nested ANOVA (4 classes of 15 per school): school, class, residual."""
    S, a, n = school.max() + 1, 4, 15
    yc = (np.bincount(klass, y) / np.bincount(klass))[klass]
    ys = (np.bincount(school, y) / np.bincount(school))[school]
    msw = ((y - yc) ** 2).sum() / (y.size - S * a)
    msc = ((yc - ys) ** 2).sum() / (S * (a - 1))
    mss = ((ys - y.mean()) ** 2).sum() / (S - 1)
    return np.array([(mss - msc) / (n * a), (msc - msw) / n, msw])


def three_vs_two(reps: int) -> None:
    import mlimpute

    print(f"\n(c) variance components of y after imputation / complete data ({reps} data sets)")
    rows = []
    for rep in range(reps):
        df, inc = _simulate(100 + rep)
        s, k = df["school"].to_numpy(), df["class"].to_numpy()
        row = [_anova(df["y"].to_numpy(), s, k)]
        for cluster in (["school", "class"], "class"):
            imp = mlimpute.impute(inc, cluster=cluster, m=5, iterations=10, rng=rep)
            row.append(
                np.mean([_anova(imp.complete(i)["y"].to_numpy(), s, k) for i in range(1, 6)], 0)
            )
        rows.append(row)
    r = np.array(rows)  # (reps, 3, 3)
    full = r[:, 0].mean(0)
    print(f"  complete data: school {full[0]:.3f}, class {full[1]:.3f}, residual {full[2]:.3f}")
    for i, label in ((1, "three-level"), (2, "two-level (class)")):
        ratio = r[:, i].mean(0) / full
        print(f"  {label:18s} school {ratio[0]:.3f}, class {ratio[1]:.3f}, residual {ratio[2]:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--mixing", type=int, default=4000)
    ap.add_argument("--reps", type=int, default=0)
    args = ap.parse_args()
    print("(a) seconds per step (step + draw_missing), median")
    for n_rows in (15_000, 30_000, 60_000):
        d2, d3 = three_level(n_rows)
        t2, t3 = seconds_per_step([(MultilevelNorm(), d2), (MultiTermNorm(), d3)], args.steps)
        print(
            f"  {d3.n_obs + d3.n_mis:6d} rows, {d3.n_clusters} classes in "
            f"{d3.extra_terms[0].n_clusters} schools: two-level {t2 * 1e3:6.1f} ms, "
            f"three-level {t3 * 1e3:6.1f} ms, ratio {t3 / t2:.2f}"
        )
    dc = crossed()
    (tc,) = seconds_per_step([(MultiTermNorm(), dc)], args.steps)
    print(f"  crossed 300 x 200, {dc.n_obs + dc.n_mis} rows: {tc * 1e3:.1f} ms per step")
    if args.mixing:
        mixing(args.mixing)
    if args.reps:
        three_vs_two(args.reps)


if __name__ == "__main__":
    main()
