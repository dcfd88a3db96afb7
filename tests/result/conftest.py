"""Shared fixtures of the result tests."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mlimpute  # noqa: F401  (registers .mi)
from mlimpute.datasets import classroom


@pytest.fixture(scope="module")
def coded():
    """A result with an ordered categorical 1..5, a string and a boolean column."""
    d = classroom(2, rng=1).incomplete
    rng = np.random.default_rng(0)
    n = len(d)
    d["likert"] = pd.Categorical(
        rng.choice([1, 2, 3, 4, 5], n), categories=[1, 2, 3, 4, 5], ordered=True
    )
    d.loc[rng.random(n) < 0.2, "likert"] = np.nan
    d["sex"] = pd.Series(rng.choice(["f", "m"], n), dtype=object)
    d.loc[rng.random(n) < 0.2, "sex"] = None
    d["flag"] = pd.array(rng.random(n) < 0.5, dtype="boolean")
    d.loc[rng.random(n) < 0.2, "flag"] = pd.NA
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return d.mi.impute(cluster="class", m=2, iterations=3, rng=1)


@pytest.fixture(scope="module")
def imp():
    """The experiment-2 formulas on the classroom data, m = 3, 10 iterations."""
    c = classroom(2, rng=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return c.incomplete.mi.impute(c.imputation, m=3, iterations=10, rng=1)
