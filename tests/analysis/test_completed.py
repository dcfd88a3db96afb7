"""Tests of mlimpute.analysis.completed: from_completed and CompletedImputations."""

from __future__ import annotations

import pandas as pd
import pytest

import mlimpute
from mlimpute.datasets import classroom
from mlimpute.errors import DataError, SpecificationError


def test_long_form_never_overwrites_a_data_column_named_imputation():
    df = classroom(1, rng=1).complete.assign(imputation=7)
    ci = mlimpute.from_completed([df, df.assign(skill=df["skill"] + 1)])
    with pytest.raises(DataError, match="imputation_column='.imp'"):
        ci.complete("long")
    long = ci.complete("long", imputation_column=".imp")
    assert list(long.columns) == [".imp", *df.columns]
    assert (long["imputation"] == 7).all()
    assert list(long[".imp"].unique()) == [1, 2]
    pd.testing.assert_frame_equal(long[long[".imp"] == 2].drop(columns=".imp"), ci.complete(2))
    with pytest.raises(SpecificationError, match="imputation_column"):
        ci.complete("long", imputation_column=3)


def test_long_form_of_mice_output_with_an_imputation_column():
    df = classroom(1, rng=1).complete.assign(imputation=7)
    long = pd.concat([df.assign(**{".imp": i}) for i in (1, 2)])
    ci = mlimpute.from_completed(long, imputation=".imp")
    with pytest.raises(DataError):
        ci.complete("long")
    assert list(ci.complete("long", imputation_column="k").columns)[:1] == ["k"]


def test_text_labels_of_numbers_are_ordered_by_value():
    base = classroom(1, rng=1).complete
    long = pd.concat([base.assign(k=i, imp=str(i)) for i in range(1, 12)])
    ci = mlimpute.from_completed(long, imputation="imp")
    assert [ci.complete(i)["k"].iloc[0] for i in range(1, 12)] == list(range(1, 12))


def test_other_labels_keep_the_order_in_which_they_first_appear():
    base = classroom(1, rng=1).complete
    long = pd.concat([base.assign(k=i, imp=lab) for i, lab in enumerate(["b", "a", "c"], 1)])
    ci = mlimpute.from_completed(long, imputation="imp")
    assert [ci.complete(i)["k"].iloc[0] for i in (1, 2, 3)] == [1, 2, 3]
