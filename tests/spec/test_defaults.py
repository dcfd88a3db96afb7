"""Tests of mlimpute.spec.defaults: how every column is classified for the default models.

Small synthetic data mimic the cases the rules are for: a school denomination coded 1-4
(level 2, like ``brandsma$den`` in R's mice), pupil numbers unique over the data
(``brandsma$pup``) or numbering the pupils of each school 1..n_j (``mlmRev::Exam$student``),
and a day number 0..9 per subject (``lme4::sleepstudy$Days``), which must stay a variable.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mlimpute  # noqa: F401  (registers the .mi accessor)
from mlimpute.describe import describe
from mlimpute.errors import MlimputeWarning
from mlimpute.spec.defaults import (
    MAX_CODES,
    classify_columns,
    counts,
    default_method,
    integer_codes,
    is_level2,
    varying_clusters,
)
from mlimpute.specfile import init_spec, loads_spec


def schools(seed: int = 1, n_schools: int = 24, *, den_dtype: str = "float64") -> pd.DataFrame:
    """brandsma-like: pupils in schools, a level-2 denomination code 1-4 missing for some
    schools, a unique pupil number, a pupil number within the school, a count."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(4, 16, n_schools)
    sizes[0] = 14  # more than MAX_CODES pupils in some school: 'student' numbers > 10
    sch = np.repeat(np.arange(1, n_schools + 1), sizes)
    n = sch.size
    den = rng.integers(1, 5, n_schools)[sch - 1].astype(float)
    den[np.isin(sch, [2, 5, 9])] = np.nan
    iqv = rng.normal(0, 2, n).round(2)
    iqv[rng.random(n) < 0.15] = np.nan
    rating = rng.integers(1, 8, n).astype(float)  # level-1 codes 1-7
    rating[rng.random(n) < 0.15] = np.nan
    books = rng.poisson(15, n).astype(float)  # a count with many values
    books[rng.random(n) < 0.15] = np.nan
    lpo = 40 + 2.5 * np.nan_to_num(iqv) + rng.normal(0, 6, n)
    lpo[rng.random(n) < 0.15] = np.nan
    df = pd.DataFrame(
        {
            "sch": sch,
            "pup": np.arange(n) * 7 + 1001,
            "student": np.concatenate([np.arange(1, s + 1) for s in sizes]),
            "sex": rng.integers(0, 2, n),
            "iqv": iqv,
            "rating": rating,
            "books": books,
            "den": den,
            "lpo": lpo,
        }
    )
    if den_dtype != "float64":
        df["den"] = df["den"].astype(den_dtype)
    return df


def days(seed: int = 1, n_subjects: int = 12) -> pd.DataFrame:
    """sleepstudy-like: 10 days (0..9) per subject, complete."""
    rng = np.random.default_rng(seed)
    subject = np.repeat(np.arange(308, 308 + n_subjects), 10)
    day = np.tile(np.arange(10), n_subjects)
    reaction = 250 + 10 * day + rng.normal(0, 25, day.size)
    reaction[rng.random(day.size) < 0.2] = np.nan
    return pd.DataFrame({"Reaction": reaction, "Days": day, "Subject": subject})


def _impute(df, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MlimputeWarning)
        return df.mi.impute(m=2, iterations=2, rng=1, **kw)


# ------------------------------------------------------------------------------------------
# integer codes
# ------------------------------------------------------------------------------------------


def test_integer_codes_rule():
    assert integer_codes(pd.Series([1.0, 4.0, np.nan, 2.0, 3.0]))  # codes read with NaN
    assert integer_codes(pd.Series([1, 2, None], dtype="Int64"))
    assert integer_codes(pd.Series([1, 2, 1]))  # two codes other than 0/1
    assert not integer_codes(pd.Series([0, 1, 1]))  # binary already
    assert not integer_codes(pd.Series([1.5, 2.0, 3.0]))  # not whole numbers
    assert not integer_codes(pd.Series([True, False]))
    assert not integer_codes(pd.Series(pd.Categorical([1, 2, 3])))
    assert integer_codes(pd.Series(np.arange(MAX_CODES)))
    assert not integer_codes(pd.Series(np.arange(MAX_CODES + 1)))  # a count, not codes
    assert counts(pd.Series(np.arange(MAX_CODES + 1)))  # ... imputed by pmm as well
    assert not counts(pd.Series(np.arange(MAX_CODES)))  # codes
    assert not counts(pd.Series(np.arange(-1, MAX_CODES + 1)))  # negative: numeric
    assert not integer_codes(pd.Series([np.nan, np.nan]))
    assert default_method("numeric", 1, codes=True) == "2l.pmm"
    assert default_method("numeric", 0, codes=True) == "pmm"
    assert default_method("binary", 1, codes=True) == "2l.bin"  # only normal models switch


@pytest.mark.parametrize("dtype", ["float64", "Int64"])
def test_codes_come_back_as_observed_values_in_their_dtype(dtype):
    df = schools(den_dtype=dtype)
    imp = _impute(df, cluster="sch")
    methods = imp.spec.methods
    assert methods["den"] == "2lonly.pmm"  # level-2 codes 1-4
    assert methods["rating"] == "2l.pmm"  # level-1 codes 1-7
    assert methods["books"] == "2l.pmm"  # a count with many values: observed counts only
    assert methods["iqv"] == "2l.norm" and methods["lpo"] == "2l.norm"
    observed = set(df["den"].dropna().astype(float))
    for i in (1, 2):
        done = imp.complete(i)
        assert done["den"].dtype == df["den"].dtype
        assert done["rating"].dtype == df["rating"].dtype
        assert set(done["den"].astype(float)) <= observed
        assert set(done["rating"]) <= set(df["rating"].dropna())
        assert done["den"].notna().all()
        # still a level-2 variable: one value per school
        assert (done.groupby("sch")["den"].nunique() == 1).all()
    # an explicit method wins; without a cluster the single-level PMM
    assert _impute(df, cluster="sch", method={"den": "2lonly.norm"}).spec.methods["den"] == (
        "2lonly.norm"
    )
    single = _impute(df[["den", "iqv", "lpo"]])
    assert single.spec.methods["den"] == "pmm"


# ------------------------------------------------------------------------------------------
# identifiers
# ------------------------------------------------------------------------------------------


def test_identifier_unique_over_the_data_is_left_out_with_an_event():
    df = schools()
    roles = classify_columns(df, "sch")
    assert roles["pup"].role == "identifier" and roles["pup"].model is None
    assert "every row" in roles["pup"].reason
    imp = _impute(df, cluster="sch")
    assert not any("pup" in f for f in imp.spec.formulas.values())
    assert any("'pup'" in e and "identifier" in e for e in imp.events)
    # read with NaN elsewhere or from SPSS, the numbers may be floats: still an identifier
    assert classify_columns(df.assign(pup=df["pup"].astype(float)), "sch")["pup"].role == (
        "identifier"
    )
    # measured values that happen to differ in every row are not
    assert classify_columns(df.assign(pup=df["pup"] + 0.5), "sch")["pup"].role == "level-1"
    # nor are a handful of whole numbers
    small = pd.DataFrame(
        {"g": [1, 1, 2, 2, 3, 3], "x": [3, 9, 4, 1, 7, 2], "y": [1.0, np.nan, 2.0, 3.5, 2.2, 0.1]}
    )
    assert classify_columns(small, "g")["x"].role == "level-1"
    text = pd.DataFrame({"id": [f"p{i}" for i in range(6)], "y": [1.0, np.nan, 2, 3, 4, 5]})
    assert classify_columns(text)["id"].role == "identifier"


def test_identifier_numbering_the_rows_of_each_cluster():
    df = schools()
    roles = classify_columns(df, "sch")
    assert roles["student"].role == "identifier"
    assert "1..n_j" in roles["student"].reason
    imp = _impute(df, cluster="sch")
    assert not any("student" in f for f in imp.spec.formulas.values())
    assert any("'student'" in e and "identifier" in e for e in imp.events)
    # counted from 0 too
    zero = df.assign(student=df["student"] - 1)
    assert classify_columns(zero, "sch")["student"].role == "identifier"
    # a gap in one school: not a numbering of the rows
    gap = df.copy()
    gap.loc[gap.index[0], "student"] = 99
    assert classify_columns(gap, "sch")["student"].role == "level-1"
    # include= keeps it
    kept = classify_columns(df, "sch", include=["student", "lpo", "iqv"])
    assert kept["student"].role == "level-1"
    assert kept["pup"].role == "excluded" and kept["pup"].reason == "not in include="


def test_day_numbers_of_a_longitudinal_study_stay_a_variable():
    df = days()
    roles = classify_columns(df, "Subject")
    assert roles["Days"].role == "level-1" and roles["Days"].codes
    imp = _impute(df, cluster="Subject")
    assert "Days" in imp.spec.formulas["Reaction"]
    assert not any("identifier" in e for e in imp.events)


def test_other_roles_and_levels():
    df = schools().assign(when=pd.Timestamp("2024-01-01"))
    roles = classify_columns(df, "sch", exclude=["books"])
    assert roles["sch"].role == "cluster"
    assert roles["when"].role == "excluded" and "dtype" in roles["when"].reason
    assert roles["books"].role == "excluded" and "exclude" in roles["books"].reason
    assert roles["den"].role == "level-2" and roles["den"].level == 2
    assert roles["sex"].role == "level-1" and roles["sex"].model == "2l.bin"
    assert list(roles) == list(df.columns)
    # without a cluster: every variable level 1 with single-level models
    flat = classify_columns(df.drop(columns=["student"]))
    assert flat["den"].role == "level-1" and flat["den"].model == "pmm"
    assert flat["sch"].role == "level-1" and flat["sch"].model == "pmm"  # 24 whole values


# ------------------------------------------------------------------------------------------
# one classification: describe, impute and `mlimpute init` agree
# ------------------------------------------------------------------------------------------


def test_describe_impute_and_init_classify_the_same_way():
    df = schools().assign(when=pd.Timestamp("2024-01-01"))
    d = describe(df, cluster="sch")
    imp = _impute(df, cluster="sch")
    incomplete = [c for c in df.columns if df[c].isna().any()]
    assert incomplete and set(imp.spec.methods) == set(incomplete)
    for c in incomplete:
        assert d.loc[c, "model"] == imp.spec.methods[c], c
    left_out = [c for c in df.columns if d.loc[c, "role"] in ("identifier", "excluded")]
    assert left_out == ["pup", "student", "when"]
    event = next(e for e in imp.events if e.startswith("left out of the default models"))
    for c in left_out:
        assert f"'{c}'" in event
    used = {c for f in imp.spec.formulas.values() for c in df.columns if c in f}
    assert used.isdisjoint(left_out)
    assert d.loc["pup", "note"] == classify_columns(df, "sch")["pup"].reason
    assert np.isnan(d.loc["pup", "icc"])  # an identifier has no ICC
    spec = loads_spec(init_spec(df.drop(columns="when"), cluster="sch", seed=1))
    assert spec.methods == imp.spec.methods
    assert spec.formulas == imp.spec.formulas


def _varying_by_min_max(codes, values):
    """The clusters whose observed values are not constant, by per-cluster minima and maxima
    (the definition)."""
    s = pd.Series(values)
    keep = s.notna().to_numpy()
    frame = pd.DataFrame({"g": codes[keep], "v": s[keep].to_numpy()})
    agg = frame.groupby("g")["v"].agg(["min", "max"]) if frame.size else None
    if agg is None or agg.empty:
        return np.zeros(0, dtype=np.intp)
    return agg.index[(agg["min"] != agg["max"]).to_numpy()].to_numpy()


@pytest.mark.parametrize("kind", ["float", "float_nan", "int", "int8", "signed_zero", "str"])
def test_varying_clusters_is_the_clusters_whose_minimum_and_maximum_differ(kind):
    rng = np.random.default_rng(3)
    n, J = 2_000, 300
    codes = rng.integers(0, J, n)
    base = rng.normal(size=J)[codes]  # constant within clusters
    vary = rng.random(J) < 0.3  # these clusters get one other value
    v = base.copy()
    v[vary[codes] & (rng.random(n) < 0.5)] += 1.0
    if kind == "float_nan":
        v[rng.random(n) < 0.4] = np.nan
    elif kind in ("int", "int8"):
        v = np.round(v * 10).astype(np.int64 if kind == "int" else np.int8)
    elif kind == "signed_zero":  # -0.0 and 0.0 are the same number
        v = np.where(rng.random(n) < 0.5, -0.0, 0.0)
    values = pd.Series(v.astype(str) if kind == "str" else v)
    got = varying_clusters(codes, values)
    np.testing.assert_array_equal(got, _varying_by_min_max(codes, values))
    assert kind == "signed_zero" or got.size > 20


def test_is_level2_over_the_prefix_and_beyond_it():
    n = 3 * 8192
    codes = np.repeat(np.arange(n // 8), 8)
    level2 = pd.Series(np.repeat(np.arange(n // 8, dtype=float), 8))
    level2[::5] = np.nan
    assert is_level2(codes, level2)
    early = level2.copy()
    early[1] = 1e6  # varies within a cluster among the first rows
    assert not is_level2(codes, early)
    late = level2.copy()
    late[n - 2] = 1e6  # only in the last cluster: a full pass finds it
    assert not is_level2(codes, late)
    assert not is_level2(codes, pd.Series(np.full(n, np.nan)))
    assert not is_level2(np.arange(n), pd.Series(np.ones(n)))  # no cluster with two values


def test_whole_numbers_decided_by_the_first_values_or_by_all():
    n = 5_000
    whole = pd.Series(np.arange(n, dtype=float) % 7)
    assert integer_codes(whole)
    late = whole.copy()
    late[n - 1] = 2.5  # a fraction after the values looked at first
    assert not integer_codes(late) and not counts(late)
    early = whole.copy()
    early[3] = np.inf
    assert not integer_codes(early)
    late[n - 1] = np.nan
    assert integer_codes(late)
