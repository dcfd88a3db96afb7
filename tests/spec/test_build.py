"""Bad input gets an error that names the column, token or cluster at fault."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mlimpute
from mlimpute.datasets import classroom
from mlimpute.errors import DataError, DataTypeError, FormulaError, SpecificationError
from mlimpute.spec.build import build_spec


@pytest.fixture
def df():
    return classroom(2, rng=1, n_classes=6, class_size=5).incomplete


def test_unknown_column(df):
    with pytest.raises(SpecificationError, match=r"unknown column\(s\) \['skil'\]"):
        df.mi.impute({"grade": "~ skil + (1 | class)", "relation": "~ grade"})


def test_incomplete_without_formula_named(df):
    with pytest.raises(SpecificationError, match=r"\['relation'\]"):
        df.mi.impute({"grade": "~ skill + (1 | class)"})


def test_unknown_method_lists_names(df):
    with pytest.raises(SpecificationError, match="available: .*2l.norm"):
        df.mi.impute({"grade": "~ skill", "relation": "~ skill"}, method={"grade": "nope"})


def test_multilevel_method_needs_random_part(df):
    with pytest.raises(SpecificationError, match=r"needs a random part"):
        df.mi.impute({"grade": "~ skill", "relation": "~ skill"}, method={"grade": "2l.norm"})


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "5"])
def test_m_and_iterations(df, bad):
    f = {"grade": "~ skill", "relation": "~ skill"}
    with pytest.raises(SpecificationError, match="m must be"):
        df.mi.impute(f, m=bad)
    with pytest.raises(SpecificationError, match="iterations must be"):
        df.mi.impute(f, iterations=bad)


def test_all_missing_response(df):
    df = df.assign(relation=np.nan)
    with pytest.raises(DataError, match="'relation' has no observed value"):
        df.mi.impute({"grade": "~ skill", "relation": "~ skill"})


def test_missing_cluster_ids(df):
    df = df.copy()
    df.loc[df.index[3], "class"] = np.nan
    with pytest.raises(DataError, match="cluster column 'class' has 1 missing"):
        df.mi.impute({"grade": "~ skill + (1|class)", "relation": "~ skill"})


def test_inf_is_an_error_not_missing(df):
    df = df.copy()
    df.loc[df.index[0], "skill"] = np.inf
    with pytest.raises(DataError, match="'skill' has ±inf"):
        df.mi.impute({"grade": "~ skill", "relation": "~ skill"})


def test_duplicated_columns_and_empty_frame(df):
    dup = pd.concat([df, df[["skill"]]], axis=1)
    with pytest.raises(DataError, match=r"duplicated column names: \['skill'\]"):
        dup.mi.impute({"grade": "~ gender"})
    with pytest.raises(DataError, match="empty"):
        pd.DataFrame().mi.impute({"grade": "~ 1"})


def test_wrong_response_type(df):
    df = df.assign(relation=pd.Categorical(np.where(df["relation"] > 0, "hi", "lo")))
    df.loc[df.index[:3], "relation"] = np.nan
    with pytest.raises(DataTypeError, match="'relation' is binary"):
        df.mi.impute({"grade": "~ skill", "relation": "~ skill"}, method={"relation": "norm"})
    dates = df.assign(relation=pd.Timestamp("2020-01-01"))
    dates.loc[dates.index[:3], "relation"] = pd.NaT
    with pytest.raises(DataTypeError, match="'relation' has dtype"):
        dates.mi.impute({"grade": "~ skill", "relation": "~ skill"})


def test_formula_errors_propagate(df):
    with pytest.raises(FormulaError, match="unmatched"):
        df.mi.impute({"grade": "~ (skill", "relation": "~ skill"})
    with pytest.raises(mlimpute.UnsupportedError, match="three-level"):
        df.mi.impute({"grade": "~ skill + (1|class)", "relation": "~ skill + (1|gender)"})


def test_visit_must_be_a_permutation(df):
    f = {"grade": "~ skill", "relation": "~ skill"}
    with pytest.raises(SpecificationError, match="visit must list"):
        df.mi.impute(f, visit=["grade"])


def test_bad_rng(df):
    with pytest.raises(SpecificationError, match="rng"):
        df.mi.impute({"grade": "~ skill", "relation": "~ skill"}, rng="seed")


# -- model options through method= -------------------------------------------------------
_F = {"grade": "~ skill + (1 | class)", "relation": "~ grade + (1 | class)"}


def test_method_options_stored_in_the_spec(df):
    spec = build_spec(
        df,
        _F,
        method={
            "grade": ("2l.norm", {"prior": "iw"}),
            "relation": {"method": "2l.pmm", "donors": 3},
        },
    )
    assert spec.methods == {"grade": "2l.norm", "relation": "2l.pmm"}
    assert spec.method_options == {"grade": {"prior": "iw"}, "relation": {"donors": 3}}
    assert spec.method_arguments["grade"] == ("2l.norm", {"prior": "iw"})
    assert "prior='iw'" in repr(spec)


def test_unknown_method_option_names_variable_model_and_options(df):
    with pytest.raises(
        SpecificationError, match=r"'2l.norm' for 'grade' has no option 'priors'.*prior='half-t'"
    ):
        df.mi.impute(_F, method={"grade": ("2l.norm", {"priors": "iw"})})
    with pytest.raises(SpecificationError, match=r"'2l.pmm' for 'relation': donors must be"):
        df.mi.impute(_F, method={"relation": ("2l.pmm", {"donors": 0})})
    with pytest.raises(SpecificationError, match=r"method for 'grade' must be a method name"):
        df.mi.impute(_F, method={"grade": ("2l.norm", "iw")})


@pytest.mark.parametrize(
    ("method", "option", "bad"),
    [
        ("2l.norm", "prior_scale", 0.0),
        ("2l.norm", "prior_scale", -1.0),
        ("2l.norm", "prior_scale", float("nan")),
        ("2l.norm", "nu", 0.0),
        ("2l.norm", "nu", -1.0),
        ("2l.norm", "mh_steps", -1),
        ("2l.norm", "mh_steps", 2.5),
        ("2l.norm", "mh_step", 0.0),
        ("2l.norm.het", "prior_scale", float("inf")),
        ("2l.pmm", "donors", 2.7),
        ("2l.pmm", "donors", "5"),
        ("2l.pmm", "donors", True),
    ],
)
def test_numeric_options_out_of_range_are_refused_before_the_chains(df, method, option, bad):
    """prior_scale = 0 made 2l.norm a single-level model; nu < 0 or NaN failed in a chain;
    a fractional donors ran as its integer part while the spec showed the fraction."""
    with pytest.raises(SpecificationError, match=rf"'{method}' for 'grade': {option} must be"):
        build_spec(df, _F, method={"grade": (method, {option: bad})})


def test_heteroscedastic_and_method_for_one_variable_are_refused(df):
    with pytest.raises(SpecificationError, match=r"heteroscedastic= names 'grade' and method="):
        build_spec(df, _F, heteroscedastic=["grade"], method={"grade": "2l.pmm"})
    spec = build_spec(df, _F, heteroscedastic=True, method={"grade": "2l.pmm"})
    assert spec.methods == {"grade": "2l.pmm", "relation": "2l.norm.het"}
    assert any(e.startswith("grade: imputed with '2l.pmm' as method= says") for e in spec.events)


@pytest.mark.parametrize("arg", ["include", "exclude"])
def test_include_and_exclude_without_default_models_are_refused(df, arg):
    with pytest.raises(SpecificationError, match=rf"{arg}= chooses the columns of the default"):
        build_spec(df, _F, **{arg: ["skill"]})
    build_spec(df, _F, cluster="class", **{arg: ["skill"]})


def test_method_options_round_trip_through_files(df, tmp_path):
    from mlimpute.io.stored_spec import spec_from_dict, spec_to_dict
    from mlimpute.specfile import loads_spec, spec_to_toml

    method = {"grade": ("2l.norm", {"prior": "iw", "nu": 4.0})}
    imp = df.mi.impute(_F, method=method, m=2, iterations=3, rng=4)
    assert spec_from_dict(spec_to_dict(imp.spec)) == imp.spec
    path = tmp_path / "imp.nc"
    mlimpute.io.save(imp, path)
    assert mlimpute.open(path).spec.method_options == {"grade": {"prior": "iw", "nu": 4.0}}
    text = spec_to_toml(imp.spec)
    study = loads_spec(text)
    assert study.methods["grade"] == {"method": "2l.norm", "prior": "iw", "nu": 4.0}
    again = study.impute(df)
    assert again.spec == imp.spec
    np.testing.assert_array_equal(again.dataset["grade"].values, imp.dataset["grade"].values)


def test_an_incomplete_column_no_model_imputes_is_said_to_stay_incomplete():
    df = classroom(2, rng=1).incomplete
    gap = np.where(np.arange(len(df)) % 5 == 0, np.nan, 1.0)
    df["when"] = pd.Timestamp("2020-01-01") + pd.to_timedelta(gap, unit="D")
    f = {"grade": "~ skill + (1|class)", "relation": "~ skill + (1|class)"}
    spec = build_spec(df, f)
    said = [e for e in spec.events if e.startswith("left incomplete")]
    assert said and "when (datetime64" in said[0] and "120 missing" in said[0]
    assert not [e for e in build_spec(df.drop(columns="when"), f).events if "incomplete" in e]


def test_clusters_that_cannot_inform_a_random_intercept_are_said():
    df = classroom(1, rng=1).incomplete
    f = {"grade": "~ skill + (1|class)"}
    one = build_spec(df.assign(**{"class": 1}), f).events
    assert any(e.startswith("one cluster of 'class'") for e in one)
    singles = build_spec(df.assign(**{"class": np.arange(len(df))}), f).events
    assert any(e.startswith("every cluster of 'class' has one row") for e in singles)
    assert not build_spec(df, f).events
    assert not build_spec(df.assign(**{"class": 1}), {"grade": "~ skill"}).events


def _integer_scores(seed: int = 5) -> pd.DataFrame:
    """An Int64 score (many distinct values: imputed by 2l.pmm by default), 40 % missing."""
    g = np.random.default_rng(seed)
    cls = np.repeat(np.arange(12), 10)
    x = g.standard_normal(cls.size)
    score = np.round(20 + 3 * x + 2 * g.standard_normal(12)[cls] + 2 * g.standard_normal(cls.size))
    df = pd.DataFrame({"class": cls, "x": x, "score": pd.array(score.astype(int), dtype="Int64")})
    df.loc[g.random(cls.size) < 0.4, "score"] = pd.NA
    return df


@pytest.mark.parametrize("shift", [0.3, -0.4, 0.49, 1.2, 2.5])
@pytest.mark.parametrize("method", [None, "2l.pmm", "pmm"])
def test_a_shift_that_is_not_whole_is_refused_for_an_integer_column_matched_by_pmm(shift, method):
    # the donors are integers and the output is rounded: |δ| < 0.5 changed nothing, δ = 1.2
    # shifted by 1, and the chain carried donor + δ that the output did not show
    df = _integer_scores()
    f = {"score": "~ x + (1 | class)" if method != "pmm" else "~ x"}
    kw = {} if method is None else {"method": {"score": method}}
    meth = method or "2l.pmm"
    with pytest.raises(SpecificationError, match=r"delta for 'score' is .*not a whole number") as e:
        build_spec(df, f, delta={"score": shift}, **kw)
    msg = str(e.value)
    assert f"({meth!r})" in msg and "dtype Int64" in msg
    assert "whole-number shifts" in msg  # what to do instead
    assert f"method={{'score': '{meth.replace('pmm', 'norm')}'}}" in msg
    assert "astype(float)" in msg


def test_per_cluster_shifts_are_refused_for_an_integer_column_matched_by_pmm():
    df = _integer_scores()
    with pytest.raises(SpecificationError, match=r"delta_cluster_sd for 'score' draws") as e:
        build_spec(df, {"score": "~ x + (1 | class)"}, delta_cluster_sd={"score": 0.5})
    assert "'2l.norm'" in str(e.value)
    # a zero SD is no shift, and continuous draws are shifted before the rounding
    build_spec(df, {"score": "~ x + (1 | class)"}, delta_cluster_sd={"score": 0.0})
    build_spec(
        df,
        {"score": "~ x + (1 | class)"},
        delta_cluster_sd={"score": 0.5},
        delta={"score": 0.3},
        method={"score": "2l.norm"},
    )


def test_a_whole_shift_of_an_integer_column_matched_by_pmm_is_kept_as_the_chain_has_it():
    df = _integer_scores()
    f = {"score": "~ x + (1 | class)"}
    kw = dict(m=2, iterations=3, rng=1)
    plain = mlimpute.impute(df, f, **kw)
    for shift in (-2, 1.0, np.int64(3)):
        imp = mlimpute.impute(df, f, delta={"score": shift}, **kw)
        assert imp.spec.methods["score"] == "2l.pmm"
        chain = imp.dataset["score"].to_numpy()  # the values the chain carried
        out = imp.imputed("score").to_numpy(dtype=float).T  # the completed column
        np.testing.assert_array_equal(chain, out)
        np.testing.assert_array_equal(chain, plain.dataset["score"].to_numpy() + float(shift))
    # a float column holding whole numbers is not rounded: any shift is kept as drawn
    build_spec(df.assign(score=df["score"].astype(float)), f, delta={"score": 0.3})


@pytest.mark.parametrize("dtype, top", [("Int8", 127), ("Int16", 32767), ("Int64", None)])
def test_counts_of_a_narrow_integer_dtype_are_said_to_be_clipped(dtype, top):
    """A count model's draws are clipped to the dtype's largest value on output: said for
    dtypes whose largest value a count can reach, not for 64-bit integers."""
    rng = np.random.default_rng(1)
    counts = rng.poisson(20, 60).astype(float)
    counts[::4] = np.nan
    y = pd.array(counts, dtype="Float64").astype(dtype)
    df = pd.DataFrame({"y": y, "x": rng.normal(size=60), "g": np.repeat(np.arange(6), 10)})
    spec = build_spec(df, {"y": "~ x + (1 | g)"}, method={"y": "2l.poisson"})
    clipped = [e for e in spec.events if "clipped" in e]
    if top is None:
        assert not clipped
    else:
        assert clipped == [
            f"y: count column of dtype {dtype} imputed with '2l.poisson': imputed counts above "
            f"{top} are clipped to {top}, the dtype's largest value; a wider integer dtype "
            "(int64) keeps them"
        ]
