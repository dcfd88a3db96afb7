"""The multilevel normal model with several random-effect terms (models/ml_multi.py)."""

from __future__ import annotations

import numpy as np
import pytest

from mlimpute.models.ml_multi import MultiTermNorm
from mlimpute.models.ml_multi_data import example_crossed, example_three_level, term_data
from mlimpute.models.ml_norm import MultilevelNorm
from mlimpute.models.registry import multi_term_model
from tests.conftest import batch_se

PSI = {"class": 0.3, "school": 0.5, "a": 0.3, "b": 0.5}
PSI_SLOPES = {"class": [[0.3, 0.05], [0.05, 0.1]], "school": [[0.5, -0.1], [-0.1, 0.2]]}


class _FixedPsiCore(MultilevelNorm):
    """The two-level core with each term's Ψ fixed (the comparison prior's draw replaced)."""

    fixed = PSI

    def _psi_iw(self, rng, b, scale, data):
        return np.atleast_2d(np.asarray(self.fixed[data.group], dtype=float))


class _FixedPsi(MultiTermNorm):
    core_cls = _FixedPsiCore
    psis = PSI

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.core.fixed = self.psis


class _FixedPsiSlopes(_FixedPsi):
    psis = PSI_SLOPES


class _DropsOffset(_FixedPsi):
    """A wrong kernel: the further terms' draws ignore the primary term's effects."""

    nested_block = False

    def _primary_effect(self, data, b0):
        return np.zeros(data.n_obs)


def _expand(Z, codes, J):
    """The (n, J·q) design of one term's effects b (cluster j, column a at j·q + a)."""
    n, q = Z.shape
    E = np.zeros((n, J * q))
    for a in range(q):
        E[np.arange(n), codes * q + a] = Z[:, a]
    return E


def _exact(d, psis, weights):
    """Closed-form posterior of (β, b_0, b_1) given σ² = 1 (row precisions ``weights``)
    and fixed Ψ (flat β): means and variances."""
    t = d.extra_terms[0]
    W = np.hstack(
        [
            d.X.obs,
            _expand(d.Z.obs, d.seg_obs.codes, d.n_clusters),
            _expand(t.Z.obs, t.codes_obs, t.n_clusters),
        ]
    )
    p = d.X.obs.shape[1]
    prior = np.zeros((W.shape[1],) * 2)
    start = p
    for J, group in ((d.n_clusters, d.group), (t.n_clusters, t.group)):
        inv = np.linalg.inv(np.atleast_2d(np.asarray(psis[group], dtype=float)))
        q = inv.shape[0]
        prior[start : start + J * q, start : start + J * q] = np.kron(np.eye(J), inv)
        start += J * q
    cov = np.linalg.inv(W.T @ (W * weights[:, None]) + prior)
    return cov @ W.T @ (weights * d.y_obs), np.diag(cov)


def _z_scores(model, d, steps=3000, seed=3, weights=None):
    """z-scores of the chain's means and variances of (β, b_0, b_1) against the closed
    form. Monte Carlo error by batch means (40 batches): the means' SE of the draws x, the
    variances' SE of (x − exact mean)², whose mean estimates the variance."""
    rng = np.random.default_rng(seed)
    state = model.start(rng, d, d.y_obs, sigma2=1.0, weights=weights)
    draws = []
    for i in range(steps + 200):
        state = model.gibbs(rng, state, d, d.y_obs, sigma2=1.0, weights=weights)
        if i >= 200:
            draws.append(np.r_[state.beta, state.primary.b.ravel(), state.extra[0].b.ravel()])
    draws = np.array(draws)
    mean, var = _exact(d, model.psis, np.ones(d.n_obs) if weights is None else weights)
    z_mean = (draws.mean(0) - mean) / batch_se(draws)
    sq = (draws - mean) ** 2
    z_var = (sq.mean(0) - var) / batch_se(sq)
    return np.abs(np.r_[z_mean, z_var])


@pytest.mark.parametrize("design", ["nested", "crossed"])
def test_exact_conditional_posterior(design):
    # 14 means and 14 variances (nested; 12 each crossed): with the right kernel all
    # z-scores stay below 4.5 (for 28 batch-means t(39) values the chance of one above 4.5
    # is about 2e-3); the same check fails the wrong kernel (the school draw ignoring the
    # class effects), with a margin (> 6; 8-30 seen) even on a shorter chain.
    if design == "nested":
        d = example_three_level(n_schools=4, classes=2, pupils=3, rng=5, missing=0.0)
    else:
        d = example_crossed(n_a=6, n_b=4, n=30, rng=5)
    z = _z_scores(_FixedPsi(prior="iw"), d, steps=2000)
    assert z.max() < 4.5, z
    z_wrong = _z_scores(_DropsOffset(prior="iw"), d, steps=1000)
    assert z_wrong.max() > 6, z_wrong


@pytest.mark.parametrize("design", ["nested", "crossed"])
def test_exact_conditional_posterior_slopes_and_weights(design):
    # random intercepts and slopes at both levels (correlated 2×2 Ψ), unequal row weights:
    # the joint (school, class) block and the crossed update with general Z; 2 + 2·(6 + 3)
    # = 20 means and 20 variances, threshold as above (chance of a false alarm ~3e-3)
    gen = np.random.default_rng(12)
    n = 36
    outer = np.repeat(np.arange(3), 12) if design == "nested" else gen.integers(0, 3, n)
    inner = np.repeat(np.arange(6), 6)
    x = gen.standard_normal(n)
    Z = np.column_stack([np.ones(n), x])
    y = 1 + x + gen.standard_normal(n)
    d = term_data(
        y,
        Z,
        ["Intercept", "x"],
        ("class", inner, Z, ["Intercept", "x"]),
        [("school", outer, Z, ["Intercept", "x"])],
    )
    assert d.extra_terms[0].contains_primary == (design == "nested")
    weights = gen.uniform(0.5, 2.0, n)
    z = _z_scores(_FixedPsiSlopes(prior="iw"), d, steps=2000, weights=weights)
    assert z.max() < 4.5, z


def _posterior(d, steps=1500, burn=300, seed=11):
    model = MultiTermNorm()
    rng = np.random.default_rng(seed)
    state = model.init(rng, d)
    out = np.empty((steps, len(model.param_names(d))))
    for i in range(burn + steps):
        state = model.step(rng, state, d)
        if i >= burn:
            out[i - burn] = model.param_vector(state, d)
    return model.param_names(d), out


def _assert_recovered(d, names, draws, truth):
    """Each variance's posterior mean within 2.5 posterior SDs of the generating value and
    of the realised variance of the simulated effects (what the data inform: with 30
    clusters a realised variance is off its generating value by 0.26 × it in SD). The Monte
    Carlo SE of the mean (< 0.1 posterior SD at ≥ 0.4 effective draws per step, 1,500
    steps) is negligible against that margin."""
    for name, value in truth.items():
        x = draws[:, names.index(name)]
        realised = d.simulated[name]
        assert abs(x.mean() - realised) < 2.5 * x.std(), (name, x.mean(), x.std(), realised)
        assert abs(x.mean() - value) < 2.5 * x.std() + abs(realised - value), (name, value)


def test_recovers_three_level_variances():
    # 30 schools × 4 classes × 10 pupils, variances 0.5 / 0.3 / 1, 20 % of y missing
    d = example_three_level(n_schools=30, classes=4, pupils=10, rng=21, missing=0.2)
    names, draws = _posterior(d)
    truth = {"var(Intercept|school)": 0.5, "var(Intercept|class)": 0.3, "var(Residual)": 1.0}
    _assert_recovered(d, names, draws, truth)
    x = draws[:, names.index("x")]
    assert abs(x.mean() - 0.5) < 2.5 * x.std()


def test_recovers_crossed_variances():
    # 40 × 30 crossed factors, 1,200 rows, both variances 0.3
    d = example_crossed(n_a=40, n_b=30, n=1200, var_a=0.3, var_b=0.3, rng=8)
    names, draws = _posterior(d)
    truth = {"var(Intercept|a)": 0.3, "var(Intercept|b)": 0.3, "var(Residual)": 1.0}
    _assert_recovered(d, names, draws, truth)


def _run(model, d, seed=4, steps=5):
    rng = np.random.default_rng(seed)
    state = model.init(rng, d)
    for _ in range(steps):
        state = model.step(rng, state, d)
    return state, model.draw_missing(rng, state, d), model.param_vector(state, d)


def test_draws_shape_dtype_and_bit_identity():
    d = example_three_level(n_schools=5, classes=3, pupils=6, rng=2, missing=0.3)
    model = MultiTermNorm()
    s1, y1, p1 = _run(model, d)
    s2, y2, p2 = _run(model, d)
    assert y1.shape == (d.n_mis,) and y1.dtype == np.float64 and np.all(np.isfinite(y1))
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(s1.extra[0].b, s2.extra[0].b)
    assert p1.shape == (len(model.param_names(d)),)
    b, names = model.random_effects(s1, d)
    assert b.shape == (d.n_clusters, 1) and names == ["Intercept"]
    assert model.predict(s1, d, "obs", mean=True).shape == (d.n_obs,)
    assert _run(model, d, seed=5)[1].tolist() != y1.tolist()


def _run_gibbs(model, d, seed=4, steps=5):
    """:func:`_run` by the two-level model's general numpy step (``gibbs``), the one the
    model of several terms extends (``step`` runs the kernels' order where they serve)."""
    rng = np.random.default_rng(seed)
    state = model.start(rng, d, d.y_obs)
    for _ in range(steps):
        state = model.gibbs(rng, state, d, d.y_obs)
    drawn = model.predict(state, d, "mis") + np.sqrt(state.sigma2) * rng.standard_normal(d.n_mis)
    return state, drawn, model.param_vector(state, d)


def test_without_further_terms_same_draws_as_two_level_model():
    d = example_three_level(n_schools=5, classes=3, pupils=6, rng=2, missing=0.3)
    from dataclasses import replace

    two = replace(d, extra_terms=(), cache={})
    _, y_multi, p_multi = _run(MultiTermNorm(), two)
    _, y_two, p_two = _run_gibbs(MultilevelNorm(), replace(two, cache={}))
    np.testing.assert_array_equal(y_multi, y_two)
    np.testing.assert_array_equal(p_multi, p_two)


def test_slopes_weights_latent_scale_and_iw_prior():
    # random slopes at both levels (correlated blocks: the collapsed MH), row weights and a
    # prior precision of β (the latent models' arguments), the comparison prior
    gen = np.random.default_rng(0)
    school = np.repeat(np.arange(8), 20)
    klass = np.repeat(np.arange(32), 5)
    x = gen.standard_normal(160)
    y = 1 + x + gen.normal(0, 0.5, 8)[school] + gen.normal(0, 0.3, 32)[klass] * x
    y = y + gen.standard_normal(160)
    Zs = np.column_stack([np.ones(160), x])
    d = term_data(
        y,
        Zs,
        ["Intercept", "x"],
        ("class", klass, Zs, ["Intercept", "x"]),
        [("school", school, Zs, ["Intercept", "x"])],
        gen.random(160) > 0.2,
    )
    for model in (MultiTermNorm(), MultiTermNorm(prior="iw")):
        rng = np.random.default_rng(1)
        w = np.full(d.n_obs, 2.0)
        state = model.start(rng, d, d.y_obs, sigma2=1.0, beta_prec=np.array([0.0, 0.01]), weights=w)
        for _ in range(5):
            state = model.gibbs(rng, state, d, d.y_obs, 1.0, np.array([0.0, 0.01]), w)
        assert np.all(np.isfinite(model.param_vector(state, d)))
        assert state.extra[0].b.shape == (8, 2)
        names = model.param_names(d)
        assert "cov(Intercept,x|school)" in names and len(set(names)) == len(names)


def test_registered_for_several_terms_only():
    assert multi_term_model("2l.norm") is MultiTermNorm
    assert multi_term_model("2l.pan") is MultiTermNorm
    assert MultiTermNorm.multi_term and not getattr(MultilevelNorm, "multi_term", False)
    assert multi_term_model("norm") is None


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("2l.bin", "binary"),
        ("2l.ordinal", "ordinal"),
        ("2l.nominal", "nominal"),
        ("2l.pmm", "numeric"),
    ],
)
def test_latent_and_matching_models_with_several_terms(name, kind):
    from dataclasses import replace

    d = example_three_level(n_schools=6, classes=3, pupils=8, rng=4, missing=0.25)
    y = d.y_obs
    categories = None
    if kind == "binary":
        y = (y > np.median(y)).astype(float)
    elif kind in ("ordinal", "nominal"):
        y = np.digitize(y, np.quantile(y, [0.25, 0.5, 0.75])).astype(float)
        categories = ("a", "b", "c", "d")
    d = replace(d, y_obs=y, categories=categories, cache={})
    model = multi_term_model(name)()
    model.check(d)
    draws = [_run(model, d, seed=9) for _ in range(2)]
    (state, y_mis, params), (_, y_mis2, params2) = draws
    np.testing.assert_array_equal(y_mis, y_mis2)
    np.testing.assert_array_equal(params, params2)
    assert y_mis.shape == (d.n_mis,) and y_mis.dtype == np.float64
    assert set(np.unique(y_mis)) <= set(np.unique(d.y_obs))  # observed values only
    names = model.param_names(d)
    assert len(names) == params.size and any("|school)" in n for n in names)
    assert np.all(np.isfinite(params))
    b, b_names = model.random_effects(state, d)
    assert b.shape == (d.n_clusters, len(b_names))
    # the sampler's check accepts it, and refuses the two-level class on the same data
    from mlimpute.errors import UnsupportedError
    from mlimpute.models.base import refuse_extra_terms
    from mlimpute.models.registry import get_model

    refuse_extra_terms(model, d)
    with pytest.raises(UnsupportedError, match="school"):
        refuse_extra_terms(get_model(name).factory(), d)


def test_heteroscedastic_version():
    # a residual variance per class, school and class random intercepts: on homoscedastic
    # data (σ² = 1) the mean class variance's posterior mean lies within 2.5 posterior SDs
    # of the realised residual variance, and the school variance's of its realised value
    from mlimpute.models.ml_multi import MultiTermHeteroscedasticNorm

    d = example_three_level(n_schools=20, classes=4, pupils=10, rng=6, missing=0.2)
    model = multi_term_model("2l.norm.het")()
    assert isinstance(model, MultiTermHeteroscedasticNorm)
    state, y_mis, params = _run(model, d, steps=3)
    assert np.array_equal(_run(model, d, steps=3)[1], y_mis)
    assert np.shape(state.sigma2) == (d.n_clusters,) and y_mis.shape == (d.n_mis,)
    names = model.param_names(d)
    assert names[-3:] == ["var(Residual)", "scale(Residual)", "df(Residual)"]
    assert "var(Intercept|school)" in names and params.size == len(names)
    rng = np.random.default_rng(2)
    state = model.init(rng, d)
    draws = []
    for i in range(900):
        state = model.step(rng, state, d)
        if i >= 300:
            draws.append(model.param_vector(state, d))
    draws = np.array(draws)
    for name in ("var(Residual)", "var(Intercept|school)"):
        x = draws[:, names.index(name)]
        assert abs(x.mean() - d.simulated[name]) < 2.5 * x.std(), (name, x.mean(), x.std())


def test_four_levels_and_a_crossed_factor_run():
    # classes in schools in districts, and a factor crossed with them: every term updated
    # (the joint block for each term containing the classes), parameters named per term
    gen = np.random.default_rng(3)
    district = np.repeat(np.arange(4), 60)
    school = np.repeat(np.arange(12), 20)
    klass = np.repeat(np.arange(48), 5)
    hood = gen.integers(0, 7, 240)
    x = gen.standard_normal(240)
    y = x + gen.normal(0, 0.6, 12)[school] + gen.normal(0, 0.5, 7)[hood] + gen.standard_normal(240)
    one = np.ones((240, 1))
    d = term_data(
        y,
        np.column_stack([np.ones(240), x]),
        ["Intercept", "x"],
        ("class", klass, one, ["Intercept"]),
        [
            (g, c, one, ["Intercept"])
            for g, c in (("school", school), ("district", district), ("hood", hood))
        ],
        gen.random(240) > 0.1,
    )
    assert [t.contains_primary for t in d.extra_terms] == [True, True, False]
    state, y_mis, params = _run(MultiTermNorm(), d, steps=20)
    names = MultiTermNorm().param_names(d)
    assert names[2:7] == [
        "var(Intercept|class)",
        "var(Intercept|school)",
        "var(Intercept|district)",
        "var(Intercept|hood)",
        "var(Residual)",
    ]
    assert np.all(np.isfinite(params)) and np.all(np.isfinite(y_mis))
    assert [s.b.shape for s in state.extra] == [(12, 1), (4, 1), (7, 1)]


class _NoScalarMH(MultiTermNorm):
    scalar_mh = False


def test_scalar_variance_mh_keeps_the_posterior():
    # the collapsed MH on the scalar variances (school and class) and the Gibbs/expansion
    # steps without it target the same posterior: their chains' means of each variance
    # (small, 0.1, where the MH matters) agree within 4 batch-means SEs of the difference.
    # Checked to fail (z = -5.9 for the school variance at these lengths) with the MH's
    # Jacobian dropped.
    d = example_three_level(
        n_schools=15, classes=3, pupils=4, var_school=0.1, var_class=0.1, rng=7, missing=0
    )
    names = ["var(Intercept|school)", "var(Intercept|class)"]
    means, ses = [], []
    for cls in (MultiTermNorm, _NoScalarMH):
        model = cls()
        rng = np.random.default_rng(2)
        state = model.init(rng, d)
        out = []
        for i in range(1200):
            state = model.step(rng, state, d)
            if i >= 200:
                out.append(model.param_vector(state, d))
        x = np.array(out)[:, [model.param_names(d).index(n) for n in names]]
        means.append(x.mean(0))
        ses.append(batch_se(x))
    z = (means[0] - means[1]) / np.hypot(*ses)
    assert np.all(np.abs(z) < 4), (means, ses)
