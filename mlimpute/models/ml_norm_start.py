"""Starting values of the multilevel normal model: least squares for β
(:func:`_start_beta`) and method-of-moments estimates of Ψ and σ² (:func:`_moments`).

:meth:`~mlimpute.models.ml_norm.MultilevelNorm.start` uses them; the names are also
importable from :mod:`mlimpute.models.ml_norm`.
"""

from __future__ import annotations

import numpy as np

from mlimpute.models._ml_norm_static import split_stats, static
from mlimpute.models.base import ModelData
from mlimpute.models.linalg import solve_spd
from mlimpute.models.ml_norm_stats import _ClusterStats
from mlimpute.models.segments import Segments

__all__: list[str] = []


def _start_beta(
    X: np.ndarray, y: np.ndarray, data: ModelData, stats: _ClusterStats | None = None
) -> np.ndarray:
    """Least squares of y on X: from the normal equations (built by
    :func:`~mlimpute.models._ml_norm_static.split_stats`, or taken from ``stats`` where
    they hold them) where the design is split, else by ``lstsq`` (SVD; 7 ms for
    24,000 × 28 rows, where the normal equations cost 1 ms). Only a starting point."""
    if not X.shape[1]:
        return np.zeros(0)
    split = static(data).split
    if split is not None:
        if stats is not None and stats.XtX is not None:
            XtX, Xty = stats.XtX, stats.Xty
        else:
            XtX, Xty = split_stats(X, y, data.seg_obs, split)[2:4]
        try:
            return solve_spd(XtX, Xty)[0]
        except np.linalg.LinAlgError:
            pass
    return np.linalg.lstsq(X, y, rcond=None)[0]


def _moments(
    r: np.ndarray, Z: np.ndarray, seg: Segments, scale: np.ndarray
) -> tuple[np.ndarray, float]:
    """Method-of-moments start for (Ψ, σ²) from OLS residuals ``r``.

    Per-cluster least squares of r on Z (clusters with more rows than q) gives b̂_j;
    ``Ψ_kk ≈ var(b̂_jk) − σ²·mean((Z_j'Z_j)⁻¹)_kk`` and σ² is the pooled within-cluster
    residual variance. Ψ is kept diagonal and clipped to [(0.05 A_k)², A_k²]. A random
    intercept given as one value broadcast over the rows (:func:`_is_ones`) is summed
    without passes over the rows of ones (the same numbers: its products are exact).
    """
    q = Z.shape[1]
    if _is_ones(Z):  # Z'Z: the rows per cluster; Z'r: the residuals' cluster sums
        ZtZ = seg.counts.astype(np.float64)[:, None, None]
        Ztr = seg.sum(r)[:, None]
    else:
        ZtZ = seg.sum(Z[:, :, None] * Z[:, None, :])
        Ztr = seg.sum(Z * r[:, None])
    diag = ZtZ[:, np.arange(q), np.arange(q)]
    # clusters that identify all q effects (a column constant 0 within a cluster does not)
    ok = (seg.counts > q + 1) & np.all(diag > 1e-12 * diag.max(axis=0, initial=0.0), axis=1)
    floor, cap = (0.05 * scale) ** 2, scale**2
    tiny = (1e-12 * float(np.min(scale))) ** 2  # relative to the data's scale
    if ok.sum() < 3:
        return np.diag((0.5 * scale) ** 2), max(float(np.var(r)), tiny)
    if q == 1:  # what pinv(hermitian=True) gives for positive 1×1 matrices
        inv = 1.0 / ZtZ[ok]
    else:
        inv = np.linalg.pinv(ZtZ[ok], hermitian=True)
    bhat = np.einsum("jkl,jl->jk", inv, Ztr[ok])
    fitted = _fitted(Z, _scatter(bhat, ok), seg.codes)
    inside = np.take(ok, seg.codes)
    dof = max(int(inside.sum()) - q * int(ok.sum()), 1)
    # (r - fitted)[inside] ** 2 in fitted's place (no selection where every row is inside)
    dev = np.subtract(r, fitted, out=fitted)
    if not inside.all():
        dev = dev[inside]
    sigma2 = float(np.sum(np.square(dev, out=dev))) / dof
    sigma2 = sigma2 if sigma2 > 0 else max(float(np.var(r)), tiny)
    d = bhat.var(axis=0, ddof=1) - sigma2 * inv[:, np.arange(q), np.arange(q)].mean(axis=0)
    return np.diag(np.clip(d, floor, cap)), sigma2


def _fitted(Z: np.ndarray, b: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``z_i'b_j`` of each row (``einsum("nq,nq->n", Z, b[codes])``); one column by one
    product (the einsum's numbers up to the sign of a zero, which the squared residuals
    do not see)."""
    if _is_ones(Z):
        return np.take(b[:, 0], codes, mode="clip")
    if Z.shape[1] == 1:
        return Z[:, 0] * np.take(b[:, 0], codes, mode="clip")
    return np.einsum("nq,nq->n", Z, np.take(b, codes, axis=0))


def _is_ones(Z: np.ndarray) -> bool:
    """Whether ``Z`` is one column of ones held as one value broadcast over the rows
    (stride 0: every row is the first), which a product leaves exact."""
    return Z.shape[1] == 1 and Z.shape[0] > 0 and Z.strides[0] == 0 and Z[0, 0] == 1.0


def _scatter(bhat: np.ndarray, ok: np.ndarray) -> np.ndarray:
    out = np.zeros((ok.shape[0], bhat.shape[1]))
    out[ok] = bhat
    return out
