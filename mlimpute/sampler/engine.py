"""Chained equations with a carried Gibbs state.

Each of the m imputations is an independent chain started from random draws of the
observed values. One iteration visits every incomplete variable once: refresh the design
columns that depend on imputed values, take **one** Gibbs step of that variable's model
parameters (the state is carried from visit to visit, unlike mice's ``2l.norm``, which
restarts an inner sampler at every visit), then draw its missing values.

:func:`build_plan` does the work that is the same for every chain (sorting rows by cluster,
materialising designs); :func:`run_chain` is a pure function of the plan and a chain's seed,
so results never depend on the executor or the order chains run in. The plan is built
in :mod:`mlimpute.sampler.plan`, the sensitivity shifts of a chain are in
:mod:`mlimpute.sampler.chain_shifts`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlimpute import _numba
from mlimpute._heap import release_free_memory
from mlimpute.errors import ChainError
from mlimpute.models.ml_norm import MultilevelNormState, compiled_variables
from mlimpute.parallel import one_blas_thread
from mlimpute.sampler.chain_shifts import cluster_shifts, latent_shifts, shift_intercept
from mlimpute.sampler.compatible import ANALYSIS, run_compatible_chain
from mlimpute.sampler.design import ClusterValues, ModelData, Values, chain_designs
from mlimpute.sampler.plan import (
    Plan,
    _cluster_values,
    _model_dtypes,  # noqa: F401  (re-exported: newdata reaches it here)
    build_plan,
)
from mlimpute.sampler.ranefs import ranef_arrays
from mlimpute.sampler.shifts import ModelShifts
from mlimpute.sampler.trace_stats import mean_sd as _mean_sd

__all__ = ["ANALYSIS", "Plan", "ChainResult", "ChainState", "build_plan", "run_chain", "run_chains"]


@dataclass(frozen=True)
class ChainState:
    """Where a chain stopped: enough to run it on exactly as if it had never stopped.

    The chain's completed values are ``plan.start`` with ``imputed`` written into the
    missing cells (a level-2 variable's cluster values are read back from its rows), the
    model states are those of the last visit, and ``rng`` is the generator's
    ``bit_generator.state``. Continuing from here makes the same random calls in the same
    order as one longer run (:func:`run_chain` with ``start=``).
    """

    seed: np.random.SeedSequence  # the chain's own seed (its spawn key names the chain)
    iterations: int  # iterations run so far
    imputed: dict[str, np.ndarray]  # variable -> current values of its missing cells (sorted)
    states: dict[str, object]  # variable (or ANALYSIS) -> last model state
    rng: dict  # numpy ``bit_generator.state`` after the last iteration


@dataclass
class ChainResult:
    """What one chain returns: last imputations and per-iteration traces."""

    imputed: dict[str, np.ndarray]
    mean: np.ndarray  # (iterations, variables)
    sd: np.ndarray  # (iterations, variables)
    params: dict[str, np.ndarray]  # variable -> (iterations, k)
    final: ChainState | None = None  # where the chain stopped


def prefer_compiled(plan: Plan, work: float) -> None:
    """Load numba for a run of ``work`` rows × iterations × chains
    (:func:`mlimpute._numba.prefer`) where the kernels serve some variable of ``plan``
    (loading it for nothing else costs a second; the results do not depend on it)."""
    if work >= _numba.AUTO_WORK and compiled_variables(
        plan.models, {n: plan.data[n] for n in plan.names}
    ):
        _numba.prefer(work)


def run_chain(
    plan: Plan,
    chain: int,
    seed: np.random.SeedSequence,
    start: ChainState | None = None,
    iterations: int | None = None,
) -> ChainResult:
    """Run one chain from its own seed, or continue it from ``start``.

    Parameters
    ----------
    plan : Plan
        The plan (read-only).
    chain : int
        The chain's 0-based number (for error messages).
    seed : numpy.random.SeedSequence
        The chain's seed; its generator is used from the beginning unless ``start`` is
        given.
    start : ChainState, optional
        Where an earlier run of this chain stopped: the chain goes on from there (its
        generator state, model states and imputed values), bit-identical to a run that
        never stopped.
    iterations : int, optional
        Iterations to run (default ``plan.spec.iterations``).

    Returns
    -------
    ChainResult
        Traces of the iterations run here; ``final`` is where the chain stopped.
    """
    n = plan.spec.iterations if iterations is None else int(iterations)
    prefer_compiled(plan, plan.layout.n * n)
    try:
        rng = np.random.default_rng(seed)
        if start is not None:
            rng.bit_generator.state = start.rng
        if plan.analysis is not None:
            shifts = model_shifts(plan, seed)
            imputed, mean, sd, params, states = run_compatible_chain(plan, rng, n, start, shifts)
            done = n if start is None else start.iterations + n
            final = final_state(plan, seed, done, imputed, states, rng)
            return ChainResult(imputed, mean, sd, params, final)
        return _run_chain(plan, rng, n, start, seed)
    except (KeyboardInterrupt, ChainError):
        raise
    except Exception as exc:
        raise ChainError(
            f"chain {chain + 1} failed ({type(exc).__name__}: {exc}); reproduce it with the "
            f"same data and rng={seed.entropy} (chain spawn key {seed.spawn_key})",
            chain=chain,
            seed_entropy=seed.entropy,
        ) from exc


def model_shifts(plan: Plan, seed: np.random.SeedSequence) -> ModelShifts | None:
    """A model-based chain's sensitivity shifts (``delta=``, ``delta_cluster_sd=``;
    :mod:`mlimpute.sampler.shifts`), None without any."""
    if not (plan.spec.delta or plan.spec.delta_cluster_sd):
        return None
    cu = cluster_shifts(plan, seed)
    return ModelShifts(plan, latent_shifts(plan), cu, shift_intercept)


def start_values(
    plan: Plan, rng: np.random.Generator, start: ChainState | None
) -> tuple[Values, dict[str, np.ndarray]]:
    """A chain's completed columns (sorted order) and level-2 cluster values: random draws
    of the observed values for a new chain (random calls in visit order), or the values
    where ``start`` stopped (no random calls)."""
    values = Values(plan.layout, like=plan.like)
    levels = {v.name: v.level for v in plan.spec.variables}
    cvals = {}
    for name in plan.names:
        x = plan.start[name].copy()
        if start is not None:
            x[plan.missing_rows(name)] = start.imputed[name]
        if levels[name] >= 2:
            seg = plan.layout.segments if levels[name] == 2 else plan.top_segments
            codes = seg.codes
            c = _cluster_values(x, codes, seg.n_clusters)
            if start is None:
                mis = np.isnan(c)
                c[mis] = rng.choice(c[~mis], size=int(mis.sum()))
            cvals[name] = c
            x = np.take(c, codes)
        elif start is None:  # positions, not masks: the same draws, 3x faster
            mis = plan.missing_rows(name)
            x[mis] = rng.choice(np.take(x, plan.observed_rows(name)), size=mis.size)
        values[name] = x
    return values, cvals


def final_state(
    plan: Plan,
    seed: np.random.SeedSequence,
    iterations: int,
    imputed: dict[str, np.ndarray],
    states: dict[str, object],
    rng: np.random.Generator,
) -> ChainState:
    """Where a chain stopped (after checking its imputations are finite)."""
    bad = [n for n in plan.names if not np.all(np.isfinite(imputed[n]))]
    if bad:
        raise FloatingPointError(f"non-finite imputations for {bad}")
    return ChainState(seed, iterations, imputed, dict(states), rng.bit_generator.state)


def _run_chain(
    plan: Plan,
    rng: np.random.Generator,
    T: int,
    start: ChainState | None,
    seed: np.random.SeedSequence,
) -> ChainResult:
    # the plan's designs, refreshed in place (copies only while another thread holds them)
    with chain_designs(plan.data, plan.names) as datas:
        result = _steps(plan, rng, T, start, seed, datas)
    release_free_memory(plan.layout.n)  # the chain's columns and working arrays
    return result


def _steps(
    plan: Plan,
    rng: np.random.Generator,
    T: int,
    start: ChainState | None,
    seed: np.random.SeedSequence,
    datas: dict[str, ModelData],
) -> ChainResult:
    names = plan.names
    values, cvals = start_values(plan, rng, start)
    codes, first = plan.layout.codes, plan.layout.segments.starts
    level2 = {v.name for v in plan.spec.variables if v.level == 2}
    level3 = {v.name for v in plan.spec.variables if v.level == 3}
    states: dict[str, object] = {} if start is None else dict(start.states)
    done = 0 if start is None else start.iterations
    mean = np.empty((T, len(names)))
    sd = np.empty((T, len(names)))
    params = {n: np.empty((T, len(plan.param_names(n)))) for n in names}
    shift = dict(plan.spec.delta)  # sensitivity shifts: no random numbers, other models see them
    latent = latent_shifts(plan)  # categorical and count models: on the linear predictor
    cluster_shift = cluster_shifts(plan, seed)  # per-cluster shifts, from their own generator
    rows, refreshes = _compiled_block(plan, values, datas, level2 | level3, latent)
    # drawn, placed and traced by one compiled call: no shift between draw and placement
    direct = {n for n in rows if n not in shift and n not in cluster_shift}
    fast = {}
    if rows:
        from mlimpute.models.kernels.refresh import place_draws
        from mlimpute.models.ml_norm_compiled import ChainKernels, draw_missing_chains
        from mlimpute.sampler.batched_values import missing_rows

        trace = np.empty((2, 1))
        for n in direct:  # their calls' arguments prepared once
            got = ChainKernels.of(plan.models[n], datas[n], rng, MultilevelNormState)
            if got is not None:
                fast[n] = got

        def compiled_trace(name: str, t: int, k: int, ck) -> None:
            # after a compiled placement: the trace's mean and SD it computed, the parameters
            values.touch(name)
            mean[t, k], sd[t, k] = trace[0, 0], trace[1, 0]
            if ck is not None:
                ck.params(states[name], params[name][t])
            else:
                params[name][t] = plan.models[name].param_vector(states[name], datas[name])

    for t in range(T):
        for k, name in enumerate(names):
            d, model = datas[name], plan.models[name]
            refresh = refreshes.get(name)
            if refresh is not None:  # the compiled refresh, numpy's numbers
                refresh()
            elif name in level2:
                view = ClusterValues(values, first, ranef_arrays(plan, name, states))
                d.refresh(view, plan.cluster_static)
            elif name in level3:
                top = plan.top_segments
                d.refresh(ClusterValues(values, top.starts, {}, top), plan.top_static)
            else:
                d.refresh(values, plan.static)
            on = name in direct  # (the switch was read when the chain started)
            ck = fast.get(name) if on else None
            placed = (rows[name], missing_rows(d), trace[0], trace[1]) if on else None
            drawn = False
            if done + t == 0:
                states[name] = model.init(rng, d)
            elif ck is not None:  # with the draws where one call can do both
                states[name] = ck.step(states[name], placed)
                drawn = ck.placed
            else:
                states[name] = model.step(rng, states[name], d)
            if on and (ck is not None or np.ndim(states[name].sigma2) == 0):
                if ck is None:
                    draw_missing_chains([rng], [states[name]], [d], placed)
                elif not drawn:
                    ck.draw_place(states[name], *placed)
                compiled_trace(name, t, k, ck)
                continue
            if name in latent:
                index, delta, zi = latent[name]
                u = cluster_shift.get(name)
                draw = model.draw_missing(
                    rng, shift_intercept(states[name], index, delta, zi, u), d
                )
            else:
                draw = model.draw_missing(rng, states[name], d)
            if name in shift and name not in latent:
                draw = draw + shift[name]
            if name in cluster_shift and name not in latent:
                u = cluster_shift[name]
                draw = draw + (u[d.mis_idx] if name in level2 else u[codes[d.mis_idx]])
            if name in rows:  # placed and traced by one compiled call, numpy's numbers
                place_draws(rows[name], missing_rows(d), draw.reshape(1, -1), trace[0], trace[1])
                compiled_trace(name, t, k, ck)
                continue
            if name in level2:
                cvals[name][d.mis_idx] = draw
                values[name][:] = np.take(cvals[name], codes)
            elif name in level3:
                cvals[name][d.mis_idx] = draw
                values[name][:] = np.take(cvals[name], plan.top_segments.codes)
            else:
                values[name][d.mis_idx] = draw
            values.touch(name)
            mean[t, k], sd[t, k] = _mean_sd(draw)
            del draw  # in the chain's column now: not held through the next model's step
            params[name][t] = model.param_vector(states[name], d)
    imputed = {n: values[n][plan.missing_rows(n)] for n in names}
    final = final_state(plan, seed, done + T, imputed, states, rng)
    return ChainResult(imputed, mean, sd, params, final)


def _compiled_block(
    plan: Plan,
    values: Values,
    datas: dict[str, ModelData],
    upper: set[str],
    latent: dict,
) -> tuple[dict[str, np.ndarray], dict]:
    """With the compiled step switched on (:mod:`mlimpute._numba`), a chain run alone as a
    block of one (:mod:`mlimpute.sampler.batched_values`): its columns become views of one
    array, the designs of the level-1 variables whose step the kernels run are refreshed by
    one compiled call (in place: ``datas`` are this chain's own designs)
    and those variables' draws are placed and traced by the call that draws them (or, after
    a ``delta=`` shift, by another); the numbers of the numpy refresh bit for bit.
    Returns those variables' rows (1, n) and the refreshes; nothing where the compiled
    step does not run (their numpy twins then step the chain on its own designs, the
    same numbers)."""
    if not _numba.enabled():
        return {}, {}
    served = {
        n: n not in upper and n not in latent
        for n in compiled_variables(plan.models, {n: plan.data[n] for n in plan.names})
    }
    if not any(served.values()):
        return {}, {}
    from mlimpute.sampler.batched_values import block_refreshes, stack_values

    held = stack_values([values], list(plan.names))
    if held is None:
        return {}, {}
    rows = {n: held[0][i] for n, i in held[1].items() if served.get(n)}
    return rows, block_refreshes(plan, held, [datas], served, own=True)


def run_chains(plan: Plan, seeds: list[np.random.SeedSequence]) -> list[ChainResult]:
    """Run every chain serially, BLAS pinned to one thread (small matrices: threads only
    cost; executors come with the parallel back-ends)."""
    with one_blas_thread():
        return [run_chain(plan, k, s) for k, s in enumerate(seeds)]
