"""Model-based imputation of a binary predictor with a random slope: bias and coverage.

Design (100 clusters of 10; the variance components like design (a) of
:mod:`mlimpute.compatible.designs`, x binary; ``--ordinal``: three ordered categories
0 < 1 < 2 entering as two dummies, y = ... + (0.5 + u1j) 1{x = 1} + (1 + u2j) 1{x = 2},
var(u1) = var(u2) 0.4, every covariance 0.2, cut-points −0.4 and 0.6)::

    z_j ~ N(0, 1),  r_j ~ N(0, 0.5),  x_ij = 1{0.3 z_j + r_j + e_ij > 0}, e ~ N(0, 1)
    y_ij = −0.5 z_j + (0.5 + u1j) x_ij + u0j + e_ij,
    var(u0) 1, var(u1) 0.4, cov(u0, u1) 0.2, residual variance 1;

25 % of x missing at random on y and z (logistic in the standardised y + z), 15 % of y
missing completely at random. Each replication is analysed with ``y ~ x + z + (1 + x | g)``
on the complete data, after model-based imputation (``model=``) and after chained
imputation with the defaults (``cluster="g"``). Printed per method and parameter: mean
estimate ± Monte Carlo SE (SD over replications / √R), mean relative bias against the
truth and against the complete-data estimate of the same data set (± MC SE), 95 %
coverage of the truth (± binomial MC SE) among the replications whose pooled interval is
finite, how many had none (a variance component at zero in an imputation's fit), and the
largest R-hat seen (over every trace, after discarding the first half).

    python benchmarks/compatible_binary_slope.py --reps 100 --m 10 --iterations 60 \
        --out results/binslope
    python benchmarks/compatible_binary_slope.py --ordinal ...  # x with three categories

One JSON file per replication; a rerun skips those that exist (resumable).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit

import mlimpute

MODEL = "y ~ x + z + (1 + x | g)"
PSI = np.array([[1.0, 0.2], [0.2, 0.4]])
TRUTH = {
    "Intercept": 0.0,
    "x": 0.5,
    "z": -0.5,
    "var(Intercept|g)": 1.0,
    "cov(Intercept,x|g)": 0.2,
    "var(x|g)": 0.4,
    "var(Residual)": 1.0,
}
#: cut-points of x's latent variable: binary (one) or three ordered categories (coded 0, 1, 2)
CUTS = {"binary": [0.0], "ordinal": [-0.4, 0.6]}


#: the ordinal version: categories 0 < 1 < 2 of an ordered categorical, which enters the
#: model as two treatment dummies with correlated random slopes (three effects per cluster)
PSI3 = np.array([[1.0, 0.2, 0.2], [0.2, 0.4, 0.2], [0.2, 0.2, 0.4]])
TRUTH3 = {
    "Intercept": 0.0,
    "x[T.1]": 0.5,
    "x[T.2]": 1.0,
    "z": -0.5,
    "var(Intercept|g)": 1.0,
    "cov(Intercept,x[T.1]|g)": 0.2,
    "cov(Intercept,x[T.2]|g)": 0.2,
    "var(x[T.1]|g)": 0.4,
    "cov(x[T.1],x[T.2]|g)": 0.2,
    "var(x[T.2]|g)": 0.4,
    "var(Residual)": 1.0,
}


def generate(rng: np.random.Generator, kind: str = "binary", J: int = 100, size: int = 10):
    """One data set: (complete, incomplete) DataFrames with columns y, x, z, g (x numeric
    0/1 when binary, an ordered categorical 0 < 1 < 2 when ordinal)."""
    n = J * size
    g = np.repeat(np.arange(J), size)
    z = np.repeat(rng.standard_normal(J), size)
    latent = 0.3 * z + np.repeat(np.sqrt(0.5) * rng.standard_normal(J), size)
    latent = latent + rng.standard_normal(n)
    x = np.searchsorted(np.asarray(CUTS[kind]), latent).astype(np.float64)
    if kind == "binary":
        u = rng.standard_normal((J, 2)) @ np.linalg.cholesky(PSI).T
        y = -0.5 * z + (0.5 + u[g, 1]) * x + u[g, 0] + rng.standard_normal(n)
    else:
        u = rng.standard_normal((J, 3)) @ np.linalg.cholesky(PSI3).T
        d1, d2 = (x == 1).astype(float), (x == 2).astype(float)
        y = -0.5 * z + (0.5 + u[g, 1]) * d1 + (1.0 + u[g, 2]) * d2 + u[g, 0]
        y = y + rng.standard_normal(n)
    score = (y - y.mean()) / y.std() + (z - z.mean()) / z.std()
    score = score / score.std()
    shift = brentq(lambda c: expit(c + score).mean() - 0.25, -30, 30)
    x_mis = rng.random(n) < expit(shift + score)
    y_mis = rng.random(n) < 0.15
    xc = pd.Series(x)
    if kind != "binary":
        xc = pd.Series(pd.Categorical(x.astype(int), categories=[0, 1, 2], ordered=True))
    complete = pd.DataFrame({"y": y, "x": xc, "z": z, "g": g})
    incomplete = complete.assign(x=xc.where(~x_mis), y=np.where(y_mis, np.nan, y))
    return complete, incomplete


def _truth(kind: str) -> dict:
    return TRUTH if kind == "binary" else TRUTH3


def _record(res, truth: dict, rhat: float | None = None) -> dict:
    fixed = res.summary()
    vc = res.variance_components()
    out = {}
    for name in truth:
        tab = fixed if name in fixed.index else vc
        row = tab.loc[name]
        out[name] = {k: float(row[k]) for k in ("estimate", "ci_low", "ci_high")}
    if rhat is not None:
        out["max R-hat"] = rhat
    return out


def _max_rhat(imp) -> float:
    r = imp.rhat()
    return float(max(float(np.nanmax(v.values)) for v in r.data_vars.values()))


def one(rep: int, args, out: Path) -> dict:
    path = out / f"replication{rep:04d}.json"
    if path.exists():
        return json.loads(path.read_text())
    seeds = np.random.SeedSequence([2026, 18, rep, args.ordinal]).spawn(3)
    kind = "ordinal" if args.ordinal else "binary"
    complete, incomplete = generate(np.random.default_rng(seeds[0]), kind)
    record: dict = {"rep": rep, "kind": kind, "m": args.m, "iterations": args.iterations}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        truth = _truth(kind)
        record["complete"] = _record(
            mlimpute.from_completed([complete, complete]).fit(MODEL), truth
        )
        methods = (("model", seeds[1]), ("defaults", seeds[2]))
        for method, rng in methods[: 1 if args.model_only else 2]:
            t0 = time.process_time()
            if method == "model":
                imp = incomplete.mi.impute(
                    model=MODEL, m=args.m, iterations=args.iterations, rng=rng
                )
            else:
                imp = incomplete.mi.impute(
                    cluster="g", m=args.m, iterations=args.iterations, rng=rng
                )
            cpu = time.process_time() - t0
            record[method] = _record(imp.fit(MODEL), truth, _max_rhat(imp))
            record[method]["cpu seconds"] = cpu
    path.write_text(json.dumps(record, indent=1))
    return record


def summary(records: list[dict]) -> pd.DataFrame:
    """Mean ± MC SE per method and parameter."""
    rows = []
    R = len(records)
    for method in [m for m in ("complete", "model", "defaults") if m in records[0]]:
        for name, true in _truth(records[0]["kind"]).items():
            est = np.array([r[method][name]["estimate"] for r in records])
            comp = np.array([r["complete"][name]["estimate"] for r in records])
            lo = np.array([r[method][name]["ci_low"] for r in records])
            hi = np.array([r[method][name]["ci_high"] for r in records])
            # a variance component's pooled interval is NaN when an imputation's fit puts
            # it at zero (a singular fit): coverage among the finite intervals, and how many
            # replications had none
            finite = np.isfinite(lo) & np.isfinite(hi)
            cov = ((lo <= true) & (true <= hi))[finite]
            row = {
                "method": method,
                "parameter": name,
                "true": true,
                "mean": est.mean(),
                "mc_se": est.std(ddof=1) / np.sqrt(R),
                "diff_vs_complete": (est - comp).mean(),
                "diff_mc_se": (est - comp).std(ddof=1) / np.sqrt(R),
                "coverage": cov.mean(),
                "cov_mc_se": np.sqrt(cov.mean() * (1 - cov.mean()) / cov.size),
                "no_interval": int((~finite).sum()),
                "median_width": float(np.median((hi - lo)[finite])),
            }
            if true != 0:
                row["relbias_truth_%"] = 100 * (est.mean() - true) / true
                row["relbias_complete_%"] = 100 * (est - comp).mean() / abs(true)
                row["relbias_complete_mc_se_%"] = 100 * row["diff_mc_se"] / abs(true)
            rows.append(row)
        if method != "complete":
            rh = [r[method]["max R-hat"] for r in records]
            cpu = [r[method]["cpu seconds"] for r in records]
            rows.append(
                {
                    "method": method,
                    "parameter": "max R-hat (median, max)",
                    "mean": float(np.median(rh)),
                    "mc_se": float(np.max(rh)),
                }
            )
            rows.append({"method": method, "parameter": "cpu s/call", "mean": np.median(cpu)})
    return pd.DataFrame(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=100)
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--m", type=int, default=10)
    p.add_argument("--iterations", type=int, default=60)
    p.add_argument("--ordinal", action="store_true", help="x with three ordered categories")
    p.add_argument("--out", default="results/binslope")
    p.add_argument("--summary-only", action="store_true")
    p.add_argument("--model-only", action="store_true", help="skip the chained defaults")
    a = p.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.summary_only:
        records = [json.loads(f.read_text()) for f in sorted(out.glob("replication*.json"))]
    else:
        records = [one(r, a, out) for r in range(a.start, a.start + a.reps)]
    print(f"{len(records)} replications")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(summary(records).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
