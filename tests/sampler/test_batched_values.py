"""The compiled design refresh of a block of chains (mlimpute.models.kernels.refresh through
mlimpute.sampler.batched_values): the numbers of the chain-by-chain refresh bit for bit,
so the draws that follow are the same whichever refresh ran."""

import warnings

import numpy as np
import pytest

pytest.importorskip("numba")

from mlimpute.datasets import classroom  # noqa: E402
from mlimpute.models.kernels.pairwise import cluster_means  # noqa: E402
from mlimpute.models.segments import Segments  # noqa: E402
from mlimpute.rng import chain_seeds  # noqa: E402
from mlimpute.sampler.batched import run_block  # noqa: E402
from mlimpute.sampler.batched_values import BlockRefresh, stack_values  # noqa: E402
from mlimpute.sampler.engine import build_plan, run_chain, start_values  # noqa: E402
from mlimpute.spec.build import build_spec  # noqa: E402
from tests.conftest import assert_same_chains  # noqa: E402

#: experiment 2 with a product of an imputed variable in one design
PRODUCT = {
    "relation": "~ gender + grade + skill + cmean(grade) + (1 | class)",
    "grade": "~ relation * gender + skill + cmean(relation) + (1 | class)",
}


def _plan(formulas=None, iterations=3, m=3):
    d = classroom(2, rng=1)
    spec = build_spec(d.incomplete, formulas or d.imputation, m=m, iterations=iterations)
    return build_plan(d.incomplete.copy(), spec)


def test_cluster_means_are_numpys_bit_for_bit():
    # numpy's pairwise order: under 8 values, 8-128 (eight running sums), above 128
    # (halves); sizes from 1 to 700, values on several scales
    rng = np.random.default_rng(11)
    for top in (3, 9, 40, 140, 700):
        J = 25
        codes = np.repeat(np.arange(J), rng.integers(1, top + 1, J))
        x = rng.standard_normal(codes.size) * 10.0 ** rng.integers(-3, 4) + rng.normal(0, 50)
        seg = Segments.from_codes(codes, J)
        got = cluster_means(x, seg.starts.astype(np.int64), seg.counts.astype(np.int64))
        assert np.array_equal(got, seg.mean(x))


def test_block_refresh_writes_the_chain_by_chain_columns():
    plan = _plan()
    C = 3
    rngs = [np.random.default_rng(c) for c in range(C)]
    values = [start_values(plan, rngs[c], None)[0] for c in range(C)]
    held = stack_values(values, list(plan.names))
    assert held is not None and all(values[1][n].base is held[0] for n in plan.names)
    for name in plan.names:
        data = plan.data[name]
        block = BlockRefresh.of(held, data, plan.layout)
        assert block is not None  # a plain imputed column and its cmean()
        datas = [block.chain_data(data, c) for c in range(C)]
        block()
        for c in range(C):
            ref = data.for_chain()
            ref.refresh(values[c], plan.static)
            assert np.array_equal(datas[c].X.obs, ref.X.obs)
            assert np.array_equal(datas[c].X.mis, ref.X.mis)
            assert datas[c].X.obs.flags.f_contiguous


def test_other_designs_refresh_chain_by_chain():
    plan = _plan(PRODUCT)
    values = [start_values(plan, np.random.default_rng(0), None)[0]]
    held = stack_values(values, list(plan.names))
    assert BlockRefresh.of(held, plan.data["grade"], plan.layout) is None  # a product


@pytest.mark.parametrize("formulas", [None, PRODUCT])
def test_blocks_with_the_compiled_refresh_match_chains_run_alone(formulas, monkeypatch):
    monkeypatch.setenv("MLIMPUTE_NUMBA", "1")
    plan = _plan(formulas, iterations=4, m=4)
    seeds, _ = chain_seeds(5, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = [run_chain(plan, k, s) for k, s in enumerate(seeds)]
        got = run_block(plan, [(k, s, None, None) for k, s in enumerate(seeds)], 4)
    assert_same_chains(ref, got, plan.names)


def test_placed_draws_and_their_trace_are_numpys():
    from mlimpute.models.kernels.refresh import place_draws
    from mlimpute.sampler.trace_stats import mean_sd_rows

    rng = np.random.default_rng(4)
    for n_mis in (0, 1, 7, 130, 2600, 9000):
        x = rng.standard_normal((3, n_mis + 50))
        mis = np.sort(rng.choice(x.shape[1], n_mis, replace=False))
        draws = rng.normal(11.0, 3.0, (3, n_mis))
        ref = x.copy()
        ref[:, mis] = draws
        mean, sd = np.empty(3), np.empty(3)
        place_draws(x, mis, draws, mean, sd)
        ref_mean, ref_sd = mean_sd_rows(draws)
        assert np.array_equal(x, ref)
        assert np.array_equal(mean, ref_mean, equal_nan=True) and np.array_equal(sd, ref_sd)


def test_the_kernels_fixed_arrays_are_the_plans_not_a_blocks(monkeypatch):
    from mlimpute.models import ml_norm_compiled as compiled

    monkeypatch.setenv("MLIMPUTE_NUMBA", "1")
    plan = _plan(iterations=2, m=3)
    seeds, _ = chain_seeds(5, 3)
    run_block(plan, [(k, s, None, None) for k, s in enumerate(seeds)], 3)
    for name in plan.names:
        data = plan.data[name]
        fixed = compiled._Fixed.of(data)
        assert np.shares_memory(fixed.XT0, data.X.obs)
        assert np.shares_memory(compiled._MissingRows.of(data).XT0, data.X.mis)


@pytest.mark.parametrize("formulas", [None, PRODUCT])
def test_a_chain_run_alone_takes_the_compiled_refresh_with_numpys_numbers(formulas, monkeypatch):
    # a chain run alone is a block of one: its designs refreshed and its draws placed by
    # the compiled calls; the same draws as with the numpy refresh and placement
    from mlimpute.models.kernels import refresh as refresh_kernel
    from mlimpute.sampler import engine

    monkeypatch.setenv("MLIMPUTE_NUMBA", "1")
    plan = _plan(formulas, iterations=4, m=2)
    seeds, _ = chain_seeds(5, 2)
    calls = []
    real = refresh_kernel.refresh

    def counted(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(refresh_kernel, "refresh", counted)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = [run_chain(plan, k, s) for k, s in enumerate(seeds)]
        assert len(calls) == 2 * 4 * (2 if formulas is None else 1)  # chains x iterations
        monkeypatch.setattr(engine, "_compiled_block", lambda *a: ({}, {}))
        ref = [run_chain(plan, k, s) for k, s in enumerate(seeds)]
    assert_same_chains(ref, got, plan.names)
