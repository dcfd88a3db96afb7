"""mlimpute.parallel.map_blocks, the one parallel map of the chains, the fits and the
simulation: item order, blocks, progress, BLAS pinning and argument checks.

(Bit-identical chains and fits under every executor, dead workers and interrupts are
tested with their users: tests/sampler/test_executors.py, tests/analysis/test_fit_parallel.py,
tests/simulation/test_simulation.py.)
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from mlimpute.errors import SpecificationError
from mlimpute.parallel import (
    TASKS_PER_WORKER,
    _blocks,
    map_blocks,
    one_blas_thread,
    resolve_n_jobs,
    usable_cores,
)


def tagged(shared, block):
    """Module level (workers import it by reference): each item with the block it came
    in and the process that ran it."""
    first = block[0]
    return [(shared * x, first, len(block), os.getpid()) for x in block]


def blas_threads(shared, block):
    return [
        max((i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"), default=1)
        for _ in block
    ]


def test_serial_keeps_order_and_reports_each_item():
    done = []
    out = map_blocks(tagged, 3, range(5), progress=done.append)
    assert [r[0] for r in out] == [0, 3, 6, 9, 12]
    assert done == [1, 2, 3, 4, 5]  # serially, after every item
    assert {r[3] for r in out} == {os.getpid()}


def test_pool_keeps_order_and_uses_blocks_of_consecutive_items():
    done = []
    out = map_blocks(tagged, 2, range(10), n_jobs=2, start_method="fork", progress=done.append)
    assert [r[0] for r in out] == [2 * x for x in range(10)]
    assert os.getpid() not in {r[3] for r in out}
    blocks = {(r[1], r[2]) for r in out}
    assert sorted(blocks) == [(b.start, len(b)) for b in _blocks(10, 2)]
    assert done == sorted(done) and done[-1] == 10


def test_block_size_one_sends_one_item_per_task():
    out = map_blocks(tagged, 1, range(4), n_jobs=2, start_method="fork", block_size=1)
    assert [(r[1], r[2]) for r in out] == [(0, 1), (1, 1), (2, 1), (3, 1)]
    assert [b for b in _blocks(5, 2, block_size=2)] == [range(0, 2), range(2, 4), range(4, 5)]


def test_default_blocks():
    for n in (1, 2, 5, 25, 101):
        for w in (1, 2, 3, 8):
            blocks = _blocks(n, w)
            assert len(blocks) == min(n, TASKS_PER_WORKER * w)
            assert [k for b in blocks for k in b] == list(range(n))
            assert max(map(len, blocks)) - min(map(len, blocks)) <= 1


def test_blas_is_pinned_to_one_thread_in_every_executor():
    assert map_blocks(blas_threads, None, range(3)) == [1, 1, 1]
    assert map_blocks(blas_threads, None, range(3), n_jobs=2, start_method="fork") == [1] * 3
    with one_blas_thread():
        assert float(np.ones(3) @ np.ones(3)) == 3.0


def test_n_jobs():
    assert resolve_n_jobs(None) == 1
    assert resolve_n_jobs(4) == 4
    assert resolve_n_jobs(-1) == usable_cores()
    assert resolve_n_jobs(-(10**6)) == 1
    for bad in (0, 1.5, "2", True):
        with pytest.raises(SpecificationError, match="n_jobs"):
            resolve_n_jobs(bad)


def test_bad_arguments_are_named():
    with pytest.raises(SpecificationError, match="not both"):
        map_blocks(tagged, 1, [1], n_jobs=2, client=object())
    with pytest.raises(SpecificationError, match="dask.distributed.Client"):
        map_blocks(tagged, 1, [1], client=object())
    with pytest.raises(SpecificationError, match="start_method"):
        map_blocks(tagged, 1, [1], n_jobs=2, start_method="thread")
    for bad in (0, True):
        with pytest.raises(SpecificationError, match="block_size"):
            map_blocks(tagged, 1, [1], block_size=bad)
    assert map_blocks(tagged, 1, [], n_jobs=2) == []


def fails_on(shared, block):
    if shared in block:
        raise ValueError(f"item {shared}")
    return list(block)


@pytest.mark.parametrize("n_jobs", [None, 2])
def test_an_error_of_func_arrives_as_it_is(n_jobs):
    with pytest.raises(ValueError, match="item 3"):
        map_blocks(fails_on, 3, range(6), n_jobs=n_jobs, start_method="fork")


def test_an_error_in_progress_stops_the_run():
    with pytest.raises(ZeroDivisionError):
        map_blocks(tagged, 1, [1, 2], n_jobs=2, start_method="fork", progress=lambda n: 1 / 0)
