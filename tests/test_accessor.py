"""Tests of the ``.mi`` accessor's descriptive methods: thin delegation, nothing kept."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mlimpute  # noqa: F401  (registers .mi)
from mlimpute.accessor import MIAccessor
from mlimpute.datasets import classroom
from mlimpute.describe import describe
from mlimpute.errors import SpecificationError
from mlimpute.pattern import MissingPattern, missing_pattern


@pytest.fixture
def df() -> pd.DataFrame:
    return classroom(2, rng=1).incomplete


def test_accessor_is_registered_and_holds_only_the_frame(df):
    acc = df.mi
    assert isinstance(acc, MIAccessor)
    assert vars(acc).keys() == {"_df"} and acc._df is df


def test_pattern_delegates_to_missing_pattern(df):
    pat = df.mi.pattern()
    assert isinstance(pat, MissingPattern)
    pd.testing.assert_frame_equal(pat.table, missing_pattern(df).table)
    assert pat.n_missing.to_dict() == {"class": 0, "skill": 0, "gender": 0,
                                       "grade": int(df["grade"].isna().sum()),
                                       "relation": int(df["relation"].isna().sum())}


def test_describe_delegates(df):
    pd.testing.assert_frame_equal(df.mi.describe(cluster="class"), describe(df, "class"))
    pd.testing.assert_frame_equal(df.mi.describe(), describe(df))
    with pytest.raises(SpecificationError, match="'school'"):
        df.mi.describe(cluster="school")


def test_accessor_methods_do_not_modify_the_frame(df):
    df["cat"] = pd.Categorical(np.where(df["gender"] == 1, "f", "m"))
    before = df.copy(deep=True)
    df.mi.describe(cluster="class")
    df.mi.pattern()
    pd.testing.assert_frame_equal(df, before)
