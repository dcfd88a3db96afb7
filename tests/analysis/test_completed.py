"""Tests of mlimpute.analysis.completed: from_completed and CompletedImputations."""

from __future__ import annotations

import numpy as np
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


def _mice_long(dtype=None):
    """mice's ``complete(imp, "long", include = TRUE)``: the incomplete data as ``.imp``
    0, then imputations 1..3 (``dtype=str``: the labels as text, as read with
    ``dtype=str`` or from an R factor)."""
    base = classroom(1, rng=1).complete
    incomplete = base.assign(grade=base["grade"].where(base["skill"] > base["skill"].median()))
    frames = [incomplete] + [base.assign(grade=base["grade"] + 0.1 * i) for i in (1, 2, 3)]
    long = pd.concat([f.assign(**{".imp": i}) for i, f in enumerate(frames)])
    if dtype is not None:
        long[".imp"] = long[".imp"].astype(str).astype(dtype)
    return long


@pytest.mark.parametrize("dtype", [None, str, "category"])
def test_mice_imputation_0_is_skipped_whatever_the_labels_type(dtype):
    """Text labels ("0", "1", ...) and an R factor's categories are numbers too: the
    incomplete data labelled "0" were kept as data set 1 (m = 4, with missing values)."""
    ci = mlimpute.from_completed(_mice_long(dtype))
    assert ci.m == 3
    assert not any(ci.complete(i).isna().any().any() for i in (1, 2, 3))
    assert [
        round(ci.complete(i)["grade"].iloc[0] - ci.complete(1)["grade"].iloc[0], 6)
        for i in (1, 2, 3)
    ] == [0.0, 0.1, 0.2]
    assert len(ci.events) == 1 and "skipped" in ci.events[0] and "missing" in ci.events[0]


def test_label_0_with_a_column_missing_in_every_data_set_is_kept():
    """Labels 0..m-1 where every data set keeps a column that was never imputed (missing
    in the same rows of all of them): data set 0 has no more missing values than the
    others, so it is a completed data set; it was dropped for those values (m = 2)."""
    base = classroom(1, rng=1).complete
    note = np.where(np.arange(len(base)) % 7 == 0, np.nan, 1.0)
    long = pd.concat([base.assign(note=note, skill=base["skill"] + i, k=i) for i in range(3)])
    ci = mlimpute.from_completed(long, imputation="k")
    assert ci.m == 3
    assert [ci.complete(i + 1)["skill"].iloc[0] - base["skill"].iloc[0] for i in range(3)] == [
        0,
        1,
        2,
    ]
    assert len(ci.events) == 1 and "kept" in ci.events[0]
    # mice's incomplete copy has more missing values than the completed data sets, also
    # when they keep such a column: still skipped
    first = long["k"] == 0
    long.loc[first, "grade"] = long.loc[first, "grade"].where(long.loc[first, "skill"] > 0)
    ci = mlimpute.from_completed(long, imputation="k")
    assert ci.m == 2 and "skipped" in ci.events[0]


@pytest.mark.parametrize("labels", [range(5), range(2)])
def test_a_complete_data_set_labelled_0_is_kept(labels):
    """Labels 0..m-1 (Python's numbering) without missing values: imputation 0 is a
    completed data set, not mice's incomplete data; it was dropped (m = 4, or m = 1)."""
    base = classroom(1, rng=1).complete
    long = pd.concat([base.assign(skill=base["skill"] + i, imputation=i) for i in labels])
    ci = mlimpute.from_completed(long)
    assert ci.m == len(labels)
    assert [ci.complete(i + 1)["skill"].iloc[0] - base["skill"].iloc[0] for i in labels] == list(
        labels
    )
    assert len(ci.events) == 1 and "kept" in ci.events[0]
