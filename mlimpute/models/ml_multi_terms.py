"""The static structure of the further random-effect terms of
:class:`~mlimpute.models.ml_multi.MultiTermNorm`, and cluster sums over unsorted codes.

:func:`terms` derives, once per plan (cached in the model data's ``cache``), what a Gibbs
step needs of each further term: whether it is a plain random intercept, its per-cluster
``Z'Z`` when static, the columns it shares with X (the translation move) and, for a term
whose clusters contain the primary ones, the map from primary clusters to its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mlimpute.models.base import ModelData

__all__ = ["Term", "terms", "extra_terms", "gsum", "effect"]


@dataclass(frozen=True)
class Term:
    """What a step needs of one further term's static structure (cached per plan)."""

    ones: bool  # Z_k is one static column of ones
    ZtZ: np.ndarray | None  # (J_k, q, q) cluster sums of z z' when Z_k is static
    mh: bool  # some correlated block of two or more effects (collapsed MH)
    beta_cols: tuple[np.ndarray, np.ndarray]  # (columns of Z_k, columns of X) shared
    nest_cols: tuple[np.ndarray, np.ndarray]  # (columns of Z_k, columns of Z_0) shared
    parent: np.ndarray | None  # primary cluster → this term's cluster (−1: no rows)
    n_children: np.ndarray | None  # primary clusters per cluster of this term


def gsum(codes: np.ndarray, J: int, v: np.ndarray) -> np.ndarray:
    """Cluster sums of ``v`` (n, ...) over unsorted ``codes`` → (J, ...), by bincount per
    trailing column (a loop over the few columns, none over rows)."""
    if v.ndim == 1:
        return np.bincount(codes, weights=v, minlength=J)
    flat = v.reshape(v.shape[0], -1)
    out = np.empty((J, flat.shape[1]))
    for i in range(flat.shape[1]):
        out[:, i] = np.bincount(codes, weights=flat[:, i], minlength=J)
    return out.reshape((J,) + v.shape[1:])


def effect(Z: np.ndarray, b: np.ndarray, codes: np.ndarray, ones: bool) -> np.ndarray:
    """``z_i'b_{j(i)}`` for each row."""
    if ones:
        return np.take(b[:, 0], codes)
    return np.einsum("nq,nq->n", Z, np.take(b, codes, axis=0))


def _shared(a: list[str], b: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the names common to ``a`` and ``b`` (in a's order)."""
    pairs = [(i, b.index(n)) for i, n in enumerate(a) if n in b]
    ia = np.array([p[0] for p in pairs], dtype=np.intp)
    ib = np.array([p[1] for p in pairs], dtype=np.intp)
    return ia, ib


def extra_terms(data: ModelData) -> tuple[Any, ...]:
    """The further random-effect terms of ``data`` (empty for two-level data)."""
    return tuple(getattr(data, "extra_terms", ()) or ())


def terms(data: ModelData) -> tuple[Term, ...]:
    """The :class:`Term` of each further term, cached in ``data.cache``."""
    cached = data.cache.get("ml_multi")
    if cached is not None:
        return cached
    out = []
    J0 = data.n_clusters
    for t in extra_terms(data):
        Z = t.Z.obs
        fixed = not t.Z.dynamic
        ones = fixed and Z.shape[1] == 1 and bool(np.all(Z == 1.0))
        ZtZ = None
        if fixed:
            ZtZ = gsum(t.codes_obs, t.n_clusters, Z[:, :, None] * Z[:, None, :])
            ZtZ.setflags(write=False)
        mh = any(
            c and len(bl) >= 2 for bl, c in zip(t.random_blocks, t.random_correlated, strict=True)
        )
        parent = n_children = None
        nest = (np.zeros(0, np.intp), np.zeros(0, np.intp))
        if t.contains_primary:
            nest = _shared(list(t.Z.names), list(data.Z.names))
            parent = np.full(J0, -1, dtype=np.intp)
            parent[data.seg_obs.codes] = t.codes_obs
            parent[data.codes_mis] = t.codes_mis
            n_children = np.bincount(parent[parent >= 0], minlength=t.n_clusters).astype(float)
        out.append(
            Term(
                ones,
                ZtZ,
                mh,
                _shared(list(t.Z.names), list(data.X.names)),
                nest,
                parent,
                n_children,
            )
        )
    data.cache["ml_multi"] = tuple(out)
    return data.cache["ml_multi"]
