"""The multilevel normal model on designs read in chunks (models/ml_norm_streamed.py).

The streamed step is the stored design's step with its sums taken in another order: the
same random numbers in the same order. So its sums are checked against the stored
design's to rounding, and whole chains against the stored route's chains: with the same
random numbers, two samplers that agree on every full conditional give parameters that
differ only by rounding, amplified over the steps (measured 5e-11 relative for the
parameters and 1e-13 for the imputations after 12 iterations; the tests allow 1e-8 and
1e-9); a wrong conditional (a residual variance from the wrong rows, a wrong
working-scale regression) moves them by 1e-3 or more. The stored step's conditionals are
themselves checked against exact posteriors in tests/models/test_ml_norm.py.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mlimpute  # noqa: F401  (registers the accessor)
import mlimpute.sampler.streamed as streamed_module
from mlimpute.datasets import IMPUTATION_FORMULAS, classroom
from mlimpute.models import ml_norm_streamed
from mlimpute.models.ml_norm import MultilevelNorm, MultilevelNormState
from mlimpute.models.ml_norm_streamed import StreamedMultilevelNorm, cluster_stats
from mlimpute.models.streamed import CHUNK_ROWS, StreamedData, chunks
from mlimpute.sampler.engine import build_plan, start_values
from mlimpute.schema import param_var
from mlimpute.spec.build import build_spec


def _data(n_classes=150):
    return classroom(2, n_classes=n_classes, class_size=20, rng=3).incomplete


def _impute(df, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return df.mi.impute(IMPUTATION_FORMULAS[2], **kw)


def _plan_and_values(df, seed=5):
    plan = build_plan(df, build_spec(df, IMPUTATION_FORMULAS[2], m=1))
    values, _ = start_values(plan, np.random.default_rng(seed), None)
    return plan, values


def test_sums_are_the_stored_designs(stream):
    # X'X, X'y and the clusters' Z'X, Z'y of the chunks against the stored design's
    # (summed in another order: rounding, 1e-12 relative)
    plan, values = _plan_and_values(_data())
    for name in plan.names:
        d = plan.data[name]
        assert isinstance(d, StreamedData)
        d.refresh(values)
        got = cluster_stats(d)
        ref_data = plan.stored(name)
        ref_data.refresh(values, plan.static)
        ref = MultilevelNorm.cluster_stats(ref_data, ref_data.y_obs)
        XtX = ref_data.X.obs.T @ ref_data.X.obs
        np.testing.assert_allclose(got.XtX, XtX, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(got.Xty, ref_data.X.obs.T @ ref_data.y_obs, rtol=1e-12)
        np.testing.assert_allclose(got.ZtX, ref.ZtX, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(got.Zty, ref.Zty, rtol=1e-12, atol=1e-9)
        np.testing.assert_array_equal(got.ZtZ, ref.ZtZ)


def test_residual_pass_and_predictor_are_the_stored_designs(stream):
    plan, values = _plan_and_values(_data())
    rng = np.random.default_rng(2)
    for name in plan.names:
        d = plan.data[name]
        d.refresh(values)
        ref = plan.stored(name)
        ref.refresh(values, plan.static)
        p = len(d.names)
        state = MultilevelNormState(
            rng.normal(size=p), rng.normal(size=(d.n_clusters, 1)), 1.3, np.eye(1),
            np.ones(1), np.ones(1),
        )  # fmt: skip
        model = plan.models[name]
        assert isinstance(model, StreamedMultilevelNorm)
        for rows in ("obs", "mis"):
            np.testing.assert_allclose(
                model.predict(state, d, rows), MultilevelNorm().predict(state, ref, rows),
                rtol=1e-12, atol=1e-12,
            )  # fmt: skip
        stats = cluster_stats(d)
        u = stats.M @ state.beta[d.constant] + state.b[:, 0]
        ss, _ = ml_norm_streamed._pass(d, u, state.beta[d.within])
        r = ref.y_obs - MultilevelNorm().predict(state, ref, "obs")
        np.testing.assert_allclose(ss, r @ r, rtol=1e-12)
        by_cluster, _ = ml_norm_streamed._pass(d, u, state.beta[d.within], by_cluster=True)
        np.testing.assert_allclose(by_cluster.sum(), r @ r, rtol=1e-12)


@pytest.mark.parametrize("shuffled", [False, True])
def test_chains_agree_with_the_stored_route_to_rounding(monkeypatch, shuffled):
    monkeypatch.setenv("MLIMPUTE_NUMBA", "0")
    df = _data()
    if shuffled:  # rows not sorted by cluster, an integer column made boolean
        df = df.sample(frac=1.0, random_state=1).assign(gender=lambda d: d["gender"] == 1)
    ref = _impute(df, m=2, iterations=12, rng=4)
    monkeypatch.setattr(streamed_module, "STREAM_MIN_ROWS", 0)
    got = _impute(df, m=2, iterations=12, rng=4)
    for name in ref.variables:  # measured: 2e-13 (values of about 1 and 10)
        assert np.abs(got.dataset[name].values - ref.dataset[name].values).max() < 1e-9
    assert got.dataset.coords.equals(ref.dataset.coords)  # the parameters' names too
    for key, da in ref.dataset.data_vars.items():  # parameters, means and SDs
        if "iteration" in da.dims:
            np.testing.assert_allclose(got.dataset[key].values, da.values, rtol=1e-8, atol=1e-10)


def test_a_wrong_conditional_is_seen(monkeypatch):
    # the comparison above fails for a residual variance summed over every row (the
    # missing ones included): the test is not blind to a wrong σ² | β, b
    monkeypatch.setenv("MLIMPUTE_NUMBA", "0")
    df = _data()
    ref = _impute(df, m=1, iterations=6, rng=4)
    monkeypatch.setattr(streamed_module, "STREAM_MIN_ROWS", 0)
    original = ml_norm_streamed._pass

    def unmasked(data, u, bw, keep=False, rows="mis", by_cluster=False):
        observed = data.observed
        data.observed = np.ones_like(observed)
        try:
            ss = original(data, u, bw, by_cluster=by_cluster)[0]
        finally:
            data.observed = observed
        return ss, original(data, u, bw, keep, rows, by_cluster)[1]

    monkeypatch.setattr(ml_norm_streamed, "_pass", unmasked)
    got = _impute(df, m=1, iterations=6, rng=4)
    gap = np.abs(got.dataset["mean"].values - ref.dataset["mean"].values).max()
    assert gap > 1e-3


def test_the_draw_takes_the_steps_predictor_once(stream):
    plan, values = _plan_and_values(_data())
    name = plan.names[0]
    d, model = plan.data[name], plan.models[name]
    d.refresh(values)
    state = model.init(np.random.default_rng(1), d)
    assert d.pending is not None and d.pending[0] is state
    a = model.draw_missing(np.random.default_rng(9), state, d)  # the step's predictor
    assert d.pending is None
    b = model.draw_missing(np.random.default_rng(9), state, d)  # computed again
    np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)
    other = MultilevelNormState(**{**state.__dict__, "beta": state.beta + 1.0})
    d.pending = (state, np.zeros(d.n_mis))
    c = model.draw_missing(np.random.default_rng(9), other, d)  # another state: not taken
    np.testing.assert_allclose(c, b + model.predict(other, d) - model.predict(state, d))


def test_chunks_are_whole_clusters():
    starts = np.array([0, 3, 4, 10, 11])
    parts = chunks(starts, 14, size=4)
    assert [(lo, hi) for lo, hi, *_ in parts] == [(0, 4), (4, 10), (10, 14)]
    assert [(a, b) for _, _, a, b, _, _ in parts] == [(0, 2), (2, 3), (3, 5)]
    for lo, hi, _, _, local, counts in parts:
        assert local[0] == 0 and counts.sum() == hi - lo
    assert chunks(np.array([0]), 0) == ()
    assert CHUNK_ROWS >= 1024


def _agree(df, formulas, monkeypatch, **kw):
    """The streamed and the stored route's results, to rounding (as above)."""
    monkeypatch.setenv("MLIMPUTE_NUMBA", "0")
    monkeypatch.setattr(streamed_module, "STREAM_MIN_ROWS", 10**12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = df.mi.impute(formulas, m=2, iterations=6, rng=3, **kw)
        monkeypatch.setattr(streamed_module, "STREAM_MIN_ROWS", 0)
        got = df.mi.impute(formulas, m=2, iterations=6, rng=3, **kw)
    assert got.dataset.coords.equals(ref.dataset.coords)
    for key, da in ref.dataset.data_vars.items():
        np.testing.assert_allclose(got.dataset[key].values, da.values, rtol=1e-8, atol=1e-9)


def test_odd_clusters_agree(monkeypatch):
    # a cluster larger than a chunk, clusters of one and two rows, one with no observed y
    rng = np.random.default_rng(5)
    g = np.r_[np.zeros(2 * CHUNK_ROWS // 2 + 5000, int), np.arange(2, 4002) // 2, 5000]
    n = g.size
    x = rng.normal(size=n)
    df = pd.DataFrame({"g": g, "x": x, "y": x + rng.normal(size=n) + (g % 7) * 0.3})
    df.loc[rng.random(n) < 0.3, "y"] = np.nan
    df.loc[df["g"] == 5, "y"] = np.nan
    _agree(df, {"y": "~ x + cmean(x) + (1 | g)"}, monkeypatch)


def test_three_levels_with_a_class_intercept_agree(monkeypatch):
    from tests.test_three_level import three_level

    d3 = three_level()
    forms = {
        "x": "~ z + w + y + cmean(y) + (1 | school:class)",
        "y": "~ x + z + w + cmean(x) + (1 | school:class)",
        "z": "~ cmean(x) + w + (1 | school)",
        "w": "~ cmean(x) + cmean(z)",
    }
    monkeypatch.setattr(streamed_module, "STREAM_MIN_ROWS", 0)
    plan = build_plan(d3, build_spec(d3, forms, cluster=["school", "class"], m=1))
    assert {n for n in plan.names if isinstance(plan.data[n], StreamedData)} == {"x", "y"}
    _agree(d3, forms, monkeypatch, cluster=["school", "class"])


def test_interactions_agree(monkeypatch):
    # products of an imputed and a data column (within clusters, changing), of a
    # class-level column and a cluster mean (constant within clusters, changing), of two
    # data columns (kept), and of three factors
    df = _data(n_classes=100)
    forms = {
        "grade": "~ relation * gender + skill:cmean(relation) + gender:skill "
        "+ relation:gender:skill + (1 | class)",
        "relation": "~ grade + gender + (1 | class)",
    }
    monkeypatch.setenv("MLIMPUTE_NUMBA", "0")
    monkeypatch.setattr(streamed_module, "STREAM_MIN_ROWS", 0)
    plan = build_plan(df, build_spec(df, forms, m=1))
    kinds = [s.kind for s in plan.data["grade"].sources]
    assert isinstance(plan.data["grade"], StreamedData) and kinds.count("product") == 4
    _agree(df, forms, monkeypatch)


@pytest.mark.parametrize(
    "kw", [{"delta": {"grade": 0.5}}, {"delta_cluster_sd": {"grade": 0.3}}, {"level2": True}]
)
def test_shifts_and_level2_neighbours_agree(monkeypatch, kw):
    # sensitivity shifts (added by the engine after the draw), and a class-level variable
    # imputed by its own model next to the streamed ones (default formulas)
    df = _data(n_classes=100)
    if kw.pop("level2", False):
        skill = df.groupby("class")["skill"].transform("first")
        df = df.assign(skill=skill.where(~df["class"].isin([3, 7, 11, 40])))
    _agree(df, None, monkeypatch, cluster="class", **kw)


def test_predictive_mean_matching_on_a_streamed_core_agrees(monkeypatch):
    # 2l.pmm: the core's parameters agree to rounding; a missing value is an observed
    # value of the donor matched on predictions that agree to about 1e-13, so a donor can
    # change only where two candidates' distances differ by less than that
    df = _data(n_classes=100)
    forms = {"grade": "~ relation + gender + cmean(relation) + (1 | class)"}
    df = df.assign(relation=df["relation"].fillna(0.0))
    monkeypatch.setenv("MLIMPUTE_NUMBA", "0")
    kw = {"method": {"grade": "2l.pmm"}, "m": 2, "iterations": 6, "rng": 3}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = df.mi.impute(forms, **kw)
        monkeypatch.setattr(streamed_module, "STREAM_MIN_ROWS", 0)
        got = df.mi.impute(forms, **kw)
    a, b = got.dataset["grade"].values, ref.dataset["grade"].values
    assert np.mean(a == b) > 0.999
    assert np.isin(a, df["grade"].dropna().to_numpy()).all()  # observed values only
    trace = param_var("grade")
    np.testing.assert_allclose(got.dataset[trace].values, ref.dataset[trace].values, rtol=1e-8)
