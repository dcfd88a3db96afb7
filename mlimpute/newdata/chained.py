"""New rows after chained imputation with one grouping factor: the models as they stand at
the end of each chain.

Every chain of a finished run keeps where it stopped (:class:`~mlimpute.sampler.engine.ChainState`):
its completed training values, the last state of every variable's model and its generator.
New rows are completed chain by chain with those states, **parameters fixed**:

* the design of the new rows is built with the training design's own formulaic
  ``ModelSpec`` (the same columns, codings and transforms), and the model's own
  ``draw_missing`` is called on a :class:`~mlimpute.sampler.design.ModelData` whose "missing
  rows" are the new rows' missing cells (its observed side is the chain's training data,
  which predictive mean matching draws its donors from);
* rows of clusters seen in training use the cluster's current random effects; a cluster not
  seen in training gets effects redrawn at every sweep as a training iteration draws them
  (:mod:`mlimpute.newdata.effects`: given its observed rows for a normal model, else from
  N(0, Ψ); for the heteroscedastic model also its residual variance);
* the cluster means ``cmean(x)`` of a new row are the means over the cluster's training rows
  (the chain's completed values) and its new rows together;
* a level-2 variable missing in a new row takes its cluster's value: where the chain left it
  for a cluster seen in training, the value given in another new row of the cluster, or
  else one draw per cluster from its level-2 model (``ranef(x)`` reading the effects drawn
  for the cluster);
* with several incomplete variables in a new row, their missing cells are drawn by a short
  Gibbs run over the new rows only (each sweep visits the variables in the visit order,
  parameters fixed). When a single sweep is exact one sweep is run: at most one
  incomplete variable per new row, no cluster mean of an imputed variable in any formula,
  and no new cluster whose effects of a normal model, drawn given its observed rows,
  condition on a row with a missing predictor of that model while they feed a missing
  cell (:func:`_one_sweep_exact`).

Each chain uses the child of ``SeedSequence(rng)`` of its number, so the result depends on
the seed only, never on the executor.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from mlimpute.codec import categories, decode, encode
from mlimpute.errors import DataError, DataTypeError
from mlimpute.models.ml_norm import MultilevelNormState
from mlimpute.models.streamed import StreamedData
from mlimpute.newdata.checks import check_columns, encode_like
from mlimpute.newdata.effects import NewRows, reads_response, redraw_new
from mlimpute.newdata.states import completion_spec, map_nested
from mlimpute.parallel import map_blocks, one_blas_thread
from mlimpute.result.assemble import assemble
from mlimpute.result.imputed import MultiplyImputed, chain_states
from mlimpute.rng import chain_seeds, recorded_seed
from mlimpute.sampler.design import Block, ClusterValues, check_finite
from mlimpute.sampler.engine import (
    ChainResult,
    Plan,
    _cluster_values,
    _model_dtypes,
    build_plan,
    cluster_shifts,
    latent_shifts,
    shift_intercept,
    start_values,
)
from mlimpute.sampler.ranefs import ranef_arrays
from mlimpute.spec.formula import cmean_column, ranef_column
from mlimpute.spec.grammar import EVALUATION_CONTEXT
from mlimpute.spec.longsum import balanced_sum

__all__ = ["impute_new_chained"]

#: sweeps of the Gibbs run over the new rows when one sweep is not exact
DEFAULT_SWEEPS = 10


def impute_new_chained(
    imp: MultiplyImputed,
    new_df: pd.DataFrame,
    rng,
    sweeps: int | None,
    n_jobs: int | None,
    client: Any,
) -> MultiplyImputed:
    """The chained-equations path of :func:`mlimpute.newdata.impute_new` (one grouping
    factor); the arguments are checked there."""
    spec = imp.spec
    if not isinstance(new_df, pd.DataFrame):
        raise DataTypeError(f"new_df must be a pandas DataFrame, got {type(new_df).__name__}")
    chains = chain_states(imp, "impute_new()") if spec.variables else imp.chains
    data = check_columns(imp.data, new_df, spec)  # a copy: new_df is never modified
    plan = build_plan(imp.data, spec)
    prep = _prepare(plan, imp.data, data)
    n_sweeps = (1 if prep.exact else DEFAULT_SWEEPS) if sweeps is None else int(sweeps)
    seeds, entropy = chain_seeds(rng, imp.m)
    seed, spawn_key = recorded_seed(seeds, entropy)
    results: list[ChainResult] = []
    if spec.variables:
        items = list(zip(range(imp.m), seeds, chains, strict=True))
        results = map_blocks(
            _run_block,
            (plan, prep, n_sweeps),
            items,
            n_jobs=n_jobs,
            client=client,
            name="mlimpute-impute-new",
        )
    out_plan = _OutPlan(completion_spec(spec, n_sweeps, seed, spawn_key), prep, plan)
    events = [
        f"completed {len(new_df)} new row(s) with the final model states of the {imp.m} "
        f"chains (parameters fixed; {n_sweeps} sweep(s) over the new rows' missing cells; "
        f"{prep.n_new_clusters} cluster(s) not seen in training got random effects redrawn "
        "at every sweep as in training)"
    ]
    # categories of string columns come from the column's own values: where the new data
    # lack some training categories, the codes are decoded with the training's
    like = {
        n: plan.like[n]
        for n in plan.names
        if n in plan.like and categories(data[n]) != categories(plan.like[n])
    }
    return MultiplyImputed(
        assemble(out_plan, results), data, out_plan.spec, events, like=like or None
    )


# -- checks ---------------------------------------------------------------------------------
@dataclass
class _Prepared:
    """What every chain needs of the new rows (picklable)."""

    static: pd.DataFrame  # the used columns of the new rows, training dtypes, original order
    start: dict[str, np.ndarray]  # imputed level-1 variable -> encoded new values (NaN missing)
    level2: dict[str, np.ndarray]  # imputed level-2 variable -> encoded new values
    codes: np.ndarray  # cluster code of each new row (training codes; unseen: J, J+1, ...)
    n_clusters: int  # training clusters + new ones
    n_new_clusters: int
    cmeans: tuple[str, ...]  # variables whose cluster means enter a formula
    exact: bool  # one sweep is exact
    z_specs: dict[str, list]  # variable -> per random block: formulaic spec or None ("1")
    new_index: pd.Index
    level2_known: dict[str, np.ndarray]  # level-2 variable -> value per cluster given in new_df
    level2_draw: dict[str, np.ndarray]  # level-2 variable -> new clusters to draw a value for


def _prepare(plan: Plan, train: pd.DataFrame, new: pd.DataFrame) -> _Prepared:
    spec, layout = plan.spec, plan.layout
    names = plan.names
    level2 = {v.name for v in spec.variables if v.level == 2}
    cols = [c for c in train.columns if c in plan.static.columns]
    static = _model_dtypes(new[cols].reset_index(drop=True).copy())
    for c in cols:
        if c in names:
            continue
        if static[c].isna().any():
            raise DataError(
                f"column {c!r} has missing values in new_df, but no model imputes it (it is "
                "complete in the training data): give it values, or impute it in training"
            )
        like = plan.static[c]
        if categories(like) is not None and not isinstance(like.dtype, pd.CategoricalDtype):
            encode_like(static[c], train[c], c)  # names unseen categories
    # cluster codes: the training codes, then the unseen labels in sorted order
    J = layout.segments.n_clusters
    if spec.cluster is None:
        codes = np.zeros(len(new), dtype=np.intp)
        n_new = 0
    else:
        lab = new[spec.cluster]
        if lab.isna().any():
            raise DataError(f"the cluster column {spec.cluster!r} has missing values in new_df")
        codes = layout.labels.get_indexer(lab.to_numpy())
        unseen = codes < 0
        extra, inverse = np.unique(lab.to_numpy()[unseen].astype(object), return_inverse=True)
        codes = codes.astype(np.intp)
        codes[unseen] = J + inverse
        n_new = len(extra)
    start, l2, l2_known, l2_draw = {}, {}, {}, {}
    for v in spec.variables:
        like = plan.like.get(v.name, train[v.name])
        x = encode_like(new[v.name].reset_index(drop=True), like, v.name)
        if v.level == 2:
            l2[v.name] = x
            # a new cluster's value given in another of its new rows is its value; the
            # others are drawn from the level-2 model, one per cluster
            known = _cluster_values(x, codes, J + n_new)
            miss = np.isnan(x)
            x_filled = np.where(miss & (codes >= J), known[codes], x)
            todo = np.unique(codes[np.isnan(x_filled) & (codes >= J)])
            l2_known[v.name] = known
            l2_draw[v.name] = todo
        else:
            start[v.name] = x
    for c in cols:
        if c not in names and static[c].dtype != plan.static[c].dtype:
            static[c] = static[c].astype(plan.static[c].dtype)
    cmeans = tuple(sorted({c for v in spec.variables for c in v.formula.cmeans}))
    level1 = [n for n in names if n not in level2]
    per_row = sum(np.isnan(start[n]).astype(int) for n in level1) if level1 else 0
    per_row = per_row + sum(np.isin(codes, l2_draw[n]).astype(int) for n in l2)
    imputed_cmean = any(c in names for c in cmeans)
    exact = bool(np.all(np.asarray(per_row) <= 1)) and not imputed_cmean
    z_specs = {}
    for v in spec.variables:
        d = plan.data[v.name]
        if v.level == 2 or (not isinstance(d, StreamedData) and d.Z is None):
            continue
        blocks = []
        for block in v.formula.random:
            if block.terms.strip() == "1":
                blocks.append(None)
            else:
                with np.errstate(all="ignore"):
                    from formulaic import model_matrix

                    mm = model_matrix(
                        balanced_sum(block.terms),
                        plan.static,
                        na_action="ignore",
                        context=EVALUATION_CONTEXT,
                    )
                blocks.append(mm.model_spec)
        z_specs[v.name] = blocks
    if exact and n_new:
        missing = {n: np.isnan(start[n]) for n in level1}
        missing |= {n: np.isin(codes, l2_draw[n]) for n in l2}
        exact = _one_sweep_exact(plan, codes, codes >= J, start, missing, set(z_specs))
    return _Prepared(
        static,
        start,
        l2,
        codes,
        J + n_new,
        n_new,
        cmeans,
        exact,
        z_specs,
        new.index,
        l2_known,
        l2_draw,
    )


def _one_sweep_exact(plan: Plan, codes, new_rows, start, missing: dict, effects: set) -> bool:
    """Whether one sweep draws from the Gibbs run's stationary distribution when every
    new row has at most one missing cell and no formula has a cluster mean of an imputed
    variable. A missing cell's draw then reads only observed values, except for the
    effects of a cluster not seen in training, which a normal model of a variable draws
    given the cluster's observed rows of it (:func:`_redraw`). Where one of those rows
    holds a missing predictor of the model (its start value in the first sweep), the
    effects must not feed a draw: neither a missing cell of the variable in that cluster
    nor a level-2 variable drawn for the cluster that reads them (``ranef(x)``). And a
    level-2 variable drawn for a new cluster must not read such effects before x's model
    has drawn them in the sweep (it would read their start draw from N(0, Ψ))."""
    names = plan.names
    conditioned = {}
    readers = {}
    for v in plan.spec.variables:
        for x in v.formula.ranefs:
            readers.setdefault(x, []).append(v.name)
    for v in plan.spec.variables:
        if v.level == 2 or v.name not in effects or not reads_response(plan.models[v.name]):
            continue
        rows = new_rows & ~np.isnan(start[v.name])
        conditioned[v.name] = rows
        bad = np.zeros_like(rows)
        for p in v.formula.predictors & set(missing) - {v.name}:
            bad |= rows & missing[p]
        if not bad.any():
            continue
        fed = missing[v.name].copy()
        for w in readers.get(v.name, []):
            fed |= missing.get(w, False)
        if np.isin(codes[fed], codes[bad]).any():
            return False
    for v in plan.spec.variables:
        if v.level != 2 or not missing[v.name].any():
            continue
        for x in v.formula.ranefs:
            late = x in conditioned and names.index(x) > names.index(v.name)
            if late and np.isin(codes[missing[v.name]], codes[conditioned[x]]).any():
                return False
    return True


# -- one chain --------------------------------------------------------------------------------
def _run_block(shared, block: list) -> list[ChainResult]:
    plan, prep, n_sweeps = shared
    with one_blas_thread():
        return [_complete_chain(plan, prep, n_sweeps, k, seed, c) for k, seed, c in block]


def _psi_root(psi: np.ndarray) -> np.ndarray:
    """A square root L of Ψ (L L' = Ψ), also for a singular Ψ."""
    w, V = np.linalg.eigh(np.atleast_2d(psi))
    return V * np.sqrt(np.clip(w, 0.0, None))


def extend_state(state: Any, n_clusters: int, rng: np.random.Generator) -> Any:
    """``state`` with random effects (and per-cluster residual variances) for clusters
    ``J..n_clusters-1`` drawn from their distribution in the state: N(0, Ψ), and
    σ²_j ~ ν s² / χ²_ν for the heteroscedastic model. Walks the dataclass fields (latent
    models keep their normal core in ``core`` or ``cores``); other states are returned as
    they are (single-level models have no random effects)."""
    if isinstance(state, MultilevelNormState):
        J, q = state.b.shape
        k = n_clusters - J
        if k <= 0:
            return state
        new_b = rng.standard_normal((k, q)) @ _psi_root(state.psi).T
        changes: dict[str, Any] = {"b": np.vstack([state.b, new_b])}
        if state.b_mean is not None:
            changes["b_mean"] = np.vstack([state.b_mean, np.zeros((k, q))])
        if np.ndim(state.sigma2) > 0:
            s2, nu = state.sigma_hyper
            new_s2 = np.maximum(nu * s2 / rng.chisquare(nu, size=k), state.sigma2_floor)
            changes["sigma2"] = np.concatenate([state.sigma2, new_s2])
        return replace(state, **changes)
    return map_nested(state, lambda value: extend_state(value, n_clusters, rng))


def _design(spec, names: list[str], frame: pd.DataFrame, rows: np.ndarray, what: str) -> np.ndarray:
    """Columns ``names`` of the design of ``spec`` (None: the intercept) on ``frame[rows]``."""
    if spec is None:
        return np.ones((len(rows), 1))
    sub = frame.iloc[rows]
    with np.errstate(all="ignore"):
        mm = spec.get_model_matrix(sub, context=EVALUATION_CONTEXT)
    X = np.asarray(mm[names], dtype=np.float64) if len(names) else np.empty((len(rows), 0))
    check_finite(X, names, [spec], what, "on the new rows")
    return np.asfortranarray(X)


def _z_design(prep: _Prepared, d, name: str, frame: pd.DataFrame, rows: np.ndarray):
    cols = {}
    for spec in prep.z_specs[name]:
        if spec is None:
            cols["Intercept"] = np.ones(len(rows))
            continue
        with np.errstate(all="ignore"):
            mm = spec.get_model_matrix(frame.iloc[rows], context=EVALUATION_CONTEXT)
        for c in mm.columns:
            cols[c] = np.asarray(mm[c], dtype=np.float64)
    Z = np.column_stack([cols[c] for c in d.Z.names]) if d.Z.names else np.empty((len(rows), 0))
    return np.asfortranarray(Z)


def _complete_chain(plan: Plan, prep: _Prepared, n_sweeps: int, k: int, seed, chain):
    rng = np.random.default_rng(seed)
    names = plan.names
    values, cvals = start_values(plan, rng, chain)  # the chain's completed values: no draws
    level2 = set(prep.level2)
    codes = prep.codes
    J = plan.layout.segments.n_clusters
    states = {n: extend_state(chain.states[n], prep.n_clusters, rng) for n in names}
    latent = latent_shifts(plan)
    shift = {n: d for n, d in plan.spec.delta if n not in latent}
    cshift = cluster_shifts(plan, chain.seed)
    for name, u in list(cshift.items()):  # new clusters: fresh shifts of the same SD
        sd = dict(plan.spec.delta_cluster_sd)[name]
        cshift[name] = np.concatenate([u, sd * rng.standard_normal(prep.n_clusters - J)])
    cur: dict[str, np.ndarray] = {}
    imputed: dict[str, np.ndarray] = {}
    for name in names:
        x = (prep.level2 if name in level2 else prep.start)[name].copy()
        miss = np.isnan(x)
        if name in level2:  # a seen cluster's value where the chain left it
            seen = miss & (codes < J)
            x[seen] = cvals[name][codes[seen]]
            new_c = miss & (codes >= J)  # a new cluster's: given in new_df, else a start draw
            x[new_c] = prep.level2_known[name][codes[new_c]]
            todo = prep.level2_draw[name]
            if todo.size:
                start = np.full(prep.n_clusters, np.nan)
                start[todo] = rng.choice(cvals[name], size=todo.size)
                fill = np.isnan(x)
                x[fill] = start[codes[fill]]
        elif miss.any():
            x[miss] = rng.choice(values[name], size=int(miss.sum()))
        cur[name] = x
    mis = {n: np.flatnonzero(np.isnan(prep.start[n])) for n in names if n not in level2}
    datas = {}
    first = plan.layout.segments.starts
    for name in names:
        d = plan.stored(name)
        if name in level2:
            view = ClusterValues(values, first, ranef_arrays(plan, name, chain.states))
            d.refresh(view, plan.cluster_static)
        else:
            d.refresh(values, plan.static)
        datas[name] = d
    read = {x for v in plan.spec.variables for x in v.formula.ranefs}
    V = len(names)
    mean = np.full((n_sweeps, V), np.nan)
    sd = np.zeros((n_sweeps, V))
    params = {n: np.empty((n_sweeps, len(plan.param_names(n)))) for n in names}
    for n in names:
        params[n][:] = plan.models[n].param_vector(chain.states[n], datas[n])
    for t in range(n_sweeps):
        for j, name in enumerate(names):
            if name in level2 and prep.level2_draw[name].size:
                todo = prep.level2_draw[name]
                frame = _cluster_frame(plan, prep, values, cur, states, datas, name, todo)
                d = datas[name]
                text = plan.spec.variables_by_name[name].formula.text
                X = _design(d.X.spec, d.X.names, frame, np.arange(todo.size), text)
                nd = replace(
                    d,
                    X=Block(d.X.names, d.X.obs, X, d.X.fast, d.X.slow, d.X.spec),
                    mis_idx=np.arange(todo.size),
                    codes_mis=np.zeros(todo.size, dtype=np.intp),
                )
                state = states[name]
                if name in latent:  # a level-2 model has no random intercept to shift
                    state = shift_intercept(state, latent[name][0], latent[name][1])
                draw = plan.models[name].draw_missing(rng, state, nd)
                if name in shift:
                    draw = draw + shift[name]
                if name in cshift:
                    draw = draw + cshift[name][todo]
                per_cluster = np.full(prep.n_clusters, np.nan)
                per_cluster[todo] = draw
                rows = np.flatnonzero(np.isin(codes, todo) & np.isnan(prep.level2[name]))
                cur[name][rows] = per_cluster[codes[rows]]
            elif name in level2:
                draw = np.empty(0)
            elif mis[name].size == 0:
                if prep.n_new_clusters and name in read:  # effects a ranef(x) term reads
                    frame = _frame(plan, prep, values, cur)
                    states[name] = _redraw(plan, prep, frame, states, datas, name, rng)
                draw = np.empty(0)
            else:
                rows = mis[name]
                frame = _frame(plan, prep, values, cur)
                if prep.n_new_clusters:
                    states[name] = _redraw(plan, prep, frame, states, datas, name, rng)
                d = datas[name]
                text = plan.spec.variables_by_name[name].formula.text
                X = _design(d.X.spec, d.X.names, frame, rows, text)
                Z = None
                if d.Z is not None:
                    Z = replace(d.Z, mis=_z_design(prep, d, name, frame, rows))
                nd = replace(
                    d,
                    X=Block(d.X.names, d.X.obs, X, d.X.fast, d.X.slow, d.X.spec),
                    Z=Z,
                    mis_idx=rows,
                    codes_mis=codes[rows],
                    n_clusters=prep.n_clusters,
                )
                state = states[name]
                if name in latent:  # categorical and count models: on the linear predictor
                    index, delta, zi = latent[name]
                    state = shift_intercept(state, index, delta, zi, cshift.get(name))
                draw = plan.models[name].draw_missing(rng, state, nd)
                if name in shift:
                    draw = draw + shift[name]
                if name in cshift and name not in latent:
                    draw = draw + cshift[name][codes[rows]]
                cur[name][rows] = draw
            if draw.size:
                mean[t, j] = draw.mean()
                sd[t, j] = draw.std(ddof=1) if draw.size > 1 else 0.0
    for name in names:
        src = prep.level2[name] if name in level2 else prep.start[name]
        imputed[name] = cur[name][np.isnan(src)]
    return ChainResult(imputed, mean, sd, params, None)


def _redraw(plan: Plan, prep: _Prepared, frame: pd.DataFrame, states, datas, name, rng):
    """The state of ``name``'s model with the new clusters' effects redrawn as a training
    iteration would (:func:`~mlimpute.newdata.effects.redraw_new`): given the new
    clusters' observed rows of ``name`` for a normal model of its values, else from
    N(0, Ψ)."""
    J = plan.layout.segments.n_clusters
    new = np.arange(J, prep.n_clusters)
    d = datas[name]
    rows = None
    if reads_response(plan.models[name]) and getattr(d, "Z", None) is not None:
        r = np.flatnonzero(~np.isnan(prep.start[name]) & (prep.codes >= J))
        if r.size:
            text = plan.spec.variables_by_name[name].formula.text
            X = _design(d.X.spec, d.X.names, frame, r, text)
            Z = _z_design(prep, d, name, frame, r)
            rows = NewRows(X, Z, prep.start[name][r], prep.codes[r])
    return redraw_new(states[name], new, rng, rows)


def _cluster_frame(plan, prep, values, cur, states, datas, name, todo) -> pd.DataFrame:
    """One row per new cluster in ``todo`` as a level-2 formula reads it: the cluster's
    first new row (cluster means over its new rows) and, for ``ranef(x)``, the effects of
    x's model for the cluster (drawn from N(0, Ψ) for a new cluster)."""
    frame = _frame(plan, prep, values, cur)
    first = np.array([np.flatnonzero(prep.codes == c)[0] for c in todo], dtype=np.intp)
    out = frame.iloc[first].reset_index(drop=True)
    for x in plan.spec.variables_by_name[name].formula.ranefs:
        b, znames = plan.models[x].random_effects(states[x], datas[x])
        if len(znames) == 1:
            out[ranef_column(x)] = b[todo, 0]
        else:
            for k, z in enumerate(znames):
                out[ranef_column(x, z)] = b[todo, k]
    return out


def _frame(plan: Plan, prep: _Prepared, values, cur: dict[str, np.ndarray]) -> pd.DataFrame:
    """The new rows as the formulas read them: current values (categories decoded) and
    cluster means over each cluster's training and new rows."""
    frame = prep.static.copy(deep=False)
    for name, x in cur.items():
        frame[name] = decode(x, plan.like[name]) if name in plan.like else x
    if prep.cmeans:
        tcodes = plan.layout.codes
        K = prep.n_clusters
        n_t = np.bincount(tcodes, minlength=K).astype(float)
        n_n = np.bincount(prep.codes, minlength=K).astype(float)
        for c in prep.cmeans:
            if c in cur:
                tv, nv = values[c], cur[c]
            else:
                # as the plan reads them: values, or codes in the training categories
                tv = encode(plan.static[c])
                nv = encode_like(prep.static[c], plan.static[c], c)
            s = np.bincount(tcodes, weights=tv, minlength=K) + np.bincount(
                prep.codes, weights=nv, minlength=K
            )
            frame[cmean_column(c)] = (s / (n_t + n_n))[prep.codes]
    return frame


@dataclass
class _OutPlan:
    """What :func:`~mlimpute.result.assemble.assemble` reads of a plan, for the new rows."""

    spec: Any
    prep: _Prepared
    plan: Plan

    @property
    def names(self) -> list[str]:
        return self.plan.names

    @property
    def layout(self):
        # the new rows are not sorted: positions are their own
        return _Identity(len(self.prep.static))

    def missing_rows(self, name: str) -> np.ndarray:
        src = self.prep.level2.get(name)
        if src is None:
            src = self.prep.start[name]
        return np.flatnonzero(np.isnan(src))

    def param_names(self, name: str) -> list[str]:
        return self.plan.param_names(name)


@dataclass
class _Identity:
    n: int

    @property
    def order(self) -> np.ndarray:
        return np.arange(self.n)
