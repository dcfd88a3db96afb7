"""Three-level and cross-classified data: cluster=[outer, inner], levels, defaults, runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlimpute.errors import DataTypeError, SpecificationError, UnsupportedError
from mlimpute.spec.build import build_spec
from mlimpute.spec.defaults import classify_columns


def three_level(seed=2, S=10, C=3, P=8, repeat=True, var=(0.5, 0.3)):
    """S schools x C classes x P pupils; x, y level 1, z class level, w school level,
    each with missing values; class ids 0..C-1 in every school when ``repeat``."""
    rng = np.random.default_rng(seed)
    school = np.repeat(np.arange(S), C * P)
    cls = np.tile(np.repeat(np.arange(C), P), S)
    k = school * C + cls
    n = len(school)
    x = rng.normal(size=n)
    z = rng.normal(size=S * C)[k]
    w = rng.normal(size=S)[school]
    u = rng.normal(0, np.sqrt(var[0]), S)[school] + rng.normal(0, np.sqrt(var[1]), S * C)[k]
    y = x + 0.5 * z + 0.3 * w + u + rng.normal(size=n)
    df = pd.DataFrame(
        {"school": school, "class": cls if repeat else k, "x": x, "z": z, "w": w, "y": y}
    )
    df.loc[rng.random(n) < 0.3, "y"] = np.nan
    df.loc[rng.random(n) < 0.2, "x"] = np.nan
    df.loc[np.isin(k, rng.choice(S * C, max(S * C // 6, 1), replace=False)), "z"] = np.nan
    df.loc[np.isin(school, rng.choice(S, max(S // 5, 1), replace=False)), "w"] = np.nan
    return df


@pytest.fixture(scope="module")
def df():
    return three_level()


def test_levels_of_variables_are_found_in_the_data(df):
    roles = classify_columns(df, ["school", "class"])
    assert {c: r.role for c, r in roles.items()} == {
        "school": "cluster",
        "class": "cluster",
        "x": "level-1",
        "z": "level-2",
        "w": "level-3",
        "y": "level-1",
    }
    assert roles["z"].model == "2l.norm"  # on class rows, random intercept for school
    assert roles["w"].model == "2lonly.norm"  # on school rows


def test_nesting_is_detected_from_the_data(df):
    spec = build_spec(df, cluster=["school", "class"])
    assert spec.hierarchy == ("school", "school:class") and spec.cluster == "school:class"
    assert "class ids repeat across schools" in spec.structure[0]
    unique = build_spec(three_level(repeat=False), cluster=["school", "class"])
    assert unique.hierarchy == ("school", "class") and unique.cluster == "class"
    assert "class nested in school" in unique.structure[0]
    assert "structure: class nested in school" in repr(unique)


def test_default_formulas_per_level(df):
    spec = build_spec(df, cluster=["school", "class"])
    assert spec.formulas == {
        "x": "~ z + cmean(z, school) + w + y + cmean(y) + cmean(y, school) + (1 | school) "
        "+ (1 | school:class)",
        "z": "~ cmean(x) + cmean(x, school) + w + cmean(y) + cmean(y, school) + (1 | school)",
        "w": "~ cmean(x) + cmean(z) + cmean(y)",
        "y": "~ x + cmean(x) + cmean(x, school) + z + cmean(z, school) + w + (1 | school) "
        "+ (1 | school:class)",
    }
    assert {v.name: v.level for v in spec.variables} == {"x": 1, "z": 2, "w": 3, "y": 1}
    assert spec.methods == {"x": "2l.norm", "z": "2l.norm", "w": "2lonly.norm", "y": "2l.norm"}


def test_one_cluster_in_a_list_is_the_two_level_run(df):
    d = df[["school", "x", "y"]]
    a = d.mi.impute(cluster="school", m=1, iterations=2, rng=3)
    b = d.mi.impute(cluster=["school"], m=1, iterations=2, rng=3)
    assert a.spec == b.spec
    pd.testing.assert_frame_equal(a.complete(1), b.complete(1))


def test_three_level_imputation_end_to_end(df):
    before = df.copy()
    imp = df.mi.impute(cluster=["school", "class"], m=2, iterations=4, rng=7)
    pd.testing.assert_frame_equal(df, before)  # the user's frame is not modified
    for k in (1, 2):
        c = imp.complete(k)
        assert not c.isna().any().any()
        for col in ("x", "z", "w", "y"):
            seen = before[col].notna()
            np.testing.assert_array_equal(c.loc[seen, col], before.loc[seen, col])
        # imputed at their own level: constant within classes / schools
        assert c.groupby(["school", "class"])["z"].nunique().max() == 1
        assert c.groupby("school")["w"].nunique().max() == 1
    names = list(imp.dataset["y:params"]["y:param"].values)
    assert "var(Residual)" in names and any("school" in n for n in names)
    again = df.mi.impute(cluster=["school", "class"], m=2, iterations=4, rng=7, n_jobs=2)
    for k in (1, 2):
        pd.testing.assert_frame_equal(imp.complete(k), again.complete(k))  # bit-identical


def test_explicit_nested_and_crossed_formulas_run():
    d = three_level(repeat=False)[["school", "class", "x", "y"]].assign(
        x=lambda f: f["x"].fillna(0.0)
    )
    for text in ("~ x + (1 | school) + (1 | class)", "~ x + (1 | school/class)"):
        imp = d.mi.impute({"y": text}, m=1, iterations=2, rng=1)
        assert "nested in school" in imp.spec.structure[0]
        assert not imp.complete(1)["y"].isna().any()
    rng = np.random.default_rng(5)
    n = 400
    c = pd.DataFrame(
        {"school": rng.integers(0, 20, n), "nb": rng.integers(0, 15, n), "x": rng.normal(size=n)}
    )
    c["y"] = c["x"] + rng.normal(size=n)
    c.loc[rng.random(n) < 0.3, "y"] = np.nan
    imp = c.mi.impute({"y": "~ x + (1 | school) + (1 | nb)"}, m=1, iterations=2, rng=1)
    assert imp.spec.cluster == "school" and imp.spec.factors == ("nb",)
    assert "nb crossed with school" in imp.spec.structure[0]
    assert not imp.complete(1)["y"].isna().any()


def test_refusals_name_the_factor_or_variable(df):
    with pytest.raises(UnsupportedError, match="fourth level"):
        build_spec(df.assign(g=0), cluster=["g", "school", "class"])
    with pytest.raises(SpecificationError, match="'school' is constant within 'class'"):
        build_spec(three_level(repeat=False), cluster=["class", "school"])
    with pytest.raises(UnsupportedError, match=r"delta_cluster_sd.*'school'"):
        build_spec(df, cluster=["school", "class"], delta_cluster_sd={"y": 0.3})
    crossed = df.assign(nb=np.arange(len(df)) % 7)
    with pytest.raises(UnsupportedError, match=r"'z'.*over 'school' only.*\['school', 'nb'\]"):
        build_spec(crossed, {"z": "~ w + (1 | school) + (1 | nb)"}, cluster=["school", "class"])
    with pytest.raises(UnsupportedError, match=r"'y'.*none over the innermost.*'school:class'"):
        build_spec(df, {"y": "~ x + (1 | school)"}, cluster=["school", "class"])
    with pytest.raises(SpecificationError, match="'nope' is not in the data"):
        build_spec(df, cluster=["nope", "class"])
    with pytest.raises(SpecificationError, match="list of column names"):
        build_spec(df, cluster=["school", 3])


def test_describe_gives_the_share_of_variance_per_level():
    # 50 schools x 4 classes x 15 pupils. Var(y) = 1 (x) + 0.25 (0.5 z, class level)
    # + 0.09 (0.3 w, school level) + 0.5 + 0.3 + 1 = 3.14: shares 0.59/3.14 (school)
    # and 0.55/3.14 (class). Over 200 simulated data sets the nested-ANOVA estimates
    # averaged 0.186 and 0.176 (targets 0.188, 0.175) with SD 0.042 and 0.025:
    # tolerance 4 SD.
    d = three_level(seed=11, S=50, C=4, P=15, repeat=False)
    out = d.mi.describe(cluster=["school", "class"])
    assert out.loc["y", "level"] == 1 and out.loc["w", "level"] == 3
    assert abs(out.loc["y", "icc(school)"] - 0.59 / 3.14) < 4 * 0.042
    assert abs(out.loc["y", "icc(class)"] - 0.55 / 3.14) < 4 * 0.025
    assert np.isnan(out.loc["w", "icc(school)"])
    # a one-way ANOVA over schools would put part of the class variance at the school
    # level (0.228 on average in the same simulation): the nested one does not
    assert abs(out.loc["y", "icc(class)"] - 0.55 / 3.14) < abs(0.133 - 0.55 / 3.14)


def test_every_kind_of_level1_variable_uses_its_several_terms_model(df):
    rng = np.random.default_rng(3)
    d = df.assign(
        b=(rng.normal(size=len(df)) > 0).astype(float),
        cat=pd.Categorical(rng.choice(["a", "b", "c"], len(df))),
        k=rng.integers(1, 5, len(df)).astype(float),  # integer codes: 2l.pmm
    )
    for col in ("b", "cat", "k"):
        d.loc[rng.random(len(d)) < 0.2, col] = np.nan
    imp = d.mi.impute(cluster=["school", "class"], m=1, iterations=2, rng=1, heteroscedastic="y")
    methods = imp.spec.methods
    assert (methods["b"], methods["cat"], methods["k"]) == ("2l.bin", "2l.nominal", "2l.pmm")
    assert methods["y"] == "2l.norm.het"
    c = imp.complete(1)
    assert not c.isna().any().any()
    assert set(c["b"]) == {0.0, 1.0} and set(c["k"]) <= {1.0, 2.0, 3.0, 4.0}
    assert "var(Intercept|school)" in imp.dataset["b:params"]["b:param"].values


def test_school_means_in_the_designs_are_the_school_means_of_the_current_values(df):
    """cmean(x, school) in a level-1 model and on the class rows of a class-level model is
    the mean of x's current (completed) values over each school's rows."""
    from mlimpute.sampler.design import ClusterValues
    from mlimpute.sampler.engine import build_plan, run_chain

    spec = build_spec(df, cluster=["school", "class"], m=1, iterations=2)
    plan = build_plan(df, spec)
    res = run_chain(plan, 0, np.random.SeedSequence(3))
    values, _ = __import__("mlimpute.sampler.engine", fromlist=["x"]).start_values(
        plan, np.random.default_rng(0), res.final
    )
    school = plan.static["school"].to_numpy()
    want = pd.Series(values["x"]).groupby(school).transform("mean").to_numpy()
    d = plan.data["y"].for_chain()
    d.refresh(values, plan.static)
    col = d.X.names.index("cmean(x, school)")
    np.testing.assert_allclose(d.X.obs[:, col], want[d.obs_idx])
    np.testing.assert_allclose(d.X.mis[:, col], want[d.mis_idx])
    z = plan.data["z"].for_chain()
    first = plan.layout.segments.starts
    z.refresh(ClusterValues(values, first, {}), plan.cluster_static)
    col = z.X.names.index("cmean(x, school)")
    np.testing.assert_allclose(z.X.obs[:, col], want[first][z.obs_idx])
    col = z.X.names.index("cmean(x)")  # the class means stay the class means
    cls = plan.layout.codes
    want_c = pd.Series(values["x"]).groupby(cls).transform("mean").to_numpy()
    np.testing.assert_allclose(z.X.obs[:, col], want_c[first][z.obs_idx])


def test_cluster_means_over_a_factor_are_checked(df):
    with pytest.raises(SpecificationError, match=r"cmean\(x, nope\).*'nope' is not a grouping"):
        build_spec(
            df.assign(nope=1),
            {"y": "~ cmean(x, nope) + (1 | school) + (1 | school:class)"},
            cluster=["school", "class"],
        )
    with pytest.raises(SpecificationError, match=r"cmean\(x, school\).*not a grouping factor"):
        two = df[["school", "class", "x", "y"]].assign(x=df["x"].fillna(0.0))
        build_spec(two, {"y": "~ x + cmean(x, school) + (1 | class)"})
    cat = df.assign(c=pd.Categorical(np.arange(len(df)) % 3))
    with pytest.raises(DataTypeError, match=r"cmean\(c, school\).*nominal"):
        build_spec(
            cat,
            {"y": "~ cmean(c, school) + (1 | school) + (1 | school:class)"},
            cluster=["school", "class"],
        )


def test_analysis_with_school_means_equals_the_column_computed_by_hand():
    import mlimpute

    d = three_level(repeat=False)
    imp = d.mi.impute(cluster=["school", "class"], m=2, iterations=2, rng=1)
    c = imp.complete(1)
    c["sm"] = c.groupby("school")["x"].transform("mean")
    done = mlimpute.from_completed([c, c])
    by_hand = done.fit("y ~ x + sm + (1 | school) + (1 | class)").summary()["estimate"]
    cmean = done.fit("y ~ x + cmean(x, school) + (1 | school) + (1 | class)")
    np.testing.assert_allclose(cmean.summary()["estimate"].to_numpy(), by_hand.to_numpy())
    with pytest.raises(UnsupportedError, match=r"model-based.*cmean\(x, school\)"):
        mlimpute.impute(
            d[["school", "class", "x", "y"]].assign(x=0.0),
            model="y ~ x + cmean(x, school) + (1 | class)",
            m=1,
        )


def test_new_rows_after_three_levels(df):
    # supported now (tests/test_newdata_model.py): each term's effects from the chain
    imp = df.mi.impute(cluster=["school", "class"], m=1, iterations=1, rng=1)
    out = imp.impute_new(df.iloc[:5], rng=1)
    assert not out.complete(1).isna().any().any()


def test_model_based_imputation_with_several_terms(df):
    # supported now (tests/compatible/test_several_terms.py): the outcome's missing values
    # are drawn from the several-term analysis model
    import mlimpute

    d = df[["school", "class", "x", "y"]].assign(x=0.0)
    imp = mlimpute.impute(d, model="y ~ x + (1 | school) + (1 | school:class)", m=1)
    assert imp.spec.factors and not imp.complete(1).y.isna().any()


def test_checks_after_three_levels_are_refused_by_name(df):
    imp = df.mi.impute(cluster=["school", "class"], m=1, iterations=1, rng=1)
    with pytest.raises(UnsupportedError, match=r"check\(\).*several grouping factors"):
        imp.check(rng=1)
