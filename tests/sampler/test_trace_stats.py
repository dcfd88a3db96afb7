"""The traced mean and SD of a visit's draws equal numpy's ``mean()`` and
``std(ddof=1)`` bit for bit."""

import numpy as np
import pytest

from mlimpute.sampler.trace_stats import mean_sd


@pytest.mark.parametrize("n", [2, 3, 7, 8, 9, 127, 128, 129, 150, 1000, 4099])
def test_mean_sd_equals_numpy_bit_for_bit(n):
    gen = np.random.default_rng(n)
    for scale in (1e-8, 1.0, 1e8):
        x = gen.normal(3.0, 1.0, n) * scale
        m, s = mean_sd(x.copy())
        assert m == x.mean() and s == x.std(ddof=1)


def test_mean_sd_of_too_few_values():
    m, s = mean_sd(np.empty(0))
    assert np.isnan(m) and s == 0.0
    assert mean_sd(np.array([2.5])) == (2.5, 0.0)
