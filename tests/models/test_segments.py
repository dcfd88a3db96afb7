"""Segments of sorted cluster codes (mlimpute/models/segments.py)."""

from __future__ import annotations

import numpy as np
import pytest

from mlimpute.models.segments import Segments


@pytest.mark.parametrize("n", [0, 1, 2, 50, 5_000])
def test_from_codes_by_its_definition(n):
    rng = np.random.default_rng(n)
    J = 40
    codes = np.sort(rng.integers(0, J, n))
    seg = Segments.from_codes(codes, J)
    first = np.r_[True, codes[1:] != codes[:-1]] if n else np.zeros(0, bool)
    np.testing.assert_array_equal(seg.starts, np.flatnonzero(first))
    np.testing.assert_array_equal(seg.nonempty, codes[first])
    np.testing.assert_array_equal(seg.counts, np.bincount(codes, minlength=J))
    assert seg.counts.dtype == np.intp and seg.starts.dtype == np.intp
    assert seg.counts.size == J


def test_from_codes_refuses_unsorted_and_negative_codes():
    with pytest.raises(ValueError, match="sorted"):
        Segments.from_codes(np.array([0, 2, 1]), 3)
    with pytest.raises(ValueError, match="non-negative"):
        Segments.from_codes(np.array([-1, 0]), 3)
    # codes beyond n_clusters: as many counts as np.bincount gives
    assert Segments.from_codes(np.array([0, 4]), 2).counts.tolist() == [1, 0, 0, 0, 1]
