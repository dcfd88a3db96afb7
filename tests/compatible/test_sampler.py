"""The reference sampler on design (a): a random slope on an incomplete predictor.

Reference values come from mlimpute's own REML fitter on the complete data; the contrast is
the chained imputation with its default models (random intercepts only), which cannot
represent the random slope of y on the incomplete x and halves its variance.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mlimpute  # noqa: F401  (registers df.mi)
from mlimpute.analysis.fitters.mixedlm import fit_mixedlm
from mlimpute.compatible.designs import PSI_A, design_a
from mlimpute.compatible.sampler import run_compatible
from mlimpute.errors import DataError


def reml(d, y, x):
    X = np.column_stack([np.ones_like(y), d.z, x])
    return fit_mixedlm(y, X, X[:, [0, 2]], d.cluster)


def slope_variances(seed: int, rng_seed: int, m: int = 10):
    """Complete-data, model-based (pooled over m) and chained (pooled) var(u1)."""
    d = design_a(np.random.default_rng(seed))
    run = run_compatible(
        np.random.default_rng(rng_seed), d.y_obs, d.x_obs, d.z, d.cluster, iterations=1000, m=m
    )
    compatible = np.mean([reml(d, y, x).cov_re[1, 1] for y, x in run.imputations])
    df = pd.DataFrame({"y": d.y_obs, "x": d.x_obs, "z": d.z, "cluster": d.cluster})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the chained path warns that it lacks the slope
        imp = df.mi.impute(cluster="cluster", m=5, iterations=10, rng=rng_seed)
        vc = imp.fit("y ~ z + x + (1 + x | cluster)").variance_components()
    chained = float(vc.loc["var(x|cluster)", "estimate"])
    return reml(d, d.y, d.x).cov_re[1, 1], compatible, chained, run, d


def test_random_slope_variance_recovered_where_chained_misses_it():
    complete, compatible, chained, run, d = slope_variances(100, 0)
    # Tolerance: the complete-data REML var(u1) has SE ≈ √(2/J)·(ψ11 + σ²/(n·var x))
    # = √(2/100)·(0.2 + 1/12.5) ≈ 0.04; with ~40 % of its information missing the MI
    # estimate differs from it by SD ≈ 0.04·√(0.4/0.6) ≈ 0.033 (plus ~0.01 Monte Carlo
    # error of m = 10): 0.07 is about 2 SD. (Measured on 6 data sets: differences
    # +0.018, −0.020, −0.030, +0.009, −0.066, +0.004; chained −0.08 to −0.16.)
    assert abs(compatible - complete) < 0.07, (compatible, complete)
    assert chained < complete - 0.07, (chained, complete)
    # against the truth 0.2: ±0.08 ≈ 2 SE of √(0.04² + 0.033²)
    assert abs(compatible - PSI_A[1, 1]) < 0.08
    assert abs(chained - PSI_A[1, 1]) > 0.08
    # observed values are never lost, every missing value is filled
    for y, x in run.imputations:
        obs = ~np.isnan(d.x_obs)
        np.testing.assert_array_equal(x[obs], d.x_obs[obs])
        np.testing.assert_array_equal(y[~np.isnan(d.y_obs)], d.y_obs[~np.isnan(d.y_obs)])
        assert np.all(np.isfinite(x)) and np.all(np.isfinite(y))
    assert len(run.imputations) == 10 and run.saved.min() >= 500


def test_complete_data_draws_centre_on_reml():
    d = design_a(np.random.default_rng(7), 60, 10, x_missing=0.0, y_missing=0.0)
    run = run_compatible(np.random.default_rng(3), d.y, d.x, d.z, d.cluster, iterations=1200)
    fit = reml(d, d.y, d.x)
    g = run.trace["gamma"][200:]
    # Monte Carlo SE by batch means (10 batches of 100 iterations)
    batches = g.reshape(10, 100, 3).mean(axis=1)
    mc_se = batches.std(axis=0, ddof=1) / np.sqrt(10)
    # flat priors: the posterior of γ centres on the (RE)ML estimate up to O(1/J) terms,
    # allowed as 0.1 posterior SD on top of 4 Monte Carlo SEs
    post_sd = g.std(axis=0)
    assert np.all(np.abs(g.mean(axis=0) - fit.fe_params) < 4 * mc_se + 0.1 * post_sd)
    # posterior SDs agree with the REML standard errors within 20 %
    np.testing.assert_allclose(post_sd, np.sqrt(np.diag(fit.cov_fe)), rtol=0.2)
    # residual variance: posterior mean within 5 % of REML's (600 rows, SE ≈ 6 %/√… small)
    assert abs(run.trace["sigma2"][200:].mean() / fit.scale - 1) < 0.05


def test_same_generator_same_draws():
    d = design_a(np.random.default_rng(1), 20, 5)
    a = run_compatible(
        np.random.default_rng(4), d.y_obs, d.x_obs, d.z, d.cluster, iterations=30, m=1
    )
    b = run_compatible(
        np.random.default_rng(4), d.y_obs, d.x_obs, d.z, d.cluster, iterations=30, m=1
    )
    np.testing.assert_array_equal(a.imputations[0][1], b.imputations[0][1])
    np.testing.assert_array_equal(a.trace["psi"], b.trace["psi"])


def test_bad_inputs_are_named():
    d = design_a(np.random.default_rng(1), 10, 5)
    rng = np.random.default_rng(0)
    with pytest.raises(DataError, match="x must have shape"):
        run_compatible(rng, d.y_obs, d.x_obs[:-1], d.z, d.cluster)
    z = d.z.copy()
    z[0] = np.nan
    with pytest.raises(DataError, match="z must be complete"):
        run_compatible(rng, d.y_obs, d.x_obs, z, d.cluster)


@pytest.mark.slow
def test_random_slope_variance_over_several_data_sets():
    diffs_c, diffs_ch = [], []
    for s in range(6):
        complete, compatible, chained, _, _ = slope_variances(100 + s, s)
        diffs_c.append(compatible - complete)
        diffs_ch.append(chained - complete)
    # mean of 6 differences: SD ≈ 0.035/√6 ≈ 0.014; ±0.035 is 2.5 SD
    assert abs(np.mean(diffs_c)) < 0.035, diffs_c
    assert np.mean(diffs_ch) < -0.08, diffs_ch
