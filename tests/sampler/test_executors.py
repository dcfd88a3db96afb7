"""Executors: serial, process pool and dask give bit-identical chains; faults surface."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import pickle
import time

import numpy as np
import pytest

from mlimpute.datasets import IMPUTATION_FORMULAS, classroom
from mlimpute.errors import ChainError, SpecificationError
from mlimpute.parallel import TASKS_PER_WORKER, _blocks
from mlimpute.rng import chain_seeds
from mlimpute.sampler.engine import build_plan, run_chains
from mlimpute.sampler.executors import map_chains
from mlimpute.spec.build import build_spec

M = 5
POOL_METHODS = ["fork", "forkserver"]


# ---------------------------------------------------------------- helpers (importable
# at module level: forkserver and dask workers unpickle them by reference)


class FaultyModel:
    """Wraps a model; ``step`` misbehaves in chain ``chain`` (every chain if None):
    ``action`` "raise", "exit" (the worker dies) or "interrupt"; with "slow" every chain
    but ``chain`` sleeps ``delay`` seconds per step instead, and with "exit_slow" chain
    ``chain`` exits while the others sleep ``delay`` seconds per step.

    Models do not know their chain; the engine seeds chain k's Generator with the k-th
    child SeedSequence, so the spawn key of the Generator tells.
    """

    def __init__(self, inner, chain: int | None, action: str = "raise", delay: float = 0.0):
        self.inner, self.chain, self.action, self.delay = inner, chain, action, delay

    def check(self, data):
        self.inner.check(data)

    def init(self, rng, data):
        return self.inner.init(rng, data)

    def random_effect_names(self, data):
        return self.inner.random_effect_names(data)

    def random_effects(self, state, data):
        return self.inner.random_effects(state, data)

    def draw_missing(self, rng, state, data):
        return self.inner.draw_missing(rng, state, data)

    def param_names(self, data):
        return self.inner.param_names(data)

    def param_vector(self, state, data):
        return self.inner.param_vector(state, data)

    def step(self, rng, state, data):
        key = rng.bit_generator.seed_seq.spawn_key
        if self.action in ("slow", "exit_slow") and key != (self.chain,):
            time.sleep(self.delay)
        elif self.action == "slow":
            pass
        elif self.action == "exit_slow":
            os._exit(3)
        elif self.chain is None or key == (self.chain,):
            if self.action == "exit":
                os._exit(3)
            if self.action == "interrupt":
                raise KeyboardInterrupt
            raise np.linalg.LinAlgError("injected fault")
        return self.inner.step(rng, state, data)


def with_models(plan, **kw):
    return dataclasses.replace(
        plan, models={n: FaultyModel(m, **kw) for n, m in plan.models.items()}
    )


def assert_identical(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.imputed.keys() == y.imputed.keys()
        for n in x.imputed:
            np.testing.assert_array_equal(x.imputed[n], y.imputed[n])
            np.testing.assert_array_equal(x.params[n], y.params[n])
        np.testing.assert_array_equal(x.mean, y.mean)
        np.testing.assert_array_equal(x.sd, y.sd)


def child_pids() -> set[int]:
    psutil = pytest.importorskip("psutil")  # comes with dask.distributed
    return {p.pid for p in psutil.Process().children(recursive=True)}


def new_children(before: set[int]) -> list:
    """Live child processes not in ``before``, ignoring multiprocessing's own servers."""
    import psutil

    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            if p.pid in before or p.status() == psutil.STATUS_ZOMBIE:
                continue
            cmd = " ".join(p.cmdline())
        except psutil.NoSuchProcess:
            continue
        if "forkserver" in cmd or "resource_tracker" in cmd:
            continue
        out.append(p)
    return out


def pool_children(timeout: float = 5.0) -> list:
    """multiprocessing children other than the dask cluster's, after at most ``timeout``
    seconds for terminated workers to be reaped."""
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in multiprocessing.active_children() if "Dask" not in p.name]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def wait_no_new_children(before: set[int], timeout: float = 5.0) -> list:
    deadline = time.monotonic() + timeout
    while (left := new_children(before)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def plan():
    df = classroom(2, rng=3).incomplete
    spec = build_spec(df, IMPUTATION_FORMULAS[2], m=M, iterations=4)
    return build_plan(df.copy(), spec)


@pytest.fixture(scope="module")
def seeds():
    return chain_seeds(1, M)[0]


@pytest.fixture(scope="module")
def reference(plan, seeds):
    return run_chains(plan, seeds)


def cluster_keys(client) -> list[str]:
    return client.run_on_scheduler(
        lambda dask_scheduler: [str(k) for k in dask_scheduler.tasks if "mlimpute" in str(k)]
    )


def wait_no_cluster_keys(client, timeout: float = 5.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := cluster_keys(client)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


# ---------------------------------------------------------------- identical results


def test_serial_is_run_chains(plan, seeds, reference):
    done = []
    assert_identical(map_chains(plan, seeds, progress=done.append), reference)
    assert done == list(range(1, M + 1))
    assert_identical(map_chains(plan, seeds, n_jobs=1), reference)


@pytest.mark.parametrize("method", POOL_METHODS)
def test_pool_bit_identical(plan, seeds, reference, method):
    done = []
    res = map_chains(plan, seeds, n_jobs=2, progress=done.append, start_method=method)
    assert_identical(res, reference)
    assert done == sorted(done) and done[-1] == M
    assert pool_children() == []


def test_pool_all_cores_and_more_jobs_than_chains(plan, seeds, reference):
    assert_identical(map_chains(plan, seeds, n_jobs=-1), reference)
    assert_identical(map_chains(plan, seeds[:2], n_jobs=8), reference[:2])
    assert_identical(map_chains(plan, seeds[:1], n_jobs=2), reference[:1])  # serial


def test_dask_bit_identical(plan, seeds, reference, client):
    done = []
    assert_identical(map_chains(plan, seeds, client=client, progress=done.append), reference)
    assert done == sorted(done) and done[-1] == M
    assert wait_no_cluster_keys(client) == []  # tasks and the scattered plan released


def test_blocks():
    for m in (1, 2, 5, 25, 101):
        for w in (1, 2, 3, 8):
            blocks = _blocks(m, w)
            assert len(blocks) == min(m, TASKS_PER_WORKER * w)
            assert [k for b in blocks for k in b] == list(range(m))
            assert max(map(len, blocks)) - min(map(len, blocks)) <= 1


# ---------------------------------------------------------------- faults


def check_chain_error(err: ChainError, chain: int = 1):
    assert err.chain == chain
    assert err.seed_entropy == 1  # the root entropy: rng=1 reproduces it
    assert f"chain {chain + 1}" in str(err)


def test_chain_error_pickles():
    err = ChainError("chain 2 failed", chain=1, seed_entropy=123)
    back = pickle.loads(pickle.dumps(err))
    assert (type(back), str(back), back.chain, back.seed_entropy) == (
        ChainError,
        "chain 2 failed",
        1,
        123,
    )


def test_serial_fault(plan, seeds):
    with pytest.raises(ChainError) as info:
        map_chains(with_models(plan, chain=1), seeds)
    check_chain_error(info.value)
    assert "LinAlgError: injected fault" in str(info.value)


@pytest.mark.parametrize("method", POOL_METHODS)
def test_pool_fault(plan, seeds, method):
    done = []
    with pytest.raises(ChainError) as info:
        map_chains(
            with_models(plan, chain=1), seeds, n_jobs=2, start_method=method, progress=done.append
        )
    check_chain_error(info.value)
    assert "injected fault" in str(info.value)
    assert all(n < M for n in done)  # never reported complete
    assert pool_children() == []


def test_pool_fault_every_chain(plan, seeds):
    with pytest.raises(ChainError) as info:
        map_chains(with_models(plan, chain=None), seeds, n_jobs=2)
    assert 0 <= info.value.chain < M and info.value.seed_entropy == 1


def test_pool_worker_dies(plan, seeds):
    before = child_pids()
    with pytest.raises(ChainError) as info:
        map_chains(with_models(plan, chain=1, action="exit"), seeds, n_jobs=2)
    check_chain_error(info.value)  # M = 5 chains on 2 workers: one chain per task
    assert "BrokenProcessPool" in str(info.value)
    assert wait_no_new_children(before) == []


def test_pool_worker_dies_while_another_chain_runs(plan, seeds):
    # chain 2's worker dies while chain 1 is still running on the other worker: the pool
    # breaks both tasks, and the error names the chain whose worker died
    before = child_pids()
    with pytest.raises(ChainError) as info:
        faulty = with_models(plan, chain=1, action="exit_slow", delay=0.2)
        map_chains(faulty, seeds[:2], n_jobs=2)
    check_chain_error(info.value)
    assert wait_no_new_children(before) == []


def test_dask_fault(plan, seeds, client):
    with pytest.raises(ChainError) as info:
        map_chains(with_models(plan, chain=1), seeds, client=client)
    check_chain_error(info.value)
    assert wait_no_cluster_keys(client) == []


def interrupt_after_first(n):
    raise KeyboardInterrupt


@pytest.mark.parametrize("method", POOL_METHODS)
def test_pool_interrupt_leaves_no_workers(plan, seeds, method):
    """Ctrl-C while chains run (simulated in ``progress``): workers are stopped at once."""
    # chain 0 is fast, chains 1-3 take 6 steps x 0.5 s: interrupted when chain 0 is done,
    # while chain 1 runs; four chains on two workers are four tasks
    slow = with_models(plan, chain=0, action="slow", delay=0.5)
    before = child_pids()
    interrupted = []

    def interrupt(n):
        interrupted.append(time.perf_counter())
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        map_chains(slow, seeds[:4], n_jobs=2, start_method=method, progress=interrupt)
    assert time.perf_counter() - interrupted[0] < 1.0  # did not wait for chain 1 (3 s)
    assert pool_children() == []
    assert wait_no_new_children(before) == []


def test_interrupt_inside_chain_is_not_wrapped(plan, seeds):
    with pytest.raises(KeyboardInterrupt):
        map_chains(with_models(plan, chain=0, action="interrupt"), seeds)


def test_dask_interrupt_cancels(plan, seeds, client):
    # dask cannot stop a running task: a cancelled chain keeps its worker busy until done
    slow = with_models(plan, chain=0, action="slow", delay=0.1)
    with pytest.raises(KeyboardInterrupt):
        map_chains(slow, seeds[:4], client=client, progress=interrupt_after_first)
    assert wait_no_cluster_keys(client) == []
    # the cluster is still usable: cancelled tasks have stopped counting
    assert len(map_chains(plan, seeds[:2], client=client)) == 2


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("n_jobs", [0, 1.5, "2", True])
def test_bad_n_jobs(plan, seeds, n_jobs):
    with pytest.raises(SpecificationError, match="n_jobs"):
        map_chains(plan, seeds, n_jobs=n_jobs)


def test_bad_start_method_and_both(plan, seeds):
    with pytest.raises(SpecificationError, match="start_method"):
        map_chains(plan, seeds, n_jobs=2, start_method="thread")
    with pytest.raises(SpecificationError, match="not both"):
        map_chains(plan, seeds, n_jobs=2, client=object())
    with pytest.raises(SpecificationError, match="dask.distributed.Client"):
        map_chains(plan, seeds, client=object())
