"""ModelData.extra_terms: random-effect terms over further grouping factors."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mlimpute.errors import UnsupportedError
from mlimpute.models import get_model
from mlimpute.models.base import ExtraTerm, ModelBase, refuse_extra_terms
from mlimpute.models.testing import ArrayBlock, example_data


def _with_school(d):
    n_obs, n_mis = d.n_obs, d.n_mis
    school_obs = d.seg_obs.codes // 4
    term = ExtraTerm(
        "school",
        ArrayBlock(["Intercept"], np.ones((n_obs, 1)), np.ones((n_mis, 1))),
        school_obs,
        d.codes_mis // 4,
        3,
        ((0,),),
        (True,),
        nested_in_primary=False,
        contains_primary=True,
        parent=np.arange(d.n_clusters) // 4,
    )
    return replace(d, extra_terms=(term,))


def test_models_with_one_factor_refuse_extra_terms_naming_factors():
    d = _with_school(example_data())
    with pytest.raises(UnsupportedError, match=r"'y'.*\['g', 'school'\]"):
        ModelBase().check(d)
    with pytest.raises(UnsupportedError, match=r"\['g', 'school'\]"):
        refuse_extra_terms(get_model("2l.pmm").factory(), d)
    refuse_extra_terms(ModelBase(), example_data())  # no extra terms: accepted

    class Multi(ModelBase):
        multi_term = True

    Multi().check(d)  # a multi-term model accepts them


def _frame():
    import pandas as pd

    gen = np.random.default_rng(4)
    school = np.repeat([3, 1, 2], 12)  # unsorted labels
    klass = np.tile(np.repeat([1, 2, 3], 4), 3)  # class ids repeat across schools
    nb = gen.integers(0, 4, 36)  # crossed with classes
    df = pd.DataFrame({"school": school, "class": klass, "nb": nb, "x": gen.normal(size=36)})
    df["y"] = df["x"] + gen.normal(size=36)
    return df


def test_build_model_data_gives_nested_and_crossed_terms():
    from mlimpute.sampler.design import Layout, build_model_data
    from mlimpute.spec.formula import parse_formula

    df = _frame()
    f = parse_formula("y ~ x + (1 + x | school/class) + (1 | nb)")
    lay = Layout.from_factors(df, "school:class", ("school", "nb"))
    assert np.all(np.diff(lay.codes) >= 0) and lay.segments.n_clusters == 9
    static = df.iloc[lay.order].reset_index(drop=True)
    observed = np.ones(36, bool)
    observed[::5] = False
    d = build_model_data(f, static, observed, lay, set())
    assert d.group == "school:class" and d.n_clusters == 9 and d.Z.names == ["Intercept", "x"]
    school, nb = d.extra_terms
    assert school.group == "school" and school.n_clusters == 3
    assert school.contains_primary and not school.nested_in_primary
    assert school.parent.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert np.all(np.diff(school.codes_obs) >= 0)  # rows sorted by school first
    # every row's school code agrees with its class's parent and with the data
    codes = np.empty(36, np.intp)
    codes[d.obs_idx], codes[d.mis_idx] = school.codes_obs, school.codes_mis
    np.testing.assert_array_equal(codes, school.parent[lay.codes])
    school_labels = lay.factor("school").labels
    assert list(school_labels) == [1, 2, 3]
    np.testing.assert_array_equal(np.asarray(school_labels)[codes], static["school"].to_numpy())
    assert school.Z.names == ["Intercept", "x"] and school.random_correlated == (True,)
    assert nb.group == "nb" and not nb.contains_primary and not nb.nested_in_primary
    assert nb.parent is None and nb.n_clusters == 4
    np.testing.assert_array_equal(
        np.asarray(lay.factor("nb").labels)[nb.codes_obs], static["nb"].to_numpy()[d.obs_idx]
    )
    # each chain gets its own copy of the dynamic parts; nothing here is dynamic
    assert d.for_chain().extra_terms[0].Z is school.Z
