"""impute_new(): how many sweeps the default runs, and that one sweep is run only where it
is exact.

Two variables, each a predictor of the other; every new cluster has a row A with y
observed (6, far above the mean) and x missing, and a row B with y missing and x observed
(0). The new cluster's effects of y's model are drawn given row A, whose x holds its start
value (a draw from the training values) in the first sweep: one sweep leaves y_B several
SDs too high. The default must agree with a long run (sweeps=20; the run forgets its
start within about 5 sweeps here).

The K new clusters of one call are independent given the fixed parameters, and both runs
use the same chains' states: the difference of the two means of the m·K draws has a
standard error of at most sqrt(s²_a/n + s²_b/n) (the pooled SDs include the chain-to-chain
spread, which the shared states cancel). The bound is 4 such SEs (the rng is fixed, so the
test is deterministic); the single sweep of the old rule is about 25 SEs off.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mlimpute  # noqa: F401  (registers .mi)

K = 50  # new clusters per call

pytestmark = pytest.mark.filterwarnings("ignore::mlimpute.errors.ConvergenceWarning")


@pytest.fixture(scope="module")
def df():
    r = np.random.default_rng(1)
    J, n = 60, 10
    g = np.repeat(np.arange(J), n)
    x = r.normal(size=J * n) + r.normal(0, 0.5, J)[g]
    y = 2.0 * x + r.normal(0, 1.0, J)[g] + r.normal(0, 0.7, J * n)
    out = pd.DataFrame({"g": g, "x": x, "y": y})
    out.loc[r.random(J * n) < 0.2, "y"] = np.nan
    out.loc[r.random(J * n) < 0.2, "x"] = np.nan
    return out


def _new(cluster: dict) -> pd.DataFrame:
    rows = {k: np.repeat(v, 2) for k, v in cluster.items()}
    return pd.DataFrame({**rows, "x": np.tile([np.nan, 0.0], K), "y": np.tile([6.0, np.nan], K)})


def _check(imp, new):
    means, ses, runs = {}, {}, {}
    for sweeps in (None, 20):
        out = imp.impute_new(new, rng=3, sweeps=sweeps)
        runs[sweeps] = out.spec.iterations
        v = np.concatenate([frame["y"].to_numpy()[1::2] for frame in out])
        assert v.size == imp.m * K
        means[sweeps], ses[sweeps] = v.mean(), v.std(ddof=1) / np.sqrt(v.size)
    se = np.hypot(ses[None], ses[20])
    assert abs(means[None] - means[20]) < 4 * se, (means, se)
    assert runs[None] > 1  # not judged exact
    # all of x observed: one sweep is exact, and the default runs one
    full = new.assign(x=new["x"].fillna(1.0))
    assert imp.impute_new(full, rng=3).spec.iterations == 1


def test_chained_one_sweep_only_where_exact(df):
    f = {"y": "~ x + (1 | g)", "x": "~ y + (1 | g)"}
    imp = df.mi.impute(f, m=5, iterations=20, rng=1)
    _check(imp, _new({"g": np.arange(1000, 1000 + K)}))


def test_model_based_one_sweep_only_where_exact(df):
    imp = df.mi.impute(model="y ~ x + (1 | g)", m=5, iterations=20, rng=1)
    _check(imp, _new({"g": np.arange(1000, 1000 + K)}))


def test_several_factors_one_sweep_only_where_exact(df):
    d = df.assign(school=df["g"] // 3, cls=df["g"] % 3).drop(columns="g")
    f = {
        "y": "~ x + (1 | school) + (1 | school:cls)",
        "x": "~ y + (1 | school) + (1 | school:cls)",
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imp = d.mi.impute(f, cluster=["school", "cls"], m=5, iterations=20, rng=1)
    # new classes in seen schools
    _check(imp, _new({"school": np.arange(K) % 20, "cls": np.arange(100, 100 + K)}))
