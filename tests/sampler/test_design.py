"""The in-place refresh of imputed columns equals a fresh materialisation."""

from __future__ import annotations

import numpy as np
import pandas as pd
from formulaic import model_matrix

from mlimpute.sampler.design import Layout, Values, build_model_data
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
