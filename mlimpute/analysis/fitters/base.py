"""Results of complete-data fits, and the OLS and GLM fits.

The mixed-model fit is in :mod:`mlimpute.analysis.fitters.mixedlm`.

:class:`MixedFit`, :class:`OLSFit` and :class:`GLMFit` hold what pooling needs of one
fit; :func:`block_mask` is the free-entry mask of a block-diagonal random-effect
covariance; :func:`fit_ols`, :func:`fit_glm` and their log-likelihoods at given
parameters serve models without a random part.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import statsmodels.api as sm
from numpy.typing import ArrayLike
from scipy import optimize

from mlimpute.errors import DataError

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
    theta: np.ndarray | None = None  # free entries of lme4's relative Cholesky factor
    optimizer: str = ""  # what found the optimum ("Newton", "statsmodels", ...)
    #: sampling covariance of (the free lower entries of Tau in theta's order, sigma2),
    #: the inverse observed REML/ML information (``_Profiled.vc_covariance``)
    cov_vc: np.ndarray | None = None

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
    scale: float  # dispersion (1 for binomial, Poisson and negative binomial)
    converged: bool
    messages: tuple[str, ...]
    #: the negative binomial's r = theta (variance mu + mu^2/r; MASS::glm.nb's theta, as
    #: GLMMFit.dispersion), estimated by ML; None for the other families
    dispersion: float | None = None

    @property
    def n_params(self) -> int:
        """Number of estimated parameters (coefficients, and a negative binomial's r)."""
        return self.params.size + (self.dispersion is not None)


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


#: bounds of the negative binomial's r = 1/alpha (those of the GLMM's dispersion)
_NB_R_BOUNDS = (1e-4, 1e6)


def fit_glm(y: ArrayLike, X: ArrayLike, family: sm.families.Family) -> GLMFit:
    """Fit a GLM by IRLS (statsmodels), recording its warnings instead of showing them.

    A negative binomial (``sm.families.NegativeBinomial``, whatever its ``alpha``) has its
    dispersion estimated by maximum likelihood, as ``MASS::glm.nb`` does
    (:func:`_fit_nb_glm`).
    """
    yv, Xm = _design(y, X)
    n, p = Xm.shape
    if np.linalg.matrix_rank(Xm) < p:
        raise DataError(f"the design matrix ({n} x {p}) is rank deficient.")
    r = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if isinstance(family, sm.families.NegativeBinomial):
            res, r, notes = _fit_nb_glm(yv, Xm, family)
        else:
            res, notes = sm.GLM(yv, Xm, family=family).fit(), []
    return GLMFit(
        params=np.asarray(res.params, dtype=float),
        cov_params=np.asarray(res.cov_params(), dtype=float),
        llf=float(res.llf),
        df_resid=int(round(res.df_resid)),
        scale=float(res.scale),
        converged=bool(getattr(res, "converged", True)),
        messages=tuple(dict.fromkeys([*notes, *(str(w.message) for w in caught)])),
        dispersion=r,
    )


def _fit_nb_glm(yv: np.ndarray, Xm: np.ndarray, family: sm.families.NegativeBinomial):
    """Negative-binomial GLM with its dispersion estimated by maximum likelihood.

    Maximises the profile log-likelihood in ``log r`` (``r = 1/alpha``, MASS's theta;
    variance ``mu + mu^2/r``), each value's coefficients by IRLS, within
    :data:`_NB_R_BOUNDS`. Returns the IRLS fit at the estimate -- coefficients,
    log-likelihood and the covariance of the coefficients given r, ``(X'WX)^-1``, as
    ``MASS::glm.nb`` reports them -- with r and notes (r at a bound).
    """
    if np.any((yv < 0) | (yv != np.round(yv))):
        bad = yv[(yv < 0) | (yv != np.round(yv))][0]
        raise DataError(
            f"a negative-binomial GLM needs non-negative integer counts; it has {bad:g}."
        )
    link = type(family.link)
    try:  # the coefficients' start: a Poisson fit
        start = [sm.GLM(yv, Xm, family=sm.families.Poisson(link())).fit().params]
    except (ValueError, np.linalg.LinAlgError):
        start = [None]

    def at(log_r: float):
        fam = sm.families.NegativeBinomial(link(), alpha=float(np.exp(-log_r)))
        res = sm.GLM(yv, Xm, family=fam).fit(start_params=start[0], tol=1e-10, maxiter=200)
        if np.all(np.isfinite(res.params)):
            start[0] = res.params  # the next value of r starts from here
        return res

    lo, hi = np.log(_NB_R_BOUNDS[0]), np.log(_NB_R_BOUNDS[1])
    opt = optimize.minimize_scalar(
        lambda t: -at(t).llf, bounds=(lo, hi), method="bounded", options={"xatol": 1e-10}
    )
    r, res = float(np.exp(opt.x)), at(float(opt.x))
    notes = []
    for bound, why in (
        (_NB_R_BOUNDS[1], " (no overdispersion: a Poisson model fits)"),
        (_NB_R_BOUNDS[0], ""),
    ):
        # the profile is flat towards r = infinity: a bound the optimiser only approached
        at_bound = at(np.log(bound))
        if at_bound.llf >= res.llf - 1e-9:
            r, res = bound, at_bound
            notes.append(f"the negative binomial's dispersion r is at its bound {bound:g}{why}")
            break
    return res, r, notes


def glm_loglike(
    y: ArrayLike, X: ArrayLike, family: sm.families.Family, params: ArrayLike, scale: float = 1.0
) -> float:
    """Log-likelihood of a GLM at given coefficients (and dispersion)."""
    yv, Xm = _design(y, X)
    return float(sm.GLM(yv, Xm, family=family).loglike(np.asarray(params, float), scale=scale))
