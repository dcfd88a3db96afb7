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
   :mod:`mlimpute.sampler.compatible_draws`.
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
the few models and the few categories.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from mlimpute.codec import encode
from mlimpute.compatible import LinearTerm, conditional_moments
from mlimpute.compatible.counts import COUNT_PARAMS, count_outcome_mh
from mlimpute.compatible.shift import shifted_moments
from mlimpute.models.nominal import NominalState
from mlimpute.sampler.compatible_counts import count_predictor_draw
from mlimpute.sampler.compatible_draws import (
    RowDesign,
    all_clusters,
    categorical_draw,
    eta_at,
    fresh_utilities,
    latent_mean_draw,
    latent_mean_owner_state,
    latent_responses,
    level2_draw,
    linear_predictor,
    mh_draw,
    outcome_term,
    proposal_key,
)
from mlimpute.sampler.compatible_terms import (
    level3_draw,
    school_level,
    school_start,
    school_values,
    top_view,
)
from mlimpute.sampler.design import ClusterValues, Values
from mlimpute.sampler.ranefs import ranef_arrays
from mlimpute.spec.model import latent_means, model_based, nonlinear_predictors
from mlimpute.spec.model_counts import COUNT_PREDICTOR_METHODS

if TYPE_CHECKING:  # pragma: no cover
    from mlimpute.sampler.engine import Plan

__all__ = ["ANALYSIS", "MH_PARAMS", "extra_param_names", "run_compatible_chain"]

#: key of the analysis model's state among a chain's model states
ANALYSIS = "(analysis model)"

#: the models of categorical predictors (drawn exactly over their categories)
CATEGORICAL_METHODS = ("2l.bin", "2l.ordinal", "2l.nominal")

#: trace columns added to a predictor drawn by Metropolis–Hastings: the fraction of its
#: missing values (with the outcome observed) whose proposal was accepted at that
#: iteration, and the proposal scale s (tuned at every iteration with a diminishing gain)
MH_PARAMS = ("accept(MH)", "scale(MH)")


def mh_variables(plan: Plan) -> set[str]:
    """The imputed predictors whose missing values are drawn by Metropolis–Hastings."""
    if plan.spec.model is None:
        return set()
    key = (plan.spec.model, tuple(plan.names), getattr(plan.spec, "family", None))
    if key not in _MH_CACHE:  # parsing the terms costs ~3 ms: once per specification
        if len(_MH_CACHE) > 64:
            _MH_CACHE.clear()
        mh = nonlinear_predictors(plan.spec.model, plan.names) | _count_outcome_mh(plan.spec)
        _MH_CACHE[key] = frozenset(mh - count_predictors(plan.spec))
    return set(_MH_CACHE[key])


def _count_outcome_mh(spec) -> set[str]:
    """With a count outcome (``family=``): the continuous level-1 predictors in the
    analysis model, drawn by Metropolis–Hastings (:mod:`mlimpute.compatible.counts`)."""
    if getattr(spec, "family", None) is None:
        return set()
    y = spec.model.response
    return {
        v.name
        for v in spec.variables
        if v.method == "2l.norm" and v.level == 1 and v.name != y and v.name in spec.model.variables
    }


def count_predictors(spec) -> set[str]:
    """The incomplete count predictors (own count model, independence MH draws)."""
    if spec.model is None:
        return set()
    decided = model_based(spec)
    y = spec.model.response
    return {
        v.name
        for v in spec.variables
        if v.name != y and v.name in decided and v.method in COUNT_PREDICTOR_METHODS
    }


_MH_CACHE: dict = {}


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
    >>> r = np.random.default_rng(0)
    >>> df = pd.DataFrame({"g": np.repeat(range(20), 5), "x": r.normal(size=100)})
    >>> df["y"] = df.x + r.normal(size=100)
    >>> df.loc[::4, "x"] = np.nan
    >>> imp = mlimpute.impute(df, model="y ~ x + (1 + x | g)", m=2, iterations=5, rng=1)
    >>> int(imp.complete(1)["x"].isna().sum())
    0
    """
    spec = plan.spec
    names = plan.names
    y = spec.model.response
    decided = model_based(spec)
    preds = [n_ for n_ in names if n_ != y and n_ in decided]
    chained = [n_ for n_ in names if n_ != y and n_ not in decided]
    T = spec.iterations if T is None else T
    n = plan.layout.n
    values = Values(plan.layout, like=plan.like)
    level2 = {v.name for v in spec.variables if v.level == 2}
    level3 = school_level(plan)  # several terms: school-level variables (one row per school)
    codes, first = plan.layout.codes, plan.layout.segments.starts
    J = first.size
    latent = latent_means(spec)  # {"lmean(x)": "x"}
    for name in names:
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
    datas = {
        n_: all_clusters(plan.data[n_])
        if (n_ in level2 or n_ in level3) and n_ in decided
        else plan.data[n_].for_chain()
        for n_ in names
    }
    cview = ClusterValues(values, first, {})
    mis_clusters = {w: np.isnan(plan.start[w][first]) for w in level2}
    mis_clusters |= {s: np.isnan(school_values(plan, plan.start, s)) for s in level3}
    da = datas[y] if y in datas else plan.analysis.for_chain()
    ma = plan.analysis_model
    y_values = values[y] if y in values else encode(plan.static[y])
    y_obs_rows = ~np.isnan(plan.start[y]) if y in plan.start else np.ones(n, dtype=bool)
    # which earlier predictor models use each incomplete predictor
    users = {
        x: [p for p in preds[:k] if x in plan.spec.variables_by_name[p].formula.predictors]
        for k, x in enumerate(preds)
    }
    mis_rows = {x: plan.missing_rows(x) for x in names}
    states: dict[str, object] = {} if start is None else dict(start.states)
    sa = states.pop(ANALYSIS, None)
    done = 0 if start is None else start.iterations
    mean = np.empty((T, len(names)))
    sd = np.empty((T, len(names)))
    params = {n_: np.empty((T, len(plan.param_names(n_)))) for n_ in names}
    col = {n_: k for k, n_ in enumerate(names)}
    categorical = {
        v.name for v in spec.variables if v.name != y and v.method in CATEGORICAL_METHODS
    }
    counts = count_predictors(spec)
    mh = mh_variables(plan) - categorical - counts
    owners = set(latent.values())  # x of each lmean(x): its model is x = lmean(x) + e
    in_model = spec.model.variables
    extra = {x: np.full((T, len(MH_PARAMS)), np.nan) for x in mh}
    extra.update({x: np.full((T, len(COUNT_PARAMS)), np.nan) for x in counts})
    count_outcome = getattr(spec, "family", None) is not None
    row_designs = {x: RowDesign(plan, da, mis_rows[x][y_obs_rows[mis_rows[x]]]) for x in mh}
    for x in mh:
        states.setdefault(proposal_key(x), (float(np.log(2.4)), 0))
    # delta=: the chain carries the shifted values x = x* + δ (what the other models see);
    # x's own model sees x* (mlimpute.compatible.shift)
    if shifts is not None and start is None:
        shifts.shift_start(preds, values, mis_clusters)
    for t in range(T):
        it = done + t
        # 1. the analysis model on the rows with the outcome observed
        da.refresh(values, plan.static)
        sa = ma.init(rng, da) if it == 0 else ma.step(rng, sa, da)
        # 2. each predictor's model on its completed column
        for x in preds:
            d, model = datas[x], plan.models[x]
            if x in level3:
                d.refresh(top_view(plan, values), plan.top_static)
                yx = school_values(plan, values, x)
            elif x in level2:
                d.refresh(cview, plan.cluster_static)
                yx = values[x][first]
            else:
                d.refresh(values, plan.static)
                yx = values[x]
            if shifts is not None and x in shifts:  # x's own model: the unshifted x*
                yx = shifts.unshifted(x, values, first, mis_clusters.get(x))
                yx = yx[first] if x in level2 else yx
            if x in categorical or x in counts:  # fitted to the completed codes/counts
                d = replace(d, y_obs=yx)
                if shifts is not None and x in shifts.offset and it > 0:  # x* = z − δ
                    states[x] = shifts.probit_step(rng, x, states[x], d)
                    continue
                if it > 0 and isinstance(states[x], NominalState):  # new categories
                    states[x] = fresh_utilities(rng, plan, states[x], d, mis_rows[x])
                states[x] = model.init(rng, d) if it == 0 else model.step(rng, states[x], d)
                continue
            if x in owners and it > 0:  # x's model given lmean(x): after the loop
                continue
            if it == 0:
                states[x] = model.start(rng, d, yx)
            else:
                states[x] = model.gibbs(rng, states[x], d, yx)
        for xi_col, x in latent.items():
            states[x] = latent_mean_owner_state(rng, plan, x, xi_col, datas, states, values, cview)
        # 3. missing predictor values: closed form where linear, else Metropolis–Hastings
        for x in preds:
            resp = {}  # shifted predictors among x's users: their models' response is p*
            if shifts is not None:
                resp = shifts.responses(users[x], values, first, mis_clusters)
            if x in latent:
                draw = latent_mean_draw(
                    rng,
                    plan,
                    x,
                    latent[x],
                    datas,
                    states,
                    cview,
                    ma,
                    sa,
                    da,
                    values,
                    y_values,
                    y_obs_rows,
                    users[x],
                )
                mean[t, col[x]], sd[t, col[x]] = _mean_sd(draw)
                continue
            if x in level3:
                draw = level3_draw(
                    rng,
                    plan,
                    x,
                    x in in_model,
                    datas,
                    states,
                    users[x],
                    level2,
                    level3,
                    cview,
                    ma,
                    sa,
                    da,
                    values,
                    y_values,
                    y_obs_rows,
                    mis_clusters[x],
                )
                mean[t, col[x]], sd[t, col[x]] = _mean_sd(draw)
                continue
            if x in level2:
                for p in users[x]:  # binary/ordinal models: through their latent y*
                    if p in categorical:
                        resp[p] = latent_responses(rng, plan, p, datas, states, values)
                draw = level2_draw(
                    rng,
                    plan,
                    x,
                    x in in_model,
                    datas,
                    states,
                    users[x],
                    level2,
                    cview,
                    ma,
                    sa,
                    da,
                    values,
                    y_values,
                    y_obs_rows,
                    mis_clusters[x],
                    **_shift_args(shifts, x, resp),
                )
                mean[t, col[x]], sd[t, col[x]] = _mean_sd(draw)
                continue
            if x in counts:
                draw, rate, sa = count_predictor_draw(
                    rng,
                    plan,
                    x,
                    mis_rows[x],
                    datas,
                    states,
                    users[x],
                    categorical,
                    ma,
                    sa,
                    da,
                    values,
                    y_values,
                    y_obs_rows,
                    x in in_model,
                )
                extra[x][t] = rate
                mean[t, col[x]], sd[t, col[x]] = _mean_sd(draw)
                continue
            if x in categorical:
                draw, sa = categorical_draw(
                    rng,
                    plan,
                    x,
                    mis_rows[x],
                    datas,
                    states,
                    users[x],
                    categorical,
                    ma,
                    sa,
                    da,
                    values,
                    y_values,
                    y_obs_rows,
                    x in in_model,
                    return_state=True,
                    **({"responses": resp} if resp else {}),
                    **_offset_args(shifts, x),
                )
                mean[t, col[x]], sd[t, col[x]] = _mean_sd(draw)
                continue
            rows = mis_rows[x]
            d, model, st = datas[x], plan.models[x], states[x]
            d.refresh(values, plan.static)
            mu = linear_predictor(model, st, d, n)[rows]
            s_x = shifts.shift[x] if shifts is not None and x in shifts else None
            terms = []
            for p in users[x]:
                dp, mp = datas[p], plan.models[p]
                a, c = eta_at(mp, states[p], dp, values, plan.static, x, n)
                vp = resp.get(p, values[p])
                terms.append(LinearTerm(vp[rows], a[rows], c[rows], states[p].sigma2))
            if x in mh and count_outcome:
                draw, rate, sa = count_outcome_mh(
                    rng,
                    plan,
                    x,
                    rows,
                    mu,
                    st.sigma2,
                    terms,
                    sa,
                    da,
                    values,
                    y_values,
                    y_obs_rows,
                    row_designs[x],
                    states,
                    proposal_key(x),
                )
                extra[x][t] = rate, np.exp(states[proposal_key(x)][0])
            elif x in mh:
                draw, rate = mh_draw(
                    rng,
                    plan,
                    x,
                    rows,
                    mu if s_x is None else mu + s_x,  # x = x* + δ: x's own mean moves by δ
                    st.sigma2,
                    terms,
                    ma,
                    sa,
                    da,
                    values,
                    y_values,
                    y_obs_rows,
                    row_designs,
                    states,
                    adapt=True,  # diminishing gain: depends on the step count only
                )
                extra[x][t] = rate, np.exp(states[proposal_key(x)][0])
            else:
                if x in in_model:  # an auxiliary is not in the analysis model's likelihood
                    a, c = eta_at(ma, sa, da, values, plan.static, x, n)
                    ay = outcome_term(
                        rng, sa, y_values[rows], a[rows], c[rows], values[x][rows], y_obs_rows[rows]
                    )
                    terms = [ay, *terms]
                if s_x is None:
                    m_, v_ = conditional_moments(mu, st.sigma2, terms)
                else:  # the draw of x = x* + δ, x* from its full conditional
                    m_, v_ = shifted_moments(mu, st.sigma2, terms, s_x)
                draw = m_ + np.sqrt(v_) * rng.standard_normal(rows.size)
            values[x][rows] = draw
            values.touch(x)
            mean[t, col[x]], sd[t, col[x]] = _mean_sd(draw)
        # 4. missing outcomes from the analysis model
        da.refresh(values, plan.static)
        if y in datas:
            if shifts is None:
                draw = ma.draw_missing(rng, sa, da)
            else:  # the analysis model's parameters use the observed outcomes only
                draw = shifts.draw_missing(rng, y, ma, sa, da, da.mis_idx)
            values[y][da.mis_idx] = draw
            values.touch(y)  # cluster means of y (a chained model's predictors) are stale
            mean[t, col[y]], sd[t, col[y]] = _mean_sd(draw)
            params[y][t] = ma.param_vector(sa, da)
        # 5. the columns outside the analysis model: one chained step each
        for name in chained:
            draw = _chained_step(rng, plan, name, datas[name], states, values, level2, it, shifts)
            mean[t, col[name]], sd[t, col[name]] = _mean_sd(draw)
            params[name][t] = plan.models[name].param_vector(states[name], datas[name])
        for x in preds:
            cat = x in categorical or x in counts
            dx = replace(datas[x], y_obs=values[x]) if cat else datas[x]
            pv = plan.models[x].param_vector(states[x], dx)
            params[x][t] = np.concatenate([pv, extra[x][t]]) if x in extra else pv
    imputed = {n_: values[n_][mis_rows[n_]] for n_ in names}
    return imputed, mean, sd, params, {**states, ANALYSIS: sa}


def _chained_step(rng, plan, name, d, states, values, level2, it, shifts=None):
    """One chained-equations visit of a column outside the analysis model (its default
    model, conditional on every other column's current values), as the chained sampler
    makes it. Returns the draws."""

    model = plan.models[name]
    codes, first = plan.layout.codes, plan.layout.segments.starts
    if name in level2:
        d.refresh(
            ClusterValues(values, first, ranef_arrays(plan, name, states)), plan.cluster_static
        )
    else:
        d.refresh(values, plan.static)
    states[name] = model.init(rng, d) if it == 0 else model.step(rng, states[name], d)
    if shifts is None:
        draw = model.draw_missing(rng, states[name], d)
    else:  # delta=: as on the chained path (the model uses the observed values only)
        draw = shifts.draw_missing(rng, name, model, states[name], d, d.mis_idx)
    if name in level2:
        cv = values[name][first].copy()
        cv[d.mis_idx] = draw
        values[name][:] = np.take(cv, codes)
    else:
        values[name][d.mis_idx] = draw
    values.touch(name)
    return draw


def _shift_args(shifts, x, resp) -> dict:
    """Keyword arguments of a draw for the shifts: x's own mean moved by its shift, and
    the unshifted responses of the shifted models among x's users."""
    out = {}
    if shifts is not None and x in shifts:
        out["mu_shift"] = shifts.shift[x]
    if resp:
        out["responses"] = resp
    return out


def _offset_args(shifts, x) -> dict:
    """A shifted binary predictor's own linear predictor moves by its shift."""
    if shifts is not None and x in shifts.offset:
        return {"eta_shift": shifts.offset[x][1]}
    return {}


def _mean_sd(x: np.ndarray) -> tuple[float, float]:
    if x.size == 0:
        return np.nan, 0.0
    return float(x.mean()), float(x.std(ddof=1)) if x.size > 1 else 0.0
