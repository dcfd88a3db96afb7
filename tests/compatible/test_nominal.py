"""Nominal (unordered) incomplete predictors in model-based imputation: their own
multinomial probit (``2l.nominal``), missing values drawn exactly over the categories."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.integrate import quad, simpson

import mlimpute
from mlimpute.compatible.categorical import nominal_log_prob
from mlimpute.errors import UnsupportedError
from mlimpute.sampler.compatible import ANALYSIS
from mlimpute.sampler.engine import build_plan

MODEL = "y ~ c + z + (1 | g)"
EFFECT = {"a": 0.0, "b": 1.2, "c": -1.2, "d": 0.6}


def nominal_data(seed=0, J=30, n=10, pc=0.35, py=0.0):
    """c from a multinomial probit on z (reference a), y = 1 + effect(c) + 0.5 z + u + e
    (rows sorted by cluster, codes 0..J-1)."""
    r = np.random.default_rng(seed)
    N = J * n
    g = np.repeat(np.arange(J), n)
    z = r.normal(size=N)
    U = np.stack([0.5 * z, -0.3 + 0 * z, 0.2 - 0.5 * z], 1) + r.normal(size=(N, 3))
    c = np.array(list("abcd"))[np.where(U.max(1) > 0, U.argmax(1) + 1, 0)]
    eff = np.array([EFFECT[k] for k in c])
    y = 1 + eff + 0.5 * z + np.repeat(r.normal(size=J), n) + r.normal(size=N)
    df = pd.DataFrame({"g": g, "c": c, "z": z, "y": y})
    df.loc[r.random(N) < pc, "c"] = None
    df.loc[r.random(N) < py, "y"] = np.nan
    return df


def _quad_probs(eta):
    """P(x = k) of the multinomial probit by adaptive quadrature (scipy.integrate.quad)."""
    K1 = eta.size
    p = [np.prod(stats.norm.cdf(-eta))]
    for k in range(K1):
        others = np.delete(eta, k)

        def f(s, k=k, others=others):
            return stats.norm.pdf(s) * np.prod(stats.norm.cdf(s + eta[k] - others))

        p.append(quad(f, -eta[k], np.inf, epsabs=1e-13)[0])
    return np.array(p)


def _simpson_probs(eta):
    """The same probabilities for many rows at once (eta (n, K − 1)): Simpson's rule on
    2,001 points of [−η_k, 10] per row and category."""
    n, K1 = eta.shape
    out = [np.prod(stats.norm.cdf(-eta), axis=1)]
    t = np.linspace(0.0, 1.0, 2001)
    for k in range(K1):
        lo = -eta[:, k]
        s = lo[:, None] + (10.0 - lo)[:, None] * t[None, :]
        f = stats.norm.pdf(s)
        for m_ in range(K1):
            if m_ != k:
                f = f * stats.norm.cdf(s + (eta[:, k] - eta[:, m_])[:, None])
        out.append(simpson(f, x=s, axis=1))
    return np.stack(out, axis=1)


@pytest.mark.parametrize(
    "eta", [[0.3, -1.2, 2.0], [-4.0, -5.0, -6.0], [8.0, 1.0, -3.0], [0.0, 0.0], [1.5]]
)
def test_nominal_probabilities_match_adaptive_quadrature(eta):
    eta = np.array(eta)
    p = np.exp(nominal_log_prob(eta[None, :])[0])
    q = _quad_probs(eta)
    assert abs(p.sum() - 1) < 1e-9
    np.testing.assert_allclose(p, q, atol=1e-9)
    np.testing.assert_allclose(_simpson_probs(eta[None, :])[0], q, atol=1e-9)


def test_nominal_draws_follow_their_discrete_full_conditional():
    """Given a chain's final states, its last draw of each missing c (outcome observed) is
    one draw from ``p(k) ∝ P_own(k | η) · N(y; η_y(k), σ²)``, P_own by Simpson's rule
    here, η_y(k) the analysis model with c's dummy coding at k. For each category k the
    counts ``Σ_i 1{c_i = k} − p_ik``, unweighted and weighted by the outcome's residual,
    are sums of independent centred terms: their z-scores (variance ``Σ p_ik(1 − p_ik)
    w_i²``) stay within ±4 (8 scores: a false alarm has probability < 1e-3). Without the
    analysis factor some score exceeds 6 (the test has power)."""
    df = nominal_data(seed=1)
    m = 8
    imp = mlimpute.impute(df, model=MODEL, m=m, iterations=3, rng=5)
    assert imp.spec.methods["c"] == "2l.nominal"
    plan = build_plan(df.copy(), imp.spec)
    assert plan.data["c"].X.names == ["Intercept", "z"]
    names = plan.analysis.X.names
    assert names == ["Intercept", "c[T.b]", "c[T.c]", "c[T.d]", "z"]
    rows = np.flatnonzero(df["c"].isna().to_numpy())
    g, z, y = df["g"].to_numpy()[rows], df["z"].to_numpy()[rows], df["y"].to_numpy()[rows]
    stat = {key: [np.zeros((2, 4)), np.zeros((2, 4))] for key in ("right", "wrong")}
    for k in range(m):
        st, sa = imp.chains[k].states["c"], imp.chains[k].states[ANALYSIS]
        eta = np.stack([c.beta[0] + c.beta[1] * z + c.b[g, 0] for c in st.cores], 1)
        own = _simpson_probs(eta)  # (rows, 4)
        ey = sa.beta[0] + sa.beta[4] * z + sa.b[g, 0]
        resid = y - ey  # the outcome's residual at the reference category
        ey = ey[:, None] + np.r_[0.0, sa.beta[1:4]][None, :]  # at a, b, c, d
        lik = np.exp(-0.5 * (y[:, None] - ey) ** 2 / sa.sigma2)
        hit = np.eye(4)[imp.chains[k].imputed["c"].astype(int)]
        weights = np.stack([np.ones_like(resid), resid])  # (2, rows)
        for key, p in (("right", own * lik), ("wrong", own)):
            p = p / p.sum(axis=1, keepdims=True)
            stat[key][0] += weights @ (hit - p)
            stat[key][1] += (weights**2) @ (p * (1 - p))
    z_right = stat["right"][0] / np.sqrt(stat["right"][1])
    z_wrong = stat["wrong"][0] / np.sqrt(stat["wrong"][1])
    assert np.abs(z_right).max() < 4, z_right
    assert np.abs(z_wrong).max() > 6, z_wrong


def test_nominal_predictor_labels_observed_values_and_effects():
    """Observed labels are kept; the pooled category effects are near the
    truth (string labels: the slower, formulaic path of the categorical draws)."""
    df = nominal_data(seed=2, J=30, py=0.1)
    imp = mlimpute.impute(df, model=MODEL, m=4, iterations=10, rng=2)
    obs = df["c"].notna()
    for k in (1, 4):
        c = imp.complete(k)["c"]
        assert set(c) <= set("abcd") and c.notna().all()
        assert (c[obs] == df["c"][obs]).all()
    est = imp.fit().summary()
    # against the truth, within the pooled 95 % interval widened by 1.5 for the Monte
    # Carlo error of m = 4 (the pooled SE of the estimate covers the sampling error)
    truth = {"c[T.b]": 1.2, "c[T.c]": -1.2, "c[T.d]": 0.6, "z": 0.5}
    for term, value in truth.items():
        assert abs(est.loc[term, "estimate"] - value) < 1.5 * 1.96 * est.loc[term, "se"], term


def test_nominal_goes_last_among_categorical_predictors_and_two_are_refused():
    df = nominal_data(seed=3, J=20, n=8)
    r = np.random.default_rng(4)
    df["b"] = (r.random(len(df)) < 0.5).astype(float)
    df.loc[r.random(len(df)) < 0.2, "b"] = np.nan
    df["w"] = r.normal(size=len(df))
    df.loc[r.random(len(df)) < 0.2, "w"] = np.nan
    imp = mlimpute.impute(df, model="y ~ c + b + w + z + (1 | g)", m=1, iterations=2, rng=1)
    assert [(v.name, v.method) for v in imp.spec.variables if v.name != "y"] == [
        ("w", "2l.norm"),
        ("b", "2l.bin"),
        ("c", "2l.nominal"),
    ]
    assert imp.spec.formulas["b"] == "~ c + z + (1 | g)"
    assert imp.spec.formulas["c"] == "~ z + (1 | g)"
    df["e"] = np.where(r.random(len(df)) < 0.5, "p", np.where(r.random(len(df)) < 0.5, "q", "s"))
    df.loc[r.random(len(df)) < 0.2, "e"] = None
    with pytest.raises(UnsupportedError, match="several incomplete nominal"):
        mlimpute.impute(
            df.drop(columns=["b", "w"]), model="y ~ c + e + z + (1 | g)", m=1, iterations=1
        )
    with pytest.raises(UnsupportedError, match="categorical predictor 'c'"):
        mlimpute.impute(df[["g", "c", "z", "y"]], model=MODEL, delta={"c": 1.0}, m=1, iterations=1)


@pytest.mark.parametrize("code", [0, 1, 2, 3])
def test_utilities_given_the_category_match_rejection_sampling(code):
    """draw_nominal_utilities against rejection sampling from N(η, I) kept where the
    category is ``code``: means within 5 SEs (SE from the two sample sizes), SDs within
    5 %."""
    from mlimpute.compatible.categorical import draw_nominal_utilities

    eta = np.array([0.3, -1.0, 1.2])
    r = np.random.default_rng(1)
    W = eta + r.standard_normal((200_000, 3))
    k = np.where(W.max(axis=1) > 0, W.argmax(axis=1) + 1, 0)
    ref = W[k == code]
    n = 20_000
    D = draw_nominal_utilities(np.random.default_rng(2), np.tile(eta, (n, 1)), np.full(n, code))
    got = np.where(D.max(axis=1) > 0, D.argmax(axis=1) + 1, 0)
    assert (got == code).all()
    se = np.sqrt(ref.var(axis=0) / len(ref) + D.var(axis=0) / n)
    assert (np.abs(D.mean(axis=0) - ref.mean(axis=0)) < 5 * se).all()
    assert (np.abs(D.std(axis=0) / ref.std(axis=0) - 1) < 0.05).all()
