"""The closed-form draws of level-2 predictors and latent cluster means.

A level-2 predictor's missing cluster values (:func:`level2_draw`, on its data with
every cluster as a row, :func:`all_clusters`) and the latent cluster means ``lmean(x)``
with the state of x's model they define (:func:`latent_mean_draw`,
:func:`latent_mean_owner_state`), for :mod:`mlimpute.sampler.compatible_draws`.
Vectorised over clusters.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from mlimpute.compatible import ClusterTerm, LinearTerm, draw_latent_means, level2_moments
from mlimpute.models.segments import Segments
from mlimpute.sampler.compatible_eta import _latent, cluster_eta_at, eta_at, outcome_term
from mlimpute.sampler.design import ModelData

__all__ = ["all_clusters", "level2_draw", "latent_mean_owner_state", "latent_mean_draw"]


def all_clusters(d: ModelData) -> ModelData:
    """A level-2 predictor's data with every cluster as an observed row: its model is
    fitted to the completed cluster values (the missing ones are part of the state)."""
    X = np.empty((d.n_obs + d.n_mis, d.X.obs.shape[1]))
    X[d.obs_idx], X[d.mis_idx] = d.X.obs, d.X.mis
    J = X.shape[0]
    block = replace(d.X, obs=np.asfortranarray(X), mis=np.asfortranarray(np.empty((0, X.shape[1]))))
    Z, seg = None, Segments.from_codes(np.zeros(J, dtype=np.intp), 1)
    if d.Z is not None:  # three levels: a random intercept of the enclosing level
        Zf = np.empty((J, d.Z.obs.shape[1]))
        Zf[d.obs_idx], Zf[d.mis_idx] = d.Z.obs, d.Z.mis
        empty = np.asfortranarray(np.empty((0, Zf.shape[1])))
        Z = replace(d.Z, obs=np.asfortranarray(Zf), mis=empty)
        codes = np.empty(J, dtype=np.intp)
        codes[d.obs_idx], codes[d.mis_idx] = d.seg_obs.codes, d.codes_mis
        seg = Segments.from_codes(codes, d.n_clusters)
    return replace(
        d,
        X=block,
        Z=Z,
        obs_idx=np.arange(J),
        mis_idx=np.zeros(0, dtype=np.intp),
        y_obs=np.zeros(J),
        seg_obs=seg,
        codes_mis=np.zeros(0, dtype=np.intp),
        cache={},  # what models keep of a design (sums, priors) is of these rows, not d's
    )


def level2_draw(
    rng,
    plan,
    w,
    in_model,
    datas,
    states,
    users,
    level2,
    cview,
    ma,
    sa,
    da,
    values,
    y_values,
    y_obs_rows,
    missing,
    mu_shift=None,
    responses=None,
):
    """Draw the missing cluster values of a level-2 predictor w from their closed form
    (:func:`mlimpute.compatible.level2_moments`): its own model on one row per cluster,
    times the analysis model on every row of the cluster with the outcome observed (cross-
    level interactions included), times the level-1 models it predicts on every row of the
    cluster and the level-2 models it predicts. Returns the new values of the missing
    clusters.

    With ``delta=`` (:mod:`mlimpute.compatible.shift`): ``mu_shift`` (one per cluster)
    moves w's own mean, so that the draw is the shifted ``w = w* + δ``; ``responses``
    holds the unshifted columns ``p*`` of shifted models among ``users``."""
    n = plan.layout.n
    first = plan.layout.segments.starts
    d, model, st = datas[w], plan.models[w], states[w]
    d.refresh(cview, plan.cluster_static)
    mu = model.predict(st, d, "obs")
    if mu_shift is not None:
        mu = mu + mu_shift
    responses = responses or {}
    terms = []
    if in_model:  # an auxiliary is not in the analysis model's likelihood
        a, c = eta_at(ma, sa, da, values, plan.static, w, n)
        terms.append(outcome_term(rng, sa, y_values, a, c, values[w], y_obs_rows))
    cterms = []
    for p in users:
        dp, mp = datas[p], plan.models[p]
        if p in level2:
            a, c = cluster_eta_at(mp, states[p], dp, cview, plan.cluster_static, w)
            s2 = np.array([[states[p].sigma2]])
            vp = responses.get(p, values[p])[first]
            cterms.append(ClusterTerm(vp[:, None], a[:, None], c[:, None], s2))
        else:
            a, c = eta_at(mp, states[p], dp, values, plan.static, w, n)
            # a binary/ordinal model: its latent response (``responses``), variance 1
            s2 = 1.0 if _latent(states[p]) else states[p].sigma2
            terms.append(LinearTerm(responses.get(p, values[p]), a, c, s2))
    m_, v_ = level2_moments(plan.layout.segments, mu, st.sigma2, terms, cterms)
    cv = values[w][first].copy()
    draw = m_[missing] + np.sqrt(v_[missing]) * rng.standard_normal(int(missing.sum()))
    cv[missing] = draw
    values[w][:] = np.take(cv, plan.layout.codes)
    values.touch(w)
    return draw


def latent_mean_owner_state(rng, plan, x, col, datas, states, values, cview):
    """The state of x's model given its latent cluster means ``lmean(x)`` (column col).

    x's model is ``x_ij = ξ_j + e_ij`` with ``ξ_j = w_j'α + r_j``, ``r_j ~ N(0, τ)``
    (Lüdtke et al. 2008): (α, τ) are the parameters of col's own model, fitted to the
    completed ξ (one row per cluster), and ``σ_x² | x, ξ = Σ(x_ij − ξ_j)²/χ²(n)``
    (``p(σ_x²) ∝ 1/σ_x²``). Written as x's random-intercept model (``x ~ w + (1 | g)``:
    β = α, ``b_j = ξ_j − w_j'α``, Ψ = τ), so that its linear predictor is ξ_j and its
    parameters are traced as for any predictor. Returns the new state.
    """
    first = plan.layout.segments.starts
    dxi, sxi = datas[col], states[col]
    dxi.refresh(cview, plan.cluster_static)
    m = plan.models[col].predict(sxi, dxi, "obs")
    xi = values[col][first]
    resid = values[x] - values[col]
    sigma2 = float(resid @ resid) / rng.chisquare(resid.size)
    st = states[x]
    return replace(
        st,
        beta=np.asarray(sxi.beta, dtype=float).copy(),
        b=(xi - m)[:, None],
        sigma2=sigma2,
        psi=np.array([[float(sxi.sigma2)]]),
        beta_mean=None,
        b_mean=None,
    )


def latent_mean_draw(
    rng, plan, col, x, datas, states, cview, ma, sa, da, values, y_values, y_obs_rows, users=()
):
    """Draw every cluster's latent mean ``ξ_j`` (the column col, ``lmean(x)``) from its
    closed form (:func:`mlimpute.compatible.draw_latent_means`): its own model ``N(w_j'α,
    τ)``, x's rows ``N(x_ij; ξ_j, σ_x²)`` (observed and currently imputed), the analysis
    model on every row of the cluster with the outcome observed (a probit outcome through
    its latent y*) and the models of the level-2 predictors ``users`` that take lmean(x)
    as a predictor (one row per cluster). Returns the draws, one per cluster."""
    n = plan.layout.n
    first = plan.layout.segments.starts
    d, st = datas[col], states[col]
    d.refresh(cview, plan.cluster_static)
    m = plan.models[col].predict(st, d, "obs")
    a, c = eta_at(ma, sa, da, values, plan.static, col, n)
    term = outcome_term(rng, sa, y_values, a, c, values[col], y_obs_rows)
    cterms = []
    for p in users:  # level-2 models: lmean(x) is one of their predictors
        ap, cp = cluster_eta_at(
            plan.models[p], states[p], datas[p], cview, plan.cluster_static, col
        )
        s2 = np.array([[states[p].sigma2]])
        cterms.append(ClusterTerm(values[p][first][:, None], ap[:, None], cp[:, None], s2))
    xi = draw_latent_means(
        rng,
        plan.layout.segments,
        m,
        float(st.sigma2),
        values[x],
        0.0,
        states[x].sigma2,
        [term],
        cterms,
    )
    values[col][:] = np.take(xi, plan.layout.codes)
    values.touch(col)
    return xi
