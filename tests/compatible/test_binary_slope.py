"""A binary or ordinal incomplete predictor with a random slope in the analysis model.

The missing values are drawn exactly over the categories; with ``(1 + x | g)`` each
cluster's slope ``u1j`` enters the analysis model's likelihood at every candidate value.
The draws are checked against their discrete full conditional written out by hand from
the states they were drawn under:

    P(x_i = k | rest) ∝ P_x(k | η_x,i) · N(y_i; β0 + β_z z_i + u0j + (β_x + u1j) k, σ²)

(``P_x`` the own latent probit model's category probability). ``x`` is the only
incomplete column and ``y`` is complete, so x is the last thing drawn in an iteration and
the returned states are those its draws were made under.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import log_ndtr

from mlimpute.sampler.compatible import ANALYSIS, run_compatible_chain
from mlimpute.sampler.engine import build_plan
from mlimpute.spec.model import build_model_spec

MODEL = "y ~ x + z + (1 + x | g)"


def _data(cuts, seed: int = 3, J: int = 20, size: int = 8) -> pd.DataFrame:
    """x from a latent probit with a cluster intercept (categories 0..K-1 by ``cuts``;
    binary x coded 0/1, else an ordered categorical, which enters the analysis model and
    its random part as treatment dummies), a large random slope (SD 1.5) so that the
    slope's term dominates the conditional, small residual SD (0.5); y complete, x missing
    completely at random in about 30 % of rows."""
    r = np.random.default_rng(seed)
    n = J * size
    g = np.repeat(np.arange(J), size)
    z = np.repeat(r.standard_normal(J), size)
    latent = 0.3 * z + np.repeat(0.7 * r.standard_normal(J), size) + r.standard_normal(n)
    x = np.searchsorted(np.asarray(cuts), latent).astype(float)
    u0, u1 = r.standard_normal(J), 1.5 * r.standard_normal(J)
    y = 0.5 * x - 0.5 * z + u0[g] + u1[g] * x + 0.5 * r.standard_normal(n)
    keep = r.random(n) >= 0.3
    if len(cuts) > 1:
        cats = pd.Categorical(x.astype(int), categories=range(len(cuts) + 1), ordered=True)
        xcol = pd.Series(cats).where(keep)
    else:
        xcol = pd.Series(np.where(keep, x, np.nan))
    return pd.DataFrame({"y": y, "x": xcol, "z": z, "g": g})


def _x_columns(names, k):
    """The analysis model's x columns at candidate category k: ``x`` = k for a binary x
    coded 0/1, the treatment dummies ``x[T.l]`` = 1{k = l} for an ordered categorical."""
    if "x" in names:
        return {"x": float(k)}
    return {c: float(c == f"x[T.{k}]") for c in names if c.startswith("x[T.")}


def _log_probs(plan, states, drop_slope=False):
    """log P(x_i = k | states) for the missing rows, written out by hand (n_mis, K)."""
    sa, sx = states[ANALYSIS], states["x"]
    da, dx = plan.analysis, plan.data["x"]
    zn = list(da.Z.names)
    assert zn[0] == "Intercept" and len(zn) == len(da.X.names) - 1  # (1 + x | g)
    assert list(dx.Z.names) == ["Intercept"]
    rows = plan.missing_rows("x")
    j = plan.layout.codes[rows]
    st = plan.static.iloc[rows]
    y, z = st.y.to_numpy(), st.z.to_numpy()
    ba = dict(zip(da.X.names, sa.beta, strict=True))
    core = sx.core
    bx = dict(zip(dx.X.names, core.beta, strict=True))
    eta_x = bx["Intercept"] + bx["z"] * z + core.b[j, 0]
    cuts = getattr(sx, "cuts", np.zeros(1))
    bounds = np.r_[-np.inf, cuts, np.inf]
    a = ba["Intercept"] + ba["z"] * z + sa.b[j, 0]
    out = []
    for k in range(bounds.size - 1):
        # log[Φ(γ_{k+1} − η) − Φ(γ_k − η)] directly (not through mlimpute's helper)
        hi, lo = log_ndtr(bounds[k + 1] - eta_x), log_ndtr(bounds[k] - eta_x)
        own = hi + np.log1p(-np.exp(lo - hi))
        eta = a.copy()
        for c, v in _x_columns(zn[1:], k).items():
            eta += v * (ba[c] + (0.0 if drop_slope else sa.b[j, zn.index(c)]))
        out.append(own - 0.5 * (y - eta) ** 2 / sa.sigma2)
    lp = np.column_stack(out)
    return lp - np.logaddexp.reduce(lp, axis=1, keepdims=True)


def _draws_and_probs(df, chains: int):
    """Each chain: 2 iterations from a fresh generator; its draws of x (as category ranks)
    with their hand-written probabilities (right, and with the random slope dropped)."""
    spec = build_model_spec(df, MODEL, None, m=1, iterations=1)
    plan = build_plan(df, spec)
    levels = np.arange(df.x.nunique())  # the drawn values are the codes 0..K-1
    draws, right, wrong = [], [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for seed in range(chains):
            imputed, *_, states = run_compatible_chain(plan, np.random.default_rng(seed), 2)
            assert np.isin(imputed["x"], levels).all()
            draws.append(imputed["x"].astype(np.intp))
            right.append(np.exp(_log_probs(plan, states)))
            wrong.append(np.exp(_log_probs(plan, states, drop_slope=True)))
    return np.concatenate(draws), np.concatenate(right), np.concatenate(wrong)


def _score(draws, p, q):
    """Score statistic of the draws (independent categorical given each chain's states,
    chains independent) in the direction of the alternative q: ``Σ_i (h_i(d_i) − E_p h_i)
    / sqrt(Σ_i Var_p h_i)`` with ``h = log q − log p``. N(0, 1) when the draws follow p."""
    h = np.log(q) - np.log(p)
    hd = h[np.arange(draws.size), draws]
    mean = (p * h).sum(axis=1)
    var = (p * h**2).sum(axis=1) - mean**2
    return float((hd - mean).sum() / np.sqrt(var.sum()))


def _calibration_p(draws, p):
    """Chi-square p-value of the draws against p, rows grouped in 10 bins of P(x = top
    category): observed vs expected counts of each category per bin (10 (K − 1) df)."""
    K = p.shape[1]
    edges = np.quantile(p[:, -1], np.linspace(0, 1, 11))
    b = np.clip(np.searchsorted(edges, p[:, -1], side="right") - 1, 0, 9)
    chi2 = 0.0
    for k in range(10):
        sel = b == k
        obs = np.bincount(draws[sel], minlength=K)
        exp = p[sel].sum(axis=0)
        chi2 += float(((obs - exp) ** 2 / exp).sum())
    return float(stats.chi2.sf(chi2, 10 * (K - 1)))


def test_binary_draws_follow_the_discrete_conditional_with_the_slope():
    """150 chains × ~50 missing rows (about 1 s). A correct sampler: |score| < 4 (false
    alarm 6e-5) and calibration p > 1e-4. The conditional with the cluster's slope u1j
    dropped is rejected (score about 56 on the same draws), and so is the sampler that
    read the random slope as a second intercept (fixed earlier: score about 99)."""
    draws, p, q = _draws_and_probs(_data([0.0]), 150)
    assert draws.size > 5000
    assert abs(_score(draws, p, q)) < 4
    assert _calibration_p(draws, p) > 1e-4
    # the check has power: the wrong conditional is far from the draws
    assert abs(_score(draws, q, p)) > 10
    assert _calibration_p(draws, q) < 1e-8


def test_ordinal_draws_follow_the_discrete_conditional_with_the_slope():
    """Three ordered categories 0 < 1 < 2 (numbers): x enters the analysis model and its
    random part as two treatment dummies (three random effects per cluster), as above;
    30 chains (about 2 s). The candidate categories were once handed to formulaic as plain
    numbers, which it read as a numeric x (both dummies equal to k): score about 27 at
    this size; the dropped-slope conditional scores about 24."""
    draws, p, q = _draws_and_probs(_data([-0.4, 0.6]), 30)
    assert draws.size > 1500 and p.shape[1] == 3
    assert abs(_score(draws, p, q)) < 4
    assert _calibration_p(draws, p) > 1e-4
    assert abs(_score(draws, q, p)) > 10
    assert _calibration_p(draws, q) < 1e-8


@pytest.mark.parametrize("cuts", [[0.0], [-0.4, 0.6]], ids=["binary", "ordinal"])
def test_categories_that_are_numbers_draw_as_labels(cuts):
    """The same categorical x with categories that are numbers (1 < 2, or 1 < 2 < 3) and
    with letters: the same draws (codes) bit for bit, with a random slope on x. (Numbers
    were once handed to formulaic as plain numbers: a binary x failed with a
    FactorEncodingError, an ordinal one was read as a number.)"""
    df = _data(cuts, J=12, size=6)
    k = len(cuts) + 1
    codes = df.x.cat.codes if len(cuts) > 1 else df.x.fillna(-1).astype(int)
    codes = codes.where(df.x.notna())

    def as_cats(labels):
        cats = pd.Categorical.from_codes(codes.fillna(-1).astype(int), categories=labels)
        return df.assign(x=cats.as_ordered() if len(cuts) > 1 else cats)

    num, lab = as_cats(list(range(1, k + 1))), as_cats(list("abc")[:k])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = num.mi.impute(model=MODEL, m=1, iterations=4, rng=5)
        b = lab.mi.impute(model=MODEL, m=1, iterations=4, rng=5)
    assert a.spec.variables[0].method == ("2l.bin" if k == 2 else "2l.ordinal")
    ca, cb = a.complete(1).x, b.complete(1).x
    np.testing.assert_array_equal(ca.cat.codes.to_numpy(), cb.cat.codes.to_numpy())
    assert ca.isna().sum() == 0 and num.x.isna().sum() > 10
