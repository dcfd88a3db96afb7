"""Which models read their designs in chunks of rows, and their data.

On large data (:data:`STREAM_MIN_ROWS` rows and more) a level-1 variable imputed by the
multilevel normal model (``2l.norm``, or ``2l.pmm`` matching on it) with a random
intercept, whose fixed part is the intercept, plain numeric columns (data columns,
imputed columns, ``cmean()`` of the clusters) and interactions of these, keeps no design
rows: :class:`~mlimpute.models.streamed.StreamedData` says where each column comes from,
and :class:`~mlimpute.models.ml_norm_streamed.StreamedMultilevelNorm` reads them chunk by
chunk, whatever the ``MLIMPUTE_NUMBA`` switch (:mod:`mlimpute._numba`): the route
depends on the data and the model alone. Anything else (a transform, a category, another
random part, a design the rank check would trim) is materialised
(:func:`~mlimpute.sampler.design.build_model_data`).
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd

from mlimpute.models.ml_norm import MultilevelNorm
from mlimpute.models.ml_norm_streamed import StreamedMultilevelNorm, cluster_stats
from mlimpute.models.pmm import MultilevelPMM
from mlimpute.models.segments import Segments
from mlimpute.models.streamed import Source, StreamedData, chunks
from mlimpute.sampler.block import Block
from mlimpute.sampler.design import ModelData
from mlimpute.sampler.layout import Layout
from mlimpute.sampler.materialise import (
    _model_matrix,
    column_factors,
    gram_full_rank,
    ones_rows,
    rows,
)
from mlimpute.sampler.values import Values
from mlimpute.spec.formula import ParsedFormula, split_cmean_column
from mlimpute.spec.grammar import validate_rhs

__all__ = ["STREAM_MIN_ROWS", "stored_data", "streamed_model"]

#: rows from which a model's design is read in chunks instead of stored
STREAM_MIN_ROWS = 100_000

_HEAD_ROWS = 64


def streamed_model(
    parsed: ParsedFormula,
    model: object,
    static: pd.DataFrame,
    layout: Layout,
    dynamic: set[str],
    y: np.ndarray,
) -> tuple[StreamedData, object] | None:
    """The streamed data and model of a level-1 variable with response ``y`` (sorted
    rows, NaN where missing), or None where its design is materialised.

    ``static`` is the plan's sorted frame with the imputed columns filled (the template)
    and the ``cmean()`` columns; ``dynamic`` the columns imputations change.
    """
    if (
        layout.n < STREAM_MIN_ROWS
        or layout.group is None
        or len(parsed.random_terms) != 1  # one random intercept, over the rows' clusters
        or parsed.random_terms[0][1] != layout.group
        or parsed.random_terms[0][0].terms.strip() != "1"
        or parsed.ranefs
    ):
        return None
    streamed = _streamed_model(model)
    if streamed is None:
        return None
    validate_rhs(parsed.fixed, parsed.text)
    head = _model_matrix(parsed.fixed, static.iloc[:_HEAD_ROWS], parsed, quiet=True)
    if head is None:
        return None
    spec = head.model_spec
    names = list(head.columns)
    factors = column_factors(spec, static)
    if factors is None:
        return None
    seg = layout.segments
    sources: list[Source] = []
    arrays, cluster_arrays = {}, {}
    for keys in factors:
        parts = []
        for c in keys:
            part = _source(c, static, dynamic, seg, arrays, cluster_arrays)
            if part is None:
                return None
            parts.append(part)
        if not parts:
            sources.append(Source("one"))
        elif len(parts) == 1:
            sources.append(parts[0])
        else:  # an interaction
            sources.append(Source("product", parts=tuple(parts)))
    observed = ~np.isnan(y)
    data = StreamedData(
        parsed.response,
        y,
        observed,
        np.flatnonzero(observed).astype(np.int32),
        np.flatnonzero(~observed).astype(np.int32),
        names,
        tuple(sources),
        arrays,
        cluster_arrays,
        chunks(seg.starts, layout.n),
        seg.n_clusters,
        layout.group,
        spec=spec,
    )
    if data.n_obs <= len(names) or not _full_rank(data, static, layout):
        return None  # the materialised design says why, or trims it
    return data, streamed


def _streamed_model(model: object) -> object | None:
    """``model`` for data read in chunks: the multilevel normal model (its half-t prior)
    and predictive mean matching on it (``2l.pmm``: the same matching on a streamed core);
    None for any other."""
    if type(model) is MultilevelNorm and model.prior != "iw":
        return StreamedMultilevelNorm.like(model)
    if type(model) is MultilevelPMM and type(model.core) is MultilevelNorm:
        if model.core.prior == "iw":
            return None
        new = copy.copy(model)
        new.core = StreamedMultilevelNorm.like(model.core)
        return new
    return None


def _source(
    c: str,
    static: pd.DataFrame,
    dynamic: set[str],
    seg: Segments,
    arrays: dict,
    cluster_arrays: dict,
) -> Source | None:
    """The source of the plain column ``c`` (an imputed column, its cluster means, a data
    column, kept in ``arrays``, or one constant within clusters, its values per cluster in
    ``cluster_arrays``), or None where it cannot be read in chunks."""
    if c in dynamic:
        split = split_cmean_column(c)
        if split is None and static[c].dtype == np.float64:
            return Source("value", c)
        if split is not None and split[1] is None:  # cmean(x) over the clusters
            return Source("cmean", c)
        return None  # cmean(x, factor), or an imputed column that is not numeric
    x = static[c].to_numpy()
    if not np.isfinite(x).all():
        return None
    if _constant_within(x, seg.starts):
        if c not in cluster_arrays:
            values = np.zeros(seg.n_clusters)
            values[seg.nonempty] = np.take(x, seg.starts)
            cluster_arrays[c] = values
        return Source("cluster", c)
    arrays[c] = x
    return Source("data", c)


def _constant_within(x: np.ndarray, starts: np.ndarray) -> bool:
    """Whether the sorted column ``x`` is constant within each cluster (``starts``)."""
    change = x[1:] != x[:-1]
    change[starts[1:] - 1] = False  # a new cluster begins
    return not change.any()


def _full_rank(data: StreamedData, static: pd.DataFrame, layout: Layout) -> bool:
    """Whether the rank check keeps every column (:func:`gram_full_rank` of ``X'X`` on the
    observed rows of the template fill)."""
    template = Values(layout)
    keys = [data.variable]
    for s in data.sources:
        for p in s.parts or (s,):
            if p.kind == "value":
                keys.append(p.key)
            elif p.kind == "cmean":
                keys.append(split_cmean_column(p.key)[0])
    for k in keys:
        template[k] = static[k].to_numpy(dtype=np.float64)
    data.refresh(template)
    try:
        G = cluster_stats(data).XtX
    finally:
        data.refresh(None)
    return gram_full_rank(G, data.n_obs)


def stored_data(data: StreamedData, layout: Layout) -> ModelData:
    """The design of ``data`` materialised, as a stored design holds it (its dynamic
    columns zero until a :meth:`~mlimpute.sampler.design.ModelData.refresh`): for readers
    that take a model's data row by row (:func:`mlimpute.check`, new data), at the cost
    of its rows."""
    n, codes, J = layout.n, layout.codes, data.n_clusters
    cols, fast = [], []
    for j, s in enumerate(data.sources):
        if s.changing:  # refreshed from a chain's columns (a product: of its factors)
            cols.append(np.broadcast_to(0.0, (n,)))
            fast.append((j, tuple(p.key for p in s.parts or (s,))))
            continue
        col = np.broadcast_to(1.0, (n,))
        for p in s.parts or (s,):
            if p.kind == "data":
                col = col * np.asarray(data.arrays[p.key], dtype=np.float64)
            elif p.kind == "cluster":
                col = col * np.take(data.cluster_arrays[p.key], codes)
        cols.append(col)
    obs, mis = data.obs_idx.astype(np.intp), data.mis_idx.astype(np.intp)
    X = Block(list(data.names), rows(cols, obs), rows(cols, mis), fast, [], data.spec)
    Z = Block(["Intercept"], ones_rows(obs.size), ones_rows(mis.size))
    return ModelData(
        data.variable,
        np.take(data.y, obs),
        obs,
        mis,
        X,
        Z,
        Segments.from_codes(np.take(codes, obs), J),
        np.take(codes, mis),
        J,
        data.group,
        data.random_blocks,
        data.random_correlated,
        list(data.events),
    )
