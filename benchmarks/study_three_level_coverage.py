"""Coverage study of three-level imputation (acceptance (a) of three-level data).

50 schools x 4 classes x 15 pupils, variances school 0.5, class 0.3, residual 1; y and a
level-1 x about 30 % missing at random, a class-level z and a school-level w 20 %
missing (the data of ``tests/analysis/test_multiterm_acceptance.py``). Each replication
stores, for the complete data and for the three-level imputation with the defaults,
the variance components and per coefficient the estimate, the within- and
between-imputation variances and the complete-data df, so that the coverage can be
recomputed afterwards under other df rules (``--summary FILE``).

Usage::

    python benchmarks/study_three_level_coverage.py --reps 200 --m 5 --iterations 10 \
        --seed 12 --out cover.npz [--start 0]
    python benchmarks/study_three_level_coverage.py --summary cover.npz [cover2.npz ...]

Replications ``start .. start + reps - 1`` draw their data from the generator of
``seed`` advanced replication by replication, so runs split with ``--start`` give the
same replications as one run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np
from scipy import stats

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "analysis"))
from test_multiterm_acceptance import BETA, FORMULA, three_level  # noqa: E402

import mlimpute  # noqa: E402
from mlimpute.pooling import barnard_rubin_df  # noqa: E402

NAMES = ("Intercept", "x", "z", "w")
VC = ("school", "class", "residual")


def one(rep_seed: int, m: int, iterations: int, size=(50, 4, 15)):
    rng = np.random.default_rng(rep_seed)
    full, df = three_level(rng, *size)
    s1 = int(rng.integers(1, 2**31))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        complete = mlimpute.from_completed([full, full]).fit(FORMULA)
        imp = df.mi.impute(cluster=["school", "class"], m=m, iterations=iterations, rng=s1)
        res = imp.fit(FORMULA)
    out = {}
    for key, r in (("com", complete), ("imp", res)):
        p = r.pooled
        out[f"{key}_q"] = p.qbar
        out[f"{key}_u"] = np.diag(p.ubar)
        out[f"{key}_b"] = np.diag(p.b)
        out[f"{key}_dfcom"] = p.dfcom
        out[f"{key}_vc"] = r.variance_components()["estimate"].to_numpy()[:3]
    out["imp_per"] = r.per_imputation.to_numpy()
    return out


def run(args):
    seeds = np.random.SeedSequence(args.seed).generate_state(args.start + args.reps)
    rows = []
    t0 = time.process_time()
    for i in range(args.start, args.start + args.reps):
        rows.append(one(int(seeds[i]), args.m, args.iterations))
        if (i + 1) % 10 == 0:
            print(f"rep {i + 1}  cpu {time.process_time() - t0:.0f} s", flush=True)
            save(args.out, rows, args)
    save(args.out, rows, args)


def save(path, rows, args):
    arrays = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    np.savez(path, m=args.m, iterations=args.iterations, **arrays)


def coverage(q, u, b, m, dfcom, level=0.95):
    t = u + (1 + 1 / m) * b
    dfcom = np.broadcast_to(np.asarray(dfcom, dtype=float), t.shape)
    df = np.empty(t.shape)
    for idx in np.ndindex(t.shape):  # Barnard-Rubin df with a dfcom per coefficient
        df[idx] = barnard_rubin_df(m, [b[idx]], [t[idx]], dfcom[idx])[0]
    crit = stats.t.ppf(0.5 + level / 2, df)
    return np.abs(q - BETA) < crit * np.sqrt(t)


def summary(paths):
    d = {}
    for p in paths:
        z = np.load(p)
        m = int(z["m"])
        for k in z.files:
            if k not in ("m", "iterations"):
                d.setdefault(k, []).append(z[k])
    d = {k: np.concatenate(v) for k, v in d.items()}
    R = d["com_q"].shape[0]
    print(f"{R} replications, m = {m}")
    mc = lambda p: np.sqrt(p * (1 - p) / R)  # noqa: E731
    vc = d["imp_vc"].mean(0) / d["com_vc"].mean(0)
    print("variance components imputed / complete:", dict(zip(VC, vc.round(3), strict=True)))
    fe = d["imp_q"].mean(0) / d["com_q"].mean(0)
    print("fixed effects imputed / complete:      ", dict(zip(NAMES, fe.round(3), strict=True)))
    print(
        "bias vs truth (imputed, complete):",
        (d["imp_q"].mean(0) - BETA).round(4),
        (d["com_q"].mean(0) - BETA).round(4),
    )
    big = 1e12
    com = coverage(d["com_q"], d["com_u"], 0 * d["com_u"], 2, big)
    print("complete-data coverage (normal):", com.mean(0).round(3))
    # complete-data coverage with df = J - 1 of each coefficient's level
    dfl = np.array([49.0, big, 199.0 - 50.0, 49.0])
    crit = stats.t.ppf(0.975, dfl)
    print(
        "complete-data coverage (t, df J-1):",
        (np.abs(d["com_q"] - BETA) < crit * np.sqrt(d["com_u"])).mean(0).round(3),
    )
    print(
        "complete-data SE: empirical sd of estimates / mean model SE:",
        (d["com_q"].std(0, ddof=1) / np.sqrt(d["com_u"]).mean(0)).round(3),
    )
    cov = coverage(d["imp_q"], d["imp_u"], d["imp_b"], m, d["imp_dfcom"][0])
    p = cov.mean(0)
    print("imputed coverage (as reported):", p.round(3), "MC SE", mc(p).round(3))
    covl = coverage(d["imp_q"], d["imp_u"], d["imp_b"], m, dfl[None, :] * np.ones_like(d["imp_u"]))
    print("imputed coverage (dfcom J-1):  ", covl.mean(0).round(3))
    # proper imputation: var(qbar - qcom) over replications against (1 + 1/m) B
    diff = d["imp_q"] - d["com_q"]
    print(
        "var(qbar - qcom) / mean((1+1/m) B):",
        (diff.var(0, ddof=1) / ((1 + 1 / m) * d["imp_b"]).mean(0)).round(3),
    )
    se = diff.std(0, ddof=1) / np.sqrt(R)
    print("mean(qbar - qcom):", diff.mean(0).round(4), "SE", se.round(4))
    T = d["imp_u"] + (1 + 1 / m) * d["imp_b"]
    print(
        "empirical sd(qbar) / mean sqrt(T):",
        (d["imp_q"].std(0, ddof=1) / np.sqrt(T).mean(0)).round(3),
    )
    print("mean U imp / U com:", (d["imp_u"].mean(0) / d["com_u"].mean(0)).round(3))
    print("fmi approx (1+1/m)B/T:", ((1 + 1 / m) * d["imp_b"] / T).mean(0).round(3))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--m", type=int, default=5)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--out", default="cover.npz")
    ap.add_argument("--summary", nargs="+")
    a = ap.parse_args()
    if a.summary:
        summary(a.summary)
    else:
        run(a)
