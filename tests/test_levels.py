"""Level-2 variables, cluster means and default models (issue 6)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.special import ndtr

import mlimpute
from mlimpute.datasets import classroom
from mlimpute.errors import DataError, SpecificationError


def _fit(d, formula):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mlimpute.from_completed([d, d]).fit(formula, engine="profiled").summary()


def _teachers(seed, J=60, n=20):
    """The seed's last sheet: teacher skill missing for ~35 % of classes, more often for
    older teachers (MAR on the complete level-2 age); grade depends on skill and age."""
    rng = np.random.default_rng(seed)
    age = rng.normal(45, 10, J)
    za = (age - 45) / 10
    skill = 0.7 * za + np.sqrt(0.51) * rng.normal(size=J)
    g = np.repeat(np.arange(J), n)
    grade = 10 + skill[g] + za[g] + rng.normal(0, np.sqrt(0.5), J)[g] + rng.normal(0, 2, J * n)
    full = pd.DataFrame({"class": g, "age": age[g], "skill": skill[g], "grade": grade})
    df = full.copy()
    df.loc[(rng.random(J) < ndtr(-0.7 + 1.5 * za))[g], "skill"] = np.nan
    return full, df


def test_level2_acceptance_skill_from_age_cmean_ranef():
    """Pooled skill effect within 2 SE of the complete-data one; complete classes biased.

    Over 30 data sets (see the closing note) the complete-classes estimate was 0.16 below
    the complete-data one (SE 0.03) and the imputed one 0.02 below (SE 0.015); this fixed
    seed shows the same picture on one data set.
    """
    full, df = _teachers(2)
    formula = "grade ~ skill + (1 | class)"
    cd = _fit(full, formula).loc["skill"]
    cc = _fit(df.dropna(), formula).loc["skill"]
    imp = df.mi.impute(
        {"grade": "~ skill + (1 | class)", "skill": "~ age + cmean(grade) + ranef(grade)"},
        m=20,
        iterations=20,
        rng=2,
    )
    assert imp.spec.methods == {"grade": "2l.norm", "skill": "2lonly.norm"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mi = imp.fit(formula, engine="profiled").summary().loc["skill"]
    assert abs(mi.estimate - cd.estimate) < 2 * mi.se
    assert cc.estimate - cd.estimate < -0.15
    # every completed data set keeps skill constant within classes
    for d in imp.complete("all"):
        assert (d.groupby("class")["skill"].nunique() == 1).all()


def test_level2_values_written_to_every_row_and_partially_observed_clusters():
    full, df = _teachers(3, J=20, n=5)
    # one cluster with the value observed on some rows only: those rows are filled with it
    rows = df.index[df["class"] == 0]
    df.loc[rows, "skill"] = full.loc[rows, "skill"]
    df.loc[rows[:2], "skill"] = np.nan
    imp = df.mi.impute({"skill": "~ age + cmean(grade)"}, m=2, iterations=3, rng=1, cluster="class")
    out = imp.complete(1)
    assert np.allclose(out.loc[rows, "skill"], full.loc[rows[0], "skill"])
    assert (out.groupby("class")["skill"].nunique() == 1).all()


def test_level2_errors_name_clusters_and_predictors():
    full, df = _teachers(4, J=10, n=4)
    bad = df.copy()
    bad.loc[bad.index[[1, 5]], "skill"] = 99.0  # varies within classes 0 and 1
    with pytest.raises(DataError, match=r"vary within 2 cluster\(s\) of 'class': \[0, 1\]"):
        bad.mi.impute({"skill": "~ age"}, method={"skill": "2lonly.norm"}, cluster="class")
    with pytest.raises(SpecificationError, match="use cmean\\(grade\\)"):
        df.mi.impute({"skill": "~ age + grade"}, cluster="class")
    with pytest.raises(SpecificationError, match="needs a multilevel formula for 'grade'"):
        df.mi.impute({"skill": "~ age + ranef(grade)"}, cluster="class")
    with pytest.raises(SpecificationError, match="cluster"):
        df.mi.impute({"skill": "~ age"}, method={"skill": "2lonly.norm"})


def _within_between(seed=1, J=30, n=20):
    """x, y level-1; within slope 0.5, between slope 1.5; 40 % MAR in both on complete z."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(J), n)
    xb = rng.normal(0, 1, J)[g]
    xw = rng.normal(0, 1, J * n)
    z = 0.5 * (xb + xw) + rng.normal(size=J * n)
    y = 0.5 * xw + 1.5 * xb + rng.normal(0, 0.5, J)[g] + rng.normal(size=J * n)
    full = pd.DataFrame({"g": g, "x": xb + xw, "y": y, "z": z})
    df = full.copy()
    df.loc[rng.random(J * n) < ndtr(-0.25 + 0.6 * z), "x"] = np.nan
    df.loc[rng.random(J * n) < ndtr(-0.25 - 0.6 * z), "y"] = np.nan
    return full, df


def test_cluster_means_keep_within_slope():
    """Default models (with cmean) recover the within slope; without cmean it is biased.

    On one data set the bias from leaving out cluster means (≈ +0.07 on this design, SE of a
    pooled slope ≈ 0.07) is about one standard error, so it is measured over 12 data sets:
    measured on 20 data sets, the mean difference from the complete-data slope was
    +0.063 (SE 0.012) without cmean and +0.009 (SE 0.014) with it. Over 12 data sets the
    SE of the mean difference is ≈ 0.016: the thresholds 0.035 lie > 2 SE from both means.
    """
    formula = "y ~ x + cmean(x) + (1 | g)"
    diffs = []
    for seed in range(1, 13):
        full, df = _within_between(seed)
        cd = _fit(full, formula).loc["x"]
        imp = df.mi.impute(cluster="g", m=5, iterations=20, rng=seed)
        no_cmean = df.mi.impute(
            {"x": "~ y + z + (1 | g)", "y": "~ x + z + (1 | g)"}, m=5, iterations=20, rng=seed
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            good = imp.fit(formula, engine="profiled").summary().loc["x"]
            bad = no_cmean.fit(formula, engine="profiled").summary().loc["x"]
        if seed == 1:
            assert "cmean(y)" in imp.spec.formulas["x"] and "cmean(x)" in imp.spec.formulas["y"]
            assert abs(good.estimate - cd.estimate) < 2 * good.se
        diffs.append((good.estimate - cd.estimate, bad.estimate - cd.estimate))
    good_bias, bad_bias = np.mean(diffs, axis=0)
    assert abs(good_bias) < 0.035, diffs
    assert bad_bias > 0.035, diffs


def test_defaults_spec_include_exclude_and_identifiers():
    d = classroom(2, rng=1, n_classes=10, class_size=6)
    df = d.incomplete.assign(
        pupil_id=np.arange(len(d.incomplete)),
        note=pd.Categorical(np.where(d.incomplete["gender"] == 1, "g", "b")),
    )
    df.loc[df.index[:4], "note"] = np.nan
    imp = df.mi.impute(cluster="class", m=2, iterations=3, rng=1)
    methods = imp.spec.methods
    assert methods == {"relation": "2l.norm", "grade": "2l.norm", "note": "2l.bin"}
    assert "pupil_id" not in " ".join(imp.spec.formulas.values())
    assert any("pupil_id" in e and "identifier" in e for e in imp.events)
    f = imp.spec.formulas["grade"]
    assert "(1 | class)" in f and "cmean(relation)" in f and "skill" in f
    assert "cmean(skill)" not in f  # skill is level 2: no cluster mean of it
    imp2 = df.mi.impute(cluster="class", m=1, iterations=2, rng=1, exclude=["note", "skill"])
    assert "skill" not in imp2.spec.formulas["grade"]
    assert "note" not in imp2.spec.methods and imp2.complete(1)["note"].isna().sum() == 4
    # a user formula for one variable, defaults for the rest
    imp3 = df.mi.impute(
        {"grade": "~ skill + (1 | class)"}, cluster="class", m=1, iterations=2, rng=1
    )
    assert imp3.spec.formulas["grade"] == "~ skill + (1 | class)"
    assert "relation" in imp3.spec.methods
    # the spec is written in the syntax a user writes and reparses to the same models
    again = df.mi.impute(imp.spec.formulas, m=2, iterations=3, rng=1, method=imp.spec.methods)
    np.testing.assert_array_equal(again.dataset["grade"].values, imp.dataset["grade"].values)


def test_level2_default_detection():
    full, df = _teachers(5, J=15, n=6)
    imp = df.mi.impute(cluster="class", m=1, iterations=2, rng=1)
    assert imp.spec.methods["skill"] == "2lonly.norm"
    assert imp.spec.formulas["skill"] == "~ age + cmean(grade)"
