"""A block's current values in one array, and its designs refreshed by one compiled call.

With the compiled kernels switched on (:mod:`mlimpute._numba`), the chains of a block
stepped together (:mod:`mlimpute.sampler.batched`) keep the current columns of the
imputed variables in one array (variables, chains, rows): each chain's
:class:`~mlimpute.sampler.values.Values` holds views of its rows, so everything that reads
or writes a chain's columns does so as before. A model whose design changes only in
columns that are an imputed variable or its cluster means (``cmean(x)`` over the primary
clusters) gets its chains' designs as views of two arrays (chains, columns, rows), and
:class:`BlockRefresh` writes every chain's changing columns by one call of
:func:`mlimpute.models.kernels.refresh.refresh`, the numbers of
:meth:`~mlimpute.sampler.block.Block.refresh` bit for bit. Other models refresh chain by
chain as before.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from mlimpute.sampler.design import ModelData
from mlimpute.sampler.values import Values
from mlimpute.spec.formula import split_cmean_column

__all__ = ["stack_values", "BlockRefresh", "block_refreshes", "kernel_rows", "missing_rows"]


def stack_values(
    values: list[Values], names: list[str]
) -> tuple[np.ndarray, dict[str, int]] | None:
    """The chains' current columns of ``names`` as one array (names, chains, rows) and
    each name's index in it; each chain's entries are replaced by views of its rows (the
    same values). None (nothing changed) where a column is not float64 of the rows'
    length."""
    if not names:
        return None
    cols = [[v[n] for v in values] for n in names]
    n_rows = cols[0][0].shape
    if any(a.dtype != np.float64 or a.shape != n_rows for col in cols for a in col):
        return None
    V = np.stack([np.stack(col) for col in cols])
    for c, v in enumerate(values):
        for k, n in enumerate(names):
            v[n] = V[k, c]
    return V, {n: k for k, n in enumerate(names)}


def kernel_rows(a: np.ndarray) -> np.ndarray:
    """Row positions or cluster codes as the compiled calls take them: int32 (half the
    memory that every visit reads; int64 beyond 2**31 rows)."""
    return a.astype(np.int32 if a.size < 2**31 - 1 else np.int64)


def missing_rows(data: ModelData) -> np.ndarray:
    """``data.mis_idx`` as :func:`kernel_rows` makes it (kept in ``data.cache``, which the
    chains' copies share), for :func:`mlimpute.models.kernels.refresh.place_draws`."""
    got = data.cache.get("kernel_mis_idx")
    if got is None or got.shape != data.mis_idx.shape:
        got = data.cache["kernel_mis_idx"] = kernel_rows(data.mis_idx)
    return got


class BlockRefresh:
    """The compiled refresh of one model's designs for a block of chains (see the module
    notes); :meth:`of` says whether the model's design qualifies."""

    def __init__(
        self, V: np.ndarray, data: ModelData, cols, src, kind, layout, own: ModelData | None
    ) -> None:
        C = V.shape[1]
        X = data.X
        self.V = V
        if C == 1 and own is not None and _writable_columns(own):
            # a chain run alone refreshes its own design in place (the plan's, or its copy
            # while another thread holds the plan's): no copy of the design
            self.XO, self.XM = own.X.obs.T[None], own.X.mis.T[None]
        else:
            self.XO = np.empty((C, X.obs.shape[1], X.obs.shape[0]))
            self.XM = np.empty((C, X.mis.shape[1], X.mis.shape[0]))
            self.XO[:] = X.obs.T
            self.XM[:] = X.mis.T
        self.cols = np.asarray(cols, dtype=np.int64)
        self.src = np.asarray(src, dtype=np.int64)
        self.kind = np.asarray(kind, dtype=np.int64)
        self.obs_idx = kernel_rows(data.obs_idx)
        self.mis_idx = kernel_rows(data.mis_idx)
        self.codes_obs = kernel_rows(data.seg_obs.codes)
        self.codes_mis = kernel_rows(data.codes_mis)
        self.starts = kernel_rows(layout.segments.starts)
        self.counts = layout.segments.counts.astype(np.int64, copy=False)
        self._args: tuple | None = None

    @classmethod
    def of(
        cls,
        stacked: tuple[np.ndarray, dict[str, int]] | None,
        data: ModelData,
        layout,
        own: ModelData | None = None,
    ) -> BlockRefresh | None:
        """The refresh of ``data``'s design for the block whose values ``stacked`` holds
        (:func:`stack_values`; into ``own``, the design of a block of one chain, where
        given), or None where the chains refresh one by one: a design
        with columns of another kind (products, transforms, means over other factors), a
        changing random part or further random terms, or empty clusters."""
        if stacked is None or not data.X.dynamic or data.X.slow or data.extra_terms:
            return None
        if data.Z is not None and data.Z.dynamic:
            return None
        seg = layout.segments
        if not (seg.n_clusters == data.n_clusters == seg.starts.size):
            return None
        V, index = stacked
        cols, src, kind = [], [], []
        for col, factors in data.X.fast:
            if len(factors) != 1:
                return None
            name = factors[0]
            split = split_cmean_column(name)
            if name in index:
                src.append(index[name])
                kind.append(0)
            elif split is not None and split[0] in index and split[1] in (None, layout.group):
                src.append(index[split[0]])
                kind.append(1)
            else:
                return None
            cols.append(col)
        return cls(V, data, cols, src, kind, layout, own)

    def chain_data(self, data: ModelData, c: int) -> ModelData:
        """Chain ``c``'s data: ``data`` with its design's rows views of this block's
        arrays (what :meth:`ModelData.for_chain` would copy)."""
        X = replace(data.X, obs=self.XO[c].T, mis=self.XM[c].T)
        return replace(data, X=X, Z=data.Z.for_chain() if data.Z is not None else None)

    def __call__(self) -> None:
        """Every chain's changing columns, from the chains' current values."""
        if self._args is None:  # the kernel and its arguments, bound at the first call
            from mlimpute.models.kernels.refresh import refresh

            self._kernel = refresh
            self._args = (self.V, self.XO, self.XM, self.cols, self.src, self.kind)
            self._args += (self.obs_idx, self.mis_idx, self.codes_obs, self.codes_mis)
            self._args += (self.starts, self.counts)
        self._kernel(*self._args)


def _writable_columns(data: ModelData) -> bool:
    """Whether ``data``'s design rows are column-major and writable (each column one
    contiguous run, as the refresh kernel writes them)."""
    X = data.X
    return all(a.flags.f_contiguous and a.flags.writeable for a in (X.obs, X.mis))


def block_refreshes(
    plan, held: tuple | None, datas: list[dict], stacked: dict[str, bool], own: bool = False
) -> dict[str, BlockRefresh]:
    """The variables (``stacked`` true) whose designs one compiled call refreshes for the
    block of chains whose values ``held`` holds (:func:`stack_values`), their chains'
    data in ``datas`` (one dict a chain) replaced by views of the block's arrays; nothing
    without ``held``. A chain run alone is a block of one; with ``own`` its designs in
    ``datas`` are its own to write (the plan's while no other thread runs a chain, else
    copies), and are refreshed in place."""
    if held is None:
        return {}
    from mlimpute.models.ml_norm_compiled import prepare

    out = {}
    for name in plan.names:
        if stacked.get(name):
            mine = datas[0][name] if own and len(datas) == 1 else None
            got = BlockRefresh.of(held, plan.data[name], plan.layout, mine)
            if got is not None:
                prepare(plan.models[name], plan.data[name])  # from the plan's own design
                out[name] = got
                for c, d in enumerate(datas):
                    d[name] = got.chain_data(plan.data[name], c)
    return out
