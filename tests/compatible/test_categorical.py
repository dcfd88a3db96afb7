"""Binary and ordinal incomplete predictors: latent probit models of their own, missing
values drawn exactly over the categories (every factor evaluated at each category)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mlimpute
from mlimpute.compatible.categorical import category_log_prob, draw_categories
from mlimpute.errors import UnsupportedError

MODEL = "y ~ w + x * z + (1 | g)"


def _binary(seed: int = 5, J: int = 60, size: int = 10, labels: bool = False):
    """Binary x (probit on w), continuous w, complete level-2 z; y with an x·z interaction.
    x missing at random on y (about 30 %), w completely at random (20 %)."""
    r = np.random.default_rng(seed)
    n = J * size
    g = np.repeat(np.arange(J), size)
    z = np.repeat(r.standard_normal(J), size)
    w = np.repeat(0.5 * r.standard_normal(J), size) + r.standard_normal(n)
    latent = 0.3 * w + np.repeat(0.5 * r.standard_normal(J), size) + r.standard_normal(n)
    xb = (latent > 0).astype(float)
    y = 0.5 * w + 0.8 * xb + 0.6 * xb * z + 0.3 * z
    y = y + np.repeat(r.standard_normal(J), size) + r.standard_normal(n)
    x = pd.Series(np.where(xb > 0, "yes", "no"), dtype=object) if labels else pd.Series(xb)
    full = pd.DataFrame({"y": y, "x": x, "w": w, "z": z, "g": g})
    mx = r.random(n) < 1 / (1 + np.exp(-(-1.2 + (y - y.mean()))))
    df = full.assign(x=full.x.where(~mx), w=np.where(r.random(n) < 0.2, np.nan, w))
    return full, df


def test_category_probabilities_and_draws():
    """Ordered-probit probabilities sum to 1; the draws' frequencies match them within 4
    binomial standard errors (sqrt(p(1 − p)/n), n = 40,000 rows)."""
    eta = np.array([-0.3])
    cuts = np.array([0.0, 0.8])
    p = np.exp([category_log_prob(eta, cuts, k)[0] for k in range(3)])
    assert abs(p.sum() - 1) < 1e-12
    n = 40_000
    draws = draw_categories(np.random.default_rng(1), np.tile(np.log(p), (n, 1)))
    freq = np.bincount(draws, minlength=3) / n
    assert np.all(np.abs(freq - p) < 4 * np.sqrt(p * (1 - p) / n)), (freq, p)


def test_binary_predictor_with_interaction_matches_complete_data():
    """Fixed effects against the complete-data fit, 2.5·se·sqrt(max(fmi, 0.05)) as in
    test_impute_model.py (fmi floored for the Monte Carlo error of m = 6). Model-based gaps
    within 2.0 such SDs; without the analysis model's factor in x's conditional the
    intercept is at +4.4, x at −4.3 and x:z at −4.1 (checked by hand). About 2 s."""
    full, df = _binary()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = df.mi.impute(model=MODEL, m=6, iterations=25, rng=3).fit()
        comp = mlimpute.from_completed([full, full]).fit(MODEL)
    est, ce = res.summary(), comp.summary()
    sd = est["se"] * np.sqrt(np.maximum(est["fmi"], 0.05))
    gap = (est["estimate"] - ce["estimate"]).abs()
    assert (gap < 2.5 * sd).all(), pd.DataFrame({"gap": gap, "sd": sd})


def test_labelled_binary_predictor_keeps_its_labels():
    full, df = _binary(J=20, size=8, labels=True)
    imp = df.mi.impute(model=MODEL, m=1, iterations=2, rng=1)
    assert [(v.name, v.method) for v in imp.spec.variables] == [
        ("w", "2l.norm"),
        ("x", "2l.bin"),
    ]
    assert imp.spec.formulas["w"] == "~ x + z + (1 | g)"
    c = imp.complete(1)
    assert set(c.x) == {"yes", "no"}
    obs = df.x.notna()
    assert c.x[obs].equals(df.x[obs])


def test_ordinal_predictor_and_reproducibility(tmp_path):
    r = np.random.default_rng(8)
    J, size = 30, 8
    n = J * size
    g = np.repeat(np.arange(J), size)
    s = np.repeat(0.5 * r.standard_normal(J), size) + r.standard_normal(n)
    lvl = pd.Categorical(
        np.digitize(s, [-0.5, 0.5]), categories=[0, 1, 2], ordered=True
    ).rename_categories(["low", "mid", "high"])
    y = 0.7 * np.digitize(s, [-0.5, 0.5]) + np.repeat(r.standard_normal(J), size)
    y = y + r.standard_normal(n)
    x = pd.Series(lvl).where(r.random(n) > 0.25)
    df = pd.DataFrame({"y": y, "x": x, "g": g})
    kw = dict(model="y ~ x + (1 | g)", m=2, rng=2)
    a = df.mi.impute(iterations=3, **kw)
    b = df.mi.impute(iterations=3, n_jobs=2, **kw)
    c = df.mi.impute(iterations=1, **kw).iterate(2)
    path = str(tmp_path / "ord.nc")
    a.to_netcdf(path)
    assert mlimpute.open(path).spec == a.spec
    assert a.spec.variables[0].method == "2l.ordinal"
    for k in (1, 2):
        pd.testing.assert_frame_equal(a.complete(k), b.complete(k))
        pd.testing.assert_frame_equal(a.complete(k), c.complete(k))
        assert a.complete(k).x.notna().all()


def test_unsupported_categorical_cases_are_named():
    _, df = _binary(J=20, size=8, labels=True)
    nom = df.assign(x=df.x.map({"yes": "a", "no": "b"}))
    nom.loc[::3, "x"] = "c"
    nom.loc[df.x.isna(), "x"] = np.nan
    nom2 = nom.assign(v=nom.x)  # a second incomplete nominal column
    with pytest.raises(UnsupportedError, match="several incomplete nominal"):
        nom2.mi.impute(model=MODEL, auxiliary=["v"], m=1, iterations=2, rng=1)
    lvl2 = nom.assign(z=nom.z.where(nom.g % 3 != 0))  # binary x with it: supported
    with pytest.raises(UnsupportedError, match="nominal incomplete predictor 'x'.*level-2"):
        lvl2.mi.impute(model=MODEL, m=1, iterations=2, rng=1)
