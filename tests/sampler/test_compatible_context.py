"""The run's designs and the chain's current state of a model-based chain
(:mod:`mlimpute.sampler.compatible_context`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlimpute.sampler.compatible_context import build_context, set_cluster_values
from mlimpute.sampler.design import Values
from mlimpute.sampler.engine import build_plan
from mlimpute.spec.model import build_model_spec


def _frame(seed=0, J=12, n=5):
    r = np.random.default_rng(seed)
    g = np.repeat(np.arange(J), n)
    z = np.repeat(r.normal(size=J), n)
    x = 0.5 * z + r.normal(size=J * n)
    b = (x + r.normal(size=J * n) > 0).astype(float)
    y = x + 0.3 * x**2 + b + z + r.normal(size=J * n)
    w = x + r.normal(size=J * n)
    df = pd.DataFrame({"g": g, "x": x, "b": b, "z": z, "w": w, "y": y})
    df.loc[::4, "x"] = np.nan
    df.loc[1::5, "b"] = np.nan
    df.loc[df.g.isin([2, 7]), "z"] = np.nan
    df.loc[2::6, "w"] = np.nan
    df.loc[3::7, "y"] = np.nan
    return df


def test_build_context_sorts_the_variables_by_how_they_are_drawn():
    df = _frame()
    model = "y ~ x + I(x**2) + b + z + (1 | g)"
    spec = build_model_spec(df, model, None, m=1, iterations=1, cluster="g")
    plan = build_plan(df, spec)
    values = Values(plan.layout, like=plan.like)
    for name in plan.names:
        values[name] = np.nan_to_num(plan.start[name])
    first = plan.layout.segments.starts
    missing = {"z": np.isnan(plan.start["z"][first])}
    fx, cur = build_context(plan, values, {}, None, missing)
    assert set(fx.preds) == {"x", "b", "z"} and fx.chained == ("w",)
    assert fx.mh == {"x"} and fx.categorical == {"b"} and fx.level2 == {"z"}
    assert not fx.counts and not fx.level3 and not fx.latent and not fx.count_outcome
    assert fx.analysis_data is fx.datas["y"] and cur.y_values is values["y"]
    np.testing.assert_array_equal(fx.y_obs_rows, ~np.isnan(plan.start["y"]))
    # x's model takes nothing that is drawn later; z is a predictor of the earlier models
    assert fx.users["z"] == [p for p in fx.preds if p != "z"]
    # a level-2 model is fitted on every cluster, with a cache of its own
    dz = fx.datas["z"]
    assert dz.n_obs == plan.layout.segments.n_clusters and dz.n_mis == 0
    assert dz.cache is not plan.data["z"].cache
    # the analysis rows of x's missing values with y observed (the MH target's rows)
    rows = fx.mis_rows["x"]
    np.testing.assert_array_equal(fx.row_designs["x"].rows, rows[fx.y_obs_rows[rows]])


def test_set_cluster_values_writes_whole_clusters():
    df = _frame(1)[["g", "x", "z", "y"]]
    spec = build_model_spec(df, "y ~ x + z + (1 | g)", None, m=1, iterations=1)
    plan = build_plan(df, spec)
    values = Values(plan.layout, like=plan.like)
    for name in plan.names:
        values[name] = np.nan_to_num(plan.start[name])
    first, codes = plan.layout.segments.starts, plan.layout.codes
    missing = np.isnan(plan.start["z"][first])
    _, cur = build_context(plan, values, {}, None, {"z": missing})
    J = first.size
    before = values["z"].copy()
    draw = set_cluster_values(
        np.random.default_rng(0), cur, "z", np.arange(J, dtype=float), np.zeros(J), missing,
        first, codes,
    )  # fmt: skip
    np.testing.assert_array_equal(draw, np.flatnonzero(missing))
    after = values["z"]
    np.testing.assert_array_equal(after[missing[codes]], codes[missing[codes]])
    np.testing.assert_array_equal(after[~missing[codes]], before[~missing[codes]])
