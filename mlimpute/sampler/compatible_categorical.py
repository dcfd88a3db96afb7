"""The exact draws of categorical predictors in model-based imputation.

A binary, ordinal or nominal predictor's missing values are drawn over its categories
(:func:`categorical_draw`); the latent responses of binary and ordinal models
(:func:`latent_responses`) and the utilities of the nominal model
(:func:`nominal_utilities`, :func:`fresh_utilities`) go with them. For
:mod:`mlimpute.sampler.compatible_draws`; vectorised over rows (loops run over the few
categories).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
from scipy.special import log_ndtr

from mlimpute.codec import decode
from mlimpute.compatible.categorical import (
    category_log_prob,
    draw_categories,
    draw_nominal_utilities,
    log_interval,
    nominal_log_prob,
)
from mlimpute.compatible.counts import count_loglik, count_residual, is_count_state, with_eta
from mlimpute.models._latent import linear_core, truncnorm, truncnorm_sign
from mlimpute.models.binary import ProbitState
from mlimpute.models.nominal import NominalState
from mlimpute.models.ordinal import OrderedState
from mlimpute.sampler.compatible_context import Current, Fixed
from mlimpute.sampler.compatible_eta import RowDesign, linear_predictor
from mlimpute.sampler.design import ModelData

__all__ = [
    "categorical_draw",
    "latent_responses",
    "user_response",
    "nominal_utilities",
    "fresh_utilities",
]


def _log_lik(state, v: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Log-likelihood of responses v at linear predictor η under a model's state: normal,
    probit (v in {0, 1}) or ordered probit (v the ranks of the codes among the present
    categories)."""
    if isinstance(state, OrderedState):
        return category_log_prob_rows(eta, state.cuts, v)
    if isinstance(state, ProbitState):
        return log_ndtr(np.where(v > 0.5, eta, -eta))
    return -0.5 * (v - eta) ** 2 / state.sigma2


def category_log_prob_rows(eta, cuts, codes):
    """``log P(x = k)`` per row under an ordered probit (k the rank 0..K−1 of the code)."""
    bounds = np.r_[-np.inf, cuts, np.inf]
    k = codes.astype(np.intp)
    return log_interval(bounds[k] - eta, bounds[k + 1] - eta)


def categorical_draw(rng, fx: Fixed, cur: Current, x: str, responses=None, eta_shift=None):
    """Draw a binary, ordinal or nominal predictor's missing values exactly over its
    categories (:mod:`mlimpute.compatible.categorical`): its own latent model's category
    probability (for a nominal x the multinomial probit's,
    :func:`~mlimpute.compatible.categorical.nominal_log_prob`),
    the analysis model where y is observed and the earlier predictor models that use it,
    each evaluated at every category; one category per row. Returns the draws (codes).
    ``responses`` holds the unshifted columns ``p*`` of the shifted models among x's
    users (``delta=``, :mod:`mlimpute.compatible.shift`); ``eta_shift`` moves a
    binary x's own linear predictor on the rows (a shift on the latent scale).

    With a count analysis model its factor is the count likelihood (a Poisson one at
    ``η(x) + e`` with the rows' log-rate residuals e held fixed, the moved log-rates
    written to ``cur.analysis``: :mod:`mlimpute.compatible.counts`)."""
    plan, values, states, sa = fx.plan, cur.values, cur.states, cur.analysis
    da, rows = fx.analysis_data, fx.mis_rows[x]
    st = states[x]
    dx = _completed_data(fx, cur, x)
    levels = np.unique(values[x])
    if isinstance(st, NominalState):  # one utility per non-reference category
        own = nominal_log_prob(nominal_utilities(st, dx, fx.n)[rows])
    else:
        eta_x = linear_predictor(plan.models[x], st, dx, fx.n)[rows]
        if eta_shift is not None:
            eta_x = eta_x + eta_shift
    cuts = st.cuts if isinstance(st, OrderedState) else np.zeros(1)
    act = fx.y_obs_rows[rows] if x in fx.in_model else np.zeros(rows.size, dtype=bool)
    K = levels.size
    log_p = np.empty((rows.size, K))
    for k in range(K):  # the few categories, never rows
        log_p[:, k] = (
            own[:, k] if isinstance(st, NominalState) else category_log_prob(eta_x, cuts, k)
        )
    designs = [(da, sa, cur.y_values[rows[act]], act)]
    for p in fx.users[x]:
        dp = _completed_data(fx, cur, p)
        designs.append((dp, states[p], user_response(fx, cur, p, rows, responses), None))
    count = is_count_state(sa) and act.any()
    if count:  # the analysis rows' log-rate residuals e, held fixed while x moves
        rd0 = RowDesign(plan, da, rows[act])
        resid = count_residual(sa, rd0, rd0.eta(da, sa, rd0.frame(values, plan.static)))
    for i, (d, state, v, mask) in enumerate(designs):  # every category in one evaluation
        sub = rows if mask is None else rows[mask]
        if sub.size == 0:
            continue
        rd = RowDesign(plan, d, np.tile(sub, K))  # the rows once per category
        frame = rd.frame(values, plan.static)
        # every category on the rows, decoded once: a pandas Categorical keeps its categories
        # (as plain numbers, categories 1 < 2 < 3 would be read by formulaic as a number)
        cand = np.repeat(levels, sub.size)
        lab = decode(cand, plan.like[x]) if x in plan.like else cand
        frame[x] = lab.array if isinstance(lab, pd.Series) else lab
        eta = rd.eta(d, state, frame)
        if i == 0 and count:
            ll = count_loglik(state, np.tile(v, K), eta + np.tile(resid, K))
        else:
            ll = _log_lik(state, np.tile(v, K), eta)
        ll = ll.reshape(K, sub.size).T
        if mask is None:
            log_p = log_p + ll
        else:
            log_p[mask] = log_p[mask] + ll
    draw = levels[draw_categories(rng, log_p)]
    values[x][rows] = draw
    values.touch(x)
    if count:  # the analysis rows' log-rates move with x (e fixed)
        eta = rd0.eta(da, sa, rd0.frame(values, plan.static))
        cur.analysis = with_eta(sa, rd0, eta + resid)
    return draw


def _completed_data(fx: Fixed, cur: Current, p: str):
    """p's design refreshed at the current values, with the completed column as its
    response when p is categorical or a count (its model is fitted to the codes)."""
    d = fx.datas[p]
    if p in fx.categorical or p in fx.counts:
        d = replace(d, y_obs=cur.values[p])
    d.refresh(cur.values, fx.plan.static)
    return d


def user_response(fx: Fixed, cur: Current, p: str, rows, responses=None) -> np.ndarray:
    """The response of p's model (a model that takes the predictor being drawn) on
    ``rows``: its current column (or ``responses[p]``), an ordinal one as the ranks of
    its codes among the present categories (as :func:`_log_lik` reads them)."""
    v = (responses or {}).get(p, cur.values[p])[rows]
    if isinstance(cur.states[p], OrderedState):  # codes ranked among the present categories
        v = np.searchsorted(np.unique(cur.values[p]), v).astype(np.float64)
    return v


def latent_responses(rng, fx: Fixed, cur: Current, p: str) -> np.ndarray:
    """Fresh latent responses ``y* ~ N(η, 1)`` of a binary or ordinal predictor's model,
    truncated to the interval of each row's current category (Albert & Chib 1993), every
    row (sorted order).

    Given y* the model is a normal term linear in its predictors, so a level-2 predictor
    that it takes keeps its closed-form draw: drawing y* given the categories and then the
    level-2 values given y* leaves their full conditional given the categories invariant
    (data augmentation; y* is discarded afterwards, and the model's own step draws its
    latent values afresh)."""
    st = cur.states[p]
    d = _completed_data(fx, cur, p)
    eta = linear_predictor(fx.plan.models[p], st, d, fx.n)
    v = cur.values[p]
    if isinstance(st, OrderedState):
        rank = np.searchsorted(np.unique(v), v)
        bounds = np.r_[-np.inf, st.cuts, np.inf]
        return truncnorm(rng, eta, bounds[rank], bounds[rank + 1])
    return truncnorm_sign(rng, eta, v > 0.5)


def nominal_utilities(state: NominalState, d: ModelData, n: int) -> np.ndarray:
    """The multinomial probit's linear predictors of every row (sorted order), one column
    per non-reference category, random effects included."""
    core = linear_core(d)
    out = np.empty((n, len(state.cores)))
    for k, c in enumerate(state.cores):  # the few categories
        out[d.obs_idx, k] = core.predict(c, d, "obs")
        if d.n_mis:
            out[d.mis_idx, k] = core.predict(c, d, "mis")
    return out


def fresh_utilities(rng, plan, state: NominalState, d: ModelData, rows: np.ndarray):
    """``state`` with the utilities of ``rows`` (a nominal predictor's missing rows) drawn
    exactly given their current categories
    (:func:`~mlimpute.compatible.categorical.draw_nominal_utilities`): their categories
    were redrawn with the utilities integrated out, so the model's next Gibbs sweep starts
    from the utilities' exact conditional."""
    eta = nominal_utilities(state, d, plan.layout.n)[rows]
    _, rank = np.unique(d.y_obs, return_inverse=True)
    W = state.latent.copy()
    W[rows] = draw_nominal_utilities(rng, eta, rank[rows])
    return replace(state, latent=W)
