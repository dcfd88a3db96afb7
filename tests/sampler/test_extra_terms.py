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
