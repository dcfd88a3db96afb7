"""Logit models (``logit``, ``2l.logit``, ``2lonly.logit``) by Pólya–Gamma augmentation.

The contract test (``check_model``) runs over them in tests/models/test_contract.py.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.special import expit, log_expit

import mlimpute
from mlimpute.models.logit import Logit, LogitState, MultilevelLogit, _beta_prec, _core
from mlimpute.models.polya_gamma import draw_pg
from tests.conftest import array_model_data, batch_se, run_steps


def _chain_state(model, data, n_iter=5):
    rng = np.random.default_rng(0)
    state = model.init(rng, data)
    for _ in range(n_iter):
        state = model.step(rng, state, data)
    return state


# -- (1) single level: the exact posterior by quadrature ----------------------------------
def _tiny():
    rng = np.random.default_rng(11)
    x = rng.standard_normal(30)
    X = np.column_stack([np.ones(30), x])
    y = (rng.random(30) < expit(-0.3 + 1.2 * x)).astype(float)
    return array_model_data(X, y, ["Intercept", "x"])


def _exact_moments(data):
    """Posterior mean and variance of β on a 2-D grid (the model's prior: flat intercept,
    N(0, 1/prec) slope), ±8 Laplace SDs around the mode, 301² points."""
    X, y = data.X.obs, data.y_obs
    prec = _beta_prec(data)

    def logpost(B):  # B (..., 2)
        eta = B @ X.T
        return (y * log_expit(eta) + (1 - y) * log_expit(-eta)).sum(-1) - 0.5 * (prec * B**2).sum(
            -1
        )

    beta = np.zeros(2)
    for _ in range(50):  # Newton for the mode
        p = expit(X @ beta)
        H = (X * (p * (1 - p))[:, None]).T @ X + np.diag(prec)
        beta = beta + np.linalg.solve(H, X.T @ (y - p) - prec * beta)
    sd = np.sqrt(np.diag(np.linalg.inv(H)))
    g0 = beta[0] + sd[0] * np.linspace(-8, 8, 301)
    g1 = beta[1] + sd[1] * np.linspace(-8, 8, 301)
    B = np.stack(np.meshgrid(g0, g1, indexing="ij"), axis=-1)
    lp = logpost(B)
    w = np.exp(lp - lp.max())
    w /= w.sum()
    mean = np.array([(w * B[..., k]).sum() for k in range(2)])
    var = np.array([(w * (B[..., k] - mean[k]) ** 2).sum() for k in range(2)])
    return mean, var


class _IgnoresWeights(Logit):
    """A wrong kernel: the pseudo-responses fitted with unit weights."""

    def step(self, rng, state, data):
        core = _core(data)
        omega = draw_pg(rng, 1.0, core.predict(state.core, data, "obs"))
        z = np.where(data.y_obs > 0.5, 0.5, -0.5) / omega
        new = core.gibbs(rng, state.core, data, z, sigma2=1.0, beta_prec=_beta_prec(data))
        return LogitState(new)


def _posterior_check(model, data, n_iter=6000, seed=5):
    """max over β of |chain − exact| / MC SE for the mean and the variance.

    MC SE of the mean: batch means (40 batches). MC SE of the variance: batch means of
    (β − exact mean)², whose mean estimates the variance up to the (smaller) error of the
    mean, which the check of the mean covers.
    """
    mean, var = _exact_moments(data)
    draws = run_steps(model, data, n_iter, seed=seed, burn=0)[500:]
    z_mean = (draws.mean(0) - mean) / batch_se(draws)
    sq = (draws - mean) ** 2
    z_var = (sq.mean(0) - var) / batch_se(sq)
    return np.abs(np.r_[z_mean, z_var]).max()


def test_single_level_matches_exact_posterior():
    """Chain moments of β within 4 Monte Carlo SEs (batch means) of the quadrature."""
    assert _posterior_check(Logit(), _tiny()) < 4.0


def test_single_level_check_fails_without_weights():
    """The same check rejects a kernel that ignores the Pólya–Gamma precisions."""
    assert _posterior_check(_IgnoresWeights(), _tiny(), n_iter=3000) > 8.0


# -- (2) multilevel: recovery on simulated data -------------------------------------------
def test_multilevel_recovers_fixed_effects_and_intercept_sd():
    """J = 60 clusters × 15, random-intercept SD 1, β = (−0.5, 1).

    Each parameter's posterior mean within 3 posterior SDs of the truth (a 99.7 % band for
    the posterior's own uncertainty; the Monte Carlo error of 1,500 draws is < 0.1 SD).
    """
    rng = np.random.default_rng(21)
    J, n = 60, 15
    g = np.repeat(np.arange(J), n)
    x = rng.standard_normal(J * n)
    eta = -0.5 + 1.0 * x + rng.standard_normal(J)[g]
    y = (rng.random(J * n) < expit(eta)).astype(float)
    X = np.column_stack([np.ones(J * n), x])
    data = array_model_data(X, y, ["Intercept", "x"], g, J, Z=np.ones((J * n, 1)))
    model = MultilevelLogit()
    assert model.param_names(data) == ["Intercept", "x", "var(Intercept|g)"]
    draws = run_steps(model, data, 1700, seed=3, burn=0)[200:]
    draws[:, 2] = np.sqrt(draws[:, 2])  # the SD
    z = (draws.mean(0) - [-0.5, 1.0, 1.0]) / draws.std(0)
    assert np.all(np.abs(z) < 3), z
    b, names = model.random_effects(_chain_state(model, data), data)
    assert b.shape == (J, 1) and names == ["Intercept"]


# -- (4) through the public API ------------------------------------------------------------
def _binary_frame(seed=7, J=50, n=20):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(J), n)
    x = rng.standard_normal(J * n)
    eta = -0.5 + 1.0 * x + rng.standard_normal(J)[g]
    y = (rng.random(J * n) < expit(eta)).astype("int64")
    full = pd.DataFrame({"g": g, "x": x, "y": y})
    df = full.astype({"y": "Int64"})
    df.loc[rng.random(J * n) < expit(-1.2 + 0.8 * x), "y"] = pd.NA  # MAR given x, ~23 %
    return full, df


def test_api_2l_logit_imputes_and_pooled_glmm_recovers_beta():
    """0/1 imputations in the column's dtype, observed values kept; the pooled logistic
    GLMM within 2 pooled SEs of the complete-data fit (seen: 0.7 and 0.2 SE)."""
    full, df = _binary_frame()
    before = df.copy()
    imp = df.mi.impute({"y": "~ x + (1 | g)"}, method={"y": "2l.logit"}, m=5, iterations=20, rng=1)
    pd.testing.assert_frame_equal(df, before)  # the user's frame is not touched
    observed = df["y"].notna()
    for k in range(1, imp.m + 1):
        c = imp.complete(k)
        assert c["y"].dtype == df["y"].dtype and c["y"].notna().all()
        assert set(c["y"].unique()) <= {0, 1}
        assert (c.loc[observed, "y"] == df.loc[observed, "y"]).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pooled = imp.fit("y ~ x + (1 | g)", family="binomial").summary()
        cd = mlimpute.from_completed([full, full]).fit("y ~ x + (1 | g)", family="binomial")
    diff = (pooled["estimate"] - cd.summary()["estimate"]).abs()
    assert (diff < 2 * pooled["se"]).all(), diff / pooled["se"]


def test_api_single_level_and_level2_logit_on_float_columns():
    """``logit`` and ``2lonly.logit`` through ``impute``: float 0/1 columns stay float 0/1."""
    full, df = _binary_frame(seed=8, J=30, n=10)
    df = df.astype({"y": "float64"})
    rng = np.random.default_rng(8)
    w = (rng.standard_normal(30) > 0).astype(float)[full["g"]]  # level 2
    df["w"] = w
    df.loc[df["g"].isin([1, 4, 9, 17]), "w"] = np.nan
    imp = df.mi.impute(
        {"y": "~ x + w", "w": "~ cmean(x)"},
        method={"y": "logit", "w": "2lonly.logit"},
        cluster="g",
        m=2,
        iterations=5,
        rng=2,
    )
    assert imp.spec.methods == {"y": "logit", "w": "2lonly.logit"}
    for k in (1, 2):
        c = imp.complete(k)
        for col in ("y", "w"):
            assert c[col].dtype == np.float64 and set(c[col].unique()) <= {0.0, 1.0}
            kept = df[col].notna()
            assert (c.loc[kept, col] == df.loc[kept, col]).all()
        assert (c.groupby("g")["w"].nunique() == 1).all()  # constant within clusters
