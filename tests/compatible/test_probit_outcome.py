"""A binary outcome with a probit analysis model: the missing predictors' full conditionals
use the latent ``y* ~ N(η, 1)`` (truncated by the observed y, drawn afresh before each
predictor's draw), and the missing outcomes are drawn from the probit model itself. The
data-augmentation kernel is checked against quadrature in ``test_kernels.py``."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import mlimpute  # noqa: F401  (the .mi accessor)

MODEL = "y ~ x * z + (1 | g)"


@pytest.fixture(scope="module")
def data():
    """Probit y on x, z and x·z with a random intercept; x missing at random on y (about
    30 %), y missing completely at random (10 %)."""
    r = np.random.default_rng(2)
    J, size = 80, 10
    n = J * size
    g = np.repeat(np.arange(J), size)
    z = np.repeat(r.standard_normal(J), size)
    x = np.repeat(0.5 * r.standard_normal(J), size) + r.standard_normal(n)
    eta = -0.2 + 0.8 * x + 0.4 * z + 0.4 * x * z + np.repeat(0.5 * r.standard_normal(J), size)
    y = (eta + r.standard_normal(n) > 0).astype(float)
    full = pd.DataFrame({"y": y, "x": x, "z": z, "g": g})
    mx = r.random(n) < np.where(y > 0, 0.45, 0.1)
    df = full.assign(x=np.where(mx, np.nan, x), y=np.where(r.random(n) < 0.1, np.nan, y))
    return full, df


def _probit(d: pd.DataFrame) -> np.ndarray:
    X = sm.add_constant(np.column_stack([d.x, d.z, d.x * d.z]))
    return sm.Probit(d.y, X).fit(disp=0).params.to_numpy()


def test_probit_coefficients_match_complete_data(data):
    """Single-level probit coefficients (a marginal check that needs no multilevel probit
    fit) of the completed data against the complete data, in units of √((1 + 1/m)B) (B
    the between-imputation variance: the error the missing values add, the data being
    fixed); 3 units. Model-based: within 0.9. Without the outcome's factor in x's
    conditional: x at −10.6, x:z at −4.8; chained defaults: x:z at −3.1 (checked by hand).
    """
    full, df = data
    m = 10
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imp = df.mi.impute(model=MODEL, m=m, iterations=40, rng=3)
    assert [(v.name, v.method) for v in imp.spec.variables] == [("x", "2l.norm"), ("y", "2l.bin")]
    est = np.array([_probit(imp.complete(k)) for k in range(1, m + 1)])
    z = (est.mean(axis=0) - _probit(full)) / np.sqrt(est.var(axis=0, ddof=1) * (1 + 1 / m))
    assert np.all(np.abs(z) < 3), z
    c = imp.complete(1)
    assert set(c.y.unique()) == {0.0, 1.0}
    obs = df.y.notna()
    assert np.array_equal(c.y[obs], df.y[obs])


def test_complete_binary_outcome_and_reproducibility(data):
    _, df = data
    df = df.assign(y=df.y.fillna(0.0))
    kw = dict(model=MODEL, m=2, rng=6)
    a = df.mi.impute(iterations=4, **kw)
    b = df.mi.impute(iterations=4, n_jobs=2, **kw)
    c = df.mi.impute(iterations=2, **kw).iterate(2)
    assert [v.name for v in a.spec.variables] == ["x"]
    for k in (1, 2):
        pd.testing.assert_frame_equal(a.complete(k), b.complete(k))
        pd.testing.assert_frame_equal(a.complete(k), c.complete(k))


def test_probit_with_a_square_uses_metropolis_hastings(data):
    _, df = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imp = df.mi.impute(model="y ~ x + I(x**2) + (1 | g)", m=2, iterations=10, rng=1)
    rate = imp.traces["x:params"].sel({"x:param": "accept(MH)"}).values
    assert np.all((rate[:, 5:] > 0.15) & (rate[:, 5:] < 0.9))
    assert not imp.complete(1).isna().any().any()


def test_fit_without_a_formula_fits_the_probit_model_of_the_imputations(data):
    """A binary outcome's analysis model is the multilevel probit model the imputations
    were made under, also where the outcome is complete; a family given still rules."""
    _, df = data
    for d in (df, df.assign(y=df.y.fillna(0.0))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            imp = d.mi.impute(model=MODEL, m=2, iterations=3, rng=1)
            assert imp.fit().model.startswith("GLMM (binomial, probit link")
            assert imp.fit(family="binomial", link="logit").model.startswith(
                "GLMM (binomial, logit link"
            )
