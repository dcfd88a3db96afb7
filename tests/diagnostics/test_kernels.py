"""Tests of mlimpute.diagnostics.kernels: bulk and tail ESS against the reference.

``tests/data/ess_reference.npz`` holds draws and the bulk and tail ESS that arviz 0.22
(the reference implementation of Vehtari et al. 2021, as Stan's ``ess_rfun``) gives for
them; ``tests/data/make_ess_reference.py`` wrote it. The estimator is deterministic, so
the two agree to rounding.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlimpute.diagnostics import ess_bulk_array, ess_tail_array

REFERENCE = np.load(Path(__file__).parents[1] / "data" / "ess_reference.npz")
CASES = [str(c) for c in REFERENCE["cases"]]


@pytest.mark.parametrize("case", CASES)
def test_bulk_ess_equals_the_reference_implementation(case):
    x = REFERENCE[f"x_{case}"]
    assert float(ess_bulk_array(x)) == pytest.approx(float(REFERENCE[f"bulk_{case}"]), rel=1e-10)


@pytest.mark.parametrize("case", CASES)
def test_tail_ess_equals_the_reference_implementation(case):
    x = REFERENCE[f"x_{case}"]
    assert float(ess_tail_array(x)) == pytest.approx(float(REFERENCE[f"tail_{case}"]), rel=1e-10)


def test_ess_of_short_chains_is_the_reference_one_not_a_rescaled_one():
    # 10 chains x 20 draws of AR(0.8): the reference gives 31.7; scaling every lag's
    # autocovariance by N / (N - 1) gave about a third less
    x = REFERENCE["x_ar08_10x20"]
    assert float(ess_bulk_array(x)) == pytest.approx(31.712897957145, rel=1e-10)


def test_a_constant_tail_indicator_counts_as_all_split_draws():
    # 97 % or more of the draws at the largest value: x <= q05 and x <= q95 are both all
    # True, and the reference gives such an indicator the ESS M N (here 5 x 20 draws)
    x = REFERENCE["x_mostly_max_5x20"]
    assert np.ptp(x) > 0
    assert float(ess_tail_array(x)) == 100.0


def test_batched_ess_equals_case_by_case():
    names = [c for c in CASES if REFERENCE[f"x_{c}"].shape == (5, 20)]
    batch = np.stack([REFERENCE[f"x_{c}"] for c in names])
    assert len(names) >= 2
    np.testing.assert_allclose(
        ess_bulk_array(batch), [REFERENCE[f"bulk_{c}"] for c in names], rtol=1e-10
    )
    np.testing.assert_allclose(
        ess_tail_array(batch), [REFERENCE[f"tail_{c}"] for c in names], rtol=1e-10
    )
