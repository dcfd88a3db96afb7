"""One chain of model-based (analysis-model-compatible) imputation.

The specification (:mod:`mlimpute.spec.model`) factorises the joint distribution as the
analysis model f(y | x, z, b) times one normal random-intercept model p_k per incomplete
predictor x_k, conditional on the incomplete predictors after it and on the complete
predictors and auxiliaries. One Gibbs iteration:

1. **Analysis model parameters** (``2l.norm``'s step with the analysis formula) given the
   current completed predictors, on the rows where the outcome is observed. The missing
   outcomes are integrated out of this step and of step 3 (their factor integrates to 1)
   and drawn last, from the analysis model itself (step 4): a collapsed Gibbs sampler of
   (parameters, missing predictors) whose stationary law is the posterior, with the missing
   outcomes drawn from their exact conditional. Fitting to imputed outcomes instead would
   give the same law, but would couple the parameters to the previous iteration's draws and
   mix more slowly.
2. **Each predictor model's parameters** given its **completed** column (all rows): the
   predictor's missing values are part of the state, and they carry information (through
   the analysis model) that its observed rows alone do not.
3. **Missing values of each incomplete predictor**, in the order of the factorisation, from
   the closed-form full conditional (:func:`mlimpute.compatible.conditional_moments`): its
   own model's mean and variance, times every earlier predictor's model in which it is a
   predictor, times the analysis model where the outcome is observed. Each factor's
   ``a = η(x = 0)`` and ``c = η(1) − η(0)`` (:func:`mlimpute.compatible.affine_coefficients`)
   come from its linear predictor, random effects included, with the design's dynamic
   columns refreshed at x = 0 and x = 1 — valid because the specification admits only terms
   linear in each incomplete predictor.
4. **Missing outcomes** from the analysis model given the new predictors.

Everything is vectorised over rows and clusters; the Python loops run over iterations and
over the few models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mlimpute.compatible import LinearTerm, affine_coefficients, conditional_moments
from mlimpute.sampler.design import ModelData, Values

if TYPE_CHECKING:  # pragma: no cover
    from mlimpute.sampler.engine import Plan

__all__ = ["ANALYSIS", "run_compatible_chain"]

#: key of the analysis model's state among a chain's model states
ANALYSIS = "(analysis model)"


def _eta(model, state, d: ModelData, n: int) -> np.ndarray:
    """The linear predictor of every row (sorted order), random effects included."""
    out = np.empty(n)
    out[d.obs_idx] = model.predict(state, d, "obs")
    if d.n_mis:
        out[d.mis_idx] = model.predict(state, d, "mis")
    return out


def _eta_at(model, state, d, values: Values, static, x: str, n: int):
    """``a`` and ``c`` of ``d``'s linear predictor as an affine function of column x."""
    current = values[x]

    def eta(v: np.ndarray) -> np.ndarray:
        values[x] = v
        values.touch(x)
        d.refresh(values, static)
        return _eta(model, state, d, n)

    try:
        return affine_coefficients(eta, n)
    finally:
        values[x] = current
        values.touch(x)


def run_compatible_chain(plan: Plan, rng: np.random.Generator, T: int | None = None, start=None):
    """Run one model-based chain for ``T`` iterations (default ``plan.spec.iterations``),
    from random draws of the observed values or on from ``start`` (a
    :class:`~mlimpute.sampler.engine.ChainState`); returns ``(imputed, mean, sd, params,
    states)``: the first four as :class:`~mlimpute.sampler.engine.ChainResult` holds them,
    then the last model states (the analysis model's under :data:`ANALYSIS`).

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
    preds = [n_ for n_ in names if n_ != y]
    T = spec.iterations if T is None else T
    n = plan.layout.n
    values = Values(plan.layout, like=plan.like)
    for name in names:
        x = plan.start[name].copy()
        if start is not None:
            x[plan.missing_rows(name)] = start.imputed[name]
        else:
            mis = np.isnan(x)
            x[mis] = rng.choice(x[~mis], size=int(mis.sum()))
        values[name] = x
    datas = {n_: plan.data[n_].for_chain() for n_ in names}
    da = datas[y] if y in datas else plan.analysis.for_chain()
    ma = plan.analysis_model
    y_values = values[y] if y in values else plan.static[y].to_numpy(dtype=np.float64)
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
    for t in range(T):
        it = done + t
        # 1. the analysis model on the rows with the outcome observed
        da.refresh(values, plan.static)
        sa = ma.init(rng, da) if it == 0 else ma.step(rng, sa, da)
        # 2. each predictor's model on its completed column
        for x in preds:
            d, model = datas[x], plan.models[x]
            d.refresh(values, plan.static)
            if it == 0:
                states[x] = model.start(rng, d, values[x])
            else:
                states[x] = model.gibbs(rng, states[x], d, values[x])
        # 3. missing predictor values from their closed-form full conditionals
        for x in preds:
            rows = mis_rows[x]
            d, model, st = datas[x], plan.models[x], states[x]
            d.refresh(values, plan.static)
            mu = _eta(model, st, d, n)[rows]
            terms = []
            a, c = _eta_at(ma, sa, da, values, plan.static, x, n)
            terms.append(LinearTerm(y_values[rows], a[rows], c[rows], sa.sigma2, y_obs_rows[rows]))
            for p in users[x]:
                dp, mp = datas[p], plan.models[p]
                a, c = _eta_at(mp, states[p], dp, values, plan.static, x, n)
                terms.append(LinearTerm(values[p][rows], a[rows], c[rows], states[p].sigma2))
            m_, v_ = conditional_moments(mu, st.sigma2, terms)
            draw = m_ + np.sqrt(v_) * rng.standard_normal(rows.size)
            values[x][rows] = draw
            values.touch(x)
            mean[t, col[x]], sd[t, col[x]] = _mean_sd(draw)
        # 4. missing outcomes from the analysis model
        da.refresh(values, plan.static)
        if y in datas:
            draw = ma.draw_missing(rng, sa, da)
            values[y][da.mis_idx] = draw
            mean[t, col[y]], sd[t, col[y]] = _mean_sd(draw)
            params[y][t] = ma.param_vector(sa, da)
        for x in preds:
            params[x][t] = plan.models[x].param_vector(states[x], datas[x])
    imputed = {n_: values[n_][mis_rows[n_]] for n_ in names}
    return imputed, mean, sd, params, {**states, ANALYSIS: sa}


def _mean_sd(x: np.ndarray) -> tuple[float, float]:
    if x.size == 0:
        return np.nan, 0.0
    return float(x.mean()), float(x.std(ddof=1)) if x.size > 1 else 0.0
