"""Complete-data behaviour of the several-term fits on the designs of the three-level and
cross-classified acceptance simulations: the reference the imputations are judged by.

(a) 50 schools x 4 classes x 15 pupils, variances school 0.5, class 0.3, residual 1;
(b) 2,000 pupils in 100 schools crossed with 50 neighbourhoods, both variances 0.3.
The default suite runs a few replications, ``-m slow`` the full 200.
"""

from __future__ import annotations

import numpy as np
import pytest

from mlimpute.analysis.fitters.mixedlm import fit_mixedlm
from mlimpute.analysis.fitters.multiterm import fit_multiterm, make_term

BETA = np.array([1.0, 0.5, 0.3, 0.2])  # intercept, x (pupil), w (class), z (school)
SCHOOL, CLASS, RESID = 0.5, 0.3, 1.0


def three_level(rng: np.random.Generator):
    n_s, n_c, n_p = 50, 4, 15
    school = np.repeat(np.arange(n_s), n_c * n_p)
    cls = np.repeat(np.arange(n_s * n_c), n_p)
    x = rng.normal(size=school.size)
    w = rng.normal(size=n_s * n_c)[cls]
    z = rng.normal(size=n_s)[school]
    X = np.column_stack([np.ones(school.size), x, w, z])
    y = (
        X @ BETA
        + rng.normal(0.0, np.sqrt(SCHOOL), n_s)[school]
        + rng.normal(0.0, np.sqrt(CLASS), n_s * n_c)[cls]
        + rng.normal(0.0, np.sqrt(RESID), school.size)
    )
    return y, X, school, cls


def run_three_level(reps: int, seed: int):
    rng = np.random.default_rng(seed)
    vc, cover, two_level = [], [], []
    for _ in range(reps):
        y, X, school, cls = three_level(rng)
        one = np.ones(y.size)
        f = fit_multiterm(
            y, X, [make_term(one, school, name="school"), make_term(one, cls, name="class")]
        )
        vc.append([f.term_cov(0)[0, 0], f.term_cov(1)[0, 0], f.scale])
        se = np.sqrt(np.diag(f.cov_fe))
        cover.append(np.abs(f.fe_params - BETA) < 1.96 * se)
        g = fit_mixedlm(y, X, one[:, None], cls)  # two-level: classes only
        two_level.append([g.cov_re[0, 0], g.scale])
    return np.array(vc), np.array(cover), np.array(two_level)


def test_three_level_complete_data_small():
    """Eight replications: the mean REML variance estimates are within four Monte Carlo
    standard errors of the truth (the SE of one school-variance estimate is about
    SCHOOL * sqrt(2 / 49) + class and residual contributions, ~0.12, so the bound for the
    mean of 8 is ~0.17; class ~0.06/sqrt(8), residual ~0.027/sqrt(8)); a two-level
    analysis with classes only puts the school variance into the class level (0.3 + 0.5)."""
    vc, cover, two = run_three_level(8, 2026)
    mean = vc.mean(axis=0)
    assert abs(mean[0] - SCHOOL) < 4 * 0.12 / np.sqrt(8)
    assert abs(mean[1] - CLASS) < 4 * 0.06 / np.sqrt(8)
    assert abs(mean[2] - RESID) < 4 * 0.03 / np.sqrt(8)
    assert abs(two[:, 0].mean() - (SCHOOL + CLASS)) < 4 * 0.14 / np.sqrt(8)
    assert cover.mean() > 0.75  # 32 intervals at 95 %: P(< 0.75) is below 1e-4


@pytest.mark.slow
def test_three_level_complete_data_full():
    """200 replications: each mean variance within +-10 % of the truth (REML is close to
    unbiased; the Monte Carlo SE of the school mean is ~0.12/sqrt(200) = 1.7 %), fixed-
    effect Wald coverage of the 800 intervals in 0.93-0.97 (MC SE 0.008; the school-level
    coefficient's interval on 50 schools with the normal quantile covers slightly under
    95 %)."""
    vc, cover, two = run_three_level(200, 2027)
    truth = np.array([SCHOOL, CLASS, RESID])
    assert np.all(np.abs(vc.mean(axis=0) / truth - 1.0) < 0.10)
    assert 0.93 <= cover.mean() <= 0.97
    assert two[:, 0].mean() > 1.5 * CLASS  # the two-level bias the three-level model removes


def crossed(rng: np.random.Generator):
    n = 2000
    school, hood = rng.integers(0, 100, n), rng.integers(0, 50, n)
    x = rng.normal(size=n)
    X = np.column_stack([np.ones(n), x])
    y = (
        X @ np.array([1.0, 0.5])
        + rng.normal(0.0, np.sqrt(0.3), 100)[school]
        + rng.normal(0.0, np.sqrt(0.3), 50)[hood]
        + rng.normal(size=n)
    )
    one = np.ones(n)
    return y, X, [make_term(one, school, name="school"), make_term(one, hood, name="hood")]


def run_crossed(reps: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(reps):
        f = fit_multiterm(*crossed(rng))
        out.append([f.term_cov(0)[0, 0], f.term_cov(1)[0, 0]])
    return np.array(out)


def test_crossed_complete_data_small():
    """Three replications: both variances within four Monte Carlo SEs of 0.3 (SE of one
    estimate ~0.3 sqrt(2 / (J - 1)) plus the residual's share: ~0.05 for 100 schools,
    ~0.065 for 50 neighbourhoods)."""
    est = run_crossed(3, 2028).mean(axis=0)
    assert abs(est[0] - 0.3) < 4 * 0.05 / np.sqrt(3)
    assert abs(est[1] - 0.3) < 4 * 0.065 / np.sqrt(3)


@pytest.mark.slow
def test_crossed_complete_data_full():
    """200 replications: both mean variances within +-10 % of 0.3 (MC SE under 2 %)."""
    est = run_crossed(200, 2029).mean(axis=0)
    assert np.all(np.abs(est / 0.3 - 1.0) < 0.10)
