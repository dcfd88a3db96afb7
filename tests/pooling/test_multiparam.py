"""Tests of mlimpute.pooling.multiparam: D1 and D2 refuse singular tested covariances."""

from __future__ import annotations

import numpy as np
import pytest

from mlimpute.errors import PoolingError
from mlimpute.pooling import d1, wald_statistics

Q = np.array([[0.5, 0.3], [0.6, 0.2], [0.4, 0.35], [0.55, 0.3], [0.5, 0.25]])
U = np.tile(np.array([[0.01, 0.002], [0.002, 0.02]]), (5, 1, 1))


def _singular(u: np.ndarray, row: int) -> np.ndarray:
    u = u.copy()
    sd = np.sqrt(np.diag(u[row]))
    u[row, 0, 1] = u[row, 1, 0] = sd[0] * sd[1]  # correlation 1
    return u


def test_wald_statistics_refuse_a_singular_covariance_naming_data_set_and_terms():
    u = _singular(U, 3)
    with pytest.raises(PoolingError, match=r"terms 'a', 'b' in completed data set 4 is singular"):
        wald_statistics(Q, u, names=["a", "b"])
    with pytest.raises(PoolingError, match=r"the 2 tested parameters in completed data set 4"):
        wald_statistics(Q, u)


def test_d1_refuses_a_singular_covariance_of_a_data_set():
    with pytest.raises(PoolingError, match="completed data set 2 is singular"):
        d1(Q, _singular(U, 1), names=["a", "b"])


def test_d1_refuses_a_singular_average_covariance():
    # every U_l singular in the same direction: their mean is singular too
    u = np.tile(np.array([[0.01, 0.02], [0.02, 0.04]]), (5, 1, 1))
    u[:, 1, 1] *= 1 + 1e-15
    with pytest.raises(PoolingError, match="singular"):
        d1(Q, u)


def test_a_zero_variance_is_refused():
    u = U.copy()
    u[0, 1, 1] = 0.0
    with pytest.raises(PoolingError, match=r"a variance is not positive"):
        wald_statistics(Q, u)


def test_well_conditioned_covariances_on_very_different_scales_are_accepted():
    # scales 1e-10 and 1e6 and a correlation of 0.999999: a solve loses ~6 digits, fine
    scale = np.array([1e-5, 1e3])
    corr = np.array([[1.0, 0.999999], [0.999999, 1.0]])
    u = np.tile(corr * np.outer(scale, scale), (5, 1, 1))
    q = Q * scale
    stat = wald_statistics(q, u)
    assert np.all(np.isfinite(stat))
    assert np.isfinite(d1(q, u).statistic)
    # the statistic does not depend on the scale of the terms
    np.testing.assert_allclose(stat, wald_statistics(Q, np.tile(corr, (5, 1, 1))), rtol=1e-6)
