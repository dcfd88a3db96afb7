"""R's jomo.lmer beside mlimpute's model-based imputation on design (a) of the
compatible-imputation study (random slope on an incomplete predictor).

Runs replications 0..N-1 of design (a) (the same data sets as
``python -m mlimpute.simulation.compatible``), imputes each with ``jomo.lmer`` at its
default burn-in and spacing (1,000 and 1,000 iterations) and with mlimpute (``model=``),
pools both, and prints bias, coverage and time per call. Needs R with jomo, mitml, lme4
and jsonlite (``apt-get install r-cran-jomo r-cran-mitml r-cran-lme4 r-cran-jsonlite``).

    python benchmarks/compatible_jomo.py --reps 50 --m 20 --out results/jomo
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import mlimpute
from mlimpute.simulation.compatible.designs import DESIGNS
from mlimpute.simulation.compatible.study import CompatibleConfig, _seeds

HERE = Path(__file__).parent
# mitml names the variance components of lmer fits like this
_R_NAMES = {
    "Intercept~~Intercept|g": "var(Intercept|g)",
    "Intercept~~x|g": "cov(Intercept,x|g)",
    "x~~x|g": "var(x|g)",
    "Residual~~Residual": "var(Residual)",
}


def one(rep: int, m: int, out: Path) -> dict:
    path = out / f"replication{rep:04d}.json"
    if path.exists():
        return json.loads(path.read_text())
    design = DESIGNS["a"]
    seeds = _seeds("a", rep, CompatibleConfig().seed)
    _, incomplete = design.generate(np.random.default_rng(seeds["data"]))
    with tempfile.TemporaryDirectory() as tmp:
        csv, res = Path(tmp) / "data.csv", Path(tmp) / "out.json"
        incomplete.to_csv(csv, index=False, na_rep="NA")
        subprocess.run(
            ["Rscript", str(HERE / "compatible_jomo.R"), str(csv), str(m), str(res)], check=True
        )
        r = json.loads(res.read_text())
    t0 = time.perf_counter()
    imp = mlimpute.impute(incomplete, model=design.model, m=m, rng=rep)
    py_seconds = time.perf_counter() - t0
    pooled = imp.fit()
    fixed = pooled.summary()
    vc = pooled.variance_components()["estimate"]
    record = {
        "truth": design.truth,
        "jomo": {
            "seconds": r["seconds"],
            "fixed": r["fixed"],
            "variance": {_R_NAMES.get(k, k): v for k, v in r["variance"].items()},
        },
        "mlimpute": {
            "seconds": py_seconds,
            "fixed": {
                t: {k: float(fixed.loc[t, k]) for k in ("estimate", "se", "ci_low", "ci_high")}
                for t in fixed.index
            },
            "variance": {str(k): float(v) for k, v in vc.items()},
        },
    }
    path.write_text(json.dumps(record, indent=1))
    return record


def summary(records: list[dict]) -> pd.DataFrame:
    rows = []
    for tool in ("jomo", "mlimpute"):
        for name, true in records[0]["truth"].items():
            est, cov = [], []
            for rec in records:
                part = rec[tool]
                if name in part["fixed"]:
                    f = part["fixed"][name]
                    est.append(f["estimate"])
                    cov.append(f["ci_low"] <= true <= f["ci_high"])
                elif name in part["variance"]:
                    est.append(part["variance"][name])
            rows.append(
                {
                    "tool": tool,
                    "parameter": name,
                    "true": true,
                    "mean": np.mean(est) if est else np.nan,
                    "coverage": np.mean(cov) if cov else np.nan,
                    "reps": len(est),
                }
            )
        secs = [rec[tool]["seconds"] for rec in records]
        rows.append({"tool": tool, "parameter": "seconds per call", "mean": np.median(secs)})
    return pd.DataFrame(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=50)
    p.add_argument("--m", type=int, default=20)
    p.add_argument("--out", default="results/jomo")
    a = p.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    records = [one(r, a.m, out) for r in range(a.reps)]
    with pd.option_context("display.width", 120):
        print(summary(records).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
