"""The in-place refresh of imputed columns equals a fresh materialisation."""

from __future__ import annotations

import numpy as np
import pandas as pd
from formulaic import model_matrix

from mlimpute.sampler.design import Layout, Values, build_model_data, chain_designs
from mlimpute.sampler.materialise import rows
from mlimpute.spec.formula import cmean_column, parse_formula


def test_refresh_equals_rematerialisation():
    rng = np.random.default_rng(0)
    n = 60
    df = pd.DataFrame(
        {
            "g": rng.integers(0, 6, n),
            "x": rng.normal(size=n),
            "z": rng.normal(size=n) + 3,
            "c": rng.choice(["a", "b", "c"], n),
            "y": rng.normal(size=n),
        }
    )
    f = parse_formula("~ x*z + c:x + I(z**2) + np.log(z) + cmean(x) + (1 + x | g)", "y")
    layout = Layout.from_frame(df, "g")
    static = df.iloc[layout.order].reset_index(drop=True)
    static[cmean_column("x")] = layout.cluster_mean(static["x"].to_numpy())
    observed = rng.random(n) > 0.3
    data = build_model_data(
        f, static, observed, layout, {"x", "z", cmean_column("x"), cmean_column("z")}
    ).for_chain()
    assert data.X.fast and data.X.slow and data.Z.fast
    values = Values(layout, {"x": static["x"].to_numpy() + 1.5, "z": static["z"].to_numpy() * 2})
    data.refresh(values, static)
    fresh = static.copy()
    fresh["x"], fresh["z"] = values["x"], values["z"]
    fresh[cmean_column("x")] = layout.cluster_mean(values["x"])
    X = np.asarray(model_matrix(f.fixed, fresh), dtype=float)
    Z = np.asarray(model_matrix("1 + x", fresh), dtype=float)
    keep = [list(model_matrix(f.fixed, fresh).columns).index(c) for c in data.X.names]
    np.testing.assert_allclose(data.X.obs, X[data.obs_idx][:, keep])
    np.testing.assert_allclose(data.X.mis, X[data.mis_idx][:, keep])
    np.testing.assert_allclose(data.Z.obs, Z[data.obs_idx])


def test_collinear_and_constant_columns_dropped_with_events():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"x": rng.normal(size=30), "k": 2.0, "y": rng.normal(size=30)})
    df["x2"] = 3 * df["x"]
    f = parse_formula("~ x + k + x2", "y")
    layout = Layout.from_frame(df, None)
    data = build_model_data(f, df, np.ones(30, bool), layout, set())
    assert data.X.names == ["Intercept", "x"]
    assert any("'k'" in e for e in data.events) and any("'x2'" in e for e in data.events)


def _design():
    """A two-variable plan's design of y (fast columns x and cmean(x)) and its values."""
    rng = np.random.default_rng(5)
    n = 80
    df = pd.DataFrame(
        {"g": rng.integers(0, 8, n), "x": rng.normal(size=n), "y": rng.normal(size=n)}
    )
    layout = Layout.from_frame(df, "g")
    static = df.iloc[layout.order].reset_index(drop=True)
    static[cmean_column("x")] = layout.cluster_mean(static["x"].to_numpy())
    f = parse_formula("~ x + cmean(x) + x:cmean(x) + (1 | g)", "y")
    observed = rng.random(n) > 0.3
    d = build_model_data(f, static, observed, layout, {"x", "y", cmean_column("x")})
    return d, layout, static


def test_cmean_columns_gathered_per_cluster_equal_the_broadcast_column():
    # the per-cluster path (codes given) and the row path (no codes) give the same bits
    d, layout, static = _design()
    x = static["x"].to_numpy() * 3.0 - 1.0
    a, b = d.for_chain(), d.for_chain()
    a.refresh(Values(layout, {"x": x}), static)
    for blk in (b.X, b.Z):
        blk.refresh(Values(layout, {"x": x}), static, b.obs_idx, b.mis_idx)  # codes=None
    assert np.array_equal(a.X.obs, b.X.obs) and np.array_equal(a.X.mis, b.X.mis)
    j = a.X.names.index("cmean(x)")
    want = layout.cluster_mean(x)
    assert np.array_equal(a.X.obs[:, j], want[a.obs_idx])
    assert np.array_equal(a.X.mis[:, j], want[a.mis_idx])
    v = Values(layout, {"x": x})
    means = v.cluster_means("cmean(x)")
    v["x"] = x + 1.0
    v.touch("x")  # an imputation changed x: its cluster means are recomputed
    assert not np.array_equal(v.cluster_means("cmean(x)"), means)


def test_random_intercepts_are_read_only_ones_without_row_memory():
    d, layout, static = _design()
    f = parse_formula("~ y + (1 | g)", "x")
    other = build_model_data(f, static, static["x"].notna().to_numpy(), layout, {"x", "y"})
    for z in (d.Z.obs, d.Z.mis, other.Z.obs):
        assert z.shape[1] == 1 and np.all(z == 1.0)
        assert z.strides == (0, 0) and not z.flags.writeable  # one value broadcast
        base = z
        while isinstance(base.base, np.ndarray):
            base = base.base
        assert base.nbytes == 8
    assert d.for_chain().Z is d.Z  # static: never copied


def test_rows_is_a_fortran_gather():
    X = np.arange(12.0).reshape(4, 3)
    idx = np.array([3, 1])
    r = rows(X, idx)
    assert r.flags.f_contiguous and np.array_equal(r, X[idx])
    assert rows(X, idx[:0]).shape == (0, 3)


def test_a_chain_refreshes_the_plans_designs_unless_another_holds_them():
    d, layout, static = _design()
    with chain_designs({"y": d}, ["y"]) as first:
        assert first["y"] is d  # one chain at a time: in place, no copy
        with chain_designs({"y": d}, ["y"]) as second:  # a concurrent chain: copies
            assert second["y"] is not d
            assert not np.shares_memory(second["y"].X.obs, d.X.obs)
            assert second["y"].Z is d.Z  # static blocks stay shared
    with chain_designs({"y": d}, ["y"]) as again:
        assert again["y"] is d  # released


def test_split_modules_keep_the_public_names_importable_from_design():
    import mlimpute.sampler.design as design
    from mlimpute.sampler import block, layout, values

    assert design.Layout is layout.Layout and design.GroupingFactor is layout.GroupingFactor
    assert design.Values is values.Values and design.ClusterValues is values.ClusterValues
    assert design.Block is block.Block and design.check_finite is block.check_finite


def test_rows_gathers_from_a_list_of_columns_as_from_the_array():
    X = np.arange(12.0).reshape(4, 3)
    idx = np.array([3, 1, 1])
    cols = [X[:, j].copy() for j in range(3)]
    assert np.array_equal(rows(cols, idx), rows(X, idx))
    assert rows(cols, idx).flags.f_contiguous


def test_cluster_constant_columns_by_their_definition():
    d, layout, static = _design()
    codes = d.seg_obs.codes
    got = d.X.cluster_constant(codes)
    frame = pd.DataFrame(d.X.obs, columns=d.X.names).assign(g=codes)
    by_definition = (frame.groupby("g").nunique() <= 1).all().to_numpy()
    want = dict(zip(d.X.names, by_definition, strict=True))
    want["cmean(x)"] = True  # dynamic: a cluster mean, constant whatever the imputations
    want["x:cmean(x)"] = False  # dynamic, not a cluster mean: not known to be constant
    want["x"] = False
    assert dict(zip(d.X.names, got.tolist(), strict=True)) == want
    assert want["Intercept"]


def test_cluster_means_of_a_finer_factor_are_not_constant_within_clusters():
    # a class-level variable's model clusters by school; cmean(x) is a class mean, which
    # varies within a school, cmean(x, school) does not
    import warnings

    from mlimpute.impute import impute
    from mlimpute.sampler.engine import build_plan
    from tests.test_three_level import three_level

    df = three_level()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec = impute(df, cluster=["school", "class"], m=1, iterations=1, rng=1).spec
    data = build_plan(df.copy(), spec).data["z"]
    const = dict(zip(data.X.names, data.X.cluster_constant(data.seg_obs.codes), strict=True))
    assert const["Intercept"] and not const["cmean(x)"] and not const["cmean(y)"]
