"""Model-based imputation against R's jomo.lmer, and the count and logit models against
R's nearest equivalents, side by side in one run.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_r_models.py [--repeat 3] [--m 20]
                                    [--no-equal] [--no-counts] [--keep DIR]

A script, not a test: nothing is asserted. Two data sets are written to CSV in a
temporary directory and imputed by mlimpute in this process and by R (one ``Rscript``
process for everything, after this process' runs):

* **Design (a)** of the compatible-imputation study
  (``mlimpute.simulation.compatible.designs.DESIGNS["a"]``, data set drawn with
  ``default_rng(1)``): 100 clusters of 10, ``z`` at the cluster level, ``x`` with
  ICC 0.2, ``y = 1 - 0.5 z + (0.5 + u1) x + u0 + e``, 25 % of ``x`` missing at random
  on ``y`` and ``z``, 15 % of ``y`` missing completely at random. Analysis model
  ``y ~ x + z + (1 + x | g)``.

  - mlimpute: ``df.mi.impute(model="y ~ x + z + (1 + x | g)", m=m, rng=1)`` at its
    defaults (m chains of 20 iterations) and, unless ``--no-equal``, with
    ``iterations=1000`` (m chains of 1,000: 1,000 m iterations, as many as jomo's one
    chain);
  - R: ``jomo.lmer(y ~ x + z + (1 + x | g), data, level = c(1, 1, 2, 1), nimp = m)`` at
    its defaults (``nburn = 1000``, ``nbetween = 1000``: one chain of
    1,000 + 1,000 (m - 1) iterations).

* **Counts and binary** (50 clusters of 20, ``x ~ N(0, 1)``,
  ``eta = 0.5 + 0.4 x + b_g`` with ``b_g ~ N(0, 0.5^2)``; ``yc`` negative binomial with
  mean ``exp(eta)`` and size 2, ``yb`` = 1 when ``eta`` plus logistic noise is
  positive; 30 % of each missing completely at random), each variable imputed alone
  from ``~ x + (1 | g)``, m = 5, 10 iterations on both sides:

  - mlimpute ``2l.poisson``, ``2l.nb`` and (for scale) ``2l.norm`` on ``yc``;
    ``2l.logit`` and (for scale) the probit ``2l.bin`` on ``yb``;
  - R: mice ``2l.bin`` (a logistic mixed model fitted by ``glmer``) on ``yb``, and,
    for scale, mice ``2l.lmer`` (normal) on ``yc``; ``maxit = 10``, predictor matrix
    ``g`` -2, ``x`` 1. No multilevel count imputer is packaged for Debian (countimp,
    micemd and mdmb are not; jomo's ``jomo.glmer`` takes binomial or gaussian only),
    so the count rows have no R figure.

Every time is measured around the call alone, after the packages are loaded and the
data read: in R with ``system.time``, in Python with ``time.perf_counter`` and
``time.process_time``; the best of ``--repeat`` runs after a warm-up run (a call
whose warm-up takes more than 5 s counts its warm-up as the first run). Wall and CPU
seconds are both printed; the machine may be shared, so the ratios use CPU seconds.
Without ``Rscript`` (or the R packages: ``apt-get install r-cran-jomo r-cran-mice
r-cran-lme4``) only mlimpute's figures are printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import mlimpute
from mlimpute.simulation.compatible.designs import DESIGNS

MODEL_A = "y ~ x + z + (1 + x | g)"
EQUAL_ITERATIONS = 1000  # jomo.lmer's nbetween: m chains of 1,000 = its one chain's length
COUNT_M, COUNT_ITERATIONS = 5, 10
COUNT_ROWS = [  # (case, variable, mlimpute model)
    ("count yc", "yc", "2l.poisson"),
    ("count yc", "yc", "2l.nb"),
    ("count yc", "yc", "2l.norm"),
    ("binary yb", "yb", "2l.logit"),
    ("binary yb", "yb", "2l.bin"),
]

# The R side. Arguments: data directory, repeats, the m values separated by commas,
# "counts" or "nocounts". Prints "VERSION name version" and
# "RESULT case tool wall cpu" (tab-separated).
R_SCRIPT = r"""
args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]; reps <- as.integer(args[2])
ms <- as.integer(strsplit(args[3], ",")[[1]]); do_counts <- args[4] == "counts"
suppressPackageStartupMessages({library(jomo); library(mice); library(lme4)})
cat(sprintf("VERSION\t%s\t%s\n", "R", paste(R.version$major, R.version$minor, sep = ".")))
for (p in c("jomo", "mice", "lme4"))
  cat(sprintf("VERSION\t%s\t%s\n", p, as.character(packageVersion(p))))
one_run <- function(f) {
  t <- system.time(f())
  c(wall = t[["elapsed"]], cpu = t[["user.self"]] + t[["sys.self"]])
}
timed <- function(case, tool, f) {
  first <- one_run(f)
  runs <- sapply(seq_len(if (first[["wall"]] > 5) reps - 1L else reps),
                 function(i) one_run(f))
  if (first[["wall"]] > 5) runs <- cbind(first, runs)
  best <- runs[, which.min(runs["cpu", ])]
  cat(sprintf("RESULT\t%s\t%s\t%.4f\t%.4f\n", case, tool, best[["wall"]], best[["cpu"]]))
  flush(stdout())
}

a <- read.csv(file.path(dir, "design_a.csv"))
a$g <- as.integer(a$g)
a <- a[, c("y", "x", "z", "g")]
for (m in ms) {
  timed(sprintf("design (a), m = %d", m), "jomo.lmer (defaults)", function()
    jomo.lmer(y ~ x + z + (1 + x | g), data = a, level = c(1, 1, 2, 1), nimp = m,
              output = 0))
}

if (do_counts) {
  d <- read.csv(file.path(dir, "counts.csv"))
  setup <- function(var, method) {
    dat <- d[, c("g", "x", var)]
    meth <- make.method(dat); meth[] <- ""; meth[var] <- method
    pred <- make.predictorMatrix(dat); pred[, ] <- 0
    pred[var, c("g", "x")] <- c(-2, 1)
    list(data = dat, method = meth, pred = pred)
  }
  for (row in list(c("binary yb", "yb", "2l.bin"), c("count yc", "yc", "2l.lmer"))) {
    s <- setup(row[2], row[3])
    timed(row[1], paste("mice", row[3]), function()
      suppressWarnings(suppressMessages(
        mice(s$data, m = 5, maxit = 10, method = s$method, predictorMatrix = s$pred,
             printFlag = FALSE, seed = 1))))
  }
}
"""


def timed(fn, repeat: int) -> tuple[float, float]:
    """Best (by CPU seconds) of ``repeat`` runs after a warm-up run: (wall, cpu). A
    warm-up longer than 5 s counts as the first run."""
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    first = (time.perf_counter() - w0, time.process_time() - c0)
    runs = [first] if first[0] > 5 else []
    while len(runs) < repeat:
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        runs.append((time.perf_counter() - w0, time.process_time() - c0))
    return min(runs, key=lambda r: r[1])


def counts_data(rng: int = 1) -> pd.DataFrame:
    """50 clusters of 20: a negative binomial count ``yc`` and a binary ``yb``, each 30 %
    missing completely at random."""
    gen = np.random.default_rng(rng)
    J, n = 50, 20
    g = np.repeat(np.arange(J), n)
    x = gen.standard_normal(J * n)
    eta = 0.5 + 0.4 * x + gen.normal(0.0, 0.5, J)[g]
    yb = (eta + gen.logistic(size=J * n) > 0).astype(float)
    yc = gen.poisson(gen.gamma(2.0, np.exp(eta) / 2.0)).astype(float)
    yc[gen.random(J * n) < 0.3] = np.nan
    yb[gen.random(J * n) < 0.3] = np.nan
    return pd.DataFrame({"g": g, "x": x, "yb": yb, "yc": yc})


def run_mlimpute(repeat: int, ms: list[int], equal: bool, counts: bool, outdir: Path):
    """Time mlimpute's rows; write the data for R."""
    _, a = DESIGNS["a"].generate(np.random.default_rng(1))
    a.to_csv(outdir / "design_a.csv", index=False, na_rep="NA")
    results = []

    def add(case, tool, t):
        results.append((case, tool, *t))
        print(f"  {case:<22} {tool:<34} wall {t[0]:8.3f}  cpu {t[1]:8.3f}", flush=True)

    for m in ms:
        case = f"design (a), m = {m}"
        add(
            case,
            "mlimpute (defaults)",
            timed(lambda m=m: a.mi.impute(model=MODEL_A, m=m, rng=1), repeat),
        )
        if equal:
            add(
                case,
                f"mlimpute ({EQUAL_ITERATIONS:,} iterations)",
                timed(
                    lambda m=m: a.mi.impute(model=MODEL_A, m=m, iterations=EQUAL_ITERATIONS, rng=1),
                    repeat,
                ),
            )
    if counts:
        d = counts_data()
        d.to_csv(outdir / "counts.csv", index=False, na_rep="NA")
        for case, var, model in COUNT_ROWS:
            sub = d[["g", "x", var]]
            add(
                case,
                f"mlimpute {model}",
                timed(
                    lambda sub=sub, var=var, model=model: sub.mi.impute(
                        {var: "~ x + (1 | g)"},
                        method={var: model},
                        m=COUNT_M,
                        iterations=COUNT_ITERATIONS,
                        rng=1,
                    ),
                    repeat,
                ),
            )
    versions = {
        "mlimpute": mlimpute.__version__,
        "Python": sys.version.split()[0],
        "numpy": np.__version__,
    }
    return results, versions


def run_r(repeat: int, ms: list[int], counts: bool, outdir: Path):
    """Run the R side; returns results, versions and an error message (or None)."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        return [], {}, "Rscript not found: R is not installed (only mlimpute's figures)"
    script = outdir / "bench.R"
    script.write_text(R_SCRIPT)
    cmd = [
        rscript,
        "--vanilla",
        str(script),
        str(outdir),
        str(repeat),
        ",".join(map(str, ms)),
        "counts" if counts else "nocounts",
    ]
    results, versions = [], {}
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        for line in proc.stdout:
            parts = line.rstrip("\n").split("\t")
            if parts[0] == "VERSION":
                versions[parts[1]] = parts[2]
            elif parts[0] == "RESULT":
                wall, cpu = float(parts[3]), float(parts[4])
                results.append((parts[1], parts[2], wall, cpu))
                print(
                    f"  {parts[1]:<22} {parts[2]:<34} wall {wall:8.3f}  cpu {cpu:8.3f}",
                    flush=True,
                )
        err = proc.stderr.read()
    if proc.returncode != 0:
        return results, versions, f"Rscript failed ({proc.returncode}):\n{err.strip()}"
    return results, versions, None


def table(results: list) -> str:
    """Markdown table: one row per case and tool, CPU and wall seconds, and for each
    mlimpute row of a case with an R row the CPU ratio R / mlimpute."""
    r_cpu = {}
    for case, tool, _, cpu in results:
        if not tool.startswith("mlimpute"):
            r_cpu.setdefault(case, (tool, cpu))
    lines = [
        "| case | tool | CPU s | wall s | R's CPU / this |",
        "|---|---|---:|---:|---:|",
    ]
    order = {c: i for i, c in enumerate(dict.fromkeys(r[0] for r in results))}
    for case, tool, wall, cpu in sorted(results, key=lambda r: order[r[0]]):
        ratio = ""
        if tool.startswith("mlimpute") and case in r_cpu:
            ratio = f"{r_cpu[case][1] / cpu:.1f}x ({r_cpu[case][0]})"
        lines.append(f"| {case} | {tool} | {cpu:.3f} | {wall:.3f} | {ratio} |")
    return "\n".join(lines)


def main() -> None:
    warnings.simplefilter("ignore")
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=3, help="timed runs per case (best kept)")
    p.add_argument("--m", type=int, nargs="+", default=[20], help="imputations, design (a)")
    p.add_argument("--no-equal", action="store_true", help="skip the 1,000-iteration run")
    p.add_argument("--no-counts", action="store_true", help="skip the count and binary rows")
    p.add_argument("--keep", metavar="DIR", help="write the CSVs and bench.R here and keep them")
    a = p.parse_args()
    print(
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
        f"{os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC"
    )
    with tempfile.TemporaryDirectory() as tmp:
        outdir = Path(a.keep or tmp)
        outdir.mkdir(parents=True, exist_ok=True)
        print("mlimpute:")
        results, versions = run_mlimpute(a.repeat, a.m, not a.no_equal, not a.no_counts, outdir)
        print("R:")
        r_results, r_versions, error = run_r(a.repeat, a.m, not a.no_counts, outdir)
    if error:
        print(error)
    results += r_results
    versions.update(r_versions)
    print()
    print(", ".join(f"{k} {v}" for k, v in versions.items()))
    print(
        f"Best (by CPU seconds) of {a.repeat} runs after a warm-up "
        f"({time.strftime('%H:%M', time.gmtime())} UTC, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())})"
    )
    print()
    print(table(results))


if __name__ == "__main__":
    main()
