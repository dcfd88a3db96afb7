"""``impute_new`` after a chained imputation with several grouping factors.

With ``cluster=["school", "class"]`` (or crossed factors) every model may carry one
random-effect term per grouping factor. New rows are completed chain by chain with the
final model states, **parameters fixed**, as for one grouping factor
(:mod:`mlimpute.newdata`):

* the chain's completed training rows and the new rows are put together and the designs
  built on them with the training specification, so that the only missing cells are the
  new rows' ones;
* each term's random effects are the chain's for a cluster of its factor seen in training
  (a class, a school) and are redrawn at every sweep for a cluster not seen in training
  (a new class in a seen school gets the school's effect and a drawn class effect), as a
  training iteration draws them (:func:`redraw_terms`);
* class-level and school-level variables take their cluster's value (the chain's for a
  seen cluster, the value given in another new row of the cluster) or one draw per new
  cluster from their model;
* the missing cells are drawn by a short Gibbs run over the new rows, each sweep visiting
  the variables in the visit order with their models' own draws.

The run's sensitivity shifts (``delta=``) are added to the new imputations as a training
iteration adds them (:mod:`mlimpute.sampler.chain_shifts`): after each draw on the
variable's scale, on the linear predictor for categorical and count models.
Transforms fitted on the data (``center()``, ``scale()``, ``poly()``, ``bs()``) are
refused by name; new rows that change how the factors nest are a ``DataError``
(:func:`check_nesting`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from mlimpute.codec import categories
from mlimpute.errors import DataError, UnsupportedError
from mlimpute.models.ml_multi import MultiTermState, TermState
from mlimpute.models.ml_norm import MultilevelNormState
from mlimpute.newdata.checks import cluster_label, encode_like
from mlimpute.newdata.effects import (
    NewRows,
    draw_effects,
    reads_response,
    redraw_new,
    redraw_sigma2,
)
from mlimpute.newdata.states import completion_spec, map_nested
from mlimpute.parallel import map_blocks, one_blas_thread
from mlimpute.result.assemble import assemble
from mlimpute.result.imputed import MultiplyImputed
from mlimpute.rng import chain_seeds, recorded_seed
from mlimpute.sampler.chain_shifts import latent_shifts, shift_intercept
from mlimpute.sampler.design import ClusterValues, Layout, Values
from mlimpute.sampler.engine import ChainResult, Plan, _cluster_values, build_plan
from mlimpute.sampler.ranefs import ranef_arrays

__all__ = ["impute_new_factors"]

#: sweeps of the Gibbs run over the new rows when one sweep is not exact
DEFAULT_SWEEPS = 10


def impute_new_factors(
    imp: MultiplyImputed,
    data: pd.DataFrame,
    rng: Any,
    sweeps: int | None,
    n_jobs: int | None,
    client: Any,
) -> MultiplyImputed:
    """The several-grouping-factor branch of :func:`mlimpute.newdata.impute_new`
    (``data``: the checked copy of the new rows, columns and dtypes as in training); call
    it through ``imp.impute_new(new_df)``.

    Examples
    --------
    >>> import numpy as np, pandas as pd, mlimpute
    >>> r = np.random.default_rng(0)
    >>> df = pd.DataFrame({"school": np.repeat(range(10), 12), "class": np.tile(
    ...     np.repeat(range(3), 4), 10), "x": r.normal(size=120)})
    >>> df["y"] = df.x + r.normal(size=10)[df.school] + r.normal(size=120)
    >>> df.loc[::5, "y"] = np.nan
    >>> imp = df.mi.impute({"y": "~ x + (1 | school) + (1 | school:class)"},
    ...                    cluster=["school", "class"], m=2, iterations=5, rng=1)
    >>> new = pd.DataFrame({"school": [0, 50], "class": [7, 0], "x": [0.1, 0.2], "y": np.nan})
    >>> int(imp.impute_new(new, rng=2).complete(1)["y"].isna().sum())
    0
    """
    from mlimpute.newdata.model import (
        _combined,
        _OutPlan,
        refuse_stateful,
        stopped_chains,
        warn_far,
    )

    spec = imp.spec
    refuse_stateful(spec)
    if spec.delta_cluster_sd:  # refused in training with several factors already
        raise UnsupportedError(
            "impute_new() after an imputation with several grouping factors and per-cluster "
            "sensitivity shifts (delta_cluster_sd=) is not supported"
        )
    chains = stopped_chains(imp) if spec.variables else imp.chains
    train = imp.data
    new = data.reset_index(drop=True)
    groups = [spec.cluster, *spec.factors]
    for g in _factor_columns(groups):
        if new[g].isna().any():
            raise DataError(f"the grouping column {g!r} has missing values in new_df")
    plan_t = build_plan(train, spec)
    names = plan_t.names
    for c in plan_t.static.columns:
        if c in names or c not in new:
            continue
        if new[c].isna().any():
            raise DataError(
                f"column {c!r} has missing values in new_df, but no model imputes it (it is "
                "complete in the training data): give it values, or impute it in training"
            )
        if categories(train[c]) is not None:
            encode_like(new[c], train[c], c)
    for c in names:
        if categories(train[c]) is not None:
            encode_like(new[c], train[c], c)
    n_t = len(train)
    check_nesting(train, new, groups)  # before any plan: a changed nesting breaks the sort
    frames = [_combined(imp.complete(k + 1), new) for k in range(imp.m)]
    probe = build_plan(frames[0], spec)
    _check_structure(plan_t.layout, probe.layout)
    perms, n_new, news = {}, {}, {}
    for g in _groups(plan_t):
        lt, lc = _labels(plan_t.layout, g), _labels(probe.layout, g)
        tidx = lt.get_indexer(lc)
        k = int((tidx < 0).sum())
        perm = tidx.astype(np.intp)
        perm[tidx < 0] = len(lt) + np.arange(k)
        perms[g], n_new[g] = perm, k
        news[g] = np.flatnonzero(tidx < 0)
    is_new = probe.layout.order >= n_t
    levels = {v.name: v.level for v in spec.variables}
    per_row = 0
    for x in names:
        if levels[x] == 1:
            per_row = per_row + (np.isnan(probe.start[x]) & is_new).astype(int)
        else:
            per_row = per_row + 1  # a cluster-level draw: not counted as exact
    exact = bool(np.all(np.asarray(per_row) <= 1)) and not any(
        c in names for v in spec.variables for c in v.formula.cmeans
    )
    if exact and any(n_new.values()):
        exact = _one_sweep_exact(probe, news, is_new, names, levels)
    n_sweeps = (1 if exact else DEFAULT_SWEEPS) if sweeps is None else int(sweeps)
    seeds, entropy = chain_seeds(rng, imp.m)
    seed, spawn_key = recorded_seed(seeds, entropy)
    results: list[ChainResult] = []
    if names:
        items = list(zip(range(imp.m), seeds, chains, frames, strict=True))
        results = map_blocks(
            _run_block,
            (spec, n_t, perms, news, n_sweeps),
            items,
            n_jobs=n_jobs,
            client=client,
            name="mlimpute-impute-new",
        )
    out = _OutPlan(completion_spec(spec, n_sweeps, seed, spawn_key), probe, n_t, len(new))
    drawn = ", ".join(f"{k} new {g!r}" for g, k in n_new.items() if k)
    events = [
        f"completed {len(new)} new row(s) with the final model states of the {imp.m} "
        f"chains (parameters fixed; {n_sweeps} sweep(s) over the new rows' missing cells; "
        f"effects of clusters not seen in training redrawn at every sweep: "
        f"{drawn or 'none'})"
    ]
    warn_far(imp, results, names)
    like = {
        n: probe.like[n]
        for n in names
        if n in probe.like and categories(data[n]) != categories(probe.like[n])
    }
    return MultiplyImputed(assemble(out, results), data, out.spec, events, like=like or None)


def _one_sweep_exact(plan: Plan, news: dict, is_new, names: list[str], levels: dict) -> bool:
    """Whether one sweep is exact when every new row has at most one missing cell and no
    formula has a cluster mean of an imputed variable. A missing cell's draw then reads
    only observed values, except for the effects of clusters not seen in training, which
    a normal model draws given their observed rows of the variable (:func:`redraw_terms`).
    Where such a row holds a missing predictor of the model (its start value in the first
    sweep), or falls in new clusters of two of the model's terms (their effects are drawn
    one given the other), the effects of those clusters must not feed a missing cell of
    the variable; and a cluster-level variable must not read (``ranef(x)``) such effects
    before x's model has drawn them in the sweep."""
    lay = plan.layout
    missing = {}
    for x in names:
        if levels[x] == 1:
            missing[x] = np.isnan(plan.start[x]) & is_new
        else:
            seg = lay.segments if levels[x] == 2 else plan.top_segments
            c = _cluster_values(plan.start[x], seg.codes, seg.n_clusters)
            missing[x] = np.take(np.isnan(c), seg.codes)
    incomplete = {x for x in names if missing[x].any()}
    conditioned = set()
    for v in plan.spec.variables:
        if v.name not in names or not reads_response(plan.models[v.name]):
            continue
        preds = (v.formula.predictors & incomplete) - {v.name}
        if levels[v.name] != 1:  # rows of clusters: not followed row by row
            if preds:
                return False
            conditioned.add(v.name)
            continue
        d = plan.stored(v.name)
        terms = [(d.group, d.seg_obs.codes, d.codes_mis)]
        terms += [(t.group, t.codes_obs, t.codes_mis) for t in d.extra_terms]
        hit = [np.isin(obs, news.get(g, ())) for g, obs, _ in terms]
        if not np.any(hit):
            continue
        conditioned.add(v.name)
        bad = np.sum(hit, axis=0) >= 2
        for p in preds:
            bad |= missing[p][d.obs_idx]
        if not bad.any():
            continue
        if any(v.name in w.formula.ranefs for w in plan.spec.variables):
            return False
        for (_, obs, mis), h in zip(terms, hit, strict=True):
            if np.isin(mis, obs[bad & h]).any():
                return False
    for v in plan.spec.variables:
        if v.name not in incomplete or levels[v.name] == 1:
            continue
        for x in v.formula.ranefs:
            if x in conditioned and names.index(x) > names.index(v.name):
                return False
    return True


def _factor_columns(groups) -> list[str]:
    out = []
    for g in groups:
        for c in str(g).split(":"):
            if c not in out:
                out.append(c)
    return out


def _labels(layout: Layout, group: str) -> pd.Index:
    if group == layout.group:
        return pd.Index(layout.labels)
    return pd.Index(layout.factor(group).labels)


def _groups(plan: Plan) -> list[str]:
    return [plan.layout.group, *(f.name for f in plan.layout.factors)]


def check_nesting(train: pd.DataFrame, new: pd.DataFrame, groups) -> None:
    """Refuse new rows that change how the grouping factors nest: where every cluster of
    one factor lies in one cluster of another in the training data (each class in one
    school), the new rows must keep it so; the message names the cluster and the clusters
    it would lie in.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"school": [0, 0, 1], "cls": [0, 1, 2]})
    >>> check_nesting(t, pd.DataFrame({"school": [5], "cls": [9]}), ["cls", "school"])
    >>> check_nesting(t, pd.DataFrame({"school": [1], "cls": [0]}), ["cls", "school"])
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mlimpute.errors.DataError: the new rows change how the grouping factors nest: 'cls' 0 ...
    """
    groups = [g for g in dict.fromkeys(groups) if g]
    cols = _factor_columns(groups)
    if len(groups) < 2 or not len(new):
        return
    both = pd.concat([train[cols], new[cols]], ignore_index=True)
    n_t = len(train)
    keys = {g: _keys(both, g) for g in groups}
    for a in groups:
        for b in groups:
            if a == b or set(_factor_columns([a])) >= set(_factor_columns([b])):
                continue  # "school:class" lies in "school" by construction
            inner, outer = keys[a], keys[b]
            if not _nested(inner[:n_t], outer[:n_t]):
                continue
            count = pd.Series(outer).groupby(inner).nunique()
            if (count <= 1).all():
                continue
            code = int(count.index[np.argmax(count.to_numpy() > 1)])
            rows = np.flatnonzero(inner == code)
            first = rows[np.unique(outer[rows], return_index=True)[1]]
            where = [cluster_label(both, _factor_columns([b]), i) for i in first]
            raise DataError(
                f"the new rows change how the grouping factors nest: {a!r} "
                f"{cluster_label(both, _factor_columns([a]), rows[0])!r} would lie in {b!r} "
                f"{' and '.join(repr(w) for w in where)}, but every {a!r} lies in one "
                f"{b!r} in the training data; keep each {a!r} in one {b!r} (a new label "
                "for one that moves)"
            )


def _keys(frame: pd.DataFrame, group: str) -> np.ndarray:
    cols = _factor_columns([group])
    return frame.groupby(cols, sort=False, dropna=False).ngroup().to_numpy()


def _nested(inner: np.ndarray, outer: np.ndarray) -> bool:
    return bool((pd.Series(outer).groupby(inner).nunique() <= 1).all())


def _check_structure(lt: Layout, lc: Layout) -> None:
    """The new rows must keep the training nesting (every class in one school)."""
    for ft in lt.factors:
        fc = lc.factor(ft.name)
        a = (ft.contains_primary, ft.nested_in_primary)
        if a != (fc.contains_primary, fc.nested_in_primary):
            raise DataError(
                f"the new rows change how {ft.name!r} and {lt.group!r} nest (a cluster of "
                f"{lt.group!r} in two clusters of {ft.name!r}?); the models assume the "
                "training structure"
            )


def remap_terms(state: Any, d, perms: dict, rng: np.random.Generator) -> Any:
    """``state`` with every term's random effects in the combined layout's cluster order:
    a seen cluster keeps its effects, a new one draws them from its term's N(0, Ψ_k)."""
    if isinstance(state, MultiTermState):
        primary = _remap_norm(state.primary, perms[d.group], rng)
        extra = tuple(
            _remap_term(s, perms[t.group], rng)
            for s, t in zip(state.extra, d.extra_terms, strict=True)
        )
        return replace(state, primary=primary, extra=extra)
    if isinstance(state, MultilevelNormState):
        g = getattr(d, "group", None)
        return state if g not in perms else _remap_norm(state, perms[g], rng)
    return map_nested(state, lambda value: remap_terms(value, d, perms, rng))


def redraw_terms(state: Any, d, news: dict, rng: np.random.Generator, reads: bool) -> Any:
    """``state`` with every term's effects of the clusters not seen in training (``news``:
    factor -> their codes in the combined layout) redrawn as a training iteration would
    given the fixed parameters: for a normal model of the variable (``reads``) term by
    term from its conditional given the observed rows and the other terms' effects (the
    heteroscedastic model's new residual variances then given the effects), else from
    each term's N(0, Ψ_k). Seen clusters keep theirs."""
    if isinstance(state, MultiTermState):
        prim, extra = state.primary, list(state.extra)
        terms = d.extra_terms
        new_p = news.get(d.group, np.empty(0, dtype=np.intp))
        rows = None
        if reads and d.y_obs.size:
            hit = np.isin(d.seg_obs.codes, new_p)
            for t in terms:
                hit |= np.isin(t.codes_obs, news.get(t.group, ()))
            rows = np.flatnonzero(hit)
        if rows is None or not rows.size:
            b = draw_effects(prim.b, prim.psi, new_p, rng) if new_p.size else prim.b
            for i, (t, e) in enumerate(zip(terms, extra, strict=True)):
                new_t = news.get(t.group, np.empty(0, dtype=np.intp))
                if new_t.size:
                    extra[i] = replace(e, b=draw_effects(e.b, e.psi, new_t, rng))
            ch: dict[str, Any] = {"b": b}
            if np.ndim(prim.sigma2) > 0 and new_p.size:
                ch["sigma2"] = redraw_sigma2(prim, new_p, rng)
            return replace(state, primary=replace(prim, **ch), extra=tuple(extra))
        y = d.y_obs[rows]
        fit = d.X.obs[rows] @ prim.beta
        zp, cp = d.Z.obs[rows], d.seg_obs.codes[rows]
        zs = [t.Z.obs[rows] for t in terms]
        cs = [t.codes_obs[rows] for t in terms]
        part = [np.einsum("nq,nq->n", z, e.b[c]) for z, c, e in zip(zs, cs, extra, strict=True)]
        het = np.ndim(prim.sigma2) > 0
        w = 1.0 / (np.take(prim.sigma2, cp) if het else np.full(rows.size, float(prim.sigma2)))
        b = prim.b
        if new_p.size:
            b = draw_effects(b, prim.psi, new_p, rng, zp, y - fit - sum(part, 0.0), cp, w)
        zb = np.einsum("nq,nq->n", zp, b[cp])
        for i, (t, e) in enumerate(zip(terms, extra, strict=True)):
            new_t = news.get(t.group, np.empty(0, dtype=np.intp))
            if not new_t.size:
                continue
            others = sum((part[j] for j in range(len(part)) if j != i), 0.0)
            bi = draw_effects(e.b, e.psi, new_t, rng, zs[i], y - fit - zb - others, cs[i], w)
            part[i] = np.einsum("nq,nq->n", zs[i], bi[cs[i]])
            extra[i] = replace(e, b=bi)
        ch = {"b": b}
        if het and new_p.size:
            ch["sigma2"] = redraw_sigma2(prim, new_p, rng, y - fit - zb - sum(part, 0.0), cp)
        return replace(state, primary=replace(prim, **ch), extra=tuple(extra))
    if isinstance(state, MultilevelNormState):
        new = news.get(getattr(d, "group", None))
        if new is None or not new.size:
            return state
        rows = None
        if reads and d.y_obs.size:
            r = np.flatnonzero(np.isin(d.seg_obs.codes, new))
            rows = NewRows(d.X.obs[r], d.Z.obs[r], d.y_obs[r], d.seg_obs.codes[r])
        return redraw_new(state, new, rng, rows)
    return map_nested(state, lambda value: redraw_terms(value, d, news, rng, False))


def _draw_new(b: np.ndarray, psi: np.ndarray, perm: np.ndarray, rng) -> np.ndarray:
    J, q = b.shape
    k = int((perm >= J).sum())
    w, V = np.linalg.eigh(np.atleast_2d(psi))
    root = V * np.sqrt(np.clip(w, 0.0, None))
    return np.vstack([b, rng.standard_normal((k, q)) @ root.T])[perm]


def _remap_norm(st: MultilevelNormState, perm, rng) -> MultilevelNormState:
    J = st.b.shape[0]
    k = int((perm >= J).sum())
    ch: dict[str, Any] = {"b": _draw_new(st.b, st.psi, perm, rng)}
    if st.b_mean is not None:
        ch["b_mean"] = np.vstack([st.b_mean, np.zeros((k, st.b.shape[1]))])[perm]
    if np.ndim(st.sigma2) > 0:
        s2, nu = st.sigma_hyper
        new_s2 = np.maximum(nu * s2 / rng.chisquare(nu, size=k), st.sigma2_floor)
        ch["sigma2"] = np.concatenate([st.sigma2, new_s2])[perm]
    return replace(st, **ch)


def _remap_term(st: TermState, perm, rng) -> TermState:
    J = st.b.shape[0]
    k = int((perm >= J).sum())
    ch: dict[str, Any] = {"b": _draw_new(st.b, st.psi, perm, rng)}
    if st.b_mean is not None:
        ch["b_mean"] = np.vstack([st.b_mean, np.zeros((k, st.b.shape[1]))])[perm]
    return replace(st, **ch)


def _run_block(shared, block: list) -> list[ChainResult]:
    spec, n_t, perms, news, n_sweeps = shared
    with one_blas_thread():
        return [
            _complete_chain(spec, n_t, perms, news, n_sweeps, seed, chain, frame)
            for _, seed, chain, frame in block
        ]


def _complete_chain(spec, n_t, perms, news, n_sweeps, seed, chain, frame):
    rng = np.random.default_rng(seed)
    plan = build_plan(frame, spec)
    lay = plan.layout
    names = plan.names
    codes, first = lay.codes, lay.segments.starts
    top = plan.top_segments
    levels = {v.name: v.level for v in spec.variables}
    states = {n: remap_terms(chain.states[n], plan.data[n], perms, rng) for n in names}
    values = Values(lay, like=plan.like)
    cvals = {}
    for name in names:
        x = plan.start[name].copy()
        if levels[name] >= 2:
            seg = lay.segments if levels[name] == 2 else top
            c = _cluster_values(x, seg.codes, seg.n_clusters)
            mis = np.isnan(c)
            if mis.any():
                c[mis] = rng.choice(c[~mis], size=int(mis.sum()))
            cvals[name] = c
            x = np.take(c, seg.codes)
        else:
            mis = np.isnan(x)
            if mis.any():
                x[mis] = rng.choice(x[~mis], size=int(mis.sum()))
        values[name] = x
    datas = {n: plan.stored(n) for n in names}
    any_new = any(v.size for v in news.values())
    read = {x for v in spec.variables for x in v.formula.ranefs}
    latent = latent_shifts(plan)  # categorical and count models: on the linear predictor
    shift = {n: dv for n, dv in spec.delta if n not in latent}  # continuous: on the draws
    V = len(names)
    mean = np.full((n_sweeps, V), np.nan)
    sd = np.zeros((n_sweeps, V))
    for t in range(n_sweeps):
        for k, name in enumerate(names):
            d, model = datas[name], plan.models[name]
            if d.n_mis == 0 and not (any_new and name in read):
                continue
            if levels[name] == 2:
                view = ClusterValues(values, first, ranef_arrays(plan, name, states))
                d.refresh(view, plan.cluster_static)
            elif levels[name] == 3:
                d.refresh(ClusterValues(values, top.starts, {}, top), plan.top_static)
            else:
                d.refresh(values, plan.static)
            if any_new:  # new clusters' effects: redrawn as a training iteration would
                states[name] = redraw_terms(states[name], d, news, rng, reads_response(model))
            if d.n_mis == 0:
                continue
            state = states[name]
            if name in latent:  # the run's delta= shift, as a training iteration adds it
                state = shift_intercept(state, latent[name][0], latent[name][1])
            draw = model.draw_missing(rng, state, d)
            if name in shift:
                draw = draw + shift[name]
            if levels[name] == 2:
                cvals[name][d.mis_idx] = draw
                values[name][:] = np.take(cvals[name], codes)
            elif levels[name] == 3:
                cvals[name][d.mis_idx] = draw
                values[name][:] = np.take(cvals[name], top.codes)
            else:
                values[name][d.mis_idx] = draw
            values.touch(name)
            mean[t, k] = draw.mean()
            sd[t, k] = draw.std(ddof=1) if draw.size > 1 else 0.0
    params = {}
    for name in names:
        pv = plan.models[name].param_vector(states[name], datas[name])
        params[name] = np.tile(np.asarray(pv, dtype=float), (n_sweeps, 1))
    imputed = {}
    for name in names:
        miss = np.isnan(plan.start[name]) & (lay.order >= n_t)
        imputed[name] = values[name][miss]
    return ChainResult(imputed, mean, sd, params, None)
