from __future__ import annotations

import numpy as np
import pytest

from mlimpute.models.linalg import (
    chol_batched,
    draw_precision_batched,
    forward_batched,
    inv_wishart,
)
from mlimpute.models.segments import Segments


def _spd(rng, J, q):
    A = rng.normal(size=(J, q, q))
    return A @ A.transpose(0, 2, 1) + q * np.eye(q)


@pytest.mark.parametrize("q", [1, 2, 3, 5])
def test_chol_and_forward_match_numpy(q):
    rng = np.random.default_rng(q)
    P = _spd(rng, 7, q)
    L = chol_batched(P)
    np.testing.assert_allclose(L, np.linalg.cholesky(P), rtol=1e-10, atol=1e-12)
    b = rng.normal(size=(7, q, 3))
    np.testing.assert_allclose(forward_batched(L, b), np.linalg.solve(L, b), rtol=1e-9)


@pytest.mark.parametrize("q", [1, 3])
def test_precision_draws_have_right_moments(q):
    rng = np.random.default_rng(0)
    P = np.repeat(_spd(rng, 1, q), 40000, axis=0)
    h = np.ones((40000, q))
    draws = draw_precision_batched(rng, P, h)
    cov = np.linalg.inv(P[0])
    # mean error SD = sqrt(diag(cov)/40000) < 0.005: tolerance 0.02 is > 4 SE
    np.testing.assert_allclose(draws.mean(0), cov @ h[0], atol=0.02)
    np.testing.assert_allclose(np.cov(draws.T).reshape(q, q), cov, atol=0.03)


def test_inverse_wishart_mean():
    rng = np.random.default_rng(1)
    S = np.array([[2.0, 0.5], [0.5, 1.0]])
    df = 12
    draws = np.array([inv_wishart(rng, df, S) for _ in range(8000)])
    # E = S / (df - q - 1); relative SD of an entry ≈ 0.4 → SE of mean ≈ 0.45 % of it
    np.testing.assert_allclose(draws.mean(0), S / (df - 3), rtol=0.02, atol=0.005)


def test_segments_sum_with_empty_clusters():
    codes = np.array([0, 0, 2, 2, 2, 4])
    seg = Segments.from_codes(codes, 6)
    vals = np.arange(6.0)
    np.testing.assert_array_equal(seg.sum(vals), [1, 0, 9, 0, 5, 0])
    np.testing.assert_array_equal(seg.counts, [2, 0, 3, 0, 1, 0])
    assert np.isnan(seg.mean(vals)[1])
    with pytest.raises(ValueError):
        Segments.from_codes(np.array([1, 0]), 2)
