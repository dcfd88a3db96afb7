"""Model-based imputation with several random-effect terms: the school-level variables.

With three nested levels (pupils in classes in schools, :mod:`mlimpute.spec.model_terms`)
an incomplete predictor constant within schools is part of the chain's state on one row
per school (:attr:`Plan.top_segments <mlimpute.sampler.engine.Plan>`), its own model a
normal regression on school rows (``2lonly.norm``, conditional on the later school-level
predictors, the complete school-level columns and the school means ``cmean(c, school)``
of the complete lower-level columns, fixed columns of the plan's school rows). Its
missing school values are drawn
from the closed form (:func:`mlimpute.compatible.level2.grouped_moments`): its own model
times the analysis model on every pupil row of the school with the outcome observed,
times the level-1 models on every pupil row, the class-level models on every class row
and the school-level models in which it is a predictor. Everything else (level-1
predictors, class-level predictors, the analysis model's parameter step with a Gibbs
block per term) is the one-factor sampler's with multi-term models
(:class:`~mlimpute.models.ml_multi.MultiTermNorm`): their linear predictors, and hence
the ``a = η(x = 0)``, ``c = η(1) − η(0)`` of every closed-form draw, sum every term's
random effects and random slopes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mlimpute.compatible import LinearTerm
from mlimpute.compatible.level2 import grouped_moments
from mlimpute.sampler.compatible_context import (
    Current,
    Fixed,
    analysis_term,
    eta_in,
    set_cluster_values,
)
from mlimpute.sampler.compatible_eta import cluster_eta_at
from mlimpute.sampler.design import ClusterValues

if TYPE_CHECKING:  # pragma: no cover
    from mlimpute.sampler.engine import Plan

__all__ = ["school_level", "top_view", "school_start", "school_values", "level3_draw"]


def school_level(plan: Plan) -> set[str]:
    """The imputed variables constant within the enclosing level (drawn per school).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from mlimpute.sampler.engine import build_plan
    >>> from mlimpute.spec.model import build_model_spec
    >>> r = np.random.default_rng(0)
    >>> df = pd.DataFrame({"school": np.repeat(range(6), 10), "cls": np.repeat(range(12), 5),
    ...                    "x": r.normal(size=60), "s": np.repeat(r.normal(size=6), 10)})
    >>> df["y"] = df.x + df.s + r.normal(size=60)
    >>> df.loc[df.school == 2, "s"] = np.nan
    >>> spec = build_model_spec(df, "y ~ x + s + (1 | school/cls)", None, m=1, iterations=1)
    >>> plan = build_plan(df, spec)
    >>> school_level(plan)
    {'s'}
    >>> start = school_start(plan, np.random.default_rng(1), plan.start["s"])
    >>> int(np.isnan(start).sum()), school_values(plan, {"s": start}, "s").shape
    (0, (6,))
    """
    return {v.name for v in plan.spec.variables if v.level == 3}


def top_view(plan: Plan, values) -> ClusterValues:
    """The chain's values seen one row per school."""
    top = plan.top_segments
    return ClusterValues(values, top.starts, {}, top)


def school_start(plan: Plan, rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    """Start values of a school-level variable: one random draw of the observed school
    values per school with none, broadcast to the rows."""
    top = plan.top_segments
    cv = np.full(top.n_clusters, np.nan)
    obs = ~np.isnan(x)
    cv[top.codes[obs]] = x[obs]
    mis = np.isnan(cv)
    cv[mis] = rng.choice(cv[~mis], size=int(mis.sum()))
    return np.take(cv, top.codes)


def school_values(plan: Plan, values, name: str) -> np.ndarray:
    """One value per school of a school-level column."""
    return values[name][plan.top_segments.starts]


def level3_draw(rng, fx: Fixed, cur: Current, s: str):
    """Draw the missing school values of the school-level predictor s (module docstring).
    Returns the draws."""
    plan, values, states = fx.plan, cur.values, cur.states
    top = plan.top_segments
    S = top.n_clusters
    tview = top_view(plan, values)
    d, model, st = fx.datas[s], plan.models[s], states[s]
    d.refresh(tview, plan.top_static)
    mu = model.predict(st, d, "obs")
    rows, classes, schools = top.codes, top.codes[fx.first], np.arange(S)
    groups = []
    if s in fx.in_model:  # an auxiliary is not in the analysis model's likelihood
        groups.append((rows, analysis_term(rng, fx, cur, s)))
    for p in fx.users[s]:
        dp, mp, sp = fx.datas[p], plan.models[p], states[p]
        if p in fx.level3:
            a, c = cluster_eta_at(mp, sp, dp, tview, plan.top_static, s)
            groups.append((schools, LinearTerm(values[p][top.starts], a, c, sp.sigma2)))
        elif p in fx.level2:
            a, c = cluster_eta_at(mp, sp, dp, cur.cview, plan.cluster_static, s)
            groups.append((classes, LinearTerm(values[p][fx.first], a, c, sp.sigma2)))
        else:
            a, c = eta_in(fx, cur, p, s)
            groups.append((rows, LinearTerm(values[p], a, c, sp.sigma2)))
    m_, v_ = grouped_moments(S, mu, st.sigma2, groups)
    return set_cluster_values(rng, cur, s, m_, v_, fx.mis_clusters[s], top.starts, top.codes)
