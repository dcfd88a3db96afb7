"""The draw of an incomplete count predictor in model-based imputation: an independence
Metropolis–Hastings step per row from its own count model, accepted with the ratio of the
analysis likelihood and of the models that use it (:mod:`mlimpute.compatible.counts`)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from mlimpute.compatible.counts import count_loglik, count_residual, is_count_state, with_eta
from mlimpute.models.counts import PoissonState
from mlimpute.models.counts_kernels import draw_nb, draw_poisson
from mlimpute.sampler.compatible_draws import RowDesign, _log_lik, linear_predictor

__all__ = ["count_predictor_draw"]


def count_predictor_draw(
    rng,
    plan,
    x,
    rows,
    datas,
    states,
    users,
    categorical,
    ma,
    sa,
    da,
    values,
    y_values,
    y_obs_rows,
    in_model,
):
    """Draw a count predictor's missing values by an independence MH step per row
    (module docstring). Returns the draws (floats holding non-negative integers), the
    acceptance rate and the new analysis state (its Poisson rows' η moved with x)."""
    n = plan.layout.n
    st = states[x]
    dx = replace(datas[x], y_obs=values[x])
    dx.refresh(values, plan.static)
    lin = linear_predictor(plan.models[x], st, dx, n)[rows]
    if isinstance(st, PoissonState):
        eta_prop = lin + np.sqrt(float(st.core.sigma2)) * rng.standard_normal(rows.size)
        prop = draw_poisson(rng, eta_prop).astype(np.float64)
    else:
        prop = draw_nb(rng, lin, st.r).astype(np.float64)
    cur = values[x][rows].copy()
    log_r = np.zeros(rows.size)
    act = y_obs_rows[rows] if in_model else np.zeros(rows.size, dtype=bool)
    rd = None
    if act.any():  # the analysis model's likelihood on the rows with the outcome observed
        rd = RowDesign(plan, da, rows[act])
        frame = rd.frame(values, plan.static)
        yo = y_values[rows[act]]
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
    for p in users:  # the models that take x as a predictor, on every missing row
        dp = replace(datas[p], y_obs=values[p]) if p in categorical else datas[p]
        dp.refresh(values, plan.static)
        v = values[p][rows]
        if p in categorical and hasattr(states[p], "cuts"):  # ranks among the categories
            v = np.searchsorted(np.unique(values[p]), v).astype(np.float64)
        rdp = RowDesign(plan, dp, rows)
        frame = rdp.frame(values, plan.static)
        before = _log_lik(states[p], v, rdp.eta(dp, states[p], frame))
        frame[x] = prop
        log_r += _log_lik(states[p], v, rdp.eta(dp, states[p], frame)) - before
    with np.errstate(invalid="ignore"):
        ok = np.log(rng.random(rows.size)) < log_r  # NaN: rejected
    draw = np.where(ok, prop, cur)
    values[x][rows] = draw
    values.touch(x)
    if isinstance(st, PoissonState):  # the accepted rows' log-rates come with their counts
        eta = st.eta.copy()
        eta[rows[ok]] = eta_prop[ok]
        states[x] = replace(st, eta=eta)
    if rd is not None and isinstance(sa, PoissonState):
        frame = rd.frame(values, plan.static)
        sa = with_eta(sa, rd, rd.eta(da, sa, frame) + resid)
    rate = float(ok.mean()) if ok.size else np.nan
    return draw, rate, sa
