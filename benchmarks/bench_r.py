"""Imputation (and pooled-fit) times side by side with R's mice and mitml.

    python benchmarks/bench_r.py [--repeat 5] [--no-fit] [--no-norm] [--keep DIR]
                                 [--scaling 6000 60000 ...]

A script, not a test: nothing is asserted. The classroom experiments
(``mlimpute.datasets.classroom(e, rng=1)``, e = 1, 2, 3; 600 children in 30 classes) are
written to CSV files in a temporary directory and imputed

* by mlimpute in this process: ``df.mi.impute(data.imputation, m=m, iterations=10,
  rng=1)``;
* by R (one ``Rscript`` process for everything) with

  - mice ``2l.pan`` for the incomplete level-1 variables, ``maxit = 10``; predictor
    matrix: ``class`` -2, the other predictors 1 (fixed); in experiment 2 the other
    incomplete variable 3 (fixed effect and cluster mean, the ``cmean()`` term of
    mlimpute's formulas); in experiment 3 ``gender`` 2 (random slope) and a column
    ``skill * gender`` 1. ``paniter`` is mice's default (500 iterations of pan's sampler
    per visit);
  - mice ``2l.norm`` with the same predictors coded 2 (``2l.norm`` ignores predictors
    not coded 2: it fits every predictor with a random slope and a class-specific
    residual variance, 100 inner iterations per visit; no cluster means; slow, skipped
    with ``--no-norm``);
  - mitml ``panImpute`` with ``grade ~ 1 + skill + (1|class)``,
    ``grade + relation ~ 1 + gender + skill + (1|class)`` (a joint model: no cluster
    means needed) and ``grade ~ 1 + skill*gender + relation + (1 + gender|class)``,
    ``n.burn = 10``, ``n.iter = 10``: one chain, 10 burn-in iterations and 10 between
    imputations, ``10 + 10 m`` iterations in all against mlimpute's and mice's m chains
    of 10;

  with m = 5 for experiments 1 and 2 and m = 25 for experiment 3.

Also (skipped with ``--no-fit``) the pooled analysis of experiment 3 over the 25 data sets
mlimpute imputed (written to CSV so that R fits the very same data): ``imp.fit(formula)``
against lme4 ``lmer`` on each data set plus mitml ``testEstimates(..., extra.pars=TRUE)``,
for the analysis model ``grade ~ skill * gender + relation + (1 + gender || class)`` and
the correlated ``(1 + gender | class)``.

With ``--scaling N ...`` also experiment-2-like data of N rows in classes of 20 (the
scaling case of ``bench_suite.py``: ``classroom(2, n_classes=N // 20, class_size=20,
rng=1)``), m = 5, imputed by mlimpute and by mitml's joint ``pan`` (mice's ``2l.pan`` is
left out there: 500 inner iterations per visit).

With ``--defaults`` instead: each experiment at mitml's default settings, m = 25:
``panImpute(data, formula)`` (``n.burn = 5000``, ``n.iter = 100``: one chain of
5,000 + 24 x 100 iterations), mlimpute ``df.mi.impute(data.imputation, m=25, rng=1)`` (its
default: 25 chains of 20 iterations, stepped together) and mice ``2l.pan`` with m = 25 and
``maxit = 10`` (the predictors as above). With ``--per-step`` instead: the cost of one
iteration (every incomplete variable visited once) at equal iterations, the difference of
two run lengths: mitml ``pan`` (one chain, ``n.burn`` long and short, m = 2,
``n.iter = 1``) and mlimpute's chains (m = 25 stepped together and one by one: CPU time
per chain and iteration) on the three experiments and on the experiment-2 design at
``--rows`` rows (default 6,000 and 60,000; pan's joint model there).

Every time is wall-clock seconds of the call alone: in R measured inside R
(``proc.time()``) after the packages are loaded and the data read, in Python with
``time.perf_counter``; the best of ``--repeat`` runs after one warm-up run (in R: of 20
runs if the warm-up took less than 0.1 s, of 2 if it took more than 5 s). With each
best run the script reports its CPU seconds and the cores other processes used meanwhile
(machine-wide busy time from ``/proc/stat`` minus the process' own CPU time, over the
wall time): the machine may be shared. Without ``Rscript`` (or without the R packages:
``apt-get install r-cran-mice r-cran-mitml r-cran-lme4``) only mlimpute's figures are
printed.
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
from mlimpute.datasets import IMPUTATION_FORMULAS, classroom

EXPERIMENTS = {1: 5, 2: 5, 3: 25}  # experiment: m
ITERATIONS = 10
FIT_FORMULAS = {
    "fit, uncorrelated": "grade ~ skill * gender + relation + (1 + gender || class)",
    "fit, correlated": "grade ~ skill * gender + relation + (1 + gender | class)",
}
TOOLS = [
    "mlimpute",
    "mlimpute (m=25 together)",
    "mlimpute (one by one)",
    "mice 2l.pan",
    "mice 2l.norm",
    "mitml pan",
    "lme4 + mitml",
]

# The R side. Arguments: data directory, repeats, "fit" or "nofit", "norm" or "nonorm",
# the scaling sizes separated by commas (or "none").
# Prints tab-separated lines "VERSION name version" and
# "RESULT case tool elapsed cpu other_cores".
R_SCRIPT = r"""
args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]; reps <- as.integer(args[2]); do_fit <- args[3] == "fit"
do_norm <- args[4] == "norm"
sizes <- integer(0)
if (length(args) >= 5 && args[5] != "none") sizes <- as.integer(strsplit(args[5], ",")[[1]])
suppressPackageStartupMessages({library(mice); library(mitml); library(lme4)})
cat(sprintf("VERSION\t%s\t%s\n", "R", paste(R.version$major, R.version$minor, sep = ".")))
for (p in c("mice", "mitml", "pan", "lme4"))
  cat(sprintf("VERSION\t%s\t%s\n", p, as.character(packageVersion(p))))

busy <- function() {  # machine-wide busy CPU seconds (all but idle and iowait)
  v <- tryCatch(as.numeric(strsplit(readLines("/proc/stat", n = 1), " +")[[1]][-1]),
                error = function(e) NA_real_)
  (sum(v) - v[4] - v[5]) / 100  # USER_HZ
}
own_cpu <- function(t) sum(t[c(1, 2, 4, 5)], na.rm = TRUE)
one_run <- function(f) {
  b0 <- busy(); t0 <- proc.time()
  f()
  t1 <- proc.time(); b1 <- busy()
  wall <- (t1 - t0)[["elapsed"]]; cpu <- own_cpu(t1) - own_cpu(t0)
  c(wall = wall, cpu = cpu, other = ((b1 - b0) - cpu) / max(wall, 1e-9))
}
timed <- function(case, tool, f) {
  warm <- one_run(f)[["wall"]]  # warm-up (also loads lazy namespaces such as pan)
  n <- if (warm > 5) min(reps, 2L) else if (warm < 0.1) max(reps, 20L) else reps
  runs <- sapply(seq_len(n), function(i) one_run(f))
  best <- runs[, which.min(runs["wall", ])]
  cat(sprintf("RESULT\t%s\t%s\t%.4f\t%.4f\t%.2f\n", case, tool,
              best[["wall"]], best[["cpu"]], best[["other"]]))
  flush(stdout())
}

mice_setup <- function(dat, e, random_all) {
  code <- function(x) if (random_all) 2 else x
  meth <- make.method(dat); meth[] <- ""
  pred <- make.predictorMatrix(dat); pred[, ] <- 0
  if (e == 1) {
    pred["grade", c("class", "skill")] <- c(-2, code(1))
    inc <- "grade"
  } else if (e == 2) {
    pred["relation", c("class", "skill", "gender", "grade")] <-
      c(-2, code(1), code(1), code(3))
    pred["grade", c("class", "skill", "gender", "relation")] <-
      c(-2, code(1), code(1), code(3))
    inc <- c("relation", "grade")
  } else {
    pred["grade", c("class", "skill", "gender", "relation", "skill_gender")] <-
      c(-2, code(1), 2, code(1), code(1))
    inc <- "grade"
  }
  meth[inc] <- if (random_all) "2l.norm" else "2l.pan"
  list(method = meth, pred = pred)
}
pan_formula <- list(
  grade ~ 1 + skill + (1 | class),
  grade + relation ~ 1 + gender + skill + (1 | class),
  grade ~ 1 + skill * gender + relation + (1 + gender | class)
)
ms <- c(5L, 5L, 25L)

for (e in 1:3) {
  dat <- read.csv(file.path(dir, sprintf("exp%d.csv", e)))
  if (e == 3) dat$skill_gender <- dat$skill * dat$gender
  m <- ms[e]; case <- sprintf("experiment %d (m=%d)", e, m)
  for (tool in c("mice 2l.pan", if (do_norm) "mice 2l.norm")) {
    s <- mice_setup(dat, e, random_all = tool == "mice 2l.norm")
    timed(case, tool, function()
      mice(dat, m = m, maxit = 10, method = s$method, predictorMatrix = s$pred,
           printFlag = FALSE, seed = 1))
  }
  timed(case, "mitml pan", function()
    panImpute(dat, formula = pan_formula[[e]], n.burn = 10, n.iter = 10, m = m,
              seed = 1, silent = TRUE))
}

for (n in sizes) {
  dat <- read.csv(file.path(dir, sprintf("scale%d.csv", n)))
  timed(sprintf("N=%s (m=5)", format(n, big.mark = ",")), "mitml pan", function()
    panImpute(dat, formula = pan_formula[[2]], n.burn = 10, n.iter = 10, m = 5L,
              seed = 1, silent = TRUE))
}

if (do_fit) {
  long <- read.csv(file.path(dir, "exp3_long.csv"))
  sets <- split(long, long$imputation)
  fits <- list(
    "fit, uncorrelated" = grade ~ skill * gender + relation + (1 + gender || class),
    "fit, correlated" = grade ~ skill * gender + relation + (1 + gender | class)
  )
  for (case in names(fits)) {
    fml <- fits[[case]]
    timed(sprintf("%s (m=%d)", case, length(sets)), "lme4 + mitml", function() {
      models <- suppressMessages(lapply(sets, function(d) lmer(fml, data = d)))
      testEstimates(models, extra.pars = TRUE, df.com = df.residual(models[[1]]))
    })
  }
}
"""


# The R side of --defaults and --per-step. Arguments: data directory, repeats, mode
# ("defaults" or "perstep"), sizes (comma-separated or "none"), then for "perstep" the
# short and long run lengths per case as "case=short:long" items.
R_MODES = r"""
args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]; reps <- as.integer(args[2]); mode <- args[3]
sizes <- integer(0)
if (args[4] != "none") sizes <- as.integer(strsplit(args[4], ",")[[1]])
suppressPackageStartupMessages({library(mice); library(mitml)})
cat(sprintf("VERSION\t%s\t%s\n", "R", paste(R.version$major, R.version$minor, sep = ".")))
for (p in c("mice", "mitml", "pan"))
  cat(sprintf("VERSION\t%s\t%s\n", p, as.character(packageVersion(p))))
own_cpu <- function(t) sum(t[c(1, 2, 4, 5)], na.rm = TRUE)
one_run <- function(f) {
  t0 <- proc.time(); f(); t1 <- proc.time()
  c(wall = (t1 - t0)[["elapsed"]], cpu = own_cpu(t1) - own_cpu(t0))
}
best <- function(f, n) {
  one_run(f)
  runs <- sapply(seq_len(n), function(i) one_run(f))
  runs[, which.min(runs["cpu", ])]
}
emit <- function(case, tool, b) {
  cat(sprintf("RESULT\t%s\t%s\t%.6e\t%.6e\t0\n", case, tool, b[["wall"]], b[["cpu"]]))
  flush(stdout())
}
pan_formula <- list(
  grade ~ 1 + skill + (1 | class),
  grade + relation ~ 1 + gender + skill + (1 | class),
  grade ~ 1 + skill * gender + relation + (1 + gender | class)
)
mice_setup <- function(dat, e) {
  meth <- make.method(dat); meth[] <- ""
  pred <- make.predictorMatrix(dat); pred[, ] <- 0
  if (e == 1) {
    pred["grade", c("class", "skill")] <- c(-2, 1); inc <- "grade"
  } else if (e == 2) {
    pred["relation", c("class", "skill", "gender", "grade")] <- c(-2, 1, 1, 3)
    pred["grade", c("class", "skill", "gender", "relation")] <- c(-2, 1, 1, 3)
    inc <- c("relation", "grade")
  } else {
    pred["grade", c("class", "skill", "gender", "relation", "skill_gender")] <-
      c(-2, 1, 2, 1, 1)
    inc <- "grade"
  }
  meth[inc] <- "2l.pan"
  list(method = meth, pred = pred)
}
lengths <- list()
if (length(args) > 4) for (a in args[5:length(args)]) {
  kv <- strsplit(a, "=")[[1]]; lengths[[kv[1]]] <- as.integer(strsplit(kv[2], ":")[[1]])
}
for (e in 1:3) {
  dat <- read.csv(file.path(dir, sprintf("exp%d.csv", e)))
  if (e == 3) dat$skill_gender <- dat$skill * dat$gender
  case <- sprintf("experiment %d", e)
  if (mode == "defaults") {
    emit(case, "mitml pan", best(function()
      panImpute(dat, formula = pan_formula[[e]], m = 25, seed = 1, silent = TRUE), reps))
    s <- mice_setup(dat, e)
    emit(case, "mice 2l.pan", best(function()
      mice(dat, m = 25, maxit = 10, method = s$method, predictorMatrix = s$pred,
           printFlag = FALSE, seed = 1), 1))
  } else {
    n <- lengths[[case]]
    a <- best(function() panImpute(dat, formula = pan_formula[[e]], n.burn = n[1],
                                   n.iter = 1, m = 2, seed = 1, silent = TRUE), reps)
    b <- best(function() panImpute(dat, formula = pan_formula[[e]], n.burn = n[2],
                                   n.iter = 1, m = 2, seed = 1, silent = TRUE), reps)
    emit(case, "mitml pan", (b - a) / (n[2] - n[1]))
  }
}
for (N in sizes) {
  dat <- read.csv(file.path(dir, sprintf("scale%d.csv", N)))
  case <- sprintf("experiment-2 design, %d rows", N)
  n <- lengths[[case]]
  a <- best(function() panImpute(dat, formula = pan_formula[[2]], n.burn = n[1],
                                 n.iter = 1, m = 2, seed = 1, silent = TRUE), reps)
  b <- best(function() panImpute(dat, formula = pan_formula[[2]], n.burn = n[2],
                                 n.iter = 1, m = 2, seed = 1, silent = TRUE), reps)
  emit(case, "mitml pan", (b - a) / (n[2] - n[1]))
}
"""


def _busy() -> tuple[float, float]:
    """Machine-wide busy CPU seconds (Linux ``/proc/stat``) and this process' CPU seconds."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    t = os.times()
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK"), t.user + t.system


def timed(fn, repeat: int) -> tuple[float, float, float]:
    """Best wall time of ``repeat`` runs after a warm-up, with that run's CPU time and the
    cores other processes used meanwhile."""
    fn()
    runs = []
    for _ in range(repeat):
        try:
            b0, c0 = _busy()
        except OSError:
            b0 = c0 = float("nan")
        t0 = time.perf_counter()
        fn()
        wall = time.perf_counter() - t0
        try:
            b1, c1 = _busy()
        except OSError:
            b1 = c1 = float("nan")
        runs.append((wall, c1 - c0, ((b1 - b0) - (c1 - c0)) / max(wall, 1e-9)))
    return min(runs)


def run_scaling(sizes: list[int], repeat: int, outdir: Path) -> list:
    """Time mlimpute on experiment-2-like data of each size; write the data for R."""
    results = []
    for n in sizes:
        df = classroom(2, n_classes=n // 20, class_size=20, rng=1).incomplete
        df.to_csv(outdir / f"scale{n}.csv", index=False)
        case = f"N={n:,} (m=5)"
        t = timed(
            lambda df=df: df.mi.impute(IMPUTATION_FORMULAS[2], m=5, iterations=ITERATIONS, rng=1),
            repeat,
        )
        results.append((case, "mlimpute", *t))
        print(f"  {case:<24} mlimpute      {t[0]:8.3f} s", flush=True)
    return results


def run_mlimpute(repeat: int, fit: bool, outdir: Path) -> tuple[list, dict]:
    """Time mlimpute; write the experiments' data (and experiment 3's 25 completed data
    sets) to ``outdir`` for R."""
    results = []
    for e, m in EXPERIMENTS.items():
        d = classroom(e, rng=1)
        d.incomplete.to_csv(outdir / f"exp{e}.csv", index=False)
        case = f"experiment {e} (m={m})"
        t = timed(
            lambda d=d, m=m: d.incomplete.mi.impute(
                d.imputation, m=m, iterations=ITERATIONS, rng=1
            ),
            repeat,
        )
        results.append((case, "mlimpute", *t))
        print(f"  {case:<24} mlimpute      {t[0]:8.3f} s", flush=True)
        if e == 3 and fit:
            imp = d.incomplete.mi.impute(d.imputation, m=m, iterations=ITERATIONS, rng=1)
            imp.complete("long").to_csv(outdir / "exp3_long.csv", index=False)
            for name, formula in FIT_FORMULAS.items():
                case = f"{name} (m={m})"
                t = timed(lambda imp=imp, f=formula: imp.fit(f), repeat)
                results.append((case, "mlimpute", *t))
                print(f"  {case:<24} mlimpute      {t[0]:8.3f} s", flush=True)
    versions = {
        "mlimpute": mlimpute.__version__,
        "Python": sys.version.split()[0],
        "numpy": np.__version__,
        "pandas": pd.__version__,
    }
    return results, versions


def run_r(
    repeat: int, fit: bool, norm: bool, outdir: Path, sizes: list[int] = ()
) -> tuple[list, dict, str | None]:
    """Run the R side; returns results, versions and an error message (or None)."""
    args = ["fit" if fit else "nofit", "norm" if norm else "nonorm"]
    return _rscript(R_SCRIPT, outdir, repeat, [*args, ",".join(map(str, sizes)) or "none"])


def _rscript(
    text: str, outdir: Path, repeat: int, extra: list[str]
) -> tuple[list, dict, str | None]:
    """Run the R script ``text`` with arguments (outdir, repeat, *extra); collect its
    RESULT and VERSION lines."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        return [], {}, "Rscript not found: R is not installed (only mlimpute's figures)"
    script = outdir / "bench.R"
    script.write_text(text)
    cmd = [rscript, "--vanilla", str(script), str(outdir), str(repeat), *extra]
    results, versions = [], {}
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        for line in proc.stdout:
            parts = line.rstrip("\n").split("\t")
            if parts[0] == "VERSION":
                versions[parts[1]] = parts[2]
            elif parts[0] == "RESULT":
                case, tool = parts[1], parts[2]
                wall, cpu, other = (float(x) for x in parts[3:6])
                results.append((case, tool, wall, cpu, other))
                print(f"  {case:<24} {tool:<13} {wall:8.3f} s", flush=True)
        err = proc.stderr.read()
    if proc.returncode != 0:
        return results, versions, f"Rscript failed ({proc.returncode}):\n{err.strip()}"
    return results, versions, None


def _cpu_best(fn, repeat: int) -> tuple[float, float]:
    """Best CPU seconds (``time.process_time``) of ``repeat`` runs after a warm-up, and
    that run's wall seconds."""
    fn()
    runs = []
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        runs.append((time.process_time() - c0, time.perf_counter() - w0))
    return min(runs)


def run_defaults(repeat: int, outdir: Path) -> list:
    """mlimpute at its defaults (m = 25 chains of 20 iterations) on each experiment."""
    results = []
    for e in EXPERIMENTS:
        d = classroom(e, rng=1)
        d.incomplete.to_csv(outdir / f"exp{e}.csv", index=False)
        cpu, wall = _cpu_best(lambda d=d: d.incomplete.mi.impute(d.imputation, m=25, rng=1), repeat)
        results.append((f"experiment {e}", "mlimpute", wall, cpu, 0.0))
        print(f"  experiment {e:<13} mlimpute      cpu {cpu:8.3f} s", flush=True)
    return results


#: (short, long) run lengths for the per-iteration costs: mlimpute's chains, pan's chain
PER_STEP = {
    600: ((10, 30), (500, 5000)),
    6_000: ((5, 15), (100, 1000)),
    60_000: ((2, 6), (20, 200)),
}


def _lengths(n: int) -> tuple[tuple[int, int], tuple[int, int]]:
    return PER_STEP[min(PER_STEP, key=lambda k: abs(np.log(k / n)))]


def run_per_step(repeat: int, outdir: Path, sizes: list[int]) -> tuple[list, list[str]]:
    """mlimpute's CPU time per chain and iteration, chains stepped together (m = 25 up to
    20,000 rows, else m = 5, where they run one by one anyway) and one by one; also
    writes the data and returns pan's run lengths for R."""
    from mlimpute.rng import chain_seeds
    from mlimpute.sampler.batched import run_block
    from mlimpute.sampler.engine import build_plan
    from mlimpute.spec.build import build_spec

    cases = []
    for e in EXPERIMENTS:
        d = classroom(e, rng=1)
        d.incomplete.to_csv(outdir / f"exp{e}.csv", index=False)
        cases.append((f"experiment {e}", d.incomplete, d.imputation))
    for n in sizes:
        df = classroom(2, n_classes=n // 20, class_size=20, rng=1).incomplete
        df.to_csv(outdir / f"scale{n}.csv", index=False)
        cases.append((f"experiment-2 design, {n} rows", df, IMPUTATION_FORMULAS[2]))
    results, r_args = [], []
    for case, df, formulas in cases:
        (short, long), pan = _lengths(len(df))
        r_args.append(f"{case}={pan[0]}:{pan[1]}")
        m = 25 if len(df) <= 20_000 else 5
        spec = build_spec(df, formulas, m=m, iterations=long)
        plan = build_plan(df.copy(), spec)
        seeds = chain_seeds(1, m)[0]
        for batch, tool in (("auto", f"mlimpute (m={m} together)"), (1, "mlimpute (one by one)")):
            if batch == "auto" and m == 5:
                continue
            t = [
                _cpu_best(
                    lambda it=it, b=batch, plan=plan, seeds=seeds: run_block(
                        plan, [(k, s, None, it) for k, s in enumerate(seeds)], b
                    ),
                    repeat,
                )[0]
                for it in (short, long)
            ]
            per = (t[1] - t[0]) / (m * (long - short))
            results.append((case, tool, per, per, 0.0))
            print(f"  {case:<32} {tool:<24} {per * 1e3:8.3f} ms", flush=True)
    return results, r_args


def table(results: list) -> str:
    """Markdown table: cases down, tools across, best wall seconds."""
    cases = list(dict.fromkeys(r[0] for r in results))
    tools = [t for t in TOOLS if any(r[1] == t for r in results)]
    cell = {(r[0], r[1]): r[2] for r in results}
    lines = ["| case | " + " | ".join(tools) + " |", "|---|" + "---:|" * len(tools)]
    for c in cases:
        vals = [f"{cell[c, t]:.3f}" if (c, t) in cell else "" for t in tools]
        lines.append(f"| {c} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def main() -> None:
    warnings.simplefilter("ignore")  # short runs warn about convergence; singular fits
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=5, help="timed runs per case (best kept)")
    p.add_argument("--no-fit", action="store_true", help="skip the pooled-fit comparison")
    p.add_argument("--no-norm", action="store_true", help="skip mice's (slow) 2l.norm")
    p.add_argument("--keep", metavar="DIR", help="write the CSVs and bench.R here and keep them")
    p.add_argument(
        "--scaling",
        type=int,
        nargs="+",
        default=[],
        metavar="N",
        help="also N rows of experiment-2-like data (mlimpute and mitml pan)",
    )
    p.add_argument(
        "--defaults",
        action="store_true",
        help="instead: mitml's default settings, m = 25 (mlimpute and mice m = 25 too)",
    )
    p.add_argument(
        "--per-step",
        action="store_true",
        help="instead: CPU time per iteration at equal iterations (mlimpute, mitml pan)",
    )
    p.add_argument("--rows", type=int, nargs="*", default=[6_000, 60_000])
    args = p.parse_args()
    fit = not args.no_fit
    if args.defaults or args.per_step:
        _modes(args)
        return

    print(
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
        f"{os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC"
    )
    with tempfile.TemporaryDirectory() as tmp:
        outdir = Path(args.keep or tmp)
        outdir.mkdir(parents=True, exist_ok=True)
        print("mlimpute:")
        results, versions = run_mlimpute(args.repeat, fit, outdir)
        results += run_scaling(args.scaling, args.repeat, outdir)
        print("R:")
        r_results, r_versions, error = run_r(
            args.repeat, fit, not args.no_norm, outdir, args.scaling
        )
    if error:
        print(error)
    results += r_results
    versions.update(r_versions)

    print()
    print(", ".join(f"{k} {v}" for k, v in versions.items()))
    print(
        f"Seconds: best of {args.repeat} after a warm-up run (R: 20 runs under 0.1 s, "
        f"2 over 5 s); m chains of {ITERATIONS} iterations (mitml: n.burn = 10, "
        "n.iter = 10)."
    )
    print()
    print(table(results))
    print()
    print("Best runs: CPU seconds and other processes' cores meanwhile")
    for case, tool, wall, cpu, other in results:
        print(f"  {case:<24} {tool:<13} wall {wall:7.3f}  cpu {cpu:7.3f}  other {other:5.2f}")


def _modes(args: argparse.Namespace) -> None:
    """``--defaults`` / ``--per-step``: CPU seconds side by side (the machine is shared)."""
    print(
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
        f"{os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC"
    )
    with tempfile.TemporaryDirectory() as tmp:
        outdir = Path(args.keep or tmp)
        outdir.mkdir(parents=True, exist_ok=True)
        print("mlimpute:")
        if args.defaults:
            results, r_args = run_defaults(args.repeat, outdir), ["defaults", "none"]
        else:
            results, lengths = run_per_step(args.repeat, outdir, args.rows)
            r_args = ["perstep", ",".join(map(str, args.rows)) or "none", *lengths]
        print("R:")
        r_results, versions, error = _rscript(R_MODES, outdir, args.repeat, r_args)
    if error:
        print(error)
    results += r_results
    print()
    print(", ".join(f"{k} {v}" for k, v in versions.items()))
    unit = "CPU seconds per call" if args.defaults else "CPU milliseconds per iteration"
    print(f"{unit}, best of {args.repeat} after a warm-up (mice: one run)")
    print()
    cases = list(dict.fromkeys(r[0] for r in results))
    tools = [t for t in TOOLS if any(r[1] == t for r in results)]
    cell = {(r[0], r[1]): r[3] * (1 if args.defaults else 1e3) for r in results}
    print("| case | " + " | ".join(tools) + " |")
    print("|---|" + "---:|" * len(tools))
    for c in cases:
        vals = [f"{cell[c, t]:.4g}" if (c, t) in cell else "" for t in tools]
        print(f"| {c} | " + " | ".join(vals) + " |")


if __name__ == "__main__":
    main()
