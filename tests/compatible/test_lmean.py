"""Latent cluster means ``lmean(x)`` in the analysis model of a model-based imputation.

``lmean(x)`` is the random intercept ξ_j of x's own model ``x_ij = ξ_j + e_ij``,
``ξ_j = w_j'α + r_j`` (Lüdtke et al. 2008). Its draws see x's rows and the analysis
model's rows of the cluster; every completed data set carries them in the column
``lmean(x)``, which ``fit()`` uses.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import mlimpute
from mlimpute.errors import SpecificationError, UnsupportedError
from mlimpute.sampler.compatible import ANALYSIS, run_compatible_chain
from mlimpute.sampler.compatible_context import build_context
from mlimpute.sampler.compatible_draws import (
    latent_mean_draw,
    latent_mean_owner_state,
    linear_predictor,
)
from mlimpute.sampler.design import Values
from mlimpute.sampler.engine import build_plan
from mlimpute.simulation.compatible.designs import DESIGNS
from mlimpute.spec.model import build_model_spec, with_latent_means

MODEL = "y ~ x + lmean(x) + (1 | g)"


def _tiny(K: int) -> pd.DataFrame:
    """K copies of one cluster of three rows: y missing in row 2, x missing in row 3."""
    g = np.repeat(np.arange(K), 3)
    x = np.tile([0.5, -1.0, np.nan], K)
    y = np.tile([1.0, np.nan, -0.4], K)
    # a second pattern in a few clusters, so that nothing is constant within clusters
    return pd.DataFrame({"g": g, "x": x, "y": y})


def _chain_pieces(df: pd.DataFrame, model: str = MODEL):
    """Plan and the chain's designs and current state (model states after one
    iteration), as run_compatible_chain holds them."""
    spec = build_model_spec(df, model, None, m=1, iterations=1)
    plan = build_plan(with_latent_means(df, spec), spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, _, _, _, states = run_compatible_chain(plan, np.random.default_rng(0), 1)
    values = Values(plan.layout, like=plan.like)
    for name in plan.names:
        values[name] = plan.start[name].copy()
    states = dict(states)
    sa = states.pop(ANALYSIS)
    fx, cur = build_context(plan, values, states, sa, {})
    return plan, fx, cur


def test_latent_means_follow_their_exact_conditional():
    """On K identical clusters with fixed parameters, the engine's draws of ξ_j are iid
    from N(μ*, 1/λ) with (lmean.py's formula)

        λ  = 1/τ + n_j/σ_x² + Σ_{y obs} γ_C²/σ²
        μ* = (α/τ + Σ x_ij/σ_x² + Σ_{y obs} γ_C (y_ij − γ0 − γ_W x_ij − u_j)/σ²)/λ.

    Tolerances: 4.5 Monte Carlo SEs of the mean (√(v/K)) and of the variance
    (v·√(2/(K−1))); dropping any term (the analysis model, x's rows, the prior, or the
    mask of the missing outcome) moves μ* or v by more than 10 SEs (checked below).
    """
    K = 4000
    plan, fx, cur = _chain_pieces(_tiny(K))
    states, values = cur.states, cur.values
    x_now = np.tile([0.5, -1.0, 0.3], K)  # row 3: the current imputation
    y_now = np.tile([1.0, 9.0, -0.4], K)  # row 2: any value (the outcome is missing)
    values["x"][:], values["y"][:] = x_now, y_now
    values["lmean(x)"][:] = 5.0  # the current ξ does not enter its normal conditional
    for n in ("x", "y", "lmean(x)"):
        values.touch(n)
    g0, gw, gc, u, s2 = 0.2, 0.7, 1.5, 0.4, 0.5
    alpha, tau, s2x = 1.5, 0.3, 0.9
    assert fx.analysis_data is fx.datas["y"]
    assert list(fx.analysis_data.X.names) == ["Intercept", "x", "lmean(x)"]
    sa = replace(cur.analysis, beta=np.array([g0, gw, gc]), b=np.full((K, 1), u), sigma2=s2)
    cur.analysis = sa
    states["lmean(x)"] = replace(states["lmean(x)"], beta=np.array([alpha]), sigma2=tau)
    states["x"] = replace(states["x"], sigma2=s2x)
    assert fx.users["lmean(x)"] == []
    xi = latent_mean_draw(np.random.default_rng(1), fx, cur, "lmean(x)")
    xs, ys, obs = np.array([0.5, -1.0, 0.3]), np.array([1.0, 9.0, -0.4]), [0, 2]

    def moments(prior=True, own=True, analysis=True, mask=True):
        rows = obs if mask else [0, 1, 2]
        lam = (1 / tau if prior else 0) + (3 / s2x if own else 0)
        num = (alpha / tau if prior else 0) + (xs.sum() / s2x if own else 0)
        if analysis:
            lam += len(rows) * gc**2 / s2
            num += (gc * (ys[rows] - g0 - gw * xs[rows] - u)).sum() / s2
        return num / lam, 1 / lam

    mu, v = moments()
    se_m, se_v = np.sqrt(v / K), v * np.sqrt(2 / (K - 1))
    assert abs(xi.mean() - mu) < 4.5 * se_m, (xi.mean(), mu)
    assert abs(xi.var(ddof=1) - v) < 4.5 * se_v, (xi.var(ddof=1), v)
    for dropped in ({"prior": False}, {"own": False}, {"analysis": False}, {"mask": False}):
        m2, v2 = moments(**dropped)
        assert abs(m2 - mu) > 10 * se_m or abs(v2 - v) > 10 * se_v, dropped
    # the column lmean(x) holds the draws on every row of the cluster
    np.testing.assert_array_equal(values["lmean(x)"], np.repeat(xi, 3))


def test_latent_means_see_the_level2_models_that_use_them():
    """An incomplete level-2 predictor w whose model takes lmean(x) as a predictor,
    ``w_j ~ N(δ0 + δ1 ξ_j, σ_w²)``, adds ``δ1²/σ_w²`` to ξ_j's precision and
    ``δ1 (w_j − δ0)/σ_w²`` to its numerator. Same tolerances as above; dropping the
    term moves the mean by more than 10 SEs (checked)."""
    K = 4000
    df = _tiny(K).assign(y=lambda f: f.y.fillna(0.0))
    wj = np.where(np.arange(K) % 2 == 0, 0.7, -0.2)  # the even clusters are compared
    df["w"] = np.where(df.g == K - 1, np.nan, wj[df.g])
    plan, fx, cur = _chain_pieces(df, "y ~ x + lmean(x) + w + (1 | g)")
    states, values = cur.states, cur.values
    assert str(plan.spec.variables_by_name["w"].formula) == "w ~ lmean(x)"
    values["x"][:] = np.tile([0.5, -1.0, 0.3], K)
    values["w"][:] = np.repeat(wj, 3)
    for n in ("x", "w"):
        values.touch(n)
    g0, gw, gc, gz, u, s2 = 0.2, 0.7, 1.5, 0.3, 0.4, 0.5
    alpha, tau, s2x, d0, d1, s2w = 1.5, 0.3, 0.9, -0.5, 2.0, 0.4
    assert list(fx.analysis_data.X.names) == ["Intercept", "x", "lmean(x)", "w"]
    cur.analysis = replace(
        cur.analysis, beta=np.array([g0, gw, gc, gz]), b=np.full((K, 1), u), sigma2=s2
    )
    states["lmean(x)"] = replace(states["lmean(x)"], beta=np.array([alpha]), sigma2=tau)
    states["x"] = replace(states["x"], sigma2=s2x)
    assert list(fx.datas["w"].X.names) == ["Intercept", "lmean(x)"]
    states["w"] = replace(states["w"], beta=np.array([d0, d1]), sigma2=s2w)
    assert fx.users["lmean(x)"] == ["w"] and fx.y_obs_rows.all()
    xi = latent_mean_draw(np.random.default_rng(1), fx, cur, "lmean(x)")[0::2]
    xs, ys = np.array([0.5, -1.0, 0.3]), np.array([1.0, 0.0, -0.4])

    def moments(with_w=True):
        lam = 1 / tau + 3 / s2x + 3 * gc**2 / s2
        num = alpha / tau + xs.sum() / s2x
        num += (gc * (ys - g0 - gw * xs - gz * 0.7 - u)).sum() / s2
        if with_w:
            lam += d1**2 / s2w
            num += d1 * (0.7 - d0) / s2w
        return num / lam, 1 / lam

    mu, v = moments()
    n_draws = xi.size
    se_m, se_v = np.sqrt(v / n_draws), v * np.sqrt(2 / (n_draws - 1))
    assert abs(xi.mean() - mu) < 4.5 * se_m, (xi.mean(), mu)
    assert abs(xi.var(ddof=1) - v) < 4.5 * se_v, (xi.var(ddof=1), v)
    assert abs(moments(False)[0] - mu) > 10 * se_m


def test_owner_state_makes_x_linear_predictor_the_latent_mean():
    """x's model given ξ: its linear predictor is ξ_j on every row; Ψ = τ and β = α of
    lmean(x)'s own model; σ_x² a draw around the mean square of x − ξ."""
    plan, fx, cur = _chain_pieces(_tiny(300))
    states, values = cur.states, cur.values
    xi = np.random.default_rng(3).standard_normal(300)
    values["lmean(x)"][:] = np.repeat(xi, 3)
    values["x"][:] = np.tile([0.5, -1.0, 0.3], 300)
    values.touch("x")
    values.touch("lmean(x)")
    st = latent_mean_owner_state(np.random.default_rng(2), fx, cur, "lmean(x)")
    d = fx.datas["x"]
    d.refresh(values, plan.static)
    eta = linear_predictor(plan.models["x"], st, d, plan.layout.n)
    np.testing.assert_allclose(eta, values["lmean(x)"], atol=1e-12)
    assert st.psi[0, 0] == states["lmean(x)"].sigma2
    np.testing.assert_array_equal(st.beta, states["lmean(x)"].beta)
    ms = np.mean((values["x"] - values["lmean(x)"]) ** 2)
    # σ² = SSR/χ²(900): within ±25 % of the mean square (χ²(900)/900 has SD 0.047)
    assert 0.75 < st.sigma2 / ms < 1.25


@pytest.fixture(scope="module")
def design_d():
    return DESIGNS["d"].generate(np.random.default_rng(202))


def test_completed_data_carry_the_latent_means_and_fit_uses_them(design_d):
    _, df = design_d
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imp = df.mi.impute(model=MODEL, m=2, iterations=5, rng=4)
    assert "lmean(x)" not in df.columns  # the user's frame is left as it is
    for k in (1, 2):
        c = imp.complete(k)
        assert not c.isna().any().any()
        per_cluster = c.groupby("g")["lmean(x)"].nunique()
        assert (per_cluster == 1).all()  # one latent mean per cluster
        np.testing.assert_array_equal(c.x[df.x.notna()], df.x[df.x.notna()])
    assert not imp.complete(1)["lmean(x)"].equals(imp.complete(2)["lmean(x)"])
    assert "lmean(x)" in imp.fit().summary().index
    assert "lmean(x)" in str(imp.spec)


def test_bit_identical_across_executors_continuation_and_files(design_d, tmp_path):
    _, df = design_d
    kw = dict(model=MODEL, m=2, rng=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        long = df.mi.impute(iterations=5, **kw)
        par = df.mi.impute(iterations=5, n_jobs=2, **kw)
        short = df.mi.impute(iterations=3, **kw)
        path = str(tmp_path / "lmean.nc")
        short.to_netcdf(path)
        back = mlimpute.open(path)
        assert back.spec == short.spec
        for other in (par, short.iterate(2), back.iterate(2)):
            for k in (1, 2):
                pd.testing.assert_frame_equal(long.complete(k), other.complete(k))


def test_incomplete_level2_predictor_uses_the_latent_mean(design_d, tmp_path):
    """w (level 2, 20 % of clusters missing) with lmean(x): w's model takes lmean(x) as
    a predictor; the run completes, keeps observed values, and reruns bit for bit from
    a file."""
    _, df = design_d
    rng = np.random.default_rng(6)
    wj = rng.standard_normal(200)
    wj[rng.random(200) < 0.2] = np.nan
    df = df.assign(w=wj[df.g])
    model = "y ~ x + lmean(x) + w + (1 | g)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        long = df.mi.impute(model=model, m=2, iterations=4, rng=2)
        short = df.mi.impute(model=model, m=2, iterations=2, rng=2)
        path = str(tmp_path / "w.nc")
        short.to_netcdf(path)
        more = mlimpute.open(path).iterate(2)
    assert "w: w ~ lmean(x)" in str(long.spec)
    c = long.complete(1)
    assert not c.isna().any().any()
    assert (c.groupby("g")["w"].nunique() == 1).all()
    np.testing.assert_array_equal(c.w[df.w.notna()], df.w[df.w.notna()])
    for k in (1, 2):
        pd.testing.assert_frame_equal(long.complete(k), more.complete(k))


def test_complete_x_still_has_a_latent_mean(design_d):
    full, _ = design_d
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imp = full.mi.impute(model=MODEL, m=2, iterations=3, rng=1)
    assert imp.complete(1)["lmean(x)"].notna().all()
    pd.testing.assert_series_equal(imp.complete(1).x, full.x)


@pytest.mark.parametrize(
    ("model", "error", "match"),
    [
        ("y ~ x + lmean(x) + w + (1 | g)", UnsupportedError, r"level-1.*\['w'\]"),
        ("y ~ x + lmean(x) + v + (1 | g)", UnsupportedError, r"level-1.*\['v'\]"),
        ("y ~ x + I(x**2) + lmean(x) + (1 | g)", UnsupportedError, "non-linearly"),
        ("y ~ x + lmean(z) + (1 | g)", UnsupportedError, "constant within"),
        ("y ~ x + lmean(nope) + (1 | g)", SpecificationError, "nope"),
    ],
)
def test_unsupported_latent_means_are_named(design_d, model, error, match):
    _, df = design_d
    rng = np.random.default_rng(0)
    df = df.assign(
        w=rng.standard_normal(len(df)),
        v=np.where(rng.random(len(df)) < 0.2, np.nan, rng.standard_normal(len(df))),
        z=df.g % 3,
    )
    used = [c for c in ("w", "v", "z") if f" {c} " in model or f"({c})" in model]
    df = df[["y", "x", "g", *used]]
    with pytest.raises(error, match=match):
        df.mi.impute(model=model, m=1, iterations=2, rng=1)


def test_name_clash_and_chained_formulas_are_refused(design_d):
    _, df = design_d
    with pytest.raises(SpecificationError, match="rename"):
        df.assign(**{"lmean(x)": 0.0}).mi.impute(model=MODEL, m=1, iterations=2, rng=1)
    with pytest.raises(UnsupportedError, match="lmean\\(x\\).*model-based"):
        df.mi.impute({"y": "~ lmean(x) + (1 | g)"}, m=1, iterations=2, rng=1)


def test_spec_file_reruns_bit_for_bit(design_d, tmp_path):
    from mlimpute.specfile import run

    _, df = design_d
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imp = df.mi.impute(model=MODEL, m=2, iterations=3, rng=1)
        path = tmp_path / "lmean.toml"
        path.write_text(imp.spec.to_toml())
        again = run(path, df, out_dir=tmp_path).imputed
    assert 'formula = "y ~ x + lmean(x) + (1 | g)"' in path.read_text()
    pd.testing.assert_frame_equal(imp.complete(2), again.complete(2))


# -- recovery on design (d): y = 0.5 x + 0.3 μ_j + u_j + e, clusters of five -------------
# Over 100 data sets (seeds 5000-5099, m = 5, 60 iterations) the pooled lmean(x)
# coefficient averaged 0.330 ± 0.018 (SD 0.178 between data sets, 95 % coverage 0.95),
# x's 0.497 ± 0.004 (SD 0.043); cmean(x) on the complete data 0.162 ± 0.008 (SD 0.078),
# after chained imputation 0.163 ± 0.009. Over 40 more (seeds 1000-1039): lmean(x)
# 0.235 ± 0.032 (SD 0.204, coverage 0.925), x 0.514 ± 0.008 (SD 0.047), complete-data
# cmean(x) 0.132 ± 0.015. The observed cluster mean recovers about half the contextual
# effect of 0.3. The tolerances below use the larger SDs (0.204, 0.047).


def test_design_d_one_data_set():
    """One data set: each estimate within 3 of its between-data-set SDs (0.204 for
    lmean(x), 0.047 for x; measured above) of the truth."""
    _, df = DESIGNS["d"].generate(np.random.default_rng(1003))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = df.mi.impute(model=MODEL, m=5, iterations=40, rng=3).fit().summary()
    assert abs(res.loc["lmean(x)", "estimate"] - 0.3) < 3 * 0.204, res
    assert abs(res.loc["x", "estimate"] - 0.5) < 3 * 0.047, res
    assert 0.05 < res.loc["lmean(x)", "se"] < 0.5  # the pooled SE: about 0.2


@pytest.mark.slow
def test_design_d_latent_mean_recovers_the_contextual_effect():
    """12 data sets: the mean lmean(x) coefficient is within 3 SE (0.204/√12 = 0.059) of
    0.3, and above the complete-data cmean(x) coefficient of the same data sets (expected
    gap 0.17; the SD of the mean paired gap is below 0.065). About 20 s."""
    lm, cm = [], []
    for s in range(12):
        complete, df = DESIGNS["d"].generate(np.random.default_rng(2000 + s))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = df.mi.impute(model=MODEL, m=5, iterations=60, rng=s).fit().summary()
            ref = mlimpute.from_completed([complete, complete]).fit(DESIGNS["d"].analysis)
        lm.append(res.loc["lmean(x)", "estimate"])
        cm.append(ref.summary().loc["cmean(x)", "estimate"])
    assert abs(np.mean(lm) - 0.3) < 3 * 0.059, lm
    assert np.mean(lm) - np.mean(cm) > 0, (lm, cm)


def test_binary_outcome_with_a_latent_mean(design_d):
    """A probit outcome: ξ_j's conditional uses the latent y* (drawn afresh); the run
    completes and the probit fit uses the lmean(x) column."""
    complete, df = design_d
    df = df.assign(yb=(complete.y > 0).astype(float)).drop(columns="y")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imp = df.mi.impute(model="yb ~ x + lmean(x) + (1 | g)", m=2, iterations=5, rng=1)
        res = imp.fit(family="binomial", link="probit").summary()
    assert not imp.complete(2).isna().any().any()
    assert "lmean(x)" in res.index
