"""Pólya–Gamma draws against exact moments and the exact Laplace transform.

Monte Carlo tolerances: each check is a z-score (MC estimate − exact)/SE, with the SE of a
mean ``sd/√n`` and that of a sample variance ``√((m₄ − s⁴)/n)`` (m₄ the sample fourth
central moment). Within a test function the family-wise false-alarm rate is held at 1e-3
by Bonferroni: |z| must stay below ``Φ⁻¹(1 − 0.001/(2N))`` for N checks (≈ 4.1 for N = 20).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from mlimpute.models.polya_gamma import _tail_sums, draw_pg, pg_laplace, pg_mean, pg_var

N_DRAWS = 100_000


def _bonferroni(n_checks: int, alpha: float = 1e-3) -> float:
    return float(norm.isf(alpha / (2 * n_checks)))


def _moment_z(w, b, c):
    """z-scores of the sample mean and variance of draws w against PG(b, c)."""
    n = w.size
    m, s2 = w.mean(), w.var()
    m4 = np.mean((w - m) ** 4)
    z_mean = (m - pg_mean(b, c)) / np.sqrt(s2 / n)
    z_var = (s2 - pg_var(b, c)) / np.sqrt((m4 - s2 * s2) / n)
    return float(z_mean), float(z_var)


def _series_moments(b, c, n_terms=200_000):
    """Mean and variance from the gamma-sum representation (Σ to n_terms, then ∫ tails)."""
    k = np.arange(1, n_terms + 1)
    d = (k - 0.5) ** 2 + (c / (2 * np.pi)) ** 2
    s1 = (1 / d).sum() + 1 / n_terms  # Σ_{k>N} 1/d_k ≈ 1/N
    s2 = (1 / d**2).sum() + 1 / (3 * n_terms**3)
    return b * s1 / (2 * np.pi**2), b * s2 / (4 * np.pi**4)


@pytest.mark.parametrize("c", [0.0, 0.004, 0.5, 3.0, 20.0, -60.0])
def test_exact_moment_formulas_match_the_series(c):
    # E[ω] = b/(2c) tanh(c/2), Var[ω] = b (sinh c − c)/(4c³ cosh²(c/2)): checked against the
    # defining sum of gammas (E g_k = Var g_k = b), independently of any sampler
    m, v = _series_moments(2.5, c)
    assert np.isclose(pg_mean(2.5, c), m, rtol=1e-9)
    assert np.isclose(pg_var(2.5, c), v, rtol=1e-9)


def test_laplace_transform_formula_at_small_t():
    # d/dt at 0 of E[exp(−tω)] is −E[ω]; second derivative E[ω²]
    b, c, h = 1.7, 2.3, 1e-4
    lt = [pg_laplace(t, b, c) for t in (0.0, h, 2 * h)]
    assert np.isclose(-(lt[1] - lt[0]) / h, pg_mean(b, c), rtol=1e-3)
    second = (lt[2] - 2 * lt[1] + lt[0]) / h**2
    assert np.isclose(second, pg_var(b, c) + pg_mean(b, c) ** 2, rtol=1e-2)


@pytest.mark.parametrize("c", [0.0, 1.0, 8.0, 80.0])
def test_remainder_sums_of_the_gamma_truncation(c):
    k = np.arange(1, 21)
    d = (k - 0.5) ** 2 + (c / (2 * np.pi)) ** 2
    exact1 = pg_mean(1.0, c) * 2 * np.pi**2 - (1 / d).sum()
    exact2 = pg_var(1.0, c) * 4 * np.pi**4 - (1 / d**2).sum()
    s1, s2, _ = _tail_sums(np.array([c]), 20)
    assert np.isclose(s1[0], exact1, rtol=1e-9)
    assert np.isclose(s2[0], exact2, rtol=1e-7)


CASES = [  # (b, c, path under method="auto")
    (1.0, 0.0, "exact"),
    (1.0, 1.5, "exact"),
    (1.0, 3.1, "exact"),  # either side of the switch from the Lévy to the IG envelope
    (1.0, -3.2, "exact"),
    (1.0, -7.0, "exact"),
    (1.0, 40.0, "exact"),
    (3.0, 2.0, "exact"),
    (2.7, 0.0, "gamma"),
    (2.7, 5.0, "gamma"),
    (13.4, -1.0, "gamma"),
    (5000.0, 2.0, "normal"),
    (0.3, 1.0, "gamma"),
]


def test_moments_of_every_sampler():
    rng = np.random.default_rng(2024)
    thr = _bonferroni(2 * len(CASES))
    zs = {}
    for b, c, _ in CASES:
        zs[(b, c)] = _moment_z(draw_pg(rng, np.full(N_DRAWS, b), c), b, c)
    assert max(abs(z) for pair in zs.values() for z in pair) < thr, zs


def test_moments_detect_a_wrong_tilt_or_shape():
    # the same checks reject draws from PG(1, 1.15c) and PG(1.03b, c) with 10⁵ draws
    rng = np.random.default_rng(7)
    thr = _bonferroni(2 * len(CASES))
    b, c = 1.0, 1.5
    assert max(map(abs, _moment_z(draw_pg(rng, np.full(N_DRAWS, b), 1.15 * c), b, c))) > thr
    assert max(map(abs, _moment_z(draw_pg(rng, np.full(N_DRAWS, 1.03 * b), c), b, c))) > thr
    b, c = 2.7, 5.0  # the gamma-sum path
    assert max(map(abs, _moment_z(draw_pg(rng, np.full(N_DRAWS, b), 1.15 * c), b, c))) > thr


T_VALUES = (0.5, 3.0, 20.0)


def _laplace_z(w, t, b, c):
    e = np.exp(-t * w)
    return float((e.mean() - pg_laplace(t, b, c)) / (e.std() / np.sqrt(w.size)))


def test_laplace_transform_of_every_sampler():
    # the Laplace transform at several t pins down the distribution, not just two moments
    rng = np.random.default_rng(99)
    cases = [(b, c) for b, c, path in CASES if path != "normal"]
    thr = _bonferroni(len(cases) * len(T_VALUES))
    zs = {}
    for b, c in cases:
        w = draw_pg(rng, np.full(N_DRAWS, b), c)
        # t scaled by 1/b for b > 1: the relative variance of exp(−tω), L(2t)/L(t)² − 1,
        # grows like a b-th power (L_b = L_1^b), and at b = 13.4, t = 20 it is so large that
        # the sample SE is unreliable (z-scores of −6 to −10 for draws with 60 exact terms)
        zs[(b, c)] = [_laplace_z(w, t / max(b, 1.0), b, c) for t in T_VALUES]
    assert max(abs(z) for v in zs.values() for z in v) < thr, zs


def test_laplace_transform_detects_a_wrong_sampler():
    rng = np.random.default_rng(5)
    thr = _bonferroni(len(CASES) * len(T_VALUES))
    b, c = 1.0, 0.5
    w = draw_pg(rng, np.full(N_DRAWS, b), c + 0.6)  # the wrong tilt
    assert max(abs(_laplace_z(w, t, b, c)) for t in T_VALUES) > thr
    # the first gamma term alone, without the rest of the sum, is far off
    k1 = rng.standard_gamma(np.full(N_DRAWS, 2.7)) / (0.25 + (1 / (2 * np.pi)) ** 2)
    w_bad = k1 / (2 * np.pi**2)
    assert max(abs(_laplace_z(w_bad, t, 2.7, 1.0)) for t in T_VALUES) > thr


def test_third_cumulant_of_the_gamma_sum():
    # κ₃ = 2b Σ_k (2π² d_k)⁻³; SE of the sample third central moment from its sample variance
    rng = np.random.default_rng(11)
    b, c = 2.7, 1.0
    w = draw_pg(rng, np.full(4 * N_DRAWS, b), c)
    k = np.arange(1, 200_001)
    kappa3 = 2 * b * np.sum((2 * np.pi**2 * ((k - 0.5) ** 2 + (c / (2 * np.pi)) ** 2)) ** -3.0)
    dev = w - w.mean()
    m3 = np.mean(dev**3)
    se = np.std(dev**3) / np.sqrt(w.size)
    assert abs(m3 - kappa3) / se < _bonferroni(1)


def test_exact_integer_shapes_mixed_in_one_call():
    rng = np.random.default_rng(3)
    b = np.tile([1.0, 2.0, 4.0], N_DRAWS // 3)
    c = np.tile([0.5, -2.0, 3.0], N_DRAWS // 3)
    w = draw_pg(rng, b, c, method="exact")
    thr = _bonferroni(6)
    for j in range(3):
        assert max(map(abs, _moment_z(w[j::3], b[j], c[j]))) < thr


def test_same_generator_state_gives_the_same_draws():
    b = np.array([1.0, 1.0, 3.0, 2.5, 2000.0])
    c = np.array([0.0, -4.0, 1.0, 2.0, 0.5])
    a1 = draw_pg(np.random.default_rng(42), np.tile(b, 100), np.tile(c, 100))
    a2 = draw_pg(np.random.default_rng(42), np.tile(b, 100), np.tile(c, 100))
    a3 = draw_pg(np.random.default_rng(43), np.tile(b, 100), np.tile(c, 100))
    assert np.array_equal(a1, a2)
    assert not np.array_equal(a1, a3)
    assert np.all(a1 > 0)


def test_shapes_and_broadcasting():
    rng = np.random.default_rng(0)
    assert draw_pg(rng, 1.0, np.zeros((3, 4))).shape == (3, 4)
    assert draw_pg(rng, np.ones(5), 0.0).shape == (5,)
    assert draw_pg(rng, 1.0, 2.0).shape == ()


@pytest.mark.parametrize(
    ("b", "c", "kw"),
    [
        (0.0, 1.0, {}),
        (-1.0, 1.0, {}),
        (np.inf, 1.0, {}),
        (1.0, np.nan, {}),
        (1.5, 1.0, {"method": "exact"}),
        (1.0, 1.0, {"method": "bogus"}),
    ],
)
def test_bad_arguments_are_rejected(b, c, kw):
    with pytest.raises(ValueError, match="draw_pg"):
        draw_pg(np.random.default_rng(0), b, c, **kw)


def test_gamma_sum_with_entries_of_different_term_counts_in_one_call():
    # |c| = 0.5, 3, 10, 30 fall in the 2-, 4-, 12- and 24-term classes: one call draws
    # them together (zeroed terms beyond an entry's K); each class keeps exact moments and
    # Laplace transform
    rng = np.random.default_rng(17)
    c = np.tile([0.5, -3.0, 10.0, 30.0], N_DRAWS)
    b = np.tile([2.5, 7.3, 3.3, 12.1], N_DRAWS)
    w = draw_pg(rng, b, c)
    thr = _bonferroni(4 * (2 + len(T_VALUES)))
    zs = []
    for j in range(4):
        wj = w[j::4]
        zs += list(_moment_z(wj, b[j], c[j]))
        zs += [_laplace_z(wj, t / b[j], b[j], c[j]) for t in T_VALUES]
    assert max(map(abs, zs)) < thr, zs


def test_remainder_sums_with_a_term_count_per_entry():
    c = np.array([0.0, 0.5, 3.0, 10.0, 30.0, 80.0])
    k_each = np.array([2, 2, 4, 12, 24, 24])
    s1, s2, inv = _tail_sums(c, k_each)
    for i, (ci, ki) in enumerate(zip(c, k_each, strict=True)):
        k = np.arange(1, 2_000_001)
        d = (k - 0.5) ** 2 + (ci / (2 * np.pi)) ** 2
        assert np.isclose(s1[i], (1 / d[ki:]).sum() + 1 / 2e6, rtol=1e-9)
        assert np.isclose(s2[i], (1 / d[ki:] ** 2).sum(), rtol=1e-8)
        assert np.count_nonzero(inv[:, i]) == ki
