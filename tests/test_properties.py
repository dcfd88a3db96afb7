"""Property tests of the data contract (issue 11, item 4).

For random small two-level data sets — 2-8 clusters of 1-6 rows, 1-3 incomplete columns of
random dtype (float64, float32, Int64, UInt8, nullable boolean, ordered and unordered
categoricals with 2-4 categories, 0/1 floats; numpy bool cannot hold a missing value, so it
appears as a complete predictor), random missingness with at least two distinct observed
values per column, random cluster ids (int, string, float, categorical), row order and index
type — every completed data set must equal the input on its observed cells, have no missing
value left in an imputed variable, and keep the dtypes (categories and their order), the
index and the column order; the input must be unchanged afterwards.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

import mlimpute  # noqa: F401  (registers df.mi)
from mlimpute.errors import DataError, MlimputeWarning, SpecificationError

DTYPES = ("float64", "float32", "Int64", "UInt8", "boolean", "ordered", "unordered", "binary01")
INDEXES = ("range", "shuffled", "strings", "multi")

# m = 2, iterations = 2 as the issue asks; an example takes ~0.06 s, so 200 examples per
# test keep the file under ~30 s.
SETTINGS = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,  # reproducible CI
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _column(draw, kind: str, n: int, rng: np.random.Generator) -> pd.Series:
    """A column of ``kind`` with n values, before missingness."""
    if kind == "float64":
        return pd.Series(rng.normal(size=n).round(3))
    if kind == "float32":
        return pd.Series(rng.normal(size=n).round(3), dtype="float32")
    if kind == "Int64":
        return pd.Series(rng.integers(-5, 20, n), dtype="Int64")
    if kind == "UInt8":  # small counts: normal-model draws below 0 are clipped
        return pd.Series(rng.integers(0, 4, n), dtype="UInt8")
    if kind == "boolean":
        return pd.Series(rng.random(n) < 0.5, dtype="boolean")
    if kind == "binary01":
        return pd.Series((rng.random(n) < 0.5).astype(float))
    k = draw(st.integers(2, 4), label="n_categories")
    cats = [f"k{i}" for i in range(k)]
    if draw(st.booleans(), label="shuffled categories"):
        cats = list(rng.permutation(cats))
    codes = rng.integers(0, k, n)
    return pd.Series(pd.Categorical.from_codes(codes, categories=cats, ordered=kind == "ordered"))


def _two_observed_values(s: pd.Series, miss: np.ndarray, keep: int) -> None:
    """Observe a second, different value next to row ``keep`` (in place).

    A column with a single observed value is refused (a DataError naming it, tested in
    ``test_robustness.py``); the property is about the columns that can be imputed.
    """
    observed = s[~miss]
    if observed.nunique() > 1:
        return
    other = (keep + 1) % len(s)
    value = s.iloc[keep]
    if isinstance(s.dtype, pd.CategoricalDtype):
        cats = s.cat.categories
        new = cats[(cats.get_loc(value) + 1) % len(cats)]
    elif s.dtype == "boolean":
        new = not value
    elif set(observed) <= {0.0, 1.0}:
        new = 1.0 - value
    else:
        new = value + 1
    miss[other] = False
    s.iloc[other] = new
    if not miss.any():  # n = 2: the column is complete, and not imputed
        miss[[i for i in range(len(s)) if i not in (keep, other)][:1]] = True


@st.composite
def datasets(draw):
    """(frame, incomplete column names)."""
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    sizes = draw(st.lists(st.integers(1, 6), min_size=2, max_size=8), label="cluster sizes")
    n = sum(sizes)
    g = np.repeat(np.arange(len(sizes)), sizes)
    frame = {"g": g, "x": rng.normal(size=n).round(3)}
    if draw(st.booleans(), label="complete bool predictor"):
        frame["flag"] = rng.random(n) < 0.5
    kinds = draw(st.lists(st.sampled_from(DTYPES), min_size=1, max_size=3), label="dtypes")
    names = [f"v{i}_{k}" for i, k in enumerate(kinds)]
    for name, kind in zip(names, kinds, strict=True):
        s = _column(draw, kind, n, rng)
        p = draw(st.sampled_from([0.1, 0.3, 0.6, 0.9]), label="p_missing")
        miss = rng.random(n) < p
        miss[rng.integers(n)] = True  # at least one missing...
        keep = rng.integers(n)
        miss[keep] = False  # ...and one observed (n >= 2: clusters of >= 1 row, >= 2 clusters)
        if not miss.any():
            miss[(keep + 1) % n] = True
        _two_observed_values(s, miss, keep)
        s[miss] = None
        frame[name] = s.to_numpy() if kind in ("float64", "float32", "binary01") else s.array
    df = pd.DataFrame(frame)
    order = draw(st.permutations(list(df.columns)), label="column order")
    df = df[list(order)]
    ids = draw(st.sampled_from(["int", "string", "float", "categorical"]), label="cluster ids")
    if ids == "string":
        df["g"] = "c" + df["g"].astype(str)
    elif ids == "float":
        df["g"] = df["g"] * 0.5 - 1
    elif ids == "categorical":
        df["g"] = pd.Categorical(df["g"], categories=np.arange(len(sizes))[::-1])
    if draw(st.booleans(), label="shuffle rows"):
        df = df.iloc[rng.permutation(n)]
    kind = draw(st.sampled_from(INDEXES), label="index")
    if kind == "range":
        df = df.reset_index(drop=True)
    elif kind == "shuffled":
        df.index = pd.Index(rng.permutation(n) * 3 + 7)
    elif kind == "strings":
        df.index = pd.Index([f"row{i}" for i in rng.permutation(n)], name="id")
    else:
        df.index = pd.MultiIndex.from_arrays(
            [rng.integers(0, 3, n), rng.permutation(n)], names=["a", "b"]
        )
    return df, [c for c in names if df[c].isna().any()]


def _formulas(df: pd.DataFrame, names: list[str]) -> dict[str, str]:
    """Random-intercept formulas: every other column as a predictor, (1 | g)."""
    out = {}
    for v in names:
        rhs = [c for c in df.columns if c not in (v, "g")]
        out[v] = "~ " + " + ".join(rhs) + " + (1 | g)"
    return out


def check_contract(df: pd.DataFrame, before: pd.DataFrame, imp) -> None:
    pd.testing.assert_frame_equal(df, before)  # the input is unchanged
    observed = before.notna()
    for i in range(1, imp.m + 1):
        out = imp.complete(i)
        assert list(out.columns) == list(before.columns)
        pd.testing.assert_index_equal(out.index, before.index, exact=True)
        pd.testing.assert_series_equal(out.dtypes, before.dtypes)
        for c in before.columns:
            if isinstance(before[c].dtype, pd.CategoricalDtype):
                assert list(out[c].cat.categories) == list(before[c].cat.categories)
                assert out[c].cat.ordered == before[c].cat.ordered
        for v in imp.variables:
            assert out[v].notna().all(), v
            if v.endswith("binary01"):
                assert set(out[v].unique()) <= {0.0, 1.0}, v
        # observed cells are kept exactly; cells left missing stay missing
        pd.testing.assert_frame_equal(out.where(observed), before.where(observed))
        not_imputed = [c for c in before.columns if c not in imp.variables]
        pd.testing.assert_frame_equal(out[not_imputed], before[not_imputed])


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MlimputeWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _impute(df, formulas=None, **kwargs):
    try:
        return df.mi.impute(formulas, m=2, iterations=2, rng=1, **kwargs)
    except DataError as exc:
        # a model with no more observed rows than fixed effects is refused up front, naming
        # the column (test_saturated_numeric_model): not a contract violation
        if "saturated" in str(exc):
            reject()
        raise


# Slow (~14 s alone, 40 s on a busy machine): the random-intercept property test below
# keeps the data contract in the default suite; default models are also checked on
# fixed data in test_levels.py and test_robustness.py.
@pytest.mark.slow
@SETTINGS
@given(datasets())
def test_defaults_keep_the_data_contract(case):
    df, names = case
    before = df.copy(deep=True)
    imp = _impute(df, cluster="g")
    assert set(imp.variables) == set(names)
    check_contract(df, before, imp)


@SETTINGS
@given(datasets())
def test_random_intercept_formulas_keep_the_data_contract(case):
    df, names = case
    before = df.copy(deep=True)
    imp = _impute(df, _formulas(df, names))
    assert imp.variables == names
    check_contract(df, before, imp)


# --------------------------------------------------------------------------------------
# failures hypothesis found, shrunk to small examples (regression tests)


@pytest.mark.parametrize("ordered", [True, False], ids=["ordinal", "nominal"])
@pytest.mark.parametrize("how", ["defaults", "formula"])
def test_one_observed_category_of_three(ordered, how):
    df = pd.DataFrame(
        {
            "g": [0, 1],
            "x": [0.1, -0.1],
            "v": pd.Categorical([None, "k0"], categories=["k0", "k1", "k2"], ordered=ordered),
        }
    )
    formulas = None if how == "defaults" else {"v": "~ x + (1 | g)"}
    try:
        imp = df.mi.impute(formulas, cluster="g", m=2, iterations=2, rng=1)
    except (DataError, SpecificationError) as exc:  # a clear error would do too
        assert "'v'" in str(exc)
        return
    assert (imp.complete(1)["v"] == "k0").all()


def _saturated_frame(n_obs: int) -> pd.DataFrame:
    """y observed on ``n_obs`` rows, two predictors: n_obs = 3 fixed effects saturate."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "g": np.repeat([0, 1], 4),
            "x": rng.normal(size=8),
            "z": rng.normal(size=8),
            "y": rng.normal(size=8),
        }
    )
    df.loc[df.index[n_obs:], "y"] = np.nan
    return df


@pytest.mark.parametrize(
    ("method", "formula"),
    [
        ("2l.norm", "~ x + z + (1 | g)"),
        ("2l.pmm", "~ x + z + (1 | g)"),
        ("2l.norm.het", "~ x + z + (1 | g)"),
        ("norm", "~ x + z"),
        ("pmm", "~ x + z"),
    ],
)
def test_saturated_numeric_model(method, formula):
    df = _saturated_frame(n_obs=3)
    try:
        imp = df.mi.impute({"y": formula}, method={"y": method}, m=2, iterations=5, rng=1)
    except (DataError, SpecificationError) as exc:  # a clear error would do too
        assert "'y'" in str(exc)
        return
    s2 = imp.dataset["y:params"].sel({"y:param": "var(Residual)"}).values
    assert s2.min() > 1e-6 * np.var(df["y"].dropna())


def test_one_more_observed_row_than_fixed_effects_is_fine():
    df = _saturated_frame(n_obs=5)
    imp = df.mi.impute({"y": "~ x + z + (1 | g)"}, m=2, iterations=5, rng=1)
    s2 = imp.dataset["y:params"].sel({"y:param": "var(Residual)"}).values
    assert s2.min() > 1e-6 * np.var(df["y"].dropna())


def test_saturated_model_found_by_hypothesis():
    na = None
    df = pd.DataFrame(
        {
            "g": [0, 0, 1, 2, 3, 4, 4, 4, 4, 4, 5, 5, 5, 6, 7, 7],
            "x": [
                0.982,
                -0.645,
                -0.782,
                0.822,
                -0.736,
                1.383,
                0.27,
                0.275,
                0.368,
                -0.777,
                -0.486,
                -2.209,
                0.101,
                -0.398,
                -1.144,
                -0.235,
            ],
            "v0_ordered": pd.Categorical(
                [
                    "k2",
                    "k1",
                    "k1",
                    "k2",
                    "k1",
                    na,
                    "k2",
                    "k2",
                    "k2",
                    "k1",
                    "k0",
                    "k1",
                    "k1",
                    "k1",
                    na,
                    "k1",
                ],
                categories=["k0", "k2", "k1"],
                ordered=True,
            ),
            "v1_ordered": pd.Categorical(
                [
                    "k1",
                    "k0",
                    na,
                    na,
                    "k0",
                    na,
                    na,
                    na,
                    "k1",
                    na,
                    "k1",
                    "k1",
                    "k0",
                    "k1",
                    "k0",
                    "k1",
                ],
                categories=["k0", "k1"],
                ordered=True,
            ),
            "v2_Int64": pd.array(
                [na, 18, 18, -2, -5, na, na, na, na, 18, 16, na, na, na, 15, na], dtype="Int64"
            ),
        }
    )
    try:
        imp = df.mi.impute(cluster="g", m=2, iterations=2, rng=1)
    except (DataError, SpecificationError) as exc:  # a clear error would do too
        assert "'v2_Int64'" in str(exc)
        return
    s2 = imp.dataset["v2_Int64:params"].sel({"v2_Int64:param": "var(Residual)"}).values
    assert s2.min() > 1e-6 * np.var(df["v2_Int64"].dropna().to_numpy(dtype=float))


def test_exact_fit_in_singleton_clusters():
    df = pd.DataFrame(
        {
            "g": range(6),
            "x": [0.1, 0.5, -1.0, 2.0, 0.3, -0.7],
            "y": [np.nan, 2.0, -1.0, 5.0, 1.6, -0.4],
        }
    )  # y = 1 + 2x
    try:
        imp = df.mi.impute({"y": "~ x + (1 | g)"}, m=1, iterations=3, rng=1)
    except (DataError, SpecificationError) as exc:  # a clear error would do too
        assert "'y'" in str(exc)
        return
    assert np.isfinite(imp.dataset["y"].values).all()


def test_exact_fit_in_singleton_clusters_found_by_hypothesis():
    na = None
    df = pd.DataFrame(
        {
            "g": [0, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5],
            "x": [
                0.022,
                -1.141,
                0.725,
                -0.728,
                -0.093,
                0.583,
                -1.274,
                1.921,
                -0.253,
                -1.218,
                -0.579,
                -0.409,
                -1.117,
                0.213,
                -0.102,
                0.650,
                1.557,
                -0.406,
                0.021,
                -0.479,
                0.350,
            ],
            "v0_boolean": pd.array(
                [
                    True,
                    False,
                    False,
                    False,
                    True,
                    True,
                    na,
                    True,
                    False,
                    False,
                    False,
                    na,
                    False,
                    na,
                    na,
                    na,
                    True,
                    True,
                    False,
                    na,
                    True,
                ],
                dtype="boolean",
            ),
            "v1_Int64": pd.array(
                [
                    na,
                    na,
                    10,
                    na,
                    na,
                    14,
                    na,
                    na,
                    na,
                    na,
                    10,
                    na,
                    na,
                    na,
                    14,
                    na,
                    14,
                    na,
                    na,
                    na,
                    na,
                ],
                dtype="Int64",
            ),
        }
    )
    before = df.copy(deep=True)
    imp = df.mi.impute(_formulas(df, ["v0_boolean", "v1_Int64"]), m=2, iterations=2, rng=1)
    check_contract(df, before, imp)
