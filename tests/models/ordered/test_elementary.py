"""The logarithm and exponential the kernels and their numpy twins share
(mlimpute.models.kernels.elementary, mlimpute.models.ordered.elementary): the same bits,
and within a few units in the last place of the C library's."""

from __future__ import annotations

import math

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from mlimpute.models.kernels import elementary as ke  # noqa: E402
from mlimpute.models.ordered import elementary as oe  # noqa: E402


@numba.njit
def _each(f, x):
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = f(x[i])
    return out


def _ulps(got, ref):
    return np.abs(got - ref) / np.spacing(np.abs(ref))


def test_log_is_the_kernels_and_within_two_ulps():
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [
            10.0 ** rng.uniform(-310, 308, 20_000),  # subnormals to the largest
            rng.uniform(0.5, 2.0, 20_000),  # near 1, where log loses digits
            1.0 + rng.uniform(-1e-8, 1e-8, 2_000),
            [5e-324, 2.2250738585072014e-308, 1.0, 2.0, 0.5, 1.7976931348623157e308],
        ]
    )
    got = oe.ln(x)
    np.testing.assert_array_equal(got, _each(ke._ln, x), strict=True)
    ref = np.array([math.log(v) for v in x.tolist()])
    away = ref != 0.0
    assert _ulps(got[away], ref[away]).max() <= 2.0
    assert got[x == 1.0].tolist() == [0.0] * int(np.sum(x == 1.0))


def test_log_specials():
    x = np.array([0.0, -0.0, -1.0, -np.inf, np.inf, np.nan])
    want = np.array([-np.inf, -np.inf, np.nan, np.nan, np.inf, np.nan])
    np.testing.assert_array_equal(oe.ln(x), want)
    np.testing.assert_array_equal(_each(ke._ln, x), want)


def test_exp_is_the_kernels_and_within_one_ulp():
    rng = np.random.default_rng(1)
    x = np.concatenate(
        [rng.uniform(-745, 709.78, 20_000), rng.uniform(-3, 3, 20_000), rng.normal(0, 1e-9, 500)]
    )
    got = oe.ex(x)
    np.testing.assert_array_equal(got, _each(ke._ex, x), strict=True)
    normal = (x > -708) & (x < 709)
    ref = np.array([math.exp(v) for v in x[normal].tolist()])
    assert _ulps(got[normal], ref).max() <= 1.0


def test_exp_specials():
    x = np.array([np.nan, np.inf, -np.inf, 710.0, -746.0, 0.0, -0.0])
    want = np.array([np.nan, np.inf, 0.0, np.inf, 0.0, 1.0, 1.0])
    np.testing.assert_array_equal(oe.ex(x), want)
    np.testing.assert_array_equal(_each(ke._ex, x), want)


@pytest.mark.parametrize("J", [0, 1, 5, 64, 300])
def test_sum_of_logs_is_the_kernels(J):
    rng = np.random.default_rng(J)
    D = rng.uniform(0.1, 1.0, (4, J)) * 10.0 ** rng.uniform(-200, 200, (4, J))
    if J:
        D[3, J // 2] = -1.0  # not positive: NaN
    got = oe.sum_ln(D)
    want = np.array([ke._sum_ln(d) for d in D])
    np.testing.assert_array_equal(got, want, strict=True)
    if J:
        assert math.isnan(got[3])
        exact = math.fsum(math.log(v) for v in D[0].tolist())
        assert abs(got[0] - exact) <= 4 * J * 2.0**-53 * np.abs(np.log(D[0])).sum()


def test_the_logs_are_not_numpys():
    # numpy's vectorised log differs from the C library's in the last bit now and then:
    # the reason for a logarithm written out
    x = 10.0 ** np.random.default_rng(2).uniform(-300, 300, 100_000)
    libm = np.array([math.log(v) for v in x.tolist()])
    assert np.any(np.log(x) != libm) or np.any(oe.ln(x) != libm)


def test_the_scalar_versions_are_the_vector_ones():
    rng = np.random.default_rng(3)
    x = np.concatenate([10.0 ** rng.uniform(-310, 308, 2_000), [0.0, -1.0, np.inf, np.nan]])
    got = np.array([oe.ln_float(v) for v in x.tolist()])
    np.testing.assert_array_equal(got, oe.ln(x), strict=True)
    y = np.concatenate([rng.uniform(-750, 720, 2_000), [np.nan, np.inf, -np.inf]])
    got = np.array([oe.ex_float(v) for v in y.tolist()])
    np.testing.assert_array_equal(got, oe.ex(y), strict=True)
