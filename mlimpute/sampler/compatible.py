"""One chain of model-based (analysis-model-compatible) imputation.

The specification (:mod:`mlimpute.spec.model`) factorises the joint distribution as the
analysis model f(y | x, z, b) (normal, or probit for a binary outcome) times one model p_k
per incomplete predictor or auxiliary x_k, conditional on those after it and on the
complete predictors and auxiliaries: continuous level-1 predictors (``2l.norm``), then
binary/ordinal ones (latent probit ``2l.bin``/``2l.ordinal``), then level-2 ones on one row
per cluster (``2lonly.norm``). One Gibbs iteration:

1. **Analysis model parameters** given the current completed predictors, on the rows
   where the outcome is observed. The missing outcomes are integrated out of this step and
   of step 3 (their factor integrates to 1) and drawn last, from the analysis model itself
   (step 4): a collapsed Gibbs sampler of (parameters, missing predictors) whose
   stationary law is the posterior, with the missing outcomes drawn from their exact
   conditional.
2. **Each predictor model's parameters** given its **completed** column (all rows, or all
   clusters): the predictor's missing values are part of the state, and they carry
   information (through the analysis model) that its observed rows alone do not.
3. **Missing values of each incomplete predictor**, in the order of the factorisation,
   from its full conditional: its own model times every earlier model in which it is a
   predictor times the analysis model where the outcome is observed (a probit outcome
   through its latent y*, drawn afresh). In closed form where it enters linearly
   (:func:`mlimpute.compatible.conditional_moments`; each factor's ``a = η(x = 0)`` and
   ``c = η(1) − η(0)`` from its linear predictor, random effects included); for a level-2
   predictor summed over every row of its cluster
   (:func:`mlimpute.compatible.level2_moments`); exactly over the categories for a
   binary/ordinal predictor (:mod:`mlimpute.compatible.categorical`); by one vectorised
   random-walk Metropolis–Hastings step per row where it enters non-linearly
   (``I(x**2)``, ``log(x)``...; the proposal scale tuned at every iteration by a
   Robbins–Monro recursion whose gain depends only on the iteration index, its state
   carried with the chain so that a continued chain equals a longer one bit for bit;
   acceptance rate and scale traced as ``accept(MH)``, ``scale(MH)``). The draws are in
   :mod:`mlimpute.sampler.compatible_draws`, one step per variable in
   :mod:`mlimpute.sampler.compatible_step`; every draw reads the run's designs and the
   chain's current state (:mod:`mlimpute.sampler.compatible_context`).
   A latent cluster mean ``lmean(x)`` (a level-2 column that is never observed) is the
   random intercept of x's model ``x_ij = ξ_j + e_ij``: its own model (``lmean(x) ~``
   level-2 columns) is fitted to the drawn ξ in step 2, x's model is set from it
   (:func:`~mlimpute.sampler.compatible_draws.latent_mean_owner_state`: linear predictor
   ξ_j, σ_x² drawn given x − ξ), and in step 3 every ξ_j is drawn from its closed form
   with x's rows and the analysis model's rows of the cluster
   (:func:`~mlimpute.sampler.compatible_draws.latent_mean_draw`).
4. **Missing outcomes** from the analysis model given the new predictors.

With several random-effect terms (:mod:`mlimpute.spec.model_terms`) the analysis model
and the predictors' models are the multi-term models (a Gibbs block per term), whose
linear predictors, and hence every ``a`` and ``c``, sum every term's random effects;
school-level predictors are drawn per school
(:mod:`mlimpute.sampler.compatible_terms`).
With a count outcome (``family=``) the analysis model is the count model ``2l.poisson`` or
``2l.nb`` (its step in 1., its draws in 4.); continuous predictors in it are drawn by
Metropolis–Hastings and count predictors by an independence Metropolis–Hastings step from
their own count model (:mod:`mlimpute.compatible.counts`,
:mod:`mlimpute.sampler.compatible_counts`).

Everything is vectorised over rows and clusters; the Python loops run over iterations,
the few models and the few categories. The chains of one data set can run in lockstep,
their analysis models' steps stacked (:mod:`mlimpute.sampler.compatible_block`), with
the same numbers as here.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from mlimpute.compatible.counts import COUNT_PARAMS
from mlimpute.sampler.compatible_context import (
    Current,
    Fixed,
    build_context,
    count_predictors,
    mh_variables,
)
from mlimpute.sampler.compatible_draws import latent_mean_owner_state, proposal_key
from mlimpute.sampler.compatible_step import chained_step, draw_predictor, parameter_step
from mlimpute.sampler.compatible_terms import school_level, school_start, school_values
from mlimpute.sampler.design import Values
from mlimpute.sampler.trace_stats import mean_sd as _mean_sd
from mlimpute.spec.model import latent_means

if TYPE_CHECKING:  # pragma: no cover
    from mlimpute.sampler.engine import Plan

__all__ = [
    "ANALYSIS",
    "CompatibleChain",
    "MH_PARAMS",
    "extra_param_names",
    "run_compatible_chain",
]

#: key of the analysis model's state among a chain's model states
ANALYSIS = "(analysis model)"

#: trace columns added to a predictor drawn by Metropolis–Hastings: the fraction of its
#: missing values (with the outcome observed) whose proposal was accepted at that
#: iteration, and the proposal scale s (tuned at every iteration with a diminishing gain)
MH_PARAMS = ("accept(MH)", "scale(MH)")


def extra_param_names(plan: Plan, name: str) -> list[str]:
    """Trace columns the model-based sampler adds to ``name``'s parameters
    (:data:`MH_PARAMS` for a predictor drawn by Metropolis–Hastings,
    :data:`~mlimpute.compatible.counts.COUNT_PARAMS` for a count predictor)."""
    if name in count_predictors(plan.spec):
        return list(COUNT_PARAMS)
    return list(MH_PARAMS) if name in mh_variables(plan) else []


def run_compatible_chain(
    plan: Plan, rng: np.random.Generator, T: int | None = None, start=None, shifts=None
):
    """Run one model-based chain for ``T`` iterations (default ``plan.spec.iterations``),
    from random draws of the observed values or on from ``start`` (a
    :class:`~mlimpute.sampler.engine.ChainState`); returns ``(imputed, mean, sd, params,
    states)``: the first four as :class:`~mlimpute.sampler.engine.ChainResult` holds them,
    then the last model states (the analysis model's under :data:`ANALYSIS`). ``shifts``
    (a :class:`~mlimpute.sampler.shifts.ModelShifts`, with ``delta=``) are the chain's
    sensitivity shifts.

    Examples
    --------
    >>> import numpy as np, pandas as pd, mlimpute
    >>> r = np.random.default_rng(1)
    >>> df = pd.DataFrame({"g": np.repeat(range(30), 4), "x": r.normal(size=120)})
    >>> df["y"] = df.x + 0.5 * df.x**2 + r.normal(size=120)
    >>> df.loc[::5, "x"] = np.nan
    >>> imp = mlimpute.impute(df, model="y ~ x + I(x**2) + (1 | g)", m=1, iterations=5, rng=1)
    >>> int(imp.complete(1)["x"].isna().sum()), imp.spec.variables_by_name["x"].method
    (0, '2l.norm')
    """
    chain = CompatibleChain(plan, rng, T, start, shifts)
    for t in range(chain.T):
        chain.refresh_analysis()
        chain.analysis_step(t)
        chain.rest_of_iteration(t)
    return chain.result()


class CompatibleChain:
    """One model-based chain's state between its iterations, for
    :func:`run_compatible_chain` (which runs the steps in order) and for a block of
    chains stepped together (:mod:`mlimpute.sampler.compatible_block`), which makes the
    analysis model's step of every chain, and those of some predictors' models, by one
    call and the rest chain by chain: each chain draws the same numbers, in the same
    order, from its own generator.

    One iteration ``t`` is :meth:`refresh_analysis`, :meth:`analysis_step` (step 1) and
    :meth:`rest_of_iteration` (steps 2-5: :meth:`parameter_step` for each predictor, then
    :meth:`after_parameters`); :meth:`result` returns what :func:`run_compatible_chain`
    returns.
    """

    def __init__(
        self, plan: Plan, rng: np.random.Generator, T: int | None = None, start=None, shifts=None
    ) -> None:
        spec = plan.spec
        names = plan.names
        self.plan, self.rng, self.shifts = plan, rng, shifts
        self.y = spec.model.response
        self.T = T = spec.iterations if T is None else T
        values = _start_values(plan, rng, start)
        first = plan.layout.segments.starts
        level2 = {v.name for v in spec.variables if v.level == 2}
        mis_clusters = {w: np.isnan(plan.start[w][first]) for w in level2}
        mis_clusters |= {
            s: np.isnan(school_values(plan, plan.start, s)) for s in school_level(plan)
        }
        states: dict[str, object] = {} if start is None else dict(start.states)
        sa = states.pop(ANALYSIS, None)
        fx, cur = build_context(plan, values, states, sa, mis_clusters)
        self.fx, self.cur, self.values, self.states = fx, cur, values, states
        self.done = 0 if start is None else start.iterations
        self.mean = np.empty((T, len(names)))
        self.sd = np.empty((T, len(names)))
        self.params = {n_: np.empty((T, len(plan.param_names(n_)))) for n_ in names}
        self.col = {n_: k for k, n_ in enumerate(names)}
        extra = {x: np.full((T, len(MH_PARAMS)), np.nan) for x in fx.mh}
        extra.update({x: np.full((T, len(COUNT_PARAMS)), np.nan) for x in fx.counts})
        self.extra = extra
        for x in fx.mh:
            states.setdefault(proposal_key(x), (float(np.log(2.4)), 0))
        # delta=: the chain carries the shifted values x = x* + δ (what the other models
        # see); x's own model sees x* (mlimpute.compatible.shift)
        if shifts is not None and start is None:
            shifts.shift_start(fx.preds, values, mis_clusters)

    def refresh_analysis(self) -> None:
        """The analysis model's design from the chain's current values (before step 1)."""
        self.fx.analysis_data.refresh(self.values, self.plan.static)

    def analysis_step(self, t: int) -> None:
        """Step 1 at iteration ``t``: the analysis model on the rows with the outcome
        observed (its start at the chain's first iteration)."""
        fx, cur = self.fx, self.cur
        ma, da = fx.analysis_model, fx.analysis_data
        it = self.done + t
        cur.analysis = ma.init(self.rng, da) if it == 0 else ma.step(self.rng, cur.analysis, da)

    def rest_of_iteration(self, t: int) -> None:
        """Steps 2-5 of iteration ``t`` (after :meth:`analysis_step`), and its traces."""
        for x in self.fx.preds:
            self.parameter_step(t, x)
        self.after_parameters(t)

    def parameter_step(self, t: int, x: str) -> None:
        """Step 2 for predictor x at iteration ``t``: its model on its completed column."""
        parameter_step(self.rng, self.fx, self.cur, x, self.done + t, self.shifts)

    def after_parameters(self, t: int) -> None:
        """Iteration ``t`` after every predictor's :meth:`parameter_step`: the latent
        cluster means' owners, steps 3-5 and the traces."""
        rng, fx, cur, shifts = self.rng, self.fx, self.cur, self.shifts
        plan, values, states, y = self.plan, self.values, self.states, self.y
        mean, sd, params, col, extra = self.mean, self.sd, self.params, self.col, self.extra
        ma, da = fx.analysis_model, fx.analysis_data
        it = self.done + t
        for xi_col, x in fx.latent.items():
            states[x] = latent_mean_owner_state(rng, fx, cur, xi_col)
        # 3. missing predictor values: closed form where linear, else Metropolis–Hastings
        for x in fx.preds:
            draw, trace = draw_predictor(rng, fx, cur, x, shifts)
            if trace is not None:
                extra[x][t] = trace
            mean[t, col[x]], sd[t, col[x]] = _mean_sd(draw)
        # 4. missing outcomes from the analysis model
        da.refresh(values, plan.static)
        if y in fx.datas:
            if shifts is None:
                draw = ma.draw_missing(rng, cur.analysis, da)
            else:  # the analysis model's parameters use the observed outcomes only
                draw = shifts.draw_missing(rng, y, ma, cur.analysis, da, da.mis_idx)
            values[y][da.mis_idx] = draw
            values.touch(y)  # cluster means of y (a chained model's predictors) are stale
            mean[t, col[y]], sd[t, col[y]] = _mean_sd(draw)
            params[y][t] = ma.param_vector(cur.analysis, da)
        # 5. the columns outside the analysis model: one chained step each
        for name in fx.chained:
            draw = chained_step(rng, fx, cur, name, it, shifts)
            mean[t, col[name]], sd[t, col[name]] = _mean_sd(draw)
            params[name][t] = plan.models[name].param_vector(states[name], fx.datas[name])
        for x in fx.preds:
            pv = _param_vector(fx, cur, x)
            params[x][t] = np.concatenate([pv, extra[x][t]]) if x in extra else pv

    def result(self):
        """``(imputed, mean, sd, params, states)`` as :func:`run_compatible_chain`
        returns them."""
        fx = self.fx
        imputed = {n_: self.values[n_][fx.mis_rows[n_]] for n_ in self.plan.names}
        states = {**self.states, ANALYSIS: self.cur.analysis}
        return imputed, self.mean, self.sd, self.params, states


def _start_values(plan: Plan, rng: np.random.Generator, start) -> Values:
    """The chain's completed columns at its start: a continued chain's (``start``), else
    random draws of the observed values (one per cluster at level 2, one per school at
    level 3; a latent cluster mean starts at its column's cluster means)."""
    spec = plan.spec
    values = Values(plan.layout, like=plan.like)
    level2 = {v.name for v in spec.variables if v.level == 2}
    level3 = school_level(plan)  # several terms: school-level variables (one row per school)
    codes, J = plan.layout.codes, plan.layout.segments.n_clusters
    latent = latent_means(spec)  # {"lmean(x)": "x"}
    for name in plan.names:
        x = plan.start[name].copy()
        if start is not None:
            x[plan.missing_rows(name)] = start.imputed[name]
        elif name in latent:  # the cluster means of x's start values (no random call)
            x = plan.layout.cluster_mean(values[latent[name]])
        elif name in level3:  # one draw per school
            x = school_start(plan, rng, x)
        elif name in level2:  # one draw per cluster
            cv = np.full(J, np.nan)
            cv[codes[~np.isnan(x)]] = x[~np.isnan(x)]
            mis = np.isnan(cv)
            cv[mis] = rng.choice(cv[~mis], size=int(mis.sum()))
            x = np.take(cv, codes)
        else:
            mis = np.isnan(x)
            x[mis] = rng.choice(x[~mis], size=int(mis.sum()))
        values[name] = x
    return values


def _param_vector(fx: Fixed, cur: Current, x: str) -> np.ndarray:
    """Predictor x's traced parameters (a categorical or count model's with the
    completed codes as its response)."""
    d = fx.datas[x]
    if x in fx.categorical or x in fx.counts:
        d = replace(d, y_obs=cur.values[x])
    return fx.plan.models[x].param_vector(cur.states[x], d)
