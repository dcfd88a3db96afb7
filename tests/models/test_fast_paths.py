"""Faster code paths compute what the plain ones compute (issue 10).

The split cross-products of 2l.norm agree with the plain ones to round-off; the other
shortcuts (probit draws, trace statistics, R-hat table) agree bit for bit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlimpute.diagnostics import rhat, rhat_table
from mlimpute.models import _ml_norm_static
from mlimpute.models._latent import truncnorm, truncnorm_sign
from mlimpute.sampler.engine import _mean_sd


def _clustered(n_clusters=300, size=12, seed=3):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_clusters), size)
    u = rng.normal(size=n_clusters)[g]
    df = pd.DataFrame({"g": g, "w": rng.normal(size=n_clusters)[g]})  # w: level 2
    df["x"] = rng.normal(size=g.size) + u
    df["y"] = df["x"] + 0.5 * df["w"] + u + rng.normal(size=g.size)
    df["b"] = (df["y"] + rng.normal(size=g.size) > 0).astype(float)
    for col in ("x", "y", "b"):
        df.loc[rng.random(g.size) < 0.2, col] = np.nan
    return df


def test_split_cross_products_match_the_plain_ones(monkeypatch):
    df = _clustered()
    formulas = {
        "x": "~ y + cmean(y) + w + b + (1 | g)",
        "y": "~ x + cmean(x) + w + b + cmean(b) + (1 | g)",
        "b": "~ x + cmean(x) + y + (1 | g)",
    }
    runs = []
    for cells in (10**12, 0):  # plain, then split everywhere
        monkeypatch.setattr(_ml_norm_static, "SPLIT_MIN_CELLS", cells)
        imp = df.mi.impute(formulas, m=2, iterations=6, rng=5)
        runs.append(imp.dataset)
    plain, split = runs
    for name in ("x", "y", "x:params", "y:params", "b:params"):
        np.testing.assert_allclose(split[name].values, plain[name].values, rtol=1e-8, atol=1e-10)
    np.testing.assert_array_equal(split["b"].values, plain["b"].values)


def test_split_marks_cluster_means_and_level2_columns_constant(monkeypatch):
    monkeypatch.setattr(_ml_norm_static, "SPLIT_MIN_CELLS", 0)
    df = _clustered().dropna().reset_index(drop=True)
    from tests.conftest import model_data

    data = model_data(df, "~ x + w + (1 | g)", "y")
    split = _ml_norm_static.Split.of(data)
    assert [data.X.names[k] for k in split.consts] == ["Intercept", "w"]
    assert [data.X.names[k] for k in split.rows] == ["x"]


def test_truncnorm_sign_is_truncnorm_on_half_lines():
    rng = np.random.default_rng(0)
    mu = np.r_[rng.normal(size=500) * 3, 0.0, -0.0, 40.0, -40.0]
    pos = rng.random(mu.size) < 0.5
    a = truncnorm(
        np.random.default_rng(7), mu, np.where(pos, 0.0, -np.inf), np.where(pos, np.inf, 0.0)
    )
    b = truncnorm_sign(np.random.default_rng(7), mu, pos)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("n", [0, 1, 2, 7, 1000])
def test_trace_statistics_are_numpys(n):
    x = np.random.default_rng(n).normal(size=n) * 5 + 100
    mean, sd = _mean_sd(x)
    if n == 0:
        assert np.isnan(mean) and sd == 0.0
    else:
        assert mean == x.mean()
        assert sd == (x.std(ddof=1) if n > 1 else 0.0)


def test_rhat_table_matches_rhat_of_each_variable():
    df = _clustered(60, 8).drop(columns="b")
    imp = df.mi.impute({"x": "~ y + (1 | g)", "y": "~ x + (1 | g)"}, m=3, iterations=12, rng=2)
    table = rhat_table(imp)
    kept = imp.traces.isel(iteration=slice(6, None))
    per_var = rhat(kept)
    got = table.set_index(["variable", "trace"])["rhat"]
    for name in ("x", "y"):
        assert got[(name, "mean")] == float(per_var["mean"].sel(variable=name))
        params = per_var[f"{name}:params"]
        for p, v in zip(params[f"{name}:param"].values, params.values, strict=True):
            assert got[(name, str(p))] == v or (np.isnan(v) and np.isnan(got[(name, str(p))]))
