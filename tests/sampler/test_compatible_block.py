"""Model-based chains stepped together (mlimpute.sampler.compatible_block) are
bit-identical to the chains run one by one.

The anchor is ``run_chain``: every imputation, trace, final model state (the analysis
model's included) and generator state of a chain in a block must equal it bit for bit
(``np.array_equal``, no tolerance), whatever the block size.
"""

import warnings

import numpy as np
import pandas as pd
import pytest

from mlimpute.impute import impute
from mlimpute.rng import chain_seeds
from mlimpute.sampler import batched
from mlimpute.sampler.batched import batch_size, can_batch
from mlimpute.sampler.compatible import ANALYSIS, CompatibleChain
from mlimpute.sampler.compatible_block import (
    can_step_together,
    run_compatible_block,
    stacked_predictors,
)
from mlimpute.sampler.engine import build_plan, run_chain
from mlimpute.simulation.compatible.designs import DESIGNS
from mlimpute.spec.model import build_model_spec, with_latent_means

SLOPE = "y ~ x + z + (1 + x | g)"


@pytest.fixture(scope="module")
def design_a():
    return DESIGNS["a"].generate(np.random.default_rng(1))[1]


@pytest.fixture(scope="module")
def design_d():
    return DESIGNS["d"].generate(np.random.default_rng(3))[1]


def _plan(df, model, iterations=3, **kw):
    spec = build_model_spec(df, model, None, m=4, iterations=iterations, **kw)
    return build_plan(with_latent_means(df, spec), spec)


def _same_state(a, b):
    if isinstance(a, tuple):
        assert a == b
        return
    for f in ("beta", "b", "psi", "alpha", "sigma2", "beta_mean", "b_mean"):
        if hasattr(a, f):
            assert np.array_equal(getattr(a, f), getattr(b, f)), f


def _same(a, b, names):
    assert np.array_equal(a.mean, b.mean, equal_nan=True)
    assert np.array_equal(a.sd, b.sd, equal_nan=True)
    for n in names:
        assert np.array_equal(a.imputed[n], b.imputed[n])
        assert np.array_equal(a.params[n], b.params[n], equal_nan=True)
    assert a.final.states.keys() == b.final.states.keys()
    for k in a.final.states:
        _same_state(a.final.states[k], b.final.states[k])
    assert a.final.rng == b.final.rng and a.final.iterations == b.final.iterations


def _check_block(plan, seed=1, C=4):
    assert can_step_together(plan)
    seeds, _ = chain_seeds(seed, C)
    T = plan.spec.iterations
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = [run_chain(plan, k, s) for k, s in enumerate(seeds)]
        # no fallback: the block runner itself
        got = run_compatible_block(plan, [(k, s, None, None) for k, s in enumerate(seeds)], 0, T)
    for a, b in zip(ref, got, strict=True):
        _same(a, b, plan.names)
    return ref, seeds


# a random slope on an imputed predictor (its random part changes with the imputations),
# an interaction, a binary predictor, a non-linear term drawn by Metropolis-Hastings, a
# column outside the analysis model (its own chained step)
@pytest.mark.parametrize(
    "model, kw",
    [
        (SLOPE, {}),
        ("y ~ x * z + (1 + x | g)", {}),
        ("y ~ x + k + z + (1 + x | g)", {}),
        ("y ~ x + I(x**2) + (1 | g)", {}),
        (SLOPE, {"cluster": "g"}),
    ],
)
def test_block_equals_chain_by_chain(design_a, model, kw):
    df = design_a
    if "k" in model or kw:
        k = (design_a.z + np.random.default_rng(9).normal(size=1000) > 0.3) * 1.0
        df = design_a.assign(k=k)
        df.loc[::7, "k"] = np.nan
    _check_block(_plan(df, model, **kw))


def test_predictor_models_are_stacked_where_they_can_be(design_a, design_d):
    """x's model (x ~ z + (1 | g)) is stepped by one call for the block; the owner of a
    latent cluster mean is not (its model is set from the means)."""
    ch = CompatibleChain(_plan(design_a, SLOPE), np.random.default_rng(0))
    assert stacked_predictors(ch.fx) == {"x"}
    ch = CompatibleChain(_plan(design_d, "y ~ x + lmean(x) + (1 | g)"), np.random.default_rng(0))
    assert stacked_predictors(ch.fx) == frozenset()


def test_block_with_a_latent_mean_equals_chain_by_chain(design_d):
    _check_block(_plan(design_d, "y ~ x + lmean(x) + (1 | g)"))


def test_block_with_sensitivity_shifts_equals_chain_by_chain(design_a):
    _check_block(_plan(design_a, SLOPE, delta={"x": 0.5}, delta_cluster_sd={"y": 0.3}))


def test_continued_block_equals_continued_chains(design_a):
    plan = _plan(design_a, SLOPE)
    ref, seeds = _check_block(plan)
    block = [(k, s, ref[k].final, 2) for k, s in enumerate(seeds)]
    got = run_compatible_block(plan, block, 3, 2)
    for k, s in enumerate(seeds):
        _same(run_chain(plan, k, s, ref[k].final, 2), got[k], plan.names)
        assert ANALYSIS in got[k].final.states


@pytest.mark.parametrize("batch", [2, 3, "auto"])
def test_any_batch_size_gives_the_same_imputations(design_a, batch):
    kw = dict(model=SLOPE, m=5, iterations=4, rng=3)
    one = impute(design_a, batch=1, **kw)
    got = impute(design_a, batch=batch, **kw)
    for k in one.dataset.data_vars:
        assert np.array_equal(one.dataset[k].values, got.dataset[k].values, equal_nan=True), k


def test_binary_and_count_outcomes_run_chain_by_chain(design_a):
    yb = (design_a.y > design_a.y.median()).astype(float).where(design_a.y.notna())
    plan = _plan(design_a.assign(yb=yb).drop(columns="y"), "yb ~ x + z + (1 | g)")
    assert not can_step_together(plan) and not can_batch(plan)
    assert batch_size(plan, "auto", 5) == 1
    counts = design_a.assign(y=pd.array(np.arange(1000) % 4, dtype="Int64"))
    counts.loc[::6, "y"] = pd.NA
    plan = _plan(counts, "y ~ x + z + (1 | g)", family="poisson")
    assert not can_step_together(plan)


def test_auto_steps_model_based_chains_together_up_to_its_limit(design_a, monkeypatch):
    plan = _plan(design_a, SLOPE)
    assert can_batch(plan) and batch_size(plan, "auto", 20) == 20
    assert batch_size(plan, 1, 20) == 1 and batch_size(plan, 6, 20) == 6
    # random slopes or not, model-based plans use the random intercepts' limit
    monkeypatch.setattr(batched, "AUTO_MAX_ROWS", 999)
    assert batch_size(plan, "auto", 20) == 1
