from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mlimpute  # noqa: F401  (registers the .mi accessor)
from mlimpute.errors import FormulaError
from mlimpute.spec.formula import RandomBlock, parse_formula


def test_dict_style_formula():
    f = parse_formula("~ gender + relation*skill + cmean(relation) + (1 + gender | class)", "grade")
    assert f.response == "grade"
    assert f.group == "class"
    assert f.random == (RandomBlock("1 + gender", True),)
    assert f.cmeans == ("relation",)
    assert "`cmean(relation)`" in f.fixed
    assert f.variables == {"grade", "gender", "relation", "skill", "class"}
    assert f.predictors == {"gender", "relation", "skill"}


def test_full_formula_and_uncorrelated_and_zero_intercept():
    f = parse_formula("grade ~ x + (1 + x || g)")
    assert f.response == "grade" and f.random == (RandomBlock("1 + x", False),)
    f = parse_formula("~ x + (0 + x | g) + (1 | g)", "y")
    assert [b.terms for b in f.random] == ["0 + x", "1"]
    assert f.is_multilevel


def test_single_level_and_intercept_only():
    assert not parse_formula("~ x", "y").is_multilevel
    f = parse_formula("~ 1", "y")
    assert f.fixed == "1" and f.predictors == frozenset()
    assert str(parse_formula("~ -1 + x", "y")).startswith("y ~")


def test_roundtrip_string():
    f = parse_formula("~ x + cmean(z) + (1 + x | g)", "y")
    again = parse_formula(str(f))
    assert again == f.__class__(str(f), "y", f.fixed, "g", f.random, ("z",)) or (
        again.fixed == f.fixed and again.random == f.random and again.cmeans == f.cmeans
    )


@pytest.mark.parametrize(
    ("text", "fragment", "caret"),
    [
        ("~ x + + z", "empty term", 6),
        ("~ x | g", "(terms | group)", 4),
        ("~ (x + y", "unmatched '('", 2),
        ("~ x)", "unmatched ')'", 3),
        ("~ x + (1 | g h)", "grouping factor 'g h'", 11),
        ("~ x +", "empty term", 5),
    ],
)
def test_syntax_errors_name_token_and_show_formula(text, fragment, caret):
    with pytest.raises(FormulaError) as exc:
        parse_formula(text, "y")
    msg = str(exc.value)
    assert fragment in msg and repr(text) in msg
    lines = msg.splitlines()
    assert lines[-2].strip() == text.strip() and lines[-1].index("^") - 4 == caret


@pytest.mark.parametrize(
    "contrast",
    [
        "Treatment",
        "Treatment()",
        "Treatment('b')",
        "Treatment(reference='b')",
        "Treatment(reference=1)",
        "contr.treatment()",
        "contr.treatment(base=2)",
        "contr.SAS(base=0)",
        "Sum()",
        "Helmert(reverse=False)",
        "contr.helmert(False, True)",
        "contr.helmert(scale=True)",
        "Diff(backward=False)",
        "Poly(scores=[1, 2, 4])",
        "contr.poly(scores=[1, 2, 4])",
    ],
)
def test_contrasts_take_their_arguments_by_position_keyword_or_none(contrast):
    """Every argument of a contrast is optional and may be given by keyword, as formulaic
    takes it (Treatment(reference=1) was refused: 'expected the argument of Treatment()')."""
    f = parse_formula(f"y ~ C(g, {contrast}) + C(h, contrasts={contrast})")
    assert f.predictors == {"g", "h"}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("~ C(g, Treatment(1, reference=2))", "'reference' given twice (by position"),
        ("~ C(g, Treatment(1, 2))", "Treatment() takes 1 positional"),
        ("~ C(g, Treatment(ref=1))", "Treatment() has no argument 'ref'"),
        ("~ C(g, Treatment(reference=x))", "expected a string or number literal"),
        ("~ C(g, Sum, contrasts=Sum)", "'contrasts' given twice (by position"),
        ("~ poly(x, 2, degree=3)", "'degree' given twice (by position"),
    ],
)
def test_contrast_and_call_arguments_given_twice_or_unknown_are_refused(text, fragment):
    with pytest.raises(FormulaError) as exc:
        parse_formula(text, "y")
    assert fragment in str(exc.value)


def test_semantic_errors():
    with pytest.raises(FormulaError, match="uses its response 'y'"):
        parse_formula("~ x + y", "y")
    with pytest.raises(FormulaError, match="has the response 'z'"):
        parse_formula("z ~ x", "y")
    with pytest.raises(FormulaError, match="exactly one '~'"):
        parse_formula("y ~ x ~ z")
    with pytest.raises(FormulaError, match="missing '~'"):
        parse_formula("x + z", "y")
    with pytest.raises(FormulaError, match="non-empty"):
        parse_formula("  ", "y")
    with pytest.raises(FormulaError, match="cmean"):
        parse_formula("~ x + (1 + cmean(x) | g)", "y")
    with pytest.raises(FormulaError, match="subtracted"):
        parse_formula("~ x - (1 | g)", "y")


def test_two_grouping_factors_parse():
    # several grouping factors: tests/spec/test_formula_terms.py
    f = parse_formula("~ x + (1 | school) + (1 | class)", "y")
    assert f.groups == ("school", "class") and f.group is None


# --------------------------------------------------------------------------------------
# backquoted names: any column name, Python keywords included


@pytest.fixture
def keyword_frame():
    rng = np.random.default_rng(5)
    n = 60
    df = pd.DataFrame(
        {
            "class": pd.Categorical(rng.choice(list("abc"), n)),
            "lambda": rng.uniform(1.0, 3.0, n),
            "None": rng.normal(size=n),
            "g": np.repeat(np.arange(6), 10),
        }
    )
    df["y"] = df["lambda"] + df["None"] + rng.normal(size=n)
    df.loc[::6, "y"] = np.nan
    return df


def test_backquoted_python_keywords_impute_and_name_parameters(keyword_frame):
    df = keyword_frame
    with pytest.raises(FormulaError, match="'class' is not allowed.*in backquotes"):
        parse_formula("~ C(class) + (1 | g)", "y")
    text = "~ C(`class`) + log(`lambda`) + I(`None` * 2) + (1 | g)"
    f = parse_formula(text, "y")
    assert f.predictors == {"class", "lambda", "None"}
    imp = df.mi.impute({"y": text}, m=2, iterations=2, rng=1)
    assert imp.complete(1)["y"].notna().all()
    fit = imp.fit("y " + text)
    assert set(fit.names) >= {
        "Intercept",
        "C(`class`)[T.b]",
        "C(`class`)[T.c]",
        "log(`lambda`)",
        "I(`None` * 2)",
    }


# --------------------------------------------------------------------------------------
# formulas mlimpute writes itself: every column name reads back as the same column

AWKWARD = [
    "größe",
    "año",
    "é",
    "class",
    "lambda",
    "None",
    "True",
    "np",
    "numpy",
    "contr",
    "np.x",
    "C",
    "I",
    "log",
    "poly",
    "cmean",
    "Sum",
    "a b",
    "x.y",
    "1st",
    "_x",
    "__x",
    "a:b",
    "a/b",
    "a(b)",
    "a+b",
    "a,b",
    "x**2",
    "'a'",
    "a|b",
    "a||b",
    "a~b",
    "(a|b)",
]


@pytest.mark.parametrize("name", AWKWARD)
def test_written_names_read_back_as_the_same_column(name):
    from mlimpute.spec.formula import _quote, formula_text

    y, x, g = _quote(name), _quote(name + "2"), _quote(name + "3")
    text = f"{y} ~ {x} + cmean({x}) + (1 | {g})"
    f = parse_formula(text)
    assert f.response == name
    assert f.predictors == {name + "2"} and f.cmeans == (name + "2",)
    assert f.group == name + "3"
    for written in (str(f), formula_text(f)):
        again = parse_formula(written, name)
        assert again.variables == f.variables and again.cmeans == f.cmeans, written


@pytest.mark.parametrize("name", ["größe", "año", "np", "__x", "class", "x.y", ".x", "x."])
def test_default_models_impute_awkward_names(name):
    """The formulas mlimpute writes when none are given (cluster= only)."""
    rng = np.random.default_rng(2)
    df = pd.DataFrame(
        {
            name: rng.normal(size=40),
            "y": rng.normal(size=40),
            "g": np.repeat(np.arange(8), 5),
        }
    )
    df.loc[::5, "y"] = np.nan
    df.loc[1::7, name] = np.nan
    imp = df.mi.impute(cluster="g", m=1, iterations=2, rng=1)
    assert imp.complete(1)[[name, "y"]].notna().all().all()
    assert set(imp.spec.formulas) == {name, "y"}
    # the same name as the cluster
    imp = df.rename(columns={"g": name + "g"}).mi.impute(
        cluster=name + "g", m=1, iterations=2, rng=1
    )
    assert imp.complete(1)[[name, "y"]].notna().all().all()


def test_backquoted_names_with_bar_and_tilde():
    text = "`y~1` ~ `a|b` + log(`a~b`) + cmean(`a|b`) + (1 + `a|b` || `g|h`)"
    f = parse_formula(text)
    assert f.response == "y~1" and f.group == "g|h"
    assert f.predictors == {"a|b", "a~b"} and f.cmeans == ("a|b",)
    assert f.random == (RandomBlock("1 + `a|b`", False),)
    rng = np.random.default_rng(4)
    df = pd.DataFrame(
        {
            "a|b": rng.normal(size=40),
            "a~b": rng.uniform(1.0, 2.0, size=40),
            "y~1": rng.normal(size=40),
            "g|h": np.repeat(np.arange(8), 5),
        }
    )
    df.loc[::5, "y~1"] = np.nan
    df.loc[1::7, "a|b"] = np.nan
    imp = df.mi.impute({"y~1": text}, cluster="g|h", m=1, iterations=2, rng=1)
    assert imp.complete(1).notna().all().all()
    assert imp.spec.formulas["y~1"] == "~ `a|b` + log(`a~b`) + cmean(`a|b`) + (1 + `a|b` || `g|h`)"
    # the default models of both variables (no formulas given)
    imp = df.mi.impute(cluster="g|h", m=1, iterations=2, rng=1)
    assert imp.complete(1).notna().all().all()
