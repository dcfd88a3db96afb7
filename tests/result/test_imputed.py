"""Tests of mlimpute.result.imputed: MultiplyImputed's accessors and its text repr."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

import mlimpute  # noqa: F401  (registers .mi)
from mlimpute.datasets import classroom


@pytest.mark.parametrize("name", ["likert", "sex", "flag", "grade"])
def test_imputed_holds_the_values_complete_writes(coded, name):
    got = coded.imputed(name)
    missing = coded.data.index[coded.data[name].isna()]
    assert list(got.index) == list(missing)
    assert list(got.columns) == [1, 2] and got.columns.name == "imputation"
    for i in (1, 2):
        assert got[i].dtype == coded.data[name].dtype
        pd.testing.assert_series_equal(
            got[i], coded.complete(i).loc[missing, name], check_names=False
        )
    if name == "likert":  # the categories 1..5, not the codes 0..4
        assert set(got[1]) <= {1, 2, 3, 4, 5} and 5 in set(got[1]) | set(got[2])


def test_repr_is_the_text_summary_with_rhat_and_events(imp):
    from mlimpute.result.display import imputed_text

    text = repr(imp)
    assert text == imputed_text(imp) == str(imp)
    assert "max R-hat" in text and "events" in text


def test_repr_of_a_completion_of_no_rows():
    df = classroom(2, rng=1).incomplete
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imp = df.mi.impute(cluster="class", m=2, iterations=4, rng=1)
        new = imp.impute_new(df.iloc[:0])
    text = repr(new)  # ZeroDivisionError before
    assert "rows=0" in text and " 0 imputed" in text
    assert "non-finite" not in text and "R-hat" not in text  # parameters fixed: no R-hat
    assert "parameters fixed at the final states of the trained chains" in text


@pytest.fixture(scope="module")
def docs_example():
    """The example of docs/user_guide/diagnostics.md: classroom(2), m = 10, 20 iterations."""
    df = classroom(2, rng=1).incomplete
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return df.mi.impute(cluster="class", m=10, iterations=20, rng=1)


def test_converged_applies_the_limits_of_the_convergence_warning(docs_example):
    from mlimpute.diagnostics import convergence_warning, rhat_table

    imp = docs_example
    table = rhat_table(imp)
    assert convergence_warning(imp) is None
    assert imp.converged() is True
    # some trace is above 1.1 but below its own limit: the fixed threshold disagrees
    assert (table["rhat"] > 1.1).any() and (table["rhat"] <= table["limit"]).all()
    assert imp.converged(threshold=1.1) is False
    # and where the warning fires, converged() is False
    assert convergence_warning(imp, threshold=1.0) is not None
    assert imp.converged(threshold=1.0) is False


def test_converged_by_default_is_false_exactly_when_the_warning_fires(imp):
    from mlimpute.diagnostics import convergence_warning, rhat_table

    assert imp.converged() == (convergence_warning(imp) is None)
    table = rhat_table(imp, burn=2)
    assert imp.converged(burn=2) == bool((table["rhat"] <= table["limit"]).all())
