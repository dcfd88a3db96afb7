"""The data columns a formula refers to: functions, contrasts and keywords are not columns."""

from __future__ import annotations

import numpy as np
import pytest

import mlimpute
from mlimpute.datasets import classroom
from mlimpute.spec.formula import parse_formula
from mlimpute.spec.formula_columns import calls_of, required_columns


@pytest.fixture(scope="module")
def df():
    d = classroom(2, rng=1, n_classes=8, class_size=8).incomplete
    d["pos"] = d["skill"] - d["skill"].min() + 1
    d["k"] = np.arange(len(d)) % 7
    return d


@pytest.mark.parametrize(
    "rhs, columns",
    [
        ("skill + log1p(pos)", {"skill", "pos"}),
        ("sqrt(pos) + abs(skill) + np.log(pos) + exp(k)", {"pos", "skill", "k"}),
        ("C(gender, contr.sum)", {"gender"}),
        ("C(gender, contr.treatment) + C(g, contr.poly)", {"gender", "g"}),
        ("C(gender, contrasts=contr.helmert)", {"gender"}),
        ("C(gender, Treatment('b')) + C(g, levels=[1, 2])", {"gender", "g"}),
        ("C(gender, contr.treatment(base=1))", {"gender"}),
        ("scale(k) + center(m) + poly(p, 2) + bs(b, df=4)", {"k", "m", "p", "b"}),
        ("scale(k, center=True, ddof=1) + poly(p, degree=2, raw=True)", {"k", "p"}),
        ("x.y + I(`x.y` ** 2) + `a b`", {"x.y", "a b"}),
        ("C + C(g) + I + I(x**2) + log + log(z)", {"C", "g", "I", "x", "log", "z"}),
        ("Sum + C(g, Sum)", {"Sum", "g"}),
    ],
)
def test_required_columns(rhs, columns):
    assert required_columns(rhs) == columns


def test_predictors_of_a_parsed_formula():
    f = parse_formula("y ~ scale(k) + C(g, contr.sum) + log1p(z) + (1 + poly(t, 2) | s)")
    assert f.predictors == {"k", "g", "z", "t"}
    assert f.variables == {"y", "k", "g", "z", "t", "s"}


def test_calls_of_reads_arguments():
    (c,) = calls_of("~ x + C(gender, Treatment('b'), levels=[0, 1])", ("C",))
    assert c.text == "C(gender, Treatment('b'), levels=[0, 1])"
    assert c.arguments == ("gender", "Treatment('b')")
    assert c.literal("levels") == [0, 1]
    assert c.columns == {"gender"}


@pytest.mark.parametrize(
    "term, param",
    [
        ("log1p(pos)", "log1p(pos)"),
        ("sqrt(pos)", "sqrt(pos)"),
        ("abs(skill)", "abs(skill)"),
        ("np.log(pos)", "np.log(pos)"),
        ("C(gender, contr.sum)", "C(gender, contr.sum)[S.0]"),
        ("C(gender, contr.treatment)", "C(gender, contr.treatment)[T.1]"),
        ("C(gender, contr.poly)", "C(gender, contr.poly)[.L]"),
        ("scale(k)", "scale(k)"),
        ("center(k)", "center(k)"),
        ("poly(k, 2)", "poly(k, 2)[2]"),
        ("scale(relation)", "scale(relation)"),
        ("poly(relation, 2)", "poly(relation, 2)[1]"),
    ],
)
def test_allowed_functions_and_transforms_impute(df, term, param):
    """Every allowed function, contrast and stateful transform of a column (used nowhere
    else, or imputed) works end to end: the run keeps every observed value."""
    formulas = {"grade": f"~ skill + {term} + (1 | class)", "relation": "~ skill + (1 | class)"}
    imp = mlimpute.impute(df, formulas, m=2, iterations=2, rng=1)
    assert param in list(imp.dataset["grade:param"].values)
    for k in (1, 2):
        c = imp.complete(k)
        assert not c[["grade", "relation"]].isna().any().any()
        for col in ("grade", "relation"):
            seen = df[col].notna()
            np.testing.assert_array_equal(c.loc[seen, col], df.loc[seen, col])
