"""The draw of an incomplete count predictor in model-based imputation: an independence
Metropolis–Hastings step per row from its own count model, accepted with the ratio of the
analysis likelihood and of the models that use it (:mod:`mlimpute.compatible.counts`)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from mlimpute.compatible.counts import count_loglik, count_residual, is_count_state, with_eta
from mlimpute.models.counts import PoissonState
from mlimpute.models.counts_kernels import draw_nb, draw_poisson
from mlimpute.sampler.compatible_categorical import _completed_data, _log_lik, user_response
from mlimpute.sampler.compatible_context import Current, Fixed
from mlimpute.sampler.compatible_eta import RowDesign, linear_predictor

__all__ = ["count_predictor_draw"]


def count_predictor_draw(rng, fx: Fixed, cur: Current, x: str):
    """Draw a count predictor's missing values by an independence MH step per row
    (module docstring). Returns the draws (floats holding non-negative integers) and the
    acceptance rate; the analysis state's Poisson rows' η move with x (``cur.analysis``)."""
    plan, values, sa, da = fx.plan, cur.values, cur.analysis, fx.analysis_data
    rows = fx.mis_rows[x]
    st = cur.states[x]
    dx = _completed_data(fx, cur, x)
    lin = linear_predictor(plan.models[x], st, dx, fx.n)[rows]
    if isinstance(st, PoissonState):
        eta_prop = lin + np.sqrt(float(st.core.sigma2)) * rng.standard_normal(rows.size)
        prop = draw_poisson(rng, eta_prop).astype(np.float64)
    else:
        prop = draw_nb(rng, lin, st.r).astype(np.float64)
    cur_x = values[x][rows].copy()
    log_r = np.zeros(rows.size)
    act = fx.y_obs_rows[rows] if x in fx.in_model else np.zeros(rows.size, dtype=bool)
    rd = None
    if act.any():  # the analysis model's likelihood on the rows with the outcome observed
        rd = RowDesign(plan, da, rows[act])
        frame = rd.frame(values, plan.static)
        yo = cur.y_values[rows[act]]
        eta_cur = rd.eta(da, sa, frame)
        frame[x] = prop[act]
        eta_new = rd.eta(da, sa, frame)
        if is_count_state(sa):
            resid = count_residual(sa, rd, eta_cur)
            eta_cur, eta_new = eta_cur + resid, eta_new + resid
            ll = count_loglik(sa, yo, eta_new) - count_loglik(sa, yo, eta_cur)
        else:
            ll = _log_lik(sa, yo, eta_new) - _log_lik(sa, yo, eta_cur)
        log_r[act] += ll
    for p in fx.users[x]:  # the models that take x as a predictor, on every missing row
        dp = _completed_data(fx, cur, p)
        v = user_response(fx, cur, p, rows)
        rdp = RowDesign(plan, dp, rows)
        frame = rdp.frame(values, plan.static)
        before = _log_lik(cur.states[p], v, rdp.eta(dp, cur.states[p], frame))
        frame[x] = prop
        log_r += _log_lik(cur.states[p], v, rdp.eta(dp, cur.states[p], frame)) - before
    with np.errstate(invalid="ignore"):
        ok = np.log(rng.random(rows.size)) < log_r  # NaN: rejected
    draw = np.where(ok, prop, cur_x)
    values[x][rows] = draw
    values.touch(x)
    if isinstance(st, PoissonState):  # the accepted rows' log-rates come with their counts
        eta = st.eta.copy()
        eta[rows[ok]] = eta_prop[ok]
        cur.states[x] = replace(st, eta=eta)
    if rd is not None and isinstance(sa, PoissonState):
        frame = rd.frame(values, plan.static)
        cur.analysis = with_eta(sa, rd, rd.eta(da, sa, frame) + resid)
    rate = float(ok.mean()) if ok.size else np.nan
    return draw, rate
