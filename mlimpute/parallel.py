"""One parallel map for mlimpute: serial, a local process pool or a dask cluster.

:func:`map_blocks` runs ``func(shared, block)`` over blocks of consecutive items and
returns one result per item, in item order. The imputation chains
(:func:`mlimpute.sampler.executors.map_chains`), the per-imputation fits of
:func:`mlimpute.analysis.fit` (``imp.fit(n_jobs=, client=)``) and the replications of the
simulation study (``python -m mlimpute.simulation --jobs``) all run through it. Every
task is a pure function of ``shared`` and its own items, so the executor only decides
*where* work runs, never what it returns: results are bit-identical to the serial run,
whatever the executor or the number of workers.

Three executors, chosen by the arguments:

* **serial** (``n_jobs=None`` or ``1``): in this process, BLAS pinned to one thread.
* **process pool** (``n_jobs=k``, ``k > 1``, or ``-1`` for every core): a
  :class:`concurrent.futures.ProcessPoolExecutor`. ``shared`` reaches each worker
  **once**, through the pool's initializer (inherited memory under ``fork``, one pickle
  per worker otherwise); tasks carry only their items. Each worker pins BLAS to one
  thread and ignores ``SIGINT`` (the parent handles Ctrl-C and stops the workers).
* **dask.distributed** (``client=``): ``shared`` is scattered to every worker once
  (``client.scatter(shared, broadcast=True)``); each task names it by its future.

:func:`one_blas_thread` pins BLAS to one thread in this process (the serial executor and
:func:`mlimpute.sampler.engine.run_chains` use it).

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

*Start method.* Starting two workers that hold the shared data takes 0.015 s with
``fork`` (inherited, not pickled), 0.7-2 s with ``spawn`` (every worker imports numpy,
pandas, scipy and mlimpute, every time), 0.8 s with ``forkserver`` unless the server has
mlimpute preloaded: then 0.7 s once per process and 0.03 s (experiment 3) / 0.14 s
(60,000 rows: a 13.8 MB plan pickled to each worker) afterwards. Only ``fork`` makes a
first parallel run pay on small data. But ``fork`` is unsafe when the parent runs other
Python threads (a dask client's event loop, a Jupyter kernel, tqdm's monitor): a lock
held by one of them at fork time stays locked in the child. The default
(``start_method=None``) is therefore ``fork`` on Linux when the calling process runs a
single Python thread, ``forkserver`` otherwise (the server preloads this module and the
module of ``func``), and ``spawn`` where neither exists (Windows). Native BLAS threads
do not count: OpenBLAS stops its pool around ``fork``. (From Python 3.12, ``fork`` in a
process with any OS thread, numpy's OpenBLAS pool included, emits a
``DeprecationWarning``; pass ``start_method="forkserver"`` to avoid it.) Workers started
by ``forkserver``, ``spawn`` or dask import mlimpute from disk: if its files changed since
the caller imported it (an editable install being edited), their results differ from the
caller's.

*Blocks.* By default items go in ``min(n, 4 x workers)`` blocks of consecutive items
(:data:`TASKS_PER_WORKER`). Per-task overhead is about 0.1 ms in the process pool and
2 ms on a 2-worker dask ``LocalCluster``, against 17 ms for one chain of experiment 3 and
100 ms at 60,000 rows; four tasks per worker keep progress moving and let a fast worker
take over from a slow one. ``block_size=1`` sends one item per task (the simulation's
replications, which differ in cost).

*dask and malloc.* dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``,
which also turns off glibc's dynamic mmap threshold: every temporary above 128 kB is then
mapped, page-faulted and unmapped anew, and a chain runs 2.5 times slower. Starting the
cluster under ``dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_":
2**27, "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 2**25})`` avoids it;
the executor leaves the caller's workers as they are.

*Faults.* An exception raised by ``func`` reaches the caller as it is (the first one, by
item order among the blocks finished). Anything else that stops a block (a worker that
dies: killed, out of memory) is passed with the block's items to ``failure``, whose
exception is raised instead. A dying worker breaks the whole pool, so every task then
running fails; the block passed is the one whose worker ended on its own (each task
records its process in shared memory, and the pool stops the other workers by SIGTERM),
or, where that cannot be told, the first failed block. The first fault stops the run:
pending tasks are cancelled, pool workers terminated, and no partial result is returned.
``KeyboardInterrupt`` (or any exception, from ``progress`` too) does the same and leaves
no worker process behind. On a dask cluster the tasks and the scattered data are
cancelled, but a task already running keeps its worker busy until it ends (dask cannot
stop a running task); the cluster itself belongs to the caller.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any, Literal, TypeVar

import numpy as np
from threadpoolctl import ThreadpoolController, threadpool_limits

from mlimpute.errors import SpecificationError

__all__ = [
    "map_blocks",
    "one_blas_thread",
    "resolve_n_jobs",
    "usable_cores",
    "StartMethod",
    "TASKS_PER_WORKER",
]

S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")

StartMethod = Literal["fork", "forkserver", "spawn"]

#: Tasks per worker: enough for progress and for load balance between equal-cost items.
TASKS_PER_WORKER = 4


# ---------------------------------------------------------------- BLAS at one thread

_controller: Any = None


def one_blas_thread() -> Any:
    """A context manager (and limiter) holding every BLAS library at one thread.

    ``threadpoolctl.threadpool_limits(...)`` scans every loaded shared library at each
    call (1-4 ms); the samplers pin BLAS around every run, so one
    :class:`threadpoolctl.ThreadpoolController` is made on first use and reused. It is
    made after numpy's and scipy's BLAS are loaded (its callers import the models, which
    import scipy's linear algebra), so it controls both.

    Returns
    -------
    threadpoolctl limiter
        Use as ``with one_blas_thread(): ...``; the previous limits are restored on exit.

    Examples
    --------
    >>> import numpy as np
    >>> with one_blas_thread():
    ...     float(np.ones((2, 2)) @ np.ones(2) @ np.ones(2))
    4.0
    """
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")


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


# ---------------------------------------------------------------- choices


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity on Linux).

    Returns
    -------
    int
        At least 1.

    Examples
    --------
    >>> usable_cores() >= 1
    True
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_n_jobs(n_jobs: int | None) -> int:
    """The number of worker processes ``n_jobs`` asks for.

    Parameters
    ----------
    n_jobs : int or None
        ``None`` or 1: serial. ``k > 1``: k workers. Negative values count back from the
        usable cores (``-1``: all of them, ``-2``: all but one), as in joblib.

    Returns
    -------
    int
        At least 1.

    Raises
    ------
    SpecificationError
        ``n_jobs`` is 0, a bool, or not an integer.

    Examples
    --------
    >>> resolve_n_jobs(None), resolve_n_jobs(3), resolve_n_jobs(-1) == usable_cores()
    (1, 3, True)
    """
    if n_jobs is None:
        return 1
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs == 0:
        raise SpecificationError(
            f"n_jobs must be a non-zero integer (-1: all cores) or None, got {n_jobs!r}"
        )
    if n_jobs > 0:
        return int(n_jobs)
    return max(1, usable_cores() + 1 + int(n_jobs))


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


def _blocks(n: int, workers: int, block_size: int | None = None) -> list[range]:
    """Runs of consecutive items: ``block_size`` items each, or by default
    ``min(n, TASKS_PER_WORKER * workers)`` runs with sizes within 1."""
    if block_size is not None:
        return [range(i, min(i + block_size, n)) for i in range(0, n, block_size)]
    n_tasks = max(1, min(n, TASKS_PER_WORKER * workers))
    size, extra = divmod(n, n_tasks)
    out, start = [], 0
    for i in range(n_tasks):
        stop = start + size + (i < extra)
        out.append(range(start, stop))
        start = stop
    return out


def _default_failure(exc: BaseException, block: Sequence[Any]) -> Exception:
    return RuntimeError(f"a worker failed ({type(exc).__name__}: {exc})")


# ---------------------------------------------------------------- the map


def map_blocks(
    func: Callable[[S, list[T]], Sequence[R]],
    shared: S,
    items: Sequence[T],
    *,
    n_jobs: int | None = None,
    client: Any = None,
    start_method: StartMethod | None = None,
    progress: Callable[[int], object] | None = None,
    failure: Callable[[BaseException, list[T]], Exception] | None = None,
    block_size: int | None = None,
    name: str = "mlimpute",
) -> list[R]:
    """``func(shared, block)`` over blocks of ``items``, concatenated in item order.

    Parameters
    ----------
    func : callable
        ``func(shared, block) -> results``, one result per item of ``block`` (a list of
        consecutive items). A module-level function (workers import it by reference);
        it should be deterministic, so that the executor never changes the results.
    shared : object
        Read-only data every task needs; sent once to each worker (picklable).
    items : sequence
        The work, one item per result.
    n_jobs : int, optional
        ``None`` or 1: serial. ``k > 1``: a local pool of ``min(k, len(items))`` worker
        processes. Negative values count back from the usable cores (``-1``: all of them,
        ``-2``: all but one), as in joblib.
    client : dask.distributed.Client, optional
        Run on this client's cluster instead (not together with ``n_jobs``).
    start_method : {"fork", "forkserver", "spawn"}, optional
        Process start method of the pool; default: ``fork`` on Linux when the caller runs
        a single Python thread, otherwise ``forkserver``, or ``spawn`` where that does not
        exist (see the module's Notes).
    progress : callable, optional
        ``progress(n_done)`` is called in the calling thread with the number of finished
        items each time a block completes (serially: after each item). An exception it
        raises stops the run.
    failure : callable, optional
        ``failure(exc, block_items)`` makes the exception raised when something other
        than ``func`` stops a block (a dead worker); default: a :class:`RuntimeError`.
    block_size : int, optional
        Items per task; default ``len(items) / min(len(items), 4 x workers)``.
    name : str
        Prefix of the dask task keys.

    Returns
    -------
    list
        ``len(items)`` results in item order: bit-identical whatever the executor.

    Raises
    ------
    SpecificationError
        Invalid ``n_jobs``, ``start_method``, ``client``, or both ``n_jobs`` and
        ``client``.

    Examples
    --------
    >>> from mlimpute.parallel import map_blocks
    >>> def scale(factor, block):
    ...     return [factor * x for x in block]
    >>> map_blocks(scale, 10, [1, 2, 3])
    [10, 20, 30]
    """
    items = list(items)
    if client is not None and n_jobs is not None:
        raise SpecificationError("pass n_jobs or client, not both")
    if block_size is not None and (isinstance(block_size, bool) or int(block_size) < 1):
        raise SpecificationError(f"block_size must be a positive integer, got {block_size!r}")
    if client is not None:
        _check_client(client)
    workers = min(resolve_n_jobs(n_jobs), max(len(items), 1))
    method = _start_method(start_method)
    if not items:
        return []
    failure = failure or _default_failure
    if client is not None:
        return _map_dask(func, shared, items, client, progress, failure, block_size, name)
    if workers <= 1:
        return _map_serial(func, shared, items, progress)
    return _map_pool(func, shared, items, workers, method, progress, failure, block_size)


def _map_serial(func, shared, items, progress) -> list:
    with one_blas_thread():
        if progress is None:
            return list(func(shared, items))
        out: list = []
        for k, item in enumerate(items):
            out.extend(func(shared, [item]))
            progress(k + 1)
        return out


# ---------------------------------------------------------------- worker side

_worker_shared: Any = None
_worker_running: Any = None


def _init_worker(shared: Any, numba_switch: str | None = None, running: Any = None) -> None:
    """Pool initializer: keep the shared data, pin BLAS for the process' life, leave
    Ctrl-C to the parent (it terminates the workers), and take the parent's
    ``MLIMPUTE_NUMBA`` (a forkserver's workers have the environment the server started
    with), so that the workers choose the compiled or the numpy step as a serial run
    does (the same numbers either way: the speed only). ``running`` (shared
    memory, one entry a task) records which process runs which task, so that the parent
    can tell which task's worker died."""
    global _worker_shared, _worker_running
    _worker_running = running
    if numba_switch is None:
        os.environ.pop("MLIMPUTE_NUMBA", None)
    else:
        os.environ["MLIMPUTE_NUMBA"] = numba_switch
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threadpool_limits(limits=1, user_api="blas")  # applied now, never restored
    _worker_shared = shared


def _pool_task(func, block: list, task: int = -1) -> list:
    running = _worker_running
    if running is not None and task >= 0:
        running[task] = os.getpid()  # cleared when the task ends; left if the worker dies
    try:
        return list(func(_worker_shared, block))
    finally:
        if running is not None and task >= 0:
            running[task] = 0


def _dask_task(func, shared, block: list) -> list:
    with _blas_pinned():
        return list(func(shared, block))


# ---------------------------------------------------------------- process pool


def _map_pool(func, shared, items, workers, method, progress, failure, block_size) -> list:
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":
        # import mlimpute once in the server, not in every worker (0.8 s -> 0.03 s);
        # no effect once the server runs
        ctx.set_forkserver_preload(["__main__", __name__, func.__module__])
    results: list[Any] = [None] * len(items)
    blocks = list(_blocks(len(items), workers, block_size))
    running = ctx.Array("q", max(1, len(blocks)), lock=False)  # the pid running each task
    pool = ProcessPoolExecutor(
        workers,
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(shared, os.environ.get("MLIMPUTE_NUMBA"), running),
    )
    procs: dict[int, Any] = {}  # the pool's processes by pid, kept to read exit codes
    clean = False
    try:
        pending: dict[Future, range] = {}
        for i, b in enumerate(blocks):
            try:
                fut = pool.submit(_pool_task, func, items[b.start : b.stop], i)
            except BrokenProcessPool:
                break  # a worker died while tasks were queued: its task reports it below
            procs.update(getattr(pool, "_processes", None) or {})
            pending[fut] = b
        n_done = 0
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in sorted(done, key=lambda f: pending[f].start):
                block = pending.pop(fut)
                exc = fut.exception()
                if exc is not None:
                    if isinstance(exc, BrokenProcessPool):
                        block = _died(blocks, running, procs) or block
                        raise failure(exc, items[block.start : block.stop]) from exc
                    raise exc
                results[block.start : block.stop] = fut.result()
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


def _died(blocks: list[range], running: Any, procs: dict[int, Any]) -> range | None:
    """The block whose worker died, when it can be told: the one task left marked as
    running by a process that ended on its own (the pool then terminates the others,
    which end by SIGTERM). None when no such task, or more than one, is found."""
    found = []
    for i, pid in enumerate(running[: len(blocks)]):
        p = procs.get(pid) if pid else None
        if p is None:
            continue
        p.join(2)  # the pool stops its other workers at once; wait for the exit codes
        if p.exitcode is not None and p.exitcode != -signal.SIGTERM:
            found.append(blocks[i])
    return found[0] if len(found) == 1 else None


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Cancel what is queued and stop the workers now, without waiting for their tasks."""
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


# ---------------------------------------------------------------- dask


def _check_client(client: Any) -> None:
    if not hasattr(client, "scatter") or not hasattr(client, "submit"):
        raise SpecificationError(f"client must be a dask.distributed.Client, got {client!r}")
    if getattr(client, "asynchronous", False):
        raise SpecificationError("an asynchronous dask client is not supported")


def _map_dask(func, shared, items, client, progress, failure, block_size, name) -> list:
    from distributed import as_completed

    workers = max(1, sum(client.nthreads().values()))
    token = uuid.uuid4().hex
    results: list[Any] = [None] * len(items)
    shared_future = client.scatter(shared, broadcast=True, hash=False)
    futures, block_of = [], {}
    try:
        for b in _blocks(len(items), workers, block_size):
            fut = client.submit(
                _dask_task,
                func,
                shared_future,
                items[b.start : b.stop],
                pure=False,
                key=f"{name}-{b.start + 1}-{b.stop}-{token}",
                retries=0,
            )
            futures.append(fut)
            block_of[fut.key] = b
        n_done = 0
        for fut in as_completed(futures):
            block = block_of[fut.key]
            if fut.status == "error":
                exc = fut.exception()
                if isinstance(exc, Exception) and not _lost_worker(exc):
                    raise exc
                raise failure(exc, items[block.start : block.stop]) from exc
            results[block.start : block.stop] = fut.result()
            n_done += len(block)
            if progress is not None:
                progress(n_done)
    except BaseException:
        client.cancel(futures)
        raise
    finally:
        client.cancel([shared_future])
    return results


def _lost_worker(exc: BaseException) -> bool:
    """Whether a dask task failed because its worker died (not because it raised)."""
    return type(exc).__name__ in ("KilledWorker", "CommClosedError", "FutureCancelledError")
