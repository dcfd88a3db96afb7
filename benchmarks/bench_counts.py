"""Cost of one step of the logit and count models relative to the probit's, on the same data.

    python benchmarks/bench_counts.py [--clusters 50] [--size 20] [--steps 300] [--repeats 5]

The issue's target: a Pólya–Gamma or count step costs at most 3x a probit step on the same
data. The data: J clusters of n rows, y* = 0.5 + 0.4x + b_j (SD 0.5); the binary models
see 1(y* + logistic noise > 0), the count models NB(r = 2, mean e^(y*)) counts (the
zero-inflated ones with 30 % extra zeros). Every row is observed; each model first takes
50 steps (burn-in, adaptation), then the best of ``repeats`` timings of ``steps`` steps
is reported in CPU µs per step (process time: the machine may be shared) and as a ratio
to the probit of the same level.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from mlimpute.models import available_models, get_model
from mlimpute.sampler.design import Layout, build_model_data
from mlimpute.spec.formula import parse_formula

BINARY = ["bin", "logit", "2l.bin", "2l.logit"]
COUNTS = ["poisson", "nb", "zip", "zinb", "2l.poisson", "2l.nb", "2l.zip", "2l.zinb"]


def _data(df: pd.DataFrame, formula: str, response: str):
    f = parse_formula(formula, response)
    layout = Layout.from_frame(df, f.group)
    static = df.iloc[layout.order].reset_index(drop=True)
    return build_model_data(f, static, np.ones(len(df), bool), layout, set())


def _frame(J: int, n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(J), n)
    x = rng.standard_normal(J * n)
    eta = 0.5 + 0.4 * x + rng.normal(0.0, 0.5, J)[g]
    yb = (eta + rng.logistic(size=J * n) > 0).astype(float)
    yc = rng.poisson(rng.gamma(2.0, np.exp(eta) / 2.0)).astype(float)
    yz = np.where(rng.random(J * n) < 0.3, 0.0, yc)
    return pd.DataFrame({"g": g, "x": x, "yb": yb, "yc": yc, "yz": yz})


def _time(name: str, data, steps: int, repeats: int) -> float:
    model = get_model(name).factory()
    rng = np.random.default_rng(1)
    state = model.init(rng, data)
    for _ in range(50):
        state = model.step(rng, state, data)
    best = np.inf
    for _ in range(repeats):
        t0 = time.process_time()
        for _ in range(steps):
            state = model.step(rng, state, data)
        best = min(best, time.process_time() - t0)
    return best / steps * 1e6


def main(argv=None) -> dict[str, float]:
    """Print and return µs per step for every model."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clusters", type=int, default=50)
    ap.add_argument("--size", type=int, default=20)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args(argv)
    df = _frame(a.clusters, a.size)
    out = {}
    with threadpool_limits(1):
        for name in BINARY + COUNTS:
            if name not in available_models():  # (an older version, for before/after)
                continue
            multilevel = name.startswith("2l.")
            rhs = "~ x + (1 | g)" if multilevel else "~ x"
            resp = "yb" if name in BINARY else ("yz" if "zi" in name else "yc")
            out[name] = _time(name, _data(df, resp + " " + rhs, resp), a.steps, a.repeats)
    print(f"{a.clusters} clusters x {a.size} rows, µs per step (ratio to the probit)")
    for name, us in out.items():
        ref = out["2l.bin" if name.startswith("2l.") else "bin"]
        print(f"  {name:12s} {us:9.1f}  {us / ref:5.2f}x")
    return out


if __name__ == "__main__":
    main()
