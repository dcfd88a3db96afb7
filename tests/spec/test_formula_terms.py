"""Formulas with several random-effect terms: nested, explicit, crossed, random slopes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import mlimpute  # noqa: F401  (registers the .mi accessor)
from mlimpute.errors import FormulaError, UnsupportedError
from mlimpute.spec.formula import (
    ParsedFormula,
    RandomBlock,
    factor_columns,
    formula_text,
    parse_formula,
)

ONE = RandomBlock("1", True)


def test_nested_factor_expands_to_outer_and_combination():
    f = parse_formula("y ~ x + (1 | school/class)")
    assert f.random_terms == ((ONE, "school"), (ONE, "school:class"))
    assert f.groups == ("school", "school:class")
    assert f.group is None and f.random == ()
    assert f.is_multilevel and f.several_groups
    assert f.variables == {"y", "x", "school", "class"}
    assert f.predictors == {"x"}


def test_three_nested_levels_and_slopes_carried_to_every_factor():
    f = parse_formula("y ~ x + (1 + x || a/b/c)")
    block = RandomBlock("1 + x", False)
    assert f.random_terms == ((block, "a"), (block, "a:b"), (block, "a:b:c"))
    assert f.variables == {"y", "x", "a", "b", "c"}


def test_explicit_and_crossed_terms_keep_formula_order():
    f = parse_formula("y ~ x + (1 + x | class) + (1 | school)")
    assert f.random_terms == ((RandomBlock("1 + x"), "class"), (ONE, "school"))
    assert f.groups == ("class", "school")
    assert f.predictors == {"x"}
    g = parse_formula("y ~ (1 | school) + (1 | neighbourhood) + (0 + x | school)")
    assert g.groups == ("school", "neighbourhood")
    assert [grp for _, grp in g.random_terms] == ["school", "neighbourhood", "school"]
    assert g.predictors == {"x"}


def test_one_grouping_factor_keeps_group_and_random():
    f = parse_formula("~ x + (1 | g) + (0 + x | g)", "y")
    assert f.group == "g" and f.random == (ONE, RandomBlock("0 + x"))
    assert f.random_terms == ((ONE, "g"), (RandomBlock("0 + x"), "g"))
    assert f.groups == ("g",) and not f.several_groups
    f = parse_formula("~ x", "y")
    assert f.random_terms == () and f.groups == () and not f.is_multilevel
    assert f.drop_random().random_terms == ()


def test_single_combined_factor_is_seen_through_random_terms_only():
    f = parse_formula("~ x + (1 | school:class)", "y")
    assert f.group is None and f.random == ()
    assert f.groups == ("school:class",) and f.several_groups
    assert f.variables == {"y", "x", "school", "class"}
    # a column whose name holds ':' is one column, backquoted in the factor
    f = parse_formula("~ x + (1 | `a:b`)", "y")
    assert f.group == "a:b" and f.groups == ("`a:b`",)
    assert factor_columns("`a:b`") == ("a:b",)
    assert factor_columns("`a:b`:c") == ("a:b", "c")
    assert f.variables == {"y", "x", "a:b"}


def test_drop_random_and_hand_built_formulas():
    f = parse_formula("~ x + (1 | school/class)", "y")
    d = f.drop_random()
    assert not d.is_multilevel and d.random_terms == () and d.variables == {"x", "y"}
    hand = ParsedFormula("y ~ x + (1 | g)", "y", "x", "g", (ONE,))
    assert hand.random_terms == ((ONE, "g"),) and hand.is_multilevel


@pytest.mark.parametrize(
    "text",
    [
        "~ x + (1 | school/class)",
        "~ x + (1 + x | class) + (1 | school)",
        "~ x + (1 + x || a/b/c)",
        "~ x + (1 | school) + (1 | neighbourhood)",
        "~ x + (1 | `my school`/`my class`)",
        "~ x + (1 | `a:b`) + (1 | c)",
        "~ x + (1 | s:`c.d`)",
        "~ x + cmean(x) + (1 | g)",
        "~ x",
    ],
)
def test_formula_text_round_trips(text):
    f = parse_formula(text, "y")
    for written in (formula_text(f), str(f)):
        again = parse_formula(written, "y")
        assert replace(again, text=f.text) == f, written


def test_formula_text_of_nested_factor_is_expanded():
    f = parse_formula("~ x + (1 + x | school/class)", "y")
    assert formula_text(f) == "~ x + (1 + x | school) + (1 + x | school:class)"
    assert str(f) == "y ~ x + (1 + x | school) + (1 + x | school:class)"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("~ x + (1 | a/)", "grouping factor 'a/'"),
        ("~ x + (1 | a + b)", "grouping factor 'a + b'"),
        ("~ x + (1 | a:)", "grouping factor 'a:'"),
        ("~ x + (1 | a:log(b))", "grouping factor"),
        ("~ x + (1 | /a)", "expected the grouping factor"),
    ],
)
def test_bad_grouping_factors_are_refused_naming_them(text, fragment):
    with pytest.raises(FormulaError, match=fragment.replace("(", r"\(").replace("+", r"\+")):
        parse_formula(text, "y")


def test_require_one_group_names_the_factors():
    f = parse_formula("~ x + (1 | school) + (1 | class)", "y")
    with pytest.raises(UnsupportedError, match=r"fit\(\).*\['school', 'class'\]"):
        f.require_one_group("fit()")
    parse_formula("~ x + (1 | g)", "y").require_one_group("fit()")  # no error


@pytest.fixture
def three_level():
    rng = np.random.default_rng(3)
    school = np.repeat(np.arange(4), 6)
    cls = np.repeat(np.arange(8), 3)
    df = pd.DataFrame({"school": school, "class": cls, "x": rng.normal(size=24)})
    df["y"] = df["x"] + rng.normal(size=24)
    df.loc[[1, 5, 9], "y"] = np.nan
    return df


def test_old_paths_refuse_several_terms_naming_factors(three_level):
    df = three_level
    text = "~ x + (1 | school/class)"
    # a method without a version for several grouping factors: named, before any chain
    with pytest.raises(UnsupportedError, match=r"'2l.poisson' for 'y'.*'school:class', 'school'"):
        df.mi.impute({"y": text}, method={"y": "2l.poisson"}, m=1, iterations=1)
    # fit() with several terms is supported (tests/analysis/test_multiterm.py), and so is
    # model-based imputation with several terms (tests/compatible/test_several_terms.py)
    imp = df.mi.impute(model="y ~ x + (1 | school) + (1 | class)", m=1, iterations=2, rng=1)
    assert imp.complete(1)["y"].notna().all()
    assert df["y"].isna().sum() == 3  # the user's frame is untouched


def test_stored_spec_keeps_random_terms():
    from mlimpute.io.stored_spec import _formula_fields, _formula_from

    f = parse_formula("~ x + (1 | school/class)", "y")
    stored = {"name": "y", "formula": formula_text(f), "text": f.text}
    stored["parsed"] = _formula_fields(f)
    assert _formula_from(stored, "test") == f
    # a file written before random_terms existed: rebuilt from group and random
    g = parse_formula("~ x + (1 | g)", "y")
    old = {"name": "y", "formula": formula_text(g), "text": g.text}
    old["parsed"] = {k: v for k, v in _formula_fields(g).items() if k != "random_terms"}
    assert _formula_from(old, "test") == g
    old["parsed"]["random"], old["parsed"]["group"] = [], None  # random part dropped
    assert _formula_from(old, "test") == g.drop_random()
