"""Complete-data fits for pooling: linear mixed models, OLS and GLMs.

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

:func:`fit_mixedlm` minimises lme4's profiled deviance (:class:`_Profiled`: ``beta``
and ``sigma2`` profiled out, so only the ``K`` entries ``theta`` of the relative Cholesky
factor remain) by Newton's method with the analytic gradient and a Hessian from
differences of gradients, all evaluated from cluster sums computed once per data set;
the optimum is checked and bounded Nelder-Mead takes over where the check fails.
``engine="statsmodels"`` fits with statsmodels' ``MixedLM`` instead and checks that
optimum on the profiled deviance, because statsmodels' optimiser can stop short of the
optimum near the boundary and still report convergence.

References
----------
.. [1] Bates, D., Mächler, M., Bolker, B. & Walker, S. (2015). Fitting linear
   mixed-effects models using lme4. *Journal of Statistical Software* 67(1), 1-48.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import statsmodels.api as sm
from numpy.typing import ArrayLike
from scipy import optimize
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

#: Smallest diagonal entry of ``Lambda`` Newton's method starts from
#: (:meth:`_Profiled.minimise_newton`).
START_FLOOR = 0.05
#: Newton's method stops when no step exceeds this (relative to ``max(1, |theta|)``).
NEWTON_XTOL = 1e-9
NEWTON_MAXITER = 100
#: Forward-difference step (relative) of the Hessian from the analytic gradient.
NEWTON_FD_STEP = 1e-6


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


class _Profiled:
    """lme4's profiled deviance ``-2 log L(theta)`` of a linear mixed model, its gradient,
    and its minimisation.

    ``theta`` packs the free entries of the relative Cholesky factor ``Lambda``
    (``Tau / sigma2 = Lambda Lambda'``); ``beta`` and ``sigma2`` are profiled out. With
    ``M_j = I + Lambda' A_j Lambda``, ``A_j = Z_j' Z_j`` (Woodbury, as in
    :func:`mixedlm_loglike`) every quantity comes from the cluster sums ``A_j`` and
    ``B_j = Z_j' [y X]_j``, computed once, so one evaluation costs
    ``O(J q^2 (q + p) + p^3)``, independent of ``n``:

    * ML: ``log|V| + n (1 + log(2 pi pwrss / n))``;
    * REML: ``log|V| + log|X'V^{-1}X| + (n - p)(1 + log(2 pi pwrss / (n - p)))``,

    with ``V`` relative to ``sigma2``, ``log|V| = sum_j log|M_j|``,
    ``S = [y X]' V^{-1} [y X] = W'W - sum_j B_j' P_j B_j`` (``P_j = Lambda M_j^{-1}
    Lambda'``) and ``pwrss = min_beta r'V^{-1}r = S_yy - S_yX S_XX^{-1} S_Xy`` (Bates et
    al. 2015, Eqs 34 and 41).

    **Gradient.** For the entry ``(r, c)`` of ``Lambda`` (``dLambda = e_r e_c'``), with
    ``C_j = M_j^{-1} Lambda'`` and ``G_j = I - P_j A_j``: ``d log|M_j| = 2 (C_j A_j)_cr``
    and ``dP_j = G_j dLambda C_j + (G_j dLambda C_j)'``, so ``dS = -(T + T')`` with
    ``T = sum_j (G_j' B_j)_r.' (C_j B_j)_c.``. Then ``d pwrss = v' dS v`` with
    ``v = (1, -beta)`` (the envelope theorem: ``beta`` minimises ``pwrss``) and
    ``d log|S_XX| = tr(S_XX^{-1} dS_XX)``. :meth:`evaluate` works on a batch of
    ``theta`` at once, which is how :meth:`minimise_newton` gets its Hessian.
    """

    def __init__(self, y, X, Z, groups, mask: np.ndarray, reml: bool, clusters=None):
        n, p = X.shape
        order, starts, _ = _clusters(groups, n) if clusters is None else clusters

        def seg(a: np.ndarray) -> np.ndarray:
            return np.add.reduceat(np.take(a, order, axis=0), starts, axis=0)

        w = np.column_stack([y, X])
        self.ztz = seg(Z[:, :, None] * Z[:, None, :])  # A_j, (J, q, q)
        self.ztr = seg(Z[:, :, None] * w[:, None, :])  # B_j, (J, q, 1 + p)
        self.wtw = w.T @ w
        self.n, self.p, self.q = n, p, Z.shape[1]
        self.rows, self.cols = np.nonzero(np.tril(mask))
        self.diag = self.rows == self.cols
        self.bounds = [(0.0, None) if d else (None, None) for d in self.diag]
        self.reml = reml
        self.nu = n - p if reml else n
        self.evaluations = 0  # deviance evaluations (a batch of b counts b)

    def lam(self, theta: np.ndarray) -> np.ndarray:
        """``Lambda`` of ``theta``; a batch ``(b, K)`` gives ``(b, q, q)``."""
        theta = np.asarray(theta, dtype=float)
        out = np.zeros(theta.shape[:-1] + (self.q, self.q))
        out[..., self.rows, self.cols] = theta
        return out

    def theta_of(self, rel_cov: np.ndarray) -> np.ndarray:
        """``theta`` of a relative covariance ``Tau / sigma2`` (may be singular)."""
        return _lower_cholesky(rel_cov)[self.rows, self.cols]

    def _m_inverse(self, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(log|M|, M^{-1})`` of a stack of symmetric positive definite ``M`` (>= I)."""
        if self.q == 1:
            return np.log(m[..., 0, 0]), 1.0 / m
        if self.q == 2:  # written out: 5x faster than the batched LAPACK calls here
            a, b, d = m[..., 0, 0], m[..., 0, 1], m[..., 1, 1]
            det = a * d - b * b
            inv = np.stack([np.stack([d, -b], -1), np.stack([-b, a], -1)], -2)
            inv /= det[..., None, None]
            return np.log(det), inv
        _, logdet = np.linalg.slogdet(m)
        return logdet, np.linalg.inv(m)

    def evaluate(self, thetas: np.ndarray, gradient: bool = True):
        """Deviance (and its gradient) at each row of ``thetas``, shape ``(b, K)``.

        Returns ``(dev, grad)`` of shapes ``(b,)`` and ``(b, K)`` (``grad`` is None
        without ``gradient``); ``inf`` where the deviance is undefined (a singular
        ``X'V^{-1}X`` or a perfect fit).
        """
        th = np.atleast_2d(np.asarray(thetas, dtype=float))
        b = th.shape[0]
        self.evaluations += b
        lam = self.lam(th)[:, None]  # (b, 1, q, q)
        lt = lam.transpose(0, 1, 3, 2)
        lt_a = lt @ self.ztz  # Lambda' A_j, (b, J, q, q)
        m = lt_a @ lam
        m[..., range(self.q), range(self.q)] += 1.0
        logdet_m, minv = self._m_inverse(m)
        lt_b = lt @ self.ztr  # Lambda' B_j, (b, J, q, 1 + p)
        h = minv @ lt_b  # C_j B_j
        s = self.wtw - np.einsum("bjqa,bjqc->bac", lt_b, h)  # (b, 1 + p, 1 + p)
        sxx = s[:, 1:, 1:]
        try:
            r_x = np.linalg.cholesky(sxx)
        except np.linalg.LinAlgError:
            return np.full(b, np.inf), (np.zeros_like(th) if gradient else None)
        beta = np.linalg.solve(sxx, s[:, 1:, :1])[..., 0]  # (b, p)
        pwrss = s[:, 0, 0] - np.einsum("bp,bp->b", beta, s[:, 1:, 0])
        ok = pwrss > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            nu = self.nu
            dev = logdet_m.sum(axis=1) + nu * (1.0 + np.log(2.0 * np.pi * pwrss / nu))
            if self.reml:
                dev = dev + 2.0 * np.log(np.diagonal(r_x, axis1=1, axis2=2)).sum(axis=1)
        dev = np.where(ok, dev, np.inf)
        if not gradient:
            return dev, None
        rows, cols = self.rows, self.cols
        # d log|M_j| / d Lambda_rc = 2 (M_j^-1 Lambda' A_j)_cr
        g_logdet = 2.0 * (minv @ lt_a)[:, :, cols, rows].sum(axis=1)
        # T_k = sum_j a_j[r_k]' h_j[c_k] with a_j = G_j' B_j = B_j - A_j Lambda h_j
        a = self.ztr - self.ztz @ (lam @ h)
        t = np.einsum("bjka,bjkc->bkac", a[:, :, rows, :], h[:, :, cols, :])
        v = np.concatenate([np.ones((b, 1)), -beta], axis=1)
        d_pwrss = -2.0 * np.einsum("ba,bkac,bc->bk", v, t, v)
        with np.errstate(divide="ignore", invalid="ignore"):
            grad = g_logdet + nu * d_pwrss / pwrss[:, None]
        if self.reml:
            grad = grad - 2.0 * np.einsum("bac,bkac->bk", np.linalg.inv(sxx), t[:, :, 1:, 1:])
        return dev, np.where(ok[:, None], grad, 0.0)

    def deviance(self, theta: np.ndarray) -> float:
        return float(self.evaluate(theta, gradient=False)[0][0])

    def deviance_and_gradient(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        dev, grad = self.evaluate(theta)
        return float(dev[0]), grad[0]

    def estimates(self, theta: np.ndarray):
        """``(beta, Tau, sigma2, cov_fe, deviance)`` at ``theta``.

        ``cov_fe = sigma2 S_XX^{-1}`` is lme4's ``vcov()``, ``(X' V^{-1} X)^{-1}`` with the
        absolute ``V`` at the estimates.
        """
        lam = self.lam(theta)
        lt = lam.T
        lt_b = lt @ self.ztr
        m = lt @ self.ztz @ lam
        m[:, range(self.q), range(self.q)] += 1.0
        s = self.wtw - np.einsum("jqa,jqc->ac", lt_b, np.linalg.solve(m, lt_b))
        beta = np.linalg.solve(s[1:, 1:], s[1:, 0])
        pwrss = s[0, 0] - beta @ s[1:, 0]
        sigma2 = float(pwrss / self.nu)
        return (beta, sigma2 * lam @ lam.T, sigma2, sigma2 * np.linalg.inv(s[1:, 1:]),
                self.deviance(theta))

    def canonical(self, theta: np.ndarray) -> np.ndarray:
        """The same ``Lambda Lambda'`` with non-negative diagonal: columns with a negative
        diagonal entry change sign (exactly; the deviance is even in each column)."""
        theta = np.asarray(theta, dtype=float).copy()
        for k in np.flatnonzero(self.diag & (theta < 0)):
            theta[self.cols == self.cols[k]] *= -1.0
        return theta

    def minimise_newton(self, theta0: np.ndarray) -> tuple[np.ndarray, bool, str]:
        """Newton's method on the profiled deviance, checked, Nelder-Mead as the fallback.

        Returns ``(theta, converged, optimiser)``, ``theta`` with a non-negative diagonal.

        ``theta`` is left unbounded: the deviance is even in each column of ``Lambda``,
        so a variance at zero is an interior minimum in ``theta`` (of the form
        ``c theta_kk^2``) and needs no bound, and a bound would trap the iterations on
        the wrong side of a column's sign (a covariance of the wrong sign with a variance
        at zero is a local minimum of the bounded problem). The Hessian is
        forward differences of the analytic gradient, all ``K + 1`` gradients in one batch
        (:meth:`evaluate`); its eigenvalues are replaced by their absolute values (with a
        floor) so that every step descends, with backtracking while the predicted
        decrease is above the rounding level of the deviance and full Newton steps (root
        finding on the gradient, which stays accurate where the deviance no longer
        resolves differences) below it. Diagonal entries of the start below
        ``START_FLOOR`` are raised to it: on ``theta_kk = 0`` the derivative in
        ``theta_kk`` vanishes whatever the optimum.

        The result is accepted when the steps have shrunk below 1e-9 (relative), the
        Hessian has no clearly negative eigenvalue and no coordinate step of 1e-3
        (relative) lowers the deviance; otherwise the bounded Nelder-Mead of
        :meth:`minimise` continues from there.
        """
        x = np.asarray(theta0, dtype=float).copy()
        x[self.diag] = np.where(np.abs(x[self.diag]) >= START_FLOOR, x[self.diag], START_FLOOR)
        eye = np.eye(x.size)
        converged = saddle = check = False
        x_acc, dev_acc, slope, t = x, np.inf, 0.0, 1.0
        step = np.zeros(x.size)
        for _ in range(NEWTON_MAXITER):
            h = NEWTON_FD_STEP * np.maximum(1.0, np.abs(x))
            dev, grad = self.evaluate(np.vstack([x, x + h[:, None] * eye]))
            if not np.isfinite(dev[0]) or (check and dev[0] > dev_acc - 1e-4 * t * slope):
                if not np.isfinite(dev_acc) and not check:
                    break  # the start itself is undefined
                t *= 0.5  # backtrack from the last accepted point
                if t < 1e-10:
                    break
                x = x_acc + t * step
                continue
            hess = (grad[1:] - grad[0]).T / h
            w, v = np.linalg.eigh((hess + hess.T) / 2.0)
            top = max(np.abs(w).max(), 1e-12)
            saddle = bool(w[0] < -1e-6 * top)
            x_acc, dev_acc = x, dev[0]
            step = -(v @ ((v.T @ grad[0]) / np.maximum(np.abs(w), 1e-8 * top)))
            slope = -float(grad[0] @ step)  # predicted decrease (x2), > 0
            t = 1.0
            x = x_acc + step
            if np.max(np.abs(step) / np.maximum(1.0, np.abs(x_acc))) < NEWTON_XTOL:
                converged = True
                break
            # below the deviance's rounding level: full Newton steps, unchecked
            check = slope > 1e-10 * max(1.0, abs(dev_acc))
        x = self.canonical(x)
        if converged and not saddle and self._no_descent(x, self.deviance(x)):
            return x, True, "Newton"
        opt = self.minimise(x if np.isfinite(self.deviance(x)) else np.asarray(theta0, float))
        return self.canonical(opt.x), bool(opt.success), "Newton, then Nelder-Mead"

    def _no_descent(self, theta: np.ndarray, dev: float) -> bool:
        """No step of 1e-3 (relative) along one coordinate lowers the deviance."""
        k = theta.size
        h = 1e-3 * np.maximum(1.0, np.abs(theta))
        probes = np.vstack([theta + h[:, None] * np.eye(k), theta - h[:, None] * np.eye(k)])
        return bool(np.all(self.evaluate(probes, gradient=False)[0]
                           >= dev - 1e-10 * max(1.0, abs(dev))))

    def minimise(self, theta0: np.ndarray) -> optimize.OptimizeResult:
        """Bounded Nelder-Mead from ``theta0``, restarted once from where it stops.

        Derivative-free, like lme4's default optimisers; the fallback of
        :meth:`minimise_newton` and the check of the statsmodels engine. About 500
        evaluations for ``q = 2``, and ``theta`` only to about 1e-7: the deviance no longer
        resolves smaller steps.
        """
        best = None
        start = np.asarray(theta0, dtype=float)
        for step in (0.25, 0.02):
            simplex = np.vstack([start, start + step * np.eye(start.size)])
            res = optimize.minimize(
                self.deviance, start, method="Nelder-Mead", bounds=self.bounds,
                options={"initial_simplex": simplex, "xatol": 1e-9, "fatol": 1e-11,
                         "maxiter": 1000 * start.size},
            )
            if best is None or res.fun <= best.fun:
                best = res
            start = best.x
        return best


def _lower_cholesky(a: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a PSD matrix; a zero pivot gives a zero column."""
    a = (a + a.T) / 2.0
    q = a.shape[0]
    low = np.zeros_like(a)
    for k in range(q):
        d = a[k, k] - low[k, :k] @ low[k, :k]
        low[k, k] = np.sqrt(max(d, 0.0))
        if low[k, k] > 1e-12 * max(1.0, np.sqrt(abs(a[k, k]))):
            low[k + 1:, k] = (a[k + 1:, k] - low[k + 1:, :k] @ low[k, :k]) / low[k, k]
    return low


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
    engine: Literal["profiled", "statsmodels"] = "profiled",
    start: ArrayLike | None = None,
    clusters: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> MixedFit:
    """Fit ``y = X beta + Z b_j + e`` by REML or ML.

    Parameters
    ----------
    y, X, Z, groups : array_like
        As in :func:`mixedlm_loglike`.
    reml : bool, default True
        REML (lme4's default) or ML (needed for likelihood-ratio tests and D3).
    method : str or list of str, optional
        ``engine="statsmodels"`` only: statsmodels optimiser(s). By default bfgs with
        gradient tolerance ``gtol``, then (if that does not converge) statsmodels' lbfgs
        and cg from where it stopped.
    gtol : float, default 1e-8
        ``engine="statsmodels"`` only: gradient tolerance of bfgs when ``method`` is None.
        statsmodels' own default (1e-5) leaves variance components about 4e-5 (relative)
        from lme4's optimum on the seed's classroom data; 1e-8 agrees with lme4 to about
        1e-7.
    blocks : sequence of (size, correlated), optional
        Covariance structure of the random effects, see :func:`block_mask`; by default
        one unstructured block (lme4's ``(1 + x | g)``).
    engine : {"profiled", "statsmodels"}, default "profiled"
        ``"profiled"``: Newton's method on lme4's profiled deviance with its analytic
        gradient (:meth:`_Profiled.minimise_newton`), checked, with bounded Nelder-Mead
        as the fallback. ``"statsmodels"``: statsmodels ``MixedLM``, then a check of its
        optimum on the profiled deviance (bounded Nelder-Mead started there; the better of
        the two is kept) -- an independent cross-check, 30-50 times slower.
    start : array_like, optional
        ``engine="profiled"``: ``theta`` to start from (:attr:`MixedFit.theta` of a fit
        to similar data, e.g. another imputation); by default lme4's ``Lambda = I``.
    clusters : tuple, optional
        ``(order, starts, sizes)`` of ``groups`` from a previous call (an internal cache).

    Returns
    -------
    MixedFit
        Optimiser warnings (retries, boundary estimates) are recorded in ``messages``;
        ``llf`` is the ML log-likelihood, or for REML ``-1/2`` lme4's REML criterion.

    Notes
    -----
    Why not statsmodels alone: its unbounded optimisation on the Cholesky factor can stop
    short when a variance is small, and may then still report convergence (e.g. a
    random-intercept variance of 0.196 with log-likelihood -287.14 where the optimum is
    0.092 with -286.27); on the seed's experiment 3 with 25 imputations (rng=1), bfgs with
    ``gtol = 1e-10`` ended short at 7 of the 8 singular fits (by 3e-8 to 1.2e-3 in the
    deviance), while the 17 interior fits agree with Newton's to about 1e-8.
    Newton's method converges on the gradient, so ``theta`` is accurate to about 1e-9
    where a search on deviance values (Nelder-Mead, statsmodels' line searches) stops
    at about 1e-7: the deviance (~2,600 for 600 rows) no longer resolves smaller steps.
    A variance at zero comes out as a ``theta_kk`` of order 1e-10 rather than an exact
    zero; lme4's singularity rule (``isSingular``, 1e-4) applies as it does there.
    ``converged`` is the final optimiser's verdict.

    Cost (``engine="profiled"``): the cluster sums, ``O(n (q + p)^2)``, then 5-15
    Newton iterations of ``O(J q^2 (q + p) K)`` (``K`` covariance parameters); about
    2 ms for the seed's random-slope model on 600 rows, 1 ms warm-started.
    """
    yv, Xm = _design(y, X)
    Zm = np.asarray(Z, dtype=float)
    if Zm.ndim == 1:
        Zm = Zm[:, None]
    groups = np.asarray(groups)
    q = Zm.shape[1]
    if Zm.shape[0] != yv.size or not np.all(np.isfinite(Zm)):
        raise DataError(f"Z must be a finite ({yv.size}, q) array, got shape {Zm.shape}.")
    mask = np.ones((q, q), dtype=bool) if blocks is None else block_mask(blocks)
    if mask.shape != (q, q):
        raise DataError(f"blocks describe {mask.shape[0]} random-effect columns, Z has {q}.")
    if engine not in ("statsmodels", "profiled"):
        raise DataError(f"engine must be 'statsmodels' or 'profiled', got {engine!r}.")
    prof = _Profiled(yv, Xm, Zm, groups, mask, reml, clusters=clusters)
    messages: list[str] = []
    if engine == "statsmodels":
        theta, converged, messages, how = _statsmodels_theta(
            yv, Xm, Zm, groups, mask, prof, reml=reml, method=method, gtol=gtol)
    else:
        theta0 = prof.theta_of(np.eye(q)) if start is None else np.asarray(start, float)
        if theta0.shape != prof.rows.shape:
            raise DataError(f"start must have {prof.rows.size} entries, got {theta0.shape}.")
        theta, converged, how = prof.minimise_newton(theta0)
        if not converged:
            messages.append("the profiled-deviance optimisation did not converge")
    fe, cov_re, scale, cov_fe, dev = prof.estimates(theta)
    return MixedFit(
        fe_params=fe,
        cov_fe=cov_fe,
        cov_re=np.where(mask, cov_re, 0.0),
        scale=scale,
        llf=-0.5 * dev,
        reml=reml,
        nobs=yv.size,
        n_groups=prof.ztz.shape[0],
        converged=converged,
        messages=tuple(dict.fromkeys(messages)),
        free=None if mask.all() else mask,
        theta=theta,
        optimizer=how,
    )


def _statsmodels_theta(y, X, Z, groups, mask, prof: _Profiled, *, reml, method, gtol):
    """statsmodels' optimum as ``theta``, checked (and improved) on the profiled deviance."""
    free = None
    if not mask.all():
        free = MixedLMParams.from_components(fe_params=np.ones(X.shape[1]),
                                             cov_re=mask.astype(float))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = sm.MixedLM(y, X, groups, exog_re=Z)
        try:
            if method is None:
                res = model.fit(reml=reml, method="bfgs", gtol=gtol, free=free)
                if not res.converged:
                    res = model.fit(start_params=res.params_object, reml=reml,
                                    method=["lbfgs", "cg"], free=free)
            else:
                res = model.fit(reml=reml, method=method, free=free)
            theta_sm = prof.theta_of(np.where(mask, res.cov_re_unscaled, 0.0))
            sm_converged = bool(res.converged)
        except (np.linalg.LinAlgError, ValueError) as exc:  # e.g. a singular Hessian
            warnings.warn(f"statsmodels MixedLM failed: {exc}", stacklevel=2)
            theta_sm, sm_converged = prof.theta_of(np.eye(Z.shape[1])), False
    messages = [str(w.message) for w in caught]
    dev_sm = prof.deviance(theta_sm)
    opt = prof.minimise(theta_sm)
    if opt.fun < dev_sm - 1e-8:
        if dev_sm - opt.fun > 1e-6:
            messages.append(
                f"statsmodels stopped short of the optimum: the profiled deviance improved "
                f"from {dev_sm:.6f} to {opt.fun:.6f} (bounded Nelder-Mead from its estimates)"
            )
        return opt.x, bool(opt.success), messages, "statsmodels, then Nelder-Mead"
    return theta_sm, sm_converged or bool(opt.success), messages, "statsmodels"


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
