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
from mlimpute.errors import CompatibilityWarning, MlimputeWarning
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
