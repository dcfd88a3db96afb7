"""Tests of mlimpute.pooling.rubin: the checks of pool()'s input."""

from __future__ import annotations

import numpy as np
import pytest

from mlimpute.errors import PoolingError
from mlimpute.pooling import pool

Q = np.array([[1.0, 2.0], [1.2, 2.1], [0.9, 1.8]])
U = np.tile(np.array([[0.04, 0.01], [0.01, 0.09]]), (3, 1, 1))


def test_a_non_finite_estimate_names_the_term_and_counts_data_sets_from_1():
    q = Q.copy()
    q[2, 1] = np.nan
    with pytest.raises(PoolingError, match=r"the estimate of 'b' in completed data set 3 is not"):
        pool(q, U, names=["a", "b"])
    with pytest.raises(PoolingError, match=r"estimate 2 of 2 in completed data set 3 is not"):
        pool(q, U)


def test_an_asymmetric_covariance_is_refused_naming_the_data_set():
    u = U.copy()
    u[1, 0, 1] += 1e-3
    with pytest.raises(
        PoolingError, match=r"completed data set 2 is not symmetric: its entry \('a', 'b'\)"
    ):
        pool(Q, u, names=["a", "b"])


def test_rounding_asymmetry_is_accepted():
    u = U.copy()
    u[1, 0, 1] *= 1 + 1e-12  # e.g. a covariance from a numerically inverted Hessian
    assert np.isfinite(pool(Q, u).se).all()


def test_a_covariance_that_is_not_positive_semi_definite_is_refused():
    u = U.copy()
    u[2] = [[0.04, 0.1], [0.1, 0.09]]  # symmetric, correlation 2.5
    with pytest.raises(PoolingError, match="completed data set 3 is not positive semi-definite"):
        pool(Q, u)


def test_a_singular_but_positive_semi_definite_covariance_is_pooled():
    u = U.copy()
    u[0] = [[0.04, 0.06], [0.06, 0.09]]  # correlation exactly 1: singular, still a covariance
    assert np.isfinite(pool(Q, u).se).all()


def test_a_negative_variance_is_refused_naming_term_and_data_set():
    v = np.array([[0.04, 0.09], [0.04, -0.01], [0.04, 0.09]])
    with pytest.raises(PoolingError, match=r"variance of 'b' in completed data set 2 is negative"):
        pool(Q, v, names=["a", "b"])


def test_non_finite_covariances_name_the_data_set():
    u = U.copy()
    u[1, 1, 1] = np.inf
    with pytest.raises(PoolingError, match="completed data set 2 has values that are not finite"):
        pool(Q, u)
