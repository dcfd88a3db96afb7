"""Full conditional of a missing level-2 predictor w_j: all rows of its cluster at once.

A level-2 predictor has one value per cluster, so every row of cluster j carries
information on w_j. Its own model (one row per cluster, on the other level-2 predictors
and latent cluster means) is ``w_j ~ N(μ_w,j, σ_w²)``. It enters

* level-1 models linearly given everything else — the analysis model with cross-level
  interactions ``η_ij = a_ij + c_ij w_j`` (``c_ij = γ_w + Σ_k γ_w:k v_k,ij``), and the
  models of level-1 predictors that w predicts: ``v_ij ~ N(a_ij + c_ij w_j, σ²)``
  (:class:`~mlimpute.compatible.conditionals.LinearTerm` over the rows);
* cluster-level models: when w_j predicts the random effects of a level-1 model,
  ``b_j ~ N(m_j + d w_j, Ψ)`` (q-vector b_j, e.g. the random intercept and slope of the
  analysis model when w is written in the "slopes-as-outcomes" form)
  (:class:`ClusterTerm`). The common case: w_j predicts the random intercept of a
  level-1 predictor's model, ``x_ij = o_ij + ξ_j + e_ij`` with ``ξ_j ~ N(m_j + δ w_j, τ)``
  — a ClusterTerm with ``b = ξ``, ``mean = m``, ``coef = δ``, ``cov = [[τ]]``
  (equivalently, with ξ integrated out, a LinearTerm over x's rows would not be
  conditionally independent across the rows of a cluster; carry ξ in the state instead).

Derivation (as in the level-1 case; quadratic in w_j):

    λ_j  = 1/σ_w² + Σ_m Σ_{i∈j} c_m,ij²/σ_m² + Σ_k d_k'Ψ_k⁻¹d_k
    μ*_j = (μ_w,j/σ_w² + Σ_m Σ_{i∈j} c_m,ij (v_m,ij − a_m,ij)/σ_m²
            + Σ_k d_k'Ψ_k⁻¹(b_k,j − m_k,j)) / λ_j,         variance 1/λ_j.

The inner sums over the rows of a cluster are segment sums (``np.add.reduceat`` over rows
sorted by cluster, :class:`~mlimpute.models.segments.Segments`); rows whose response is
missing drop out of their term. Cost O(n) per term and O(J q²) per cluster term.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from mlimpute.compatible.conditionals import LinearTerm
from mlimpute.errors import DataError
from mlimpute.models.segments import Segments

__all__ = ["ClusterTerm", "level2_moments", "draw_level2", "grouped_moments"]


class ClusterTerm(NamedTuple):
    """A cluster-level normal model linear in w_j: ``b_j ~ N(mean_j + coef·w_j, cov)``.

    Attributes
    ----------
    b : ndarray, shape (J, q)
        The cluster-level response (e.g. random effects of a level-1 model).
    mean : ndarray, shape (J, q)
        Its mean with w_j = 0.
    coef : ndarray, shape (q,) or (J, q)
        ``d``: the change of the mean per unit of w_j.
    cov : ndarray, shape (q, q)
        Covariance Ψ.
    """

    b: np.ndarray
    mean: np.ndarray
    coef: np.ndarray
    cov: np.ndarray

    def precision_and_shift(self) -> tuple[np.ndarray, np.ndarray]:
        """``d'Ψ⁻¹d`` and ``d'Ψ⁻¹(b − m)`` per cluster."""
        b = np.asarray(self.b, dtype=float)
        b = b[:, None] if b.ndim == 1 else b
        cov = np.atleast_2d(np.asarray(self.cov, dtype=float))
        d = np.broadcast_to(np.asarray(self.coef, dtype=float), b.shape)
        try:
            Lc = np.linalg.cholesky(cov)
        except np.linalg.LinAlgError as exc:
            raise DataError("the covariance of a cluster term is not positive definite") from exc
        inv = np.linalg.solve(Lc.T, np.linalg.solve(Lc, np.eye(cov.shape[0])))  # Ψ⁻¹ (q, q)
        pd = d @ inv  # (Ψ⁻¹d_j)' per cluster, (J, q)
        resid = b - np.reshape(self.mean, b.shape)
        return np.einsum("jq,jq->j", d, pd), np.einsum("jq,jq->j", pd, resid)


def level2_moments(
    seg: Segments,
    mu_w: np.ndarray,
    sigma2_w: float | np.ndarray,
    terms: Sequence[LinearTerm] = (),
    cluster_terms: Sequence[ClusterTerm] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of every cluster's w_j given all the models it enters.

    Parameters
    ----------
    seg : Segments
        Rows sorted by cluster (all arrays of ``terms`` in that row order).
    mu_w : ndarray, shape (J,)
        Mean of w's own (level-2) model.
    sigma2_w : float or ndarray, shape (J,)
        Its residual variance.
    terms : sequence of LinearTerm
        Level-1 models linear in w_j (responses, offsets and coefficients per row).
    cluster_terms : sequence of ClusterTerm
        Cluster-level models linear in w_j.

    Returns
    -------
    mean, var : ndarray, shape (J,)

    Examples
    --------
    >>> seg = Segments.from_codes(np.array([0, 0, 1]), 2)
    >>> t = LinearTerm(np.array([1.0, 1.0, 4.0]), np.zeros(3), 1.0, 1.0)
    >>> mean, var = level2_moments(seg, np.zeros(2), 1.0, [t])
    >>> mean.round(4).tolist(), var.round(4).tolist()
    ([0.6667, 2.0], [0.3333, 0.5])
    """
    mu_w = np.asarray(mu_w, dtype=float)
    s2 = np.asarray(sigma2_w, dtype=float)
    if np.any(s2 <= 0):
        raise DataError("the residual variance of the level-2 model is not positive")
    if mu_w.shape != (seg.n_clusters,):
        raise DataError(
            f"mu_w must have one value per cluster ({seg.n_clusters}), got shape {mu_w.shape}"
        )
    prec = np.broadcast_to(1.0 / s2, mu_w.shape).astype(float)
    num = mu_w / s2
    for term in terms:  # a few models, never rows or clusters
        p, h = term.precision_and_shift()
        if p.shape != seg.codes.shape:
            raise DataError(
                f"a level-1 term has {p.shape[0]} rows, the clusters {seg.codes.shape[0]}"
            )
        ph = seg.sum(np.column_stack([p, h]))
        prec = prec + ph[:, 0]
        num = num + ph[:, 1]
    for term in cluster_terms:
        p, h = term.precision_and_shift()
        prec = prec + p
        num = num + h
    return num / prec, 1.0 / prec


def draw_level2(
    rng: np.random.Generator,
    seg: Segments,
    mu_w: np.ndarray,
    sigma2_w: float | np.ndarray,
    terms: Sequence[LinearTerm] = (),
    cluster_terms: Sequence[ClusterTerm] = (),
) -> np.ndarray:
    """One draw of w_j for every cluster from :func:`level2_moments`.

    The caller keeps the observed values (``np.where(missing_j, draw, w_obs)``) and
    repeats the draw to the rows (``w[seg.codes]``).

    Examples
    --------
    >>> seg = Segments.from_codes(np.array([0, 0, 1]), 2)
    >>> t = LinearTerm(np.ones(3), np.zeros(3), 1.0, 1.0)
    >>> draw_level2(np.random.default_rng(0), seg, np.zeros(2), 1.0, [t]).shape
    (2,)
    """
    mean, var = level2_moments(seg, mu_w, sigma2_w, terms, cluster_terms)
    return mean + np.sqrt(var) * rng.standard_normal(mean.shape)


def grouped_moments(
    n_groups: int,
    mu_w: np.ndarray,
    sigma2_w: float | np.ndarray,
    groups: Sequence[tuple[np.ndarray, LinearTerm]] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`level2_moments` for a variable constant within the clusters of an enclosing
    level (a school-level variable with three levels), whose factors live on rows of
    several levels: each term comes with the school code of each of its rows (pupils'
    rows for the analysis model and level-1 models, class rows for class-level models, one
    row per school for school-level models), and its precision and shift are summed per
    school by ``np.bincount``.

    ``λ_s = 1/σ_w² + Σ_m Σ_{rows r of s} c_m,r²/σ_m²``, ``μ*_s = (μ_w,s/σ_w² + Σ_m Σ_r c_m,r
    (v_m,r − a_m,r)/σ_m²)/λ_s``.

    Examples
    --------
    >>> t = LinearTerm(np.array([1.0, 1.0, 4.0]), np.zeros(3), 1.0, 1.0)
    >>> mean, var = grouped_moments(2, np.zeros(2), 1.0, [(np.array([0, 0, 1]), t)])
    >>> mean.round(4).tolist(), var.round(4).tolist()
    ([0.6667, 2.0], [0.3333, 0.5])
    """
    mu_w = np.asarray(mu_w, dtype=float)
    s2 = np.asarray(sigma2_w, dtype=float)
    if np.any(s2 <= 0):
        raise DataError("the residual variance of the level-3 model is not positive")
    prec = np.broadcast_to(1.0 / s2, mu_w.shape).astype(float)
    num = mu_w / s2
    for codes, term in groups:  # a few models, never rows or clusters
        p, h = term.precision_and_shift()
        prec = prec + np.bincount(codes, weights=p, minlength=n_groups)
        num = num + np.bincount(codes, weights=h, minlength=n_groups)
    return num / prec, 1.0 / prec
