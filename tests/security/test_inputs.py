"""Bad input gets a named mlimpute error before any chain starts; resource limits up front.

Each test reproduces one finding of the input review: empty random parts, pandas' nullable
dtypes, object columns of lists or dicts, names the result reserves, arguments of the wrong
type, runs too large for memory, categoricals with too many categories, and wide data.
"""

from __future__ import annotations

import importlib
import time
import warnings

import numpy as np
import pandas as pd
import pytest

from mlimpute import impute
from mlimpute.diagnostics.convergence import rhat_table
from mlimpute.errors import (
    ChainError,
    DataError,
    DataTypeError,
    FormulaError,
    MlimputeError,
    MlimputeWarning,
    SpecificationError,
)
from mlimpute.spec.arguments import RESERVED_NAMES
from mlimpute.spec.build import build_spec

impute_mod = importlib.import_module("mlimpute.impute")  # the module, not the function
FAST = {"m": 2, "iterations": 2, "rng": 1}


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MlimputeWarning)
        yield


def frame(n=60, J=6, seed=0):
    """g: cluster; x, z complete numeric; y numeric with about 30% missing."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(J), n // J)
    x = rng.normal(size=n)
    df = pd.DataFrame({"g": g, "x": x, "y": x + rng.normal(size=n), "z": rng.normal(size=n)})
    df.loc[rng.random(n) < 0.3, "y"] = np.nan
    return df


def refuses(exc, *culprits, **kwargs):
    """Run impute(**kwargs) expecting ``exc`` naming every culprit, without any chain."""
    with pytest.raises(exc) as info:
        impute(**kwargs)
    err = info.value
    assert isinstance(err, MlimputeError) and not isinstance(err, ChainError)
    for c in culprits:
        assert c in str(err), (c, str(err))
    return err


# ---- 1. a random part without terms ---------------------------------------------------


@pytest.mark.parametrize("part", ["(0 | g)", "(-1 | g)", "(1 - 1 || g)"])
def test_a_random_part_without_terms_is_a_formula_error(part):
    f = {"y": f"~ x + {part}"}
    refuses(FormulaError, "'y'", "no term", df=frame(), formulas=f, **FAST)
    with pytest.raises(FormulaError, match="no term"):
        build_spec(frame(), f)


def test_a_random_slope_only_still_works():
    imp = impute(frame(), {"y": "~ x + (0 + x | g)"}, **FAST)
    assert imp.complete(1)["y"].notna().all()


def test_a_random_part_whose_columns_are_all_dropped_is_refused_before_the_chains():
    df = frame().assign(c=0.0)  # a zero column: dropped, no random effect left
    refuses(SpecificationError, "'y'", "random", df=df, formulas={"y": "~ x + (0 + c | g)"}, **FAST)


# ---- 2. pandas' nullable dtypes (DataFrame.convert_dtypes) ---------------------------


def nullable(seed=0):
    df = frame(seed=seed)
    k = np.arange(len(df))
    df["i"] = k % 5
    df["b"] = k % 2 == 0
    df["f"] = df["x"].round(1)
    df["s"] = np.array(["a", "b", "c"])[k % 3]
    df["s2"] = np.array(["lo", "hi"])[k % 2]
    return df.convert_dtypes()


def test_convert_dtypes_gives_the_nullable_types_tested_here():
    d = nullable().dtypes
    assert str(d["i"]) == "Int64" and str(d["f"]) == "Float64" and str(d["b"]) == "boolean"
    assert isinstance(d["s"], pd.StringDtype) and d["s"].na_value is pd.NA


@pytest.mark.parametrize("pred", ["s", "i", "b", "f", "s2"])
def test_nullable_predictors_work(pred):
    df = nullable()
    imp = impute(df, {"y": f"~ x + {pred} + (1 | g)"}, **FAST)
    out = imp.complete(1)
    assert out["y"].notna().all()
    pd.testing.assert_series_equal(out[pred], df[pred])  # predictor untouched, same dtype


def test_a_nullable_string_predictor_is_categorical_in_the_design():
    imp = impute(nullable(), {"y": "~ x + s + (1 | g)"}, **FAST)
    names = [str(p) for p in imp.dataset["y:param"].to_numpy()]
    assert any(n.startswith("s[") for n in names), names  # dummy columns, not a number


@pytest.mark.parametrize("col", ["s", "i", "b", "f", "s2"])
@pytest.mark.parametrize("defaults", [True, False])
def test_nullable_columns_can_be_imputed(col, defaults):
    df = nullable()
    df.loc[df.index[::6], col] = pd.NA
    sub = df[["g", "x", "z", col]]
    f = None if defaults else {col: "~ x + z + (1 | g)"}
    imp = impute(sub, f, cluster="g", **FAST)
    out = imp.complete(1)
    assert out[col].dtype == df[col].dtype
    assert out[col].notna().all()
    observed = df[col].notna()
    pd.testing.assert_series_equal(out.loc[observed, col], df.loc[observed, col])
    if col in ("s", "s2"):
        assert set(out[col]) <= set(df[col].dropna())


def test_incomplete_nullable_string_predictor_with_defaults():
    df = nullable()
    df.loc[df.index[::7], "s"] = pd.NA
    imp = impute(df[["g", "x", "y", "s"]], cluster="g", **FAST)
    assert set(imp.variables) == {"y", "s"}
    assert imp.complete(2).notna().all().all()


# ---- 3. object columns of lists or dicts ----------------------------------------------


def with_objects():
    df = frame()
    df["L"] = [[1, 2]] * len(df)
    df["D"] = [{"a": 1}] * len(df)
    df.loc[::5, "L"] = None
    return df


def test_unused_list_and_dict_columns_are_ignored():
    df = with_objects()
    before = df.copy()
    imp = impute(df, {"y": "~ x + (1 | g)"}, **FAST)
    assert imp.variables == ["y"]
    out = imp.complete(1)
    assert out["L"].tolist() == before["L"].tolist() and out["D"].equals(before["D"])


def test_defaults_leave_list_and_dict_columns_out_with_an_event():
    imp = impute(with_objects(), cluster="g", **FAST)
    assert imp.variables == ["y"]
    left = [e for e in imp.events if e.startswith("left out")]
    assert left and "'L'" in left[0] and "'D'" in left[0], imp.events


def test_a_list_column_as_predictor_is_a_dtype_error_naming_it():
    refuses(
        DataTypeError, "'L'", "list", df=with_objects(), formulas={"y": "~ x + L + (1 | g)"}, **FAST
    )


def test_a_list_column_to_impute_is_a_dtype_error_naming_it():
    refuses(
        DataTypeError,
        "'L'",
        "list",
        df=with_objects(),
        formulas={"y": "~ x + (1 | g)", "L": "~ x"},
        **FAST,
    )


def test_mixed_object_column_is_left_out_of_defaults():
    df = frame().assign(M=["a", 1] * 30)
    imp = impute(df, cluster="g", **FAST)
    assert any("'M'" in e for e in imp.events)


# ---- 4. names the result reserves ----------------------------------------------------


@pytest.mark.parametrize("name", sorted(RESERVED_NAMES))
def test_reserved_names_work_as_predictor_and_cluster(name):
    df = frame().rename(columns={"x": name})
    out = impute(df, cluster="g", **FAST).complete(1)
    assert out["y"].notna().all() and list(out.columns) == list(df.columns)
    df = frame().rename(columns={"g": name})
    out = impute(df, cluster=name, **FAST).complete(1)
    assert out["y"].notna().all()


@pytest.mark.parametrize("name", sorted(RESERVED_NAMES))
def test_reserved_names_are_refused_up_front_for_imputed_columns(name):
    df = frame().rename(columns={"y": name})
    err = refuses(SpecificationError, repr(name), "rename", df=df, cluster="g", **FAST)
    assert "df.rename" in str(err)


def test_a_column_named_like_another_columns_result_entry():
    df = frame()
    df["y:row"] = df["y"]
    refuses(SpecificationError, "'y:row'", df=df, cluster="g", **FAST)
    # only a predictor: fine
    df["y:row"] = df["y"].fillna(0.0)
    out = impute(df, {"y": "~ x + `y:row` + (1 | g)"}, **FAST).complete(1)
    assert out["y"].notna().all()


def test_a_predictor_named_intercept_is_refused_by_the_default_models():
    """formulaic merges a column named Intercept with the intercept: the default models
    would lose it silently. Refused, naming the column; exclude= leaves it out."""
    df = frame().rename(columns={"x": "Intercept"})
    with pytest.raises(FormulaError, match=r"'Intercept'.*Rename.*exclude=\['Intercept'\]"):
        impute(df, cluster="g", m=2, iterations=8, rng=1)
    imp = impute(df, cluster="g", exclude=["Intercept"], m=2, iterations=8, rng=1)
    assert len(imp.rhat().data_vars) > 0
    table = rhat_table(imp)
    assert any("Intercept" in str(t) for t in table["trace"])


# ---- 5. arguments of the wrong type ---------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, culprit",
    [
        ({"method": "pmm"}, "method"),
        ({"method": ["pmm"]}, "method"),
        ({"method": {"y": 1}}, "method"),
        ({"m": "5"}, "m"),
        ({"m": 2.0}, "m"),
        ({"m": True}, "m"),
        ({"iterations": 2.5}, "iterations"),
        ({"cluster": ["g", 3]}, "cluster"),  # a list of levels holds column names only
        ({"cluster": [["g"]]}, "cluster"),
        ({"cluster": []}, "cluster"),
        ({"rng": "x"}, "rng"),
        ({"include": {"x"}}, "include"),
        ({"include": {"x": 1}}, "include"),
        ({"include": 3}, "include"),
        ({"exclude": [1]}, "exclude"),
        ({"visit": 1}, "visit"),
        ({"heteroscedastic": 1.5}, "heteroscedastic"),
        ({"heteroscedastic": ["nope"]}, "heteroscedastic"),
        ({"max_categories": 0}, "max_categories"),
        ({"n_jobs": "2"}, "n_jobs"),
        ({"n_jobs": 1.5}, "n_jobs"),
        ({"progress": "yes"}, "progress"),
        ({"formulas": {"y": 3}}, "'y'"),
        ({"formulas": [1]}, "formulas"),
        ({"formulas": {"y ~ x"}}, "formulas"),
    ],
)
def test_wrong_argument_types_name_the_argument(kwargs, culprit):
    kw = {"df": frame(), "cluster": "g", **FAST, **kwargs}
    refuses(SpecificationError, culprit, **kw)


def test_formulas_as_a_list_of_strings_work():
    imp = impute(frame(), ["y ~ x + (1 | g)"], **FAST)
    assert imp.variables == ["y"]


@pytest.mark.parametrize("arg", ["include", "exclude"])
def test_a_lone_string_is_one_column(arg):
    df = frame().assign(xy=np.arange(60.0) % 7)
    df.loc[::4, "xy"] = np.nan
    one = impute(df, cluster="g", **{arg: "xy"}, **FAST).spec.formulas
    listed = impute(df, cluster="g", **{arg: ["xy"]}, **FAST).spec.formulas
    assert one == listed  # not the characters 'x' and 'y'
    assert list(one) == (["xy"] if arg == "include" else ["y"])
    # an unknown lone name is named, not split into letters
    with pytest.raises(SpecificationError, match="'nope'"):
        impute(df, cluster="g", **{arg: "nope"}, **FAST)


def test_heteroscedastic_lone_string_is_one_column_not_a_substring():
    df = frame().rename(columns={"y": "yy"})
    imp = impute(df, cluster="g", heteroscedastic="yy", **FAST)
    assert imp.spec.methods["yy"] == "2l.norm.het"
    with pytest.raises(SpecificationError, match="'y'"):
        impute(df, cluster="g", heteroscedastic="y", **FAST)  # no column 'y'


def test_visit_lone_string():
    assert impute(frame(), cluster="g", visit="y", **FAST).spec.visit == ["y"]


# ---- 6. runs too large for memory ------------------------------------------------------


def test_a_huge_m_is_refused_at_once_with_the_estimate():
    t = time.perf_counter()
    err = refuses(
        SpecificationError,
        "m=1000000000",
        "available",
        "smaller m",
        df=frame(),
        cluster="g",
        m=10**9,
        iterations=20,
        rng=1,
    )
    assert time.perf_counter() - t < 2.0  # no chain, no seed spawning
    assert "GB" in str(err)


def test_huge_iterations_are_refused_too():
    refuses(
        SpecificationError,
        "iterations=",
        "available",
        df=frame(),
        cluster="g",
        m=2,
        iterations=10**11,
        rng=1,
    )


def test_memory_check_uses_the_available_memory(monkeypatch):
    spec = build_spec(frame(), cluster="g", m=100, iterations=10)
    need = sum(impute_mod._estimate_memory(frame(), spec).values())
    monkeypatch.setattr(impute_mod, "_available_memory", lambda: need - 1)
    refuses(SpecificationError, "m=100", df=frame(), cluster="g", m=100, iterations=10, rng=1)
    monkeypatch.setattr(impute_mod, "_available_memory", lambda: None)  # unknown: no check
    impute(frame(), cluster="g", **FAST)


def test_the_estimate_scales_with_m_and_the_imputed_cells():
    df = frame()
    small = impute_mod._estimate_memory(df, build_spec(df, cluster="g", m=10, iterations=10))
    big = impute_mod._estimate_memory(df, build_spec(df, cluster="g", m=20, iterations=10))
    assert big["imputed values"] == 2 * small["imputed values"] > 0
    assert big["traces"] == 2 * small["traces"] > 0


def test_available_memory_is_a_positive_number_here():
    avail = impute_mod._available_memory()
    assert avail is None or avail > 0


# ---- 7. categoricals with many categories ---------------------------------------------


def many_categories(K=80, n=400, ordered=None, seed=0):
    rng = np.random.default_rng(seed)
    df = frame(n=n, J=10, seed=seed)
    c = pd.Series([f"k{v:03d}" for v in rng.integers(0, K, n)])
    if ordered is not None:
        c = c.astype(pd.CategoricalDtype(sorted(c.unique()), ordered=ordered))
    df["c"] = c
    df.loc[::7, "c"] = None
    return df


@pytest.mark.parametrize("ordered", [None, False, True])
def test_an_imputed_categorical_with_too_many_categories_is_refused(ordered):
    df = many_categories(ordered=ordered)
    t = time.perf_counter()
    err = refuses(
        SpecificationError, "'c'", "max_categories=50", "exclude=['c']", df=df, cluster="g", **FAST
    )
    assert time.perf_counter() - t < 2.0
    assert ("threshold" in str(err)) == bool(ordered)


def test_max_categories_can_be_raised():
    df = many_categories(K=8)
    refuses(SpecificationError, "max_categories=5", df=df, cluster="g", max_categories=5, **FAST)
    imp = impute(df[["g", "x", "c"]], {"c": "~ x + (1 | g)"}, max_categories=8, **FAST)
    assert imp.complete(1)["c"].notna().all()


def test_a_complete_categorical_predictor_with_many_categories():
    df = many_categories()
    df["c"] = df["c"].fillna("k000")
    imp = impute(df, cluster="g", **FAST)  # defaults: left out, with an event
    assert "c" not in imp.spec.formulas["y"].split(" + ")
    assert any("'c'" in e and "categories" in e for e in imp.events)
    imp = impute(df, {"y": "~ x + c + (1 | g)"}, **FAST)  # asked for: used
    assert "c" in imp.spec.formulas["y"].split(" + ")


# ---- 8. wide data ----------------------------------------------------------------------


def wide(p, n=200, J=20, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.normal(size=(n, p)), columns=[f"v{k}" for k in range(p)])
    for k in range(10):
        df.loc[rng.random(n) < 0.05, f"v{k}"] = np.nan
    df["g"] = np.repeat(np.arange(J), n // J)
    return df


def test_wide_data_with_defaults_is_refused_quickly_with_advice():
    df = wide(1000)
    t = time.perf_counter()
    refuses(DataError, "saturated", "include=", "exclude=", df=df, cluster="g", **FAST)
    assert time.perf_counter() - t < 5.0  # was 24-60 s of formula parsing


def test_wide_data_with_include_runs():
    df = wide(1000)
    cols = [f"v{k}" for k in range(12)]
    imp = impute(df, cluster="g", include=cols, **FAST)
    assert len(imp.variables) == 10
    assert imp.complete(1)[cols].notna().all().all()


def test_the_callers_frame_is_not_modified():
    df = nullable()
    df.loc[df.index[::6], "s"] = pd.NA
    before = df.copy()
    impute(df, cluster="g", **FAST)
    pd.testing.assert_frame_equal(df, before)


def test_run_options_are_checked_before_the_data(monkeypatch):
    calls = []
    monkeypatch.setattr(impute_mod, "build_spec", lambda *a, **k: calls.append(1))
    with pytest.raises(SpecificationError, match="n_jobs"):
        impute(frame(), cluster="g", n_jobs="all", **FAST)
    assert calls == []


def test_long_sums_reach_formulaic_as_balanced_trees_with_the_same_design():
    from formulaic import model_matrix

    from mlimpute.spec.longsum import balanced_sum

    rng = np.random.default_rng(0)
    names = [f"v{k}" for k in range(40)] + ["cmean(v0)", "a.b"]
    df = pd.DataFrame(rng.normal(size=(50, len(names))), columns=names)
    terms = [f"`{n}`" if not n.isidentifier() else n for n in names]
    flat = " + ".join(terms)
    bal = balanced_sum(flat)
    assert bal != flat and max_depth(bal) <= 7  # log2(42) rounded up, plus one
    a, b = model_matrix(flat, df), model_matrix(bal, df)
    assert list(a.columns) == list(b.columns)
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())
    for other in ["x + y", "x - 1 + " + flat, flat + " + x:y", "I(x**2) + " + flat]:
        assert balanced_sum(other) == other  # only long sums of plain names are rewritten


def max_depth(text):
    depth = best = 0
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        best = max(best, depth)
    return best
