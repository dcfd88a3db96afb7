"""The closed-form draws of level-2 predictors and latent cluster means.

A level-2 predictor's missing cluster values (:func:`level2_draw`, on its data with
every cluster as a row, :func:`~mlimpute.sampler.compatible_context.all_clusters`) and
the latent cluster means ``lmean(x)`` with the state of x's model they define
(:func:`latent_mean_draw`, :func:`latent_mean_owner_state`), for
:mod:`mlimpute.sampler.compatible_draws`. Vectorised over clusters.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from mlimpute.compatible import ClusterTerm, LinearTerm, latent_mean_moments, level2_moments
from mlimpute.sampler.compatible_context import (
    Current,
    Fixed,
    analysis_term,
    eta_in,
    set_cluster_values,
)
from mlimpute.sampler.compatible_eta import _latent, cluster_eta_at

__all__ = ["level2_draw", "latent_mean_owner_state", "latent_mean_draw"]


def _cluster_term(fx: Fixed, cur: Current, p: str, w: str, response=None) -> ClusterTerm:
    """The factor of the level-2 model of p, which takes the level-2 column w, one row
    per cluster (``response``: p's column, by default its current values)."""
    plan = fx.plan
    a, c = cluster_eta_at(
        plan.models[p], cur.states[p], fx.datas[p], cur.cview, plan.cluster_static, w
    )
    vp = (cur.values[p] if response is None else response)[fx.first]
    s2 = np.array([[cur.states[p].sigma2]])
    return ClusterTerm(vp[:, None], a[:, None], c[:, None], s2)


def level2_draw(rng, fx: Fixed, cur: Current, w: str, mu_shift=None, responses=None):
    """Draw the missing cluster values of a level-2 predictor w from their closed form
    (:func:`mlimpute.compatible.level2_moments`): its own model on one row per cluster,
    times the analysis model on every row of the cluster with the outcome observed (cross-
    level interactions included), times the level-1 models it predicts on every row of the
    cluster and the level-2 models it predicts. Returns the new values of the missing
    clusters.

    With ``delta=`` (:mod:`mlimpute.compatible.shift`): ``mu_shift`` (one per cluster)
    moves w's own mean, so that the draw is the shifted ``w = w* + δ``; ``responses``
    holds the unshifted columns ``p*`` of shifted models among w's users."""
    plan, states = fx.plan, cur.states
    d, model, st = fx.datas[w], plan.models[w], states[w]
    d.refresh(cur.cview, plan.cluster_static)
    mu = model.predict(st, d, "obs")
    if mu_shift is not None:
        mu = mu + mu_shift
    responses = responses or {}
    terms = []
    if w in fx.in_model:  # an auxiliary is not in the analysis model's likelihood
        terms.append(analysis_term(rng, fx, cur, w))
    cterms = []
    for p in fx.users[w]:
        if p in fx.level2:
            cterms.append(_cluster_term(fx, cur, p, w, responses.get(p)))
        else:
            a, c = eta_in(fx, cur, p, w)
            # a binary/ordinal model: its latent response (``responses``), variance 1
            s2 = 1.0 if _latent(states[p]) else states[p].sigma2
            terms.append(LinearTerm(responses.get(p, cur.values[p]), a, c, s2))
    m_, v_ = level2_moments(plan.layout.segments, mu, st.sigma2, terms, cterms)
    return set_cluster_values(rng, cur, w, m_, v_, fx.mis_clusters[w], fx.first, plan.layout.codes)


def latent_mean_owner_state(rng, fx: Fixed, cur: Current, col: str):
    """The state of x's model given its latent cluster means ``lmean(x)`` (column col).

    x's model is ``x_ij = ξ_j + e_ij`` with ``ξ_j = w_j'α + r_j``, ``r_j ~ N(0, τ)``
    (Lüdtke et al. 2008): (α, τ) are the parameters of col's own model, fitted to the
    completed ξ (one row per cluster), and ``σ_x² | x, ξ = Σ(x_ij − ξ_j)²/χ²(n)``
    (``p(σ_x²) ∝ 1/σ_x²``). Written as x's random-intercept model (``x ~ w + (1 | g)``:
    β = α, ``b_j = ξ_j − w_j'α``, Ψ = τ), so that its linear predictor is ξ_j and its
    parameters are traced as for any predictor. Returns the new state.
    """
    plan, values = fx.plan, cur.values
    x = fx.latent[col]
    dxi, sxi = fx.datas[col], cur.states[col]
    dxi.refresh(cur.cview, plan.cluster_static)
    m = plan.models[col].predict(sxi, dxi, "obs")
    xi = values[col][fx.first]
    resid = values[x] - values[col]
    sigma2 = float(resid @ resid) / rng.chisquare(resid.size)
    return replace(
        cur.states[x],
        beta=np.asarray(sxi.beta, dtype=float).copy(),
        b=(xi - m)[:, None],
        sigma2=sigma2,
        psi=np.array([[float(sxi.sigma2)]]),
        beta_mean=None,
        b_mean=None,
    )


def latent_mean_draw(rng, fx: Fixed, cur: Current, col: str):
    """Draw every cluster's latent mean ``ξ_j`` (the column col, ``lmean(x)``) from its
    closed form (:func:`mlimpute.compatible.latent_mean_moments`): its own model
    ``N(w_j'α, τ)``, x's rows ``N(x_ij; ξ_j, σ_x²)`` (observed and currently imputed), the
    analysis model on every row of the cluster with the outcome observed (a probit outcome
    through its latent y*) and the models of the level-2 predictors that take lmean(x)
    as a predictor (one row per cluster). Returns the draws, one per cluster."""
    plan, values = fx.plan, cur.values
    x = fx.latent[col]
    d, st = fx.datas[col], cur.states[col]
    d.refresh(cur.cview, plan.cluster_static)
    m = plan.models[col].predict(st, d, "obs")
    term = analysis_term(rng, fx, cur, col)
    cterms = [_cluster_term(fx, cur, p, col) for p in fx.users[col]]
    mean, var = latent_mean_moments(
        plan.layout.segments, m, float(st.sigma2), values[x], 0.0, cur.states[x].sigma2,
        [term], cterms,
    )  # fmt: skip
    xi = mean + np.sqrt(var) * rng.standard_normal(mean.shape)
    values[col][:] = np.take(xi, plan.layout.codes)
    values.touch(col)
    return xi
