"""Zero-inflated count models (``zip``, ``2l.zip``, ``zinb``, ``2l.zinb``, level 2).

The contract test (``check_model``) runs over them in tests/models/test_contract.py.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
from numpy.polynomial.hermite_e import hermegauss
from scipy.special import expit, gammaln, log_expit

import mlimpute
from mlimpute.errors import SpecificationError
from mlimpute.models import iwls_mh, zero_inflated
from mlimpute.models.counts_kernels import LOG_R_PRIOR_SD, nb_loglik
from mlimpute.models.poisson_step import SIGMA2_PRIOR_DF, SIGMA2_PRIOR_SCALE
from mlimpute.models.zero_inflated import (
    ZERO_INTERCEPT_PRIOR_SD,
    MultilevelZeroInflatedNB,
    MultilevelZeroInflatedPoisson,
    ZeroInflatedNB,
    ZeroInflatedPoisson,
)
from tests.conftest import array_model_data, batch_se, run_steps


def _posterior_means(loglik_of_value, y, grids):
    """Posterior means of (β₀, second parameter transformed, π) on a 3-D grid.

    ``loglik_of_value(v, B0, T)`` is the count part's log-probability of the value v at
    grid points (B0, T); γ₀ ~ N(0, 5²), π = expit(γ₀)."""
    B0, T, G = np.meshgrid(*grids, indexing="ij")
    vals, cnt = np.unique(y, return_counts=True)
    log_pi, log_1mpi = log_expit(G), log_expit(-G)
    lp = -(G**2) / (2 * ZERO_INTERCEPT_PRIOR_SD**2)
    for v, c in zip(vals, cnt, strict=True):
        lf = loglik_of_value(v, B0, T)
        lp = lp + c * (np.logaddexp(log_pi, log_1mpi + lf) if v == 0 else log_1mpi + lf)
    w = np.exp(lp - lp.max())
    w /= w.sum()
    return w, B0, T, G


def _zinb_exact(y):
    """Posterior means of (β₀, r, γ₀): flat β₀, log r ~ N(0, 2.5²), γ₀ ~ N(0, 5²)."""
    grids = (np.linspace(1.3, 2.2, 61), np.linspace(-0.5, 3.5, 61), np.linspace(-2.5, 0.3, 61))

    def lf(v, b0, tau):
        return nb_loglik(np.full(b0.shape, float(v)), b0, np.exp(tau))

    w, B0, T, G = _posterior_means(lf, y, grids)
    w = w * np.exp(-(T**2) / (2 * LOG_R_PRIOR_SD**2))
    w /= w.sum()
    return np.array([(w * B0).sum(), (w * np.exp(T)).sum(), (w * G).sum()])


def _zip_exact(y):
    """Posterior means of (β₀, σ², γ₀) of the zero-inflated Poisson–log-normal model:
    flat β₀, scaled-inverse-χ²(ν₀, s₀²) σ², γ₀ ~ N(0, 5²); each p(y | β₀, σ²) by 30-point
    Gauss–Hermite."""
    nodes, weights = hermegauss(30)
    weights = weights / weights.sum()
    grids = (np.linspace(0.6, 1.6, 41), np.linspace(-12.0, 0.3, 61), np.linspace(-2.2, 0.4, 41))
    nu, s0 = SIGMA2_PRIOR_DF, SIGMA2_PRIOR_SCALE

    def lf(v, b0, tau):
        eta = b0[..., None] + np.exp(tau / 2)[..., None] * nodes
        return np.log(np.exp(v * eta - np.exp(eta) - gammaln(v + 1)) @ weights)

    w, B0, T, G = _posterior_means(lf, y, grids)
    w = w * np.exp(-nu / 2 * T - nu * s0 / (2 * np.exp(T)))  # prior on log σ² incl. Jacobian
    w /= w.sum()
    return np.array([(w * B0).sum(), (w * np.exp(T)).sum(), (w * G).sum()])


def _z_exact(model, data, exact, n_iter, second, seed=5):
    """|chain mean − exact| / MC SE (batch means) for β₀, the second parameter and γ₀."""
    draws = run_steps(model, data, n_iter, seed=seed, burn=300)
    names = model.param_names(data)
    d = draws[:, [0, names.index(second), names.index("zero(Intercept)")]]
    return np.abs((d.mean(0) - exact) / batch_se(d))


def _zinb_data(n=200, seed=4):
    """NB(r = 3, mean 6) with 30 % structural zeros (the zeros of an NB with a small mean
    would leave π and r hardly identified, and the posterior past any small grid)."""
    rng = np.random.default_rng(seed)
    y = rng.poisson(rng.gamma(3.0, 6.0 / 3.0, size=n))
    y[rng.random(n) < 0.3] = 0
    return y


def _zip_data(n=150, seed=3):
    rng = np.random.default_rng(seed)
    y = rng.poisson(np.exp(1.0 + 0.5 * rng.standard_normal(n)))
    y[rng.random(n) < 0.3] = 0
    return y


# -- (1) exact posteriors of intercept-only models by quadrature ---------------------------
def test_zinb_matches_exact_posterior():
    """Chain means of β₀, r and γ₀ within 4 MC SEs (batch means over 40 batches) of the
    3-D quadrature."""
    y = _zinb_data()
    data = array_model_data(np.ones((y.size, 1)), y, ["Intercept"])
    z = _z_exact(ZeroInflatedNB(), data, _zinb_exact(y.astype(float)), 2500, "r")
    assert np.all(z < 4.0), z


def test_zip_matches_exact_posterior():
    """Chain means of β₀, σ² and γ₀ within 4 MC SEs of the quadrature."""
    y = _zip_data()
    data = array_model_data(np.ones((y.size, 1)), y, ["Intercept"])
    exact = _zip_exact(y.astype(float))
    z = _z_exact(ZeroInflatedPoisson(zero="intercept"), data, exact, 2000, "var(Residual)")
    assert np.all(z < 4.0), z


def test_exact_check_rejects_a_wrong_zero_indicator(monkeypatch):
    """The same check fails when an observed zero's indicator ignores the count part's
    probability of a zero (``P(s = 1) = π`` instead of ``π/(π + (1 − π)f(0))``)."""
    y = _zinb_data()
    data = array_model_data(np.ones((y.size, 1)), y, ["Intercept"])
    exact = _zinb_exact(y.astype(float))
    real = zero_inflated.zero_indicator

    def wrong(rng, y, logit_pi, log_f0):
        return real(rng, y, logit_pi, np.zeros_like(log_f0))

    monkeypatch.setattr(zero_inflated, "zero_indicator", wrong)
    assert _z_exact(ZeroInflatedNB(), data, exact, 1500, "r").max() > 8.0


def test_exact_check_rejects_a_wrong_zero_part_target(monkeypatch):
    """The same check fails when the target of the zero part's step (Metropolis–Hastings
    with an IWLS proposal) is the logistic likelihood at γ₀ + 0.5 instead of γ₀ (its
    ``Σ log(1 + e^η)`` and ``expit(η)`` evaluated at η + 0.5)."""
    y = _zinb_data()
    data = array_model_data(np.ones((y.size, 1)), y, ["Intercept"])
    exact = _zinb_exact(y.astype(float))
    real = iwls_mh._logit_point

    def wrong(X, Xt, beta, prec):
        point = real(X, Xt, beta, prec)
        soft, p, _ = iwls_mh._softplus(point.eta + 0.5)
        return dataclasses.replace(point, soft=float(soft.sum()), p=p)

    monkeypatch.setattr(iwls_mh, "_logit_point", wrong)
    assert _z_exact(ZeroInflatedNB(), data, exact, 1500, "r").max() > 8.0


def test_zero_part_reuse_gives_the_same_chain(monkeypatch):
    """Reusing the zero part's work at γ from one step to the next (w'γ for the indicators,
    and the rest in the MH step) changes no draw: the chain is bit-identical to one that
    keeps nothing in its state and recomputes it at every step."""
    y = _zinb_data()
    data = array_model_data(np.c_[np.ones(y.size), np.arange(y.size) % 3], y, ["Intercept", "x"])
    a = run_steps(ZeroInflatedNB(), data, 150, seed=3, burn=0)
    real = iwls_mh.logit_mh_step

    def forgetful(*args):
        gamma, ok, _ = real(*args[:-1], None)
        return gamma, ok, None

    monkeypatch.setattr(zero_inflated, "logit_mh_step", forgetful)
    b = run_steps(ZeroInflatedNB(), data, 150, seed=3, burn=0)
    assert np.array_equal(a, b)


def test_zero_part_acceptance_is_traced_and_high():
    """``accept(zero)``: the running acceptance rate of the zero part's step, in (0.7, 1]
    (the IWLS proposal is close to the conditional posterior of γ for 200 rows)."""
    y = _zinb_data()
    data = array_model_data(np.ones((y.size, 1)), y, ["Intercept"])
    model = ZeroInflatedNB()
    names = model.param_names(data)
    assert names[-2:] == ["zero(share)", "accept(zero)"]
    draws = run_steps(model, data, 400, seed=5, burn=0)
    assert 0.7 < draws[-1, -1] <= 1.0


# -- (2) multilevel recovery with a predictor in the zero part ----------------------------
def _multilevel(kind, seed=0, J=50, n=12):
    """β = (0.5, 0.4), random-intercept SD 0.5, NB r = 2; logit π = −1 + 0.8x."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(J), n)
    x = rng.standard_normal(J * n)
    psi = 0.5 + 0.4 * x + rng.normal(0.0, 0.5, J)[g]
    y = rng.poisson(np.exp(psi) if kind == "zip" else rng.gamma(2.0, np.exp(psi) / 2.0))
    y[rng.random(J * n) < expit(-1.0 + 0.8 * x)] = 0
    X = np.column_stack([np.ones(J * n), x])
    return array_model_data(X, y, ["Intercept", "x"], g, J, Z=np.ones((J * n, 1)))


@pytest.mark.parametrize(
    ("model", "kind", "truth"),
    [
        (
            MultilevelZeroInflatedPoisson(),
            "zip",
            {"Intercept": 0.5, "x": 0.4, "var(Intercept|g)": 0.5, "zero(x)": 0.8},
        ),
        (
            MultilevelZeroInflatedNB(),
            "zinb",
            {"Intercept": 0.5, "x": 0.4, "var(Intercept|g)": 0.5, "r": 2.0, "zero(x)": 0.8},
        ),
    ],
)
def test_multilevel_recovery(model, kind, truth):
    """Each posterior mean within 3 posterior SDs of the truth (the MC error of 1,000
    draws with IACT ≤ 30 is < 0.2 posterior SD); the random-intercept variance as an SD;
    zero(Intercept) = −1."""
    data = _multilevel(kind)
    names = model.param_names(data)
    draws = run_steps(model, data, 1200, seed=2, burn=0)[200:]
    k = names.index("var(Intercept|g)")
    draws[:, k] = np.sqrt(draws[:, k])
    for name, value in {**truth, "zero(Intercept)": -1.0}.items():
        col = draws[:, names.index(name)]
        assert abs(col.mean() - value) < 3 * col.std(), (name, col.mean(), col.std())


def test_check_refuses_non_counts_and_all_zero():
    X = np.ones((4, 1))
    for bad in ([0, 1, 2.5, 3], [0, -1, 2, 3], [0, 0, 0, 0]):
        data = array_model_data(X, np.array(bad, dtype=float), ["Intercept"], variable="visits")
        for model in (ZeroInflatedPoisson(), ZeroInflatedNB()):
            with pytest.raises(SpecificationError, match="'visits'"):
                model.check(data)


def test_bad_zero_option_is_named():
    with pytest.raises(SpecificationError, match="zero"):
        pd.DataFrame({"y": [0, 1, np.nan, 3.0], "x": [1.0, 2, 3, 4]}).mi.impute(
            {"y": "~ x"}, method={"y": ("zip", {"zero": "random"})}, m=1, iterations=1, rng=0
        )


# -- (3) through the public API ------------------------------------------------------------
def test_api_2l_zinb_keeps_zero_share_and_dtype():
    """Int64 column: integer imputations in its dtype, observed values kept; the imputed
    zero share within 0.12 of the complete data's zero share among the missing rows
    (binomial SE of a share over ~150 imputed rows × 3 imputations ≈ 0.023; 0.12 is about
    5 SEs, room for the posterior's own spread)."""
    rng = np.random.default_rng(11)
    J, n = 40, 15
    g = np.repeat(np.arange(J), n)
    x = rng.standard_normal(J * n)
    mu = np.exp(0.8 + 0.4 * x + rng.normal(0, 0.4, J)[g])
    y = rng.poisson(rng.gamma(2.0, mu / 2.0))
    y[rng.random(J * n) < 0.3] = 0
    miss = rng.random(J * n) < 0.25
    df = pd.DataFrame({"g": g, "x": x, "y": pd.array(y, dtype="Int64")})
    df.loc[miss, "y"] = pd.NA
    before = df.copy()
    imp = df.mi.impute({"y": "~ x + (1 | g)"}, method={"y": "2l.zinb"}, m=3, iterations=15, rng=3)
    pd.testing.assert_frame_equal(df, before)
    shares = []
    for k in range(1, 4):
        c = imp.complete(k)["y"]
        assert c.dtype == pd.Int64Dtype() and c.notna().all() and (c >= 0).all()
        assert (c[~miss] == df.loc[~miss, "y"]).all()
        shares.append(float((c[miss] == 0).mean()))
    assert abs(np.mean(shares) - float((y[miss] == 0).mean())) < 0.12, shares


@pytest.mark.parametrize("method", ["2lonly.poisson", "2lonly.nb", "2lonly.zinb"])
def test_api_level2_counts(method):
    """A cluster-level count imputed on one row per cluster: constant within clusters,
    non-negative integers, observed values kept."""
    rng = np.random.default_rng(5)
    J, n = 40, 6
    g = np.repeat(np.arange(J), n)
    w = rng.standard_normal(J)
    beds = rng.poisson(np.exp(1.0 + 0.5 * w)).astype(float)
    beds[rng.random(J) < 0.25] = np.nan
    df = pd.DataFrame({"g": g, "w": w[g], "beds": beds[g], "y": rng.standard_normal(J * n) + w[g]})
    imp = df.mi.impute(
        {"beds": "~ w"}, method={"beds": method}, cluster="g", m=2, iterations=5, rng=4
    )
    c = imp.complete(1)
    assert c["beds"].notna().all() and (c["beds"] >= 0).all()
    assert (c["beds"] == c["beds"].round()).all()
    assert (c.groupby("g")["beds"].nunique() == 1).all()
    obs = df["beds"].notna()
    assert (c.loc[obs, "beds"] == df.loc[obs, "beds"]).all()


def test_saved_run_continues_exactly(tmp_path):
    """A run with ``2l.zip`` and a Yeo–Johnson transform, saved to netCDF and continued,
    equals the same run continued in memory (the chain states round-trip)."""
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(20), 10)
    x = rng.standard_normal(200)
    y = np.where(rng.random(200) < 0.3, 0, rng.poisson(np.exp(0.5 + 0.4 * x))).astype(float)
    y[rng.random(200) < 0.2] = np.nan
    inc = np.exp(1 + 0.5 * rng.standard_normal(200))
    inc[rng.random(200) < 0.2] = np.nan
    df = pd.DataFrame({"y": y, "x": x, "g": g, "inc": inc})
    imp = df.mi.impute(
        {"y": "~ x + (1 | g)", "inc": "~ x + (1 | g)"},
        method={"y": "2l.zip"},
        transform={"inc": "yeo-johnson"},
        m=2,
        iterations=3,
        rng=1,
    )
    imp.to_netcdf(tmp_path / "run.nc")
    again = mlimpute.open(tmp_path / "run.nc").iterate(2)
    here = imp.iterate(2)
    for k in (1, 2):
        pd.testing.assert_frame_equal(again.complete(k), here.complete(k))


def test_delta_shifts_the_count_part_of_a_zero_inflated_model():
    """``delta=`` moves the count part's log-mean of the missing rows (the zero part is
    untouched): a shift of +1 raises the mean of the imputed non-zero counts by about e."""
    rng = np.random.default_rng(2)
    g = np.repeat(np.arange(30), 10)
    x = rng.standard_normal(300)
    y = np.where(rng.random(300) < 0.3, 0, rng.poisson(np.exp(1.0 + 0.3 * x))).astype(float)
    y[rng.random(300) < 0.3] = np.nan
    df = pd.DataFrame({"y": y, "x": x, "g": g})
    miss = df["y"].isna()
    means = []
    for d in (0.0, 1.0):
        imp = df.mi.impute(
            {"y": "~ x + (1 | g)"},
            method={"y": "2l.zinb"},
            m=2,
            iterations=5,
            rng=3,
            delta={"y": d},
        )
        v = np.concatenate([imp.complete(k).loc[miss, "y"] for k in (1, 2)])
        means.append(v[v > 0].mean())
    assert 1.8 < means[1] / means[0] < 3.6, means  # e ≈ 2.7 (zero-truncation shifts it)


def test_zip_indicators_are_zero_indicator_bit_for_bit():
    """The ZIP's in-place indicators draw the same uniforms and give the same indicators
    as :func:`zero_indicator` with ``log f(0) = −e^η``, overflowing rates included."""
    from mlimpute.models.counts_kernels import zero_indicator

    rng = np.random.default_rng(2)
    y = rng.poisson(0.8, 400).astype(float)
    data = array_model_data(np.ones((y.size, 1)), y, ["Intercept"])
    eta = rng.normal(0.0, 2.0, y.size)
    eta[:3] = [710.0, 800.0, -800.0]
    lp = rng.normal(0.0, 3.0, y.size)
    lp[3] = -750.0
    count = zero_inflated.PoissonState(None, eta, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s, _ = ZeroInflatedPoisson()._indicators(np.random.default_rng(9), count, data, lp)
    with np.errstate(over="ignore"):
        ref = zero_indicator(np.random.default_rng(9), y, lp, -np.exp(eta))
    assert np.array_equal(s, ref) and 0 < s.sum() < (y == 0).sum()
