"""Model-based imputation of predictors that enter the analysis model non-linearly.

``I(x**2)``, ``log(x)``, ``exp(x)``... of an incomplete predictor: its missing values (where
the outcome is observed) are drawn by a vectorised random-walk Metropolis–Hastings step
whose proposal scale is tuned at every iteration with a diminishing Robbins–Monro gain that
depends only on the iteration index (so a continued chain equals a longer one bit for
bit); the kernel itself is checked against quadrature in ``test_kernels.py``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mlimpute
from mlimpute.errors import UnsupportedError

QUAD = "y ~ x + I(x**2) + (1 | g)"


def _quadratic(seed: int, J: int = 60, size: int = 10, beta2: float = 0.4):
    """y = 0.5 x + β2 x² + u0 + e, x with ICC 0.2; about 30 % of x missing at random on y."""
    rng = np.random.default_rng(seed)
    n = J * size
    g = np.repeat(np.arange(J), size)
    x = np.repeat(0.5 * rng.standard_normal(J), size) + rng.standard_normal(n)
    y = 0.5 * x + beta2 * x**2 + np.repeat(rng.standard_normal(J), size) + rng.standard_normal(n)
    full = pd.DataFrame({"y": y, "x": x, "g": g})
    miss = rng.random(n) < 1 / (1 + np.exp(-(-1.2 + (y - y.mean()))))
    return full, full.assign(x=np.where(miss, np.nan, x))


@pytest.fixture(scope="module")
def quad():
    return _quadratic(3)


@pytest.fixture(scope="module")
def quad_imp(quad):
    _, df = quad
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return df.mi.impute(model=QUAD, m=4, iterations=40, rng=5)


@pytest.mark.slow
def test_quadratic_effect_matches_complete_data():
    """Fixed effects of y ~ x + x² against the complete-data fit.

    Tolerance as in the interaction test of test_impute_model.py: the MI estimate differs
    from the complete-data one by about se·sqrt(fmi) (fmi floored at 0.05 for the Monte
    Carlo error of m = 10); we allow 2.5 such SDs. Dropping the analysis model's factor
    from x's target (x drawn from its own model only) puts I(x**2) at −3.5 SD, x at −3.4
    and the intercept at +5.2 (checked by hand). About 17 s.
    """
    full, df = _quadratic(7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = df.mi.impute(model=QUAD, m=10, iterations=60, rng=2).fit()
        comp = mlimpute.from_completed([full, full]).fit(QUAD)
    est, ce = res.summary(), comp.summary()
    sd = est["se"] * np.sqrt(np.maximum(est["fmi"], 0.05))
    gap = (est["estimate"] - ce["estimate"]).abs()
    assert (gap < 2.5 * sd).all(), pd.DataFrame({"gap": gap, "sd": sd})


def test_acceptance_rates_are_traced_and_sane(quad_imp):
    tr = quad_imp.traces["x:params"]
    names = list(tr["x:param"].values)
    assert names[-2:] == ["accept(MH)", "scale(MH)"]
    rate = tr.sel({"x:param": "accept(MH)"}).values  # (m, iterations)
    scale = tr.sel({"x:param": "scale(MH)"}).values
    # over the second half the rate of each chain (≈ 200 rows per step × 20 steps: a
    # binomial SE of about 0.01 even with strong autocorrelation) is within a sane band
    # around the 0.44 the adaptation aims at
    late = rate[:, 20:].mean(axis=1)
    assert np.all((late > 0.3) & (late < 0.6)), late
    # the scale keeps adapting, with steps that shrink like (t + 1)^-0.6 · |rate - 0.44|
    step = np.abs(np.diff(np.log(scale), axis=1))
    assert np.all(step[:, -1] > 0)
    bound = (np.arange(1, 40) + 1.0) ** -0.6 * np.abs(rate[:, 1:] - 0.44)
    np.testing.assert_allclose(step, bound, rtol=1e-9, atol=1e-12)


def test_observed_values_kept_and_nothing_missing(quad, quad_imp):
    _, df = quad
    obs = df.x.notna()
    for k in (1, 4):
        c = quad_imp.complete(k)
        assert not c.isna().any().any()
        assert np.array_equal(c.x[obs], df.x[obs])


def test_log_transform_stays_in_its_domain():
    """log(x): proposals ≤ 0 are rejected, so every imputed x with y observed is positive."""
    rng = np.random.default_rng(4)
    J, size = 30, 8
    n = J * size
    g = np.repeat(np.arange(J), size)
    x = np.exp(0.3 * np.repeat(rng.standard_normal(J), size) + 0.5 * rng.standard_normal(n))
    y = 1 + 2 * np.log(x) + np.repeat(rng.standard_normal(J), size) + rng.standard_normal(n)
    df = pd.DataFrame({"y": y, "x": np.where(rng.random(n) < 0.25, np.nan, x), "g": g})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imp = df.mi.impute(model="y ~ log(x) + (1 | g)", m=2, iterations=20, rng=1)
    for k in (1, 2):
        assert (imp.complete(k).x > 0).all()


def test_x_colon_x_is_x_and_products_of_incomplete_are_closed_form(quad):
    """formulaic reads x:x as x; x·w with both incomplete is linear in each: no MH traces."""
    _, df = quad
    rng = np.random.default_rng(0)
    df = df.assign(w=np.where(rng.random(len(df)) < 0.2, np.nan, rng.standard_normal(len(df))))
    imp = df.mi.impute(model="y ~ x:x + x:w + (1 | g)", m=1, iterations=3, rng=1)
    assert "accept(MH)" not in list(imp.traces["x:params"]["x:param"].values)
    assert not imp.complete(1)[["x", "w"]].isna().any().any()


def test_cmean_of_an_incomplete_predictor_is_refused(quad):
    _, df = quad
    with pytest.raises(UnsupportedError, match="cmean.*'x'"):
        df.mi.impute(model="y ~ x + cmean(x) + (1 | g)", m=1, iterations=2, rng=1)


def test_executors_and_continuation_are_bit_identical(quad):
    """n_jobs does not matter; a continued chain equals a longer one, bit for bit, however
    the iterations are split (the adaptation of the proposal scale depends only on the
    iteration index and its state is carried with the chain)."""
    _, df = quad
    kw = dict(model=QUAD, m=2, rng=9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = df.mi.impute(iterations=6, **kw)
        b = df.mi.impute(iterations=6, n_jobs=2, **kw)
        long = df.mi.impute(iterations=9, **kw)
        short = df.mi.impute(iterations=6, **kw)
        c, d = short.iterate(3), short.iterate(1).iterate(2)
        e = df.mi.impute(iterations=2, **kw).iterate(7)
    for k in (1, 2):
        pd.testing.assert_frame_equal(a.complete(k), b.complete(k))
        for other in (c, d, e):
            pd.testing.assert_frame_equal(long.complete(k), other.complete(k))
    np.testing.assert_array_equal(a.traces["x:params"].values, b.traces["x:params"].values)
    for other in (c, d, e):
        np.testing.assert_array_equal(
            long.traces["x:params"].values, other.traces["x:params"].values
        )
    scale = long.traces["x:params"].sel({"x:param": "scale(MH)"}).values
    assert np.all(np.ptp(scale[:, 6:], axis=1) > 0)  # still adapting after iteration 6


def test_saved_and_reloaded_runs_on_bit_for_bit(quad, tmp_path):
    """impute(a + b) == open(saved impute(a)).iterate(b), through netCDF and zarr: the
    proposal scales and their adaptation counters are saved with the chains."""
    _, df = quad
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = df.mi.impute(model=QUAD, m=2, iterations=4, rng=3)
        long = df.mi.impute(model=QUAD, m=2, iterations=6, rng=3)
        path = str(tmp_path / "mh.nc")
        a.to_netcdf(path)
        back = mlimpute.open(path)
        assert back.spec == a.spec
        more, again = back.iterate(2), a.iterate(2)
        zpath = str(tmp_path / "mh.zarr")
        a.to_zarr(zpath)
        zmore = mlimpute.open(zpath).iterate(2)
    for k in (1, 2):
        for other in (more, again, zmore):
            pd.testing.assert_frame_equal(long.complete(k), other.complete(k))
    for other in (more, again, zmore):
        np.testing.assert_array_equal(
            long.traces["x:params"].values, other.traces["x:params"].values
        )
