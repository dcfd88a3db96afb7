"""Run the chains of one plan serially, in a local process pool or on a dask cluster.

Every chain is a pure function of the shared :class:`~mlimpute.sampler.engine.Plan` and its
own ``SeedSequence`` (:func:`mlimpute.sampler.engine.run_chain`), so the executor only
decides *where* chains run, never what they return: results are bit-identical to the
serial run for the same seeds, whatever the executor or the number of workers.

The executors are those of :func:`mlimpute.parallel.map_blocks` (the one parallel map of
the package; its Notes give timings, start methods, blocks and faults): the plan is the
shared data, sent once to each worker; a task carries ``(chain number, seed)`` pairs of
consecutive chains and returns their results.

*Faults.* An exception inside a chain arrives as :class:`~mlimpute.errors.ChainError`
naming the chain and the seed that reproduces it; a worker that dies (killed, out of
memory) raises ``ChainError`` naming the first chain of its block.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mlimpute.errors import ChainError
from mlimpute.parallel import StartMethod, map_blocks, one_blas_thread, resolve_n_jobs
from mlimpute.sampler.batched import check_batch, run_block
from mlimpute.sampler.engine import ChainResult, ChainState, Plan, run_chain

__all__ = ["map_chains", "StartMethod"]


def _run_block(plan: Plan, block: list[tuple]) -> list[ChainResult]:
    """Chains ``block`` (tuples ``(k, seed, start, iterations)``) of ``plan``; runs in a
    worker too."""
    return [run_chain(plan, k, seed, start, n) for k, seed, start, n in block]


def _run_batched(shared: tuple[Plan, str | int], block: list[tuple]) -> list[ChainResult]:
    """:func:`_run_block` with ``shared = (plan, batch)``: the chains the batched runner
    covers are stepped together, ``batch`` at a time (:mod:`mlimpute.sampler.batched`;
    bit-identical)."""
    plan, batch = shared
    return run_block(plan, block, batch)


def _chain_error(exc: BaseException, block: list[tuple], where: str) -> ChainError:
    """An error from outside the chains (a dead worker...), blamed on the block's first
    chain: the executor cannot tell which chain of the block was running."""
    k, seed = block[0][:2]
    last = block[-1][0]
    chains = f"chain {k + 1}" if len(block) == 1 else f"chains {k + 1}-{last + 1}"
    return ChainError(
        f"{chains} failed in the {where} ({type(exc).__name__}: {exc}); rerun with n_jobs=1 "
        f"and the same rng to find the failing chain (chain {k + 1}: rng="
        f"{seed.entropy}, spawn key {seed.spawn_key})",
        chain=k,
        seed_entropy=seed.entropy,
    )


def map_chains(
    plan: Plan,
    seeds: Sequence[np.random.SeedSequence],
    *,
    n_jobs: int | None = None,
    client: Any = None,
    progress: Callable[[int], object] | None = None,
    start_method: StartMethod | None = None,
    starts: Sequence[ChainState | None] | None = None,
    iterations: int | None = None,
    first: int = 0,
    batch: str | int = "auto",
) -> list[ChainResult]:
    """Run chain ``k`` of ``plan`` from ``seeds[k]`` for every k; results in chain order.

    Parameters
    ----------
    plan : Plan
        From :func:`mlimpute.sampler.engine.build_plan`; read-only.
    seeds : sequence of numpy.random.SeedSequence
        One per chain (:func:`mlimpute.rng.chain_seeds`).
    n_jobs : int, optional
        ``None`` or 1: serial. ``k > 1``: a local pool of ``min(k, len(seeds))`` worker
        processes. Negative values count back from the usable cores (``-1``: all of them,
        ``-2``: all but one), as in joblib.
    client : dask.distributed.Client, optional
        Run the chains on this client's cluster instead (not together with ``n_jobs``).
    progress : callable, optional
        ``progress(n_done)`` is called in the calling thread with the number of finished
        chains each time a task (a block of chains) completes. An exception it raises
        stops the run.
    start_method : {"fork", "forkserver", "spawn"}, optional
        Process start method of the pool; default: ``fork`` on Linux when the caller runs a
        single Python thread, otherwise ``forkserver``, or ``spawn`` where that does not
        exist (see :mod:`mlimpute.parallel`).
    starts : sequence of ChainState or None, optional
        Continue chain ``k`` from ``starts[k]`` (where an earlier run stopped) instead of
        starting it afresh.
    iterations : int, optional
        Iterations per chain (default ``plan.spec.iterations``).
    first : int, default 0
        Number of the first chain (chain numbers only name chains in error messages).
    batch : "auto" or int, default "auto"
        Chains stepped together within each task (:mod:`mlimpute.sampler.batched`): 1 runs
        them one by one; results are bit-identical whatever the value.

    Returns
    -------
    list of ChainResult
        ``len(seeds)`` results, ``[k]`` from ``seeds[k]``: bit-identical whatever the
        executor.

    Raises
    ------
    ChainError
        A chain failed (``.chain``: its 0-based number, ``.seed_entropy``: the root
        entropy of its seed) or a worker died. Nothing is returned.
    SpecificationError
        Invalid ``n_jobs``, ``start_method``, or both ``n_jobs`` and ``client``.

    Examples
    --------
    >>> from mlimpute.datasets import classroom
    >>> from mlimpute.sampler.engine import build_plan, run_chains
    >>> from mlimpute.rng import chain_seeds
    >>> from mlimpute.spec.build import build_spec
    >>> df = classroom(1, rng=1).incomplete
    >>> spec = build_spec(df, {"grade": "~ skill + (1 | class)"}, m=4, iterations=5)
    >>> plan = build_plan(df, spec)
    >>> seeds, _ = chain_seeds(1, 4)
    >>> done = []
    >>> res = map_chains(plan, seeds, n_jobs=2, progress=done.append)
    >>> len(res), done[-1]
    (4, 4)
    >>> all((a.imputed["grade"] == b.imputed["grade"]).all()
    ...     for a, b in zip(res, run_chains(plan, seeds)))
    True
    """
    batch = check_batch(batch)
    where = "dask cluster" if client is not None else "process pool"

    def failure(exc: BaseException, block: list) -> ChainError:
        return _chain_error(exc, block, where)

    items = [
        (first + k, seed, None if starts is None else starts[k], iterations)
        for k, seed in enumerate(seeds)
    ]
    if batch != 1 and progress is not None and client is None and resolve_n_jobs(n_jobs) <= 1:
        # serially with progress, map_blocks runs one chain per call: run the batched
        # blocks here and, after each, report its chains one by one as the serial run does
        size = len(items) if batch == "auto" else batch
        out: list[ChainResult] = []
        with one_blas_thread():
            for i in range(0, len(items), size):
                out += run_block(plan, items[i : i + size], batch)
                for n_done in range(i + 1, len(out) + 1):
                    progress(n_done)
        return out
    return map_blocks(
        _run_block if batch == 1 else _run_batched,
        plan if batch == 1 else (plan, batch),
        items,
        n_jobs=n_jobs,
        client=client,
        start_method=start_method,
        progress=progress,
        failure=failure,
        name="mlimpute-chains",
    )
