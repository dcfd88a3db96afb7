"""Run the chains of one plan serially, in a local process pool or on a dask cluster.

Every chain is a pure function of the shared :class:`~mlimpute.sampler.engine.Plan` and its own
``SeedSequence`` (:func:`mlimpute.sampler.engine.run_chain`), so the executor only decides *where*
chains run, never what they return: results are bit-identical to the serial run for the
same seeds, whatever the executor or the number of workers.

Three executors, chosen by :func:`map_chains`'s arguments:

* **serial** (``n_jobs=None`` or ``1``): :func:`mlimpute.sampler.engine.run_chains`, BLAS pinned
  to one thread.
* **process pool** (``n_jobs=k``, ``k > 1``, or ``-1`` for every core): a
  :class:`concurrent.futures.ProcessPoolExecutor`. The plan reaches each worker **once**,
  through the pool's initializer (inherited memory under ``fork``, one pickle per worker
  otherwise); tasks carry only ``(first chain, seeds)`` and return the chains' results.
  Each worker pins BLAS to one thread and ignores ``SIGINT`` (the parent handles Ctrl-C
  and stops the workers).
* **dask.distributed** (``client=``): the plan is scattered to every worker once
  (``client.scatter(plan, broadcast=True)``); each task names it by its future.

Notes
-----
Figures from ``benchmarks/bench_executors.py`` on a 2-core Linux machine (Python 3.11),
20 iterations, seconds for the chains (pool start-up included):

==========================  ======================  ======================
executor                    experiment 3, m = 25    60,000 rows, m = 10
==========================  ======================  ======================
serial                      0.43                    1.07
n_jobs=2, fork              0.33                    0.63
n_jobs=2, forkserver        1.28 first, then 0.60   0.73
n_jobs=2, spawn             2.4                     1.8
dask, 2 workers             0.28                    1.38 (1.03 malloc tuned)
==========================  ======================  ======================

*Start method.* Starting two workers that hold the plan takes 0.015 s with ``fork``
(the plan is inherited, not pickled), 0.7-2 s with ``spawn`` (every worker imports numpy,
pandas, scipy and mlimpute, every time), 0.8 s with ``forkserver`` unless the server has
mlimpute preloaded: then 0.7 s once per process and 0.03 s (experiment 3) / 0.14 s
(60,000 rows: a 13.8 MB plan pickled to each worker) afterwards. Only ``fork`` makes a
first parallel run pay on small data. But ``fork`` is unsafe when the parent runs other
Python threads (a dask client's event loop, a Jupyter kernel, tqdm's monitor): a lock
held by one of them at fork time stays locked in the child. The default
(``start_method=None``) is therefore ``fork`` on Linux when the calling process runs a
single Python thread, ``forkserver`` with ``mlimpute.sampler.executors`` preloaded otherwise,
and ``spawn`` where neither exists (Windows). Native BLAS threads do not count: OpenBLAS
stops its pool around ``fork``. (From Python 3.12, ``fork`` in a process with any OS
thread, numpy's OpenBLAS pool included, emits a ``DeprecationWarning``; pass
``start_method="forkserver"`` to avoid it.) A forked worker's first chains run about
0.07 s slower (copy-on-write, cold caches). Workers started by ``forkserver``, ``spawn``
or dask import mlimpute from disk: if its files changed since the caller imported it
(an editable install being edited), their chains differ from the caller's.

*Blocks.* Chains are sent in ``min(m, 4 x workers)`` blocks of consecutive chains.
Per-task overhead is about 0.1 ms in the process pool and 2 ms on a 2-worker dask
``LocalCluster``, against 17 ms for one chain of experiment 3 and 100 ms at 60,000 rows.
Chains of one plan cost about the same, so load balance needs few tasks per worker; four
keep progress moving and let a fast worker take over from a slow one. Measured against
one chain per task: the same in the pool (0.33 s, 0.63 s), faster on dask for
experiment 3 (0.28 s against 0.37 s) and 60,000 rows (1.38 s against 1.43 s).

*dask and malloc.* dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``,
which also turns off glibc's dynamic mmap threshold: every temporary above 128 kB (one
column at 60,000 rows is 480 kB) is then mapped, page-faulted and unmapped anew, and a
chain runs 2.5 times slower. Starting the cluster under
``dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": 2**27,
"distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 2**25})`` avoids it; the
executor leaves the caller's workers as they are.

*Faults.* An exception inside a chain arrives as :class:`~mlimpute.errors.ChainError`
naming the chain and the seed that reproduces it; a worker that dies (killed, out of
memory) raises ``ChainError`` naming the first chain of its block. The first fault stops
the run: pending tasks are cancelled, pool workers terminated, and no partial result is
returned. ``KeyboardInterrupt`` (or any exception, from ``progress`` too) does the same
and leaves no worker process behind. On a dask cluster the tasks and the scattered plan
are cancelled, but a chain already running keeps its worker busy until it ends (dask
cannot stop a running task); the cluster itself belongs to the caller.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from threadpoolctl import threadpool_limits

from mlimpute.errors import ChainError, SpecificationError
from mlimpute.parallel import one_blas_thread
from mlimpute.sampler.engine import ChainResult, Plan, run_chain, run_chains

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterator

__all__ = ["map_blocks", "map_chains", "StartMethod"]

StartMethod = Literal["fork", "forkserver", "spawn"]

#: Tasks per worker: enough for progress and for load balance between equal-cost chains.
TASKS_PER_WORKER = 4

_PRELOAD = ["__main__", "mlimpute.sampler.executors"]


def map_chains(
    plan: Plan,
    seeds: Sequence[np.random.SeedSequence],
    *,
    n_jobs: int | None = None,
    client: Any = None,
    progress: Callable[[int], object] | None = None,
    start_method: StartMethod | None = None,
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
        exist (see Notes of the module).

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
    seeds = list(seeds)
    if client is not None and n_jobs is not None:
        raise SpecificationError("pass n_jobs or client, not both")
    if client is not None:
        return _map_dask(plan, seeds, client, progress)
    workers = min(_resolve_n_jobs(n_jobs), len(seeds))
    method = _start_method(start_method)
    if workers <= 1:
        return _map_serial(plan, seeds, progress)
    return _map_pool(plan, seeds, workers, progress, method)


# ---------------------------------------------------------------- choices


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _resolve_n_jobs(n_jobs: int | None) -> int:
    if n_jobs is None:
        return 1
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs == 0:
        raise SpecificationError(
            f"n_jobs must be a non-zero integer (-1: all cores) or None, got {n_jobs!r}"
        )
    if n_jobs > 0:
        return int(n_jobs)
    return max(1, _usable_cores() + 1 + int(n_jobs))


def _start_method(name: str | None) -> str:
    available = multiprocessing.get_all_start_methods()
    if name is not None:
        if name not in available:
            raise SpecificationError(
                f"start_method must be one of {available} on this platform, got {name!r}"
            )
        return name
    if sys.platform.startswith("linux") and threading.active_count() == 1:
        return "fork"
    return "forkserver" if "forkserver" in available else "spawn"


def _blocks(m: int, workers: int) -> list[range]:
    """``min(m, TASKS_PER_WORKER * workers)`` runs of consecutive chains, sizes within 1."""
    n_tasks = max(1, min(m, TASKS_PER_WORKER * workers))
    size, extra = divmod(m, n_tasks)
    out, start = [], 0
    for i in range(n_tasks):
        stop = start + size + (i < extra)
        out.append(range(start, stop))
        start = stop
    return out


def _chain_error(exc: BaseException, block: range, seeds: list, where: str) -> ChainError:
    """An error from outside the chains (a dead worker...), blamed on the block's first
    chain: the executor cannot tell which chain of the block was running."""
    k = block.start
    chains = f"chain {k + 1}" if len(block) == 1 else f"chains {k + 1}-{block.stop}"
    return ChainError(
        f"{chains} failed in the {where} ({type(exc).__name__}: {exc}); rerun with n_jobs=1 "
        f"and the same rng to find the failing chain (chain {k + 1}: rng="
        f"{seeds[k].entropy}, spawn key {seeds[k].spawn_key})",
        chain=k,
        seed_entropy=seeds[k].entropy,
    )


# ---------------------------------------------------------------- worker side


def _run_block(plan: Plan, start: int, seeds: list) -> list[ChainResult]:
    return [run_chain(plan, start + i, s) for i, s in enumerate(seeds)]


_worker_plan: Plan | None = None


def _init_worker(plan: Plan) -> None:
    """Pool initializer: keep the plan, pin BLAS for the process' life, leave Ctrl-C to
    the parent (it terminates the workers)."""
    global _worker_plan
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threadpool_limits(limits=1, user_api="blas")  # applied now, never restored
    _worker_plan = plan


def _pool_task(start: int, seeds: list) -> list[ChainResult]:
    return _run_block(_worker_plan, start, seeds)


_pin_lock = threading.Lock()
_pin_count = 0
_pin_limiter: Any = None


@contextmanager
def _blas_pinned() -> Iterator[None]:
    """BLAS at one thread while any task of this process runs; the last one restores it.

    A plain ``with threadpool_limits(1)`` per task would, on a dask worker with several
    threads, let one task restore the limits while another still runs.
    """
    global _pin_count, _pin_limiter
    with _pin_lock:
        if _pin_count == 0:
            _pin_limiter = threadpool_limits(limits=1, user_api="blas")
        _pin_count += 1
    try:
        yield
    finally:
        with _pin_lock:
            _pin_count -= 1
            if _pin_count == 0:
                _pin_limiter.restore_original_limits()
                _pin_limiter = None


def _dask_task(plan: Plan, start: int, seeds: list) -> list[ChainResult]:
    with _blas_pinned():
        return _run_block(plan, start, seeds)


# ---------------------------------------------------------------- executors


def _map_serial(plan: Plan, seeds: list, progress: Callable[[int], object] | None):
    if progress is None:
        return run_chains(plan, seeds)
    out = []
    with one_blas_thread():
        for k, s in enumerate(seeds):
            out.append(run_chain(plan, k, s))
            progress(k + 1)
    return out


def _map_pool(plan, seeds, workers, progress, method) -> list[ChainResult]:
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":
        # import mlimpute once in the server, not in every worker (0.8 s -> 0.03 s);
        # no effect once the server runs
        ctx.set_forkserver_preload(_PRELOAD)
    results: list[Any] = [None] * len(seeds)
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(plan,))
    clean = False
    try:
        pending: dict[Future, range] = {
            pool.submit(_pool_task, b.start, seeds[b.start : b.stop]): b
            for b in _blocks(len(seeds), workers)
        }
        n_done = 0
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in sorted(done, key=lambda f: pending[f].start):
                block = pending.pop(fut)
                try:
                    out = fut.result()
                except ChainError:
                    raise
                except Exception as exc:
                    raise _chain_error(exc, block, seeds, f"{method} process pool") from exc
                results[block.start : block.stop] = out
                n_done += len(block)
                if progress is not None:
                    progress(n_done)
        clean = True
    finally:
        if clean:
            pool.shutdown(wait=True)
        else:
            _terminate(pool)
    return results


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Cancel what is queued and stop the workers now, without waiting for their chains."""
    terminate = getattr(pool, "terminate_workers", None)  # Python >= 3.14
    if terminate is not None:
        terminate()
        return
    seen: dict[int, object] = {}

    def _collect() -> None:  # the pool may register a worker after a first look
        for p in list((getattr(pool, "_processes", None) or {}).values()):
            seen.setdefault(id(p), p)

    _collect()
    pool.shutdown(wait=False, cancel_futures=True)
    for _ in range(3):
        _collect()
        for p in list(seen.values()):
            if p.is_alive():
                p.terminate()
        for p in list(seen.values()):
            p.join(5)
            if p.is_alive():  # pragma: no cover - ignores SIGTERM
                p.kill()
                p.join()


def _map_dask(plan, seeds, client, progress) -> list[ChainResult]:
    from distributed import as_completed

    if not hasattr(client, "scatter") or not hasattr(client, "submit"):
        raise SpecificationError(f"client must be a dask.distributed.Client, got {client!r}")
    if getattr(client, "asynchronous", False):
        raise SpecificationError("an asynchronous dask client is not supported")
    workers = max(1, sum(client.nthreads().values()))
    blocks = _blocks(len(seeds), workers)
    token = uuid.uuid4().hex
    results: list[Any] = [None] * len(seeds)
    plan_future = client.scatter(plan, broadcast=True, hash=False)
    futures, block_of = [], {}
    try:
        for b in blocks:
            fut = client.submit(
                _dask_task,
                plan_future,
                b.start,
                seeds[b.start : b.stop],
                pure=False,
                key=f"mlimpute-chains-{b.start + 1}-{b.stop}-{token}",
                retries=0,
            )
            futures.append(fut)
            block_of[fut.key] = b
        n_done = 0
        for fut in as_completed(futures):
            block = block_of[fut.key]
            try:
                out = fut.result()
            except ChainError:
                raise
            except Exception as exc:
                raise _chain_error(exc, block, seeds, "dask cluster") from exc
            results[block.start : block.stop] = out
            n_done += len(block)
            if progress is not None:
                progress(n_done)
    except BaseException:
        client.cancel(futures)
        raise
    finally:
        client.cancel([plan_future])
    return results


# ---------------------------------------------------------------- any function of shared data


def map_blocks(
    func: Callable[[Any, Sequence[Any]], list],
    shared: Any,
    items: Sequence[Any],
    *,
    n_jobs: int | None = None,
    client: Any = None,
    start_method: StartMethod | None = None,
    failure: Callable[[BaseException, Sequence[Any]], Exception] | None = None,
) -> list:
    """``func(shared, block)`` over blocks of ``items``, concatenated in item order.

    The executors of :func:`map_chains` for other work (the per-imputation fits of
    :func:`mlimpute.analysis.fit`): serial with BLAS pinned to one thread, a process
    pool whose workers receive ``shared`` once through the initializer (inherited under
    ``fork``), or a dask cluster with ``shared`` scattered once. ``func`` must be a
    module-level function (workers import it by reference) returning one result per
    item of its block; it should be deterministic, so that the executor never changes
    the results. Items go in ``min(len(items), 4 x workers)`` blocks of consecutive
    items.

    An exception raised by ``func`` reaches the caller as it is (the first one, by item
    order among the blocks finished); anything else that stops a block (a dead worker)
    is passed with the block's items to ``failure``, whose exception is raised instead
    (default: a :class:`RuntimeError`). Remaining work is cancelled and pool workers
    are terminated, as in :func:`map_chains`.
    """
    items = list(items)
    if client is not None and n_jobs is not None:
        raise SpecificationError("pass n_jobs or client, not both")
    if not items:
        return []
    if failure is None:

        def failure(exc, block):
            return RuntimeError(f"a worker failed ({type(exc).__name__}: {exc})")

    if client is not None:
        return _blocks_dask(func, shared, items, client, failure)
    workers = min(_resolve_n_jobs(n_jobs), len(items))
    method = _start_method(start_method)
    if workers <= 1:
        with one_blas_thread():
            return list(func(shared, items))
    return _blocks_pool(func, shared, items, workers, method, failure)


_worker_shared: Any = None


def _init_shared(shared: Any) -> None:
    """Pool initializer of :func:`map_blocks`: as :func:`_init_worker`."""
    global _worker_shared
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threadpool_limits(limits=1, user_api="blas")
    _worker_shared = shared


def _shared_task(func, block: list) -> list:
    return list(func(_worker_shared, block))


def _shared_dask_task(func, shared, block: list) -> list:
    with _blas_pinned():
        return list(func(shared, block))


def _blocks_pool(func, shared, items, workers, method, failure) -> list:
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload(_PRELOAD)
    results: list[Any] = [None] * len(items)
    pool = ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init_shared, initargs=(shared,)
    )
    clean = False
    try:
        pending = {
            pool.submit(_shared_task, func, items[b.start : b.stop]): b
            for b in _blocks(len(items), workers)
        }
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in sorted(done, key=lambda f: pending[f].start):
                block = pending.pop(fut)
                exc = fut.exception()
                if exc is not None:
                    if isinstance(exc, BrokenProcessPool):
                        raise failure(exc, items[block.start : block.stop]) from exc
                    raise exc
                results[block.start : block.stop] = fut.result()
        clean = True
    finally:
        if clean:
            pool.shutdown(wait=True)
        else:
            _terminate(pool)
    return results


def _blocks_dask(func, shared, items, client, failure) -> list:
    from distributed import as_completed

    if not hasattr(client, "scatter") or not hasattr(client, "submit"):
        raise SpecificationError(f"client must be a dask.distributed.Client, got {client!r}")
    if getattr(client, "asynchronous", False):
        raise SpecificationError("an asynchronous dask client is not supported")
    workers = max(1, sum(client.nthreads().values()))
    token = uuid.uuid4().hex
    results: list[Any] = [None] * len(items)
    shared_future = client.scatter(shared, broadcast=True, hash=False)
    futures, block_of = [], {}
    try:
        for b in _blocks(len(items), workers):
            fut = client.submit(
                _shared_dask_task,
                func,
                shared_future,
                items[b.start : b.stop],
                pure=False,
                key=f"mlimpute-{b.start + 1}-{b.stop}-{token}",
                retries=0,
            )
            futures.append(fut)
            block_of[fut.key] = b
        for fut in as_completed(futures):
            block = block_of[fut.key]
            if fut.status == "error":
                exc = fut.exception()
                if isinstance(exc, Exception) and not _lost_worker(exc):
                    raise exc
                raise failure(exc, items[block.start : block.stop]) from exc
            results[block.start : block.stop] = fut.result()
    except BaseException:
        client.cancel(futures)
        raise
    finally:
        client.cancel([shared_future])
    return results


def _lost_worker(exc: BaseException) -> bool:
    """Whether a dask task failed because its worker died (not because it raised)."""
    return type(exc).__name__ in ("KilledWorker", "CommClosedError", "FutureCancelledError")
