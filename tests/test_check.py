"""imp.check(): posterior-predictive checks and over-imputation coverage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mlimpute
from mlimpute.errors import SpecificationError


def _clustered(seed=4, J=30, n_j=20, tau=1.5):
    """A level-1 predictor and an outcome with a large cluster variance (ICC about 0.7)."""
    g = np.random.default_rng(seed)
    cls = np.repeat(np.arange(J), n_j)
    x = g.normal(size=cls.size)
    y = 0.5 * x + tau * g.normal(size=J)[cls] + g.normal(size=cls.size)
    y[g.random(cls.size) < 0.3] = np.nan
    return pd.DataFrame({"class": cls, "x": x, "y": y})


@pytest.fixture(scope="module")
def data():
    return _clustered()


@pytest.fixture(scope="module")
def right(data):
    return mlimpute.impute(data, {"y": "~ x + (1 | class)"}, m=5, iterations=10, rng=1)


@pytest.fixture(scope="module")
def wrong(data):
    return mlimpute.impute(data, {"y": "~ x"}, m=5, iterations=10, rng=1)


def _extreme_means(table) -> float:
    p = table[(table["check"] == "mean") & (table["cluster"] != "all")]["p_value"]
    return float(((p < 0.025) | (p > 0.975)).mean())


def test_table_layout_and_determinism(right):
    t = right.check(rng=1)
    assert list(t.columns) == [
        "variable",
        "check",
        "cluster",
        "observed",
        "replicated",
        "p_value",
        "n",
    ]
    assert set(t["check"]) == {"mean", "sd", "icc", "coverage"}
    per = t[(t["check"] == "mean") & (t["cluster"] != "all")]
    assert len(per) == 30 and per["n"].sum() == right.data["y"].notna().sum()
    assert t.attrs["level"] == 0.9 and t.attrs["cluster"] == "class"
    pd.testing.assert_frame_equal(t, right.check(rng=1))
    assert not t.equals(right.check(rng=2))


def test_coverage_near_nominal_with_the_right_model(right):
    t = right.check(rng=3, share=1.0)
    cov = t[(t["check"] == "coverage") & (t["cluster"] == "all")].iloc[0]
    n = cov["n"]
    assert n == right.data["y"].notna().sum()
    # binomial MC error of a coverage over n cells: sqrt(0.9 * 0.1 / n) (0.015 here); 3.5 SE
    # (cells share the parameters and the intervals come from 200 draws each, which the
    # binomial bound ignores; 3.5 rather than 3 leaves room for that)
    assert abs(cov["observed"] - 0.9) < 3.5 * np.sqrt(0.9 * 0.1 / n)


def test_single_level_model_of_clustered_data_fails_the_cluster_means(right, wrong):
    good = right.check(rng=1)
    bad = wrong.check(rng=1, cluster="class")
    # with the right model a cluster's mean is rarely outside the central 95 % of its
    # replicates (posterior-predictive p-values are conservative: under 5 % on average,
    # so at most 6 of 30 clusters allows a binomial(30, 0.05) excess with p < 0.001); a
    # single-level model puts every cluster at the overall mean, and with an ICC of 0.7
    # most clusters fall outside
    assert _extreme_means(good) <= 0.2
    assert _extreme_means(bad) >= 0.5
    icc_bad = bad[bad["check"] == "icc"].iloc[0]
    assert icc_bad["p_value"] < 0.01 and icc_bad["replicated"] < icc_bad["observed"] / 2
    icc_good = good[good["check"] == "icc"].iloc[0]
    assert 0.01 < icc_good["p_value"] < 0.99


def test_without_a_cluster_only_whole_variable_rows(wrong):
    t = wrong.check(rng=1)
    assert set(t["cluster"]) == {"all"}
    assert set(t["check"]) == {"mean", "sd", "coverage"}


def test_binary_variable_is_checked_on_its_proportions(data):
    df = data.copy()
    g = np.random.default_rng(2)
    df["b"] = (df["x"] + g.normal(size=len(df)) > 0).astype(float)
    df.loc[g.random(len(df)) < 0.2, "b"] = np.nan
    imp = mlimpute.impute(
        df,
        {"y": "~ x + b + (1 | class)", "b": "~ x + y + (1 | class)"},
        m=2,
        iterations=3,
        rng=1,
    )
    t = imp.check(rng=1, replicates=5)
    tb = t[t["variable"] == "b"]
    assert "coverage" not in set(tb["check"])
    assert tb[tb["check"] == "mean"]["observed"].between(0, 1).all()  # proportions


def test_refusals(right):
    with pytest.raises(SpecificationError, match="share"):
        right.check(share=0)
    with pytest.raises(SpecificationError, match="level"):
        right.check(level=1.5)
    with pytest.raises(SpecificationError, match="replicates"):
        right.check(replicates=0)
    with pytest.raises(SpecificationError, match="'nope'"):
        right.check(cluster="nope")
    bare = mlimpute.MultiplyImputed(right.dataset, right.data, right.spec)
    with pytest.raises(SpecificationError, match="where every chain stopped"):
        bare.check()


def test_plot_check(right):
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    t = right.check(rng=1)
    fig = right.plot.check(t)
    assert len(fig.axes) == 3
    assert "coverage" in fig.axes[2].get_title()
    plt.close(fig)
    with pytest.raises(SpecificationError, match="not both"):
        right.plot.check(t, rng=1)


def test_level2_variable_is_checked_over_clusters(data):
    df = data.copy()
    g = np.random.default_rng(3)
    w = g.normal(size=30)
    df["w"] = w[df["class"]]
    df.loc[df["class"].isin([0, 1, 2, 3]), "w"] = np.nan
    imp = mlimpute.impute(
        df, {"w": "~ 1", "y": "~ x + w + (1 | class)"}, m=2, iterations=2, rng=1, cluster="class"
    )
    t = imp.check(rng=1, replicates=5)
    tw = t[t["variable"] == "w"]
    assert set(tw["cluster"]) == {"all"}
    assert tw[tw["check"] == "mean"]["n"].iloc[0] == 26  # one value per observed cluster
    assert set(t[t["variable"] == "y"]["check"]) == {"mean", "sd", "icc", "coverage"}


def _three_level(seed=6, S=40, C=4, P=10):
    """Pupils in classes (ids 0..3 repeated in every school) in schools: variances school
    0.5, class 0.3, residual 1; y and x 30 % missing, a class-level z and a school-level w
    20 % missing."""
    g = np.random.default_rng(seed)
    school = np.repeat(np.arange(S), C * P)
    cls = np.tile(np.repeat(np.arange(C), P), S)
    k = school * C + cls
    z = g.normal(size=S * C)[k]
    w = g.normal(size=S)[school]
    x = g.normal(size=k.size) + 0.5 * g.normal(size=S)[school]
    e_s, e_c = g.normal(0, 0.5**0.5, S)[school], g.normal(0, 0.3**0.5, S * C)[k]
    y = 0.5 * x + 0.3 * z + 0.3 * w + e_s + e_c + g.normal(size=k.size)
    df = pd.DataFrame({"school": school, "class": cls, "x": x, "y": y, "z": z, "w": w})
    df.loc[g.random(k.size) < 0.3, "y"] = np.nan
    df.loc[g.random(k.size) < 0.3, "x"] = np.nan
    df.loc[(g.random(S * C) < 0.2)[k], "z"] = np.nan
    df.loc[(g.random(S) < 0.2)[school], "w"] = np.nan
    return df


def test_three_level_imputation_is_checked_per_class_and_at_each_level():
    df = _three_level()
    imp = df.mi.impute(cluster=["school", "class"], m=4, iterations=10, rng=1)
    assert {v.name: v.level for v in imp.spec.variables} == {"x": 1, "y": 1, "z": 2, "w": 3}
    t = imp.check(rng=1, share=1.0)
    pd.testing.assert_frame_equal(t, imp.check(rng=1, share=1.0))
    # level-1 variables per class of the innermost factor (labels school:class: the class
    # ids repeat across schools), class- and school-level variables over their clusters
    per = t[(t["variable"] == "y") & (t["check"] == "mean") & (t["cluster"] != "all")]
    assert len(per) == 160 and per["n"].sum() == df["y"].notna().sum()
    assert set(per["cluster"]) == {f"{s}:{c}" for s in range(40) for c in range(4)}
    for name, n in (
        ("z", df.groupby(["school", "class"])["z"].first().notna().sum()),
        ("w", df.groupby("school")["w"].first().notna().sum()),
    ):
        rows = t[t["variable"] == name]
        assert set(rows["cluster"]) == {"all"} and "icc" not in set(rows["check"])
        assert rows[rows["check"] == "mean"]["n"].iloc[0] == n
    # replicated data drawn from each model at its own level: the observed overall means
    # and SDs are ordinary draws of their replicated distributions (a school-level model
    # refreshed with the classes' design puts w's replicated mean near 1.4, p = 1)
    whole = t[(t["cluster"] == "all") & t["check"].isin(["mean", "sd"])]
    assert whole["p_value"].between(0.01, 0.99).all(), whole
    # over-imputation of every observed cell: binomial MC error sqrt(0.9 * 0.1 / n) of a
    # coverage over n cells; 3.5 SE as in the two-level test above
    for name in ("x", "y"):
        cov = t[(t["variable"] == name) & (t["check"] == "coverage") & (t["cluster"] == "all")]
        n = cov["n"].iloc[0]
        assert abs(cov["observed"].iloc[0] - 0.9) < 3.5 * np.sqrt(0.9 * 0.1 / n)
    assert _extreme_means(t[t["variable"] == "y"]) <= 0.2


def test_crossed_factors_are_checked_per_cluster_of_the_first():
    g = np.random.default_rng(3)
    n = 1500
    s, h = g.integers(0, 30, n), g.integers(0, 20, n)
    x = g.normal(size=n)
    y = x + g.normal(0, 0.5, 30)[s] + g.normal(0, 0.5, 20)[h] + g.normal(size=n)
    y[g.random(n) < 0.3] = np.nan
    df = pd.DataFrame({"school": s, "hood": h, "x": x, "y": y})
    imp = df.mi.impute({"y": "~ x + (1 | school) + (1 | hood)"}, m=3, iterations=10, rng=1)
    t = imp.check(rng=1)
    assert t.attrs["cluster"] == "school"
    assert len(t[(t["check"] == "mean") & (t["cluster"] != "all")]) == 30
    # the model's replicates reproduce the observed whole-variable statistics (p-values
    # away from 0 and 1) and cover about 90 % of the over-imputed cells (3.5 binomial SE)
    whole = t[(t["cluster"] == "all") & t["check"].isin(["mean", "sd", "icc"])]
    assert whole["p_value"].between(0.01, 0.99).all(), whole
    cov = t[(t["check"] == "coverage") & (t["cluster"] == "all")].iloc[0]
    assert abs(cov["observed"] - 0.9) < 3.5 * np.sqrt(0.9 * 0.1 / cov["n"])


def test_numpy_numbers_are_taken_as_share_and_level(right):
    """share= and level= as numpy numbers give the table of the Python numbers; a bool or
    a text is refused, naming the argument."""
    a = right.check(rng=1, share=np.float32(0.5), level=np.float64(0.9))
    b = right.check(rng=1, share=0.5, level=0.9)
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(SpecificationError, match="share"):
        right.check(rng=1, share=True)
    with pytest.raises(SpecificationError, match="level"):
        right.check(rng=1, level="0.9")
