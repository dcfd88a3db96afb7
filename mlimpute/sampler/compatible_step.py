"""The steps of one iteration of model-based imputation, one variable each.

For :func:`mlimpute.sampler.compatible.run_compatible_chain` (and, for the missing
values, the completion of new rows, :mod:`mlimpute.newdata.model`): a predictor model's
parameters given its completed column (:func:`parameter_step`), a predictor's missing
values by the draw of its kind (:func:`draw_predictor`), and a column outside the
analysis model by its own chained model (:func:`chained_step`). Each reads the run's
designs and the chain's current state (:mod:`mlimpute.sampler.compatible_context`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from mlimpute.models.nominal import NominalState
from mlimpute.sampler.compatible_context import Current, Fixed
from mlimpute.sampler.compatible_counts import count_predictor_draw
from mlimpute.sampler.compatible_draws import (
    categorical_draw,
    continuous_draw,
    fresh_utilities,
    latent_mean_draw,
    latent_responses,
    level2_draw,
)
from mlimpute.sampler.compatible_terms import level3_draw, school_values, top_view
from mlimpute.sampler.design import ClusterValues
from mlimpute.sampler.ranefs import ranef_arrays

__all__ = [
    "parameter_step",
    "predictor_response",
    "draw_predictor",
    "chained_step",
    "write_missing",
]


def parameter_step(rng, fx: Fixed, cur: Current, x: str, it: int, shifts=None) -> None:
    """Step 2 for predictor x at iteration ``it``: its model's parameters given its
    completed column (all rows, or one row per cluster or school), written to
    ``cur.states[x]``; a categorical or count model is fitted to the completed codes. With
    ``delta=`` x's own model sees the unshifted x*. The model of an ``lmean(x)`` owner is
    set from the latent means instead
    (:func:`~mlimpute.sampler.compatible_level2.latent_mean_owner_state`), after the first
    iteration."""
    plan, states = fx.plan, cur.states
    d, model = fx.datas[x], plan.models[x]
    yx = predictor_response(fx, cur, x, shifts)
    if x in fx.categorical or x in fx.counts:  # fitted to the completed codes/counts
        d = replace(d, y_obs=yx)
        if shifts is not None and x in shifts.offset and it > 0:  # x* = z − δ
            states[x] = shifts.probit_step(rng, x, states[x], d)
            return
        if it > 0 and isinstance(states[x], NominalState):  # new categories
            states[x] = fresh_utilities(rng, plan, states[x], d, fx.mis_rows[x])
        states[x] = model.init(rng, d) if it == 0 else model.step(rng, states[x], d)
        return
    if it > 0 and x in fx.latent.values():  # x's model given lmean(x): after the loop
        return
    states[x] = model.start(rng, d, yx) if it == 0 else model.gibbs(rng, states[x], d, yx)


def predictor_response(fx: Fixed, cur: Current, x: str, shifts=None) -> np.ndarray:
    """What :func:`parameter_step` fits x's model to: x's design refreshed from the
    chain's values, and x's completed column (one value per cluster or school at levels 2
    and 3; the unshifted x* with ``delta=``). No random numbers."""
    plan, values = fx.plan, cur.values
    d = fx.datas[x]
    if x in fx.level3:
        d.refresh(top_view(plan, values), plan.top_static)
        yx = school_values(plan, values, x)
    elif x in fx.level2:
        d.refresh(cur.cview, plan.cluster_static)
        yx = values[x][fx.first]
    else:
        d.refresh(values, plan.static)
        yx = values[x]
    if shifts is not None and x in shifts:  # x's own model: the unshifted x*
        yx = shifts.unshifted(x, values, fx.first, fx.mis_clusters.get(x))
        yx = yx[fx.first] if x in fx.level2 else yx
    return yx


def draw_predictor(rng, fx: Fixed, cur: Current, x: str, shifts=None, adapt=True):
    """Step 3 for predictor x: its missing values from their full conditional, by the
    draw of its kind (latent cluster mean, school-level, level-2, count, categorical or
    continuous level-1; :mod:`mlimpute.sampler.compatible_draws`), written to
    ``cur.values``. ``shifts`` are the chain's sensitivity shifts (``delta=``), ``adapt``
    tunes a Metropolis–Hastings proposal scale. Returns the draws and the trace columns
    added to x's parameters (None where it has none)."""
    resp = {}  # shifted predictors among x's users: their models' response is p*
    shift = None  # x = x* + δ: x's own mean moves by δ
    if shifts is not None:
        resp = shifts.responses(fx.users[x], cur.values, fx.first, fx.mis_clusters)
        shift = shifts.shift.get(x)
    if x in fx.latent:
        return latent_mean_draw(rng, fx, cur, x), None
    if x in fx.level3:
        return level3_draw(rng, fx, cur, x), None
    if x in fx.level2:
        for p in fx.users[x]:  # binary/ordinal models: through their latent y*
            if p in fx.categorical:
                resp[p] = latent_responses(rng, fx, cur, p)
        return level2_draw(rng, fx, cur, x, shift, resp or None), None
    if x in fx.counts:
        return count_predictor_draw(rng, fx, cur, x)
    if x in fx.categorical:
        eta_shift = None
        if shifts is not None and x in shifts.offset:  # on the latent scale
            eta_shift = shifts.offset[x][1]
        return categorical_draw(rng, fx, cur, x, resp or None, eta_shift), None
    return continuous_draw(rng, fx, cur, x, resp, shift, adapt)


def chained_step(rng, fx: Fixed, cur: Current, name: str, it: int, shifts=None):
    """Step 5 for a column outside the analysis model: one chained-equations visit (its
    default model, conditional on every other column's current values), as the chained
    sampler makes it. Returns the draws."""
    plan, states = fx.plan, cur.states
    model, d = plan.models[name], fx.datas[name]
    if name in fx.level2:
        ranefs = ranef_arrays(plan, name, states)
        d.refresh(ClusterValues(cur.values, fx.first, ranefs), plan.cluster_static)
    else:
        d.refresh(cur.values, plan.static)
    states[name] = model.init(rng, d) if it == 0 else model.step(rng, states[name], d)
    if shifts is None:
        draw = model.draw_missing(rng, states[name], d)
    else:  # delta=: as on the chained path (the model uses the observed values only)
        draw = shifts.draw_missing(rng, name, model, states[name], d, d.mis_idx)
    write_missing(fx, cur, name, d.mis_idx, draw)
    return draw


def write_missing(fx: Fixed, cur: Current, name: str, idx: np.ndarray, draw) -> None:
    """Write the draws of a chained model's missing entries ``idx`` (rows, or clusters for
    a level-2 column: to every row of the cluster) to ``cur.values``."""
    values = cur.values
    if name in fx.level2:
        cv = values[name][fx.first].copy()
        cv[idx] = draw
        values[name][:] = np.take(cv, fx.plan.layout.codes)
    else:
        values[name][idx] = draw
    values.touch(name)
