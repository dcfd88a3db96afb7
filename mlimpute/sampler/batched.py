"""Run a block of chains as one state: one Python-level step per visit for the block.

For plans without an analysis model (``model=``) where some level-1 variable is imputed
by the multilevel normal model with the default prior and a random part that the
imputations do not change — a random intercept, or random slopes with correlated or
uncorrelated blocks (:func:`mlimpute.models.ml_norm_batched.eligible`) — the chains of a
block are stepped together; the other variables' models (level-2 and level-3 variables
included) make their own calls, chain by chain, inside the same block. Each visit
refreshes every chain's design, then one call of
:func:`~mlimpute.models.ml_norm_batched.step_block` (at the first iteration
:func:`~mlimpute.models.ml_norm_batched.init_block`) updates all their states with the
per-cluster arithmetic stacked over the chains; ``delta=`` and ``delta_cluster_sd=``
shifts are added to each chain's draws as in a chain run alone. Each chain keeps its own
generator and draws the same numbers in the same order as
:func:`mlimpute.sampler.engine.run_chain`, so the results are bit-identical to running the
chains one by one, whatever the block size.

Other plans, and a block whose run fails, are run chain by chain exactly as before (a
failing chain then raises its own :class:`~mlimpute.errors.ChainError`).

Where the kernels serve a variable's data,
:func:`~mlimpute.models.ml_norm_batched.step_block` is one kernel call for the block
(:mod:`mlimpute.models.ml_norm_compiled`: compiled, or their numpy twins with the same
numbers bit for bit), and a chain run alone calls the same kernel. With the compiled
step switched on (:mod:`mlimpute._numba`), the chains' imputed columns are also held in
one array, a design that changes only in imputed columns and their ``cmean()`` is
refreshed for every chain by one compiled call, and each visit's draws are written and
traced by another (:mod:`mlimpute.sampler.batched_values`,
:mod:`mlimpute.models.kernels.refresh`: numpy's numbers bit for bit). A chain run alone
takes the same refresh and placement as a block of one (:mod:`mlimpute.sampler.engine`).
The figures below are the numpy code's.

The rule for ``batch="auto"``: chains are stepped together when the plan has at most
:data:`AUTO_MAX_ROWS` rows (:data:`AUTO_MAX_ROWS_SLOPES` where a stacked variable has
random slopes); above that the per-chain Python overhead that batching saves
is small against the arithmetic, which batching does not reduce (CPU time per Gibbs step,
m = 25, ``benchmarks/bench_batched.py``: random intercepts 2.3x faster at 600 rows, 1.5x
at 2,000, 1.2x at 6,000, 1.0-1.15x at 12,000-20,000; the random slope of the classroom
experiment 3, 4.2-5x at 600 rows, 2.75x at 6,000, 1.7x at 20,000, 1.6x at 60,000).

Model-based imputation (``model=``) steps its chains together through
:mod:`mlimpute.sampler.compatible_block` (the analysis model's step and the predictors'
models stacked, the draws chain by chain), up to :data:`AUTO_MAX_ROWS` rows whatever its
random part: CPU time of ``impute(model="y ~ x + z + (1 + x | g)")`` on copies of the
compatible-imputation design (a), chains together against one by one, 2.0x faster at
1,000 rows (m = 20), 1.2x at 10,000 (m = 10), 1.0x at 20,000-30,000 and 0.85-0.9x at
60,000 (m = 5 and 10).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mlimpute import _numba
from mlimpute.errors import SpecificationError
from mlimpute.models.ml_norm_batched import (
    draw_missing_block,
    eligible,
    init_block,
    param_block,
    random_slopes,
    step_block,
)
from mlimpute.sampler.batched_values import block_refreshes, missing_rows, stack_values
from mlimpute.sampler.compatible_block import can_step_together, run_compatible_block
from mlimpute.sampler.design import ClusterValues
from mlimpute.sampler.engine import (
    ChainResult,
    ChainState,
    Plan,
    cluster_shifts,
    final_state,
    latent_shifts,
    prefer_compiled,
    run_chain,
    shift_intercept,
    start_values,
)
from mlimpute.sampler.ranefs import ranef_arrays
from mlimpute.sampler.trace_stats import mean_sd as _mean_sd
from mlimpute.sampler.trace_stats import mean_sd_rows

__all__ = ["AUTO_MAX_ROWS", "AUTO_MAX_ROWS_SLOPES", "batch_size", "can_batch", "run_block"]

#: ``batch="auto"`` steps chains together up to this many rows (see the module notes)
AUTO_MAX_ROWS = 20_000
#: ... and up to this many where a stacked variable has random slopes (their per-cluster
#: q x q work and Metropolis-Hastings update keep the gain: 1.7x at 20,000 rows, 1.6x at
#: 60,000, CPU time per Gibbs step of the experiment-3 design, m = 25)
AUTO_MAX_ROWS_SLOPES = 60_000


def check_batch(batch: object) -> str | int:
    """``batch`` validated: ``"auto"`` or a positive int (SpecificationError otherwise)."""
    if isinstance(batch, str) and batch == "auto":
        return batch
    if isinstance(batch, (int, np.integer)) and not isinstance(batch, bool) and batch >= 1:
        return int(batch)
    raise SpecificationError(f"batch must be 'auto' or a positive number of chains, got {batch!r}")


def can_batch(plan: Plan) -> bool:
    """Whether the chains of ``plan`` can be stepped together (bit-identically)."""
    spec = plan.spec
    if plan.analysis is not None:  # model-based: the analysis model's step stacked
        return bool(spec.variables) and can_step_together(plan)
    if not spec.variables:
        return False
    levels = {v.name: v.level for v in spec.variables}
    try:
        latent = latent_shifts(plan)
    except SpecificationError:  # the chains raise it, one by one
        return False
    return any(
        levels[n] == 1 and n not in latent and eligible(plan.models[n], plan.data[n])
        for n in plan.names
    )


def _auto_max_rows(plan: Plan) -> int:
    if plan.analysis is not None:  # model-based (mlimpute.sampler.compatible_block)
        return AUTO_MAX_ROWS
    levels = {v.name: v.level for v in plan.spec.variables}
    slopes = any(
        levels[n] == 1 and eligible(plan.models[n], plan.data[n]) and random_slopes(plan.data[n])
        for n in plan.names
    )
    return AUTO_MAX_ROWS_SLOPES if slopes else AUTO_MAX_ROWS


def batch_size(plan: Plan, batch: str | int, n_chains: int) -> int:
    """Chains per batched block for ``batch`` (1: chain by chain)."""
    batch = check_batch(batch)
    if n_chains < 2 or not can_batch(plan):
        return 1
    if batch == "auto":
        return n_chains if plan.layout.n <= _auto_max_rows(plan) else 1
    return min(batch, n_chains)


def run_block(plan: Plan, block: Sequence[tuple], batch: str | int = "auto") -> list[ChainResult]:
    """Chains ``block`` (tuples ``(k, seed, start, iterations)``), ``batch`` at a time.

    Bit-identical to ``[run_chain(plan, k, seed, start, n) for ...]``.
    """
    lengths = sum(plan.spec.iterations if n is None else int(n) for *_, n in block)
    prefer_compiled(plan, plan.layout.n * lengths)
    size = batch_size(plan, batch, len(block))
    if size <= 1:
        return [run_chain(plan, k, seed, start, n) for k, seed, start, n in block]
    out: list[ChainResult] = []
    for i in range(0, len(block), size):
        out += _run_together(plan, list(block[i : i + size]))
    return out


def _run_together(plan: Plan, block: list[tuple]) -> list[ChainResult]:
    """One block stepped together, or chain by chain where it cannot be (chains that
    continue from different iterations) or where it fails (then each chain runs alone and
    a failing one raises its own error)."""
    starts = [start for _, _, start, _ in block]
    done = {0 if s is None else s.iterations for s in starts}
    lengths = {plan.spec.iterations if n is None else int(n) for *_, n in block}
    if len(done) == 1 and len(lengths) == 1 and len(block) > 1:
        try:
            if plan.analysis is not None:
                return run_compatible_block(plan, block, done.pop(), lengths.pop())
            return _stepped(plan, block, done.pop(), lengths.pop())
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception:  # noqa: BLE001 - rerun alone: the chain's own error is raised
            pass
    return [run_chain(plan, k, seed, start, n) for k, seed, start, n in block]


def _stepped(plan: Plan, block: list[tuple], done: int, T: int) -> list[ChainResult]:
    """The chains of ``block`` stepped together: per visit, each chain's design refreshed
    and its draws post-processed exactly as :func:`~mlimpute.sampler.engine._run_chain`
    does (level-2 and level-3 variables on their cluster values, ``delta=`` shifts,
    per-cluster shifts from each chain's own generator), the stacked variables' steps by
    one call for the block and the other variables' by their own calls, chain by chain."""
    names = plan.names
    C = len(block)
    seeds = [seed for _, seed, _, _ in block]
    starts: list[ChainState | None] = [start for _, _, start, _ in block]
    rngs = []
    for seed, start in zip(seeds, starts, strict=True):
        rng = np.random.default_rng(seed)
        if start is not None:
            rng.bit_generator.state = start.rng
        rngs.append(rng)
    started = [start_values(plan, rngs[c], starts[c]) for c in range(C)]
    values = [v for v, _ in started]
    cvals = [cv for _, cv in started]
    levels = {v.name: v.level for v in plan.spec.variables}
    codes, first = plan.layout.codes, plan.layout.segments.starts
    top = plan.top_segments
    datas = [{n: plan.data[n].for_chain() for n in names} for _ in range(C)]
    states = [{} if s is None else dict(s.states) for s in starts]
    shift = dict(plan.spec.delta)
    latent = latent_shifts(plan)
    cluster_shift = [cluster_shifts(plan, seed) for seed in seeds]
    stacked = {
        n: levels[n] == 1 and n not in latent and eligible(plan.models[n], plan.data[n])
        for n in names
    }
    # with the kernels on: the chains' columns as views of one array, and the designs
    # one compiled call refreshes for the block
    on = _numba.enabled() and any(stacked.values())
    held = stack_values(values, list(names)) if on else None
    rows = {} if held is None else {n: held[0][k] for n, k in held[1].items()}
    refreshes = block_refreshes(plan, held, datas, stacked)
    if held is not None:
        from mlimpute.models.kernels.refresh import place_draws

        trace_mean, trace_sd = np.empty(C), np.empty(C)
    mean = np.empty((C, T, len(names)))
    sd = np.empty((C, T, len(names)))
    params = {n: np.empty((C, T, len(plan.param_names(n)))) for n in names}
    for t in range(T):
        for k, name in enumerate(names):
            model = plan.models[name]
            level = levels[name]
            ds = [datas[c][name] for c in range(C)]
            refresh = refreshes.get(name)
            if refresh is not None:  # every chain's design by one call
                refresh()
            for c in range(C) if refresh is None else ():
                if level == 2:
                    ranefs = ranef_arrays(plan, name, states[c])
                    ds[c].refresh(ClusterValues(values[c], first, ranefs), plan.cluster_static)
                elif level == 3:
                    ds[c].refresh(ClusterValues(values[c], top.starts, {}, top), plan.top_static)
                else:
                    ds[c].refresh(values[c], plan.static)
            if not stacked[name]:  # another model: its own calls, chain by chain
                draws = []
                for c in range(C):
                    if done + t == 0:
                        states[c][name] = model.init(rngs[c], ds[c])
                    else:
                        states[c][name] = model.step(rngs[c], states[c][name], ds[c])
                    cur = states[c][name]
                    if name in latent:
                        index, delta, zi = latent[name]
                        u = cluster_shift[c].get(name)
                        cur = shift_intercept(cur, index, delta, zi, u)
                    draws.append(model.draw_missing(rngs[c], cur, ds[c]))
                params[name][:, t] = [model.param_vector(states[c][name], ds[c]) for c in range(C)]
            else:
                if done + t == 0:
                    new = init_block(model, rngs, ds)
                else:
                    new = step_block(model, rngs, [states[c][name] for c in range(C)], ds)
                for c in range(C):
                    states[c][name] = new[c]
                draws = draw_missing_block(rngs, new, ds)
                params[name][:, t] = param_block(new, ds[0])
            if name not in latent and (name in shift or plan.spec.delta_cluster_sd):
                draws = [
                    _shifted(draws[c], name, shift, cluster_shift[c], ds[c], level, codes)
                    for c in range(C)
                ]
            mis = ds[0].mis_idx
            if level == 1 and isinstance(draws, np.ndarray) and name in rows:
                # every chain's column, and the trace, by one compiled call
                place_draws(rows[name], missing_rows(ds[0]), draws, trace_mean, trace_sd)
                mean[:, t, k], sd[:, t, k] = trace_mean, trace_sd
                for c in range(C):
                    values[c].touch(name)
                continue
            for c in range(C):
                if level == 1:
                    values[c][name][mis] = draws[c]
                else:
                    cvals[c][name][mis] = draws[c]
                    into = codes if level == 2 else top.codes
                    values[c][name][:] = np.take(cvals[c][name], into)
                values[c].touch(name)
            if isinstance(draws, np.ndarray):
                mean[:, t, k], sd[:, t, k] = mean_sd_rows(draws)
            else:
                for c in range(C):
                    mean[c, t, k], sd[c, t, k] = _mean_sd(draws[c])
    out = []
    for c in range(C):
        imputed = {n: values[c][n][plan.missing_rows(n)] for n in names}
        final = final_state(plan, seeds[c], done + T, imputed, states[c], rngs[c])
        out.append(ChainResult(imputed, mean[c], sd[c], {n: params[n][c] for n in names}, final))
    return out


def _shifted(
    draw: np.ndarray,
    name: str,
    shift: dict[str, float],
    cluster_shift: dict[str, np.ndarray],
    data: object,
    level: int,
    codes: np.ndarray,
) -> np.ndarray:
    """A chain's draws of ``name`` with its ``delta=`` shift and its per-cluster shift
    added, in :func:`~mlimpute.sampler.engine._run_chain`'s order."""
    if name in shift:
        draw = draw + shift[name]
    if name in cluster_shift:
        u = cluster_shift[name]
        draw = draw + (u[data.mis_idx] if level == 2 else u[codes[data.mis_idx]])
    return draw
