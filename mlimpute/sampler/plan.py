"""The plan of an imputation run: everything its chains share, built once.

:func:`build_plan` sorts the rows by cluster, fills a template of the incomplete columns
and materialises every model's design; the chains (:func:`mlimpute.sampler.engine.run_chain`)
read the :class:`Plan` and never change it.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from mlimpute._heap import release_free_memory
from mlimpute.codec import categories, decode, encode, template
from mlimpute.errors import SpecificationError, UnsupportedError
from mlimpute.models import ConditionalModel, get_model
from mlimpute.models.base import refuse_extra_terms
from mlimpute.models.registry import multi_term_model
from mlimpute.models.segments import Segments
from mlimpute.models.streamed import StreamedData
from mlimpute.parallel import one_blas_thread
from mlimpute.sampler import streamed as streaming
from mlimpute.sampler.chain_shifts import latent_shifts
from mlimpute.sampler.compatible import extra_param_names
from mlimpute.sampler.design import Layout, ModelData, build_model_data
from mlimpute.sampler.streamed import stored_data, streamed_model
from mlimpute.spec.build import ImputationSpec
from mlimpute.spec.formula import ParsedFormula, cmean_column, ranef_column
from mlimpute.spec.model import latent_means, model_based, outcome_method

__all__ = ["Plan", "build_plan"]


#: rows from which the plan frees its build's reference cycles at once (:func:`_build_plan`)
_COLLECT_ROWS = 100_000

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
    #: per variable whose design rows are its observed and missing rows (level 1, chained
    #: equations): those positions, the design's own arrays (read, never written)
    rows: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)
    _param_names: dict[str, list[str]] = field(default_factory=dict, repr=False)

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.spec.variables]

    def missing_rows(self, name: str) -> np.ndarray:
        """Sorted-order positions of the rows where ``name`` is missing (ascending)."""
        if name in self.rows:
            return self.rows[name][1]
        return np.flatnonzero(np.isnan(self.start[name]))

    def observed_rows(self, name: str) -> np.ndarray:
        """Sorted-order positions of the rows where ``name`` is observed (ascending)."""
        if name in self.rows:
            return self.rows[name][0]
        return np.flatnonzero(~np.isnan(self.start[name]))

    def param_names(self, name: str) -> list[str]:
        names = self._param_names.get(name)
        if names is None:
            names = self.models[name].param_names(self.data[name]) + extra_param_names(self, name)
            self._param_names[name] = names
        return list(names)

    def stored(self, name: str) -> ModelData:
        """``name``'s data with its design as rows (a copy a reader may refresh): the
        plan's own for a stored design, the design materialised for one read in chunks
        (:mod:`mlimpute.sampler.streamed`)."""
        d = self.data[name]
        if isinstance(d, StreamedData):
            return stored_data(d, self.layout)
        return d.for_chain()

    def release_rows(self) -> None:
        """Free the designs' rows once no chain will read them (before the result is
        assembled): the design matrices, observed responses and cluster codes of every
        model's rows. What assembling reads stays: the parameter names (kept from here
        on), the row order and each variable's observed and missing rows."""
        for name in self.names:
            self.param_names(name)
        for name, d in self.data.items():
            self.data[name] = d.without_rows()
        if self.analysis is not None:
            self.analysis = self.analysis.without_rows()


def build_plan(df: pd.DataFrame, spec: ImputationSpec) -> Plan:
    """Sort rows by cluster, fill a template and materialise every model's design once.

    BLAS is held at one thread meanwhile: the rank checks (QR of tall designs) slow down
    5-20x with two BLAS threads when another process uses the second core.
    """
    with one_blas_thread():
        plan = _build_plan(df, spec)
    release_free_memory(plan.layout.n)  # the template's columns and the build's temporaries
    latent_shifts(plan)  # a latent shift needs an intercept: refused before any chain
    return plan


def _build_plan(df: pd.DataFrame, spec: ImputationSpec) -> Plan:
    if spec.factors:
        outer = spec.hierarchy[0] if len(spec.hierarchy) >= 2 else None
        layout = Layout.from_factors(df, spec.cluster, spec.factors, outer)
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
        # cmean() and cmean(x, factor) of complete columns in the analysis model: fixed
        # columns (cmean(x, factor) of an incomplete x is refused by build_model_spec)
        cmeans |= set(spec.model.cmeans)
        factor_means |= set(spec.model.factor_means)
    cols = [c for c in df.columns if c in used]
    static = _model_dtypes(df[cols].iloc[layout.order].reset_index(drop=True))
    fill_rng = np.random.default_rng(_TEMPLATE_SEED)
    start, like = {}, {}
    codes, first = layout.codes, layout.segments.starts
    latent = latent_means(spec)
    observed = {}  # the sorted columns as given, back in static once the designs are built
    for v in spec.variables:
        name = v.name
        observed[name] = static[name]
        x = start[name] = _start_column(static[name])
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
            miss = np.isnan(x)  # positions, not masks: the same draws, 3x faster
            x[np.flatnonzero(miss)] = fill_rng.choice(
                np.take(x, np.flatnonzero(~miss)), size=int(miss.sum())
            )
        if categories(static[name]) is not None:
            like[name] = template(static[name])
        static[name] = decode(x, static[name])
    for c in sorted(cmeans):
        static[cmean_column(c)] = layout.cluster_mean(encode(static[c]))
    for c, g in sorted(factor_means):  # cmean(x, school): over another grouping factor
        static[cmean_column(c, g)] = layout.factor_mean(encode(static[c]), g)
    dynamic = set(names) | {cmean_column(n) for n in names}
    dynamic |= {cmean_column(c, g) for c, g in factor_means if c in names}
    data, models, events, rows = {}, {}, list(spec.events), {}
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
            streamed = None
            if spec.model is None and layout.n >= streaming.STREAM_MIN_ROWS:
                # large data, plain columns: no design rows stored
                model = get_model(v.method).factory(**dict(v.options))
                streamed = streamed_model(v.formula, model, static, layout, dynamic, start[v.name])
            if streamed is not None:
                data[v.name], models[v.name] = streamed
            else:
                data[v.name] = build_model_data(
                    v.formula, static, ~np.isnan(start[v.name]), layout, dynamic, y=start[v.name]
                )
            rows[v.name] = (data[v.name].obs_idx, data[v.name].mis_idx)
        if v.name in like:  # category labels of the codes, for the model's names
            data[v.name] = replace(data[v.name], categories=tuple(categories(like[v.name])))
        elif pd.api.types.is_integer_dtype(observed[v.name].dtype):
            # an integer column, rounded on output (a log transform keeps its draws >= 1)
            data[v.name] = replace(data[v.name], integer=True)
        d = data[v.name]
        if isinstance(d, StreamedData):  # a random intercept and a full-rank design
            events += d.events
            continue
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
    if spec.model is None:
        # the filled template only decided the designs' structure: every reader of an
        # imputed column (the per-visit refresh, check(), new data) takes a chain's values
        for name, col in observed.items():
            static[name] = col
        # and the cluster means of imputed columns are a chain's (the slow refresh path
        # adds the ones a formula needs, Block.refresh)
        gone = [cmean_column(c) for c in cmeans if c in observed]
        gone += [cmean_column(c, g) for c, g in factor_means if c in observed]
        for c in gone:
            del static[c]
        if layout.n >= _COLLECT_ROWS:
            # the filled columns are held in reference cycles (formulaic's evaluation) that
            # the next full collection would find much later: freed now (0.3 ms)
            gc.collect(1)
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
        rows,
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


def _start_column(s: pd.Series) -> np.ndarray:
    """The column as the chains start from it (values or category codes, NaN where
    missing), read-only: a float64 column's own values (shared with the data under
    copy-on-write), otherwise :func:`~mlimpute.codec.encode`."""
    if s.dtype == np.float64:
        x = s.to_numpy()
        if x.flags.writeable:  # pandas without copy-on-write: a copy of its own
            x = x.copy()
    else:
        x = encode(s)
    x.flags.writeable = False
    return x


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
