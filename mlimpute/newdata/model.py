"""``impute_new`` after model-based imputation (``impute(model=...)``).

Each chain of a finished model-based run keeps where it stopped: its completed training
values and the final states of the analysis model, of every incomplete predictor's model
and of the level-2 models. New rows are completed chain by chain with those states,
**parameters fixed**:

* the training rows, completed with the chain's values, and the new rows are put together
  and the model designs are built on them with the training specification, so that the
  only missing cells are the new rows' ones (the training rows enter only through cluster
  means ``cmean(x)`` and the level-2 values of their clusters);
* rows of clusters seen in training use the chain's random effects of every model; a
  cluster not seen in training gets effects redrawn at every sweep: the analysis model's
  from their conditional given the cluster's observed outcomes (a normal outcome), the
  other models' from N(0, Ψ);
* a missing predictor value of a new row is drawn from its full conditional with the same
  draws the chain makes (:mod:`mlimpute.sampler.compatible_draws`): its own model times
  every model it enters times the analysis model where the row's outcome is observed, in
  closed form, exactly over the categories, or by Metropolis–Hastings steps (proposal scale
  as the chain left it, not adapted further; one step per row and sweep, 25 sweeps by
  default) where it enters non-linearly;
* a level-2 predictor takes its cluster's value: the chain's for a seen cluster, the value
  given in another new row of the cluster, or else one draw per new cluster from its full
  conditional (its level-2 model times every row of the cluster);
* missing outcomes are drawn from the analysis model; columns outside the analysis model
  (chained defaults) from their own model;
* a short Gibbs run over the new rows' missing cells (``sweeps``), each sweep in the order
  of the chain. One sweep is exact when every new row has at most one missing cell, no
  predictor is drawn by Metropolis–Hastings, no cluster mean of an imputed column enters
  a formula, and no new cluster has a row with an observed outcome and a missing predictor
  of the analysis model (for a normal outcome, whose new clusters' effects are drawn given
  those rows).

Not supported (refused by name): sensitivity shifts (``delta=``, ``delta_cluster_sd=``),
count outcomes (``family=``) and count variables, latent cluster means ``lmean(x)``,
several grouping factors and three-level models, and
transforms fitted on the data (``center()``, ``scale()``, ``poly()``, ``bs()``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from mlimpute.codec import categories
from mlimpute.errors import SpecificationError, UnsupportedError
from mlimpute.models.ml_norm import MultilevelNormState
from mlimpute.models.nominal import NominalState
from mlimpute.newdata.effects import NewRows, reads_response, redraw_new
from mlimpute.newdata.states import completion_spec, map_nested
from mlimpute.parallel import map_blocks, one_blas_thread
from mlimpute.result.assemble import assemble
from mlimpute.result.imputed import MultiplyImputed, chain_states
from mlimpute.rng import chain_seeds, recorded_seed
from mlimpute.sampler.compatible import ANALYSIS
from mlimpute.sampler.compatible_context import build_context, mh_variables
from mlimpute.sampler.compatible_draws import proposal_key
from mlimpute.sampler.compatible_step import draw_predictor, write_missing
from mlimpute.sampler.design import ClusterValues, Values
from mlimpute.sampler.engine import ChainResult, Plan, _cluster_values, build_plan
from mlimpute.spec.model import latent_means, model_based
from mlimpute.spec.model_counts import COUNT_PREDICTOR_METHODS

__all__ = ["impute_new_model"]

#: sweeps of the Gibbs run over the new rows when one sweep is not exact
DEFAULT_SWEEPS = 10
#: sweeps when a predictor is drawn by Metropolis–Hastings (one step per row and sweep;
#: measured: on a quadratic term the KS distance to the quadrature conditional levels off
#: by 5-10 sweeps from the start draws)
DEFAULT_MH_SWEEPS = 25


#: transforms whose state formulaic fits on the data (refitted on the training and new
#: rows together they would no longer match the chains' coefficients)
STATEFUL = re.compile(r"\b(center|scale|poly|bs)\s*\(")


def refuse_stateful(spec) -> None:
    """Refuse, naming it, a formula with a data-dependent transform."""
    texts = [v.formula.text for v in spec.variables]
    if spec.model is not None:
        texts.append(spec.model.text)
    for text in texts:
        m = STATEFUL.search(text)
        if m:
            raise UnsupportedError(
                f"impute_new() for this result: the formula {text!r} uses {m.group(1)}(), a "
                "transform fitted on the training data, which impute_new() does not "
                "support yet with model= or several grouping factors; transform the "
                "column before imputing"
            )


def refuse_unsupported(spec) -> None:
    """Refuse, by name, what :func:`impute_new_model` does not do."""
    refuse_stateful(spec)
    if getattr(spec, "family", None) is not None:
        raise UnsupportedError(
            f"impute_new() after model-based imputation with a count outcome (family="
            f"{spec.family!r}) is not supported yet"
        )
    counts = [v.name for v in spec.variables if v.method in COUNT_PREDICTOR_METHODS]
    if counts:
        raise UnsupportedError(
            f"impute_new() after model-based imputation with count variables {counts} "
            "(2l.poisson, 2l.nb) is not supported yet"
        )
    if spec.delta or spec.delta_cluster_sd:
        raise UnsupportedError(
            "impute_new() after model-based imputation with sensitivity shifts (delta=, "
            "delta_cluster_sd=) is not supported yet"
        )
    if spec.factors:
        raise UnsupportedError(
            "impute_new() after model-based imputation with several grouping factors "
            f"({[spec.cluster, *spec.factors]}) is not supported yet"
        )
    if latent_means(spec):
        raise UnsupportedError(
            "impute_new() after model-based imputation with latent cluster means "
            f"({sorted(latent_means(spec))}) is not supported yet"
        )
    if any(v.level > 2 for v in spec.variables):
        raise UnsupportedError(
            "impute_new() after model-based imputation with level-3 variables is not supported yet"
        )
    chained = [
        v.name for v in spec.variables if v.name not in model_based(spec) and v.formula.ranefs
    ]
    if chained:
        raise UnsupportedError(
            f"impute_new() after model-based imputation: the default models of {chained} "
            "take random effects of another model (ranef()), which is not supported yet"
        )


def impute_new_model(
    imp: MultiplyImputed,
    data: pd.DataFrame,
    rng: Any,
    sweeps: int | None,
    n_jobs: int | None,
    client: Any,
) -> MultiplyImputed:
    """The model-based branch of :func:`mlimpute.newdata.impute_new` (``data``: the checked
    copy of the new rows, columns and dtypes as in training); call it through
    ``imp.impute_new(new_df)``.

    Examples
    --------
    >>> import numpy as np, pandas as pd, mlimpute
    >>> r = np.random.default_rng(0)
    >>> df = pd.DataFrame({"g": np.repeat(range(20), 5), "x": r.normal(size=100)})
    >>> df["y"] = df.x + r.normal(size=100)
    >>> df.loc[::4, "x"] = np.nan
    >>> df.loc[1::9, "y"] = np.nan
    >>> imp = mlimpute.impute(df, model="y ~ x + (1 + x | g)", m=2, iterations=5, rng=1)
    >>> new = pd.DataFrame({"g": [0, 99], "x": [np.nan, 0.5], "y": [1.0, np.nan]})
    >>> out = imp.impute_new(new, rng=2)
    >>> int(out.complete(2).isna().sum().sum()), out.complete(1).loc[0, "y"]
    (0, np.float64(1.0))
    """
    spec = imp.spec
    refuse_unsupported(spec)
    chains = stopped_chains(imp)
    train = imp.data
    plan_t = build_plan(train, spec)
    n_t = len(train)
    new = data.reset_index(drop=True)
    from mlimpute.newdata.chained import _prepare  # its checks name the column

    _prepare(plan_t, train, data)
    # every chain's completed training rows, then the new rows
    frames = [_combined(imp.complete(k + 1), new) for k in range(imp.m)]
    probe = build_plan(frames[0], spec)
    lay = probe.layout
    is_new = lay.order >= n_t
    J_t = plan_t.layout.segments.n_clusters
    if spec.cluster is None:
        perm = np.zeros(lay.segments.n_clusters, dtype=np.intp)
        n_new = 0
    else:
        tidx = plan_t.layout.labels.get_indexer(lay.labels)
        n_new = int((tidx < 0).sum())
        perm = tidx.astype(np.intp)
        perm[tidx < 0] = J_t + np.arange(n_new)  # new clusters in sorted label order
    names = plan_t.names
    level2 = {v.name for v in spec.variables if v.level == 2}
    n_missing = sum(
        (np.isnan(probe.start[n]) & is_new).astype(int) for n in names if n not in level2
    )
    l2_todo = {}
    for w in level2:
        known = _cluster_values(probe.start[w], lay.codes, lay.segments.n_clusters)
        l2_todo[w] = np.isnan(known)
        n_missing = n_missing + l2_todo[w][lay.codes].astype(int)
    mh = mh_variables(probe)
    imputed_cmean = any(c in names for v in spec.variables for c in v.formula.cmeans) or any(
        c in names for c in spec.model.cmeans
    )
    exact = bool(np.all(np.asarray(n_missing) <= 1)) and not mh and not imputed_cmean
    if exact and (perm >= J_t).any() and reads_response(probe.analysis_model):
        # a new cluster's effects of the analysis model are drawn given its observed
        # outcomes: a row among them with a missing predictor (its start value in the
        # first sweep) makes one sweep inexact
        y = spec.model.response
        new_rows = perm[lay.codes] >= J_t
        if y in probe.start:
            new_rows &= ~np.isnan(probe.start[y])
        for x in spec.model.predictors & set(names):
            miss = l2_todo[x][lay.codes] if x in level2 else np.isnan(probe.start[x]) & is_new
            if x != y and (new_rows & miss).any():
                exact = False
    if sweeps is not None:
        n_sweeps = int(sweeps)
    elif exact:
        n_sweeps = 1
    else:
        n_sweeps = DEFAULT_MH_SWEEPS if mh and _mh_rows(probe, mh, is_new) else DEFAULT_SWEEPS
    seeds, entropy = chain_seeds(rng, imp.m)
    seed, spawn_key = recorded_seed(seeds, entropy)
    items = list(zip(range(imp.m), seeds, chains, frames, strict=True))
    results = map_blocks(
        _run_block,
        (spec, n_t, perm, J_t, n_sweeps, plan_t.data),
        items,
        n_jobs=n_jobs,
        client=client,
        name="mlimpute-impute-new",
    )
    out = _OutPlan(completion_spec(spec, n_sweeps, seed, spawn_key), probe, n_t, len(new))
    events = [
        f"completed {len(new)} new row(s) with the final model states of the {imp.m} "
        f"model-based chains (parameters fixed; {n_sweeps} sweep(s) over the new rows' "
        f"missing cells; {n_new} cluster(s) not seen in training got random effects redrawn "
        "at every sweep)"
    ]
    warn_far(imp, results, names)
    like = {
        n: probe.like[n]
        for n in names
        if n in probe.like and categories(data[n]) != categories(probe.like[n])
    }
    return MultiplyImputed(assemble(out, results), data, out.spec, events, like=like or None)


def stopped_chains(imp: MultiplyImputed) -> list:
    """Where every chain of ``imp`` stopped (its final values and model states); refuses,
    saying why, a result that does not hold them."""
    return chain_states(imp, "impute_new()")


#: a new imputation this many training SDs from the training mean is flagged
FAR_SDS = 20.0


def warn_far(imp: MultiplyImputed, results: list, names: list[str]) -> None:
    """Warn, naming the columns, when new imputations lie far outside the training data.

    A Gibbs run of chained conditionals with cluster means (``cmean(x)``) can diverge in a
    small new cluster: a coefficient that is harmless when a cluster mean averages many
    rows multiplies a new row's own value when its cluster has one or two rows."""
    far = []
    for name in names:
        if categories(imp.data[name]) is not None:
            continue
        col = imp.data[name].to_numpy(dtype=np.float64, na_value=np.nan)
        mu, sd = np.nanmean(col), np.nanstd(col)
        vals = np.concatenate([r.imputed[name] for r in results]) if results else np.empty(0)
        dev = np.abs(vals - mu)
        if vals.size and (not np.all(np.isfinite(vals)) or np.any(dev > FAR_SDS * sd)):
            far.append(name)
    if far:
        import warnings

        from mlimpute.errors import MlimputeWarning

        warnings.warn(
            f"impute_new(): imputations of {far} in the new rows lie more than {FAR_SDS:g} "
            "training SDs from the training mean; the Gibbs run over the new rows may "
            "have diverged (cluster means of imputed columns in small new clusters "
            "amplify each other): impute fewer cells per new row, add rows to the new "
            "clusters, or use sweeps=1 to inspect",
            MlimputeWarning,
            stacklevel=5,
        )


def _mh_rows(plan: Plan, mh: set[str], is_new: np.ndarray) -> bool:
    """Whether some new row has a value to draw by Metropolis–Hastings."""
    return any((np.isnan(plan.start[x]) & is_new).any() for x in mh if x in plan.start)


def _combined(completed: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """The chain's completed training rows followed by the new rows (training dtypes)."""
    completed = completed.reset_index(drop=True)
    out = pd.concat([completed, new[completed.columns]], ignore_index=True)
    for c in completed.columns:
        if out[c].dtype != completed[c].dtype:
            try:
                out[c] = out[c].astype(completed[c].dtype)
            except (TypeError, ValueError):
                pass
    return out


# -- one chain --------------------------------------------------------------------------------
def _run_block(shared, block: list) -> list[ChainResult]:
    spec, n_t, perm, J_t, n_sweeps, train_data = shared
    with one_blas_thread():
        return [
            _complete_chain(spec, n_t, perm, J_t, n_sweeps, train_data, seed, chain, frame)
            for _, seed, chain, frame in block
        ]


def _psi_root(psi: np.ndarray) -> np.ndarray:
    w, V = np.linalg.eigh(np.atleast_2d(psi))
    return V * np.sqrt(np.clip(w, 0.0, None))


def remap_state(state: Any, perm: np.ndarray, J_t: int, rng: np.random.Generator) -> Any:
    """``state`` with its random effects in the clusters' new order ``perm`` (cluster c of
    the new layout is training cluster ``perm[c]``, or a new one where ``perm[c] >= J_t``):
    new clusters draw their effects from N(0, Ψ) (and, for the heteroscedastic model, a
    residual variance ``ν s² / χ²_ν``), in the order of their codes. Walks the dataclass
    fields as :func:`mlimpute.newdata.extend_state` does."""
    if isinstance(state, MultilevelNormState):
        J, q = state.b.shape
        k = int(perm.size - (perm < J_t).sum())
        new_b = rng.standard_normal((k, q)) @ _psi_root(state.psi).T
        changes: dict[str, Any] = {"b": np.vstack([state.b, new_b])[perm]}
        if state.b_mean is not None:
            changes["b_mean"] = np.vstack([state.b_mean, np.zeros((k, q))])[perm]
        if np.ndim(state.sigma2) > 0:
            s2, nu = state.sigma_hyper
            new_s2 = np.maximum(nu * s2 / rng.chisquare(nu, size=k), state.sigma2_floor)
            changes["sigma2"] = np.concatenate([state.sigma2, new_s2])[perm]
        return replace(state, **changes)
    return map_nested(state, lambda value: remap_state(value, perm, J_t, rng))


def _check_designs(plan: Plan, train_data: dict) -> None:
    """The designs on the combined rows must have the training designs' columns."""
    for name, d in plan.data.items():
        t = train_data[name]
        zd = None if d.Z is None else list(d.Z.names)
        zt = None if t.Z is None else list(t.Z.names)
        if list(d.X.names) != list(t.X.names) or zd != zt:
            raise SpecificationError(
                f"the design of the model for {name!r} on the training and new rows has "
                f"columns {list(d.X.names)}, in training {list(t.X.names)}; the new rows "
                "must use the training categories and ranges"
            )


def _complete_chain(spec, n_t, perm, J_t, n_sweeps, train_data, seed, chain, frame):
    rng = np.random.default_rng(seed)
    plan = build_plan(frame, spec)
    _check_designs(plan, train_data)
    lay = plan.layout
    codes, J = lay.codes, lay.segments.n_clusters
    names = plan.names
    y = spec.model.response
    level2 = {v.name for v in spec.variables if v.level == 2}
    # fixed states, random effects in this layout's cluster order (new clusters drawn)
    states = {
        key: remap_state(st, perm, J_t, rng) if not key.startswith("(proposal)") else st
        for key, st in chain.states.items()
    }
    sa = states.pop(ANALYSIS)
    # current values: the training rows complete; the new rows' missing cells filled
    values = Values(lay, like=plan.like)
    mis_clusters = {}
    for name in names:
        x = plan.start[name].copy()
        if name in level2:
            cv = _cluster_values(x, codes, J)
            todo = np.isnan(cv)
            if todo.any():  # a new cluster with no value given: a start draw
                cv[todo] = rng.choice(cv[~todo], size=int(todo.sum()))
            mis_clusters[name] = todo
            x = np.take(cv, codes)
        else:
            miss = np.isnan(x)
            if miss.any():
                x[miss] = rng.choice(x[~miss], size=int(miss.sum()))
        values[name] = x
    fx, cur = build_context(plan, values, states, sa, mis_clusters)
    col = {x: k for k, x in enumerate(names)}
    V = len(names)
    mean = np.full((n_sweeps, V), np.nan)
    sd = np.zeros((n_sweeps, V))
    da = fx.analysis_data
    new_c = np.flatnonzero(perm >= J_t)  # clusters not seen in training
    reads = reads_response(fx.analysis_model)
    for t in range(n_sweeps):
        if new_c.size:  # their effects, redrawn as a training iteration would
            for key in sorted(cur.states):
                if not key.startswith("(proposal)"):
                    cur.states[key] = redraw_new(cur.states[key], new_c, rng)
            rows = None
            if reads and da.y_obs.size:
                da.refresh(values, plan.static)
                r = np.flatnonzero(np.isin(da.seg_obs.codes, new_c))
                rows = NewRows(da.X.obs[r], da.Z.obs[r], da.y_obs[r], da.seg_obs.codes[r])
            cur.analysis = redraw_new(cur.analysis, new_c, rng, rows)
        for x in fx.preds:
            if not (mis_clusters[x].any() if x in level2 else fx.mis_rows[x].size):
                continue
            draw, _ = draw_predictor(rng, fx, cur, x, adapt=False)
            _trace(mean, sd, t, col[x], draw)
        da.refresh(values, plan.static)
        if y in fx.datas and da.n_mis:
            draw = fx.analysis_model.draw_missing(rng, cur.analysis, da)
            values[y][da.mis_idx] = draw
            values.touch(y)
            _trace(mean, sd, t, col[y], draw)
        for name in fx.chained:
            d = fx.datas[name]
            if not (mis_clusters[name].any() if name in level2 else d.n_mis):
                continue
            view = ClusterValues(values, lay.segments.starts, {}) if name in level2 else values
            d.refresh(view, plan.cluster_static if name in level2 else plan.static)
            draw = plan.models[name].draw_missing(rng, states[name], d)
            write_missing(fx, cur, name, d.mis_idx, draw)
            _trace(mean, sd, t, col[name], draw)
    params = {}
    for name in names:
        if name == y:
            pv = fx.analysis_model.param_vector(cur.analysis, da)
        else:
            d = fx.datas[name]
            if name in fx.categorical:
                d = replace(d, y_obs=values[name])
            st = states[name]
            if isinstance(st, NominalState):
                st = replace(st, latent=np.zeros((d.y_obs.size, len(st.cores))))
            pv = plan.models[name].param_vector(st, d)
            if name in fx.mh:
                pv = np.concatenate([pv, [np.nan, np.exp(states[proposal_key(name)][0])]])
        params[name] = np.tile(np.asarray(pv, dtype=float), (n_sweeps, 1))
    # the new rows' cells, in the order of the output plan (sorted positions of new rows)
    imputed = {}
    for name in names:
        miss = np.isnan(plan.start[name]) & (lay.order >= n_t)
        imputed[name] = values[name][miss]
    return ChainResult(imputed, mean, sd, params, None)


def _trace(mean, sd, t, j, draw) -> None:
    if draw.size:
        mean[t, j] = draw.mean()
        sd[t, j] = draw.std(ddof=1) if draw.size > 1 else 0.0


@dataclass
class _OutPlan:
    """What :func:`~mlimpute.result.assemble.assemble` reads of a plan, for the new rows:
    positions are the new rows' own (sorted positions of the combined layout mapped back)."""

    spec: Any
    plan: Plan
    n_t: int
    n_new: int

    @property
    def names(self) -> list[str]:
        return self.plan.names

    @property
    def layout(self):
        return _Order(self.plan.layout.order[self.plan.layout.order >= self.n_t] - self.n_t)

    def missing_rows(self, name: str) -> np.ndarray:
        lay = self.plan.layout
        keep = lay.order >= self.n_t
        return np.flatnonzero(np.isnan(self.plan.start[name])[keep])

    def param_names(self, name: str) -> list[str]:
        return self.plan.param_names(name)


@dataclass
class _Order:
    order: np.ndarray
