"""Complete-data fits for pooling: linear mixed models (statsmodels MixedLM) and OLS.

Private helpers used by the analysis layer and by the D3 test: fit a model to one
completed data set, and evaluate its maximum-likelihood log-likelihood at *given*
parameters (the pooled ones, for Meng & Rubin's D3).

The model is ``y = X beta + Z b_j + e`` with ``b_j ~ N(0, Tau)`` per cluster ``j`` and
``e ~ N(0, sigma2 I)``. Parameters are reported on lme4's scale: ``cov_re`` is the
absolute ``Tau`` (statsmodels' ``cov_re`` result attribute, i.e. its internal
``cov_re_unscaled * scale``), ``scale`` is ``sigma2``, and ``cov_fe`` is lme4's
``vcov()``, ``(X' V^{-1} X)^{-1}`` at the estimates, not statsmodels' inverse observed
Hessian (which also carries the small fixed-by-variance cross terms).

Why not ``MixedLM.loglike(params, profile_fe=False)``? statsmodels always profiles the
residual variance out of its likelihood, whereas D3 (as in mitml) needs the likelihood
at a given ``sigma2`` as well. :func:`mixedlm_loglike` therefore computes the marginal
log-likelihood itself, vectorised over clusters with the Woodbury identity: with
``Tau = L L'`` and ``M_j = I + L' Z_j' Z_j L / sigma2``,
``log|V_j| = n_j log sigma2 + log|M_j|`` and
``r' V_j^{-1} r = (r'r - c_j' M_j^{-1} c_j / sigma2) / sigma2`` with ``c_j = L' Z_j' r``.
Cost: ``O(n q^2 + J q^3)``. At the ML estimates it equals statsmodels' ``llf``.

Uncorrelated random effects (lme4's ``(1 + x || g)``) are fitted by holding the
off-diagonal entries of the Cholesky factor of ``Tau`` at zero (statsmodels' ``free``
mask); with the random-effect columns ordered block by block this is exactly a
block-diagonal ``Tau`` with diagonal blocks where the terms are uncorrelated.
A fit is *singular* by lme4's rule (``isSingular``, tolerance 1e-4): some diagonal entry
of the Cholesky factor of ``Tau / sigma2`` is below 1e-4.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
from numpy.typing import ArrayLike
from statsmodels.regression.mixed_linear_model import MixedLMParams

from mlimpute.errors import DataError

__all__ = [
    "GLMFit",
    "MixedFit",
    "OLSFit",
    "block_mask",
    "fit_glm",
    "fit_mixedlm",
    "fit_ols",
    "glm_loglike",
    "mixedlm_loglike",
    "ols_loglike",
    "pooled_parameters",
]

_LOG_2PI = np.log(2.0 * np.pi)

#: lme4's ``isSingular`` tolerance on the relative Cholesky factor's diagonal.
SINGULAR_TOL = 1e-4


@dataclass(frozen=True, eq=False)
class MixedFit:
    """One linear mixed model fit (parameters on lme4's scale, see module docstring)."""

    fe_params: np.ndarray  # (p,)
    cov_fe: np.ndarray  # (p, p), (X' V^-1 X)^-1 at the estimates
    cov_re: np.ndarray  # (q, q), absolute random-effect covariance Tau
    scale: float  # residual variance sigma2
    llf: float  # ML log-likelihood, or statsmodels' REML criterion if reml
    reml: bool
    nobs: int
    n_groups: int
    converged: bool
    messages: tuple[str, ...]  # warnings raised by the optimiser, recorded not shown
    free: np.ndarray | None = None  # (q, q) bool: estimated entries of Tau (None: all)

    @property
    def n_cov_params(self) -> int:
        """Number of estimated random-effect (co)variances."""
        q = self.cov_re.shape[0]
        if self.free is None:
            return q * (q + 1) // 2
        return int(np.tril(self.free).sum())

    @property
    def n_params(self) -> int:
        """Number of estimated parameters (fixed, random covariance, residual)."""
        return self.fe_params.size + self.n_cov_params + 1

    @property
    def relative_cholesky_diagonal(self) -> np.ndarray:
        """Diagonal of the Cholesky factor of ``Tau / sigma2`` (lme4's ``theta`` diagonal)."""
        return _cholesky_diagonal(self.cov_re / self.scale)

    @property
    def singular(self) -> bool:
        """Boundary fit by lme4's ``isSingular`` rule (a ``theta`` diagonal below 1e-4)."""
        return bool(np.any(self.relative_cholesky_diagonal < SINGULAR_TOL))


@dataclass(frozen=True, eq=False)
class OLSFit:
    """One ordinary least squares fit."""

    params: np.ndarray  # (p,)
    cov_params: np.ndarray  # (p, p), s^2 (X'X)^-1 with s^2 = RSS / (n - p)
    sigma2_ml: float  # RSS / n, the ML residual variance
    llf: float  # ML log-likelihood at (params, sigma2_ml)
    df_resid: int  # n - p, the complete-data df for pooling

    @property
    def n_params(self) -> int:
        """Number of estimated parameters (coefficients and residual variance)."""
        return self.params.size + 1


def _design(y: ArrayLike, X: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    yv = np.asarray(y, dtype=float)
    Xm = np.asarray(X, dtype=float)
    if yv.ndim != 1 or Xm.ndim != 2 or Xm.shape[0] != yv.size:
        raise DataError(f"y must be (n,) and X (n, p); got {yv.shape} and {Xm.shape}.")
    if not (np.all(np.isfinite(yv)) and np.all(np.isfinite(Xm))):
        raise DataError("y and X must be complete and finite to be analysed.")
    return yv, Xm


@dataclass(frozen=True, eq=False)
class GLMFit:
    """One generalised linear model fit (statsmodels ``GLM``, IRLS)."""

    params: np.ndarray  # (p,)
    cov_params: np.ndarray  # (p, p)
    llf: float  # log-likelihood at the estimates
    df_resid: int  # n - p
    scale: float  # dispersion (1 for binomial and Poisson)
    converged: bool
    messages: tuple[str, ...]

    @property
    def n_params(self) -> int:
        """Number of estimated coefficients."""
        return self.params.size


def _cholesky_diagonal(a: np.ndarray) -> np.ndarray:
    """Diagonal of the Cholesky factor of a PSD matrix, also when it is singular.

    ``L_kk^2`` is the variance of component ``k`` given components ``0..k-1`` (a Schur
    complement, with a pseudo-inverse for singular leading blocks). ``q`` is small.
    """
    a = (a + a.T) / 2.0
    q = a.shape[0]
    out = np.empty(q)
    for k in range(q):
        b = a[:k, k]
        cond = a[k, k] - (b @ np.linalg.pinv(a[:k, :k]) @ b if k else 0.0)
        out[k] = np.sqrt(max(cond, 0.0))
    return out


def block_mask(blocks: Sequence[tuple[int, bool]]) -> np.ndarray:
    """Free entries of ``Tau`` for consecutive blocks of random-effect columns.

    Parameters
    ----------
    blocks : sequence of (size, correlated)
        One entry per random-effect block, in column order; ``correlated=False`` is
        lme4's ``||`` (diagonal block). Different blocks are uncorrelated.

    Returns
    -------
    ndarray of bool, shape (q, q)

    Examples
    --------
    >>> block_mask([(2, True), (1, True)]).astype(int)
    array([[1, 1, 0],
           [1, 1, 0],
           [0, 0, 1]])
    """
    q = sum(size for size, _ in blocks)
    mask = np.zeros((q, q), dtype=bool)
    start = 0
    for size, correlated in blocks:
        stop = start + size
        if correlated:
            mask[start:stop, start:stop] = True
        else:
            mask[range(start, stop), range(start, stop)] = True
        start = stop
    return mask


# --------------------------------------------------------------------------------------
# OLS and GLM


def ols_loglike(y: ArrayLike, X: ArrayLike, params: ArrayLike, sigma2: float) -> float:
    """Gaussian log-likelihood of a linear model at given coefficients and variance."""
    yv, Xm = _design(y, X)
    if not sigma2 > 0:
        raise DataError(f"the residual variance must be positive, got {sigma2}.")
    resid = yv - Xm @ np.asarray(params, dtype=float)
    return float(-0.5 * (yv.size * (_LOG_2PI + np.log(sigma2)) + resid @ resid / sigma2))


def fit_ols(y: ArrayLike, X: ArrayLike) -> OLSFit:
    """Least-squares fit with the ML residual variance and log-likelihood (as R's lm)."""
    yv, Xm = _design(y, X)
    n, p = Xm.shape
    if np.linalg.matrix_rank(Xm) < p:
        raise DataError(f"the design matrix ({n} x {p}) is rank deficient.")
    if n <= p:
        raise DataError(f"OLS needs more rows than columns, got {n} rows and {p} columns.")
    params, *_ = np.linalg.lstsq(Xm, yv, rcond=None)
    resid = yv - Xm @ params
    rss = float(resid @ resid)
    cov = rss / (n - p) * np.linalg.inv(Xm.T @ Xm)
    sigma2 = rss / n
    return OLSFit(params, cov, sigma2, ols_loglike(yv, Xm, params, sigma2), n - p)


def fit_glm(y: ArrayLike, X: ArrayLike, family: sm.families.Family) -> GLMFit:
    """Fit a GLM by IRLS (statsmodels), recording its warnings instead of showing them."""
    yv, Xm = _design(y, X)
    n, p = Xm.shape
    if np.linalg.matrix_rank(Xm) < p:
        raise DataError(f"the design matrix ({n} x {p}) is rank deficient.")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = sm.GLM(yv, Xm, family=family).fit()
    return GLMFit(
        params=np.asarray(res.params, dtype=float),
        cov_params=np.asarray(res.cov_params(), dtype=float),
        llf=float(res.llf),
        df_resid=int(round(res.df_resid)),
        scale=float(res.scale),
        converged=bool(getattr(res, "converged", True)),
        messages=tuple(dict.fromkeys(str(w.message) for w in caught)),
    )


def glm_loglike(y: ArrayLike, X: ArrayLike, family: sm.families.Family, params: ArrayLike,
                scale: float = 1.0) -> float:
    """Log-likelihood of a GLM at given coefficients (and dispersion)."""
    yv, Xm = _design(y, X)
    return float(sm.GLM(yv, Xm, family=family).loglike(np.asarray(params, float), scale=scale))


# --------------------------------------------------------------------------------------
# linear mixed models


def _clusters(groups: ArrayLike, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort order, start rows and sizes of the clusters (each cluster non-empty)."""
    codes, _ = pd.factorize(pd.Series(np.asarray(groups)), use_na_sentinel=True)
    if codes.size != n:
        raise DataError(f"groups has {codes.size} entries for {n} rows.")
    if np.any(codes < 0):
        raise DataError(f"cluster id missing in row {int(np.flatnonzero(codes < 0)[0])}.")
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    return order, starts, np.diff(np.r_[starts, n])


def _psd_sqrt(cov_re: np.ndarray) -> np.ndarray:
    """A factor ``L`` with ``L L' = cov_re`` that also exists for singular ``cov_re``."""
    w, v = np.linalg.eigh((cov_re + cov_re.T) / 2.0)
    if w.size and w.min() < -1e-10 * max(1.0, float(w.max())):
        raise DataError(f"the random-effect covariance is not positive semi-definite: {cov_re}")
    return v * np.sqrt(np.clip(w, 0.0, None))


def _marginal(y, X, Z, groups, fe_params, cov_re, scale) -> tuple[float, np.ndarray]:
    """ML log-likelihood and ``X' V^{-1} X`` at the given parameters."""
    yv, Xm = _design(y, X)
    Zm = np.asarray(Z, dtype=float)
    if Zm.ndim == 1:
        Zm = Zm[:, None]
    n, q = Zm.shape
    cov_re = np.atleast_2d(np.asarray(cov_re, dtype=float))
    if n != yv.size or cov_re.shape != (q, q):
        raise DataError(
            f"Z must be (n, q) with n = {yv.size} and cov_re (q, q); got {Zm.shape}, "
            f"{cov_re.shape}."
        )
    if not scale > 0:
        raise DataError(f"the residual variance must be positive, got {scale}.")
    order, starts, sizes = _clusters(groups, n)

    def seg(a: np.ndarray) -> np.ndarray:
        return np.add.reduceat(np.take(a, order, axis=0), starts, axis=0)

    zl = Zm @ _psd_sqrt(cov_re)
    resid = yv - Xm @ np.asarray(fe_params, dtype=float)
    m_j = np.eye(q) + seg(zl[:, :, None] * zl[:, None, :]) / scale  # (J, q, q)
    c_j = seg(zl * resid[:, None])  # (J, q)
    g_j = seg(zl[:, :, None] * Xm[:, None, :])  # (J, q, p)
    _, logdet_m = np.linalg.slogdet(m_j)
    sol = np.linalg.solve(m_j, np.concatenate([c_j[:, :, None], g_j], axis=2))
    quad = (resid @ resid - np.einsum("jq,jq->", c_j, sol[:, :, 0]) / scale) / scale
    logdet = n * np.log(scale) + logdet_m.sum()
    loglik = -0.5 * (n * _LOG_2PI + logdet + quad)
    xtvx = (Xm.T @ Xm - np.einsum("jqa,jqb->ab", g_j, sol[:, :, 1:]) / scale) / scale
    return float(loglik), xtvx


def mixedlm_loglike(
    y: ArrayLike,
    X: ArrayLike,
    Z: ArrayLike,
    groups: ArrayLike,
    fe_params: ArrayLike,
    cov_re: ArrayLike,
    scale: float,
) -> float:
    """Maximum-likelihood log-likelihood of a linear mixed model at given parameters.

    Parameters
    ----------
    y : array_like, shape (n,)
    X : array_like, shape (n, p)
        Fixed-effects design.
    Z : array_like, shape (n, q)
        Random-effects design.
    groups : array_like, shape (n,)
        Cluster ids (any hashable values; rows need not be sorted).
    fe_params : array_like, shape (p,)
    cov_re : array_like, shape (q, q)
        Absolute random-effect covariance ``Tau`` (may be singular).
    scale : float
        Residual variance ``sigma2``.

    Returns
    -------
    float
        ``-1/2 sum_j [n_j log(2 pi) + log|V_j| + r_j' V_j^{-1} r_j]`` with
        ``V_j = Z_j Tau Z_j' + sigma2 I``: the quantity lme4's ``devfun2`` returns (times
        -1/2) for a model without fixed effects and offset ``X beta``, which mitml's D3
        evaluates at the pooled parameters.
    """
    return _marginal(y, X, Z, groups, fe_params, cov_re, scale)[0]


def fit_mixedlm(
    y: ArrayLike,
    X: ArrayLike,
    Z: ArrayLike,
    groups: ArrayLike,
    *,
    reml: bool = True,
    method: str | list[str] | None = None,
    gtol: float = 1e-8,
    blocks: Sequence[tuple[int, bool]] | None = None,
) -> MixedFit:
    """Fit ``y = X beta + Z b_j + e`` by REML or ML with statsmodels ``MixedLM``.

    Parameters
    ----------
    y, X, Z, groups : array_like
        As in :func:`mixedlm_loglike`.
    reml : bool, default True
        REML (lme4's default) or ML (needed for likelihood-ratio tests and D3).
    method : str or list of str, optional
        statsmodels optimiser(s). By default bfgs with gradient tolerance ``gtol``,
        then (if that does not converge) statsmodels' lbfgs and cg from where it stopped.
    gtol : float, default 1e-8
        Gradient tolerance of bfgs when ``method`` is None. statsmodels' own default
        (1e-5) leaves variance components about 4e-5 (relative) from lme4's optimum on
        the seed's classroom data; 1e-8 agrees with lme4 to about 1e-7.
    blocks : sequence of (size, correlated), optional
        Covariance structure of the random effects, see :func:`block_mask`; by default
        one unstructured block (lme4's ``(1 + x | g)``).

    Returns
    -------
    MixedFit
        Optimiser warnings (retries, boundary estimates) are recorded in ``messages``.
    """
    yv, Xm = _design(y, X)
    Zm = np.asarray(Z, dtype=float)
    if Zm.ndim == 1:
        Zm = Zm[:, None]
    groups = np.asarray(groups)
    q = Zm.shape[1]
    mask = None if blocks is None else block_mask(blocks)
    if mask is not None and mask.shape != (q, q):
        raise DataError(f"blocks describe {mask.shape[0]} random-effect columns, Z has {q}.")
    free = None
    if mask is not None and not mask.all():
        free = MixedLMParams.from_components(
            fe_params=np.ones(Xm.shape[1]), cov_re=mask.astype(float)
        )
    else:
        mask = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = sm.MixedLM(yv, Xm, groups, exog_re=Zm)
        if method is None:
            res = model.fit(reml=reml, method="bfgs", gtol=gtol, free=free)
            if not res.converged:
                res = model.fit(
                    start_params=res.params_object, reml=reml, method=["lbfgs", "cg"], free=free
                )
        else:
            res = model.fit(reml=reml, method=method, free=free)
    fe = np.asarray(res.fe_params, dtype=float)
    cov_re = np.asarray(res.cov_re, dtype=float)
    if mask is not None:
        cov_re = np.where(mask, cov_re, 0.0)  # exact zeros where the structure says so
    scale = float(res.scale)
    loglik, xtvx = _marginal(yv, Xm, Zm, groups, fe, cov_re, scale)
    return MixedFit(
        fe_params=fe,
        cov_fe=np.linalg.inv(xtvx),
        cov_re=cov_re,
        scale=scale,
        llf=float(res.llf) if reml else loglik,
        reml=reml,
        nobs=yv.size,
        n_groups=len(model.group_labels),
        converged=bool(res.converged),
        messages=tuple(dict.fromkeys(str(w.message) for w in caught)),
        free=mask,
    )


def pooled_parameters(fits: Sequence[MixedFit]) -> tuple[np.ndarray, np.ndarray, float]:
    """Parameters pooled over imputations for D3: ``(fe_params, cov_re, scale)``.

    mitml's convention (``.getArgsLL.lmerMod``): the means of the fixed effects, of the
    random-effect covariance *matrices* ``Tau`` (not of their Cholesky factors) and of the
    residual variances. Evaluate :func:`mixedlm_loglike` there for each completed data set.
    """
    if not fits:
        raise DataError("no fits to pool.")
    return (
        np.mean([f.fe_params for f in fits], axis=0),
        np.mean([f.cov_re for f in fits], axis=0),
        float(np.mean([f.scale for f in fits])),
    )
