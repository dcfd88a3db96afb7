"""Chained equations with a carried Gibbs state.

Each of the m imputations is an independent chain started from random draws of the
observed values. One iteration visits every incomplete variable once: refresh the design
columns that depend on imputed values, take **one** Gibbs step of that variable's model
parameters (the state is carried from visit to visit, unlike mice's ``2l.norm``, which
restarts an inner sampler at every visit), then draw its missing values.

:func:`build_plan` does the work that is the same for every chain (sorting rows by cluster,
materialising designs); :func:`run_chain` is a pure function of the plan and a chain's seed,
so results never depend on the executor or the order chains run in.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass, replace

import numpy as np
import pandas as pd

from mlimpute.codec import categories, decode, encode, template
from mlimpute.errors import ChainError, SpecificationError, UnsupportedError
from mlimpute.models import ConditionalModel, get_model
from mlimpute.models.base import refuse_extra_terms
from mlimpute.models.registry import multi_term_model
from mlimpute.models.segments import Segments
from mlimpute.parallel import one_blas_thread
from mlimpute.sampler.compatible import ANALYSIS, extra_param_names, run_compatible_chain
from mlimpute.sampler.design import (
    ClusterValues,
    Layout,
    ModelData,
    Values,
    build_model_data,
    chain_designs,
)
from mlimpute.sampler.ranefs import ranef_arrays
from mlimpute.sampler.shifts import ModelShifts
from mlimpute.spec.build import LATENT_DELTA_METHODS, ImputationSpec
from mlimpute.spec.formula import ParsedFormula, cmean_column, ranef_column
from mlimpute.spec.model import latent_means, model_based, outcome_method

__all__ = ["ANALYSIS", "Plan", "ChainResult", "ChainState", "build_plan", "run_chain", "run_chains"]

_TEMPLATE_SEED = 20050705  # template fill only decides collinearity; fixed for determinism


@dataclass
class Plan:
    """Everything the chains share; built once, read-only afterwards."""

    spec: ImputationSpec
    layout: Layout
    static: pd.DataFrame
    data: dict[str, ModelData]
    models: dict[str, ConditionalModel]
    start: dict[str, np.ndarray]
    like: dict[str, pd.Series] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    cluster_static: pd.DataFrame | None = None  # one row per cluster, for level-2 models
    #: model-based imputation: the analysis model's data (rows with the outcome observed
    #: as its observed rows) and model; None for chained equations
    analysis: ModelData | None = None
    analysis_model: ConditionalModel | None = None
    #: three levels: the level-3 factor's segments over the sorted rows and one row per
    #: level-3 cluster (cmean columns: level-3 means), for level-3 models
    top_segments: object = None
    top_static: pd.DataFrame | None = None

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.spec.variables]

    def missing_rows(self, name: str) -> np.ndarray:
        """Sorted-order positions of the rows where ``name`` is missing."""
        return np.flatnonzero(np.isnan(self.start[name]))

    def param_names(self, name: str) -> list[str]:
        return self.models[name].param_names(self.data[name]) + extra_param_names(self, name)


@dataclass(frozen=True)
class ChainState:
    """Where a chain stopped: enough to run it on exactly as if it had never stopped.

    The chain's completed values are ``plan.start`` with ``imputed`` written into the
    missing cells (a level-2 variable's cluster values are read back from its rows), the
    model states are those of the last visit, and ``rng`` is the generator's
    ``bit_generator.state``. Continuing from here makes the same random calls in the same
    order as one longer run (:func:`run_chain` with ``start=``).
    """

    seed: np.random.SeedSequence  # the chain's own seed (its spawn key names the chain)
    iterations: int  # iterations run so far
    imputed: dict[str, np.ndarray]  # variable -> current values of its missing cells (sorted)
    states: dict[str, object]  # variable (or ANALYSIS) -> last model state
    rng: dict  # numpy ``bit_generator.state`` after the last iteration


@dataclass
class ChainResult:
    """What one chain returns: last imputations and per-iteration traces."""

    imputed: dict[str, np.ndarray]
    mean: np.ndarray  # (iterations, variables)
    sd: np.ndarray  # (iterations, variables)
    params: dict[str, np.ndarray]  # variable -> (iterations, k)
    final: ChainState | None = None  # where the chain stopped


def build_plan(df: pd.DataFrame, spec: ImputationSpec) -> Plan:
    """Sort rows by cluster, fill a template and materialise every model's design once.

    BLAS is held at one thread meanwhile: the rank checks (QR of tall designs) slow down
    5-20x with two BLAS threads when another process uses the second core.
    """
    with one_blas_thread():
        plan = _build_plan(df, spec)
    latent_shifts(plan)  # a latent shift needs an intercept: refused before any chain
    return plan


def _build_plan(df: pd.DataFrame, spec: ImputationSpec) -> Plan:
    if spec.factors:
        layout = Layout.from_factors(df, spec.cluster, spec.factors)
    else:
        layout = Layout.from_frame(df, spec.cluster)
    top = _top_segments(layout, spec)
    names = [v.name for v in spec.variables]
    used = set()
    cmeans, factor_means = set(), set()
    for v in spec.variables:
        used |= v.formula.variables
        cmeans |= set(v.formula.cmeans)
        factor_means |= set(v.formula.factor_means)
    if spec.model is not None:
        used |= spec.model.variables
    cols = [c for c in df.columns if c in used]
    static = _model_dtypes(df[cols].iloc[layout.order].reset_index(drop=True))
    fill_rng = np.random.default_rng(_TEMPLATE_SEED)
    start, like = {}, {}
    codes, first = layout.codes, layout.segments.starts
    latent = latent_means(spec)
    for v in spec.variables:
        name = v.name
        x = encode(static[name])
        start[name] = x
        if name in latent:  # lmean(x): never observed; x's (filled) cluster means
            x = layout.cluster_mean(encode(static[latent[name]]))
        elif v.level == 2:
            x = _cluster_values(x, codes, layout.segments.n_clusters)
            miss = np.isnan(x)
            x[miss] = fill_rng.choice(x[~miss], size=int(miss.sum()))
            x = np.take(x, codes)
        elif v.level == 3:
            x = _cluster_values(x, top.codes, top.n_clusters)
            miss = np.isnan(x)
            x[miss] = fill_rng.choice(x[~miss], size=int(miss.sum()))
            x = np.take(x, top.codes)
        else:
            x = x.copy()
            miss = np.isnan(x)
            x[miss] = fill_rng.choice(x[~miss], size=int(miss.sum()))
        if categories(static[name]) is not None:
            like[name] = template(static[name])
        static[name] = decode(x, static[name])
    for c in sorted(cmeans):
        static[cmean_column(c)] = layout.cluster_mean(encode(static[c]))
    for c, g in sorted(factor_means):  # cmean(x, school): over another grouping factor
        static[cmean_column(c, g)] = layout.factor_mean(encode(static[c]), g)
    dynamic = set(names) | {cmean_column(n) for n in names}
    dynamic |= {cmean_column(c, g) for c, g in factor_means if c in names}
    data, models, events = {}, {}, list(spec.events)
    cluster_static = top_static = None
    for v in sorted(spec.variables, key=lambda v: v.level):  # level 1 first: ranef needs Z
        if v.level == 3:
            if top_static is None:
                top_static = static.iloc[top.starts].reset_index(drop=True)
                for c in sorted(cmeans):  # cmean() on level-3 rows: level-3 means
                    top_static[cmean_column(c)] = top.mean(encode(static[c]))
            y3 = _cluster_values(start[v.name], top.codes, top.n_clusters)
            data[v.name] = build_model_data(
                v.formula,
                top_static,
                ~np.isnan(y3),
                Layout.single(top.n_clusters),
                dynamic,
                y=y3,
            )
        elif v.level == 2:
            if cluster_static is None:
                cluster_static = static.iloc[first].reset_index(drop=True)
            f, ranef_cols = _expand_ranef(v.formula, data, models)
            for col in ranef_cols:  # placeholders: only the design's structure depends on them
                cluster_static[col] = fill_rng.standard_normal(len(first))
            y2 = _cluster_values(start[v.name], codes, layout.segments.n_clusters)
            if v.name in latent:  # lmean(x): fitted to its drawn values, every cluster
                y2 = cluster_static[v.name].to_numpy(dtype=np.float64)
            data[v.name] = build_model_data(
                f,
                cluster_static,
                ~np.isnan(y2),
                _cluster_rows_layout(layout, f),
                dynamic | set(ranef_cols),
                y=y2,
            )
        elif v.name in model_based(spec) and v.name != spec.model.response:
            # model-based: a predictor's model is fitted to its completed column (all rows)
            data[v.name] = build_model_data(
                v.formula,
                static,
                np.ones(layout.n, dtype=bool),
                layout,
                dynamic,
                y=encode(static[v.name]),
            )
        else:
            data[v.name] = build_model_data(
                v.formula, static, ~np.isnan(start[v.name]), layout, dynamic, y=start[v.name]
            )
        if v.name in like:  # category labels of the codes, for the model's names
            data[v.name] = replace(data[v.name], categories=tuple(categories(like[v.name])))
        d = data[v.name]
        if v.formula.is_multilevel and (d.Z is None or d.Z.obs.shape[1] == 0):
            raise SpecificationError(
                f"no random effect of {d.group!r} is left in the formula for "
                f"{v.name!r} ({v.formula.text!r}): its random-part columns are constant or "
                "collinear on the observed rows; use (1 | ...) or a single-level method"
            )
        models[v.name] = _model(v.name, v.method, dict(v.options), d)
        refuse_extra_terms(models[v.name], d)  # several grouping factors: multi-term models
        models[v.name].check(d)  # a problem the model sees in its data: named, before chains
        events += data[v.name].events
    analysis = analysis_model = None
    if spec.model is not None:
        y = spec.model.response
        if y in data:
            analysis, analysis_model = data[y], models[y]
        else:
            yv = encode(static[y])
            analysis = build_model_data(spec.model, static, ~np.isnan(yv), layout, dynamic, y=yv)
            family = getattr(spec, "family", None)
            analysis_model = _model(y, outcome_method(static[y], y, family), {}, analysis)
            analysis_model.check(analysis)
            events += analysis.events
    return Plan(
        spec,
        layout,
        static,
        data,
        models,
        start,
        like,
        events,
        cluster_static,
        analysis,
        analysis_model,
        top,
        top_static,
    )


def _model(name: str, method: str, options: dict, d: ModelData) -> ConditionalModel:
    """The model of ``name``: with random terms over several grouping factors, the
    several-terms version of ``method`` (refused, naming it, where there is none)."""
    if not d.extra_terms:
        return get_model(method).factory(**options)
    factory = multi_term_model(method)
    if factory is None:
        factors = [d.group, *(t.group for t in d.extra_terms)]
        raise UnsupportedError(
            f"method {method!r} for {name!r} has no version for several grouping factors "
            f"({factors}); use '2l.norm' or a formula with one grouping factor"
        )
    return factory(**options)


def _top_segments(layout: Layout, spec: ImputationSpec) -> Segments | None:
    """Three levels: the level-3 factor's segments over the sorted rows (rows are sorted
    by it first), None otherwise."""
    if len(spec.hierarchy) < 2:
        return None
    fac = layout.factor(spec.hierarchy[0])
    return Segments.from_codes(fac.codes, fac.n_clusters)


def _cluster_rows_layout(layout: Layout, f: ParsedFormula) -> Layout:
    """The layout of a level-2 model's rows (one per cluster): one cluster, or with three
    levels and a random part over level 3, the level-3 clusters."""
    n = layout.segments.n_clusters
    if f.group is None or not layout.factors:
        return Layout.single(n)
    fac = layout.factor(f.group)
    codes = fac.codes[layout.segments.starts]
    return Layout(np.arange(n), Segments.from_codes(codes, fac.n_clusters), fac.labels, f.group)


def _model_dtypes(static: pd.DataFrame) -> pd.DataFrame:
    """Columns as formulaic reads them: pandas' nullable ``string`` dtype (missing values
    ``pd.NA``, what ``DataFrame.convert_dtypes`` gives) becomes an object column of the
    same strings, a categorical factor like any other column of strings."""
    for c in static.columns:
        dtype = static[c].dtype
        if isinstance(dtype, pd.StringDtype) and dtype.na_value is pd.NA:
            static[c] = static[c].astype(object)
    return static


def _cluster_values(x: np.ndarray, codes: np.ndarray, n_clusters: int) -> np.ndarray:
    """One value per cluster from a row-level column that is constant within clusters."""
    out = np.full(n_clusters, np.nan)
    obs = ~np.isnan(x)
    out[codes[obs]] = x[obs]
    return out


def _expand_ranef(
    f: ParsedFormula, data: dict[str, ModelData], models: dict[str, ConditionalModel]
) -> tuple[ParsedFormula, list[str]]:
    """Replace ``ranef(x)`` by one column per random effect of x's model, named by the model
    (:meth:`~mlimpute.models.base.ConditionalModel.random_effect_names`): ``ranef(x)`` for a
    single effect, else ``ranef(x)[Intercept]``, ``ranef(x)[gender]``... (for a nominal x,
    one per category and effect: ``ranef(x)[b:Intercept]``)."""
    cols, fixed = [], f.fixed
    for x in f.ranefs:
        znames = models[x].random_effect_names(data[x])
        if len(znames) == 1:
            new = [ranef_column(x)]
        else:
            new = [ranef_column(x, z) for z in znames]
            fixed = fixed.replace(
                f"`{ranef_column(x)}`", "(" + " + ".join(f"`{c}`" for c in new) + ")"
            )
        cols += new
    return replace(f, fixed=fixed), cols


def run_chain(
    plan: Plan,
    chain: int,
    seed: np.random.SeedSequence,
    start: ChainState | None = None,
    iterations: int | None = None,
) -> ChainResult:
    """Run one chain from its own seed, or continue it from ``start``.

    Parameters
    ----------
    plan : Plan
        The plan (read-only).
    chain : int
        The chain's 0-based number (for error messages).
    seed : numpy.random.SeedSequence
        The chain's seed; its generator is used from the beginning unless ``start`` is
        given.
    start : ChainState, optional
        Where an earlier run of this chain stopped: the chain goes on from there (its
        generator state, model states and imputed values), bit-identical to a run that
        never stopped.
    iterations : int, optional
        Iterations to run (default ``plan.spec.iterations``).

    Returns
    -------
    ChainResult
        Traces of the iterations run here; ``final`` is where the chain stopped.
    """
    n = plan.spec.iterations if iterations is None else int(iterations)
    try:
        rng = np.random.default_rng(seed)
        if start is not None:
            rng.bit_generator.state = start.rng
        if plan.analysis is not None:
            shifts = None
            if plan.spec.delta or plan.spec.delta_cluster_sd:  # mlimpute.sampler.shifts
                cu = cluster_shifts(plan, seed)
                shifts = ModelShifts(plan, latent_shifts(plan), cu, shift_intercept)
            imputed, mean, sd, params, states = run_compatible_chain(plan, rng, n, start, shifts)
            done = n if start is None else start.iterations + n
            final = final_state(plan, seed, done, imputed, states, rng)
            return ChainResult(imputed, mean, sd, params, final)
        return _run_chain(plan, rng, n, start, seed)
    except (KeyboardInterrupt, ChainError):
        raise
    except Exception as exc:
        raise ChainError(
            f"chain {chain + 1} failed ({type(exc).__name__}: {exc}); reproduce it with the "
            f"same data and rng={seed.entropy} (chain spawn key {seed.spawn_key})",
            chain=chain,
            seed_entropy=seed.entropy,
        ) from exc


def start_values(
    plan: Plan, rng: np.random.Generator, start: ChainState | None
) -> tuple[Values, dict[str, np.ndarray]]:
    """A chain's completed columns (sorted order) and level-2 cluster values: random draws
    of the observed values for a new chain (random calls in visit order), or the values
    where ``start`` stopped (no random calls)."""
    values = Values(plan.layout, like=plan.like)
    levels = {v.name: v.level for v in plan.spec.variables}
    cvals = {}
    for name in plan.names:
        x = plan.start[name].copy()
        if start is not None:
            x[plan.missing_rows(name)] = start.imputed[name]
        if levels[name] >= 2:
            seg = plan.layout.segments if levels[name] == 2 else plan.top_segments
            codes = seg.codes
            c = _cluster_values(x, codes, seg.n_clusters)
            if start is None:
                mis = np.isnan(c)
                c[mis] = rng.choice(c[~mis], size=int(mis.sum()))
            cvals[name] = c
            x = np.take(c, codes)
        elif start is None:
            mis = np.isnan(x)
            x[mis] = rng.choice(x[~mis], size=int(mis.sum()))
        values[name] = x
    return values, cvals


def final_state(
    plan: Plan,
    seed: np.random.SeedSequence,
    iterations: int,
    imputed: dict[str, np.ndarray],
    states: dict[str, object],
    rng: np.random.Generator,
) -> ChainState:
    """Where a chain stopped (after checking its imputations are finite)."""
    bad = [n for n in plan.names if not np.all(np.isfinite(imputed[n]))]
    if bad:
        raise FloatingPointError(f"non-finite imputations for {bad}")
    return ChainState(seed, iterations, imputed, dict(states), rng.bit_generator.state)


def _run_chain(
    plan: Plan,
    rng: np.random.Generator,
    T: int,
    start: ChainState | None,
    seed: np.random.SeedSequence,
) -> ChainResult:
    # the plan's designs, refreshed in place (copies only while another thread holds them)
    with chain_designs(plan.data, plan.names) as datas:
        return _steps(plan, rng, T, start, seed, datas)


def _steps(
    plan: Plan,
    rng: np.random.Generator,
    T: int,
    start: ChainState | None,
    seed: np.random.SeedSequence,
    datas: dict[str, ModelData],
) -> ChainResult:
    names = plan.names
    values, cvals = start_values(plan, rng, start)
    codes, first = plan.layout.codes, plan.layout.segments.starts
    level2 = {v.name for v in plan.spec.variables if v.level == 2}
    level3 = {v.name for v in plan.spec.variables if v.level == 3}
    states: dict[str, object] = {} if start is None else dict(start.states)
    done = 0 if start is None else start.iterations
    mean = np.empty((T, len(names)))
    sd = np.empty((T, len(names)))
    params = {n: np.empty((T, len(plan.param_names(n)))) for n in names}
    shift = dict(plan.spec.delta)  # sensitivity shifts: no random numbers, other models see them
    latent = latent_shifts(plan)  # categorical and count models: on the linear predictor
    cluster_shift = cluster_shifts(plan, seed)  # per-cluster shifts, from their own generator
    for t in range(T):
        for k, name in enumerate(names):
            d, model = datas[name], plan.models[name]
            if name in level2:
                view = ClusterValues(values, first, ranef_arrays(plan, name, states))
                d.refresh(view, plan.cluster_static)
            elif name in level3:
                top = plan.top_segments
                d.refresh(ClusterValues(values, top.starts, {}, top), plan.top_static)
            else:
                d.refresh(values, plan.static)
            if done + t == 0:
                states[name] = model.init(rng, d)
            else:
                states[name] = model.step(rng, states[name], d)
            if name in latent:
                index, delta, zi = latent[name]
                u = cluster_shift.get(name)
                draw = model.draw_missing(
                    rng, shift_intercept(states[name], index, delta, zi, u), d
                )
            else:
                draw = model.draw_missing(rng, states[name], d)
            if name in shift and name not in latent:
                draw = draw + shift[name]
            if name in cluster_shift and name not in latent:
                u = cluster_shift[name]
                draw = draw + (u[d.mis_idx] if name in level2 else u[codes[d.mis_idx]])
            if name in level2:
                cvals[name][d.mis_idx] = draw
                values[name][:] = np.take(cvals[name], codes)
            elif name in level3:
                cvals[name][d.mis_idx] = draw
                values[name][:] = np.take(cvals[name], plan.top_segments.codes)
            else:
                values[name][d.mis_idx] = draw
            values.touch(name)
            mean[t, k], sd[t, k] = _mean_sd(draw)
            params[name][t] = model.param_vector(states[name], d)
    imputed = {n: values[n][plan.missing_rows(n)] for n in names}
    final = final_state(plan, seed, done + T, imputed, states, rng)
    return ChainResult(imputed, mean, sd, params, final)


def latent_shifts(plan: Plan) -> dict[str, tuple[int | None, float, int | None]]:
    """The variables whose shifts move the linear predictor (the latent scale of categorical
    models, the log scale of count models): per variable the position of the intercept in
    the fixed-effect design and the ``delta=`` shift (None and 0.0 without one), and, with
    ``delta_cluster_sd=``, the position of the random intercept in the random design (the
    per-cluster shifts are added to the clusters' random intercepts)."""
    delta = dict(plan.spec.delta)
    cluster_sd = dict(plan.spec.delta_cluster_sd)
    out = {}
    for name in plan.names:
        v = plan.spec.variables_by_name[name]
        if v.method not in LATENT_DELTA_METHODS or (name not in delta and name not in cluster_sd):
            continue
        d = plan.data[name]
        index = zi = None
        if name in delta:
            if "Intercept" not in d.X.names:
                raise SpecificationError(
                    f"delta for {name!r} shifts the linear predictor of its {v.method!r} "
                    f"model through its intercept, and {v.formula.text!r} has none; keep the "
                    "intercept"
                )
            index = d.X.names.index("Intercept")
        if name in cluster_sd:
            if v.level == 2 or d.Z is None or "Intercept" not in d.Z.names:
                raise SpecificationError(
                    f"delta_cluster_sd for {name!r} shifts the random intercepts of its "
                    f"{v.method!r} model, and {v.formula.text!r} has none; give it a random "
                    "intercept, (1 | cluster)"
                )
            zi = d.Z.names.index("Intercept")
        out[name] = (index, float(delta.get(name, 0.0)), zi)
    return out


def shift_intercept(
    state: object,
    index: int | None,
    delta: float,
    zi: int | None = None,
    u: np.ndarray | None = None,
) -> object:
    """``state`` with ``delta`` added to the intercept (position ``index``) of every linear
    core in it, and ``u`` (one shift per cluster) to the random intercepts (column ``zi``);
    a latent model keeps its core in ``core`` or, one per category, ``cores``. Its draws are
    those of the model with the linear predictor moved. Used for drawing only; the chain
    carries the unshifted state."""
    if not is_dataclass(state) or isinstance(state, type):
        return state
    changes = {}
    for f in fields(state):
        value = getattr(state, f.name)
        if f.name == "beta" and index is not None and isinstance(value, np.ndarray):
            beta = value.copy()
            beta[index] += delta
            changes["beta"] = beta
        elif f.name == "b" and u is not None and isinstance(value, np.ndarray):
            b = value.copy()
            b[:, zi] += u
            changes["b"] = b
        elif is_dataclass(value):
            changes[f.name] = shift_intercept(value, index, delta, zi, u)
        elif isinstance(value, tuple) and value and all(is_dataclass(x) for x in value):
            changes[f.name] = tuple(shift_intercept(x, index, delta, zi, u) for x in value)
    return replace(state, **changes) if changes else state


#: the spawn-key entry of the generator of the per-cluster shifts: a child of the chain's
#: seed that ``spawn()`` never reaches, so the chain's own random numbers are untouched
_CLUSTER_SHIFT_KEY = 2**32 - 1


def cluster_shifts(plan: Plan, seed: np.random.SeedSequence) -> dict[str, np.ndarray]:
    """Each variable of ``delta_cluster_sd``'s shift per cluster, N(0, sd²), drawn from a
    generator of its own derived from the chain's seed: the same at every iteration and
    when the chain is continued, and the chain's other draws are those of a run without."""
    if not plan.spec.delta_cluster_sd:
        return {}
    ss = np.random.SeedSequence(
        seed.entropy, spawn_key=(*seed.spawn_key, _CLUSTER_SHIFT_KEY), pool_size=seed.pool_size
    )
    g = np.random.default_rng(ss)
    J = plan.layout.segments.n_clusters
    return {name: sd * g.standard_normal(J) for name, sd in plan.spec.delta_cluster_sd}


def _mean_sd(x: np.ndarray) -> tuple[float, float]:
    """``x.mean()`` and ``x.std(ddof=1)`` (NaN and 0 for too few values), computed as numpy
    computes them but without its dispatch, which costs more than the sums here."""
    n = x.size
    if n == 0:
        return np.nan, 0.0
    mean = np.add.reduce(x) / n
    if n == 1:
        return mean, 0.0
    d = x - mean
    return mean, np.sqrt(np.add.reduce(d * d) / (n - 1))


def run_chains(plan: Plan, seeds: list[np.random.SeedSequence]) -> list[ChainResult]:
    """Run every chain serially, BLAS pinned to one thread (small matrices: threads only
    cost; executors come with the parallel back-ends)."""
    with one_blas_thread():
        return [run_chain(plan, k, s) for k, s in enumerate(seeds)]
