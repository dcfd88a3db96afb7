"""The numpy small linear algebra in the kernels' order (mlimpute.models.ordered.linalg)
against the compiled kernels (mlimpute.models.kernels.linalg), bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from mlimpute.models.kernels import linalg as kl  # noqa: E402
from mlimpute.models.ordered import linalg as ol  # noqa: E402

SIZES = (1, 2, 3, 5, 12)


def spd(rng, q, cond=1.0):
    """A random SPD q x q matrix with condition number about ``cond``."""
    Q, _ = np.linalg.qr(rng.standard_normal((q, q)))
    ev = np.geomspace(1.0, 1.0 / cond, q) * np.exp(rng.uniform(-3, 3))
    A = (Q * ev) @ Q.T
    return (A + A.T) / 2


def matrices(seed=0):
    """SPD matrices of every size, well- and ill-conditioned, with their names."""
    rng = np.random.default_rng(seed)
    for q in SIZES:
        for cond in (1.0, 1e3, 1e12, 1e17):
            for _ in range(3):
                yield f"q={q} cond={cond:g}", spd(rng, q, cond)


def same(a, b, msg=""):
    np.testing.assert_array_equal(a, b, err_msg=msg, strict=True)


def test_cholesky_forward_backward_are_the_kernels():
    rng = np.random.default_rng(1)
    for name, A in matrices():
        q = A.shape[0]
        for floor in (0.0, 1e-300):
            Lk, Lo = np.full((q, q), 7.0), np.full((q, q), 7.0)
            assert kl._cholesky(A, Lk, floor) == ol.cholesky(A, Lo, floor), name
            same(Lo, Lk, name)
        b = rng.standard_normal(q) * 10.0 ** rng.integers(-5, 5, q)
        for solve_k, solve_o in ((kl._forward, ol.forward), (kl._backward, ol.backward)):
            xk, xo = np.empty(q), np.empty(q)
            solve_k(Lk, b, xk)
            solve_o(Lk, b, xo)
            same(xo, xk, name)


def test_cholesky_of_an_indefinite_matrix_fails_with_the_kernels_partial_factor():
    rng = np.random.default_rng(2)
    for q in (1, 2, 3, 5, 12):
        for bad in range(q):
            A = spd(rng, q)
            A[bad, bad] = -1.0 - A[bad, bad]  # the pivot of column `bad` is negative
            Lk, Lo = np.full((q, q), 7.0), np.full((q, q), 7.0)
            ok_k = kl._cholesky(A, Lk, 0.0)
            assert ol.cholesky(A, Lo, 0.0) == ok_k
            same(Lo, Lk)
            # floored, the same matrix factorises, as in the kernel
            assert kl._cholesky(A, Lk, 1e-300) and ol.cholesky(A, Lo, 1e-300)
            same(Lo, Lk)
    nan = np.array([[np.nan]])
    for floor in (0.0, 1e-300):
        Lk, Lo = np.zeros((1, 1)), np.zeros((1, 1))
        assert kl._cholesky(nan, Lk, floor) == ol.cholesky(nan, Lo, floor)
        same(Lo, Lk)


def check_solve_spd(A, h):
    p = A.shape[0]
    Lk, Lo = np.full((p, p), 3.0), np.full((p, p), 3.0)
    mk, mo = np.full(p, 5.0), np.full(p, 5.0)
    ok = kl._solve_spd(A, h, Lk, mk)
    assert ol.solve_spd(A, h, Lo, mo) == ok
    same(Lo, Lk)
    same(mo, mk)
    return ok


def test_solve_spd_is_the_kernels_with_its_jitter_and_its_failure():
    rng = np.random.default_rng(3)
    for _, A in matrices(4):
        assert check_solve_spd(A, rng.standard_normal(A.shape[0]))
    # singular PSD: jitter needed (and a zero matrix, whose scale is 1)
    for p in (2, 3, 5, 12):
        X = rng.standard_normal((p, p - 1))
        assert check_solve_spd(X @ X.T, rng.standard_normal(p))
        assert check_solve_spd(np.ones((p, p)), rng.standard_normal(p))
        assert check_solve_spd(np.zeros((p, p)), rng.standard_normal(p))
    # indefinite: no jitter helps, False and the last attempt's partial factor
    for p in (1, 2, 3, 5, 12):
        A = spd(rng, p)
        A[-1, -1] = -10.0
        assert not check_solve_spd(A, rng.standard_normal(p))
    assert check_solve_spd(np.zeros((0, 0)), np.zeros(0))


def test_draw_chol_and_inv_spd_are_the_kernels():
    for seed, (name, A) in enumerate(matrices(5)):
        q = A.shape[0]
        L = np.zeros((q, q))
        kl._cholesky(A, L, 1e-300)
        mean = np.random.default_rng(seed).standard_normal(q)
        gk, go = np.random.default_rng(seed), np.random.default_rng(seed)
        out_k, out_o = np.empty(q), np.empty(q)
        kl._draw_chol(gk, L, mean, out_k)
        ol.draw_chol(go, L, mean, out_o)
        same(out_o, out_k, name)
        assert gk.bit_generator.state == go.bit_generator.state
        ik, io = np.empty((q, q)), np.empty((q, q))
        kl._inv_spd(A, ik)
        ol.inv_spd(A, io)
        same(io, ik, name)
    for a in (np.zeros((1, 1)), np.ones((2, 2))):  # a zero determinant: inf and nan
        ik, io = np.empty(a.shape), np.empty(a.shape)
        kl._inv_spd(a, ik)
        ol.inv_spd(a, io)
        same(io, ik)


def test_inv_wishart_is_the_kernels_draw_for_draw():
    rng = np.random.default_rng(6)
    for k in (1, 2, 3, 5):
        for seed in range(25):
            sub = spd(rng, k, 10.0 ** rng.uniform(0, 8))
            df = k + rng.uniform(0.5, 40)
            gk, go = np.random.default_rng(seed), np.random.default_rng(seed)
            out_k, out_o = np.empty((k, k)), np.empty((k, k))
            kl._inv_wishart(gk, df, sub, out_k)
            ol.inv_wishart(go, df, sub, out_o)
            same(out_o, out_k, f"k={k} seed={seed}")
            assert gk.bit_generator.state == go.bit_generator.state


@pytest.mark.parametrize("q", [1, 2, 3, 5, 12])
def test_the_batched_functions_are_the_single_kernels_cluster_by_cluster(q):
    rng = np.random.default_rng(q)
    J = 40
    P = np.stack([spd(rng, q, 10.0 ** rng.uniform(0, 17)) for _ in range(J)])
    P[0] = 0.0  # every pivot floored
    P[1, -1, -1] = -1.0  # an indefinite one, floored too
    if q > 1:
        P[2, 0, 0] = np.nan
    L = ol.cholesky_batched(P, 1e-300)
    b = rng.standard_normal((J, q))
    xf, xb = ol.forward_batched(L, b), ol.backward_batched(L, b)
    for j in range(J):
        Lj = np.full((q, q), 9.0)
        assert kl._cholesky(P[j], Lj, 1e-300)
        same(L[j], Lj, f"cluster {j}")
        x = np.empty(q)
        kl._forward(Lj, b[j], x)
        same(xf[j], x)
        kl._backward(Lj, b[j], x)
        same(xb[j], x)


def test_numpys_default_order_is_not_the_kernels():
    # LAPACK's factor and solves (blocked, FMA) miss the kernels' bits where the mirror
    # does not: the mirror follows the kernels' order, not numpy's
    rng = np.random.default_rng(7)
    lapack_differs = 0
    for _, A in matrices(8):
        q = A.shape[0]
        Lk, Lo = np.zeros((q, q)), np.zeros((q, q))
        kl._cholesky(A, Lk, 1e-300)
        ol.cholesky(A, Lo, 1e-300)
        same(Lo, Lk)
        h = rng.standard_normal(q)
        mk, mo, Lt = np.empty(q), np.empty(q), np.zeros((q, q))
        kl._solve_spd(A, h, Lt, mk)
        ol.solve_spd(A, h, Lt, mo)
        same(mo, mk)
        if q >= 5:
            with np.errstate(all="ignore"):
                lapack = np.linalg.solve(A, h)
            lapack_differs += not np.array_equal(lapack, mk)
    assert lapack_differs > 0
    # inv_wishart's products: a pairwise/BLAS matrix product is not the sequential one
    k = 12
    sub = spd(rng, k, 1e6)
    out = np.empty((k, k))
    kl._inv_wishart(np.random.default_rng(0), k + 3.0, sub, out)
    R = np.zeros((k, k))
    kl._cholesky(sub, R, 1e-300)
    A = np.zeros((k, k))
    ref = np.random.default_rng(0)
    for i in range(k):
        A[i, i] = np.sqrt(ref.chisquare(k + 3.0 - i))
    A[np.tril_indices(k, -1)] = ref.standard_normal(k * (k - 1) // 2)
    T = R @ np.linalg.inv(A.T)
    assert not np.array_equal(T @ T.T, out)
    mirror = np.empty((k, k))
    ol.inv_wishart(np.random.default_rng(0), k + 3.0, sub, mirror)
    same(mirror, out)
