"""The named pieces of one Gibbs step of the multilevel normal model.

* :class:`_Weights`: the residual variance as a step uses it (one σ², one per cluster, or
  row weights);
* :class:`_ClusterStats`, :func:`_cluster_stats`, :func:`_weighted_cluster_stats`: the
  per-cluster sufficient statistics ``Z'Z``, ``Z'X``, ``Z'y``;
* :func:`_cluster_precision`, :func:`_beta_marginal`, :func:`_b_mean`: the blocked draw of
  (β, b) — β with the random effects integrated out, then ``b_j | β``;
* :func:`_residual_of_beta`: ``y − Xβ``.

:class:`~mlimpute.models.ml_norm.MultilevelNorm` puts them together; the names are also
importable from :mod:`mlimpute.models.ml_norm`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlimpute.models._ml_norm_static import Split, Static, split_stats
from mlimpute.models.linalg import backward_batched, chol_batched, forward_batched
from mlimpute.models.segments import Segments

__all__: list[str] = []


@dataclass(frozen=True)
class _Weights:
    """The residual variance as a step uses it: one σ², or one per cluster (row weights)."""

    s2: float | np.ndarray
    s2c: float | np.ndarray  # per-cluster divisor of (J, q) arrays
    s2d: float | np.ndarray  # per-cluster divisor of (J, q, k) arrays
    wr: np.ndarray | None  # row weights 1/σ²_row (heteroscedastic), else None

    @classmethod
    def of(cls, s2: float | np.ndarray, seg: Segments) -> _Weights:
        if np.ndim(s2) == 0:
            return cls(s2, s2, s2, None)
        return cls(s2, s2[:, None], s2[:, None, None], 1.0 / np.take(s2, seg.codes))

    def with_rows(self, weights: np.ndarray) -> _Weights:
        """Row weights ``w_i/σ²_row`` folded into every sum (the cluster statistics are then
        weighted sums and need no divisor)."""
        base = 1.0 / self.s2 if self.wr is None else self.wr
        return _Weights(1.0, 1.0, 1.0, weights * base)

    @property
    def het(self) -> bool:
        return self.wr is not None

    def gram(self, M: np.ndarray, v: np.ndarray | None = None) -> np.ndarray:
        """``M'WM`` (or ``M'Wv``) with ``W = diag(1/σ²_row)``."""
        if self.wr is None:
            return (M.T @ (M if v is None else v)) / self.s2
        return (M * self.wr[:, None]).T @ (M if v is None else v)


@dataclass(frozen=True)
class _ClusterStats:
    """Per-cluster sufficient statistics of one step: ``Z'Z`` (J, q, q), ``Z'X`` (J, q, p),
    ``Z'y`` (J, q); on the split path also X'X, X'y and the split design R, M."""

    ZtZ: np.ndarray
    ZtX: np.ndarray
    Zty: np.ndarray
    split: Split | None = None
    XtX: np.ndarray | None = None
    Xty: np.ndarray | None = None
    R: np.ndarray | None = None
    M: np.ndarray | None = None
    #: ``[Z'X Z'y]`` (J, q, p + 1) where the sums were made side by side (split path)
    C: np.ndarray | None = None


def _cluster_stats(
    X: np.ndarray,
    Z: np.ndarray,
    y: np.ndarray,
    seg: Segments,
    st: Static,
    split: Split | None,
    known: dict | None = None,
) -> _ClusterStats:
    """Per-cluster ``Z'Z``, ``Z'X`` and ``Z'y``: the same sums by one of three paths.

    * **split** (Z = 1, many rows per cluster, homoscedastic): :func:`split_stats` does the
      cluster-constant columns per cluster and also gives X'X and X'y;
    * **ones** (Z = 1): cluster sums of X and y, without the (n, q, p) products;
    * **general**: sums of the row products ``z_i x_i'`` and ``z_i y_i``.

    ``Z'Z`` is the plan's cached one when Z does not change with the imputations.
    ``known``: the design block's ``cluster_values`` (for :func:`split_stats`).
    """
    ZtZ = st.ZtZ if st.ZtZ is not None else seg.sum(Z[:, :, None] * Z[:, None, :])
    if split is not None:
        ZtX, Zty, XtX, Xty, R, M, C = split_stats(X, y, seg, split, known)
        return _ClusterStats(
            ZtZ, ZtX[:, None, :], Zty[:, None], split, XtX, Xty, R, M, C[:, None, :]
        )
    if st.ones:
        return _ClusterStats(ZtZ, seg.sum(X)[:, None, :], seg.sum(y)[:, None])
    return _ClusterStats(ZtZ, seg.sum(Z[:, :, None] * X[:, None, :]), seg.sum(Z * y[:, None]))


def _weighted_cluster_stats(
    X: np.ndarray, Z: np.ndarray, y: np.ndarray, seg: Segments, wr: np.ndarray, ones: bool
) -> _ClusterStats:
    """Per-cluster ``Z'WZ``, ``Z'WX`` and ``Z'Wy`` with row weights ``wr`` (segment sums)."""
    if ones:
        Xw = X * wr[:, None]
        return _ClusterStats(
            seg.sum(wr)[:, None, None], seg.sum(Xw)[:, None, :], seg.sum(wr * y)[:, None]
        )
    Zw = Z * wr[:, None]
    return _ClusterStats(
        seg.sum(Zw[:, :, None] * Z[:, None, :]),
        seg.sum(Zw[:, :, None] * X[:, None, :]),
        seg.sum(Zw * y[:, None]),
    )


def _cluster_precision(
    ZtZ_s: np.ndarray, psi: np.ndarray, stats: _ClusterStats, w: _Weights, q: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``P_j = Z_j'Z_j/σ² + Ψ⁻¹``, its Cholesky factor ``L_j`` and ``L_j⁻¹[C_j c_j]``
    (``C_j = Z_j'X_j/σ²``, ``c_j = Z_j'y_j/σ²``); for q = 1 the 1×1 inverse and Cholesky
    written out, as the general calls compute them."""
    if q == 1:
        P = ZtZ_s + 1.0 / psi
        L = np.sqrt(P)
        if stats.C is not None:  # [Z'X Z'y] made side by side: C / σ² / L, one new array
            C = np.divide(stats.C, w.s2d)
        else:
            C = np.concatenate([stats.ZtX, stats.Zty[:, :, None]], axis=2)
            np.divide(C, w.s2d, out=C)  # C / σ² / L, in C's place
        return P, L, np.divide(C, L, out=C)
    C = np.concatenate([stats.ZtX, stats.Zty[:, :, None]], axis=2)
    P = ZtZ_s + np.linalg.inv(psi)
    L = chol_batched(P)
    return P, L, forward_batched(L, C / w.s2d)


def _beta_marginal(
    X: np.ndarray, y: np.ndarray, Ww: np.ndarray, stats: _ClusterStats, w: _Weights
) -> tuple[np.ndarray, np.ndarray]:
    """Precision ``A = X'X/σ² − Σ_j W_j'W_j`` and ``h = X'y/σ² − Σ_j W_j'w_j`` of β with b
    integrated out (``[W_j w_j] = L_j⁻¹[C_j c_j]``); on the split path both sums are one
    BLAS product. A is symmetrised. (X and y are read off the split path only.)"""
    p = Ww.shape[2] - 1
    if stats.split is not None:
        G = Ww[:, 0, :].T @ Ww[:, 0, :]
        A = stats.XtX / w.s2 - G[:p, :p]
        h = stats.Xty / w.s2 - G[:p, p]
    else:
        W, wv = Ww[:, :, :p], Ww[:, :, p]
        A = w.gram(X) - np.einsum("jqp,jqr->pr", W, W)
        h = w.gram(X, y) - np.einsum("jqp,jq->p", W, wv)
    return (A + A.T) / 2, h


def _b_mean(
    L: np.ndarray, stats: _ClusterStats, mean: np.ndarray, w: _Weights, q: int
) -> np.ndarray:
    """``E[b_j | β̄] = P_j⁻¹ (Z_j'y_j − Z_j'X_j β̄)/σ²`` (q = 1: divided by L² directly)."""
    c = (stats.Zty - stats.ZtX @ mean) / w.s2c
    if q == 1:
        return c / L[:, :, 0] / L[:, :, 0]
    return backward_batched(L, forward_batched(L, c))


def _residual_of_beta(
    X: np.ndarray, y: np.ndarray, beta: np.ndarray, stats: _ClusterStats, seg: Segments
) -> np.ndarray:
    """``y − Xβ``; on the split path from R (in cache) and the per-cluster constants M."""
    split = stats.split
    fit = X @ beta if split is None else stats.R @ beta[split.rows]
    if split is not None:  # each row's cluster value (np.repeat's numbers, gathered faster)
        fit += np.take(stats.M @ beta[split.consts], seg.codes, mode="clip")
    return np.subtract(y, fit, out=fit)  # as ``y - fit``, without another array
