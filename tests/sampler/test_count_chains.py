"""Count and zero-inflated models give bit-identical chains whatever the executor, and a
chain continued from its final state equals the uninterrupted chain (the zero part's
step reuses work carried in its state; the states are pickled between processes)."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from mlimpute.rng import chain_seeds
from mlimpute.sampler.engine import build_plan, run_chain, run_chains
from mlimpute.sampler.executors import map_chains
from mlimpute.spec.build import build_spec

M = 3
METHODS = {"a": "zip", "b": "2l.zinb", "c": "nb", "d": "2l.poisson"}


def _frame(seed=0, J=15, n=8):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(J), n)
    x = rng.standard_normal(J * n)
    mu = np.exp(0.4 + 0.4 * x + rng.normal(0, 0.4, J)[g])
    df = pd.DataFrame({"g": g, "x": x})
    for k, name in enumerate(METHODS):
        y = rng.poisson(rng.gamma(2.0, mu / 2.0)).astype(float)
        if name in ("a", "b"):
            y[rng.random(J * n) < 0.3] = 0.0
        y[rng.random(J * n) < 0.2 + 0.05 * k] = np.nan
        df[name] = y
    x_missing = rng.random(J * n) < 0.15  # x is imputed too: the count models' designs move
    df.loc[x_missing, "x"] = np.nan
    return df


def _plan(dynamic: bool, iterations=3):
    df = _frame()
    formulas = {v: "~ x + (1 | g)" if m.startswith("2l.") else "~ x" for v, m in METHODS.items()}
    if dynamic:
        formulas["x"] = "~ a + b + c + d + (1 | g)"
    else:
        df["x"] = df["x"].fillna(0.0)
    spec = build_spec(df, formulas, m=M, iterations=iterations, method=METHODS, cluster="g")
    return build_plan(df.copy(), spec)


def _same(a, b):
    assert a.imputed.keys() == b.imputed.keys()
    for n in a.imputed:
        np.testing.assert_array_equal(a.imputed[n], b.imputed[n])
        np.testing.assert_array_equal(a.params[n], b.params[n])


@pytest.mark.parametrize("dynamic", [False, True])
def test_pool_gives_the_serial_chains(dynamic):
    plan = _plan(dynamic)
    seeds = chain_seeds(2, M)[0]
    ref = run_chains(plan, seeds)
    for a, b in zip(ref, map_chains(plan, seeds, n_jobs=2), strict=True):
        _same(a, b)


@pytest.mark.parametrize("dynamic", [False, True])
def test_continued_chain_equals_the_uninterrupted_one(dynamic):
    """Continued from a pickled final state (as another process would receive it)."""
    plan = _plan(dynamic)
    seed = chain_seeds(4, 1)[0][0]
    ref = run_chain(plan, 0, seed, iterations=5)
    first = run_chain(plan, 0, seed, iterations=2)
    rest = run_chain(plan, 0, seed, pickle.loads(pickle.dumps(first.final)), 3)
    for n in ref.imputed:
        np.testing.assert_array_equal(ref.imputed[n], rest.imputed[n])
        np.testing.assert_array_equal(ref.params[n][2:], rest.params[n])
