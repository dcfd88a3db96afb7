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
