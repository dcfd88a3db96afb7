"""Tests of mlimpute.result.imputed: MultiplyImputed's accessors and its text repr."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mlimpute  # noqa: F401  (registers .mi)
from mlimpute.datasets import classroom


@pytest.fixture(scope="module")
def coded():
    """A result with an ordered categorical 1..5, a string and a boolean column."""
    d = classroom(2, rng=1).incomplete
    rng = np.random.default_rng(0)
    n = len(d)
    d["likert"] = pd.Categorical(
        rng.choice([1, 2, 3, 4, 5], n), categories=[1, 2, 3, 4, 5], ordered=True
    )
    d.loc[rng.random(n) < 0.2, "likert"] = np.nan
    d["sex"] = pd.Series(rng.choice(["f", "m"], n), dtype=object)
    d.loc[rng.random(n) < 0.2, "sex"] = None
    d["flag"] = pd.array(rng.random(n) < 0.5, dtype="boolean")
    d.loc[rng.random(n) < 0.2, "flag"] = pd.NA
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return d.mi.impute(cluster="class", m=2, iterations=3, rng=1)


@pytest.mark.parametrize("name", ["likert", "sex", "flag", "grade"])
def test_imputed_holds_the_values_complete_writes(coded, name):
    got = coded.imputed(name)
    missing = coded.data.index[coded.data[name].isna()]
    assert list(got.index) == list(missing)
    assert list(got.columns) == [1, 2] and got.columns.name == "imputation"
    for i in (1, 2):
        assert got[i].dtype == coded.data[name].dtype
        pd.testing.assert_series_equal(
            got[i], coded.complete(i).loc[missing, name], check_names=False
        )
    if name == "likert":  # the categories 1..5, not the codes 0..4
        assert set(got[1]) <= {1, 2, 3, 4, 5} and 5 in set(got[1]) | set(got[2])
