"""``from_completed(...).fit(...)``, ``test()`` and ``compare()`` against R.

tests/data/pooling_reference.json holds ten completed data sets with mitml's
``testEstimates`` / ``testModels`` output for ``grade ~ skill * gender + (1 | class)``
fitted by ML (mitml 0.4-4, lme4 1.1-31); the pooled results must reproduce it (1e-5, what
statsmodels' optimiser leaves from lme4's, see tests/pooling/test_pooling.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mlimpute  # noqa: F401  (registers the .mi accessor)
from mlimpute.analysis import from_completed

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "pooling_reference.json"
COLUMNS = ["estimate", "se", "t", "df", "p", "ci_low", "ci_high", "riv", "lambda", "fmi"]


@pytest.fixture(scope="module")
def ref() -> dict:
    return json.loads(FIXTURE.read_text())


@pytest.fixture(scope="module")
def mitml_fits(ref):
    mixed = ref["mixed"]
    imp = from_completed([pd.DataFrame(d) for d in mixed["data_completed"]])
    full = imp.fit("grade ~ skill * gender + (1 | class)", reml=False, dfcom=np.inf)
    reduced = imp.fit("grade ~ skill + (1 | class)", reml=False, dfcom=np.inf)
    return full, reduced


def test_fit_reproduces_mitml_testestimates(ref, mitml_fits):
    full, _ = mitml_fits
    te = ref["mixed"]["testEstimates"]
    table = full.summary()
    assert list(table.index) == ["Intercept", "skill", "gender", "skill:gender"]
    est = te["estimates"]
    for ours, theirs in [
        ("estimate", "Estimate"),
        ("se", "Std.Error"),
        ("t", "t.value"),
        ("df", "df"),
        ("riv", "RIV"),
        ("fmi", "FMI"),
    ]:
        np.testing.assert_allclose(table[ours], est[theirs], rtol=1e-5, err_msg=ours)


def test_variance_components_reproduce_mitml_extra_pars(ref, mitml_fits):
    full, _ = mitml_fits
    vc = full.variance_components()
    assert list(vc.index) == ["var(Intercept|class)", "var(Residual)", "ICC|class"]
    assert list(vc.columns[:2]) == ["estimate", "between_sd"]
    extra = ref["mixed"]["testEstimates"]
    assert extra["extra_rownames"] == [
        "Intercept~~Intercept|class",
        "Residual~~Residual",
        "ICC|class",
    ]
    np.testing.assert_allclose(vc["estimate"], extra["extra"]["Estimate"], rtol=1e-5)


@pytest.mark.parametrize("method", ["D1", "D2", "D3"])
def test_test_and_compare_reproduce_mitml(ref, mitml_fits, method):
    full, reduced = mitml_fits
    expected = ref["mixed"][method]
    for res in (full.test("gender = 0, skill:gender = 0", method), full.compare(reduced, method)):
        assert res.method == method and res.df1 == 2
        np.testing.assert_allclose(res.statistic, expected["F.value"], rtol=1e-5)
        np.testing.assert_allclose(res.df2, expected["df2"], rtol=1e-5)
        np.testing.assert_allclose(res.p, expected["P(>F)"], rtol=1e-4)
        np.testing.assert_allclose(res.riv, expected["RIV"], rtol=1e-5)
