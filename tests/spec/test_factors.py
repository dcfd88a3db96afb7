"""The grouping factor and what follows from it (mlimpute/spec/factors.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlimpute.codec import sorted_codes
from mlimpute.spec.defaults import is_level2
from mlimpute.spec.factors import _resolve_cluster


@pytest.mark.parametrize(
    "g",
    [[1, 1, 2, 3], [3, 1, 2, 4], ["b", "a", "b", "c"], [0.5, 0.5, -0.0, 0.0], [7, 7, 7, 7]],
)
def test_the_cluster_columns_level_is_is_level2s(g):
    df = pd.DataFrame({"x": [1.0, 2.0, np.nan, 4.0], "g": g, "w": [5, 5, 6, 7]})
    cols = _resolve_cluster(df, {}, "g")
    codes, _ = sorted_codes(df["g"])
    assert cols.levels == {c: 2 if is_level2(codes, df[c]) else 1 for c in df.columns}
    assert list(cols.levels) == list(df.columns)


def _schools():
    from mlimpute.datasets import classroom

    df = classroom(2, rng=1).incomplete
    df["school"] = df["class"] // 5
    return df


def test_a_cluster_argument_no_formula_groups_by_is_refused_not_ignored():
    import mlimpute
    from mlimpute.errors import SpecificationError

    df = _schools()
    formulas = {
        "grade": "~ skill + relation + (1|class)",
        "relation": "~ skill + grade + (1|class)",
    }
    with pytest.raises(
        SpecificationError, match=r"cluster='school'.*'class'.*cluster=\['school', 'class'\]"
    ):
        mlimpute.impute(df, formulas, cluster="school", m=1, iterations=1, rng=1)
    # as the innermost factor, as the outer level, or used by a formula, it is kept
    mlimpute.impute(df, formulas, cluster="class", m=1, iterations=1, rng=1)
    imp = mlimpute.impute(df, formulas, cluster=["school", "class"], m=1, iterations=1, rng=1)
    assert imp.spec.hierarchy == ("school", "class")
    both = {**formulas, "relation": "~ skill + grade + (1|school) + (1|class)"}
    imp = mlimpute.impute(df, both, cluster="school", m=1, iterations=1, rng=1)
    assert (imp.spec.cluster, imp.spec.factors) == ("class", ("school",))


def test_a_cluster_argument_that_is_part_of_a_formulas_factor_is_kept():
    import mlimpute

    df = _schools()
    df["class"] = df["class"] % 5  # class ids repeat across schools: the level is school:class
    imp = mlimpute.impute(
        df,
        {"grade": "~ skill + (1 | school/class)", "relation": "~ skill + (1 | school/class)"},
        cluster="class",
        m=1,
        iterations=1,
        rng=1,
    )
    assert imp.spec.cluster == "school:class"


def test_levels_that_may_be_reversed_are_warned_where_ids_repeat():
    """Class ids 1..4 in every school: the ids cannot tell the outer level, but a column
    constant within each school varies within the (wrongly) outer class ids."""
    import warnings

    from mlimpute.errors import MlimputeWarning
    from mlimpute.spec.build import build_spec

    r = np.random.default_rng(1)
    school = np.repeat(np.arange(12), 4 * 5)
    klass = np.tile(np.repeat(np.arange(1, 5), 5), 12)
    df = pd.DataFrame(
        {"school": school, "class": klass, "budget": r.normal(size=12)[school]}
    ).assign(y=lambda d: d.budget + r.normal(size=len(d)))
    df.loc[::7, "y"] = np.nan
    with pytest.warns(MlimputeWarning, match=r"\['budget'\].*cluster=\['school', 'class'\]"):
        build_spec(df, cluster=["class", "school"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", MlimputeWarning)
        spec = build_spec(df, cluster=["school", "class"])
    assert spec.hierarchy == ("school", "school:class")


@pytest.mark.parametrize("n_a", [12, 10])
@pytest.mark.parametrize("text", ["~ x + (1 | a) + (1 | b) + (1 | a:b)", "~ x + (1 | a) + (1 | b)"])
def test_a_crossed_pair_given_as_nested_levels_is_refused_naming_both(n_a, text):
    """a crossed with b (every b id in every a, two rows a cell, rows shuffled) given as
    cluster=["a", "b"] with (1 | b) in the formula: with more a than b clusters the rows
    were sorted by b first and the chains ended in a bare "ValueError: codes must be
    sorted" (sampler/plan.py _top_segments); refused before any chain starts, saying
    what to write. Without (1 | b), b ids numbered within each a are nested levels."""
    from mlimpute.errors import SpecificationError
    from mlimpute.spec.build import build_spec

    r = np.random.default_rng(1)
    a, b = np.repeat(np.arange(n_a), 10 * 2), np.tile(np.repeat(np.arange(10), 2), n_a)
    df = pd.DataFrame({"a": a, "b": b, "x": r.normal(size=a.size)})
    df["y"] = df.x + r.normal(size=n_a)[a] + r.normal(size=10)[b] + r.normal(size=a.size)
    df.loc[r.random(a.size) < 0.2, "y"] = np.nan
    df = df.sample(frac=1, random_state=0).reset_index(drop=True)
    with pytest.raises(
        SpecificationError,
        match=r"cluster=\['a', 'b'\].*'a' and 'b' are crossed, not nested.*leave out "
        r"cluster=.*\(1 \| a\) \+ \(1 \| b\) \+ \(1 \| a:b\).*\(1 \| a/b\)",
    ):
        build_spec(df, {"y": text}, cluster=["a", "b"])
    spec = build_spec(df, {"y": text})  # as crossed factors
    assert spec.hierarchy == ()
    spec = build_spec(df, {"y": "~ x + (1 | a) + (1 | a:b)"}, cluster=["a", "b"])
    assert spec.hierarchy == ("a", "a:b")


@pytest.mark.parametrize("factor", [":class", "school:", "school::class"])
def test_a_level_with_an_empty_column_name_is_named(factor):
    """cluster=["school", ":class"] ended in pandas' KeyError; a level of cluster= is a
    column or columns joined by ':', none of them empty."""
    from mlimpute.errors import SpecificationError
    from mlimpute.spec.build import build_spec

    with pytest.raises(SpecificationError, match=f"grouping factor {factor!r}"):
        build_spec(_schools(), cluster=["school", factor])


def test_a_level_naming_a_missing_column_is_named():
    from mlimpute.errors import SpecificationError
    from mlimpute.spec.build import build_spec

    with pytest.raises(SpecificationError, match="cluster column 'room' is not in the data"):
        build_spec(_schools(), cluster=["school", "school:room"])


def _three_levels(S=12, C=4, P=6, seed=3):
    """S schools of C classes (ids 1..C in every school) of P pupils: x, y level 1, size
    constant within classes, budget within schools, all four incomplete."""
    r = np.random.default_rng(seed)
    school = np.repeat(np.arange(S), C * P)
    klass = np.tile(np.repeat(np.arange(1, C + 1), P), S)
    k = school * C + klass - 1
    n = len(school)
    df = pd.DataFrame(
        {
            "school": school,
            "class": klass,
            "x": r.normal(size=n),
            "size": r.normal(size=S * C)[k],
            "budget": r.normal(size=S)[school],
        }
    )
    df["y"] = (
        df.x + 0.5 * df["size"] + 0.3 * df.budget + r.normal(size=S)[school] + r.normal(size=n)
    )
    df.loc[r.random(n) < 0.3, "y"] = np.nan
    df.loc[r.random(n) < 0.3, "x"] = np.nan
    df.loc[np.isin(k, [1, 6, 17]), "size"] = np.nan
    df.loc[np.isin(school, [2, 7]), "budget"] = np.nan
    return df


def test_nested_factors_of_the_formulas_are_the_levels_cluster_list_gives():
    """(1 | school/class) without cluster=: school is the outer level, as with
    cluster=["school", "class"]: a school-level variable is imputed on school rows, and
    the defaults' own formulas give the same specification."""
    import mlimpute
    from mlimpute.spec.build import build_spec

    df = _three_levels()
    given = build_spec(df, cluster=["school", "class"], seed=1)
    again = build_spec(df, given.formulas, seed=1)
    assert repr(again) == repr(given)
    assert (again.cluster, again.factors, again.hierarchy, again.structure) == (
        given.cluster,
        given.factors,
        given.hierarchy,
        given.structure,
    )
    assert again.variables == given.variables
    assert given.formulas["size"].endswith("+ (1 | school)")  # the class-level model

    forms = {
        "y": "~ x + size + budget + (1 | school/class)",
        "x": "~ y + size + budget + (1 | school/class)",
        "size": "~ cmean(x) + cmean(y) + budget",
        "budget": "~ cmean(x, school) + cmean(y, school)",
    }
    spec = build_spec(df, forms)
    assert spec.hierarchy == ("school", "school:class")
    assert spec.variables_by_name["budget"].level == 3
    assert spec.variables_by_name["size"].level == 2
    imp = mlimpute.impute(df, forms, m=1, iterations=2, rng=1)
    done = imp.complete(1)
    assert done.groupby("school")["budget"].nunique().max() == 1
    assert done.groupby(["school", "class"])["size"].nunique().max() == 1


def test_a_class_level_formula_over_the_containing_factor_is_accepted_without_cluster():
    """size ~ ... + (1 | school) beside (1 | school/class) formulas: the class-level model
    the defaults give with cluster=["school", "class"], not a crossed factor."""
    from mlimpute.spec.build import build_spec

    df = _three_levels()
    forms = {
        "y": "~ x + size + budget + (1 | school/class)",
        "x": "~ y + size + budget + (1 | school/class)",
        "size": "~ cmean(x) + cmean(y) + budget + (1 | school)",
        "budget": "~ cmean(x, school) + cmean(y, school)",
    }
    spec = build_spec(df, forms)
    size = spec.variables_by_name["size"]
    assert (size.method, size.level) == ("2l.norm", 2)
    assert size == build_spec(df, forms, cluster=["school", "class"]).variables_by_name["size"]


def test_unique_class_ids_in_formulas_give_the_formulas_factor_as_the_inner_level():
    from mlimpute.spec.build import build_spec

    df = _three_levels()
    df["class"] = df["school"] * 4 + df["class"]  # unique over all schools
    for text in ("~ x + (1 | school) + (1 | class)", "~ x + (1 | school/class)"):
        spec = build_spec(
            df[["school", "class", "x", "y", "budget"]].assign(x=lambda d: d.x.fillna(0.0)),
            {"y": text, "budget": "~ cmean(y, school)"},
        )
        assert spec.hierarchy[0] == "school" and spec.hierarchy[1] == spec.cluster
        assert spec.structure[0].startswith(f"{spec.cluster} nested in school: every")
        assert spec.variables_by_name["budget"].level == 3


def test_the_structure_line_says_the_plural_of_the_outer_level():
    from mlimpute.errors import MlimputeWarning
    from mlimpute.spec.build import build_spec
    from mlimpute.spec.factors import _plural

    with pytest.warns(MlimputeWarning, match="repeat across the 'class' clusters"):
        spec = build_spec(_three_levels(), cluster=["class", "school"])
    assert spec.structure[0].startswith("school ids repeat across classes: ")

    assert [_plural(w) for w in ("school", "class", "city", "day", "box")] == [
        "schools",
        "classes",
        "cities",
        "days",
        "boxes",
    ]


def _pupils_by_items(P=60, I=12, seed=3):
    """Pupils crossed with items; d constant within items, missing for 3 whole items."""
    r = np.random.default_rng(seed)
    pupil, item = np.repeat(np.arange(P), I), np.tile(np.arange(I), P)
    n = pupil.size
    d = r.normal(size=I)[item]
    x = r.normal(size=n)
    y = 0.5 * x - 0.5 * d + r.normal(0, 0.5, P)[pupil] + r.normal(0, 0.5, I)[item]
    df = pd.DataFrame({"pupil": pupil, "item": item, "x": x, "d": d, "y": y + r.normal(size=n)})
    df.loc[r.random(n) < 0.3, "y"] = np.nan
    df.loc[np.isin(item, [1, 5, 8]), "d"] = np.nan
    return df


@pytest.mark.parametrize(
    "d", ["~ cmean(y, item)", "~ x + y + (1 | pupil) + (1 | item)", "~ y + (1 | pupil)"]
)
def test_a_variable_constant_within_a_crossed_factor_is_refused(d):
    """Imputed row by row it would vary within items: refused before any chain starts,
    naming the variable and the factor (three_level.md, 'Not supported yet')."""
    from mlimpute.errors import UnsupportedError
    from mlimpute.spec.build import build_spec

    df = _pupils_by_items()
    forms = {"y": "~ x + d + (1 | pupil) + (1 | item)", "d": d}
    with pytest.raises(UnsupportedError, match=r"'d' is constant within 'item'.*crossed.*per item"):
        build_spec(df, forms)
    # with nested levels and a crossed factor too
    df["school"] = df["pupil"] // 6
    forms = {"y": "~ x + d + (1 | school/pupil) + (1 | item)", "d": "~ cmean(y, item)"}
    with pytest.raises(UnsupportedError, match=r"'d' is constant within 'item'"):
        build_spec(df, forms)


def test_a_variable_observed_once_per_crossed_cluster_is_not_taken_as_constant():
    """One observed row per item (or two items with two) is no evidence of an item-level
    variable: imputed as a level-1 variable, not refused."""
    from mlimpute.spec.build import build_spec

    df = _pupils_by_items()
    r = np.random.default_rng(1)
    df["b"] = np.nan
    first = ~df["item"].duplicated().to_numpy()
    df.loc[first, "b"] = r.integers(0, 2, first.sum()).astype(float)
    df.loc[first.nonzero()[0][0] + 12, "b"] = df["b"].iloc[first.nonzero()[0][0]]  # 2 in item 0
    forms = {"y": "~ x + (1 | pupil) + (1 | item)", "b": "~ x + y + (1 | pupil) + (1 | item)"}
    spec = build_spec(df.drop(columns="d"), forms)
    assert spec.variables_by_name["b"].level == 1


def _districts() -> pd.DataFrame:
    """Classes in schools in districts, with a district-level and a school-level column."""
    r = np.random.default_rng(1)
    district = np.repeat(np.arange(6), 45)
    school = np.repeat(np.arange(18), 15)
    cls = np.repeat(np.arange(54), 5)
    df = pd.DataFrame(
        {
            "district": district,
            "school": school,
            "class": cls,
            "dvar": r.normal(size=6)[district],
            "svar": r.normal(size=18)[school],
            "y": r.normal(size=cls.size),
        }
    )
    df.loc[df["district"] == 2, "dvar"] = np.nan
    df.loc[df["school"] == 4, "svar"] = np.nan
    df.loc[::7, "y"] = np.nan
    return df


def test_a_variable_constant_within_a_factor_beyond_the_levels_is_refused():
    """A district-level variable beside formulas over classes, schools and districts (four
    levels) would be imputed per class or per school, varying within districts: refused
    before any chain, naming the variable and the factor."""
    from mlimpute.errors import UnsupportedError
    from mlimpute.spec.build import build_spec

    df = _districts().drop(columns="svar")
    y = "~ dvar + (1 | district) + (1 | school) + (1 | class)"
    for kw in ({}, {"cluster": ["school", "class"]}):
        with pytest.raises(UnsupportedError, match=r"'dvar' is constant within 'district'.*fourth"):
            build_spec(df, {"y": y, "dvar": "~ cmean(y, district)"}, **kw)


def test_a_school_level_variable_beside_a_district_factor_is_kept():
    """A school-level variable with cluster=[school, class] and a district intercept in
    the formulas: not constant within districts, imputed per school as before."""
    from mlimpute.spec.build import build_spec

    df = _districts().drop(columns="dvar")
    forms = {
        "y": "~ svar + (1 | district) + (1 | school) + (1 | class)",
        "svar": "~ cmean(y, school)",
    }
    spec = build_spec(df, forms, cluster=["school", "class"])
    assert spec.variables_by_name["svar"].level == 3
