"""Tests of mlimpute.describe: ICC estimator, levels, default model names, input unchanged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlimpute.datasets import classroom
from mlimpute.describe import DEFAULT_MODELS, describe, icc_anova, variable_kind
from mlimpute.errors import DataTypeError, MlimputeError, SpecificationError


def icc_reference(y: np.ndarray, groups: np.ndarray) -> float:
    """Textbook one-way ANOVA ICC, written with a loop over clusters (tests only)."""
    keep = ~np.isnan(y)
    y, groups = y[keep], groups[keep]
    labels = np.unique(groups)
    n_total, n_clusters = y.size, labels.size
    grand = y.mean()
    ssb = ssw = 0.0
    sizes = []
    for label in labels:
        yj = y[groups == label]
        sizes.append(yj.size)
        ssb += yj.size * (yj.mean() - grand) ** 2
        ssw += ((yj - yj.mean()) ** 2).sum()
    msb, msw = ssb / (n_clusters - 1), ssw / (n_total - n_clusters)
    n0 = (n_total - np.sum(np.square(sizes)) / n_total) / (n_clusters - 1)
    s2b = (msb - msw) / n0
    return s2b / (s2b + msw)


@pytest.fixture(scope="module")
def class2() -> pd.DataFrame:
    return classroom(2, rng=1).incomplete


# ------------------------------------------------------------------------------------------
# the ICC estimator
# ------------------------------------------------------------------------------------------


def test_icc_hand_worked_balanced():
    # Cluster means 2 and 6, grand mean 4: MSB = 24, MSW = 1, n0 = 3,
    # s2_b = 23/3, ICC = (23/3) / (23/3 + 1) = 23/26.
    y = np.array([1.0, 2.0, 3.0, 5.0, 6.0, 7.0])
    assert icc_anova(y, np.array([0, 0, 0, 1, 1, 1])) == pytest.approx(23 / 26)


def test_icc_hand_worked_unbalanced():
    # Sizes 2, 3, 1 (N = 6, J = 3): n0 = (6 - 14/6) / 2 = 11/6.
    # Means 2, 6, 10; grand 34/6. SSB = 2(2-34/6)^2 + 3(6-34/6)^2 + (10-34/6)^2 = 136/3.
    # SSW = 2 + 2 + 0 = 4 -> MSW = 4/3, MSB = 68/3.
    y = np.array([1.0, 3.0, 5.0, 6.0, 7.0, 10.0])
    g = np.array([0, 0, 1, 1, 1, 2])
    n0 = 11 / 6
    s2b = (68 / 3 - 4 / 3) / n0
    assert icc_anova(y, g) == pytest.approx(s2b / (s2b + 4 / 3))


def test_icc_matches_loop_reference_on_unbalanced_data_with_missing_values():
    rng = np.random.default_rng(3)
    g = rng.integers(0, 40, size=500)
    y = rng.normal(size=40)[g] + rng.normal(scale=1.5, size=500)
    y[rng.random(500) < 0.3] = np.nan
    assert icc_anova(y, g) == pytest.approx(icc_reference(y, g), rel=1e-12)


def test_icc_recovers_the_population_value():
    # Between variance 1, within 3: ICC 0.25. 400 clusters of 2..30 rows; the sampling
    # sd of the estimate is about 0.02 here, so 0.06 is 3 sd.
    rng = np.random.default_rng(11)
    sizes = rng.integers(2, 31, size=400)
    g = np.repeat(np.arange(400), sizes)
    y = rng.normal(size=400)[g] + rng.normal(scale=np.sqrt(3.0), size=g.size)
    assert icc_anova(y, g) == pytest.approx(0.25, abs=0.06)


def test_icc_can_be_negative_and_is_nan_when_undefined():
    # Identical cluster means, variation only within: MSB = 0 -> negative ICC.
    y = np.array([1.0, 3.0, 1.0, 3.0, 1.0, 3.0])
    g = np.array([0, 0, 1, 1, 2, 2])
    assert icc_anova(y, g) < 0
    assert np.isnan(icc_anova(y, np.zeros(6, dtype=int)))  # one cluster
    assert np.isnan(icc_anova(y, np.arange(6)))  # N = J: no within df
    assert np.isnan(icc_anova(np.ones(6), g))  # no variance at all
    assert np.isnan(icc_anova(np.full(6, np.nan), g))
    # Rows with an unknown cluster (-1) are left out.
    assert icc_anova(np.append(y, 50.0), np.append(g, -1)) == pytest.approx(icc_anova(y, g))


# ------------------------------------------------------------------------------------------
# describe
# ------------------------------------------------------------------------------------------


def test_classroom_with_cluster(class2):
    d = describe(class2, cluster="class")
    assert list(d.index) == list(class2.columns)
    assert d.index.name == "variable"
    assert list(d.columns) == [
        "kind",
        "n",
        "n_missing",
        "pct_missing",
        "mean",
        "sd",
        "levels",
        "icc",
        "level",
        "role",
        "model",
        "note",
    ]
    assert d["role"].tolist() == ["cluster", "level-2", "level-1", "level-1", "level-1"]
    missing = class2.isna().sum()
    assert (d["n_missing"] == missing).all()
    assert (d["n"] + d["n_missing"] == len(class2)).all()
    assert d.loc["grade", "pct_missing"] == pytest.approx(100 * missing["grade"] / 600)
    assert d.loc["grade", "mean"] == pytest.approx(class2["grade"].mean())
    assert d.loc["grade", "sd"] == pytest.approx(class2["grade"].std())
    assert d["level"].tolist() == ["cluster", 2, 1, 1, 1]
    assert d["model"].iloc[1:].tolist() == ["2lonly.norm", "2l.bin", "2l.norm", "2l.norm"]
    assert pd.isna(d.loc["class", "model"])
    assert d.loc["class", "levels"].startswith("30 clusters, size 20-20")
    assert d.loc["gender", "levels"] == (
        f"0: {(class2['gender'] == 0).sum()}, 1: {(class2['gender'] == 1).sum()}"
    )
    codes = class2["class"].to_numpy()
    for v in ("grade", "relation", "gender"):
        assert d.loc[v, "icc"] == pytest.approx(
            icc_reference(class2[v].to_numpy(dtype=float), codes)
        )
    assert d.loc[["class", "skill"], "icc"].isna().all()


def test_without_cluster_everything_is_level_one(class2):
    d = describe(class2)
    assert (d["level"] == 1).all()
    assert d["icc"].isna().all()
    # the class numbers are whole non-negative values with many distinct values: counts
    assert d["model"].tolist() == ["pmm", "norm", "bin", "norm", "norm"]


def test_kinds_and_model_names():
    n = 12
    cls = np.repeat([1, 2, 3], 4)
    df = pd.DataFrame(
        {
            "cls": cls,
            "x": np.arange(n) + 0.5,  # measured values (np.arange(n) would be a row number)
            "flag": np.arange(n) % 2 == 0,
            "sex": np.where(np.arange(n) % 2 == 0, "f", "m"),
            "two": pd.Categorical(np.where(np.arange(n) % 3 == 0, "a", "b")),
            "ord": pd.Categorical(np.arange(n) % 3, categories=[0, 1, 2], ordered=True),
            "nom": pd.Categorical(list("abcdefghiabc")),
            "when": pd.date_range("2024-01-01", periods=n),
            "z2": np.array([0.5, 1.5, 2.5])[cls - 1],  # level 2 numeric
            "b2": np.array([0, 1, 0])[cls - 1],  # level 2 binary
        }
    )
    d = describe(df, cluster="cls")
    assert d["kind"].tolist() == [
        "numeric",
        "numeric",
        "binary",
        "binary",
        "binary",
        "ordinal",
        "nominal",
        "other",
        "numeric",
        "binary",
    ]
    assert d["model"].iloc[1:].tolist()[:6] == [
        "2l.norm",
        "2l.bin",
        "2l.bin",
        "2l.bin",
        "2l.ordinal",
        "2l.nominal",
    ]
    assert pd.isna(d.loc["when", "model"])
    assert d.loc["z2", "model"] == "2lonly.norm" and d.loc["z2", "level"] == 2
    assert d.loc["b2", "model"] == "2lonly.bin" and d.loc["b2", "level"] == 2
    assert d.loc["flag", "mean"] == pytest.approx(0.5)
    assert np.isnan(d.loc["two", "mean"]) and np.isnan(d.loc["two", "icc"])
    assert d.loc["two", "levels"] == "a: 4, b: 8"
    assert d.loc["ord", "levels"] == "0: 4, 1: 4, 2: 4"
    assert d.loc["nom", "levels"].endswith("... (+3 more)")
    assert d.loc["nom", "levels"].startswith("a: 2, b: 2, c: 2, d: 1")
    single = describe(df.drop(columns="when"))
    # without a cluster, cls (codes 1, 2, 3) is a variable: integer codes -> pmm
    assert single["model"].tolist() == [
        "pmm",
        "norm",
        "bin",
        "bin",
        "bin",
        "ordinal",
        "nominal",
        "norm",
        "bin",
    ]
    assert set(single["model"]) <= set(DEFAULT_MODELS.values()) | {"pmm"}


def test_variable_kind():
    assert variable_kind(pd.Series([0, 1, 1, None])) == "binary"
    assert variable_kind(pd.Series([0, 1, 2])) == "numeric"
    assert variable_kind(pd.Series([True, False])) == "binary"
    assert variable_kind(pd.Series(["a", "b", None, "a"])) == "binary"
    assert variable_kind(pd.Series(["a", "b", "c"])) == "nominal"
    assert variable_kind(pd.Series([np.nan, np.nan])) == "numeric"


def test_level_two_with_whole_clusters_missing():
    cls = np.repeat(np.arange(6), 5)
    z = np.array([1.0, 2.0, np.nan, 4.0, np.nan, 6.0])[cls]
    y = np.arange(30, dtype=float)
    y[[1, 7]] = np.nan
    d = describe(pd.DataFrame({"g": cls, "z": z, "y": y}), cluster="g")
    assert d.loc["z", "level"] == 2 and d.loc["z", "n_missing"] == 10
    assert d.loc["y", "level"] == 1
    # Observed at most once per cluster: nothing varies within a cluster, but nothing
    # shows it is constant either -> level 1.
    once = pd.DataFrame({"g": [1, 1, 2, 2], "w": [1.0, np.nan, 2.0, np.nan]})
    assert describe(once, cluster="g").loc["w", "level"] == 1


def test_missing_cluster_ids_are_left_out_of_icc_and_level():
    df = pd.DataFrame(
        {
            "g": [1, 1, 2, 2, np.nan, np.nan],
            "x": [1.0, 2.0, 5.0, 6.0, 50, -50],
            "c": [1.0, 1.0, 2.0, 2.0, 7.0, 8.0],
        }
    )
    d = describe(df, cluster="g")
    assert d.loc["g", "n_missing"] == 2
    assert d.loc["x", "icc"] == pytest.approx(
        icc_anova(np.array([1.0, 2, 5, 6]), np.array([0, 0, 1, 1]))
    )
    assert d.loc["c", "level"] == 2


def test_non_string_labels_and_empty_frame():
    df = pd.DataFrame({0: [1, 1, 2, 2], 1: [0.1, 0.4, 0.3, 0.9]})
    d = describe(df, cluster=0)
    assert d.loc[0, "level"] == "cluster" and d.loc[1, "level"] == 1
    empty = describe(pd.DataFrame({"a": pd.Series([], dtype=float)}))
    assert empty.loc["a", "n"] == 0 and np.isnan(empty.loc["a", "pct_missing"])
    assert describe(pd.DataFrame(index=range(3))).shape == (0, 12)


def test_errors_name_the_column(class2):
    with pytest.raises(SpecificationError, match="'school'"):
        describe(class2, cluster="school")
    with pytest.raises(SpecificationError, match="several"):
        describe(pd.DataFrame([[1, 2]], columns=["a", "a"]), cluster="a")
    with pytest.raises(SpecificationError):
        describe(class2, cluster={"class"})  # a list gives nested levels
    with pytest.raises(DataTypeError):
        describe(class2["grade"])
    with pytest.raises(MlimputeError):
        describe(class2, cluster="nope")


def test_input_is_not_modified(class2):
    df = class2.assign(cat=pd.Categorical(np.where(class2["gender"] == 1, "f", "m")))
    before = df.copy(deep=True)
    describe(df, cluster="class")
    df.mi.describe(cluster="class")
    pd.testing.assert_frame_equal(df, before)


def test_accessor_delegates(class2):
    import mlimpute  # noqa: F401  (registers .mi)

    pd.testing.assert_frame_equal(
        class2.mi.describe(cluster="class"), describe(class2, cluster="class")
    )
    pd.testing.assert_frame_equal(class2.mi.describe(), describe(class2))


def test_roles_identifiers_and_codes_as_impute_sees_them():
    # brandsma-like: a pupil number unique over the data, a pupil number within the
    # school (1..n_j, more than 10 pupils), a denomination coded 1-4 at the school level
    rng = np.random.default_rng(5)
    sizes = rng.integers(8, 20, 15)
    sch = np.repeat(np.arange(15), sizes)
    den = rng.integers(1, 5, 15)[sch].astype(float)
    den[np.isin(sch, [3, 7])] = np.nan
    df = pd.DataFrame(
        {
            "sch": sch,
            "pup": np.arange(sch.size) + 1,
            "student": np.concatenate([np.arange(1, s + 1) for s in sizes]),
            "den": den,
            "score": rng.normal(size=sch.size),
        }
    )
    d = describe(df, cluster="sch")
    assert d["role"].tolist() == ["cluster", "identifier", "identifier", "level-2", "level-1"]
    assert d.loc["pup", "note"] == "identifier: a different value in every row"
    assert "1..n_j" in d.loc["student", "note"]
    assert d.loc[["pup", "student"], "model"].isna().all()
    assert d.loc[["pup", "student"], "icc"].isna().all()  # was 0.9999 for the pupil number
    assert pd.isna(d.loc["pup", "level"])
    assert d.loc["den", "model"] == "2lonly.pmm" and d.loc["den", "level"] == 2
    assert d.loc["den", "note"].startswith("integer codes (4 values)")
    assert d.loc["score", "model"] == "2l.norm" and pd.isna(d.loc["score", "note"])


def test_getting_started_shows_the_columns_describe_returns():
    # the table printed in docs/getting_started.md is describe()'s real output
    from pathlib import Path

    from mlimpute.datasets import classroom

    text = (Path(__file__).parents[1] / "docs" / "getting_started.md").read_text()
    block = text.split('df.mi.describe(cluster="class")', 1)[1].split("```text\n", 1)[1]
    header = block.split("\n", 1)[0].split()
    df = classroom(2, rng=1).incomplete
    assert header == list(df.mi.describe(cluster="class").columns)


def _schools_of_classes(seed=21, S=30, C=4, P=6):
    r = np.random.default_rng(seed)
    school = np.repeat(np.arange(S), C * P)
    klass = np.tile(np.repeat(np.arange(1, C + 1), P), S)
    k = school * C + klass - 1
    return pd.DataFrame({"school": school, "class": klass, "x": r.normal(size=school.size)}), k, r


def test_the_school_share_of_a_class_level_column_uses_each_classs_observed_value():
    """One value per class: the first observed one, not the first row's (missing there,
    the class dropped out although its other rows tell its value)."""
    df, k, r = _schools_of_classes()
    df["size"] = (r.normal(size=120) + np.repeat(r.normal(size=30), 4))[k]
    full = describe(df, cluster=["school", "class"]).loc["size", "icc(school)"]
    first = ~pd.Series(k).duplicated().to_numpy()
    df.loc[first & (k % 2 == 0), "size"] = np.nan  # first row of every other class
    d = describe(df, cluster=["school", "class"])
    assert d.loc["size", "level"] == 2
    assert d.loc["size", "icc(school)"] == pytest.approx(full, abs=1e-12)


def test_the_school_share_of_a_class_level_column_is_not_negative():
    """As the level-1 columns' shares (icc_nested), a negative estimate counts as 0."""
    df, k, r = _schools_of_classes()
    size = np.zeros(120)
    size[::2], size[1::2] = -1.0, 1.0  # the same mean in every school: MSB = 0 < MSW
    df["size"] = size[k]
    icc = describe(df, cluster=["school", "class"]).loc["size", "icc(school)"]
    assert icc == 0.0
    assert icc_anova(size, np.repeat(np.arange(30), 4)) < 0  # the raw estimate
