"""The fit path of ``imp.fit``: accuracy of the Newton fits, warm starts, reused designs,
and per-imputation fits in a process pool or on dask giving the serial results exactly.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import mlimpute
from mlimpute import analysis
from mlimpute.analysis import _Model
from mlimpute.analysis.fitters import mixedlm as _mixedlm
from mlimpute.datasets import classroom
from mlimpute.errors import DataError, PoolingError, SpecificationError
from mlimpute.parallel import map_blocks
from mlimpute.spec.formula import parse_formula

EXP3 = "grade ~ skill * gender + relation + (1 + gender | class)"


@pytest.fixture(scope="module")
def exp3():
    """The issue's benchmark: experiment 3 (rng=1), m = 25, 20 iterations."""
    d = classroom(3, rng=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return d.incomplete.mi.impute(d.imputation, m=25, iterations=20, rng=1)


@pytest.fixture(scope="module")
def exp3_serial(exp3):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # singular fits are noted
        return exp3.fit(EXP3)


@pytest.fixture(scope="module")
def exp2():
    d = classroom(2, rng=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return d.incomplete.mi.impute(d.imputation, m=4, iterations=10, rng=2)


def designs(imp, formula=EXP3):
    model = _Model(parse_formula(formula), "lmm", cluster="class")
    return [model.design(imp.complete(i), i) for i in range(1, imp.m + 1)]


def assert_same_result(a, b):
    """Two pooled results from the same fits, bit for bit."""
    np.testing.assert_array_equal(a.per_imputation, b.per_imputation)
    for fa, fb in zip(a.fits, b.fits, strict=True):
        for name in ("fe_params", "cov_fe", "cov_re"):
            np.testing.assert_array_equal(getattr(fa, name), getattr(fb, name))
        assert fa.scale == fb.scale and fa.llf == fb.llf
    pd.testing.assert_frame_equal(a.summary(), b.summary(), check_exact=True)
    pd.testing.assert_frame_equal(
        a.variance_components(), b.variance_components(), check_exact=True
    )


# ---------------------------------------------------------------- accuracy


# Slow (25 careful statsmodels fits); test_pooling.py's
# test_fit_reaches_the_optimum_where_statsmodels_stops_short and the mitml/lme4 reference
# tests keep the profiled fits' accuracy in the default suite.
@pytest.mark.slow
def test_newton_fits_match_careful_statsmodels_fits(exp3, exp3_serial):
    """Every fit of the issue's benchmark against statsmodels with gtol 1e-10 (checked on
    the profiled deviance): 1e-6 relative for the fixed effects, the residual variance and
    the random-effect (co)variances (covariances relative to the product of the SDs);
    where statsmodels ends short of a boundary optimum (singular fits), never a worse
    likelihood than it."""
    interior = 0
    for d, ours in zip(designs(exp3), exp3_serial.fits, strict=True):
        ref = _mixedlm.fit_mixedlm(d.y, d.X, d.Z, d.groups, engine="statsmodels", gtol=1e-10)
        assert ours.converged and ours.optimizer == "Newton"
        assert ours.llf >= ref.llf - 1e-9
        if ref.singular:
            assert ours.singular
            np.testing.assert_allclose(ours.fe_params, ref.fe_params, rtol=1e-4)
            continue
        interior += 1
        np.testing.assert_allclose(ours.fe_params, ref.fe_params, rtol=1e-6)
        assert ours.scale == pytest.approx(ref.scale, rel=1e-6)
        sd = np.sqrt(np.diag(ref.cov_re))
        assert np.max(np.abs(ours.cov_re - ref.cov_re) / np.outer(sd, sd)) < 1e-6
        sd_fe = np.sqrt(np.diag(ref.cov_fe))
        assert np.max(np.abs(ours.cov_fe - ref.cov_fe) / np.outer(sd_fe, sd_fe)) < 1e-6
    assert interior >= 15


def test_singular_fits_are_at_least_as_good_as_a_careful_nelder_mead(exp3, exp3_serial):
    """Where the slope variance is at zero: the bounded Nelder-Mead from lme4's start,
    restarted, never finds a lower deviance than Newton's method."""
    for d, ours in zip(designs(exp3), exp3_serial.fits, strict=True):
        if not ours.singular:
            continue
        prof = _mixedlm._Profiled(d.y, d.X, d.Z, d.groups, np.ones((2, 2), bool), True)
        nm = prof.minimise(prof.minimise(prof.theta_of(np.eye(2))).x)
        assert -2 * ours.llf <= nm.fun + 1e-9
        assert ours.relative_cholesky_diagonal[1] < 1e-6


@pytest.mark.parametrize("reml", [True, False])
def test_gradient_is_the_derivative_of_the_deviance(exp3, reml):
    d = designs(exp3)[3]
    for mask in (np.ones((2, 2), bool), np.eye(2, dtype=bool)):
        prof = _mixedlm._Profiled(d.y, d.X, d.Z, d.groups, mask, reml)
        theta = np.array([0.7, -0.2, 0.4]) if mask.all() else np.array([0.7, 0.4])
        dev, grad = prof.deviance_and_gradient(theta)
        assert dev == prof.deviance(theta)
        h = 1e-5
        numeric = [
            (prof.deviance(theta + h * e) - prof.deviance(theta - h * e)) / (2 * h)
            for e in np.eye(theta.size)
        ]
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-6)


def test_batched_evaluation_equals_one_at_a_time(exp3):
    d = designs(exp3)[0]
    prof = _mixedlm._Profiled(d.y, d.X, d.Z, d.groups, np.ones((2, 2), bool), True)
    thetas = np.array([[1.0, 0.0, 1.0], [0.3, 0.1, 0.0], [0.2, -0.4, 0.05]])
    dev, grad = prof.evaluate(thetas)
    for k, theta in enumerate(thetas):
        one, g = prof.deviance_and_gradient(theta)
        assert dev[k] == pytest.approx(one, rel=1e-13)
        np.testing.assert_allclose(grad[k], g, rtol=1e-10, atol=1e-10)


def test_q1_and_q3_models():
    """A random intercept (q = 1, written-out inverse) and three correlated random effects
    (q = 3, LAPACK) against statsmodels."""
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(40), 15)
    x1, x2 = rng.normal(size=(2, g.size))
    b = rng.multivariate_normal([0, 0, 0], [[1, 0.3, 0], [0.3, 0.5, 0.1], [0, 0.1, 0.4]], 40)
    y = 1 + x1 - x2 + b[g, 0] + b[g, 1] * x1 + b[g, 2] * x2 + rng.normal(size=g.size)
    X = np.column_stack([np.ones_like(x1), x1, x2])
    for Z in (X[:, :1], X):
        ours = _mixedlm.fit_mixedlm(y, X, Z, g)
        res = sm.MixedLM(y, X, g, exog_re=Z).fit(reml=True, method="bfgs", gtol=1e-10)
        assert ours.converged and ours.optimizer == "Newton"
        np.testing.assert_allclose(ours.fe_params, res.fe_params, rtol=1e-6)
        sd = np.sqrt(np.diag(res.cov_re))
        assert np.max(np.abs(ours.cov_re - res.cov_re) / np.outer(sd, sd)) < 1e-6
        assert ours.scale == pytest.approx(res.scale, rel=1e-6)


def test_a_singular_start_is_left():
    """Started on theta_kk = 0, where the derivative in theta_kk vanishes, the fit still
    finds a clearly positive variance."""
    rng = np.random.default_rng(2)
    g = np.repeat(np.arange(30), 20)
    x = rng.integers(0, 2, g.size).astype(float)
    y = rng.normal(size=30)[g] + rng.normal(size=30)[g] * x + rng.normal(size=g.size)
    X = Z = np.column_stack([np.ones_like(x), x])
    cold = _mixedlm.fit_mixedlm(y, X, Z, g)
    warm = _mixedlm.fit_mixedlm(y, X, Z, g, start=[0.0, 0.0, 0.0])
    assert not cold.singular and cold.cov_re[1, 1] > 0.3
    np.testing.assert_allclose(warm.cov_re, cold.cov_re, rtol=1e-7, atol=1e-9)


def test_warm_starts_do_not_change_the_estimates(exp3, exp3_serial):
    """Imputations 2..m start from imputation 1's estimates; from lme4's start instead
    they reach the same optimum (1e-7 on the estimates)."""
    for d, warm in list(zip(designs(exp3), exp3_serial.fits, strict=True))[1:]:
        cold = _mixedlm.fit_mixedlm(d.y, d.X, d.Z, d.groups)
        np.testing.assert_allclose(warm.fe_params, cold.fe_params, rtol=1e-7)
        assert warm.scale == pytest.approx(cold.scale, rel=1e-7)
        sd = np.sqrt(np.maximum(np.diag(cold.cov_re), 1e-8 * cold.scale))
        assert np.max(np.abs(warm.cov_re - cold.cov_re) / np.outer(sd, sd)) < 1e-6


def test_statsmodels_engine_is_the_cross_check(exp2):
    f = "grade ~ gender + relation + (1 | class)"
    a = exp2.fit(f)
    b = exp2.fit(f, engine="statsmodels")
    assert all(x.optimizer == "Newton" for x in a.fits)
    assert all(x.optimizer.startswith("statsmodels") for x in b.fits)
    pd.testing.assert_frame_equal(a.summary(), b.summary(), rtol=1e-6)


# ---------------------------------------------------------------- reused designs


@pytest.mark.parametrize(
    "formula",
    [
        "grade ~ relation * gender + cmean(relation) + (1 + relation | class)",
        "grade ~ skill + C(gender) + relation + I(relation ** 2) + (1 + gender || class)",
        "relation ~ grade + gender + (1 | class)",
    ],
)
def test_reused_designs_equal_full_materialisation(exp2, formula):
    """Later data sets materialise only their changed rows into a copy of the first
    design: bit for bit what formulaic builds from the whole data set."""
    model = _Model(parse_formula(formula), "lmm", cluster="class")
    partial = 0
    for i in range(1, exp2.m + 1):
        df = exp2.complete(i)
        d = model.design(df, i)
        frame = model._frame(df, i)
        np.testing.assert_array_equal(d.X, np.asarray(model._x_spec.get_model_matrix(frame)))
        np.testing.assert_array_equal(d.Z, model._random_design(frame, False))
        np.testing.assert_array_equal(d.groups, frame["class"].to_numpy())
        changed = analysis._changed_rows(frame, model._anchor.columns)
        partial += 0 < changed.mean() <= 0.5
    assert partial == (0 if "cmean" in formula else exp2.m - 1)


def test_designs_are_shared_when_only_the_response_is_imputed(exp3):
    ds = designs(exp3)
    assert all(d.X is ds[0].X and d.Z is ds[0].Z for d in ds)
    assert not ds[0].X.flags.writeable
    assert len({d.y.tobytes() for d in ds}) == exp3.m


def test_changed_cluster_column_is_materialised_anew():
    d = classroom(1, rng=2).complete
    other = d.assign(**{"class": d["class"].sample(frac=1, random_state=1).to_numpy()})
    res = mlimpute.from_completed([d, other]).fit("grade ~ skill + (1 | class)")
    single = mlimpute.from_completed([other, other]).fit("grade ~ skill + (1 | class)")
    np.testing.assert_array_equal(res.per_imputation.loc[2], single.per_imputation.loc[1])


# ---------------------------------------------------------------- parallel fits


def test_pool_gives_the_serial_result(exp3, exp3_serial):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        par = exp3.fit(EXP3, n_jobs=2)
    assert_same_result(exp3_serial, par)


@pytest.mark.parametrize("kwargs", [{"n_jobs": 2}, {"n_jobs": -1}, {"n_jobs": 30}])
def test_pool_with_from_completed_and_likelihood_tests(exp2, kwargs):
    completed = mlimpute.from_completed(list(exp2.complete("all")))
    f = "grade ~ gender + relation + skill + (1 | class)"
    ser = completed.fit(f)
    par = completed.fit(f, **kwargs)
    assert_same_result(ser, par)
    for method in ("D1", "D3"):
        a, b = ser.test("gender = 0, skill = 0", method), par.test("gender = 0, skill = 0", method)
        assert (a.statistic, a.df2, a.p) == (b.statistic, b.df2, b.p)


def test_pool_with_ols_glm_and_glmm(exp2):
    df = exp2.complete(1)
    frames = [
        f.assign(good=(f["grade"] > df["grade"].median()).astype(float))
        for f in exp2.complete("all")
    ]
    completed = mlimpute.from_completed(frames)
    for f, kw in [
        ("grade ~ gender + relation", {}),
        ("good ~ relation", {"family": "binomial"}),
        ("good ~ relation + (1 | class)", {"family": "binomial"}),
    ]:
        assert_same_fixed(completed.fit(f, **kw), completed.fit(f, n_jobs=2, **kw))


def assert_same_fixed(a, b):
    np.testing.assert_array_equal(a.per_imputation, b.per_imputation)
    pd.testing.assert_frame_equal(a.summary(), b.summary(), check_exact=True)


def test_dask_gives_the_serial_result(exp3, exp3_serial, exp2, client):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        par = exp3.fit(EXP3, client=client)
    assert_same_result(exp3_serial, par)
    completed = mlimpute.from_completed(list(exp2.complete("all")))
    f = "grade ~ gender + relation + (1 | class)"
    ser, dsk = completed.fit(f), completed.fit(f, client=client)
    assert_same_result(ser, dsk)
    assert ser.test("gender = 0", "D3").statistic == dsk.test("gender = 0", "D3").statistic


def test_errors_from_a_worker_name_the_data_set(exp2):
    frames = list(exp2.complete("all"))
    frames[2] = frames[2].assign(relation=frames[2]["relation"].where(frames[2].index != 7))
    completed = mlimpute.from_completed(frames)
    for kw in ({}, {"n_jobs": 2}):
        with pytest.raises(DataError, match="completed data set 3 has missing values"):
            completed.fit("grade ~ relation + (1 | class)", **kw)


def test_n_jobs_and_client_together_are_refused(exp2):
    with pytest.raises(SpecificationError, match="n_jobs or client"):
        exp2.fit("grade ~ relation + (1 | class)", n_jobs=2, client=object())
    with pytest.raises(SpecificationError, match="n_jobs"):
        exp2.fit("grade ~ relation + (1 | class)", n_jobs=0)


# ---------------------------------------------------------------- map_blocks


def _square_or_die(shared, block):
    """Module level: workers import it by reference."""
    out = []
    for x in block:
        if x == shared:
            os._exit(3)
        out.append(x * x)
    return out


def _pool_children(timeout: float = 5.0) -> list:
    """multiprocessing children other than the dask cluster's, once they had ``timeout``
    seconds to go (a broken pool's other workers are stopped by its own thread)."""
    deadline = time.monotonic() + timeout
    while (
        left := [p for p in multiprocessing.active_children() if "Dask" not in p.name]
    ) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_map_blocks_order_and_dead_worker(method):
    items = list(range(11))
    assert map_blocks(_square_or_die, -1, items, n_jobs=2, start_method=method) == [
        x * x for x in items
    ]
    assert map_blocks(_square_or_die, -1, items) == [x * x for x in items]

    def failure(exc, block):
        return PoolingError(f"block {list(block)} died")

    with pytest.raises(PoolingError, match="died"):
        map_blocks(_square_or_die, 7, items, n_jobs=2, start_method=method, failure=failure)
    assert _pool_children() == []
    assert map_blocks(_square_or_die, -1, [], n_jobs=2) == []
