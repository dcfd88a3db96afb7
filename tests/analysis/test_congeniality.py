"""The chained path learns from the analysis model: ``imp.fit(formula)`` warns once when the
imputation lacked a random slope, an interaction or a non-linear term of an incomplete
variable, and points to model-based imputation (``model=``)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mlimpute
from mlimpute.analysis.congeniality import check_congeniality, incompatible_terms
from mlimpute.datasets import classroom
from mlimpute.errors import CompatibilityWarning, MlimputeWarning, PoolingError
from mlimpute.spec.formula import parse_formula


def _sleep_like(days_missing=0.25, reaction_missing=0.0, seed=1):
    """lme4's sleepstudy in shape: 18 subjects, days 0-9, a random slope of Days."""
    rng = np.random.default_rng(seed)
    subject = np.repeat(np.arange(18), 10)
    days = np.tile(np.arange(10.0), 18)
    u0, u1 = rng.normal(0, 25, 18), rng.normal(0, 6, 18)
    reaction = 250 + u0[subject] + (10 + u1[subject]) * days + rng.normal(0, 25, days.size)
    days[rng.random(days.size) < days_missing] = np.nan
    reaction[rng.random(days.size) < reaction_missing] = np.nan
    return pd.DataFrame({"Reaction": reaction, "Days": days, "Subject": subject})


def _impute(df, formulas=None, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MlimputeWarning)
        return df.mi.impute(formulas, m=2, iterations=2, rng=1, **kw)


def _caught(imp, formula):
    """The CompatibilityWarnings of one fit."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        imp.fit(formula)
    return [str(w.message) for w in caught if issubclass(w.category, CompatibilityWarning)]


SLOPE = "Reaction ~ Days + (Days | Subject)"


def test_the_warning_is_a_user_warning_exported_from_errors():
    assert issubclass(CompatibilityWarning, UserWarning)
    assert mlimpute.CompatibilityWarning is CompatibilityWarning


def test_random_slope_of_an_incomplete_predictor_warns_once_and_points_to_model():
    imp = _impute(_sleep_like(), cluster="Subject")  # Days: a random intercept model
    (msg,) = _caught(imp, SLOPE)  # exactly one warning
    assert "the random slope of Days on Subject" in msg
    assert f"df.mi.impute(model={SLOPE!r}, ...)" in msg
    # the terms the imputation supports: no warning
    assert _caught(imp, "Reaction ~ Days + (1 | Subject)") == []


def test_interaction_and_nonlinear_terms_of_an_incomplete_predictor():
    df = _sleep_like().assign(z=lambda f: np.arange(len(f)) % 3)
    imp = _impute(df, cluster="Subject")
    (msg,) = _caught(imp, "Reaction ~ Days * z + (1 | Subject)")
    assert "the interaction Days:z" in msg and "lacks the term Reaction:z" in msg
    assert "model=" in msg
    (msg,) = _caught(imp, "Reaction ~ Days + I(Days**2) + (1 | Subject)")
    assert "the non-linear term I(Days ** 2)" in msg
    # both terms at once: still one warning, naming both
    (msg,) = _caught(imp, "Reaction ~ Days * z + I(Days**2) + (1 | Subject)")
    assert "Days:z" in msg and "I(Days ** 2)" in msg


def test_no_warning_when_the_imputation_model_has_the_term_or_the_variable_is_complete():
    # an incomplete response imputed with the analysis' random slope
    df = _sleep_like(days_missing=0.0, reaction_missing=0.25)
    same = _impute(df, {"Reaction": "~ Days + (1 + Days | Subject)"})
    assert _caught(same, SLOPE) == []
    # ...without it: warned, naming the response's model
    default = _impute(df, cluster="Subject")
    (msg,) = _caught(default, SLOPE)
    assert "the imputation model of Reaction does not include it" in msg
    # the incomplete variable is outside the term: Days and z complete, an interaction
    df2 = _sleep_like(days_missing=0.0).assign(
        z=lambda f: np.arange(len(f)) % 3,
        w=lambda f: np.where(f.index % 5 == 0, np.nan, f.index % 7 * 1.0),
    )
    imp = _impute(df2, cluster="Subject")  # only w incomplete
    assert _caught(imp, "Reaction ~ Days * z + (Days | Subject)") == []


def test_model_based_imputation_is_checked_against_its_model():
    df = _sleep_like().assign(z=lambda f: (np.arange(len(f)) % 3).astype(float))
    imp = _impute(df, model="Reaction ~ Days + z + (1 + Days | Subject)")
    assert _caught(imp, "Reaction ~ Days + z + (1 + Days | Subject)") == []
    assert _caught(imp, "Reaction ~ Days + (1 | Subject)") == []  # a sub-model
    (msg,) = _caught(imp, "Reaction ~ Days * z + (1 + Days | Subject)")
    assert "the interaction Days:z" in msg
    assert "the analysis model of the imputation" in msg
    assert "df.mi.impute(model='Reaction ~ Days * z + (1 + Days | Subject)', ...)" in msg


def test_completed_data_from_elsewhere_are_not_checked():
    df = _sleep_like()
    other = mlimpute.from_completed([df.fillna(0.0), df.fillna(1.0)])
    assert incompatible_terms(other, parse_formula(SLOPE)) == []
    assert _caught(other, SLOPE) == []
    imp = _impute(df, cluster="Subject")
    with pytest.warns(CompatibilityWarning, match="random slope of Days"):
        check_congeniality(imp, parse_formula(SLOPE))


@pytest.mark.parametrize("formula", [SLOPE, "Reaction ~ Days + I(Days**2) + (1 | Subject)"])
def test_repeated_fits_warn_each_time(formula):
    imp = _impute(_sleep_like(), cluster="Subject")
    assert len(_caught(imp, formula)) == 1
    assert len(_caught(imp, formula)) == 1


def test_fit_warns_about_a_random_slope_of_an_incomplete_predictor():
    imp = _impute(_sleep_like(), cluster="Subject")  # Days: random intercept only
    with pytest.warns(CompatibilityWarning, match="random slope of Days on Subject") as rec:
        imp.fit("Reaction ~ Days + (Days | Subject)")
    assert len([w for w in rec if issubclass(w.category, CompatibilityWarning)]) == 1
    text = str(rec[0].message)
    assert "Days is incomplete" in text and "random slope of Reaction on Days" in text
    assert "toward zero" in text and "Impute with a model that includes" in text
    # the random intercept model the imputation supports: no warning
    assert _caught(imp, "Reaction ~ Days + (1 | Subject)") == []
    # Days imputed with a random slope of Reaction only approximates it: still reported
    slope = _impute(_sleep_like(), {"Days": "~ Reaction + (1 + Reaction | Subject)"})
    (msg,) = _caught(slope, "Reaction ~ Days + (Days | Subject)")
    assert "only approximates it" in msg


def test_fit_warns_for_an_incomplete_response_unless_its_model_has_the_term():
    df = _sleep_like(days_missing=0.0, reaction_missing=0.25)
    default = _impute(df, cluster="Subject")
    (msg,) = _caught(default, "Reaction ~ Days + (Days | Subject)")
    assert "the imputation model of Reaction does not include it" in msg
    (msg,) = _caught(default, "Reaction ~ Days + I(Days**2) + (1 | Subject)")
    assert "non-linear term I(Days ** 2)" in msg
    same = _impute(df, {"Reaction": "~ Days + (1 + Days | Subject)"})
    assert _caught(same, "Reaction ~ Days + (Days | Subject)") == []
    # complete variables only: nothing to warn about
    complete = mlimpute.from_completed([df.fillna(0.0), df.fillna(1.0)])
    assert _caught(complete, "Reaction ~ Days + (Days | Subject)") == []


def test_fit_warns_about_interactions_the_imputation_lacked():
    d = classroom(2, rng=1, n_classes=10, class_size=20).incomplete
    formula = "grade ~ relation*gender + (1 | class)"
    default = _impute(d, cluster="class")  # grade and relation incomplete
    (msg,) = _caught(default, formula)
    assert "interaction relation:gender" in msg
    assert "imputation model of grade does not include it" in msg
    assert "relation is incomplete and its imputation model lacks the term gender:grade" in msg
    both = _impute(
        d, {"grade": "~ relation*gender + (1 | class)", "relation": "~ grade*gender + (1 | class)"}
    )
    assert _caught(both, formula) == []
    # an interaction of complete variables
    assert _caught(default, "grade ~ skill*gender + (1 | class)") != []  # grade
    only_rel = _impute(d.assign(grade=d["grade"].fillna(0.0)), cluster="class")
    assert _caught(only_rel, "grade ~ skill*gender + relation + (1 | class)") == []


def test_categorical_term_of_codes_imputed_as_continuous_is_named():
    # brandsma-like: a denomination coded 1-4 at the school level, missing for 4 schools
    rng = np.random.default_rng(3)
    sch = np.repeat(np.arange(20), 12)
    den = rng.integers(1, 5, 20)[sch].astype(float)
    den[np.isin(sch, [1, 6, 11, 16])] = np.nan
    y = den + rng.normal(size=sch.size)
    df = pd.DataFrame({"sch": sch, "den": den, "y": y})
    cont = _impute(df, cluster="sch", method={"den": "2lonly.norm"})
    with pytest.raises(PoolingError, match=r"C\(den\) in .* treats 'den' as categorical") as exc:
        cont.fit("y ~ C(den) + (1 | sch)")
    msg = str(exc.value)
    assert "not among its 4 observed values (1, 2, 3, 4)" in msg
    assert "'2lonly.norm'" in msg and "{'den': '2lonly.pmm'}" in msg
    assert cont.fit("y ~ den + (1 | sch)").summary().shape[0] == 2  # as a number: fine
    # the default (PMM) returns observed codes only: C(den) works
    res = _impute(df, cluster="sch").fit("y ~ C(den) + (1 | sch)")
    assert len(res.summary()) == 4
