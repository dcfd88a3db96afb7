"""What the draws of a model-based chain read: the run's designs and the chain's state.

A model-based chain (:func:`mlimpute.sampler.compatible.run_compatible_chain`) and the
completion of new rows after it (:mod:`mlimpute.newdata.model`) make the same draws
(:mod:`mlimpute.sampler.compatible_draws`), and every draw reads the same things. They
come in two objects:

* :class:`Fixed`: what stays the same for the whole run — the plan, every model's design
  (a level-2 predictor's over every cluster, :func:`all_clusters`), the analysis model
  and its data, where the outcome is observed, the missing rows and clusters, which
  earlier models take each predictor, and how each predictor is drawn;
* :class:`Current`: what the chain's steps change — the completed values, every model's
  state and the analysis model's state.

:func:`build_context` makes both. The functions below read them: a model's linear
predictor as an affine function of one column (:func:`eta_in`), the analysis model's
factor as a term linear in a predictor (:func:`analysis_term`), the factors of the models
that take a level-1 predictor (:func:`user_terms`), and the write-back of one value drawn
per cluster (:func:`set_cluster_values`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from mlimpute.codec import encode
from mlimpute.compatible import LinearTerm
from mlimpute.models.segments import Segments
from mlimpute.sampler.compatible_eta import RowDesign, eta_at, outcome_term
from mlimpute.sampler.design import ClusterValues, ModelData, Values
from mlimpute.spec.model import latent_means, model_based, nonlinear_predictors
from mlimpute.spec.model_counts import COUNT_PREDICTOR_METHODS

if TYPE_CHECKING:  # pragma: no cover
    from mlimpute.sampler.engine import Plan

__all__ = [
    "CATEGORICAL_METHODS",
    "Fixed",
    "Current",
    "build_context",
    "all_clusters",
    "mh_variables",
    "count_predictors",
    "eta_in",
    "analysis_term",
    "user_terms",
    "set_cluster_values",
]

#: the models of categorical predictors (drawn exactly over their categories)
CATEGORICAL_METHODS = ("2l.bin", "2l.ordinal", "2l.nominal")


@dataclass(frozen=True)
class Fixed:
    """What a model-based chain keeps for its whole run (module docstring).

    The designs are refreshed in place at every visit; nothing here is reassigned.
    """

    plan: Plan
    #: the incomplete predictors and auxiliaries of the factorisation, in its order
    preds: tuple[str, ...]
    #: the imputed columns outside the analysis model (one chained step each)
    chained: tuple[str, ...]
    #: every imputed column's design (a level-2 or school-level predictor's: every cluster)
    datas: Mapping[str, ModelData]
    analysis_model: Any
    analysis_data: ModelData
    #: rows (sorted order) with the analysis model's outcome observed
    y_obs_rows: np.ndarray
    #: the earlier predictor models that take each predictor
    users: Mapping[str, list[str]]
    #: each column's missing rows (sorted order)
    mis_rows: Mapping[str, np.ndarray]
    #: each level-2 (or school-level) column's missing clusters
    mis_clusters: Mapping[str, np.ndarray]
    level2: frozenset[str]
    level3: frozenset[str]
    categorical: frozenset[str]
    #: count predictors (own count model, independence Metropolis–Hastings)
    counts: frozenset[str]
    #: continuous predictors drawn by random-walk Metropolis–Hastings
    mh: frozenset[str]
    #: ``{"lmean(x)": "x"}``
    latent: Mapping[str, str]
    #: the columns in the analysis model (an auxiliary is not in its likelihood)
    in_model: frozenset[str]
    #: the analysis model's rows of each Metropolis–Hastings predictor's missing values
    #: with the outcome observed
    row_designs: Mapping[str, RowDesign]

    @property
    def n(self) -> int:
        return self.plan.layout.n

    @property
    def first(self) -> np.ndarray:
        """The first row of every cluster (sorted order)."""
        return self.plan.layout.segments.starts

    @property
    def count_outcome(self) -> bool:
        """A count analysis model (``family=``)."""
        return getattr(self.plan.spec, "family", None) is not None


@dataclass
class Current:
    """A model-based chain's current state (module docstring): the steps write its
    columns and model states in place and replace the analysis model's state."""

    values: Values
    #: the values seen one row per cluster
    cview: ClusterValues
    #: every model's state by column, and the proposal scales of the
    #: Metropolis–Hastings draws
    states: dict[str, Any]
    #: the analysis model's state
    analysis: Any
    #: the outcome (every row, sorted order; the chain's column when it is imputed)
    y_values: np.ndarray


def build_context(
    plan: Plan,
    values: Values,
    states: dict[str, Any],
    analysis: Any,
    mis_clusters: Mapping[str, np.ndarray],
) -> tuple[Fixed, Current]:
    """The :class:`Fixed` and :class:`Current` of a chain whose completed columns are
    ``values`` (set for every imputed column), model states ``states`` and analysis
    state ``analysis`` (None before the first step); ``mis_clusters`` are the missing
    clusters of the level-2 and school-level columns."""
    spec = plan.spec
    names = plan.names
    y = spec.model.response
    decided = model_based(spec)
    preds = tuple(n for n in names if n != y and n in decided)
    level2 = frozenset(v.name for v in spec.variables if v.level == 2)
    level3 = frozenset(v.name for v in spec.variables if v.level == 3)
    datas = {
        n: all_clusters(plan.data[n])
        if (n in level2 or n in level3) and n in decided
        else plan.data[n].for_chain()
        for n in names
    }
    da = datas[y] if y in datas else plan.analysis.for_chain()
    y_obs_rows = ~np.isnan(plan.start[y]) if y in plan.start else np.ones(plan.layout.n, bool)
    mis_rows = {x: plan.missing_rows(x) for x in names}
    categorical = frozenset(
        v.name for v in spec.variables if v.name != y and v.method in CATEGORICAL_METHODS
    )
    counts = frozenset(count_predictors(spec))
    mh = frozenset(mh_variables(plan) - categorical - counts)
    fixed = Fixed(
        plan=plan,
        preds=preds,
        chained=tuple(n for n in names if n != y and n not in decided),
        datas=datas,
        analysis_model=plan.analysis_model,
        analysis_data=da,
        y_obs_rows=y_obs_rows,
        users={
            x: [p for p in preds[:k] if x in spec.variables_by_name[p].formula.predictors]
            for k, x in enumerate(preds)
        },
        mis_rows=mis_rows,
        mis_clusters=mis_clusters,
        level2=level2,
        level3=level3,
        categorical=categorical,
        counts=counts,
        mh=mh,
        latent=latent_means(spec),
        in_model=frozenset(spec.model.variables),
        row_designs={x: RowDesign(plan, da, mis_rows[x][y_obs_rows[mis_rows[x]]]) for x in mh},
    )
    y_values = values[y] if y in values else encode(plan.static[y])
    cview = ClusterValues(values, plan.layout.segments.starts, {})
    return fixed, Current(values, cview, states, analysis, y_values)


def all_clusters(d: ModelData) -> ModelData:
    """A level-2 predictor's data with every cluster as an observed row: its model is
    fitted to the completed cluster values (the missing ones are part of the state).
    What models keep of a design (:attr:`ModelData.cache`) is kept for these rows apart
    from ``d``'s."""
    X = np.empty((d.n_obs + d.n_mis, d.X.obs.shape[1]))
    X[d.obs_idx], X[d.mis_idx] = d.X.obs, d.X.mis
    J = X.shape[0]
    block = replace(d.X, obs=np.asfortranarray(X), mis=np.asfortranarray(np.empty((0, X.shape[1]))))
    Z, seg = None, Segments.from_codes(np.zeros(J, dtype=np.intp), 1)
    if d.Z is not None:  # three levels: a random intercept of the enclosing level
        Zf = np.empty((J, d.Z.obs.shape[1]))
        Zf[d.obs_idx], Zf[d.mis_idx] = d.Z.obs, d.Z.mis
        empty = np.asfortranarray(np.empty((0, Zf.shape[1])))
        Z = replace(d.Z, obs=np.asfortranarray(Zf), mis=empty)
        codes = np.empty(J, dtype=np.intp)
        codes[d.obs_idx], codes[d.mis_idx] = d.seg_obs.codes, d.codes_mis
        seg = Segments.from_codes(codes, d.n_clusters)
    return replace(
        d,
        X=block,
        Z=Z,
        obs_idx=np.arange(J),
        mis_idx=np.zeros(0, dtype=np.intp),
        y_obs=np.zeros(J),
        seg_obs=seg,
        codes_mis=np.zeros(0, dtype=np.intp),
        cache={},
    )


# -- how each predictor is drawn ---------------------------------------------------------
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
    analysis model, drawn by Metropolis–Hastings
    (:func:`~mlimpute.sampler.compatible_draws.count_outcome_draw`)."""
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


# -- the factors of a closed-form draw ---------------------------------------------------
def eta_in(fx: Fixed, cur: Current, p: str, x: str) -> tuple[np.ndarray, np.ndarray]:
    """``a`` and ``c`` of p's model's linear predictor (every row) as an affine function
    of column x."""
    plan = fx.plan
    return eta_at(plan.models[p], cur.states[p], fx.datas[p], cur.values, plan.static, x, fx.n)


def analysis_term(rng, fx: Fixed, cur: Current, x: str, rows=None) -> LinearTerm:
    """The analysis model's factor as a term linear in x (a probit outcome through a
    fresh latent y*, :func:`~mlimpute.sampler.compatible_eta.outcome_term`), on ``rows``
    (default every row)."""
    values, plan = cur.values, fx.plan
    a, c = eta_at(fx.analysis_model, cur.analysis, fx.analysis_data, values, plan.static, x, fx.n)
    if rows is None:
        return outcome_term(rng, cur.analysis, cur.y_values, a, c, values[x], fx.y_obs_rows)
    return outcome_term(
        rng,
        cur.analysis,
        cur.y_values[rows],
        a[rows],
        c[rows],
        values[x][rows],
        fx.y_obs_rows[rows],
    )


def user_terms(fx: Fixed, cur: Current, x: str, rows, responses=None) -> list[LinearTerm]:
    """The factors of the (normal, level-1) models that take the level-1 predictor x, on
    ``rows``; ``responses`` replaces some of their responses (the unshifted columns of
    shifted models, ``delta=``)."""
    responses = responses or {}
    terms = []
    for p in fx.users[x]:
        a, c = eta_in(fx, cur, p, x)
        vp = responses.get(p, cur.values[p])
        terms.append(LinearTerm(vp[rows], a[rows], c[rows], cur.states[p].sigma2))
    return terms


def set_cluster_values(
    rng,
    cur: Current,
    w: str,
    mean: np.ndarray,
    var: np.ndarray,
    missing: np.ndarray,
    starts: np.ndarray,
    codes: np.ndarray,
) -> np.ndarray:
    """Draw w's ``missing`` cluster values from ``N(mean, var)`` (one per cluster) and
    write them to every row of their clusters (``starts``: each cluster's first row,
    ``codes``: each row's cluster). Returns the draws."""
    values = cur.values
    cv = values[w][starts].copy()
    draw = mean[missing] + np.sqrt(var[missing]) * rng.standard_normal(int(missing.sum()))
    cv[missing] = draw
    values[w][:] = np.take(cv, codes)
    values.touch(w)
    return draw
