"""cmean(x, factor): cluster means over a grouping factor other than the innermost one."""

from __future__ import annotations

import pytest

from mlimpute.errors import FormulaError, UnsupportedError
from mlimpute.spec.formula import (
    cmean_column,
    formula_text,
    parse_formula,
    split_cmean_column,
)
from mlimpute.spec.grammar import validate_formula


def test_parsed_into_variable_and_factor():
    f = parse_formula("y ~ x + cmean(x) + cmean(x, school) + cmean(z, school:class) + (1 | class)")
    assert f.cmeans == ("x",)
    assert f.factor_means == (("x", "school"), ("z", "school:class"))
    assert f.mean_factors == ("school", "school:class")
    assert "`cmean(x, school)`" in f.fixed and "`cmean(z, school:class)`" in f.fixed
    assert f.predictors == {"x", "z"}  # the factor's columns are not predictors...
    assert {"school", "class"} <= f.variables  # ...but variables the formula needs


@pytest.mark.parametrize(
    "text",
    [
        "~ x + cmean(x, school) + (1 | school) + (1 | class)",
        "~ cmean(`a b`, `my school`) + cmean(x,school)",
        "~ x + cmean( x , school : class ) + (1 | school/class)",
    ],
)
def test_formula_text_round_trips(text):
    f = parse_formula(text, "y")
    again = parse_formula(formula_text(f), "y")
    assert again.fixed == f.fixed and again.factor_means == f.factor_means
    assert again.random_terms == f.random_terms
    assert parse_formula(str(f)).factor_means == f.factor_means


def test_column_names_split_back():
    for var, fac in (("x", None), ("x", "school"), ("a b", "school:class")):
        assert split_cmean_column(cmean_column(var, fac)) == (var, fac)
    assert split_cmean_column("x") is None


@pytest.mark.parametrize(
    "text",
    [
        "~ cmean(x, log(s))",  # a factor is column names only
        "~ cmean(x, s, t)",
        "~ cmean(x, 1)",
        "~ cmean(x, s/t)",
        "~ cmean(x, s.__class__)",
        "~ cmean(x, 's')",
        "~ cmean(x, school=s)",
        "~ x + (1 + cmean(x, s) | s)",  # not in a random part
    ],
)
def test_anything_else_is_refused(text):
    with pytest.raises(FormulaError):
        parse_formula(text, "y")


def test_grammar_accepts_the_second_argument():
    assert validate_formula("y ~ cmean(x, school) + cmean(x, school:class)").calls == (
        "cmean",
        "cmean",
    )


def test_response_cannot_be_its_own_school_mean():
    with pytest.raises(FormulaError, match="uses its response"):
        parse_formula("y ~ cmean(y, school) + (1 | class)")


def test_features_for_innermost_means_only_refuse():
    f = parse_formula("y ~ cmean(x, school) + (1 | class)")
    with pytest.raises(UnsupportedError, match=r"cmean\(x, school\)"):
        f.require_no_factor_means("model-based imputation")
    parse_formula("y ~ cmean(x) + (1 | class)").require_no_factor_means("anything")
