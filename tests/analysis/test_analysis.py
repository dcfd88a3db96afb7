"""Tests of mlimpute.analysis and mlimpute.analysis.results: fit, apply, from_completed.

* End to end on classroom experiment 1 (multilevel imputation, then the analysis model).
* Complete-data answers: identical imputations reproduce the single fit exactly.
* apply(), from_completed(), names of terms and variance components, errors.

Against mitml: test_against_mitml.py; the single-level and GLMM paths:
test_fits_single_and_glmm.py; the warnings about what the imputation lacked:
test_congeniality.py.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from formulaic import model_matrix

import mlimpute  # noqa: F401  (registers the .mi accessor)
from mlimpute.analysis import CompletedImputations, from_completed
from mlimpute.analysis.fitters.mixedlm import fit_mixedlm
from mlimpute.analysis.results import PooledResult, parse_hypotheses
from mlimpute.datasets import classroom
from mlimpute.errors import (
    DataError,
    DataTypeError,
    FormulaError,
    MlimputeWarning,
    PoolingError,
    SpecificationError,
    UnsupportedError,
)
from mlimpute.spec.grammar import CONTRASTS

COLUMNS = ["estimate", "se", "t", "df", "p", "ci_low", "ci_high", "riv", "lambda", "fmi"]


@pytest.fixture(scope="module")
def exp1():
    """Experiment 1 imputed with its multilevel model, and the complete-data fit.

    The seeds are the package's canonical ones (data rng=1, imputation rng=1). The D0
    criterion is a statement about one data set, not a guarantee: over 12 other data and
    imputation seeds the pooled D0 was within 25 % of the complete-data D0 in 11 (the
    twelfth: -27 %), and over 40 seeds its mean relative error was -5 % (se 3 %).
    """
    d = classroom(1, rng=1)
    imp = d.incomplete.mi.impute(d.imputation, m=20, iterations=20, rng=1)
    res = imp.fit(d.formula)
    complete = from_completed([d.complete, d.complete]).fit(d.formula)
    return d, imp, res, complete


@pytest.fixture(scope="module")
def exp3():
    d = classroom(3, rng=11)
    imp = d.incomplete.mi.impute(d.imputation, m=5, iterations=15, rng=3)
    return d, imp


# --------------------------------------------------------------------------------------
# end to end: experiment 1


def test_experiment1_pooled_cis_cover_the_complete_data_estimates(exp1):
    _, _, res, complete = exp1
    table, truth = res.summary(), complete.summary()
    assert list(table.columns) == COLUMNS
    for term in ("Intercept", "skill"):  # B0 and B1
        est = truth.loc[term, "estimate"]
        assert table.loc[term, "ci_low"] < est < table.loc[term, "ci_high"], term
    # missing data add variance: every fmi positive, se larger than the complete-data se
    assert np.all(table["fmi"] > 0) and np.all(table["fmi"] < 1)
    assert np.all(table["se"] > truth["se"])


def test_experiment1_pooled_d0_is_close_to_the_complete_data_d0(exp1):
    _, _, res, complete = exp1
    vc, vc_complete = res.variance_components(), complete.variance_components()
    d0, d0_complete = (v.loc["var(Intercept|class)", "estimate"] for v in (vc, vc_complete))
    assert abs(d0 / d0_complete - 1) < 0.25
    s, s_complete = (v.loc["var(Residual)", "estimate"] for v in (vc, vc_complete))
    assert abs(s / s_complete - 1) < 0.15
    assert not res.singular and not res.nonconverged


def test_tests_agree_in_direction_on_a_clear_effect(exp1):
    _, imp, res, _ = exp1
    results = {
        "D1": res.test("skill = 0", "D1"),
        "D2": res.test("skill = 0", "D2"),
        "D2-lr": res.test("skill = 0", "D2", use="likelihood"),
        "D3": res.test("skill = 0", "D3"),
    }
    assert all(r.p < 0.01 and r.statistic > 0 for r in results.values()), results
    assert [r.method for r in results.values()] == ["D1", "D2", "D2", "D3"]
    reduced = imp.fit("grade ~ 1 + (1 | class)")
    for method in ("D1", "D2", "D3"):
        assert res.compare(reduced, method).p < 0.01
    # D1 of a model comparison is the Wald test of the extra terms
    assert res.compare(reduced, "D1") == results["D1"]


def test_null_effect_is_not_rejected_by_any_method(exp1):
    d, _, _, _ = exp1
    rng = np.random.default_rng(5)
    # impute the data with an irrelevant covariate; analyse with it
    data = d.incomplete.assign(noise=rng.standard_normal(len(d.incomplete)))
    imp = data.mi.impute({"grade": "~ skill + noise + (1 | class)"}, m=5, iterations=10, rng=3)
    res = imp.fit("grade ~ skill + noise + (1 | class)")
    ps = [res.test("noise = 0", m).p for m in ("D1", "D2", "D3")]
    assert all(p > 0.05 for p in ps), ps


# --------------------------------------------------------------------------------------
# complete data, m = 1, identical imputations


def test_no_missing_values_give_exactly_the_complete_data_fit():
    d = classroom(1, rng=3)
    with pytest.warns(MlimputeWarning):
        imp = d.complete.mi.impute(d.imputation, m=3, iterations=5, rng=1)
    res = imp.fit(d.formula)
    design = (
        d.complete["grade"].to_numpy(),
        np.asarray(model_matrix("skill", d.complete)),
        np.ones((600, 1)),
        d.complete["class"].to_numpy(),
    )
    single = fit_mixedlm(*design)
    table = res.summary()
    np.testing.assert_array_equal(table["estimate"], single.fe_params)
    np.testing.assert_array_equal(table["se"], np.sqrt(np.diag(single.cov_fe)))
    assert np.all(table["fmi"] == 0) and np.all(table["riv"] == 0)
    assert np.all(table["df"] == 600 - single.n_params) and res.dfcom == 600 - 2 - 1 - 1
    vc = res.variance_components()
    assert vc.loc["var(Intercept|class)", "estimate"] == single.cov_re[0, 0]
    assert np.all(vc["between_sd"] == 0)
    # the same through from_completed
    again = from_completed([d.complete] * 4).fit(d.formula)
    pd.testing.assert_frame_equal(again.summary(), table)
    t = again.test("skill = 0", "D3")
    assert t.riv == 0 and np.isinf(t.df2)


def test_single_imputation_is_refused_clearly():
    df = classroom(1, rng=3).complete
    one = from_completed([df])
    assert one.m == 1
    with pytest.raises(PoolingError, match="at least 2 imputations"):
        one.fit("grade ~ skill + (1 | class)")
    with pytest.raises(PoolingError, match="m = 1"):
        one.apply(lambda x: smf.ols("grade ~ skill", x).fit())


def _two_datasets(seed=0):
    d = classroom(2, rng=seed).complete
    rng = np.random.default_rng(seed)
    other = d.assign(grade=d["grade"] + rng.normal(0, 0.5, len(d)))
    return d, other


# --------------------------------------------------------------------------------------
# apply()


def test_apply_with_statsmodels_results_equals_fit():
    a, b = _two_datasets(3)
    imp = from_completed([a, b])
    via_fit = imp.fit("grade ~ skill + gender")
    via_apply = imp.apply(lambda df: smf.ols("grade ~ skill + gender", df).fit())
    pd.testing.assert_frame_equal(via_apply.summary(), via_fit.summary(), rtol=1e-9)
    assert via_apply.dfcom == via_fit.dfcom == len(a) - 3
    t_apply, t_fit = (r.test("skill = 0, gender = 0") for r in (via_apply, via_fit))
    for field in ("statistic", "df1", "df2", "p", "riv"):
        assert getattr(t_apply, field) == pytest.approx(getattr(t_fit, field), rel=1e-9)
    with pytest.raises(UnsupportedError, match="only results of fit"):
        via_apply.test("skill = 0", "D3")


def test_apply_with_tuples_and_arrays():
    a, b = _two_datasets(4)
    imp = from_completed([a, b])

    def means(df):
        est = df[["grade", "relation"]].mean()
        cov = df[["grade", "relation"]].cov() / len(df)
        return est, cov.loc[["relation", "grade"], ["relation", "grade"]], len(df) - 1

    res = imp.apply(means)
    assert list(res.names) == ["grade", "relation"]
    assert res.dfcom == len(a) - 1
    expected = (a["grade"].mean() + b["grade"].mean()) / 2
    assert res.summary().loc["grade", "estimate"] == pytest.approx(expected, rel=1e-12)
    se_a = a["grade"].std() / np.sqrt(len(a))
    assert res.pooled.ubar[0, 0] == pytest.approx((se_a**2 + (b["grade"].var() / len(b))) / 2)

    arrays = imp.apply(
        lambda df: (df["grade"].to_numpy()[:2], np.array([0.1, 0.2])),
        names=["first", "second"],
        dfcom=50,
    )
    assert list(arrays.names) == ["first", "second"] and arrays.dfcom == 50
    unnamed = imp.apply(lambda df: (np.array([df["grade"].mean()]), np.array([[0.01]])))
    assert unnamed.names == ("Parameter.1",) and np.isinf(unnamed.dfcom)


def test_apply_with_a_mixedlm_result_pools_the_fixed_effects(exp3):
    d, imp = exp3

    def mixed(df):
        return smf.mixedlm("grade ~ skill", df, groups=df["class"]).fit(reml=True)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = imp.apply(mixed)
    assert list(res.names) == ["Intercept", "skill"]
    ours = imp.fit("grade ~ skill + (1 | class)")
    np.testing.assert_allclose(res.summary()["estimate"], ours.summary()["estimate"], rtol=1e-3)


def test_apply_rejects_what_it_cannot_pool():
    a, b = _two_datasets(5)
    imp = from_completed([a, b])
    with pytest.raises(PoolingError, match="expected a fitted statsmodels results object"):
        imp.apply(lambda df: df["grade"].mean())
    with pytest.raises(PoolingError, match="covariance of shape"):
        imp.apply(lambda df: (np.ones(2), np.eye(3)))
    calls = iter([pd.Series([1.0], index=["a"]), pd.Series([1.0], index=["b"])])
    with pytest.raises(PoolingError, match=r"other terms .*\['a', 'b'\]"):
        imp.apply(lambda df: (next(calls), np.eye(1)))


# --------------------------------------------------------------------------------------
# from_completed


def test_from_completed_list_and_long_forms_agree():
    a, b = _two_datasets(6)
    c = a.assign(grade=a["grade"] - 0.3)
    listed = from_completed([a, b, c])
    long = pd.concat([x.assign(**{".imp": i}) for i, x in enumerate([a, b, c], 1)])
    # mice's long form with include = TRUE also holds the incomplete data as imputation 0
    # (with the missing values: a complete data set labelled 0 would be kept)
    incomplete = a.assign(grade=a["grade"].where(a["skill"] > 0))
    long = pd.concat([incomplete.assign(**{".imp": 0}), long])
    stacked = from_completed(long, imputation=".imp")
    assert isinstance(stacked, CompletedImputations) and stacked.m == listed.m == 3
    recognised = from_completed(long)  # mice's .imp without saying so
    assert recognised.m == 3 and ".imp" not in recognised.columns
    assert recognised.events == stacked.events
    with pytest.raises(SpecificationError, match="both an 'imputation' and a '.imp' column"):
        from_completed(long.assign(imputation=1.0))  # which one numbers them?
    assert stacked.events and "skipped" in stacked.events[0]
    assert ".imp" not in stacked.columns
    formula = "grade ~ skill + relation + (1 | class)"
    pd.testing.assert_frame_equal(stacked.fit(formula).summary(), listed.fit(formula).summary())
    assert [len(x) for x in stacked] == [len(a)] * 3
    assert listed.complete("long").shape == (3 * len(a), len(a.columns) + 1)


def test_from_completed_validates_its_input():
    a, b = _two_datasets(7)
    with pytest.raises(SpecificationError, match=r"missing \['relation'\]"):
        from_completed([a, b.drop(columns="relation")])
    with pytest.raises(SpecificationError, match="rows"):
        from_completed([a, b.iloc[:-1]])
    with pytest.raises(SpecificationError, match="at least 1"):
        from_completed([])
    with pytest.raises(SpecificationError, match="not a DataFrame"):
        from_completed([a, a.to_numpy()])
    with pytest.raises(SpecificationError, match="imputation column 'imputation'"):
        from_completed(a)
    with pytest.raises(SpecificationError, match="numbered 1..2"):
        from_completed([a, b]).complete(3)


def test_user_data_are_never_modified():
    a, b = _two_datasets(8)
    a0, b0 = a.copy(), b.copy()
    imp = from_completed([a, b])
    res = imp.fit("grade ~ skill + cmean(relation) + (1 | class)")
    imp.apply(lambda df: df.assign(grade=0.0).pipe(lambda x: (x[["grade"]].mean(), [[1.0]])))
    pd.testing.assert_frame_equal(a, a0)
    pd.testing.assert_frame_equal(b, b0)
    a.loc[0, "grade"] = -100.0  # later changes to the caller's frames do not leak in
    assert imp.complete(1).loc[0, "grade"] == a0.loc[0, "grade"]
    assert "cmean(relation)" not in imp.complete(1).columns
    assert "cmean(relation)" in res.names


def test_cmean_in_an_analysis_formula_is_the_cluster_mean():
    a, b = _two_datasets(9)
    res = from_completed([a, b]).fit("grade ~ skill + cmean(relation)", cluster="class")
    manual = a.assign(cm=a.groupby("class")["relation"].transform("mean"))
    sm_fit = smf.ols("grade ~ skill + cm", manual).fit()
    np.testing.assert_allclose(res.per_imputation.loc[1], sm_fit.params, rtol=1e-10)
    with pytest.raises(FormulaError, match="needs a cluster"):
        from_completed([a, b]).fit("grade ~ cmean(relation)")
    # with a random part, its grouping factor is the cluster
    mixed = from_completed([a, b]).fit("grade ~ skill + cmean(relation) + (1 | class)")
    assert "cmean(relation)" in mixed.names


def test_cmean_of_a_column_without_a_mean_is_named():
    """cmean() of a string or categorical column: an error naming the term (it was
    pandas' TypeError from the group means)."""
    a, b = _two_datasets(9)
    labels = np.where(np.arange(len(a)) % 3 == 0, "lo", "hi")
    for kind in (labels, pd.Categorical(labels)):
        imp = from_completed([a.assign(t=kind), b.assign(t=kind)])
        with pytest.raises(DataTypeError, match=r"cmean\(t\) in .*'t' is .*numeric or boolean"):
            imp.fit("grade ~ skill + cmean(t) + (1 | class)")
    flags = from_completed([a.assign(t=labels == "lo"), b.assign(t=labels == "lo")])
    assert "cmean(t)" in flags.fit("grade ~ skill + cmean(t) + (1 | class)").names


@pytest.mark.parametrize("called", [False, True])
@pytest.mark.parametrize("contrast", sorted(CONTRASTS))
def test_every_contrast_works_bare_and_called_in_fit(contrast, called):
    """C(x, Treatment) (bare, as patsy and R users write it) was formulaic's IndexError;
    every contrast the grammar allows fits bare and called without arguments."""
    a, b = _two_datasets(4)
    a, b = (d.assign(k=d["class"] % 3) for d in (a, b))
    imp = from_completed([a, b])
    term = f"C(k, {contrast}{'()' if called else ''})"
    res = imp.fit(f"grade ~ {term} + (1 | class)")
    assert [n for n in res.names if n.startswith(term)] and len(res.names) == 3
    if contrast in ("Treatment", "contr.treatment"):  # the default coding, first level
        plain = imp.fit("grade ~ C(k) + (1 | class)")
        np.testing.assert_allclose(res.summary()["estimate"], plain.summary()["estimate"])


def test_contrast_keywords_in_fit():
    a, b = _two_datasets(4)
    a, b = (d.assign(k=d["class"] % 3) for d in (a, b))
    imp = from_completed([a, b])
    res = imp.fit("grade ~ C(k, Treatment(reference=1)) + (1 | class)")
    assert res.names[1:] == (
        "C(k, Treatment(reference=1))[T.0]",
        "C(k, Treatment(reference=1))[T.2]",
    )
    with pytest.raises(FormulaError, match=r"reference level 5 is not a level of 'k'"):
        imp.fit("grade ~ C(k, contr.treatment(base=5)) + (1 | class)")
    with pytest.raises(FormulaError, match=r"2 scores for the 3 levels of 'k'"):
        imp.fit("grade ~ C(k, Poly(scores=[1, 2])) + (1 | class)")


@pytest.mark.parametrize(
    "formula, error, fragment",
    [
        ("grade ~ log(log) + (1 | class)", FormulaError, "the column 'log'.*the function 'log'"),
        ("grade ~ skill + log + log(skill + 5) + (1 | class)", FormulaError, "column 'log'"),
        ("grade ~ I(n**-1) + (1 | class)", DataTypeError, r"I\(n\*\*-1\)|n\*\*-1.*'n' holds"),
    ],
)
def test_columns_formulaic_would_misread_are_named_in_fit(formula, error, fragment):
    """The checks of the imputation formulas apply to fit() too (it passed formulaic's
    "'Series' object is not callable" and numpy's negative-power error through)."""
    a, b = _two_datasets(6)
    extra = {"log": a["skill"].abs() + 1.0, "n": np.arange(len(a)) % 4 + 1}
    imp = from_completed([a.assign(**extra), b.assign(**extra)])
    with pytest.raises(error, match=fragment):
        imp.fit(formula)
    assert "I(n ** (-1.0))" in imp.fit("grade ~ I(n**-1.0) + (1 | class)").names


# --------------------------------------------------------------------------------------
# names, random parts, honesty


def test_term_and_variance_component_names(exp3):
    _, imp = exp3
    res = imp.fit("grade ~ skill*gender + relation + (1 + gender | class)")
    assert list(res.summary().index) == ["Intercept", "skill", "gender", "relation", "skill:gender"]
    assert list(res.variance_components().index) == [
        "var(Intercept|class)",
        "cov(Intercept,gender|class)",
        "var(gender|class)",
        "var(Residual)",
        "ICC|class",
    ]
    assert res.per_imputation.shape == (5, 5)
    assert list(res.per_imputation.index) == [1, 2, 3, 4, 5]
    text = str(res)
    assert "skill:gender" in text and "var(gender|class)" in text and "REML" in text
    assert repr(res) == text
    assert "<table" in res._repr_html_()


def test_uncorrelated_random_effects_are_honoured(exp3):
    _, imp = exp3
    res = imp.fit("grade ~ skill*gender + relation + (1 + gender || class)")
    assert list(res.variance_components().index) == [
        "var(Intercept|class)",
        "var(gender|class)",
        "var(Residual)",
        "ICC|class",
    ]
    for fit in res.fits:
        assert fit.cov_re[0, 1] == fit.cov_re[1, 0] == 0.0
        assert fit.n_cov_params == 2
    # two blocks are the same model
    blocks = imp.fit("grade ~ skill*gender + relation + (1 | class) + (0 + gender | class)")
    pd.testing.assert_frame_equal(blocks.summary(), res.summary(), rtol=1e-6)
    correlated = imp.fit("grade ~ skill*gender + relation + (1 + gender | class)")
    lr = correlated.compare(res, "D3")  # the covariance: one parameter
    assert lr.df1 == 1 and 0 <= lr.p <= 1
    with pytest.raises(PoolingError, match="same fixed effects"):
        correlated.compare(res, "D1")


def test_singular_fits_are_counted_and_shown():
    rng = np.random.default_rng(1)
    frames = []
    for _ in range(3):  # no between-cluster variance at all: every fit on the boundary
        g = np.repeat(np.arange(20), 10)
        x = rng.standard_normal(200)
        frames.append(pd.DataFrame({"g": g, "x": x, "y": x + rng.standard_normal(200)}))
    with pytest.warns(MlimputeWarning, match=r"boundary \(singular\) fit in 3 of 3"):
        res = from_completed(frames).fit("y ~ x + (1 | g)")
    assert res.singular == (1, 2, 3)
    assert "boundary (singular) fit in 3 of 3 imputations (1, 2, 3)" in str(res)
    assert res.summary().shape[0] == 2  # kept in the pooling, not dropped


def test_errors_name_what_is_at_fault():
    a, b = _two_datasets(10)
    imp = from_completed([a, b])
    with pytest.raises(SpecificationError, match="'teacher'"):
        imp.fit("grade ~ skill + teacher")
    with pytest.raises(DataError, match="'relation' \\(3 rows\\)"):
        from_completed([a, b.assign(relation=b["relation"].where(b.index > 2))]).fit(
            "grade ~ relation"
        )
    with pytest.raises(FormulaError, match="needs a response"):
        imp.fit("~ skill")
    with pytest.raises(SpecificationError, match="collinear.*'twice'"):
        from_completed([x.assign(twice=2 * x["skill"]) for x in (a, b)]).fit(
            "grade ~ skill + twice"
        )
    res = imp.fit("grade ~ skill + gender")
    with pytest.raises(FormulaError, match="'sex' in the hypothesis"):
        res.test("sex = 0")
    with pytest.raises(UnsupportedError, match="term = 0"):
        res.test("skill - gender = 0", "D3")
    with pytest.raises(PoolingError, match="same imputations"):
        res.compare(from_completed([a, b]).fit("grade ~ skill"))
    with pytest.raises(PoolingError, match="not nested"):
        imp.fit("grade ~ skill").compare(res)
    with pytest.raises(PoolingError, match="method must be"):
        res.test("skill = 0", "D4")


def test_parse_hypotheses():
    names = ["Intercept", "skill", "gender", "skill:gender", "cmean(x)"]
    L, rhs, dropped = parse_hypotheses("gender = 0, skill:gender = 0", names)
    np.testing.assert_array_equal(L, [[0, 0, 1, 0, 0], [0, 0, 0, 1, 0]])
    assert rhs.tolist() == [0, 0] and dropped == ("gender", "skill:gender")
    L, rhs, dropped = parse_hypotheses("2*skill - gender = 1 + 0.5, `cmean(x)`", names)
    np.testing.assert_array_equal(L, [[0, 2, -1, 0, 0], [0, 0, 0, 0, 1]])
    assert rhs.tolist() == [1.5, 0.0] and dropped is None
    L, _, dropped = parse_hypotheses("(Intercept) = 0, skill*1e-1 = 0", names)
    np.testing.assert_allclose(L[1], [0, 0.1, 0, 0, 0])
    assert dropped == ("Intercept", "skill")
    for bad, msg in [
        ("skill = gender = 0", "not an equation"),
        ("1 = 0", "involves no term"),
        ("skill = 0, 2*skill = 0", "linearly dependent"),
        ("", "non-empty"),
    ]:
        with pytest.raises(FormulaError, match=msg):
            parse_hypotheses(bad, names)


def test_result_type_and_attributes(exp1):
    _, imp, res, _ = exp1
    assert isinstance(res, PooledResult)
    assert res.m == imp.m == 20 and res.nobs == 600 and res.n_groups == 30
    assert res.formula == "grade ~ skill + (1 | class)" and res.response == "grade"
    assert res.summary(alpha=0.1)["ci_low"].gt(res.summary()["ci_low"]).all()
    np.testing.assert_allclose(res.per_imputation.mean(), res.summary()["estimate"])


def test_collinearity_in_a_later_data_set_is_named_without_warnings():
    # a predictor constant only in data set 2: the same clear error as in data set 1
    # (named data set and term), raised before that data set is fitted, no warning flood
    a, b = _two_datasets(10)
    c = a.assign(grade=a["grade"] + 0.1)
    for frames, i in (([a, b.assign(relation=0.0), c], 2), ([a, b, c.assign(relation=0.0)], 3)):
        for n_jobs in (None, 2):
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                with pytest.raises(
                    SpecificationError,
                    match=f"collinear in completed data set {i}: \\['relation'\\]",
                ):
                    from_completed(frames).fit("grade ~ relation + (1 | class)", n_jobs=n_jobs)
    with pytest.raises(SpecificationError, match="collinear in completed data set 2"):
        from_completed([a, b.assign(relation=0.0)]).fit("grade ~ relation")


def test_grouping_factors_with_too_few_rows_per_level_are_refused():
    # lme4's checkNlevels / checkZdims: an LMM's factor needs fewer levels than rows and
    # fewer random effects than rows; a GLMM may have as many, not more
    a, b = _two_datasets(10)
    n = len(a)
    frames = [
        x.assign(id=np.arange(n), pair=np.arange(n) // 2, one=0, good=(x["grade"] > 10) * 1.0)
        for x in (a, b)
    ]
    imp = from_completed(frames)
    with pytest.raises(DataError, match=f"factor 'id' .* has {n} levels .*one per row"):
        imp.fit("grade ~ skill + (1 | id)")
    with pytest.raises(DataError, match=f"factor 'id' .* has {n} levels"):
        imp.fit("grade ~ skill + (1 | class) + (1 | id)")
    with pytest.raises(DataError, match=f"factor 'pair' .* 2 random effects per level, {n} in"):
        imp.fit("grade ~ skill + (1 + skill | pair)")
    with pytest.raises(DataError, match="factor 'one' .* has 1 level"):
        imp.fit("grade ~ skill + (1 | one)")
    with pytest.raises(DataError, match=f"factor 'id' .* {2 * n} in all, more than"):
        imp.fit("good ~ skill + (1 + skill | id)", family="binomial")
    # allowed, as in lme4: uncorrelated effects are terms of one effect each; a GLMM may
    # have a level per row (an observation-level random effect)
    assert imp.fit("grade ~ skill + (1 + skill || pair)").n_groups == n // 2
    assert imp.fit("good ~ skill + (1 | id)", family="binomial").n_groups == n
    # a continuous (imputed) column as grouping factor: refused in fit(), named
    with pytest.raises(DataError, match="factor 'relation' .* one per row"):
        imp.fit("grade ~ skill + (1 | relation)")


@pytest.mark.parametrize("bad", ["x", None.__class__, True, 0, -1.0, float("nan")])
def test_dfcom_that_is_not_a_positive_number_is_named(bad):
    from mlimpute.errors import PoolingError

    df = classroom(1, rng=1).complete
    ci = from_completed([df, df.assign(skill=df["skill"] + 0.1)])
    calls = [0]

    def mean(d):
        calls[0] += 1
        return np.array([d["grade"].mean()]), np.array([[1.0]])

    with pytest.raises(PoolingError, match="dfcom"):
        ci.apply(mean, dfcom=bad)
    assert calls[0] == 0  # refused before the analyses run
    with pytest.raises(PoolingError, match="dfcom"):
        ci.fit("grade ~ skill", dfcom=bad)


def test_fit_docstring_lists_the_negative_binomial_glmm():
    from mlimpute.analysis.fitting import fit
    from mlimpute.result.imputed import MultiplyImputed

    for doc in (fit.__doc__, MultiplyImputed.fit.__doc__):
        text = " ".join(doc.split())
        assert '"poisson"`` (log link) and ``"negative_binomial"`` (log link' in text
        assert "Poisson (log) and negative binomial (log); for several" in text
