"""A block of model-based chains stepped together.

The model-based sampler (:mod:`mlimpute.sampler.compatible`) spends most of an iteration
of a small data set in the analysis model's step: with a random slope, 20 Metropolis–
Hastings proposals on its 2×2 covariance and the per-cluster 2×2 algebra, each a few
dozen numpy calls on arrays of one entry per cluster. Here the chains of a block run in
lockstep: at each iteration every chain's analysis design is refreshed, one call of
:func:`~mlimpute.models.ml_norm_batched.step_block` (at a chain's first iteration
:func:`~mlimpute.models.ml_norm_batched.init_block`) makes the analysis model's step of
every chain with the per-cluster arithmetic stacked over the chains, and the rest of the
iteration (the predictors' models, their missing values, the missing outcomes, the
columns outside the analysis model) runs chain by chain, by the same code as a chain run
alone (:class:`~mlimpute.sampler.compatible.CompatibleChain`).

Each chain keeps its own generator and draws the same numbers in the same order as
:func:`~mlimpute.sampler.compatible.run_compatible_chain`, so the results are bit-identical
to running the chains one by one, whatever the block size. The analysis models covered
are those :func:`~mlimpute.models.ml_norm_batched.stackable` names: the multilevel normal
model with the default prior, with a random intercept or with random slopes (also on an
imputed predictor); other analysis models (binary and count outcomes, several
random-effect terms) run chain by chain.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mlimpute.models.ml_norm_batched import (
    eligible,
    gibbs_block,
    init_block,
    random_slopes,
    stackable,
    step_block,
)
from mlimpute.sampler.compatible import CompatibleChain
from mlimpute.sampler.compatible_context import Fixed
from mlimpute.sampler.compatible_step import predictor_response
from mlimpute.sampler.engine import ChainResult, Plan, final_state, model_shifts

__all__ = ["can_step_together", "run_compatible_block"]


def can_step_together(plan: Plan) -> bool:
    """Whether the model-based chains of ``plan`` can be stepped together (its analysis
    model's step is stacked over chains, bit-identically)."""
    return plan.analysis is not None and stackable(plan.analysis_model, plan.analysis)


def run_compatible_block(
    plan: Plan, block: Sequence[tuple], done: int, T: int
) -> list[ChainResult]:
    """The chains of ``block`` (tuples ``(k, seed, start, iterations)``, all continuing
    from iteration ``done``) stepped together for ``T`` iterations; bit-identical to
    :func:`~mlimpute.sampler.engine.run_chain` on each."""
    chains = []
    for _, seed, start, _ in block:
        rng = np.random.default_rng(seed)
        if start is not None:
            rng.bit_generator.state = start.rng
        chains.append(CompatibleChain(plan, rng, T, start, model_shifts(plan, seed)))
    model = plan.analysis_model
    stacked = stacked_predictors(chains[0].fx)
    rngs = [ch.rng for ch in chains]
    datas = [ch.fx.analysis_data for ch in chains]
    for t in range(T):
        for ch in chains:
            ch.refresh_analysis()
        if done + t == 0:
            new = init_block(model, rngs, datas)
        else:
            new = step_block(model, rngs, [ch.cur.analysis for ch in chains], datas)
        for ch, state in zip(chains, new, strict=True):
            ch.cur.analysis = state
        for x in chains[0].fx.preds:  # 2. each predictor's model
            if x in stacked:
                _predictor_block(plan, chains, x, done + t)
            else:
                for ch in chains:
                    ch.parameter_step(t, x)
        for ch in chains:
            ch.after_parameters(t)
    out = []
    for ch, (_, seed, _, _) in zip(chains, block, strict=True):
        imputed, mean, sd, params, states = ch.result()
        final = final_state(plan, seed, done + T, imputed, states, ch.rng)
        out.append(ChainResult(imputed, mean, sd, params, final))
    return out


def stacked_predictors(fx: Fixed) -> frozenset[str]:
    """The predictors whose models' steps a block makes by one stacked call: continuous
    level-1 predictors with the multilevel normal model on a random intercept
    (:func:`~mlimpute.models.ml_norm_batched.eligible`), fitted to the chain's completed
    column (not the owner of a latent cluster mean, whose model is set from the means)."""
    plan = fx.plan
    other = fx.level2 | fx.level3 | fx.categorical | fx.counts | set(fx.latent.values())
    return frozenset(
        x
        for x in fx.preds
        if x not in other
        and eligible(plan.models[x], fx.datas[x])
        and not random_slopes(fx.datas[x])
    )


def _predictor_block(plan: Plan, chains: list[CompatibleChain], x: str, it: int) -> None:
    """Step 2 for predictor x at iteration ``it`` of every chain: as
    :func:`~mlimpute.sampler.compatible_step.parameter_step` makes it (``model.start``
    at the first iteration, else ``model.gibbs``, on the chain's completed column), by
    one call of :func:`~mlimpute.models.ml_norm_batched.gibbs_block`."""
    model = plan.models[x]
    ys = [predictor_response(ch.fx, ch.cur, x, ch.shifts) for ch in chains]
    datas = [ch.fx.datas[x] for ch in chains]
    if it == 0:  # model.start: the start from the completed column, then one step
        states = [model.start_state(d, y) for d, y in zip(datas, ys, strict=True)]
    else:
        states = [ch.states[x] for ch in chains]
    new = gibbs_block(model, [ch.rng for ch in chains], states, datas, ys)
    for ch, state in zip(chains, new, strict=True):
        ch.states[x] = state
