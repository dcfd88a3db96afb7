"""Column kinds and the code <-> value round trip (mlimpute/codec.py)."""

import numpy as np
import pandas as pd
import pytest

from mlimpute.codec import categories, column_kind, decode, encode, template

COLUMNS = {
    "float": (pd.Series([1.5, None, -2.0]), "numeric"),
    "binary-int": (pd.Series([0, 1, None]), "binary"),
    "bool": (pd.Series([True, False, True]), "binary"),
    "boolean": (pd.array([True, None, False], dtype="boolean"), "binary"),
    "object-bool": (pd.Series([True, None, False, np.bool_(True)], dtype=object), "binary"),
    "object-str": (pd.Series(["b", None, "a", "c"], dtype=object), "nominal"),
    "str": (pd.Series(["b", None, "a"], dtype="str"), "binary"),
    "ordered": (
        pd.Series(
            pd.Categorical(["lo", "hi", None, "mid"], categories=["lo", "mid", "hi"], ordered=True)
        ),
        "ordinal",
    ),
    "mixed-object": (pd.Series([1, "a", None], dtype=object), "other"),
    "object-bool-and-int": (pd.Series([True, 2, None], dtype=object), "other"),
}


@pytest.mark.parametrize("name", list(COLUMNS))
def test_kind(name):
    s, kind = COLUMNS[name]
    assert column_kind(pd.Series(s)) == kind


@pytest.mark.parametrize("name", [k for k, (_, kind) in COLUMNS.items() if kind != "other"])
def test_round_trip_through_codes_and_through_the_template(name):
    s = pd.Series(COLUMNS[name][0])
    codes = encode(s)
    assert np.array_equal(np.isnan(codes), s.isna().to_numpy())
    filled = np.where(np.isnan(codes), 0.0, codes)  # a value for every row
    for like in (s, template(s)):
        back = pd.Series(decode(filled, like), dtype=s.dtype)
        observed = s.notna().to_numpy()
        assert back.dtype == s.dtype
        assert back[observed].tolist() == s[observed].tolist()
    assert categories(template(s)) == categories(s)


def test_object_bool_categories_are_false_true_even_if_one_value_is_seen():
    s = pd.Series([True, None, True], dtype=object)
    assert categories(s) == [False, True]
    assert encode(s)[0] == 1.0
    assert decode(np.array([0.0, 1.0]), template(s)).tolist() == [False, True]


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        ([0.0, 1.0, np.nan, 1.0], "binary"),
        ([0.0, 0.5, np.nan, 1.0], "numeric"),  # inside [0, 1], not 0/1
        ([-0.0, 1.0], "binary"),
        ([np.nan, np.nan], "numeric"),  # nothing observed
        ([0.0, 0.0, np.nan], "binary"),  # a single value seen
        ([0, 1, 1], "binary"),
        ([0, 2, 1], "numeric"),
        (np.array([1, 0, 1], dtype=np.uint8), "binary"),
        (np.array([0.0, 1.0, 1.0], dtype=np.float32), "binary"),
    ],
)
def test_binary_numbers_decided_without_hashing(values, kind):
    assert column_kind(pd.Series(values)) == kind


@pytest.mark.parametrize("dtype", ["int64", "int32", "int8", "uint8", "uint32", "uint64"])
def test_sorted_codes_are_pandas_sorted_factorize(dtype):
    from mlimpute.codec import sorted_codes

    info = np.iinfo(dtype)
    rng = np.random.default_rng(2)
    for lo in {int(info.min), 0, int(info.max) - 100}:
        width = min(100, int(info.max) - lo)
        v = np.array([lo + int(k) for k in rng.integers(0, width, 500)], dtype=dtype)
        for s in (pd.Series(v), pd.Series(np.array([info.min, info.max], dtype=dtype))):
            want, got = pd.factorize(s, sort=True), sorted_codes(s)
            assert got[0].dtype == want[0].dtype and np.array_equal(got[0], want[0])
            assert got[1].dtype == want[1].dtype and np.array_equal(got[1], want[1])


def test_sorted_codes_of_other_columns_are_pandas_factorize():
    from mlimpute.codec import sorted_codes

    for s in (
        pd.Series(["b", "a", "b"]),
        pd.Series([2.5, None, 1.0]),
        pd.Series([1, None, 3], dtype="Int64"),
    ):
        want, got = pd.factorize(s, sort=True), sorted_codes(s)
        assert np.array_equal(got[0], want[0]) and list(got[1]) == list(want[1])
