"""Tests of mlimpute.analysis.apply: what ``func`` may return and how it is pooled."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

import mlimpute
from mlimpute.errors import PoolingError
from mlimpute.pooling import pool_scalar


@pytest.fixture(scope="module")
def imp():
    """Three completed data sets with y, x and z (no missing values needed)."""
    rng = np.random.default_rng(1)
    dfs = []
    for _ in range(3):
        x = rng.normal(size=200)
        z = rng.normal(size=200) * 5
        dfs.append(pd.DataFrame({"x": x, "z": z, "y": 1 + x + 0.1 * z + rng.normal(size=200)}))
    return mlimpute.from_completed(dfs)


def _ols(d):
    return smf.ols("y ~ x + z", d).fit()


def test_a_variance_series_is_aligned_to_the_estimates_by_label(imp):
    def aligned(d):
        r = _ols(d)
        return r.params, r.bse**2

    def reversed_order(d):
        r = _ols(d)
        return r.params, (r.bse**2)[::-1]

    a = imp.apply(aligned).summary()["se"]
    b = imp.apply(reversed_order).summary()["se"]
    pd.testing.assert_series_equal(a, b, rtol=0, atol=0)
    assert a.to_numpy() == pytest.approx(imp.apply(_ols).summary()["se"].to_numpy(), rel=1e-12)


def test_a_variance_series_with_other_labels_is_refused_naming_them(imp):
    def other(d):
        r = _ols(d)
        return r.params, (r.bse**2).rename({"z": "w"})

    with pytest.raises(PoolingError, match=r"completed data set 1.*lack \['z'\] and add \['w'\]"):
        imp.apply(other)


def test_a_variance_series_without_labels_is_taken_in_order(imp):
    def unlabelled(d):
        r = _ols(d)
        return r.params, pd.Series((r.bse**2).to_numpy())

    a = imp.apply(unlabelled).summary()["se"]
    assert a.to_numpy() == pytest.approx(imp.apply(_ols).summary()["se"].to_numpy(), rel=1e-12)


def test_a_scalar_estimate_with_a_scalar_variance_is_pooled_as_pool_scalar_does(imp):
    res = imp.apply(lambda d: (d.y.mean(), d.y.var() / len(d)))
    ests = [d.y.mean() for d in imp.complete("all")]
    variances = [d.y.var() / len(d) for d in imp.complete("all")]
    expected = pool_scalar(ests, variances).table()
    got = res.summary()
    for col in ("estimate", "se", "df"):
        assert got[col].iloc[0] == pytest.approx(expected[col].iloc[0], rel=1e-12)


@pytest.mark.parametrize("dfcom", ["abc", None, 0, -5, np.nan, [3.0]])
def test_a_bad_dfcom_returned_by_func_is_a_pooling_error_naming_it(imp, dfcom):
    def func(d):
        return np.array([d.y.mean()]), np.array([d.y.var() / len(d)]), dfcom

    if dfcom is None:  # None means "not given"
        assert imp.apply(func).dfcom == np.inf
        return
    with pytest.raises(PoolingError, match="dfcom .* returned by func for completed data set 1"):
        imp.apply(func)


def test_a_numeric_dfcom_returned_by_func_is_used(imp):
    def func(d):
        return np.array([d.y.mean()]), np.array([d.y.var() / len(d)]), np.array(30.0)

    assert imp.apply(func).dfcom == 30.0


def test_a_non_finite_estimate_names_the_term_and_the_data_set_from_1(imp):
    calls = iter(range(3))

    def func(d):
        r = _ols(d)
        p = r.params.copy()
        if next(calls) == 2:
            p["x"] = np.nan
        return p, r.cov_params()

    with pytest.raises(PoolingError, match=r"the estimate of 'x' in completed data set 3 is not"):
        imp.apply(func)


def test_an_asymmetric_covariance_is_refused_naming_the_data_set(imp):
    def asym(d):
        c = _ols(d).cov_params().to_numpy().copy()
        c[0, 1] += 1.0
        return _ols(d).params, c

    with pytest.raises(PoolingError, match="completed data set 1 is not symmetric"):
        imp.apply(asym)


def test_tests_on_a_singular_covariance_are_pooling_errors_naming_terms_and_data_set(imp):
    def singular(d):
        r = smf.ols("y ~ x", d).fit()
        c = r.cov_params().copy()
        v = np.sqrt(np.diag(c))
        c.iloc[0, 1] = c.iloc[1, 0] = v[0] * v[1]
        return r.params, c

    res = imp.apply(singular)
    for method in ("D1", "D2"):
        with pytest.raises(
            PoolingError, match=r"terms 'Intercept', 'x' in completed data set 1 is singular"
        ):
            res.test("Intercept = 0, x = 0", method=method)
    # a single term's test is fine: its variance is positive
    assert np.isfinite(res.test("x = 0").statistic)
