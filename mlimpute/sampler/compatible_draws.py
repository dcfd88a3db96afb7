"""The draws of model-based imputation, one kind of missing value each.

Used by :mod:`mlimpute.sampler.compatible_step`; every draw reads the run's designs and
the chain's current state (:mod:`mlimpute.sampler.compatible_context`). The analysis
model's (and any model's) linear predictor on a few rows at candidate values
(:class:`RowDesign`), closed-form terms from affine linear predictors (:func:`eta_at`),
level-2 predictors on one row per cluster (:func:`level2_draw`), categorical predictors
exactly over their categories (:func:`categorical_draw`) and a continuous level-1
predictor (:func:`continuous_draw`): in closed form where it enters linearly, by
Metropolis–Hastings where it enters non-linearly (:func:`mh_draw`) or the outcome is a
count (:func:`count_outcome_draw`). Everything is vectorised over rows and clusters.

The linear predictors are in :mod:`mlimpute.sampler.compatible_eta`, the level-2 and
latent-mean draws in :mod:`mlimpute.sampler.compatible_level2`, the categorical draws in
:mod:`mlimpute.sampler.compatible_categorical`; this module holds the draws of a
continuous level-1 predictor and names them all.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_ndtr

from mlimpute.compatible import ProposalScale, conditional_moments, rw_step
from mlimpute.compatible.counts import count_loglik, count_residual, with_eta
from mlimpute.compatible.shift import shifted_moments
from mlimpute.sampler.compatible_categorical import (
    categorical_draw,
    fresh_utilities,
    latent_responses,
    nominal_utilities,
)
from mlimpute.sampler.compatible_context import (
    Current,
    Fixed,
    all_clusters,
    analysis_term,
    user_terms,
)
from mlimpute.sampler.compatible_eta import (
    RowDesign,
    _probit,
    eta_at,
    linear_predictor,
    outcome_term,
)
from mlimpute.sampler.compatible_level2 import (
    latent_mean_draw,
    latent_mean_owner_state,
    level2_draw,
)

__all__ = [
    "RowDesign",
    "proposal_key",
    "linear_predictor",
    "eta_at",
    "outcome_term",
    "all_clusters",
    "level2_draw",
    "latent_mean_owner_state",
    "latent_mean_draw",
    "categorical_draw",
    "latent_responses",
    "nominal_utilities",
    "fresh_utilities",
    "continuous_draw",
    "mh_draw",
    "count_outcome_draw",
]


def proposal_key(x: str) -> str:
    """Key of x's proposal scale ``(log s, adaptation steps)`` among the chain's states."""
    return f"(proposal) {x}"


def continuous_draw(rng, fx: Fixed, cur: Current, x: str, responses=None, shift=None, adapt=True):
    """Draw a continuous level-1 predictor's missing values: from the closed form of its
    own model, the models it predicts and the analysis model
    (:func:`mlimpute.compatible.conditional_moments`) where it enters linearly, else by
    :func:`mh_draw` or, under a count outcome, :func:`count_outcome_draw` (proposal scale
    tuned when ``adapt``). ``shift`` (``delta=``) draws ``x = x* + δ``; ``responses`` holds
    the unshifted columns of shifted models among x's users. Returns the draws and, for a
    Metropolis–Hastings draw, the acceptance rate and the proposal scale (else None)."""
    plan, values = fx.plan, cur.values
    rows = fx.mis_rows[x]
    d, model, st = fx.datas[x], plan.models[x], cur.states[x]
    d.refresh(values, plan.static)
    mu = linear_predictor(model, st, d, fx.n)[rows]
    terms = user_terms(fx, cur, x, rows, responses)
    extra = None
    if x in fx.mh:
        if fx.count_outcome:
            draw, rate = count_outcome_draw(rng, fx, cur, x, rows, mu, st.sigma2, terms, adapt)
        else:  # x = x* + δ: x's own mean moves by δ
            mu_x = mu if shift is None else mu + shift
            draw, rate = mh_draw(rng, fx, cur, x, rows, mu_x, st.sigma2, terms, adapt)
        extra = rate, np.exp(cur.states[proposal_key(x)][0])
    else:
        if x in fx.in_model:  # an auxiliary is not in the analysis model's likelihood
            terms = [analysis_term(rng, fx, cur, x, rows), *terms]
        if shift is None:
            m_, v_ = conditional_moments(mu, st.sigma2, terms)
        else:  # the draw of x = x* + δ, x* from its full conditional
            m_, v_ = shifted_moments(mu, st.sigma2, terms, shift)
        draw = m_ + np.sqrt(v_) * rng.standard_normal(rows.size)
    values[x][rows] = draw
    values.touch(x)
    return draw, extra


def mh_draw(rng, fx: Fixed, cur: Current, x: str, rows, mu, sigma2_x, terms, adapt):
    """x's missing values where it enters the analysis model non-linearly.

    Rows with the outcome missing: the analysis factor integrates to 1, so x's full
    conditional there is the closed form of its own model and the models it predicts.
    Rows with the outcome observed: one random-walk Metropolis–Hastings step per row
    (vectorised), target ``N(x; μ_x, σ_x²) · Π_m N(v_m; a_m + c_m x, σ_m²) ·
    N(y; η(x), σ_y²)``, proposal SD ``s·√(closed-form variance without the analysis
    term)``; s is tuned toward acceptance 0.44 when ``adapt`` (at every iteration, with the
    diminishing gain of :meth:`mlimpute.compatible.ProposalScale.adapted`). Returns the
    draws and the acceptance rate.
    """
    m_, v_, draw, act = _exact_where_unobserved(rng, fx, cur, x, rows, mu, sigma2_x, terms)
    if not act.any():
        return draw, np.nan
    rd, frame, yo = _outcome_rows(fx, cur, x)
    da, sa = fx.analysis_data, cur.analysis
    probit = _probit(sa)
    sign = np.where(yo > 0.5, 1.0, -1.0)
    mu_a, s2x = mu[act], sigma2_x
    lin = [
        (t.response[act], t.offset[act], np.broadcast_to(t.coef, act.shape)[act], t.sigma2)
        for t in terms
    ]

    def log_target(v: np.ndarray) -> np.ndarray:
        frame[x] = v
        eta = rd.eta(da, sa, frame)
        if probit:
            lik = log_ndtr(sign * eta)
        else:
            lik = -0.5 * (yo - eta) ** 2 / sa.sigma2
        out = -0.5 * (v - mu_a) ** 2 / s2x + lik
        for resp, off, c, s2 in lin:
            out = out - 0.5 * (resp - off - c * v) ** 2 / s2
        return np.where(np.isfinite(out), out, -np.inf)

    rate = _rw_move(rng, cur, x, draw, act, log_target, np.sqrt(v_[act]), adapt)
    return draw, rate


def count_outcome_draw(rng, fx: Fixed, cur: Current, x: str, rows, mu, sigma2_x, terms, adapt):
    """x's missing values under a count outcome (:mod:`mlimpute.compatible.counts`):
    exact normal draws on the rows with the outcome missing, one random-walk MH step per
    row where it is observed, target x's closed form times the count likelihood at
    ``η(x)`` (Poisson: plus the row's log-rate residual, held fixed; the moved log-rates
    are written to ``cur.analysis``). Returns the draws and the acceptance rate."""
    m_, v_, draw, act = _exact_where_unobserved(rng, fx, cur, x, rows, mu, sigma2_x, terms)
    if not act.any():
        return draw, np.nan
    rd, frame, yo = _outcome_rows(fx, cur, x)
    da, sa = fx.analysis_data, cur.analysis
    resid = count_residual(sa, rd, rd.eta(da, sa, frame))
    m_a, v_a = m_[act], v_[act]

    def log_target(v: np.ndarray) -> np.ndarray:
        frame[x] = v
        eta = rd.eta(da, sa, frame) + resid
        out = -0.5 * (v - m_a) ** 2 / v_a + count_loglik(sa, yo, eta)
        return np.where(np.isfinite(out), out, -np.inf)

    rate = _rw_move(rng, cur, x, draw, act, log_target, np.sqrt(v_a), adapt)
    frame[x] = draw[act]
    cur.analysis = with_eta(sa, rd, rd.eta(da, sa, frame) + resid)
    return draw, rate


def _exact_where_unobserved(rng, fx: Fixed, cur: Current, x: str, rows, mu, sigma2_x, terms):
    """x's closed-form moments on ``rows`` without the analysis model (own model and the
    models it predicts), x's current values there redrawn from them where the outcome is
    missing (its factor integrates to 1), and where it is observed."""
    m_, v_ = conditional_moments(mu, sigma2_x, terms)
    act = fx.y_obs_rows[rows]
    draw = cur.values[x][rows].copy()
    free = ~act
    draw[free] = m_[free] + np.sqrt(v_[free]) * rng.standard_normal(int(free.sum()))
    return m_, v_, draw, act


def _outcome_rows(fx: Fixed, cur: Current, x: str):
    """The analysis model's rows of x's missing values with the outcome observed: their
    design, their data at the current values and their outcomes."""
    rd = fx.row_designs[x]
    return rd, rd.frame(cur.values, fx.plan.static), cur.y_values[rd.rows]


def _rw_move(rng, cur: Current, x: str, draw, act, log_target, base_sd, adapt) -> float:
    """One random-walk Metropolis–Hastings step of ``draw[act]`` (in place) with x's
    proposal scale, tuned when ``adapt`` (:func:`mlimpute.compatible.rw_step`). Returns
    the acceptance rate."""
    key = proposal_key(x)
    scale = ProposalScale(*cur.states[key])
    new, scale, rate, _ = rw_step(rng, draw[act], log_target, scale, base_sd=base_sd, adapt=adapt)
    cur.states[key] = (scale.log_scale, scale.n_adapted)
    draw[act] = new
    return rate
