"""Formulas whose columns or terms would be misread are refused before any chain, with an
error naming the column or the term."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import mlimpute
from mlimpute.datasets import classroom
from mlimpute.errors import DataTypeError, FormulaError, UnsupportedError
from mlimpute.spec.build import build_spec


@pytest.fixture(scope="module")
def df():
    return classroom(2, rng=1, n_classes=8, class_size=8).incomplete


def impute(df, grade: str, **kwargs):
    formulas = {"grade": grade, "relation": "~ skill + (1 | class)"}
    return mlimpute.impute(df, formulas, m=2, iterations=2, rng=1, **kwargs)


def refused(df, grade: str, exc, match: str, **kwargs):
    """The specification (built before any chain runs) refuses the formula for grade."""
    formulas = {"grade": grade, "relation": "~ skill + (1 | class)"}
    with pytest.raises(exc, match=match) as info:
        build_spec(df, formulas, m=2, iterations=2, **kwargs)
    return info.value


# ---- a column named Intercept ------------------------------------------------------------


@pytest.mark.parametrize(
    "grade",
    ["~ Intercept + (1 | class)", "~ skill + (1 + Intercept | class)", "~ skill + I(Intercept**2)"],
)
def test_a_column_named_intercept_is_refused(df, grade):
    d = df.assign(Intercept=df["skill"] * 3)
    refused(d, grade, FormulaError, r"'Intercept'.*Rename the column")


def test_a_column_named_intercept_in_default_models(df):
    d = df.assign(Intercept=df["skill"] * 3)
    with pytest.raises(FormulaError, match=r"'Intercept'.*exclude=\['Intercept'\]"):
        d.mi.impute(cluster="class", m=1, iterations=1, rng=1)
    imp = d.mi.impute(cluster="class", exclude=["Intercept"], m=1, iterations=1, rng=1)
    assert "Intercept" not in imp.spec.formulas["grade"]


def test_a_column_named_intercept_not_in_a_formula_is_fine(df):
    d = df.assign(Intercept=df["skill"] * 3)
    imp = impute(d, "~ skill + (1 | class)")
    assert list(imp.dataset["grade:param"].values)[:2] == ["Intercept", "skill"]


# ---- a column named like a function a formula calls --------------------------------------


@pytest.mark.parametrize(
    "column, grade",
    [
        ("C", "~ C + C(gender) + (1 | class)"),
        ("I", "~ I + I(skill**2) + (1 | class)"),
        ("log", "~ log + log(skill + 5) + (1 | class)"),
        ("Sum", "~ Sum + C(gender, Sum) + (1 | class)"),
        ("abs", "~ abs + abs(skill) + (1 | class)"),
    ],
)
def test_a_column_named_like_a_called_function_is_refused(df, column, grade):
    d = df.assign(**{column: np.arange(len(df)) % 7 * 1.0})
    refused(d, grade, FormulaError, rf"column '{column}'.*Rename the column")


def test_a_column_named_like_a_function_not_called_is_a_column(df):
    d = df.assign(log=np.arange(len(df)) % 7 * 1.0)
    imp = impute(d, "~ skill + log + (1 | class)")
    assert "log" in list(imp.dataset["grade:param"].values)


# ---- C() levels and references -----------------------------------------------------------


@pytest.mark.parametrize(
    "term, fragment",
    [
        ("C(gender, Treatment('b'))", r"reference level 'b' is not a level of 'gender'"),
        ("C(gender, Treatment('1'))", r"reference level '1' is not a level of 'gender'"),
        ("C(gender, contr.treatment(2))", r"reference level 2 is not a level of 'gender'"),
        ("C(gender, Treatment(0), levels=[1, 2])", r"observed value\(s\) \[0\]"),
        ("C(gender, levels=[0, 0])", r"level 0 is given twice"),
        ("C(gender, levels=['0', '1'])", r"observed value\(s\) \[0, 1\] of 'gender'"),
        ("C(gender, levels=[1])", r"observed value\(s\) \[0\] of 'gender'"),
        ("C(gender, contr.SAS(2), levels=[0, 1])", r"reference level 2"),
        ("C(gender, Treatment(reference='b'))", r"reference level 'b' is not a level"),
        ("C(gender, contr.treatment(base=2))", r"reference level 2 is not a level"),
        ("C(gender, Poly(scores=[1, 2, 3]))", r"3 scores for the 2 levels of 'gender'"),
        ("C(gender, contr.poly([1]))", r"1 scores for the 2 levels of 'gender'"),
    ],
)
def test_C_levels_that_do_not_match_the_column_are_refused(df, term, fragment):
    err = refused(df, f"~ skill + {term} + (1 | class)", FormulaError, fragment)
    assert term in str(err)


@pytest.mark.parametrize(
    "term",
    [
        "C(gender, Treatment(1))",
        "C(gender, contr.treatment(1))",
        "C(gender, levels=[1, 0])",
        "C(gender, contr.SAS(0), levels=[0, 1])",
        "C(gender, Treatment)",
        "C(gender, Treatment(reference=1))",
        "C(gender, contr.treatment(base=1))",
        "C(gender, Helmert(reverse=False))",
        "C(gender, Poly(scores=[0, 2]))",
    ],
)
def test_C_levels_that_match_run_without_warnings(df, term):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        imp = impute(df, f"~ skill + {term} + (1 | class)")
    assert any(p.startswith(term) for p in imp.dataset["grade:param"].values)


def test_C_of_an_imputed_continuous_predictor_is_refused(df):
    match = r"C\(relation\).*'2l.norm'.*a category of its own"
    refused(df, "~ skill + C(relation) + (1 | class)", UnsupportedError, match)


def test_C_of_a_predictor_imputed_by_matching_runs(df):
    imp = impute(df, "~ skill + C(relation) + (1 | class)", method={"relation": "2l.pmm"})
    c = imp.complete(1)
    seen = df["relation"].notna()
    np.testing.assert_array_equal(c.loc[seen, "relation"], df.loc[seen, "relation"])


# ---- bs() of an incomplete predictor -------------------------------------------------------


def test_bs_of_an_incomplete_predictor_is_refused(df):
    match = r"bs\(relation, df=4\).*'relation' has missing"
    refused(df, "~ skill + bs(relation, df=4) + (1 | class)", UnsupportedError, match)


def test_bs_of_a_complete_predictor_runs(df):
    imp = impute(df, "~ bs(skill, df=4) + (1 | class)")
    assert "bs(skill, df=4)[1]" in list(imp.dataset["grade:param"].values)


# ---- negative powers of integer columns ----------------------------------------------------


@pytest.mark.parametrize("term", ["I(n**-1)", "I((n)**-2)", "I(`n`**-(1))", "I(b**-1)"])
def test_a_negative_power_of_an_integer_column_is_named(df, term):
    """numpy's "Integers to negative integer powers are not allowed", from inside
    formulaic, before; now an error naming the power and the column."""
    d = df.assign(n=np.arange(len(df)) % 5 + 1, b=np.arange(len(df)) % 2 == 0)
    column = "b" if "b" in term else "n"
    err = refused(d, f"~ skill + {term} + (1 | class)", DataTypeError, f"'{column}' holds integers")
    assert "**-" in str(err) and "I(1 / " in str(err)


@pytest.mark.parametrize("term", ["I(n**-1.0)", "I(n**-0.5)", "I(1 / n)", "I(log(n)**-1)"])
def test_negative_powers_that_numpy_takes_run(df, term):
    d = df.assign(n=np.arange(len(df)) % 5 + 2)
    imp = impute(d, f"~ skill + {term} + (1 | class)")
    assert imp.complete(1)["grade"].notna().all()
