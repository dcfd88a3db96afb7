"""Incomplete auxiliary columns in model-based imputation.

An auxiliary a has its own model (``a ~ later + complete + (1 | g)``, after the analysis
model's predictors) and enters the models of the predictors before it; its missing values
are drawn from those models only (it is not in the analysis model's likelihood).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mlimpute


@pytest.fixture(scope="module")
def data():
    """x missing at random on a (a = x + noise, itself 17 % missing where x is observed)."""
    r = np.random.default_rng(3)
    J, size = 40, 8
    n = J * size
    g = np.repeat(np.arange(J), size)
    x = np.repeat(0.5 * r.standard_normal(J), size) + r.standard_normal(n)
    a = x + 0.3 * r.standard_normal(n)
    y = 0.3 * x + np.repeat(r.standard_normal(J), size) + r.standard_normal(n)
    mx = r.random(n) < 1 / (1 + np.exp(-(-1.2 + 2 * a)))
    a_obs = np.where((r.random(n) < 0.2) & ~mx, np.nan, a)
    return x, pd.DataFrame({"y": y, "x": np.where(mx, np.nan, x), "a": a_obs, "g": g})


def test_incomplete_auxiliary_removes_the_bias_of_x(data):
    """The mean of the completed x against the complete-data mean, in units of the
    between-imputation SD of that mean (√((1 + 1/m)B): the part of its error that the
    missing values add, the data being fixed); 3 such units. With a: −0.2; without a
    (x is then missing not at random given the analysis model) −11.6 (checked by hand)."""
    x, df = data
    m = 10
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imp = df.mi.impute(model="y ~ x + (1 | g)", auxiliary=["a"], m=m, iterations=30, rng=1)
    assert imp.spec.formulas == {"x": "~ a + (1 | g)", "a": "~ 1 + (1 | g)"}
    means = np.array([imp.complete(k).x.mean() for k in range(1, m + 1)])
    z = (means.mean() - x.mean()) / np.sqrt(means.var(ddof=1) * (1 + 1 / m))
    assert abs(z) < 3, z
    c = imp.complete(1)
    assert not c.isna().any().any()
    obs = df.a.notna()
    assert np.array_equal(c.a[obs], df.a[obs])


def test_incomplete_auxiliary_reproducible(data, tmp_path):
    _, df = data
    kw = dict(model="y ~ x + (1 | g)", auxiliary=["a"], m=2, rng=5)
    a = df.mi.impute(iterations=4, **kw)
    b = df.mi.impute(iterations=4, n_jobs=2, **kw)
    c = df.mi.impute(iterations=2, **kw).iterate(2)
    path = str(tmp_path / "aux.nc")
    a.to_netcdf(path)
    assert mlimpute.open(path).spec == a.spec
    for k in (1, 2):
        pd.testing.assert_frame_equal(a.complete(k), b.complete(k))
        pd.testing.assert_frame_equal(a.complete(k), c.complete(k))
