"""Linear mixed models with several random-effect terms (fitters/multiterm.py, imp.fit).

Reference values: ``tests/data/lme4_multiterm.json``, lme4 1.1.31 fits (REML and ML, tight
optimiser tolerances) of the data sets in ``tests/data/lme4_multiterm_*.csv``, written by
``tests/data/lme4_multiterm.R`` from the data of ``tests/data/lme4_multiterm_data.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mlimpute
from mlimpute.analysis.fitters.base import MixedFit
from mlimpute.analysis.fitters.multiterm import (
    MultiFit,
    _MultiProfiled,
    fit_multiterm,
    make_term,
    multiterm_loglike,
)
from mlimpute.errors import UnsupportedError

DATA = Path(__file__).parent.parent / "data"
REF = json.loads((DATA / "lme4_multiterm.json").read_text())
NESTED = pd.read_csv(DATA / "lme4_multiterm_nested.csv")
CROSSED = pd.read_csv(DATA / "lme4_multiterm_crossed.csv")

#: The formula fitted here for each lme4 fixture (the same model; nested written with /).
FORMULAS = {
    "nested_intercepts": "y ~ x + w + (1 | school/classno)",
    "nested_slope": "y ~ x + w + (1 + x | class) + (1 | school)",
    "crossed": "y ~ x + (1 | school) + (1 | neighbourhood)",
}
#: lme4's name of each grouping factor, in the order of our terms.
FACTORS = {
    "nested_intercepts": [("school", "school"), ("school:classno", "school:classno")],
    "nested_slope": [("class", "class"), ("school", "school")],
    "crossed": [("school", "school"), ("neighbourhood", "neighbourhood")],
}


def _data(key: str) -> pd.DataFrame:
    return NESTED if REF[key]["data"] == "nested" else CROSSED


def _arrays(key: str):
    """y, X and the terms of a fixture, built directly (not through a formula)."""
    d = _data(key)
    n = len(d)
    one = np.ones(n)
    if key.startswith("nested_intercepts"):
        X = np.column_stack([one, d.x, d.w])
        terms = [
            make_term(one, d.school, name="school"),
            make_term(one, [d.school, d.classno], name="school:classno"),
        ]
    elif key.startswith("nested_slope"):
        X = np.column_stack([one, d.x, d.w])
        terms = [
            make_term(np.column_stack([one, d.x]), d["class"], name="class"),
            make_term(one, d.school, name="school"),
        ]
    else:
        X = np.column_stack([one, d.x])
        terms = [
            make_term(one, d.school, name="school"),
            make_term(one, d.neighbourhood, name="neighbourhood"),
        ]
    return d.y.to_numpy(), X, terms


CASES = [k for k in REF if k != "generated_by"]


@pytest.mark.parametrize("key", CASES)
def test_agrees_with_lme4(key):
    """imp.fit on identical imputations gives lme4's complete-data fit: fixed effects to
    1e-5, variance components, residual variance and vcov to 1e-4 (relative), the
    REML/ML criterion to 1e-6."""
    ref = REF[key]
    base = key.rsplit("_", 1)[0]
    imp = mlimpute.from_completed([_data(key)] * 2)
    res = imp.fit(FORMULAS[base], reml=ref["reml"])
    fit = res.fits[0]
    assert isinstance(fit, MultiFit) and fit.converged
    np.testing.assert_allclose(fit.fe_params, list(ref["fixef"].values()), rtol=0, atol=1e-5)
    np.testing.assert_allclose(fit.cov_fe, ref["vcov"], rtol=1e-4)
    np.testing.assert_allclose(fit.scale, ref["sigma2"], rtol=1e-4)
    for k, (_, lme4_name) in enumerate(FACTORS[base]):
        np.testing.assert_allclose(
            fit.term_cov(k), ref["varcorr"][lme4_name]["cov"], rtol=1e-4, atol=1e-6
        )  # atol: for a covariance near 0, 1e-6 of the variances' scale
    assert fit.term_groups == tuple(ref["ngrps"][n] for _, n in FACTORS[base])
    np.testing.assert_allclose(-2.0 * fit.llf, ref["criterion"], rtol=0, atol=1e-6)
    if not ref["reml"]:
        np.testing.assert_allclose(fit.llf, ref["loglik"], rtol=0, atol=1e-6)
    # the pooled table of identical imputations is the complete-data fit
    np.testing.assert_allclose(res.summary()["estimate"], fit.fe_params, rtol=0, atol=1e-12)


@pytest.mark.parametrize("key", ["nested_intercepts_reml", "nested_slope_ml"])
def test_nested_elimination_agrees_with_sparse_route(key):
    """The level-by-level elimination of nested terms and the general (crossed) route
    give the same deviance at any theta and the same fit."""
    y, X, terms = _arrays(key)
    reml = REF[key]["reml"]
    nested = _MultiProfiled(y, X, terms, reml)
    general = _MultiProfiled(y, X, terms, reml, structure="crossed")
    assert nested.structure == "nested" and general.structure == "crossed"
    thetas = np.random.default_rng(5).uniform(0.1, 1.5, (3, nested.K))
    np.testing.assert_allclose(nested.evaluate(thetas), general.evaluate(thetas), rtol=1e-12)
    f1 = fit_multiterm(y, X, terms, reml=reml)
    f2 = fit_multiterm(y, X, terms, reml=reml, structure="crossed")
    np.testing.assert_allclose(f1.fe_params, f2.fe_params, atol=1e-7)
    np.testing.assert_allclose(f1.cov_re, f2.cov_re, rtol=1e-5, atol=1e-9)


def test_loglike_at_lme4_estimates():
    """multiterm_loglike at lme4's ML estimates is lme4's log-likelihood, and at our own
    estimates our llf."""
    key = "crossed_ml"
    ref = REF[key]
    y, X, terms = _arrays(key)
    cov = np.diag(
        [ref["varcorr"]["school"]["cov"][0][0], ref["varcorr"]["neighbourhood"]["cov"][0][0]]
    )
    ll = multiterm_loglike(y, X, terms, list(ref["fixef"].values()), cov, ref["sigma2"])
    assert ll == pytest.approx(ref["loglik"], abs=1e-7)
    f = fit_multiterm(y, X, terms, reml=False)
    assert multiterm_loglike(y, X, terms, f.fe_params, f.cov_re, f.scale) == pytest.approx(
        f.llf, abs=1e-8
    )


def test_warm_start_reaches_the_same_optimum():
    y, X, terms = _arrays("nested_slope_reml")
    cold = fit_multiterm(y, X, terms)
    warm = fit_multiterm(y, X, terms, start=cold.theta * 1.1)
    # the covariance (5.9e-4) is flat in the deviance: an absolute tolerance on the scale
    # of the variances (0.06-0.9)
    np.testing.assert_allclose(warm.cov_re, cold.cov_re, rtol=1e-6, atol=1e-7)
    assert warm.llf == pytest.approx(cold.llf, abs=1e-9)


def _perturbed(data: pd.DataFrame, m: int, sd: float, seed: int) -> mlimpute.CompletedImputations:
    rng = np.random.default_rng(seed)
    return mlimpute.from_completed(
        [data.assign(y=data.y + rng.normal(0.0, sd, len(data))) for _ in range(m)]
    )


def test_pooled_variance_components_and_icc_per_level():
    imp = _perturbed(NESTED, 4, 0.2, 11)
    res = imp.fit("y ~ x + w + (1 | school) + (1 | school:classno)")
    vc = res.variance_components()
    assert list(vc.index) == [
        "var(Intercept|school)",
        "var(Intercept|school:classno)",
        "var(Residual)",
        "ICC|school",
        "ICC|school:classno",
    ]
    # each row is the mean over imputations of the per-imputation quantity
    per = np.array([[f.cov_re[0, 0], f.cov_re[1, 1], f.scale] for f in res.fits])  # (m, 3)
    total = per.sum(axis=1)
    np.testing.assert_allclose(vc["estimate"].iloc[:3], per.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(vc.loc["ICC|school", "estimate"], np.mean(per[:, 0] / total))
    np.testing.assert_allclose(vc.loc["ICC|school:classno", "estimate"], np.mean(per[:, 1] / total))
    assert (vc["between_sd"] > 0).all()
    assert ((vc["ci_low"] < vc["estimate"]) & (vc["estimate"] < vc["ci_high"])).all()
    # complete-data df of each level's rows: J - 1 bounds the Barnard-Rubin df
    assert vc.loc["var(Intercept|school)", "df"] <= 29
    assert 29 < vc.loc["var(Intercept|school:classno)", "df"] <= 119
    assert res.group == ("school", "school:classno") and res.n_groups == (30, 120)
    assert "school (30), school:classno (120)" in str(res)


def test_crossed_pooled_icc_per_factor():
    imp = _perturbed(CROSSED, 3, 0.2, 12)
    res = imp.fit("y ~ x + (1 | school) + (1 | neighbourhood)")
    vc = res.variance_components()
    assert list(vc.index)[-2:] == ["ICC|school", "ICC|neighbourhood"]
    assert vc.loc["ICC|school", "estimate"] + vc.loc["ICC|neighbourhood", "estimate"] < 1
    assert vc["se"].notna().all()


def test_slope_level_correlations_pooled():
    imp = _perturbed(NESTED, 3, 0.2, 13)
    res = imp.fit("y ~ x + w + (1 + x | class) + (1 | school)")
    vc = res.variance_components(correlations=True)
    assert "cor(Intercept,x|class)" in vc.index and "ICC|class" in vc.index
    rho = vc.loc["cor(Intercept,x|class)"]
    assert -1 < rho["ci_low"] < rho["estimate"] < rho["ci_high"] < 1


def test_d1_d2_d3_with_several_terms():
    imp = _perturbed(NESTED, 4, 0.2, 14)
    res = imp.fit("y ~ x + w + (1 | school/classno)")
    t = res.summary().loc["w", "t"]
    d1 = res.test("w = 0")
    assert d1.statistic == pytest.approx(t**2, rel=1e-10)  # one constraint: F = t^2
    d3 = res.test("w = 0", method="D3")
    d2 = res.test("w = 0", method="D2", use="likelihood")
    for r in (d3, d2):
        assert np.isfinite(r.statistic) and r.statistic > 0 and r.p < 1e-3
    # identical imputations: D3's statistic is the likelihood-ratio statistic itself
    same = mlimpute.from_completed([NESTED] * 2).fit("y ~ x + w + (1 | school/classno)")
    y, X, terms = _arrays("nested_intercepts_ml")
    lr = 2.0 * (
        fit_multiterm(y, X, terms, reml=False).llf
        - fit_multiterm(y, X[:, :2], terms, reml=False).llf
    )
    assert same.test("w = 0", method="D3").statistic == pytest.approx(lr, rel=1e-6)


def test_one_factor_of_two_columns_is_a_two_level_model():
    """``(1 | school:classno)`` alone is the two-level model of the unique class ids."""
    imp = mlimpute.from_completed([NESTED] * 2)
    a = imp.fit("y ~ x + (1 | school:classno)").fits[0]
    b = imp.fit("y ~ x + (1 | class)").fits[0]
    assert type(a) is MixedFit and type(b) is MixedFit
    np.testing.assert_allclose(a.fe_params, b.fe_params, rtol=1e-10)
    np.testing.assert_allclose(a.cov_re, b.cov_re, rtol=1e-8)


def test_refusals_name_the_feature():
    imp = mlimpute.from_completed([NESTED.assign(ok=(NESTED.y > 1).astype(int))] * 2)
    with pytest.raises(UnsupportedError, match="one grouping factor.*school"):
        imp.fit("ok ~ x + (1 | school/classno)", family="binomial")
    with pytest.raises(UnsupportedError, match="engine='statsmodels'"):
        imp.fit("y ~ x + (1 | school/classno)", engine="statsmodels")
    n = 6400
    rng = np.random.default_rng(0)
    a, b = np.arange(n) % 3200, rng.permutation(np.arange(n) % 3100)
    terms = [make_term(np.ones(n), a, name="a"), make_term(np.ones(n), b, name="b")]
    with pytest.raises(UnsupportedError, match="at most 3000"):
        fit_multiterm(rng.normal(size=n), np.ones((n, 1)), terms)


def test_boundary_variance_is_found_and_flagged():
    """A level without variance whose estimate is at the boundary (this seed; lme4 gives
    theta = (0.9655674, 0) for the school and class terms on these data): its variance
    ends at (numerically) zero, not at the start, the fit is singular by lme4's rule,
    and no coordinate step lowers the deviance there."""
    rng = np.random.default_rng(8)
    school = np.repeat(np.arange(40), 30)
    cls = np.repeat(np.arange(120), 10)  # 3 classes per school, no class variance
    y = rng.normal(0.0, 0.8, 40)[school] + rng.normal(size=school.size)
    X = np.ones((y.size, 1))
    terms = [
        make_term(np.ones(y.size), school, name="school"),
        make_term(np.ones(y.size), cls, name="class"),
    ]
    f = fit_multiterm(y, X, terms)
    assert f.term_cov(1)[0, 0] < 1e-8 * f.scale
    assert f.theta[0] == pytest.approx(0.9655674, abs=1e-6)
    assert f.singular and f.converged
    prof = _MultiProfiled(y, X, terms, True)
    probes = f.theta + np.array([[1e-3, 0], [-1e-3, 0], [0, 1e-3]])
    assert np.all(prof.evaluate(probes) >= prof.deviance(f.theta) - 1e-9)


def test_r_squared_and_parallel_fits_with_several_terms():
    """R² with several terms counts every level's variance (random intercepts: the sum of
    their variances); fits in worker processes equal the serial ones."""
    imp = _perturbed(NESTED, 3, 0.2, 15)
    formula = "y ~ x + w + (1 | school/classno)"
    res = imp.fit(formula)
    r2 = res.r_squared()
    per = []
    X = np.column_stack([np.ones(len(NESTED)), NESTED.x, NESTED.w])
    for f in res.fits:
        var_f = np.var(X @ f.fe_params, ddof=1)
        var_r = f.cov_re[0, 0] + f.cov_re[1, 1]
        per.append((var_f + var_r) / (var_f + var_r + f.scale))
    np.testing.assert_allclose(r2.loc["conditional", "estimate"], np.mean(per), rtol=1e-10)
    par = imp.fit(formula, n_jobs=2)
    np.testing.assert_array_equal(par.per_imputation, res.per_imputation)


def test_terms_are_checked():
    from mlimpute.analysis.fitters.multiterm import Term
    from mlimpute.errors import DataError

    y, X, terms = _arrays("crossed_reml")
    bad = Term(terms[1].Z, terms[1].codes, terms[1].n_groups + 1, terms[1].mask, "hood")
    with pytest.raises(DataError, match="hood.*group codes"):
        fit_multiterm(y, X, [terms[0], bad])
    with pytest.raises(DataError, match="two or more"):
        fit_multiterm(y, X, terms[:1])


def test_analysis_of_a_three_level_imputation():
    """On an imputation with several grouping factors (its cluster is the factor
    ``school:classno``): OLS works, and ``cmean(x)`` is the mean over that factor's
    groups (the same fit as a hand-made class-mean column)."""
    import warnings

    rng = np.random.default_rng(5)
    school = np.repeat(np.arange(10), 24)
    df = pd.DataFrame(
        {
            "school": school,
            "classno": np.tile(np.repeat(np.arange(4), 6), 10),
            "x": rng.normal(size=240),
        }
    )
    df["y"] = df.x + rng.normal(size=10)[school] + rng.normal(size=240)
    df.loc[rng.random(240) < 0.2, "y"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence notes of a 2-iteration run
        imp = df.mi.impute({"y": "~ x + (1 | school/classno)"}, m=2, iterations=2, rng=1)
    assert imp.fit("y ~ x").summary().shape[0] == 2
    res = imp.fit("y ~ x + cmean(x) + (1 | school/classno)")
    frames = [
        imp.complete(i).assign(cm=lambda f: f.groupby(["school", "classno"]).x.transform("mean"))
        for i in (1, 2)
    ]
    ref = mlimpute.from_completed(frames).fit("y ~ x + cm + (1 | school/classno)")
    np.testing.assert_allclose(res.per_imputation.to_numpy(), ref.per_imputation.to_numpy())
