"""The design's sums in numpy (mlimpute.models.ordered.sums) against the compiled
kernels (mlimpute.models.kernels.sums): the same bits, on data whose order of additions
matters (magnitudes from 1e-9 to 1e9), over many shapes, empty clusters and
cluster-constant columns."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from numba.typed import List  # noqa: E402

from mlimpute.models.kernels import sums as kern  # noqa: E402
from mlimpute.models.ordered import sums as mirror  # noqa: E402

NS = (0, 1, 3, 4, 5, 127, 1000, 4099)
PS = (1, 2, 5, 9)
QS = (1, 2, 3)


def wide(rng: np.random.Generator, *shape: int) -> np.ndarray:
    """Normal numbers scaled by 10^u, u uniform on (-9, 9): sums that depend on order."""
    return rng.standard_normal(shape) * 10.0 ** rng.uniform(-9, 9, shape)


def clusters(rng: np.random.Generator, n: int, J: int) -> np.ndarray:
    """Sorted cluster codes (int64) of n rows in J clusters, the first and some others
    left empty where J allows."""
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    used = np.arange(1, J) if J > 1 else np.arange(J)
    used = used[rng.random(used.size) < 0.8] if used.size > 1 else used
    if used.size == 0:
        used = np.array([J - 1])
    return np.sort(rng.choice(used, n)).astype(np.int64)


def case(rng: np.random.Generator, n: int, p: int, q: int, K: int, J: int | None = None):
    """K designs (p, n) sharing a base design: some columns cluster-constant (one value
    a cluster, the intercept among them), a random subset changing from design to
    design; the response, codes and Z' (q, n)."""
    J = J if J is not None else max(1, min(60, n // 3 + 2))
    codes = clusters(rng, n, J)
    const = rng.random(p) < 0.4
    const[0] = True
    XT0 = wide(rng, p, n)
    XT0[0] = 1.0
    for a in np.flatnonzero(const[1:]) + 1:
        XT0[a] = wide(rng, J)[codes]
    dmask = rng.random(p) < 0.6
    designs = []
    for _ in range(K):
        X = XT0.copy()
        for a in np.flatnonzero(dmask):
            X[a] = wide(rng, J)[codes] if const[a] else wide(rng, n)
        designs.append(X)
    y = wide(rng, n)
    ZT = np.ascontiguousarray(np.vstack([np.ones(n), wide(rng, q - 1, n)]))
    return designs, y, codes, ZT, J, XT0, dmask, const


def intercept_args(designs, y, codes, J, XT0, dmask, const):
    """The arguments of ``intercept_sums`` after ``XTs``, built as the model's
    ``_Fixed`` builds them (the fixed design's sums by the kernels)."""
    n = y.shape[0]
    ones = np.ones((1, n))
    ptr = np.searchsorted(codes, np.arange(J + 1)).astype(np.int64)
    first = np.where(ptr[:-1] < ptr[1:], ptr[:-1], -1).astype(np.int64)
    ZtX0, XtX0, Xty0 = (s[0] for s in kern.design_sums(List([XT0]), y, codes, ones, J))
    ST0, mT0 = kern.fixed_columns(XT0, ZtX0, first, const)
    Sy = kern.response_sums(y, codes, ones, J)[:, 0].copy()
    nobs = np.diff(ptr).astype(np.float64)
    dyn = np.flatnonzero(dmask).astype(np.int64)
    return (y, XT0, dmask, Sy, ptr, first, nobs, dyn, const, ZtX0, XtX0, Xty0, ST0, mT0)


def same(got, ref) -> None:
    for a, b in zip(got, ref, strict=True):
        np.testing.assert_array_equal(a, b)
        assert a.shape == b.shape


def test_dot_and_dots_are_the_kernels_dot_for_every_length():
    rng = np.random.default_rng(0)
    for n in [*range(0, 40), 127, 1000, 4099, 65537]:
        a, B = wide(rng, n), wide(rng, 6, n)
        got = mirror.dots(a, B)
        assert got.shape == (6,)
        for t in range(6):
            ref = kern._dot(a, B[t])
            assert mirror.dot(a, B[t]) == ref
            assert got[t] == ref
        assert mirror.sum_of_squares(a) == kern.sum_of_squares(a)


def test_dot_keeps_the_kernels_signed_zeros():
    for n in (0, 1, 4, 6, 9):
        a, b = np.full(n, -0.0), np.ones(n)
        ref = kern._dot(a, b)
        got = mirror.dot(a, b)
        assert got == ref and np.signbit(got) == np.signbit(ref)


def test_numpys_default_order_differs_where_the_mirror_does_not():
    # the same products summed pairwise (np.sum) or by BLAS (@) give other bits on data
    # whose order matters; the mirror gives the kernel's
    rng = np.random.default_rng(1)
    n, p = 4099, 9
    X, y = wide(rng, p, n), wide(rng, n)
    ZT, codes = np.ones((1, n)), np.zeros(n, dtype=np.int64)
    ref = kern.design_sums(List([X]), y, codes, ZT, 1)
    same(mirror.design_sums([X], y, codes, ZT, 1), ref)
    assert (ref[1][0] != X @ X.T).any()
    assert (ref[2][0] != X @ y).any()
    pairwise = np.array([[np.sum(X[a] * X[e]) for e in range(p)] for a in range(p)])
    assert (ref[1][0] != pairwise).any()


def test_design_sums_entries_are_the_kernels_dot_of_two_rows():
    rng = np.random.default_rng(2)
    for n, p in [(4099, 9), (5, 5), (1, 2), (0, 3)]:
        designs, y, codes, ZT, J, *_ = case(rng, n, p, 2, 2)
        _, XtX, Xty = kern.design_sums(List(designs), y, codes, ZT, J)
        for k, X in enumerate(designs):
            for a, e in itertools.product(range(p), repeat=2):
                assert XtX[k, a, e] == kern._dot(X[a], X[e])
            for a in range(p):
                assert Xty[k, a] == kern._dot(X[a], y)


@pytest.mark.parametrize("n", NS)
def test_design_and_response_sums(n):
    rng = np.random.default_rng(100 + n)
    for p, q in itertools.product(PS, QS):
        designs, y, codes, ZT, J, *_ = case(rng, n, p, q, K=1 + (p + q) % 3)
        same(
            mirror.design_sums(designs, y, codes, ZT, J),
            kern.design_sums(List(designs), y, codes, ZT, J),
        )
        np.testing.assert_array_equal(
            mirror.response_sums(y, codes, ZT, J), kern.response_sums(y, codes, ZT, J)
        )


@pytest.mark.parametrize("n", NS)
def test_intercept_sums_and_fixed_columns(n):
    rng = np.random.default_rng(200 + n)
    for p, K in itertools.product(PS, (1, 3)):
        designs, y, codes, _, J, XT0, dmask, const = case(rng, n, p, 1, K)
        args = intercept_args(designs, y, codes, J, XT0, dmask, const)
        _, _, _, _, _, first, *_, ZtX0, _, _, _, _ = args
        same(
            mirror.fixed_columns(XT0, ZtX0, first, const),
            kern.fixed_columns(XT0, ZtX0, first, const),
        )
        same(mirror.intercept_sums(designs, *args), kern.intercept_sums(List(designs), *args))
        for kept in (False, True):
            # a chain's own Z'X: with kept, its fixed columns are read as they are
            start = wide(rng, K, J, 1, p)
            ours, theirs = start.copy(), start.copy()
            got = mirror._intercept_sums(designs, *args, ours, kept)
            ref = kern._intercept_sums(List(designs), *args, theirs, kept)
            same(got, ref)
            np.testing.assert_array_equal(ours, theirs)
            assert got[0] is ours


def test_intercept_sums_with_empty_clusters_and_every_kind_of_column():
    # constant and varying columns, changing and fixed, in every order; clusters with no
    # rows at the start, the end and between
    rng = np.random.default_rng(3)
    n, J, p = 200, 12, 6
    codes = np.sort(rng.choice([1, 2, 4, 5, 6, 8, 9, 10], n)).astype(np.int64)
    for const_bits, dmask_bits in itertools.product(range(0, 64, 7), range(0, 64, 5)):
        const = np.array([(const_bits >> a) & 1 for a in range(p)], dtype=np.bool_)
        dmask = np.array([(dmask_bits >> a) & 1 for a in range(p)], dtype=np.bool_)
        XT0 = wide(rng, p, n)
        for a in np.flatnonzero(const):
            XT0[a] = wide(rng, J)[codes]
        designs = []
        for _ in range(2):
            X = XT0.copy()
            for a in np.flatnonzero(dmask):
                X[a] = wide(rng, J)[codes] if const[a] else wide(rng, n)
            designs.append(X)
        y = wide(rng, n)
        args = intercept_args(designs, y, codes, J, XT0, dmask, const)
        assert (args[5] == -1).sum() == 4
        same(mirror.intercept_sums(designs, *args), kern.intercept_sums(List(designs), *args))
