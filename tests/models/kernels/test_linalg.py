"""The compiled small dense linear algebra (mlimpute.models.kernels.linalg) against the
numpy functions it replaces (mlimpute.models.linalg)."""

import numpy as np
import pytest

pytest.importorskip("numba")

from mlimpute.models.kernels.linalg import _inv_wishart, _solve_spd  # noqa: E402
from mlimpute.models.linalg import inv_wishart, solve_spd  # noqa: E402


def test_inv_wishart_and_solve_spd_agree_with_the_numpy_functions():
    rng = np.random.default_rng(3)
    for k in (1, 2, 3):
        B = rng.standard_normal((k + 2, k))
        sub = B.T @ B + np.eye(k)
        got = np.empty((k, k))
        _inv_wishart(np.random.default_rng(k), 7.5, sub, got)
        np.testing.assert_allclose(got, inv_wishart(np.random.default_rng(k), 7.5, sub), 1e-12)
    # the jitter of a singular precision, as solve_spd adds it
    A = np.ones((3, 3))
    h = np.arange(3.0)
    L, mean = np.zeros((3, 3)), np.empty(3)
    assert _solve_spd(A, h, L, mean)
    ref_mean, ref_L = solve_spd(A, h)
    np.testing.assert_allclose(L, ref_L, rtol=1e-10)
    np.testing.assert_allclose(mean, ref_mean, atol=1e-9 * np.abs(ref_mean).max())  # cond 1e10
