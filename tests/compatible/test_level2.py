"""Model-based imputation of incomplete level-2 predictors (one value per cluster).

A level-2 predictor w has its own model on one row per cluster (``w ~ later level-2
predictors + complete level-2 columns``); its missing cluster values are drawn from the
closed form of :func:`mlimpute.compatible.level2_moments`, which collects every row of the
cluster in the analysis model (cross-level interactions) and in the level-1 predictor
models that w predicts. The kernel is checked against quadrature in ``test_kernels.py``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mlimpute
from mlimpute.errors import UnsupportedError

MODEL = "y ~ x * z + v + (1 + x | g)"


def _cross_level(seed: int, J: int = 80, size: int = 8):
    """x level 1, z level 2 (both incomplete), v complete level 2; y with a cross-level
    interaction x·z and a random slope of x. x is missing at random on y (about 28 %), z
    on the cluster mean of y (about 34 % of the clusters)."""
    r = np.random.default_rng(seed)
    n = J * size
    g = np.repeat(np.arange(J), size)
    v = r.standard_normal(J)
    zc = 0.5 * v + r.standard_normal(J)
    z, vv = np.repeat(zc, size), np.repeat(v, size)
    x = np.repeat(0.5 * r.standard_normal(J), size) + 0.3 * z + r.standard_normal(n)
    u0 = np.repeat(0.5 * r.standard_normal(J), size)
    u1 = np.repeat(np.sqrt(0.2) * r.standard_normal(J), size)
    y = 0.5 * x + 1.0 * z + 0.4 * x * z + u0 + u1 * x + r.standard_normal(n)
    full = pd.DataFrame({"y": y, "x": x, "z": z, "v": vv, "g": g})
    mx = r.random(n) < 1 / (1 + np.exp(-(-1.4 + (y - y.mean()))))
    ym = np.bincount(g, y) / size
    mz = r.random(J) < 1 / (1 + np.exp(-(-1.0 + 2 * (ym - ym.mean()) / ym.std())))
    return full, full.assign(x=np.where(mx, np.nan, x), z=np.where(np.repeat(mz, size), np.nan, z))


@pytest.fixture(scope="module")
def data():
    return _cross_level(1, J=30, size=6)


def test_spec_orders_level1_before_level2(data):
    _, df = data
    imp = df.mi.impute(model=MODEL, m=2, iterations=3, rng=1)
    assert imp.spec.formulas == {"x": "~ z + v + (1 | g)", "z": "~ v"}
    assert [(v.name, v.level, v.method) for v in imp.spec.variables] == [
        ("x", 1, "2l.norm"),
        ("z", 2, "2lonly.norm"),
    ]
    for k in (1, 2):
        c = imp.complete(k)
        assert not c.isna().any().any()
        assert c.groupby("g").z.nunique().max() == 1  # one value per cluster
        obs = df.z.notna()
        assert np.array_equal(c.z[obs], df.z[obs])
    assert imp.traces["z:params"]["z:param"].values.tolist() == [
        "Intercept",
        "v",
        "var(Residual)",
    ]


@pytest.mark.slow
def test_cross_level_interaction_matches_complete_data():
    """Fixed effects against the complete-data fit (tolerance as in the interaction test
    of test_impute_model.py: 2.5·se·sqrt(max(fmi, 0.05))). Here the model-based gaps are
    within 1.1 such SDs; drawing z without the analysis model's rows (dropping the
    likelihood term) puts v at +4.8 SD, and chained defaults put x:z beyond −5 SD (checked
    by hand). About 6 s."""
    full, df = _cross_level(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = df.mi.impute(model=MODEL, m=10, iterations=40, rng=2).fit()
        comp = mlimpute.from_completed([full, full]).fit(MODEL)
    est, ce = res.summary(), comp.summary()
    sd = est["se"] * np.sqrt(np.maximum(est["fmi"], 0.05))
    gap = (est["estimate"] - ce["estimate"]).abs()
    assert (gap < 2.5 * sd).all(), pd.DataFrame({"gap": gap, "sd": sd})


def test_nonlinear_level2_predictor_is_refused(data):
    _, df = data
    with pytest.raises(UnsupportedError, match="level-2 predictor 'z'.*non-linearly"):
        df.mi.impute(model="y ~ x + I(z**2) + (1 | g)", m=1, iterations=2, rng=1)


def test_bit_identical_across_executors_continuation_and_files(data, tmp_path):
    _, df = data
    kw = dict(model=MODEL, m=2, rng=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = df.mi.impute(iterations=5, **kw)
        b = df.mi.impute(iterations=5, n_jobs=2, **kw)
        short = df.mi.impute(iterations=2, **kw)
        c = short.iterate(3)
        path = str(tmp_path / "l2.nc")
        short.to_netcdf(path)
        d = mlimpute.open(path).iterate(3)
    for k in (1, 2):
        for other in (b, c, d):
            pd.testing.assert_frame_equal(a.complete(k), other.complete(k))
    np.testing.assert_array_equal(a.traces["z:params"].values, c.traces["z:params"].values)


def test_all_cluster_copy_keeps_its_own_cache():
    """The level-2 model's data over every cluster has other rows than the plan's data over
    the observed clusters, so what a model keeps of its design (the probit and count
    models' slope prior, which depends on X) is kept for each separately, whichever is
    asked first."""
    from mlimpute.models._latent import slope_precision
    from mlimpute.models.counts_kernels import cached_slope_precision
    from mlimpute.sampler.compatible_context import all_clusters
    from mlimpute.sampler.engine import build_plan
    from mlimpute.spec.model import build_model_spec

    _, df = _cross_level(3, J=20, size=4)
    plan = build_plan(df, build_model_spec(df, MODEL, None, m=1, iterations=1))
    d = plan.data["z"]
    assert not d.X.dynamic and d.n_mis > 0  # z ~ v on the observed clusters only
    first = cached_slope_precision(d)
    full = all_clusters(d)
    assert full.cache is not d.cache
    np.testing.assert_array_equal(cached_slope_precision(full), slope_precision(full))
    np.testing.assert_array_equal(cached_slope_precision(d), first)
    assert not np.array_equal(slope_precision(full), first)
