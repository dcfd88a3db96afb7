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


def _split_plan_data(monkeypatch, formula, empty_cluster):
    """A plan's 2l.norm data for ``y`` on the split path, with its design's changing
    columns overwritten by new values (as a chain's refresh would)."""
    from mlimpute.sampler.engine import build_plan
    from mlimpute.spec.build import build_spec

    monkeypatch.setattr(_ml_norm_static, "SPLIT_MIN_CELLS", 0)
    df = _clustered().drop(columns="b")
    df["s"] = np.random.default_rng(4).normal(size=len(df))  # level 1, complete
    if empty_cluster:
        df.loc[df["g"] == 7, "y"] = np.nan  # a cluster without an observed y
    spec = build_spec(df, {"y": formula, "x": "~ y + (1 | g)"}, m=1)
    d = build_plan(df, spec).data["y"]
    X = np.asfortranarray(d.X.obs.copy())
    rng = np.random.default_rng(9)
    for c, _ in d.X.fast:
        X[:, c] = rng.normal(size=X.shape[0])
    return d, X


@pytest.mark.parametrize(
    ("formula", "empty_cluster"),
    [
        ("~ x + w + s + cmean(x) + (1 | g)", True),  # changing/fixed columns interleaved
        ("~ w + x + s + cmean(x) + (1 | g)", False),  # the varying ones adjacent
    ],
)
def test_split_sums_kept_for_fixed_columns_are_the_step_sums(monkeypatch, formula, empty_cluster):
    # the cluster sums Split keeps (fixed columns of R, the observed y) give split_stats
    # the numbers it computes without them, bit for bit
    from dataclasses import replace

    d, X = _split_plan_data(monkeypatch, formula, empty_cluster)
    split = _ml_norm_static.Split.of(d)
    assert split is not None and split.row_dynamic.size == 1 and split.row_sums is not None
    assert (split.first.size < d.n_clusters) == empty_cluster
    plain = replace(split, row_sums=None, y=None, y_sums=None)
    for y in (d.y_obs, d.y_obs * 1.5):
        got = _ml_norm_static.split_stats(X, y, d.seg_obs, split)
        want = _ml_norm_static.split_stats(X, y, d.seg_obs, plain)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("empty_cluster", [True, False])
def test_split_reads_the_refreshed_cluster_means_as_the_column_holds_them(
    monkeypatch, empty_cluster
):
    # after a refresh the design block keeps the per-cluster means a cmean() column was
    # gathered from; split_stats reads them instead of the column and gets its numbers
    from mlimpute.sampler.engine import build_plan, start_values
    from mlimpute.spec.build import build_spec

    monkeypatch.setattr(_ml_norm_static, "SPLIT_MIN_CELLS", 0)
    df = _clustered().drop(columns="b")
    if empty_cluster:
        df.loc[df["g"] == 7, "y"] = np.nan
    spec = build_spec(df, {"y": "~ x + cmean(x) + w + (1 | g)", "x": "~ y + (1 | g)"}, m=1)
    plan = build_plan(df, spec)
    d = plan.data["y"]
    values, _ = start_values(plan, np.random.default_rng(2), None)
    d.refresh(values, plan.static)
    known = d.X.cluster_values
    col = d.X.names.index("cmean(x)")
    assert known[col][0] is d.X.obs
    np.testing.assert_array_equal(d.X.obs[:, col], known[col][1]()[d.seg_obs.codes])
    split = _ml_norm_static.Split.of(d)
    got = _ml_norm_static.split_stats(d.X.obs, d.y_obs, d.seg_obs, split, known)
    want = _ml_norm_static.split_stats(d.X.obs, d.y_obs, d.seg_obs, split)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)
    # the design does not keep the means alive: once the chain's values let them go
    # (the next draw of x), the column is read again, with the same numbers
    values.touch("x")
    assert known[col][1]() is None
    again = _ml_norm_static.split_stats(d.X.obs, d.y_obs, d.seg_obs, split, known)
    np.testing.assert_array_equal(again[5], want[5])
    # values kept for another array (a chain's copy of the design) are not read
    other = np.asfortranarray(d.X.obs + 1.0)
    moved = _ml_norm_static.split_stats(other, d.y_obs, d.seg_obs, split, known)
    plain = _ml_norm_static.split_stats(other, d.y_obs, d.seg_obs, split)
    np.testing.assert_array_equal(moved[5], plain[5])


@pytest.mark.parametrize("n_clusters", [2, 40])  # too few clusters for moments, and enough
def test_moments_of_a_broadcast_intercept_are_those_of_a_column_of_ones(n_clusters):
    from mlimpute.models.ml_norm_start import _moments
    from mlimpute.models.segments import Segments

    rng = np.random.default_rng(n_clusters)
    codes = np.sort(rng.integers(0, n_clusters + 1, 30 * n_clusters))  # maybe empty ones
    seg = Segments.from_codes(codes, n_clusters + 1)
    r = rng.normal(size=codes.size) + rng.normal(size=n_clusters + 1)[codes]
    scale = np.array([1.3])
    stored = _moments(r, np.ones((codes.size, 1)), seg, scale)
    broadcast = _moments(r, np.broadcast_to(1.0, (codes.size, 1)), seg, scale)
    np.testing.assert_array_equal(broadcast[0], stored[0])
    assert broadcast[1] == stored[1]


def test_a_refreshed_design_pickles_without_its_cluster_means(monkeypatch):
    # a plan whose designs a chain refreshed goes to worker processes (n_jobs=2 after a
    # serial run): the weak references to the chain's cluster means are not sent
    import pickle

    from mlimpute.sampler.engine import build_plan, start_values
    from mlimpute.spec.build import build_spec

    df = _clustered().drop(columns="b")
    spec = build_spec(df, {"y": "~ x + cmean(x) + w + (1 | g)", "x": "~ y + (1 | g)"}, m=1)
    plan = build_plan(df, spec)
    values, _ = start_values(plan, np.random.default_rng(2), None)
    plan.data["y"].refresh(values, plan.static)
    assert plan.data["y"].X.cluster_values
    copy = pickle.loads(pickle.dumps(plan.data["y"]))
    assert copy.X.cluster_values == {}
    np.testing.assert_array_equal(copy.X.obs, plan.data["y"].X.obs)
