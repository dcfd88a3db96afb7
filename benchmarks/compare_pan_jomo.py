"""Random-effect variances after imputation: mlimpute ``2l.norm`` against R's pan and jomo.

    python benchmarks/compare_pan_jomo.py [--reps 30] [-m 25] [--out DIR]
                                          [--variant NAME ...] [--no-r]
                                          [--scale C] [--design {classroom,small}]

A script, not a test: nothing is asserted. The classroom example of Jacobusse (2005),
experiment 3 (30 classes of 20 children, a random slope of gender, 40 % of ``grade``
missing completely at random), data sets ``classroom(3, rng=s)`` for s = 1..reps. Each
data set is imputed m times

* by mlimpute, ``df.mi.impute(data.imputation, m=m, iterations=20, rng=s)`` (the model
  ``grade ~ skill * gender + relation + (1 + gender | class)``), once per ``--variant``
  (prior options of ``2l.norm``, see ``VARIANTS``);
* by R (one ``Rscript`` process): mitml ``panImpute`` and ``jomoImpute`` with the same
  model, ``grade ~ 1 + skill*gender + relation + (1 + gender|class)``, at their defaults
  (``n.burn = 5000``, ``n.iter = 100``, the default priors: an inverse-Wishart with
  q degrees of freedom and an identity scale for the random-effect covariance).

Every completed data set (and the complete data) is analysed with the same fitter,
``mlimpute.from_completed(...).fit(formula, engine="profiled")`` for the true model
``grade ~ skill * gender + relation + (1 + gender || class)`` (REML), and the pooled
variances ``var(Intercept|class)`` (D0) and ``var(gender|class)`` (D1) are compared with
the complete-data estimates of the same data set. Printed per method: the mean signed
difference from the complete-data estimate and, paired over the data sets, the mean
difference of the absolute errors ``|mlimpute − complete| − |R − complete|`` with its
standard error (standard deviation over data sets / sqrt(reps)).

With ``--scale c`` grade is multiplied by c before imputation and the variances divided by
c² afterwards: pan's and jomo's default prior has an identity scale in the data's units,
mlimpute's follows the data (``sd(y)/sd(z)``), so only mlimpute gives the same figures at
every c.

With ``--design small`` (and its own ``--out``) the data are instead 30 clusters of 5 with
a small intraclass correlation (``y = 1 + 0.5 x + u_j + e``, ``var(u) = 0.03``, ``var(e) =
1``, 30 % of y missing completely at random; imputation and analysis ``y ~ x + (1 | g)``):
a prior that avoids zero inflates the random-intercept variance there.

Results are cached per method and data set in ``DIR/results.csv`` (default
``benchmarks/out/pan_jomo``): an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

import mlimpute
from mlimpute.datasets import ANALYSIS_FORMULAS, Classroom, classroom
from mlimpute.spec.build import build_spec

FORMULA = ANALYSIS_FORMULAS[3]
R_FORMULA = "grade ~ 1 + skill*gender + relation + (1 + gender|class)"
NAMES = {"var(Intercept|class)": "D0", "var(gender|class)": "D1"}
COLUMNS = ["class", "skill", "gender", "relation", "grade"]

#: ``--design small``: a small intraclass correlation with small clusters, where a prior
#: that is informative in the data's units shows itself: 30 clusters of 5,
#: ``y = 1 + 0.5 x + u_j + e``, ``var(u) = 0.03``, ``var(e) = 1`` (ICC 0.03), 30 % of y
#: missing completely at random; imputation and analysis ``y ~ x + (1 | g)``.
SMALL = {
    "formula": "y ~ x + (1 | g)",
    "r_formula": "y ~ 1 + x + (1|g)",
    "names": {"var(Intercept|g)": "D0"},
    "columns": ["g", "x", "y"],
}
DESIGN = ["classroom"]

#: options of the 2l.norm model per variant (``method={"grade": ("2l.norm", options)}``);
#: ``iterations`` is impute()'s (20 unless given)
VARIANTS: dict[str, dict] = {
    "mlimpute": {},
    "mlimpute iw": {"prior": "iw"},
    "mlimpute A/2": {"prior_scale": 0.5},
    "mlimpute A/4": {"prior_scale": 0.25},
    "mlimpute iw A/5": {"prior": "iw", "prior_scale": 0.2},
    "mlimpute 100 it": {"iterations": 100},
    "mlimpute no MH": {"mh_steps": 0},
}

R_SCRIPT = r"""
suppressPackageStartupMessages({library(mitml)})
args <- commandArgs(TRUE)
dir <- args[1]; m <- as.integer(args[2]); seeds <- as.integer(args[-(1:2)])
for (s in seeds) {
  d <- read.csv(file.path(dir, sprintf("data_%03d.csv", s)))
  for (tool in c("pan", "jomo")) {
    out <- file.path(dir, sprintf("%s_%03d.csv", tool, s))
    if (file.exists(out)) next
    t0 <- proc.time()[["elapsed"]]
    imp <- if (tool == "pan") {
      panImpute(d, formula = %FORMULA%, m = m, seed = s, silent = TRUE)
    } else {
      jomoImpute(d, formula = %FORMULA%, m = m, seed = s, silent = TRUE)
    }
    cl <- mitmlComplete(imp, "all")
    long <- do.call(rbind, lapply(seq_along(cl), function(i) {
      x <- as.data.frame(cl[[i]]); x$imputation <- i; x }))
    write.csv(long[, c("imputation", %COLUMNS%)],
              paste0(out, ".tmp"), row.names = FALSE)
    file.rename(paste0(out, ".tmp"), out)
    cat(sprintf("%s %d: %.1f s\n", tool, s, proc.time()[["elapsed"]] - t0))
  }
}
"""


#: ``--scale c``: grade is multiplied by c (its variances by c²) before imputation, and the
#: estimates are divided by c² again: an imputation method whose priors follow the data's
#: units gives the same figures at every c
SCALE = [1.0]


def _small(seed: int) -> Classroom:
    rng = np.random.default_rng([18, seed])
    J, n = 30, 5
    g = np.repeat(np.arange(J), n)
    x = rng.standard_normal(J * n)
    y = 1 + 0.5 * x + np.sqrt(0.03) * rng.standard_normal(J)[g] + rng.standard_normal(J * n)
    full = pd.DataFrame({"g": g, "x": x, "y": y})
    inc = full.assign(y=np.where(rng.random(J * n) < 0.3, np.nan, y))
    return Classroom(full, inc, formula=SMALL["formula"], imputation={"y": "~ x + (1 | g)"})


def _data(seed: int):
    d = _small(seed) if DESIGN[0] == "small" else classroom(3, rng=seed)
    y = "y" if DESIGN[0] == "small" else "grade"
    c = SCALE[0]
    if c == 1.0:
        return d
    return replace(
        d,
        complete=d.complete.assign(**{y: d.complete[y] * c}),
        incomplete=d.incomplete.assign(**{y: d.incomplete[y] * c}),
    )


def _vc(frames: list[pd.DataFrame]) -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = mlimpute.from_completed(frames).fit(FORMULA, engine="profiled")
    est = res.variance_components()["estimate"]
    return {short: float(est[name]) / SCALE[0] ** 2 for name, short in NAMES.items()}


def _set_design(name: str) -> None:
    """Point the module's formulas at ``--design`` (``classroom`` or ``small``)."""
    global FORMULA, R_FORMULA, NAMES, COLUMNS
    DESIGN[0] = name
    if name == "small":
        FORMULA, R_FORMULA = SMALL["formula"], SMALL["r_formula"]
        NAMES, COLUMNS = SMALL["names"], SMALL["columns"]


def _mlimpute(seed: int, m: int, options: dict) -> dict[str, float]:
    d = _data(seed)
    method = None
    options = dict(options)
    iterations = options.pop("iterations", 20)
    if options:
        spec = build_spec(d.incomplete, d.imputation)
        method = {v: ("2l.norm", options) for v, k in spec.methods.items() if k == "2l.norm"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imp = d.incomplete.mi.impute(
            d.imputation, m=m, iterations=iterations, rng=seed, method=method
        )
    return _vc([imp.complete(i) for i in range(1, m + 1)])


def _run_r(out: Path, seeds: list[int], m: int) -> None:
    tools = ("pan", "jomo")
    todo = [s for s in seeds if not all((out / f"{t}_{s:03d}.csv").exists() for t in tools)]
    if not todo:
        return
    for s in todo:
        _data(s).incomplete.to_csv(out / f"data_{s:03d}.csv", index=False)
    script = out / "impute.R"
    cols = ", ".join(f'"{c}"' for c in COLUMNS)
    script.write_text(R_SCRIPT.replace("%FORMULA%", R_FORMULA).replace("%COLUMNS%", cols))
    subprocess.run(["Rscript", str(script), str(out), str(m), *map(str, todo)], check=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("-m", type=int, default=25)
    p.add_argument("--out", default=str(Path(__file__).parent / "out" / "pan_jomo"))
    p.add_argument("--variant", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--no-r", action="store_true", help="mlimpute only")
    p.add_argument(
        "--scale", type=float, default=1.0, help="multiply grade by this (use its own --out)"
    )
    p.add_argument(
        "--design",
        choices=["classroom", "small"],
        default="classroom",
        help="classroom experiment 3, or a small intraclass correlation (use its own --out)",
    )
    args = p.parse_args(argv)
    SCALE[0] = args.scale
    _set_design(args.design)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "results.csv"
    rows = pd.read_csv(cache).to_dict("records") if cache.exists() else []
    done = {(r["method"], int(r["rep"])) for r in rows}
    seeds = list(range(1, args.reps + 1))

    def record(method: str, seed: int, values: dict[str, float]) -> None:
        rows.append({"method": method, "rep": seed, **values})
        pd.DataFrame(rows).to_csv(cache, index=False)

    for s in seeds:
        if ("complete", s) not in done:
            full = _data(s).complete
            record("complete", s, _vc([full, full]))
        for name in args.variant:
            if (name, s) not in done:
                t0 = time.perf_counter()
                record(name, s, _mlimpute(s, args.m, VARIANTS[name]))
                print(f"{name} {s}: {time.perf_counter() - t0:.1f} s", flush=True)
    tools = []
    if not args.no_r and shutil.which("Rscript"):
        _run_r(out, seeds, args.m)
        for tool in ("pan", "jomo"):
            tools.append(tool)
            for s in seeds:
                if (tool, s) not in done:
                    long = pd.read_csv(out / f"{tool}_{s:03d}.csv")
                    frames = [g.drop(columns="imputation") for _, g in long.groupby("imputation")]
                    record(tool, s, _vc(frames))
    report(pd.DataFrame(rows), [*args.variant, *tools], seeds)


def report(res: pd.DataFrame, methods: list[str], seeds: list[int]) -> None:
    """Print bias against the complete-data estimates and the paired comparisons."""
    res = res[res.rep.isin(seeds)].drop_duplicates(["method", "rep"], keep="last")
    wide = res.pivot(index="rep", columns="method")
    n = len(seeds)
    print(f"\n{n} data sets; pooled minus complete-data estimate, mean (SE):")
    pars = list(NAMES.values())
    for par in pars:
        cd = wide[(par, "complete")]
        print(f"  {par}: complete-data mean {cd.mean():.3f}")
        for mth in methods:
            d = wide[(par, mth)] - cd
            print(f"    {mth:14s} {d.mean():+.3f} ({d.std() / np.sqrt(n):.3f})")
    print("paired: |first − complete| − |second − complete|, mean (SE):")
    ours = [a for a in methods if a.startswith("mlimpute")]
    pairs = [(a, b) for a in ours for b in methods if b in ("pan", "jomo")]
    for par in pars:
        cd = wide[(par, "complete")]
        for a, b in pairs:
            d = (wide[(par, a)] - cd).abs() - (wide[(par, b)] - cd).abs()
            print(f"  {par} {a} vs {b}: {d.mean():+.3f} ({d.std() / np.sqrt(n):.3f})")


if __name__ == "__main__":
    sys.exit(main())
