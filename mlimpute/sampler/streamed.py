"""Which models read their designs in chunks of rows, and their data.

On large data (:data:`STREAM_MIN_ROWS` rows and more) a level-1 variable imputed by the
multilevel normal model with a random intercept, whose fixed part is the intercept and
plain numeric columns (data columns, imputed columns, ``cmean()`` of the clusters), keeps
no design rows: :class:`~mlimpute.models.streamed.StreamedData` says where each column
comes from, and :class:`~mlimpute.models.ml_norm_streamed.StreamedMultilevelNorm` reads
them chunk by chunk. Anything else (a transform, an interaction, a category, another
random part, a design the rank check would trim, the compiled step) is materialised as
before (:func:`~mlimpute.sampler.design.build_model_data`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlimpute import _numba
from mlimpute.models.ml_norm import MultilevelNorm
from mlimpute.models.ml_norm_streamed import StreamedMultilevelNorm, cluster_stats
from mlimpute.models.segments import Segments
from mlimpute.models.streamed import Source, StreamedData, chunks
from mlimpute.sampler.block import Block
from mlimpute.sampler.design import ModelData
from mlimpute.sampler.layout import Layout
from mlimpute.sampler.materialise import (
    _model_matrix,
    gram_full_rank,
    ones_rows,
    plain_columns,
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
) -> tuple[StreamedData, StreamedMultilevelNorm] | None:
    """The streamed data and model of a level-1 variable with response ``y`` (sorted
    rows, NaN where missing), or None where its design is materialised.

    ``static`` is the plan's sorted frame with the imputed columns filled (the template)
    and the ``cmean()`` columns; ``dynamic`` the columns imputations change.
    """
    if (
        layout.n < STREAM_MIN_ROWS
        or _numba.enabled()
        or type(model) is not MultilevelNorm
        or model.prior == "iw"
        or layout.group is None
        or len(parsed.random_terms) != 1  # one random intercept, over the rows' clusters
        or parsed.random_terms[0][1] != layout.group
        or parsed.random_terms[0][0].terms.strip() != "1"
        or parsed.ranefs
    ):
        return None
    validate_rhs(parsed.fixed, parsed.text)
    head = _model_matrix(parsed.fixed, static.iloc[:_HEAD_ROWS], parsed, quiet=True)
    if head is None:
        return None
    spec = head.model_spec
    names = list(head.columns)
    columns = plain_columns(spec, static)
    if columns is None:
        return None
    seg = layout.segments
    sources: list[Source] = []
    arrays, cluster_arrays = {}, {}
    for c in columns:
        if c is None:
            sources.append(Source("one"))
        elif c in dynamic:
            split = split_cmean_column(c)
            if split is None and static[c].dtype == np.float64:
                sources.append(Source("value", c))
            elif split is not None and split[1] is None:  # cmean(x) over the clusters
                sources.append(Source("cmean", c))
            else:  # cmean(x, factor), or an imputed column that is not numeric
                return None
        else:
            x = static[c].to_numpy()
            if not np.isfinite(x).all():
                return None
            if _constant_within(x, seg.starts):
                values = np.zeros(seg.n_clusters)
                values[seg.nonempty] = np.take(x, seg.starts)
                cluster_arrays[c] = values
                sources.append(Source("cluster", c))
            else:
                arrays[c] = x
                sources.append(Source("data", c))
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
    return data, StreamedMultilevelNorm.like(model)


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
        if s.kind == "value":
            keys.append(s.key)
        elif s.kind == "cmean":
            keys.append(split_cmean_column(s.key)[0])
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
        if s.kind == "one":
            cols.append(np.broadcast_to(1.0, (n,)))
        elif s.kind == "data":
            cols.append(np.asarray(data.arrays[s.key], dtype=np.float64))
        elif s.kind == "cluster":
            cols.append(np.take(data.cluster_arrays[s.key], codes))
        else:  # refreshed from a chain's columns
            cols.append(np.broadcast_to(0.0, (n,)))
            fast.append((j, (s.key,)))
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
