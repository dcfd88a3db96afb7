"""Which models read their designs in chunks (sampler/streamed.py), and that every route
and reader gives them the numbers a stored design's reader would."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest

import mlimpute  # noqa: F401  (registers the accessor)
import mlimpute.sampler.streamed as streamed_module
from mlimpute import _numba
from mlimpute.datasets import IMPUTATION_FORMULAS, classroom
from mlimpute.models.ml_norm_streamed import StreamedMultilevelNorm
from mlimpute.models.streamed import StreamedData
from mlimpute.sampler.engine import build_plan
from mlimpute.spec.build import build_spec


@pytest.fixture(scope="module")
def df():
    return classroom(2, n_classes=60, class_size=20, rng=2).incomplete


@pytest.fixture(scope="module")
def one(df):
    """Only grade incomplete."""
    return df.assign(relation=df["relation"].fillna(0.0))


def _quiet(df, formulas=IMPUTATION_FORMULAS[2], **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return df.mi.impute(formulas, **kw)


def _streamed(df, formulas, **kw) -> dict[str, bool]:
    plan = build_plan(df, build_spec(df, formulas, m=1, **kw))
    return {n: isinstance(plan.data[n], StreamedData) for n in plan.names}


def test_large_plain_designs_only(df, monkeypatch):
    monkeypatch.setenv("MLIMPUTE_NUMBA", "0")
    assert _streamed(df, IMPUTATION_FORMULAS[2]) == {"relation": False, "grade": False}
    monkeypatch.setattr(streamed_module, "STREAM_MIN_ROWS", len(df))
    assert _streamed(df, IMPUTATION_FORMULAS[2]) == {"relation": True, "grade": True}


STREAMED = {"~ relation * gender + (1 | class)", "~ relation + cmean(relation) + (1 | class)"}


@pytest.mark.parametrize(
    "formula",
    [
        "~ relation + I(relation**2) + (1 | class)",  # a transform
        "~ relation * gender + (1 | class)",  # fine: an interaction of plain columns
        "~ relation + (1 + gender | class)",  # a random slope
        "~ relation + C(gender) + (1 | class)",  # a category
        "~ relation + cmean(relation) + (1 | class)",  # fine: streamed
    ],
)
def test_anything_else_keeps_its_stored_design(one, stream, formula):
    got = _streamed(one, {"grade": formula})
    assert got["grade"] == (formula in STREAMED)


def test_models_options_and_switches(one, stream, monkeypatch):
    df = one
    pmm = _streamed(df, {"grade": "~ relation + (1 | class)"}, method={"grade": "2l.pmm"})
    assert pmm == {"grade": True}  # matching on a streamed core
    donors = {"grade": ("2l.pmm", {"donors": 3})}
    assert _streamed(df, {"grade": "~ relation + (1 | class)"}, method=donors) == {"grade": True}
    single = _streamed(df, {"grade": "~ relation"}, method={"grade": "pmm"})
    assert single == {"grade": False}
    iw = {"grade": ("2l.norm", {"prior": "iw"})}
    assert _streamed(df, {"grade": "~ relation + (1 | class)"}, method=iw) == {"grade": False}
    half_t = {"grade": ("2l.norm", {"prior_scale": 2.0})}
    plan = build_plan(df, build_spec(df, {"grade": "~ relation + (1 | class)"}, m=1, method=half_t))
    assert isinstance(plan.models["grade"], StreamedMultilevelNorm)
    assert plan.models["grade"].prior_scale == 2.0  # the options carried over
    monkeypatch.setattr(_numba, "enabled", lambda: True)  # the switch does not matter
    assert _streamed(df, {"grade": "~ relation + (1 | class)"}) == {"grade": True}


def test_a_collinear_design_is_trimmed_as_before(one, stream):
    d = one.copy()
    d["twice"] = 2.0 * d["skill"]
    with pytest.warns(Warning, match="dropped predictor column 'twice'"):
        imp = d.mi.impute({"grade": "~ skill + twice + (1 | class)"}, m=1, iterations=2, rng=1)
    assert imp.m == 1


def test_every_route_gives_the_same_chains(df, stream):
    one = _quiet(df, m=3, iterations=4, rng=3)
    for kw in ({"n_jobs": 2}, {"batch": 3}, {"batch": 1}):
        other = _quiet(df, m=3, iterations=4, rng=3, **kw)
        for k, da in one.dataset.data_vars.items():
            np.testing.assert_array_equal(other.dataset[k].values, da.values, err_msg=f"{kw} {k}")
    short = _quiet(df, m=3, iterations=2, rng=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        longer = short.iterate(2)
    for name in one.variables:  # one long run = a run continued later
        np.testing.assert_array_equal(longer.dataset[name].values, one.dataset[name].values)


def test_the_plan_pickles_without_a_chains_columns(df, stream):
    plan = build_plan(df, build_spec(df, IMPUTATION_FORMULAS[2], m=1))
    d = plan.data["grade"]
    values = {"grade": np.zeros(len(df))}

    class Held(dict):
        pass

    held = Held(values)
    d.refresh(held)
    d.pending = (object(), np.zeros(1))
    back = pickle.loads(pickle.dumps(plan))
    assert back.data["grade"].values is None and back.data["grade"].pending is None
    assert d.values is held  # the plan's own copy still points at the chain


def test_readers_take_the_design_materialised(df, stream, monkeypatch):
    imp = _quiet(df, m=2, iterations=4, rng=3)
    table = imp.check(replicates=20, rng=1)
    assert len(table) > 0
    new = df.iloc[:100].copy()
    got = imp.impute_new(new, rng=2)
    monkeypatch.setattr(streamed_module, "STREAM_MIN_ROWS", 10**12)
    ref_imp = _quiet(df, m=2, iterations=4, rng=3)
    ref = ref_imp.impute_new(new, rng=2)
    for a, b in zip(got.complete("all"), ref.complete("all"), strict=True):
        pd.testing.assert_frame_equal(a, b, rtol=1e-8)


@pytest.mark.slow
def test_large_data_stream_and_every_route_agrees():
    # the real threshold (no forcing): 200,000 rows stream; serial, two processes and a
    # run continued later give the same numbers
    big = classroom(2, n_classes=10_000, class_size=20, rng=1).incomplete
    assert all(_streamed(big, IMPUTATION_FORMULAS[2]).values())
    one = _quiet(big, m=2, iterations=4, rng=3)
    two = _quiet(big, m=2, iterations=4, rng=3, n_jobs=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        later = _quiet(big, m=2, iterations=2, rng=3).iterate(2)
    for k, da in one.dataset.data_vars.items():
        np.testing.assert_array_equal(two.dataset[k].values, da.values)
    for name in one.variables:
        np.testing.assert_array_equal(later.dataset[name].values, one.dataset[name].values)
