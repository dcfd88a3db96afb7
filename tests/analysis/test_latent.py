"""Tests of mlimpute.analysis.latent: ``imp.fit(latent=...)`` for formulas with ``lmean(x)``.

* ``latent="ml"`` is the pooled per-data-set ML fit of
  :func:`mlimpute.analysis.fitters.latent.fit_latent` (exact: the same arithmetic) and does
  not read the drawn ``lmean(x)`` column;
* ``latent="plausible"`` is the linear mixed model with ``lmean(x)`` as a column, as
  before (equal to fitting a renamed copy of that column);
* the default ``latent="auto"`` is ``"ml"`` inside the ML fit's scope, else
  ``"plausible"``;
* formulas outside the ML fit: an error naming the term or argument with ``latent="ml"``,
  the plausible-values fit without error by default.
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pandas as pd
import pytest

from mlimpute import MultiplyImputed
from mlimpute.analysis import from_completed
from mlimpute.analysis.fitters.latent import LatentFit, fit_latent
from mlimpute.errors import (
    LatentBoundaryError,
    MlimputeWarning,
    PoolingError,
    SpecificationError,
    UnsupportedError,
)
from mlimpute.pooling import pool
from mlimpute.simulation.compatible.designs import DESIGNS

MODEL = DESIGNS["d"].model  # "y ~ x + lmean(x) + (1 | g)"


@pytest.fixture(scope="module")
def imp():
    rng = np.random.default_rng(11)
    _, incomplete = DESIGNS["d"].generate(rng)
    w = rng.normal(size=200)
    incomplete["w"] = w[incomplete["g"].to_numpy()]  # a complete cluster-level column
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return incomplete.mi.impute(
            model="y ~ x + lmean(x) + w + (1 | g)", m=3, iterations=5, rng=rng
        )


def test_signature_shows_latent():
    from mlimpute.analysis import fit

    for f in (MultiplyImputed.fit, fit):
        param = inspect.signature(f).parameters["latent"]
        assert param.default == "auto" and param.kind is param.KEYWORD_ONLY
    assert 'latent : {"auto", "plausible", "ml"}, default "auto"' in fit.__doc__


def test_ml_is_the_pooled_per_data_set_fit(imp):
    res = imp.fit(latent="ml")
    assert res.model == "latent covariate model (ML, lmean(x) latent)"
    assert res.names == ("Intercept", "x", "lmean(x)", "w")
    est, cov = [], []
    for i in range(1, imp.m + 1):
        d = imp.complete(i)
        codes = np.unique(d["g"], return_inverse=True)[1]
        W = np.c_[np.ones(200), d.groupby(codes)["w"].first().to_numpy()]
        f = fit_latent(d["x"].to_numpy(), d["y"].to_numpy(), codes, W)
        order = [0, 2, 3, 1]  # (γ0, γw, b1, b2) -> (Intercept, x, lmean(x), w)
        est.append(f.fe_params[order])
        cov.append(f.cov_fe[np.ix_(order, order)])
    assert all(isinstance(f, LatentFit) for f in res.fits)
    expected = pool(np.array(est), np.array(cov), dfcom=res.dfcom, names=res.names)
    np.testing.assert_allclose(res.pooled.qbar, expected.qbar, rtol=1e-12)
    np.testing.assert_allclose(res.pooled.t, expected.t, rtol=1e-10)
    np.testing.assert_allclose(res.summary()["df"], expected.df, rtol=1e-10)
    assert res.dfcom == 1000 - 4 - 2  # lme4's df.residual of y's model
    vc = res.variance_components()
    assert list(vc.index) == ["var(Intercept|g)", "var(Residual)", "ICC|g"]
    assert vc["se"].notna().all()


def test_default_is_ml_inside_its_scope(imp):
    np.testing.assert_array_equal(imp.fit().pooled.qbar, imp.fit(latent="ml").pooled.qbar)
    assert imp.fit().model == "latent covariate model (ML, lmean(x) latent)"
    assert imp.fit(latent="auto").model == imp.fit().model
    assert imp.fit(latent="plausible").model == "linear mixed model (REML)"
    with pytest.raises(UnsupportedError, match="latent='plausible'"):
        imp.fit().test("lmean(x)", method="D3")
    with pytest.raises(UnsupportedError, match="latent='plausible'"):
        imp.fit().r_squared()


def test_ml_ignores_the_drawn_column(imp):
    frames = [imp.complete(i) for i in range(1, imp.m + 1)]
    scrambled = [f.assign(**{"lmean(x)": np.arange(len(f)) % 7 * 1.0}) for f in frames]
    a = from_completed(frames).fit("y ~ x + lmean(x) + w + (1 | g)", latent="ml")
    b = from_completed(scrambled).fit("y ~ x + lmean(x) + w + (1 | g)", latent="ml")
    np.testing.assert_array_equal(a.pooled.qbar, b.pooled.qbar)


def test_plausible_values_path_unchanged(imp):
    res = imp.fit(latent="plausible")
    assert res.model == "linear mixed model (REML)"
    renamed = [imp.complete(i).rename(columns={"lmean(x)": "pv"}) for i in range(1, imp.m + 1)]
    ref = from_completed(renamed).fit("y ~ x + pv + w + (1 | g)")
    np.testing.assert_array_equal(res.pooled.qbar, ref.pooled.qbar)
    np.testing.assert_array_equal(res.pooled.t, ref.pooled.t)


@pytest.mark.parametrize(
    ("formula", "kwargs", "named"),
    [
        ("y ~ x + lmean(x) + w + (1 + x | g)", {}, r"\(1 \+ x \| g\)"),
        ("y ~ x + lmean(x) + w + I(x**2) + (1 | g)", {}, r"I\(x \*\* 2\)"),
        ("y ~ lmean(x) + w + (1 | g)", {}, "x itself"),
        ("y ~ x + lmean(x) + x:w + (1 | g)", {}, "x:w"),
        ("y ~ x + lmean(x) + lmean(x):w + (1 | g)", {}, "lmean"),
        ("y ~ x + lmean(x) + w", {}, r"\(1 \| g\)"),
        ("y ~ x + lmean(x) + w + (1 | g)", {"family": "binomial"}, "family="),
    ],
)
def test_out_of_scope(imp, formula, kwargs, named):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(UnsupportedError, match="latent='ml'") as err:
            imp.fit(formula, latent="ml", cluster="g", **kwargs)
        assert err.match(named)
        if "family" in kwargs:
            return
        res = imp.fit(formula, cluster="g", **kwargs)  # default: plausible values here
    assert not res.model.startswith("latent")


def test_argument_errors(imp):
    for bad in ("mle", None):
        with pytest.raises(SpecificationError, match="latent must be 'auto', 'plausible' or 'ml'"):
            imp.fit(latent=bad)
    with pytest.raises(SpecificationError, match="latent='ml'.*has none"):
        imp.fit("y ~ x + (1 | g)", latent="ml")
    # no lmean(): latent="plausible" (and the default) change nothing
    a = imp.fit("y ~ x + (1 | g)", latent="plausible")
    b = imp.fit("y ~ x + (1 | g)")
    np.testing.assert_array_equal(a.pooled.qbar, b.pooled.qbar)


def test_likelihood_tests_refused_wald_works(imp):
    res = imp.fit(latent="ml")
    assert np.isfinite(res.test("`lmean(x)` = 0").statistic)
    with pytest.raises(UnsupportedError, match="D3"):
        res.test("`lmean(x)` = 0", method="D3")


def test_unequal_clusters_in_any_row_order():
    """Shuffled rows, string cluster labels, unequal sizes: the pooled ML fit equals
    fit_latent on each data set sorted by cluster."""
    rng = np.random.default_rng(5)
    J = 60
    sizes = rng.integers(2, 9, J)
    codes = np.repeat(np.arange(J), sizes)
    xi = 0.6 * rng.normal(size=J)
    frames = []
    for _ in range(2):
        x = xi[codes] + rng.normal(size=codes.size)
        y = 0.5 * x + 0.3 * xi[codes] + 0.4 * rng.normal(size=J)[codes] + rng.normal(size=x.size)
        frame = pd.DataFrame(
            {"y": y, "x": x, "g": [f"c{c}" for c in codes], "lmean(x)": rng.normal(size=x.size)}
        )
        frames.append(frame.sample(frac=1.0, random_state=1))
    res = from_completed(frames).fit("y ~ x + lmean(x) + (1 | g)", latent="ml")
    est = []
    for frame in frames:
        ordered = frame.sort_values("g")
        c = np.unique(ordered["g"], return_inverse=True)[1]
        est.append(fit_latent(ordered["x"].to_numpy(), ordered["y"].to_numpy(), c).fe_params)
    np.testing.assert_allclose(res.pooled.qbar, np.mean(est, axis=0), rtol=1e-7, atol=1e-9)


def _boundary_frames():
    """Two completed data sets, 30 clusters of 6, x without a cluster effect: the ML fit
    of the first estimates a small latent variance, the second's is at the boundary
    (latent variance ~ 1e-11)."""
    frames = []
    codes = np.repeat(np.arange(30), 6)
    for seed in (0, 9):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=180)
        y = x + 1.4 * rng.normal(size=30)[codes] + rng.normal(size=180)
        frame = pd.DataFrame({"y": y, "x": x, "g": codes})
        frame["lmean(x)"] = frame.groupby("g")["x"].transform("mean")
        frames.append(frame)
    return frames


def test_boundary_fit_ml_raises_auto_falls_back():
    """Before: PoolingError "the mean within-imputation variance of 'Intercept' is
    -9.7e8, not positive" for both (the inverse of an indefinite information pooled)."""
    source = from_completed(_boundary_frames())
    formula = "y ~ x + lmean(x) + (1 | g)"
    with pytest.raises(LatentBoundaryError, match="completed data set 2") as err:
        source.fit(formula, latent="ml")
    assert isinstance(err.value, PoolingError) and err.value.imputation == 2
    assert err.match("latent variance near zero") and err.match("latent='plausible'")
    with pytest.warns(MlimputeWarning, match="plausible values.*completed data set 2"):
        res = source.fit(formula)  # latent="auto"
    assert res.model == "linear mixed model (REML)"
    assert "boundary on completed data set 2" in res.notes[0]
    assert "boundary on completed data set 2" in str(res)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no note without the fallback
        ref = source.fit(formula, latent="plausible")
    np.testing.assert_array_equal(res.pooled.qbar, ref.pooled.qbar)
    np.testing.assert_array_equal(res.pooled.t, ref.pooled.t)
