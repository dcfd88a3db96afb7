"""Fast checks of the autocorrelation-aware R-hat limit (mlimpute.diagnostics.convergence/_mcmc)."""

import numpy as np
import pytest

from mlimpute.diagnostics import rhat_array, rhat_threshold
from mlimpute.diagnostics.kernels import ar1_inflation, inflation_array


def ar1(rng, shape, phi):
    """Stationary AR(1) draws with unit variance along the last axis."""
    e = rng.normal(size=shape)
    x = np.empty(shape)
    x[..., 0] = e[..., 0]
    for t in range(1, shape[-1]):
        x[..., t] = phi * x[..., t - 1] + np.sqrt(1 - phi**2) * e[..., t]
    return x


def limits(x, n_traces=1):
    m, n = x.shape[-2:]
    kappa, var = inflation_array(x)
    return rhat_threshold(m, n, n_traces=n_traces, inflation=kappa, inflation_var=var)


def test_inflation_is_one_for_independent_draws_and_matches_ar1_theory():
    assert ar1_inflation(0.0, 10) == pytest.approx(1.0)
    assert ar1_inflation(0.5, 200) == pytest.approx(3.0, rel=0.05)  # (1 + phi)/(1 - phi)
    rng = np.random.default_rng(1)
    kappa, _ = inflation_array(ar1(rng, (400, 20, 40), 0.35))
    # the estimate is unbiased to within ~2 % (400 replicates, sd of the mean ~0.5 %)
    assert np.mean(kappa) == pytest.approx(float(ar1_inflation(0.35, 20)), rel=0.03)


@pytest.mark.parametrize(("m", "n", "phi"), [(20, 10, 0.0), (20, 10, 0.35), (5, 20, 0.2)])
def test_limit_keeps_the_false_alarm_rate_of_autocorrelated_chains_at_most_nominal(m, n, phi):
    # 3000 replicates under the null: the rate has MC sd sqrt(.05 * .95 / 3000) = 0.004, so
    # 0.065 is nominal + 3.7 sd. The limit is conservative (measured 0.01-0.05), so the
    # lower bound only checks it is not wildly so (0.004 ~ 2.5 sd above 0 at rate 0.01).
    rng = np.random.default_rng(10 + m + n)
    x = ar1(rng, (3000, m, n), phi)
    rate = np.mean(rhat_array(x) > limits(x))
    assert 0.004 < rate < 0.065
    # the fixed limit for independent draws fires far more often on autocorrelated chains
    if phi >= 0.35:
        assert np.mean(rhat_array(x) > rhat_threshold(m, n)) > 0.2


def test_limit_still_detects_chains_with_shifted_means():
    # 20 AR(1) chains (phi 0.35) of 10 draws, half of them shifted by two stationary sds:
    # the autocorrelation is estimated within chains, so the shift does not raise the limit.
    rng = np.random.default_rng(3)
    x = ar1(rng, (200, 20, 10), 0.35)
    x[:, :10] += 2.0
    # measured power 0.815 over these 200 replicates (5 draws per split half is little);
    # 0.7 is 3 binomial sds (0.027) below it.
    assert np.mean(rhat_array(x) > limits(x)) > 0.7
    kappa_shifted, _ = inflation_array(x)
    kappa_plain, _ = inflation_array(x - np.where(np.arange(20) < 10, 2.0, 0.0)[:, None])
    np.testing.assert_allclose(kappa_shifted, kappa_plain, rtol=0.5)


def test_limit_with_iid_defaults_is_the_old_threshold():
    assert rhat_threshold(5, 10, inflation=1.0, inflation_var=0.0) == rhat_threshold(5, 10)
    out = rhat_threshold(20, 10, inflation=np.array([1.0, 2.0]), inflation_var=[0.0, 0.1])
    assert out.shape == (2,) and out[1] > out[0]


def test_inflation_is_nan_for_constant_traces():
    x = np.zeros((2, 5, 10))
    x[1] = np.random.default_rng(4).normal(size=(5, 10))
    kappa, var = inflation_array(x)
    assert np.isnan(kappa[0]) and np.isnan(var[0]) and np.isfinite(kappa[1])
