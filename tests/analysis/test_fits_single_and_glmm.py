"""The single-level (OLS, GLM) and GLMM analysis paths of ``fit()``: per imputation equal
to statsmodels' fits, pooled by Rubin's rules; what they refuse."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy.stats import norm

import mlimpute  # noqa: F401  (registers the .mi accessor)
from mlimpute.analysis import from_completed
from mlimpute.analysis.fitters.glmm import fit_glmm
from mlimpute.errors import (
    DataTypeError,
    SpecificationError,
    UnsupportedError,
)
from tests.analysis.test_analysis import _two_datasets


def test_ols_path_matches_statsmodels_per_imputation():
    a, b = _two_datasets()
    res = from_completed([a, b]).fit("grade ~ skill * gender + relation")
    assert res.model == "linear model (OLS)"
    assert list(res.names) == ["Intercept", "skill", "gender", "relation", "skill:gender"]
    for i, df in enumerate((a, b), start=1):
        sm_fit = smf.ols("grade ~ skill * gender + relation", df).fit()
        np.testing.assert_allclose(
            res.per_imputation.loc[i], sm_fit.params[list(res.names)], rtol=1e-10
        )
    assert res.dfcom == len(a) - 5
    assert list(res.variance_components().index) == ["var(Residual)"]
    sm_a = smf.ols("grade ~ skill * gender + relation", a).fit()
    sm_b = smf.ols("grade ~ skill * gender + relation", b).fit()
    assert res.variance_components().loc["var(Residual)", "estimate"] == pytest.approx(
        (sm_a.scale + sm_b.scale) / 2, rel=1e-10
    )
    d3 = res.test("gender = 0, skill:gender = 0", "D3")
    assert d3.p < 0.01 and res.test("gender = 0, skill:gender = 0").p < 0.01


@pytest.mark.parametrize("family", ["binomial", sm.families.Binomial()])
def test_glm_path_matches_statsmodels(family):
    a, b = _two_datasets(1)
    a, b = (x.assign(passed=(x["grade"] > 11).astype(int)) for x in (a, b))
    res = from_completed([a, b]).fit("passed ~ skill + gender", family=family)
    assert res.model == "GLM (binomial, logit link)"
    for i, df in enumerate((a, b), start=1):
        sm_fit = smf.glm("passed ~ skill + gender", df, family=sm.families.Binomial()).fit()
        np.testing.assert_allclose(res.per_imputation.loc[i], sm_fit.params, rtol=1e-8)
    assert res.dfcom == len(a) - 3
    for method in ("D1", "D2", "D3"):
        assert res.test("skill = 0", method).p < 1e-6
    with pytest.raises(UnsupportedError, match="variance components"):
        res.variance_components()


def test_poisson_glm_and_unsupported_glm_requests():
    a, b = _two_datasets(2)
    a, b = (x.assign(count=np.round(np.exp(0.3 * x["skill"]) * 3).astype(int)) for x in (a, b))
    imp = from_completed([a, b])
    res = imp.fit("count ~ skill", family="poisson")
    assert res.summary().loc["skill", "estimate"] > 0
    with pytest.raises(SpecificationError, match="unknown family 'probit'"):
        imp.fit("count ~ skill", family="probit")
    with pytest.raises(UnsupportedError, match="generalised linear mixed models support"):
        imp.fit("grade ~ skill + (1 | class)", family="gamma")
    with pytest.raises(UnsupportedError, match="link 'identity'"):
        imp.fit("count ~ skill + (1 | class)", family="poisson", link="identity")
    gamma = imp.fit("grade ~ skill", family="gamma")
    with pytest.raises(UnsupportedError, match="fixed dispersion"):
        gamma.test("skill = 0", "D3")


DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.mark.parametrize("family", ["negative_binomial", sm.families.NegativeBinomial(alpha=1.0)])
def test_negative_binomial_glm_estimates_its_dispersion_as_glm_nb(family):
    """The dispersion theta = r is estimated by ML (it was held at 1, what R's
    ``negative.binomial(1)`` gives: SEs 25 % too small here, theta = 0.43) and the
    coefficients, their SEs (given theta), theta and the log-likelihood equal
    ``MASS::glm.nb``'s (tests/data/glm_nb.R) to 1e-6 relative; D1 and D2 (Wald) pool them,
    likelihood-ratio pooling is refused as for negative-binomial GLMMs."""
    df = pd.read_csv(DATA / "glm_nb.csv")
    ref = json.loads((DATA / "glm_nb_fits.json").read_text())
    imp = from_completed([df, df])
    res = imp.fit("y ~ x + z", family=family)
    f = res.fits[0]
    np.testing.assert_allclose(np.sqrt(np.diag(f.cov_params)), ref["se"], rtol=1e-6)
    np.testing.assert_allclose(f.params, ref["coef"], rtol=1e-6)
    assert res.model == "GLM (negative binomial, log link; dispersion by ML)"
    assert f.dispersion == pytest.approx(ref["theta"], rel=1e-6)
    assert f.llf == pytest.approx(ref["loglik"], abs=1e-6)
    assert (f.n_params, f.df_resid) == (ref["df_loglik"], ref["df_residual"]) and f.converged
    summary = res.summary()  # identical data sets: the complete-data fit
    np.testing.assert_allclose(summary["se"], ref["se"], rtol=1e-6)
    assert res.test("x = 0, z = 0").p < 1e-6 and res.test("x = 0", "D2").p < 1e-6
    small = imp.fit("y ~ x", family="negative_binomial")
    assert res.compare(small).p == pytest.approx(res.test("z = 0").p)
    for method, use in (("D2", "likelihood"), ("D3", "wald")):
        with pytest.raises(UnsupportedError, match="negative-binomial models is not supported"):
            res.test("z = 0", method, use=use)
        with pytest.raises(UnsupportedError, match="negative-binomial models is not supported"):
            res.compare(small, method, use=use)


def test_negative_binomial_glm_link_and_no_overdispersion():
    """A link given by name reaches the negative binomial (it raised a TypeError); counts
    without overdispersion put r at its upper bound, noted in the fit's messages."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal(400)
    df = pd.DataFrame({"x": x, "y": rng.poisson(np.exp(1 + 0.3 * x))})
    res = from_completed([df, df]).fit("y ~ x", family="negative_binomial", link="sqrt")
    assert res.model == "GLM (negative binomial, sqrt link; dispersion by ML)"
    poisson = from_completed([df, df]).fit("y ~ x", family="poisson")
    f = from_completed([df, df]).fit("y ~ x", family="negative_binomial").fits[0]
    assert f.dispersion == 1e6 and "bound 1e+06 (no overdispersion" in f.messages[0]
    np.testing.assert_allclose(f.params, poisson.fits[0].params, rtol=1e-5)


def _binary_two_level(m=5, seed=0):
    """A two-level binary outcome (J = 50 classes of 20, latent random-intercept variance 1,
    probit), 30 % of it missing at random given the complete covariate ``x``, and ``m``
    oracle imputations (draws from the true model given the true class effects)."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(50), 20)
    x = rng.normal(size=g.size)
    eta = -0.3 + 0.8 * x + rng.normal(size=50)[g]
    y = (eta + rng.normal(size=g.size) > 0).astype(int)
    miss = rng.random(g.size) < 1 / (1 + np.exp(-(-0.95 + 0.8 * x)))  # about 30 %, MAR
    complete = pd.DataFrame({"y": y, "x": x, "g": g})
    p = norm.cdf(eta)
    frames = [
        complete.assign(y=np.where(miss, rng.random(g.size) < p, y).astype(int)) for _ in range(m)
    ]
    return complete, frames, miss


def test_glmm_fit_pools_fixed_effects_and_latent_variance_components():
    complete, frames, miss = _binary_two_level()
    assert 0.25 < miss.mean() < 0.35
    imp = from_completed(frames)
    formula = "y ~ x + (1 | g)"
    res = imp.fit(formula, family="binomial", link="probit")
    assert res.model == "GLMM (binomial, probit link; ML, adaptive Gauss-Hermite, 10 nodes)"
    assert (res.nobs, res.group, res.n_groups, res.dfcom) == (1000, "g", 50, 1000 - 2)
    assert "Groups:           g (50)" in str(res)
    X = np.column_stack([np.ones(1000), complete["x"]])
    fits = [
        fit_glmm(f["y"], X, np.ones((1000, 1)), f["g"], "binomial", link="probit") for f in frames
    ]
    np.testing.assert_allclose(
        res.per_imputation.to_numpy(), [f.fe_params for f in fits], atol=1e-10
    )
    var = np.array([f.cov_re[0, 0] for f in fits])
    vc = res.variance_components()
    assert list(vc.index) == ["var(Intercept|g)", "ICC|g"]  # no residual variance
    np.testing.assert_allclose(vc["estimate"], [var.mean(), (var / (var + 1)).mean()])
    # issue 5's criteria, against the complete-data fit
    full = from_completed([complete, complete]).fit(formula, family="binomial", link="probit")
    est, truth = res.summary(), full.summary()
    assert np.all(np.abs(est["estimate"] - truth["estimate"]) < 2 * est["se"])
    d0, d0_full = vc.loc["var(Intercept|g)", "estimate"], full.variance_components().iloc[0, 0]
    assert abs(d0 / d0_full - 1) < 0.3
    for method, use in [("D1", "wald"), ("D2", "wald"), ("D2", "likelihood"), ("D3", "wald")]:
        assert res.test("x = 0", method, use=use).p < 1e-6
    assert res.test("Intercept = -0.3", "D1").p > 0.01
    glm = imp.fit("y ~ x", family="binomial", link="probit")
    assert res.compare(glm, "D3").p < 1e-6  # the random intercept is needed
    # logit through a statsmodels family object; its ICC uses pi^2 / 3
    logit = imp.fit(formula, family=sm.families.Binomial(), nagq=1)
    assert logit.model == "GLMM (binomial, logit link; ML, Laplace)"
    lv = np.array([f.cov_re[0, 0] for f in logit.fits])
    assert logit.variance_components().loc["ICC|g", "estimate"] == pytest.approx(
        np.mean(lv / (lv + np.pi**2 / 3))
    )


def test_glmm_fit_poisson_and_errors():
    _, frames, _ = _binary_two_level(m=2, seed=1)
    counts = [f.assign(n=f["y"] + 2 * (f["x"] > 0)) for f in frames]
    imp = from_completed(counts)
    res = imp.fit("n ~ x + (1 | g)", family="poisson")
    assert res.model.startswith("GLMM (poisson, log link")
    assert list(res.variance_components().index) == ["var(Intercept|g)"]  # no ICC
    with pytest.raises(DataTypeError, match="the response 'n' has the value 2 .*0/1 values"):
        imp.fit("n ~ x + (1 | g)", family="binomial")
    with pytest.raises(SpecificationError, match="needs a family"):
        imp.fit("y ~ x + (1 | g)", link="probit")
    with pytest.raises(SpecificationError, match="nagq must be a positive integer"):
        imp.fit("y ~ x + (1 | g)", family="binomial", nagq=0)
    with pytest.raises(SpecificationError, match="set the link in the object"):
        imp.fit("y ~ x + (1 | g)", family=sm.families.Binomial(), link="probit")


def test_glm_response_is_checked_like_the_glmm_one():
    # binomial GLMs need 0/1 (or boolean), Poisson and negative binomial ones
    # non-negative whole numbers; a continuous response is refused, naming it
    a, b = _two_datasets()
    imp = from_completed([a, b])
    for family in ("binomial", sm.families.Binomial(sm.families.links.Probit())):
        with pytest.raises(DataTypeError, match="response 'grade' .* binomial GLM needs 0/1"):
            imp.fit("grade ~ skill", family=family)
    for family, name in (
        ("poisson", "Poisson"),
        ("negative_binomial", "negative binomial"),
        (sm.families.Poisson(), "Poisson"),
    ):
        with pytest.raises(DataTypeError, match=f"'grade' .* {name} GLM needs non-negative"):
            imp.fit("grade ~ skill", family=family)
    counts = [x.assign(n=(x["grade"] - 12).round()) for x in (a, b)]  # some negative
    with pytest.raises(DataTypeError, match="'n' has the value -.* data set 1.*Poisson GLM"):
        from_completed(counts).fit("n ~ skill", family="poisson")
    # what is accepted: booleans, 0/1, counts; other families take any number
    good = [x.assign(ok=x["grade"] > 10, n=x["grade"].round().abs()) for x in (a, b)]
    imp = from_completed(good)
    assert imp.fit("ok ~ skill", family="binomial").summary().shape[0] == 2
    assert imp.fit("n ~ skill", family="poisson").summary().shape[0] == 2
    assert imp.fit("grade ~ skill", family="gamma").summary().shape[0] == 2
    # Gamma and inverse-Gaussian GLMs need positive values, as R's glm()
    shifted = from_completed([x.assign(g0=x["grade"] - 10) for x in (a, b)])
    for family, name in (("gamma", "Gamma"), ("inverse_gaussian", "inverse Gaussian")):
        with pytest.raises(DataTypeError, match=f"'g0' .* {name} GLM needs positive values"):
            shifted.fit("g0 ~ skill", family=family)
