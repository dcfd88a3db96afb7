"""Design (d): the pooled ``lmean(x)`` analysis by maximum likelihood against plausible values.

    python benchmarks/lmean_ml_study.py [--reps 500] [--iterations 30] [--out FILE]
    python benchmarks/lmean_ml_study.py --report [--out FILE]
    python benchmarks/lmean_ml_study.py --baseline 20000 [--out FILE]

A script, not a test: nothing is asserted. For replications ``0 .. reps − 1`` of design
(d) of the compatible study (200 clusters of five, ICC_x 0.2, ``y = 0.5 x + 0.3 μ_j + u_j
+ e``, 20 % of x missing at random on y) the data are regenerated and imputed model-based
exactly as the study does (m = 20, the study's random numbers; with 30 iterations these
are the study's imputations), and the same imputations are analysed both ways:
``imp.fit(latent="ml")`` (the latent covariate model by maximum likelihood on every
completed data set, pooled) and ``imp.fit(latent="plausible")`` (the drawn ``lmean(x)``
as data, REML). The complete data are fitted by maximum likelihood for reference (Wald
intervals with the normal quantile). One CSV row per (replication, iterations, method,
term), appended as it goes: an interrupted run resumes. ``--report`` prints relative bias
and coverage with Monte Carlo SEs.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from mlimpute.analysis.fitters.latent import fit_latent
from mlimpute.simulation.compatible.designs import DESIGNS
from mlimpute.simulation.compatible.study import CompatibleConfig, _seeds

TERMS = ("x", "lmean(x)")
COLUMNS = ["rep", "iterations", "method", "term", "estimate", "se", "ci_low", "ci_high", "df"]


def replication(r: int, iterations: int) -> list[dict]:
    config = CompatibleConfig()
    design = DESIGNS["d"]
    seeds = _seeds("d", r, config.seed)
    complete, incomplete = design.generate(np.random.default_rng(seeds["data"]))
    rows = []
    codes = np.unique(complete["g"].to_numpy(), return_inverse=True)[1]
    f = fit_latent(complete["x"].to_numpy(), complete["y"].to_numpy(), codes)
    for k, term in ((1, "x"), (2, "lmean(x)")):
        est, se = f.fe_params[k], np.sqrt(f.cov_fe[k, k])
        rows.append(
            dict(
                rep=r,
                iterations=iterations,
                method="complete_ml",
                term=term,
                estimate=est,
                se=se,
                ci_low=est - 1.959964 * se,
                ci_high=est + 1.959964 * se,
                df=np.inf,
            )
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rng = np.random.default_rng(seeds["model"])
        imp = incomplete.mi.impute(model=design.model, m=config.m, iterations=iterations, rng=rng)
        for method in ("ml", "plausible"):
            tab = imp.fit(latent=method).summary()
            for term in TERMS:
                row = tab.loc[term]
                rows.append(
                    dict(
                        rep=r,
                        iterations=iterations,
                        method=method,
                        term=term,
                        **{c: float(row[c]) for c in ("estimate", "se", "ci_low", "ci_high", "df")},
                    )
                )
    return rows


def report(res: pd.DataFrame) -> None:
    truth = DESIGNS["d"].truth
    for (it, method, term), g in res.groupby(["iterations", "method", "term"]):
        n = len(g)
        t = truth[term]
        rel = (g.estimate - t) / t
        cov = ((g.ci_low <= t) & (t <= g.ci_high)).astype(float)
        print(
            f"{it:4d} it  {method:12s} {term:9s} n={n:4d}  mean {g.estimate.mean():.4f}  "
            f"rel. bias {100 * rel.mean():+6.2f} % ± {100 * rel.std(ddof=1) / np.sqrt(n):.2f}  "
            f"coverage {cov.mean():.3f} ± {cov.std(ddof=1) / np.sqrt(n):.3f}  "
            f"SD {g.estimate.std(ddof=1):.3f}  mean SE {g.se.mean():.3f}  "
            f"median CI width {(g.ci_high - g.ci_low).median():.3f}"
        )
    wide = res.pivot_table(
        index=["iterations", "rep"], columns=["method", "term"], values="estimate"
    )
    for it, w in wide.groupby(level=0):
        d = w[("ml", "lmean(x)")] - w[("plausible", "lmean(x)")]
        n = d.notna().sum()
        print(
            f"{it:4d} it  paired ML − plausible, lmean(x): {d.mean():+.4f} ± "
            f"{d.std(ddof=1) / np.sqrt(n):.4f} (n={n})"
        )
        for method in ("ml", "plausible"):
            d = w[(method, "lmean(x)")] - w[("complete_ml", "lmean(x)")]
            print(
                f"{it:4d} it  paired {method} − complete-data ML, lmean(x): {d.mean():+.4f} ± "
                f"{d.std(ddof=1) / np.sqrt(n):.4f}"
            )
    its = sorted(res.iterations.unique())
    if len(its) > 1:
        for method in ("ml", "plausible"):
            a = wide.loc[its[-1]][(method, "lmean(x)")]
            b = wide.loc[its[0]][(method, "lmean(x)")].reindex(a.index)
            d = (a - b).dropna()
            print(
                f"  {method}: {its[-1]} − {its[0]} iterations, lmean(x), paired: "
                f"{d.mean():+.4f} ± {d.std(ddof=1) / np.sqrt(len(d)):.4f} (n={len(d)})"
            )


def baseline(reps: int, out: Path) -> None:
    """Complete-data ML of b2 over replications ``0 .. reps − 1`` (the study's data random
    numbers): the long-run mean against which the study's replications are paired."""
    rows = pd.read_csv(out).to_dict("records") if out.exists() else []
    design = DESIGNS["d"]
    seed = CompatibleConfig().seed
    for r in range(len(rows), reps):
        complete, _ = design.generate(np.random.default_rng(_seeds("d", r, seed)["data"]))
        codes = np.unique(complete["g"].to_numpy(), return_inverse=True)[1]
        f = fit_latent(complete["x"].to_numpy(), complete["y"].to_numpy(), codes)
        rows.append({"rep": r, "b1": f.fe_params[1], "b2": f.fe_params[2]})
        if (r + 1) % 1000 == 0 or r + 1 == reps:
            pd.DataFrame(rows).to_csv(out, index=False)
    b2 = pd.DataFrame(rows).b2.head(reps)
    print(
        f"complete-data ML of b2 over {reps} data sets: {b2.mean():.4f} ± "
        f"{b2.std(ddof=1) / np.sqrt(reps):.4f}"
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=500)
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--iterations", type=int, default=30)
    p.add_argument("--out", default="/work/results/lml/designd_lmean_ml.csv")
    p.add_argument("--report", action="store_true")
    p.add_argument(
        "--baseline",
        type=int,
        default=0,
        help="instead: complete-data ML of b2 over this many data sets (*_baseline.csv)",
    )
    args = p.parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.baseline:
        return baseline(args.baseline, out.with_name(out.stem + "_baseline.csv"))
    if args.report:
        return report(pd.read_csv(out))
    done = set()
    if out.exists():
        old = pd.read_csv(out)
        # a replication counts once all its rows are there (complete_ml, ml, plausible)
        counts = old.groupby(["rep", "iterations"]).size()
        done = {k for k, v in counts.items() if v == 6}
    for r in range(args.start, args.reps):
        if (r, args.iterations) in done:
            continue
        t0 = time.perf_counter()
        rows = replication(r, args.iterations)
        frame = pd.DataFrame(rows, columns=COLUMNS)
        frame.to_csv(out, mode="a", header=not out.exists(), index=False)
        print(f"rep {r} ({args.iterations} it) {time.perf_counter() - t0:.1f} s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
