"""Precomputed structure for the 2l.norm step: what does not change between steps.

:func:`static` caches, per model data (shared by all chains), the random design's
per-cluster ``Z'Z``, whether Z is a plain random intercept, which Ψ entries are traced,
and — for many rows per cluster — the split of the fixed design into columns that vary
within clusters and columns constant within them (:func:`split_stats`), with the cluster
sums of the columns no imputation changes and of the observed response, which every step
would otherwise sum again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mlimpute.models.base import ModelData
    from mlimpute.models.segments import Segments


@dataclass(frozen=True)
class Static:
    """What a Gibbs step needs of the static random design; computed once per plan."""

    q: int
    ones: bool  # Z is one static column of ones (a random intercept)
    ZtZ: np.ndarray | None  # per-cluster Z'Z (J, q, q) when Z is static
    mh: bool  # some correlated covariance block has two or more effects
    psi_rows: np.ndarray  # the traced entries of Ψ (:func:`psi_entries`)
    psi_cols: np.ndarray
    split: Split | None = None  # for :func:`split_stats`


@dataclass(frozen=True)
class Split:
    """Columns of X that vary within clusters (``rows``) and that do not (``consts``: the
    intercept, cluster means, level-2 variables), with the first observed row of each
    non-empty cluster and the index grids of the blocks of X'X; the cluster sums of the
    ``rows`` columns no imputation changes and of the observed response (the same sums
    a step would make)."""

    rows: np.ndarray
    consts: np.ndarray
    first: np.ndarray
    nonempty: np.ndarray
    counts: np.ndarray  # observed rows per cluster (float)
    dynamic: np.ndarray  # positions in ``consts`` of the columns imputations change
    const_fixed: np.ndarray  # positions in ``consts`` of the others
    static_values: np.ndarray  # (J, len(const_fixed)): their per-cluster values
    rr: tuple
    rc: tuple
    cr: tuple
    cc: tuple
    #: ``rows`` as a slice when they are adjacent columns (R is then a view of X)
    row_slice: slice | None = None
    #: positions in ``rows`` of the columns imputations change (summed at every step)
    row_dynamic: np.ndarray | None = None
    #: positions in ``rows`` of the others, and their cluster sums (J, len(row_fixed))
    row_fixed: np.ndarray | None = None
    row_sums: np.ndarray | None = None
    #: the observed response the cluster sums ``y_sums`` are of (the model data's)
    y: np.ndarray | None = None
    y_sums: np.ndarray | None = None

    @classmethod
    def of(cls, data: ModelData, counts: np.ndarray | None = None) -> Split | None:
        """The split of ``data``'s fixed design, or None where it does not pay: without
        cluster-constant columns or with few rows per cluster (the plain sums are as fast
        there, and small problems keep their exact arithmetic). ``counts``: the observed
        rows per cluster as floats where the caller holds them (a random intercept's
        ``Z'Z``: sums of ones, the same numbers), else made here."""
        X, seg = data.X.obs, data.seg_obs
        n, p = X.shape
        const = data.X.cluster_constant(seg.codes)
        if not const.any() or n * p < SPLIT_MIN_CELLS or n < 4 * seg.starts.size:
            return None
        rows, consts = np.flatnonzero(~const), np.flatnonzero(const)
        changing = {c for c, _ in data.X.fast} | set(data.X.slow)
        dynamic = np.array([k for k, c in enumerate(consts) if c in changing], dtype=np.intp)
        const_fixed = np.setdiff1d(np.arange(consts.size), dynamic)
        values = np.zeros((seg.n_clusters, const_fixed.size))  # 0 for an empty cluster
        values[seg.nonempty] = X[seg.starts][:, consts[const_fixed]]
        values.setflags(write=False)
        row_dynamic = np.array([k for k, c in enumerate(rows) if c in changing], dtype=np.intp)
        row_fixed = np.array([k for k, c in enumerate(rows) if c not in changing], dtype=np.intp)
        # the sums a step's reduceat over R would give these columns (column by column
        # the same sums, bit for bit)
        row_sums = np.empty((seg.n_clusters, row_fixed.size))
        for i, k in enumerate(row_fixed):
            row_sums[:, i] = seg.sum(X[:, rows[k]])
        row_sums.setflags(write=False)
        y_sums = seg.sum(data.y_obs)
        y_sums.setflags(write=False)
        return cls(
            rows,
            consts,
            seg.starts,
            seg.nonempty,
            seg.counts.astype(np.float64) if counts is None else counts,
            dynamic,
            const_fixed,
            values,
            np.ix_(rows, rows),
            np.ix_(rows, consts),
            np.ix_(consts, rows),
            np.ix_(consts, consts),
            _as_slice(rows),
            row_dynamic,
            row_fixed,
            row_sums,
            data.y_obs,
            y_sums,
        )


def _as_slice(cols: np.ndarray) -> slice | None:
    """``cols`` as a slice if they are adjacent and increasing, else None."""
    if cols.size and np.array_equal(cols, np.arange(cols[0], cols[0] + cols.size)):
        return slice(int(cols[0]), int(cols[0]) + cols.size)
    return None


#: Fixed-design cells (rows × columns) from which :func:`split_stats` replaces the plain
#: cross-products (below it Python overhead outweighs the saving; small problems keep
#: their arithmetic bit for bit).
SPLIT_MIN_CELLS = 100_000


def split_stats(
    X: np.ndarray, y: np.ndarray, seg: Segments, split: Split, known: Mapping | None = None
) -> tuple[np.ndarray, ...]:
    """Per-cluster sums of X and y, X'X and X'y, with the cluster-constant columns done
    per cluster; also R and M below, and last the (J, p + 1) array ``[S S_y]`` whose
    first p columns the sums of X are.

    With X = [R C], C constant within clusters (value m_j in cluster j, n_j rows), only R
    needs passes over the rows: ``R'R``, ``R'y`` and the cluster sums ``S_R``; then
    ``R'C = S_R'M``, ``C'C = M'diag(n)M``, ``C'y = M'S_y`` and C's cluster sums ``n_j m_j``
    cost O(J·p²). In the wide benchmark half the columns are cluster means: the step's
    cross-products cost a third. Same quantities, different rounding (about 1e-16
    relative). The cluster sums of the columns of R no imputation changes, and of y
    where it is the model data's observed response, are the ones :class:`Split` keeps
    (the same numbers): only the changing columns are summed over the rows again.
    ``known`` (the design block's ``cluster_values``, where it has them) gives the
    per-cluster values a changing cluster-constant column of X was gathered from, read
    instead of the column's first row in each cluster (the same numbers).
    """
    J, p = seg.n_clusters, X.shape[1]
    if split.row_slice is not None and X.flags.f_contiguous:
        R = X[:, split.row_slice]  # a view: the same Fortran-ordered columns as a copy
    else:
        R = X[:, split.rows]
    every = split.first.size == J  # no empty cluster: M's rows are the clusters' first rows
    # (J, c): static columns cached, dynamic ones gathered (0 for an empty cluster)
    M = np.empty((J, split.consts.size)) if every else np.zeros((J, split.consts.size))
    M[:, split.const_fixed] = split.static_values
    for k in split.dynamic:
        c = split.consts[k]
        hit = known.get(c) if known else None
        means = hit[1]() if hit is not None and hit[0] is X else None
        if means is not None:  # X[:, c] is these values gathered by cluster code
            if every:
                M[:, k] = means
            else:
                M[split.nonempty, k] = means[split.nonempty]
        elif every:
            np.take(X[:, c], split.first, out=M[:, k], mode="clip")
        else:
            M[split.nonempty, k] = X[:, c][split.first]
    nM = split.counts[:, None] * M
    if split.row_sums is None:
        S_R = seg.sum(R)
    else:  # (J, len(rows)) C-ordered, as seg.sum(R) gives it
        S_R = np.empty((J, R.shape[1]))
        S_R[:, split.row_fixed] = split.row_sums
        for k in split.row_dynamic:
            S_R[:, k] = seg.sum(R[:, k])
    S_y = split.y_sums if y is split.y and split.y_sums is not None else seg.sum(y)
    # the cluster sums of X with those of y beside them: [S S_y] is the step's C_j (no
    # concatenation there); S and the returned S_y are views of it and the kept sums
    SC = np.empty((J, p + 1))
    S = SC[:, :p]
    S[:, split.rows] = S_R
    S[:, split.consts] = nM
    SC[:, p] = S_y
    XtX = np.empty((p, p))
    XtX[split.rr] = R.T @ R
    RC = S_R.T @ M
    XtX[split.rc] = RC
    XtX[split.cr] = RC.T
    XtX[split.cc] = M.T @ nM
    Xty = np.empty(p)
    Xty[split.rows] = R.T @ y
    Xty[split.consts] = M.T @ S_y
    return S, S_y, XtX, Xty, R, M, SC


def static(data: ModelData) -> Static:
    """The :class:`Static` of ``data``, cached in ``data.cache`` (shared by the chains)."""
    st = data.cache.get("ml_norm")
    if st is None:
        Z, seg = data.Z.obs, data.seg_obs
        fixed = not data.Z.dynamic
        ones = fixed and Z.shape[1] == 1 and bool(np.all(Z == 1.0))
        ZtZ = None
        if fixed:
            ZtZ = seg.sum(Z[:, :, None] * Z[:, None, :])
            ZtZ.setflags(write=False)
        mh = any(
            c and len(b) >= 2
            for b, c in zip(data.random_blocks, data.random_correlated, strict=True)
        )
        entries = np.array(psi_entries(data), dtype=np.intp).reshape(-1, 2)
        st = data.cache["ml_norm"] = Static(
            Z.shape[1],
            ones,
            ZtZ,
            mh,
            entries[:, 0],
            entries[:, 1],
            Split.of(data, ZtZ[:, 0, 0]) if ones else None,
        )
    return st


def block_path(data: ModelData) -> bool:
    """Whether ``data`` takes one of the two paths of the 2l.norm step that the stacked and
    compiled steps cover: one static random part, either a random intercept without the
    split design, or two or more columns."""
    if data.extra_terms or data.Z is None or data.Z.obs.shape[1] == 0:
        return False
    st = static(data)
    if st.ZtZ is None:  # a random part the imputations change
        return False
    if st.ones:
        return st.split is None and not st.mh
    return st.q >= 2


def psi_entries(data: ModelData) -> list[tuple[int, int]]:
    """Traced entries of Ψ: each variance, then the covariances within correlated blocks."""
    out = []
    for block, correlated in zip(data.random_blocks, data.random_correlated, strict=True):
        for i_, i in enumerate(block):
            out.append((i, i))
            if correlated:
                out.extend((i, j) for j in block[:i_])
    return out
