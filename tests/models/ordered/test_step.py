"""The numpy step (mlimpute.models.ordered.step) against the compiled kernel: the same bits."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

from mlimpute.models.kernels import fused as k_fused  # noqa: E402
from mlimpute.models.kernels import step as k_step  # noqa: E402
from mlimpute.models.kernels import sums as k_sums  # noqa: E402
from mlimpute.models.ordered import fused as o_fused  # noqa: E402
from mlimpute.models.ordered import step as o_step  # noqa: E402
from mlimpute.models.ordered import sums as o_sums  # noqa: E402


def problem(seed, n=300, J=17, p=4, q=1, C=3, blocks=None, offset=0.0, empty=0):
    """Arguments of a step of C chains on random data: rows sorted by cluster, an
    intercept, p - 1 covariates, a random part of q columns (an intercept first)."""
    rng = np.random.default_rng(seed)
    codes = np.sort(rng.integers(0, J - empty, n)).astype(np.int64)
    XT = np.vstack([np.ones(n), rng.standard_normal((p - 1, n)) * [[1.0], [3.0], [0.5]][: p - 1]])
    XT = np.ascontiguousarray(XT)
    ZT = np.ascontiguousarray(np.vstack([np.ones(n), XT[1:q]])) if q > 1 else np.ones((1, n))
    b = rng.standard_normal((J, q)) * 0.7
    y = offset + XT.T @ rng.standard_normal(p) + np.sum(ZT.T * b[codes], axis=1)
    y = y + rng.standard_normal(n)
    ZtZ = np.zeros((J, q, q))
    np.add.at(ZtZ, codes, ZT.T[:, :, None] * ZT.T[:, None, :])
    if blocks is None:
        blocks = [list(range(q))]
    bidx = np.array([i for g in blocks for i in g], dtype=np.int64)
    bptr = np.cumsum([0] + [len(g) for g in blocks]).astype(np.int64)
    A = rng.standard_normal((q, q))
    psi = np.stack([A @ A.T / q + np.eye(q) * (0.5 + c) for c in range(C)])
    states = dict(
        s2_in=rng.uniform(0.5, 2.0, C),
        psi_in=psi,
        alpha_in=rng.uniform(0.5, 1.5, (C, q)) * rng.choice([-1, 1], (C, q)),
        scale_in=rng.uniform(0.5, 2.0, (C, q)),
        floor=np.full(C, 1e-10),
        beta_in=rng.standard_normal((C, p)),
    )
    return dict(XT=XT, y=y, codes=codes, ZT=ZT, ZtZ=ZtZ, J=J, bidx=bidx, bptr=bptr, **states)


def run(mod_step, mod_sums, pr, seeds, mh_steps, ones):
    """One step of every chain by ``mod_step.step`` on sums made by ``mod_sums``."""
    gens = [np.random.default_rng(s) for s in seeds]
    seq = list
    if mod_step is k_step:
        from numba.typed import List

        seq, gens = List, List(gens)
    XTs = seq([pr["XT"]])
    Zty = mod_sums.response_sums(pr["y"], pr["codes"], pr["ZT"], pr["J"])
    ZtX, XtX, Xty = mod_sums.design_sums(XTs, pr["y"], pr["codes"], pr["ZT"], pr["J"])
    yty = mod_sums.sum_of_squares(pr["y"]) if ones else 0.0
    C = len(seeds)
    got = mod_step.step(
        gens, XTs, np.zeros(C, dtype=np.int64), pr["y"], pr["codes"], pr["ZT"], pr["ZtZ"],
        Zty, ZtX, XtX, Xty, pr["s2_in"], pr["psi_in"], pr["alpha_in"], pr["scale_in"],
        pr["floor"], pr["beta_in"], 2.0, mh_steps, 0.6, pr["bidx"], pr["bptr"], ones,
        pr["XT"], np.ones(pr["XT"].shape[0], dtype=np.bool_), yty,
    )  # fmt: skip
    return got, [g.bit_generator.state for g in gens]


def same(a, b):
    (got_a, gens_a), (got_b, gens_b) = a, b
    assert got_a[7] == got_b[7]
    for x, y in zip(got_a[:7], got_b[:7], strict=True):
        np.testing.assert_array_equal(x, y)
    assert gens_a == gens_b


CASES = [
    # (q, blocks, mh_steps, ones)
    (1, None, 0, True),
    (1, None, 0, False),
    (2, None, 20, False),
    (2, None, 0, False),
    (2, [[0], [1]], 0, False),
    (3, None, 0, False),
    (3, [[0, 1], [2]], 0, False),
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_step_is_the_kernels_bit_for_bit(case, seed):
    q, blocks, mh, ones = case
    pr = problem(seed, q=q, blocks=blocks, p=4 if q < 3 else 4)
    seeds = [seed * 10 + c for c in range(3)]
    same(run(k_step, k_sums, pr, seeds, mh, ones), run(o_step, o_sums, pr, seeds, mh, ones))


@pytest.mark.parametrize("n,J,empty", [(5, 3, 0), (64, 40, 5), (2001, 90, 3)])
def test_sizes_and_empty_clusters(n, J, empty):
    pr = problem(7, n=n, J=J, empty=empty)
    same(run(k_step, k_sums, pr, [1, 2, 3], 0, True), run(o_step, o_sums, pr, [1, 2, 3], 0, True))
    pr = problem(8, n=n, J=J, q=2, empty=empty)
    same(
        run(k_step, k_sums, pr, [1, 2, 3], 20, False), run(o_step, o_sums, pr, [1, 2, 3], 20, False)
    )


def test_a_large_mean_takes_the_pass_over_the_rows():
    """y far from 0 against its spread: the random intercept's sum of squares from the
    sums would cancel, and both take the pass over the rows."""
    pr = problem(4, offset=1e7)
    same(run(k_step, k_sums, pr, [5, 6, 7], 0, True), run(o_step, o_sums, pr, [5, 6, 7], 0, True))


def test_the_order_matters_on_these_data():
    """The same step with BLAS's x'β would not give these numbers: the test can fail."""
    pr = problem(4, offset=1e3, n=2001)
    beta = np.random.default_rng(0).standard_normal(4)
    ordered = np.zeros(2001)
    for a in range(4):
        ordered = ordered + beta[a] * pr["XT"][a]
    assert not np.array_equal(ordered, beta @ pr["XT"]) or not np.array_equal(
        o_step.seq(pr["y"] * pr["y"]), np.add.reduce(pr["y"] * pr["y"])
    )


def test_the_intercept_sums_with_the_step():
    """:func:`step_intercept`: the sums of the changing columns and the step in one call."""
    pr = problem(9, n=500, J=30)
    XT = pr["XT"]
    n, J, p = XT.shape[1], pr["J"], XT.shape[0]
    codes = pr["codes"]
    ptr = np.searchsorted(codes, np.arange(J + 1)).astype(np.int64)
    first = np.where(ptr[:-1] < ptr[1:], ptr[:-1], -1).astype(np.int64)
    const = np.array([True, False, False, False])
    dmask = np.array([False, True, False, True])
    from numba.typed import List

    base = k_sums.design_sums(List([XT]), pr["y"], codes, pr["ZT"], J)
    by_col = k_sums.fixed_columns(XT, base[0][0], first, const)
    Zty = k_sums.response_sums(pr["y"], codes, pr["ZT"], J)
    split = (XT, dmask, Zty[:, 0].copy(), ptr, first, np.diff(ptr).astype(np.float64),
             np.flatnonzero(dmask).astype(np.int64), const, base[0][0], base[1][0],
             base[2][0], *by_col)  # fmt: skip
    XT2 = XT.copy()
    XT2[1] += 0.25
    XT2[3] *= 1.5
    outs = []
    for mod, seq in ((k_fused, List), (o_fused, list)):
        gens = [np.random.default_rng(s) for s in (3, 4)]
        gens = seq(gens)
        ZtX = np.empty((2, J, 1, p))
        got = mod.step_intercept(
            gens, seq([XT2, XT]), np.arange(2, dtype=np.int64), pr["y"], codes, pr["ZT"],
            pr["ZtZ"], Zty, split, ZtX, False, pr["s2_in"][:2], pr["psi_in"][:2],
            pr["alpha_in"][:2], pr["scale_in"][:2], pr["floor"][:2], pr["beta_in"][:2], 2.0,
            0, 0.6, pr["bidx"], pr["bptr"], True, XT, dmask, k_sums.sum_of_squares(pr["y"]),
        )  # fmt: skip
        outs.append((got, [g.bit_generator.state for g in gens]))
        assert n == XT.shape[1]
    same(*outs)
