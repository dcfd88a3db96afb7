"""Binary and ordinal incomplete predictors together with incomplete level-2 predictors:
the level-2 draw meets the categorical models through their latent responses."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import log_ndtr

import mlimpute
from mlimpute.errors import UnsupportedError
from mlimpute.sampler.compatible import ANALYSIS
from mlimpute.sampler.compatible_context import build_context
from mlimpute.sampler.compatible_draws import latent_responses, level2_draw
from mlimpute.sampler.design import Values
from mlimpute.sampler.engine import build_plan

MODEL = "y ~ x * z + (1 | g)"


def data(seed=0, J=40, n=8):
    """z level-2, x binary with a strong probit on z, y with an x·z interaction; z missing
    in whole clusters (35 %), x in 25 % of the rows, y in 10 % (sorted by cluster)."""
    r = np.random.default_rng(seed)
    N = J * n
    g = np.repeat(np.arange(J), n)
    z = np.repeat(r.normal(size=J), n)
    x = (1.5 * z + np.repeat(0.5 * r.normal(size=J), n) + r.normal(size=N) > 0).astype(float)
    y = 0.5 + 0.8 * x + 0.5 * z + 0.4 * x * z + np.repeat(r.normal(size=J), n) + r.normal(size=N)
    df = pd.DataFrame({"g": g, "x": x, "z": z, "y": y})
    df.loc[(r.random(J) < 0.35)[g], "z"] = np.nan
    df.loc[r.random(N) < 0.25, "x"] = np.nan
    df.loc[r.random(N) < 0.1, "y"] = np.nan
    return df


def test_level2_kernel_leaves_the_integrated_conditional_invariant():
    """With a chain's final states held fixed, the level-2 draw (x's latent y* drawn given
    its categories, then z_j given y*) is a Markov kernel whose stationary law is z_j's
    full conditional ``N(z; μ_z, σ_z²) Π_i N(y_i; a_i + c_i z, σ²) Π_i Φ(±(α_0 + α_1 z +
    b_j))`` over the cluster's rows (a single step is not an exact draw: y* depends on the
    current z). 3,000 steps; the mean of the draws (after 200) within 4 batch-means SEs
    of the numerically integrated mean (50 batches) and their SD within 10 % (about 4 MC
    SEs for ~300 effective draws); without the probit factor some mean is > 6 SEs off
    (the test has power)."""
    df = data(seed=1, J=12, n=6)
    imp = mlimpute.impute(df, model=MODEL, m=1, iterations=3, rng=7)
    assert [(v.name, v.method) for v in imp.spec.variables if v.name != "y"] == [
        ("x", "2l.bin"),
        ("z", "2lonly.norm"),
    ]
    plan = build_plan(df.copy(), imp.spec)
    assert plan.analysis.X.names == ["Intercept", "x", "z", "x:z"]
    assert plan.data["x"].X.names == ["Intercept", "z"]
    first = plan.layout.segments.starts
    values = Values(plan.layout, like=plan.like)
    for name in plan.names:  # the chain's completed columns (rows sorted by cluster already)
        v = plan.start[name].copy()
        v[plan.missing_rows(name)] = imp.chains[0].imputed[name]
        values[name] = v
    states = dict(imp.chains[0].states)
    sa = states.pop(ANALYSIS)
    y_obs = ~np.isnan(plan.start["y"])
    missing = np.isnan(plan.start["z"][first])
    fx, cur = build_context(plan, values, states, sa, {"z": missing})
    assert fx.users["z"] == ["x"] and (fx.y_obs_rows == y_obs).all()
    rng = np.random.default_rng(0)
    T = 3000
    out = np.empty((T, int(missing.sum())))
    for t in range(T):
        resp = {"x": latent_responses(rng, fx, cur, "x")}
        out[t] = level2_draw(rng, fx, cur, "z", responses=resp)
    g = df["g"].to_numpy()
    x, y = values["x"], values["y"]
    st_z, core = states["z"], states["x"].core
    grid = np.linspace(-8, 8, 3201)
    z_right, z_wrong = [], []
    for i, j in enumerate(np.flatnonzero(missing)):
        rows = g == j
        ry = rows & y_obs
        lin = -0.5 * (grid - st_z.beta[0]) ** 2 / st_z.sigma2
        a = sa.beta[0] + sa.beta[1] * x[ry] + sa.b[j, 0]
        c = sa.beta[2] + sa.beta[3] * x[ry]
        resid = y[ry][:, None] - a[:, None] - c[:, None] * grid
        lin = lin - 0.5 * (resid**2).sum(0) / sa.sigma2
        eta = core.beta[0] + core.beta[1] * grid + core.b[j, 0]
        sign = np.where(x[rows] > 0.5, 1.0, -1.0)
        probit = log_ndtr(sign[:, None] * eta[None, :]).sum(0)
        draws = out[200:, i]
        batches = draws.reshape(50, -1).mean(axis=1)
        se = batches.std(ddof=1) / np.sqrt(50)
        for zs, logd in ((z_right, lin + probit), (z_wrong, lin)):
            dens = np.exp(logd - logd.max())
            dens /= np.trapezoid(dens, grid)
            mean = np.trapezoid(grid * dens, grid)
            sd = np.sqrt(np.trapezoid((grid - mean) ** 2 * dens, grid))
            zs.append((draws.mean() - mean) / se)
            if zs is z_right:
                assert abs(draws.std() / sd - 1) < 0.1, (j, draws.std(), sd)
    assert np.abs(z_right).max() < 4, z_right
    assert np.abs(z_wrong).max() > 6, z_wrong


def test_ordinal_with_level2_runs_and_keeps_observed_values():
    df = data(seed=2, J=30)
    r = np.random.default_rng(3)
    cuts = [-np.inf, 0, 1.5, np.inf]
    o = pd.cut(df["y"] + r.normal(size=len(df)), cuts, labels=["lo", "mid", "hi"])
    df["o"] = o.astype(pd.CategoricalDtype(["lo", "mid", "hi"], ordered=True))
    df.loc[r.random(len(df)) < 0.2, "o"] = np.nan
    imp = mlimpute.impute(df, model="y ~ x * z + o + (1 | g)", m=2, iterations=4, rng=1)
    assert imp.spec.methods["o"] == "2l.ordinal"
    for k in (1, 2):
        c = imp.complete(k)
        assert c.notna().all().all()
        for v in ("x", "z", "o"):
            obs = df[v].notna()
            assert (c[v][obs] == df[v][obs]).all()
        assert c.groupby("g")["z"].nunique().max() == 1  # one value per cluster


def test_nominal_with_level2_is_refused_by_name():
    df = data(seed=3, J=20)
    r = np.random.default_rng(1)
    df["c"] = np.array(list("abc"))[r.integers(0, 3, len(df))]
    df.loc[r.random(len(df)) < 0.2, "c"] = None
    with pytest.raises(UnsupportedError, match="nominal incomplete predictor 'c'.*level-2"):
        mlimpute.impute(df, model="y ~ x * z + c + (1 | g)", m=1, iterations=1)
