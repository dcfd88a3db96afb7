"""Probit, ordered probit and multinomial probit: exact posteriors by quadrature.

Intercept-only models have posteriors of one or two parameters that can be integrated on a
grid (flat priors); a wrong truncation, a missing Hastings term or a wrong latent scale moves
the sampler's means by many Monte Carlo SEs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import integrate
from scipy.special import log_ndtr, ndtr

from mlimpute.models import get_model
from tests.conftest import batch_se, model_data


def _draws(name, df, formula, n_steps=6000, seed=1):
    model = get_model(name).factory()
    data = model_data(df, formula, "y")
    rng = np.random.default_rng(seed)
    state = model.init(rng, data)
    for _ in range(300):
        state = model.step(rng, state, data)
    out = np.empty((n_steps, len(model.param_names(data))))
    for i in range(n_steps):
        state = model.step(rng, state, data)
        out[i] = model.param_vector(state, data)
    return out, model.param_names(data)


def _assert_close(draws, exact):
    se = batch_se(draws)
    for k, e in enumerate(exact):
        # 4.5 batch-means SEs: per-parameter false-alarm probability < 1e-5
        assert abs(draws[:, k].mean() - e) < 4.5 * se[k], (k, draws[:, k].mean(), e, se[k])


def test_probit_intercept_posterior():
    y = np.r_[np.ones(23), np.zeros(57)]
    df = pd.DataFrame({"y": y})
    draws, _ = _draws("bin", df, "~ 1")
    b = np.linspace(-2.5, 1.5, 4001)
    logp = 23 * log_ndtr(b) + 57 * log_ndtr(-b)
    w = np.exp(logp - logp.max())
    _assert_close(draws, [np.sum(w * b) / w.sum()])


def test_ordered_probit_posterior():
    y = np.repeat([0.0, 1.0, 2.0], [30, 25, 45])
    df = pd.DataFrame({"y": y})
    draws, names = _draws("ordinal", df, "~ 1")
    assert names == ["Intercept", "cut2"]
    b = np.linspace(-1.5, 1.5, 601)[:, None]
    c = np.linspace(0.05, 2.5, 600)[None, :]
    # P(0) = Φ(−β), P(1) = Φ(c − β) − Φ(−β), P(2) = 1 − Φ(c − β)
    logp = 30 * log_ndtr(-b) + 25 * np.log(ndtr(c - b) - ndtr(-b)) + 45 * log_ndtr(b - c)
    w = np.exp(logp - logp.max())
    _assert_close(draws, [np.sum(w * b) / w.sum(), np.sum(w * c) / w.sum()])


def test_multinomial_probit_posterior():
    y = np.repeat([0.0, 1.0, 2.0], [20, 35, 25])
    df = pd.DataFrame({"y": y})
    draws, names = _draws("nominal", df, "~ 1", n_steps=5000)
    assert names == ["[1] Intercept", "[2] Intercept"]
    grid = np.linspace(-1.5, 2.0, 141)

    def p_first(b1, b2):  # P(w1 > max(0, w2)), w_k ~ N(b_k, 1) independent
        return integrate.quad(
            lambda t: np.exp(-0.5 * (t - b1) ** 2) / np.sqrt(2 * np.pi) * ndtr(t - b2), 0, np.inf
        )[0]

    B1, B2 = np.meshgrid(grid, grid, indexing="ij")
    p1 = np.vectorize(p_first)(B1, B2)
    p2 = np.vectorize(p_first)(B2, B1)
    p0 = ndtr(-B1) * ndtr(-B2)
    logp = 20 * np.log(p0) + 35 * np.log(p1) + 25 * np.log(p2)
    w = np.exp(logp - logp.max())
    _assert_close(draws, [np.sum(w * B1) / w.sum(), np.sum(w * B2) / w.sum()])


def _two_level(seed=0, J=40, n=15):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(J), n)
    x = rng.normal(size=J * n)
    ystar = 0.5 * x + rng.normal(0, 1, J)[g] + rng.normal(size=J * n)
    return g, x, ystar, rng


def test_ordinal_proportions_recovered_under_mcar():
    """Category proportions within 3 points (issue 5); empty category never imputed."""
    g, x, ystar, rng = _two_level(1, J=60, n=20)
    cats = ["none", "low", "mid", "high", "top"]  # "top" is never observed
    codes = np.digitize(ystar, [-1.2, 0.0, 1.0])
    full = pd.DataFrame(
        {"g": g, "x": x, "y": pd.Categorical(np.array(cats)[codes], categories=cats, ordered=True)}
    )
    df = full.copy()
    df.loc[rng.random(len(df)) < 0.4, "y"] = np.nan
    imp = df.mi.impute({"y": "~ x + (1 | g)"}, m=5, iterations=20, rng=2)
    truth = full["y"].value_counts(normalize=True)
    for d in imp.complete("all"):
        assert d["y"].dtype == full["y"].dtype
        # each imputation: 1,200 rows, 40 % imputed; the proportions' sampling SD over
        # imputations is ≈ 0.01, so 3 points is > 2.5 SD
        est = d["y"].value_counts(normalize=True)
        assert np.max(np.abs(est - truth)) < 0.03
        assert est["top"] == 0


def test_nominal_proportions_by_cluster_covariate_group():
    """Proportions per level of a cluster-level covariate within 4 points (issue 5)."""
    rng = np.random.default_rng(3)
    J, n = 80, 15
    g = np.repeat(np.arange(J), n)
    w = (rng.random(J) < 0.5).astype(float)[g]  # cluster-level group
    u = rng.normal(0, 0.7, (J, 2))[g]
    util = np.stack([0.8 * w + u[:, 0], -0.5 + 1.2 * w + u[:, 1]], 1) + rng.normal(size=(J * n, 2))
    k = np.where(util.max(1) > 0, util.argmax(1) + 1, 0)
    cats = np.array(["bus", "bike", "car"])
    full = pd.DataFrame({"g": g, "w": w, "y": pd.Categorical(cats[k])})
    df = full.copy()
    df.loc[rng.random(len(df)) < 0.35, "y"] = np.nan
    imp = df.mi.impute({"y": "~ w + (1 | g)"}, m=5, iterations=20, rng=4)
    pooled = pd.concat(list(imp.complete("all")))
    for grp in (0.0, 1.0):
        truth = full.loc[full.w == grp, "y"].value_counts(normalize=True)
        est = pooled.loc[pooled.w == grp, "y"].value_counts(normalize=True)
        # 600 rows per group, 35 % imputed, averaged over 5 imputations: SD ≈ 0.012
        assert np.max(np.abs(est - truth)) < 0.04, (grp, est, truth)


@pytest.mark.parametrize("method", ["pmm", "2l.pmm"])
def test_pmm_imputes_observed_values_and_keeps_skewness(method):
    from scipy.stats import skew

    g, x, ystar, rng = _two_level(5, J=50, n=20)
    income = np.exp(1 + 0.5 * x + 0.5 * ystar)  # log-normal, skewed
    full = pd.DataFrame({"g": g, "x": x, "income": np.round(income, 2)})
    df = full.copy()
    df.loc[rng.random(len(df)) < 0.3, "income"] = np.nan
    observed = set(df["income"].dropna())
    formula = "~ x + (1 | g)" if method == "2l.pmm" else "~ x"
    imp = df.mi.impute({"income": formula}, m=5, iterations=10, rng=6, method={"income": method})
    vals = imp.dataset["income"].values
    assert set(np.unique(vals)) <= observed
    s_true = skew(full["income"])
    for d in imp.complete("all"):
        # skewness of a log-normal sample of 1,000 has SD ≈ 0.4 at this size; the
        # completed-data skewness tracks the complete-data one within 20 %
        assert abs(skew(d["income"]) / s_true - 1) < 0.2
    # the normal model, by contrast, imputes values never observed
    norm = df.mi.impute({"income": formula}, m=1, iterations=5, rng=6)
    assert not set(np.unique(norm.dataset["income"].values)) <= observed


def test_binary_dtypes_round_trip():
    g, x, ystar, rng = _two_level(6)
    df = pd.DataFrame(
        {
            "g": g,
            "x": x,
            "b01": (ystar > 0).astype(float),
            "bool": pd.array(ystar > 0.5, dtype="boolean"),
            "cat2": pd.Categorical(np.where(ystar > -0.5, "yes", "no")),
        }
    )
    for c in ("b01", "bool", "cat2"):
        df.loc[rng.random(len(df)) < 0.2, c] = None
    imp = df.mi.impute(
        {c: "~ x + (1 | g)" for c in ("b01", "bool", "cat2")}, m=2, iterations=5, rng=1
    )
    assert imp.spec.methods == {"b01": "2l.bin", "bool": "2l.bin", "cat2": "2l.bin"}
    out = imp.complete(2)
    assert out.dtypes.equals(df.dtypes)
    assert set(out["b01"].unique()) == {0.0, 1.0}
    assert out.notna().all().all()
