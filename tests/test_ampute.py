"""mlimpute.ampute: proportions, mechanisms, levels, dtypes and errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mlimpute
from mlimpute.errors import DataError, DataTypeError, SpecificationError


def _data(n_clusters=500, size=20, seed=0):
    rng = np.random.default_rng(seed)
    cls = np.repeat(np.arange(n_clusters), size)
    w = rng.normal(size=n_clusters)
    x = rng.normal(size=cls.size) + w[cls]
    y = x + rng.normal(size=cls.size)
    return pd.DataFrame(
        {"class": cls, "w": w[cls], "x": x, "y": y, "k": rng.integers(0, 5, cls.size)}
    )


# Achieved shares on 10,000 rows: binomial SD <= sqrt(.25 / 10,000) = 0.5 pp for row-level
# missingness, so 1 pp is 2 SD; the rng is fixed (seeds 1..), so these cases are
# reproducible (and all pass with margin at these seeds).
@pytest.mark.parametrize(
    ("mechanism", "depends_on", "strength", "prop", "systematic"),
    [
        ("MCAR", None, 1.0, 0.4, 0.0),
        ("MAR", ["x"], 1.0, 0.4, 0.0),
        ("MAR", ["x", "w"], 3.0, 0.1, 0.0),
        ("MNAR", None, 2.0, 0.6, 0.0),
        ("MNAR", None, -1.0, 0.25, 0.2),
        ("MCAR", None, 1.0, 0.5, 0.3),
    ],
)
def test_row_level_share_within_one_point(mechanism, depends_on, strength, prop, systematic):
    df = _data()
    out = mlimpute.ampute(
        df,
        "class",
        {"y": prop},
        mechanism=mechanism,
        depends_on=depends_on,
        strength=strength,
        systematic=systematic,
        rng=1,
    )
    assert abs(out["y"].isna().mean() - prop) < 0.01
    assert out.drop(columns="y").equals(df.drop(columns="y"))
    kept = out["y"].notna()
    assert (out.loc[kept, "y"] == df.loc[kept, "y"]).all()
    if systematic:
        whole = out.groupby("class")["y"].apply(lambda s: s.isna().all())
        assert whole.mean() >= systematic - 1e-12


def test_level_two_share_within_one_point():
    # 10,000 clusters of 2 rows: the share of rows is the share of clusters, SD 0.5 pp
    df = _data(n_clusters=10_000, size=2)
    out = mlimpute.ampute(df, "class", {"w": 0.3}, mechanism="MNAR", level=2, rng=2)
    assert abs(out["w"].isna().mean() - 0.3) < 0.01
    per = out.groupby("class")["w"].apply(lambda s: s.isna().nunique())
    assert (per == 1).all()


def test_mechanisms_go_the_right_way():
    df = _data()
    mar = mlimpute.ampute(df, prop={"y": 0.4}, mechanism="MAR", depends_on=["x"], rng=3)
    assert df.loc[mar["y"].isna(), "x"].mean() > df.loc[mar["y"].notna(), "x"].mean() + 0.5
    mnar = mlimpute.ampute(df, prop={"y": 0.4}, mechanism="MNAR", strength=-2.0, rng=3)
    assert df.loc[mnar["y"].isna(), "y"].mean() < df.loc[mnar["y"].notna(), "y"].mean() - 1.0
    mcar = mlimpute.ampute(df, prop={"y": 0.4}, rng=3)
    # MCAR: difference in x means ~ N(0, sd(x) * sqrt(1/4000 + 1/6000)) ~ 0.03; 0.15 is 5 SD
    assert abs(df.loc[mcar["y"].isna(), "x"].mean() - df.loc[mcar["y"].notna(), "x"].mean()) < 0.15


def test_reproducible_input_untouched_and_dtypes():
    df = _data(50, 10)
    before = df.copy()
    a = mlimpute.ampute(df, prop={"y": 0.3, "k": 0.3}, rng=5)
    b = df.mi.ampute(prop={"y": 0.3, "k": 0.3}, rng=5)
    pd.testing.assert_frame_equal(df, before)
    pd.testing.assert_frame_equal(a, b)
    assert a["y"].dtype == np.float64
    assert a["k"].dtype == "Int64" and a["k"].isna().any()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"prop": {"nope": 0.3}}, SpecificationError, "nope"),
        ({"prop": {"y": 1.2}}, SpecificationError, "prop"),
        ({"prop": {"y": 0.0}}, SpecificationError, "prop"),
        ({"prop": {"y": 0.3}, "mechanism": "MAR"}, SpecificationError, "depends_on"),
        (
            {"prop": {"y": 0.3}, "mechanism": "MAR", "depends_on": ["y"]},
            SpecificationError,
            "itself",
        ),
        ({"prop": {"y": 0.3}, "mechanism": "MAR", "depends_on": ["zz"]}, SpecificationError, "zz"),
        ({"prop": {"y": 0.3}, "mechanism": "MNAR?"}, SpecificationError, "mechanism"),
        ({"prop": {"y": 0.3}, "level": 3}, SpecificationError, "level"),
        ({"prop": {"x": 0.3}, "cluster": "class", "level": 2}, DataError, "varies within"),
        ({"prop": {"w": 0.3}, "level": 2}, SpecificationError, "cluster"),
        (
            {"prop": {"y": 0.1}, "cluster": "class", "systematic": 0.5},
            SpecificationError,
            "systematic",
        ),
    ],
)
def test_named_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        mlimpute.ampute(_data(20, 5), rng=1, **kwargs)


def test_a_single_depends_on_column_may_be_named_by_a_string():
    # as pandas takes a single column name where it takes a list of them
    df = _data(20, 5)
    one = mlimpute.ampute(df, prop={"y": 0.3}, mechanism="MAR", depends_on="x", rng=1)
    listed = mlimpute.ampute(df, prop={"y": 0.3}, mechanism="MAR", depends_on=["x"], rng=1)
    per_var = mlimpute.ampute(df, prop={"y": 0.3}, mechanism="MAR", depends_on={"y": "x"}, rng=1)
    assert one.equals(listed) and one.equals(per_var) and one["y"].isna().any()
    with pytest.raises(SpecificationError, match="'zz'"):
        mlimpute.ampute(df, prop={"y": 0.3}, mechanism="MAR", depends_on="zz", rng=1)
    with pytest.raises(SpecificationError, match="column name or a list of column names"):
        mlimpute.ampute(df, prop={"y": 0.3}, mechanism="MAR", depends_on=3, rng=1)


def test_non_numeric_driver_is_a_type_error():
    df = _data(20, 5).assign(s="a")
    with pytest.raises(DataTypeError, match="'s'"):
        mlimpute.ampute(df, prop={"y": 0.3}, mechanism="MAR", depends_on=["s"], rng=1)


def test_per_variable_dicts_default_for_the_variables_they_omit():
    # systematic= and level= given for one variable only: the other variable gets the
    # defaults (0 and 1) instead of an error
    df = _data()
    out = mlimpute.ampute(
        df,
        "class",
        {"y": 0.4, "x": 0.2, "w": 0.3},
        systematic={"y": 0.2},
        level={"w": 2},
        mechanism={"y": "MNAR"},
        rng=4,
    )
    whole = out.groupby("class")[["y", "x"]].agg(lambda s: s.isna().all())
    assert whole["y"].mean() >= 0.2 - 1e-12
    # x: row-level MCAR at 20 % of 10,000 rows (SD 0.4 pp); a whole class of 20 rows
    # missing by chance has probability 0.2**20
    assert not whole["x"].any()
    assert abs(out["x"].isna().mean() - 0.2) < 0.01
    assert (out.groupby("class")["w"].apply(lambda s: s.isna().nunique()) == 1).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        # MCAR is the default mechanism: a list for all variables would be ignored
        ({"prop": {"y": 0.3}, "depends_on": ["x"]}, r"no variable is amputed MAR \('y' is MCAR\)"),
        ({"prop": {"y": 0.3}, "depends_on": "x", "mechanism": "MNAR"}, r"'y' is MNAR"),
        ({"prop": {"y": 0.3}, "depends_on": {"y": ["x"]}}, r"for 'y', whose mechanism is 'MCAR'"),
        (
            {
                "prop": {"y": 0.3, "k": 0.2},
                "mechanism": {"y": "MAR", "k": "MNAR"},
                "depends_on": {"y": ["x"], "k": ["x"]},
            },
            r"for 'k', whose mechanism is 'MNAR'.*mechanism=\{'k': 'MAR'\}",
        ),
        # unknown columns and keys are named whatever the mechanism
        ({"prop": {"y": 0.3}, "depends_on": ["no_such_column"]}, "no_such_column"),
        ({"prop": {"y": 0.3}, "mechanism": "MNAR", "depends_on": {"y": ["no_such"]}}, "no_such"),
        ({"prop": {"y": 0.3}, "depends_on": {"w": ["x"]}}, r"names \['w'\], which are not in prop"),
        (
            {"prop": {"y": 0.3}, "mechanism": "MAR", "depends_on": {"y": ["x"], "zz": ["x"]}},
            r"names \['zz'\], which are not in prop",
        ),
        ({"prop": {"y": 0.3}, "mechanism": "MAR", "depends_on": {"y": []}}, "list of column"),
    ],
)
def test_depends_on_is_checked_for_every_mechanism(kwargs, match):
    with pytest.raises(SpecificationError, match=match):
        mlimpute.ampute(_data(20, 5), rng=1, **kwargs)


def test_one_depends_on_list_applies_to_the_mar_variables():
    # the documented mixed use: one list, a mechanism per variable
    df = _data(20, 5)
    kw = dict(prop={"y": 0.3, "k": 0.3}, rng=4)
    mixed = mlimpute.ampute(df, mechanism={"y": "MAR", "k": "MCAR"}, depends_on=["x"], **kw)
    per_var = mlimpute.ampute(df, mechanism={"y": "MAR"}, depends_on={"y": ["x"]}, **kw)
    pd.testing.assert_frame_equal(mixed, per_var)
    assert mixed["k"].isna().any() and mixed["y"].isna().any()


@pytest.mark.parametrize("kind", [np.float32, np.float64, np.float16])
def test_numpy_numbers_are_accepted_as_settings(kind):
    df = _data(20, 5)
    for kw in (
        dict(prop={"y": kind(0.375)}),
        dict(prop={"y": 0.375}, systematic=kind(0.25)),
        dict(prop={"y": 0.375}, mechanism="MNAR", strength=kind(1.5)),
        dict(prop={"y": 0.375}, mechanism="MNAR", strength=np.int64(2)),
    ):
        plain = {k: (v if isinstance(v, (str, dict)) else float(v)) for k, v in kw.items()}
        plain["prop"] = {"y": float(kw["prop"]["y"])}
        a = mlimpute.ampute(df, "class", rng=2, **kw)
        pd.testing.assert_frame_equal(a, mlimpute.ampute(df, "class", rng=2, **plain))
        assert a["y"].isna().any()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"prop": {"y": np.bool_(True)}}, r"prop\['y'\] must be a number in \(0, 1\), got bool"),
        ({"prop": {"y": "0.3"}}, r"must be a number in \(0, 1\), got str '0.3'"),
        ({"prop": {"y": 0.3}, "systematic": True}, "systematic for 'y' must be a number"),
        ({"prop": {"y": 0.3}, "strength": "2", "mechanism": "MNAR"}, "got str '2'"),
        ({"prop": {"y": np.float32(1.5)}}, r"must be in \(0, 1\), got np.float32\(1.5\)"),
    ],
)
def test_settings_that_are_not_numbers_are_named_as_such(kwargs, match):
    with pytest.raises(SpecificationError, match=match):
        mlimpute.ampute(_data(20, 5), "class", rng=1, **kwargs)
