"""Multi-parameter tests (:mod:`mlimpute.pooling`): D1, D2 and D3 as in R's mitml.

:func:`d1` (Wald, Li, Raghunathan & Rubin 1991, with Reiter's 2007 denominator df),
:func:`d2` (pooled chi-square statistics, Li, Meng, Raghunathan & Rubin 1991) and
:func:`d3` (pooled likelihood ratios, Meng & Rubin 1992), each returning a
:class:`TestResult`; :func:`wald_statistics` gives D2 its per-imputation statistics.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from mlimpute.errors import MlimputeWarning, PoolingError
from mlimpute.pooling.rubin import _EPS, _as_estimates, _mean_and_between, check_dfcom


@dataclass(frozen=True)
class TestResult:
    """Result of a multi-parameter test on multiply imputed data.

    Attributes
    ----------
    statistic : float
        The F statistic.
    df1, df2 : float
        Numerator (``k``, the number of parameters tested) and denominator degrees of
        freedom; ``df2`` may be ``inf``, in which case ``p`` is from ``chi2(k) / k``.
    p : float
        Upper-tail p-value.
    riv : float
        Average relative increase in variance due to missingness.
    method : {"D1", "D2", "D3"}
        Which combining rule produced the result.

    The fields keep full precision; ``repr`` and ``print`` show them rounded.

    Examples
    --------
    >>> t = TestResult(statistic=25.931024264339396, df1=2.0, df2=48.71771, p=2.2e-08,
    ...                riv=0.41, method="D1")
    >>> t
    TestResult(method='D1', statistic=25.931, df1=2, df2=48.72, p=2.2e-08, riv=0.410)
    >>> print(t)
    D1 test: F = 25.931 on 2 and 48.72 df, p = 2.2e-08 (average relative increase in variance 0.410)
    """

    __test__ = False  # not a pytest test class despite its name

    statistic: float
    df1: float
    df2: float
    p: float
    riv: float
    method: Literal["D1", "D2", "D3"]

    def __repr__(self) -> str:
        return (
            f"TestResult(method={self.method!r}, statistic={self.statistic:.3f}, "
            f"df1={_df_text(self.df1)}, df2={_df_text(self.df2)}, p={_p_text(self.p)}, "
            f"riv={self.riv:.3f})"
        )

    def __str__(self) -> str:
        return (
            f"{self.method} test: F = {self.statistic:.3f} on {_df_text(self.df1)} and "
            f"{_df_text(self.df2)} df, p = {_p_text(self.p)} (average relative increase "
            f"in variance {self.riv:.3f})"
        )


def _df_text(v: float) -> str:
    """Degrees of freedom for display: whole numbers as such, else 2 decimals."""
    if np.isinf(v):
        return "inf"
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.2f}"


def _p_text(p: float) -> str:
    """A p-value for display: 4 decimals, or 3 significant digits below 0.0001."""
    return f"{p:.4f}" if p >= 1e-4 or p == 0 else f"{p:.3g}"


# --------------------------------------------------------------------------------------
# helpers


def _f_sf(stat: float, df1: float, df2: float) -> float:
    if np.isinf(df2):
        return float(stats.chi2.sf(stat * df1, df1))
    return float(stats.f.sf(stat, df1, df2))


def _li_df(r: float, k: int, m: int) -> float:
    """Denominator df of Li, Raghunathan & Rubin (1991), used by D1 and D3."""
    if r == 0:
        return np.inf
    t = k * (m - 1)
    if t > 4:
        return 4.0 + (t - 4) * (1.0 + (1.0 - 2.0 / t) / r) ** 2
    return t * (1.0 + 1.0 / k) * (1.0 + 1.0 / r) ** 2 / 2.0


def _reiter_df(r: float, k: int, m: int, dfcom: float) -> float:
    """Denominator df of D1 with a finite complete-data df (Reiter 2007, Eqs 1-2)."""
    t = k * (m - 1)
    vstar = (dfcom + 1.0) / (dfcom + 3.0) * dfcom
    if t <= 4:  # Reiter's moments need t > 4: combine Li's df with nu_obs, Barnard-Rubin way
        nu_old = _li_df(r, k, m)
        nu_obs = vstar / (1.0 + r)
        return nu_old * nu_obs / (nu_old + nu_obs)
    a = r * t / (t - 2.0)
    c0 = 1.0 / (t - 4.0)
    c1 = vstar - 2.0 * (1.0 + a)
    c2 = vstar - 4.0 * (1.0 + a)
    if c2 <= 0:
        warnings.warn(
            f"D1: Reiter's df needs dfcom (dfcom + 1) / (dfcom + 3) > 4 (1 + a) with "
            f"a = r t / (t - 2) = {a:.3g}; with dfcom = {dfcom:g} and r = {r:.3g} it does "
            "not hold (too much missing information for so small a sample), so df2 is set "
            "to 4, the formula's limit at that boundary.",
            MlimputeWarning,
            stacklevel=3,
        )
        return 4.0
    z = (
        1.0 / c2
        + c0 * a**2 * c1 / ((1.0 + a) ** 2 * c2)
        + c0 * (8.0 * a**2 * c1 / ((1.0 + a) * c2**2) + 4.0 * a**2 / ((1.0 + a) * c2))
        + c0 * (4.0 * a**2 / (c2 * c1) + 16.0 * a**2 * c1 / c2**3)
        + c0 * 8.0 * a**2 / c2**2
    )
    return 4.0 + 1.0 / z


SINGULAR_TOL = 1e-12
"""Smallest eigenvalue of a tested covariance's correlation matrix that counts as invertible."""


def _tested(names: Sequence[str] | None, k: int) -> str:
    if names is None:
        return f"the {k} tested parameters"
    return "the tested terms " + ", ".join(repr(str(n)) for n in names)


def _check_invertible(u: np.ndarray, names: Sequence[str] | None, what: str) -> None:
    """Refuse covariance matrices (..., k, k) of the tested terms that are (near) singular.

    Each matrix is scaled to a correlation matrix first, so that terms on very different
    scales do not matter; it is refused when a variance is not positive or the smallest
    eigenvalue of the correlation matrix is below :data:`SINGULAR_TOL` (a condition number
    above about ``1e12``, where a solve keeps fewer than four significant digits).
    ``what(i)`` names the ``i``-th matrix in the message.
    """
    mats = u.reshape(-1, *u.shape[-2:])
    k = mats.shape[-1]
    for i, mat in enumerate(mats):
        var = np.diag(mat)
        if np.all(var > 0):
            sd = np.sqrt(var)
            smallest = float(np.linalg.eigvalsh(mat / np.outer(sd, sd))[0])
            if smallest >= SINGULAR_TOL:
                continue
            detail = f"the smallest eigenvalue of its correlation matrix is {smallest:.3g}"
        else:
            detail = f"a variance is not positive ({var.min():.4g})"
        raise PoolingError(
            f"the covariance matrix of {_tested(names, k)} in {what(i)} is singular or not "
            f"positive definite ({detail}), so the Wald statistic cannot be computed. A "
            "tested term may be aliased with (a linear combination of) the others, or the "
            "hypothesis may test the same thing twice."
        )


# --------------------------------------------------------------------------------------
# multi-parameter tests


def wald_statistics(
    estimates: ArrayLike, covariances: ArrayLike, *, names: Sequence[str] | None = None
) -> np.ndarray:
    """Per-imputation Wald statistics ``Q_l' U_l^{-1} Q_l`` for the input of :func:`d2`.

    Parameters
    ----------
    estimates : array_like, shape (m, k)
    covariances : array_like, shape (m, k, k)
    names : sequence of str, optional
        The terms the tested parameters involve, named in the message when a covariance
        matrix is singular.

    Returns
    -------
    ndarray, shape (m,)

    Raises
    ------
    PoolingError
        If the shapes disagree, or a covariance matrix ``U_l`` is singular or not
        positive definite (its correlation matrix has an eigenvalue below ``1e-12``); the
        completed data set is named, counted from 1.

    Examples
    --------
    >>> from mlimpute.pooling import wald_statistics
    >>> wald_statistics([[1.0, 2.0]], [[[1.0, 0.0], [0.0, 4.0]]])
    array([2.])
    """
    q = np.asarray(estimates, dtype=float)
    u = np.asarray(covariances, dtype=float)
    if q.ndim != 2 or u.shape != (*q.shape, q.shape[1]):
        raise PoolingError(
            f"estimates (m, k) and covariances (m, k, k) expected, got {q.shape} and {u.shape}."
        )
    _check_invertible(u, names, lambda i: f"completed data set {i + 1}")
    return np.einsum("lj,lj->l", q, np.linalg.solve(u, q[..., None])[..., 0])


def d1(
    estimates: ArrayLike,
    covariances: ArrayLike,
    dfcom: float = np.inf,
    *,
    names: Sequence[str] | None = None,
) -> TestResult:
    """D1 test of ``Q = 0`` for ``k`` parameters (Li, Raghunathan & Rubin 1991).

    Parameters
    ----------
    estimates : array_like, shape (m, k)
        Estimates of the tested parameters (subtract a null value first if it is not 0).
    covariances : array_like, shape (m, k, k)
        Their covariance matrices.
    dfcom : float, default inf
        Complete-data df. Finite: Reiter's (2007) denominator df; ``inf``: that of Li,
        Raghunathan & Rubin (1991). mitml's ``df.com = NULL`` corresponds to ``inf``.
    names : sequence of str, optional
        The terms the tested parameters involve, named in the message when a covariance
        matrix is singular.

    Returns
    -------
    TestResult

    Raises
    ------
    PoolingError
        If the shapes disagree, or a covariance matrix ``U_l`` or their mean ``Ubar`` is
        singular or not positive definite (its correlation matrix has an eigenvalue below
        ``1e-12``); the completed data set is named, counted from 1.

    Notes
    -----
    ``r = (1 + 1/m) tr(B Ubar^{-1}) / k`` and ``D1 = Qbar' ((1 + r) Ubar)^{-1} Qbar / k``,
    referred to ``F(k, nu)``. With ``t = k(m - 1) > 4``,
    ``nu = 4 + (t - 4)(1 + (1 - 2/t) / r)^2``, else ``t (1 + 1/k)(1 + 1/r)^2 / 2``
    (as in mitml). Reiter's df (his Eqs 1-2, as coded in mitml) is defined only for
    ``t > 4``; for ``t <= 4`` with a finite ``dfcom`` we combine the Li et al. df with
    ``nu_obs = (dfcom + 1) / (dfcom + 3) * dfcom / (1 + r)`` in the Barnard-Rubin way,
    which for ``k = 1`` is exactly the df of :func:`pool`. Reiter's formula also needs
    ``(dfcom + 1) / (dfcom + 3) * dfcom > 4 (1 + a)``, ``a = r t / (t - 2)``; beyond that
    (mitml returns a meaningless, possibly negative df) we warn and use 4, its limit at
    the boundary. With ``B = 0`` the result is the complete-data Wald test: ``r = 0`` and
    ``nu = dfcom``.

    Examples
    --------
    >>> import numpy as np
    >>> from mlimpute.pooling import d1
    >>> q = np.array([[0.5, 0.3], [0.6, 0.2], [0.4, 0.35], [0.55, 0.3], [0.5, 0.25]])
    >>> u = np.tile(np.diag([0.01, 0.01]), (5, 1, 1))
    >>> res = d1(q, u)
    >>> round(res.statistic, 3), res.df1, round(res.df2, 1), round(res.riv, 3)
    (11.098, 2.0, 27.6, 0.525)
    """
    q = _as_estimates(estimates)
    m, k = q.shape
    dfcom = check_dfcom(dfcom)
    u = np.asarray(covariances, dtype=float)
    if u.shape != (m, k, k):
        raise PoolingError(f"covariances must have shape ({m}, {k}, {k}), got {u.shape}.")
    qbar, b = _mean_and_between(q)
    _check_invertible(u, names, lambda i: f"completed data set {i + 1}")
    ubar = u.mean(axis=0)
    _check_invertible(ubar, names, lambda i: "the average over the completed data sets")
    r = float((1.0 + 1.0 / m) * np.trace(np.linalg.solve(ubar, b)) / k)
    stat = float(qbar @ np.linalg.solve((1.0 + r) * ubar, qbar) / k)
    if r == 0:
        df2 = dfcom
    elif np.isinf(dfcom):
        df2 = _li_df(r, k, m)
    else:
        df2 = _reiter_df(r, k, m, dfcom)
    return TestResult(stat, float(k), float(df2), _f_sf(stat, k, df2), r, "D1")


def d2(statistics: ArrayLike, k: int) -> TestResult:
    """D2 test combining ``m`` chi-square statistics (Li, Meng, Raghunathan & Rubin 1991).

    Parameters
    ----------
    statistics : array_like, shape (m,)
        One chi-square statistic on ``k`` df per imputation: Wald statistics (see
        :func:`wald_statistics`; mitml's default ``use = "wald"``) or likelihood-ratio
        statistics (``use = "likelihood"``).
    k : int
        Number of parameters tested.

    Returns
    -------
    TestResult

    Notes
    -----
    ``r = (1 + 1/m) var(sqrt(d_l))`` (sample variance, ``m - 1`` divisor),
    ``D2 = (mean(d) / k - (m + 1) / (m - 1) r) / (1 + r)`` on ``F(k, nu)`` with
    ``nu = k^(-3/m) (m - 1)(1 + 1/r)^2``, as in mitml. D2 may be negative (then
    ``p = 1``); like mitml it is not truncated. Identical statistics give ``r = 0``, the
    complete-data chi-square test (``df2 = inf``). Negative statistics down to
    ``-1e-8 * max(1, max |d|)`` (rounding in a likelihood difference) are set to zero.

    Examples
    --------
    >>> from mlimpute.pooling import d2
    >>> res = d2([9.1, 12.3, 10.4, 8.7, 11.0], k=2)
    >>> round(res.statistic, 3), round(res.df2, 1), round(res.p, 5)
    (4.765, 787.3, 0.00877)
    """
    d = np.asarray(statistics, dtype=float)
    if d.ndim != 1 or d.size < 2:
        raise PoolingError(f"D2 needs m >= 2 statistics in a 1-d array, got shape {d.shape}.")
    if not np.all(np.isfinite(d)):
        raise PoolingError("D2 statistics must be finite.")
    k = _check_k(k)
    tol = 1e-8 * max(1.0, float(np.max(np.abs(d))))
    if np.any(d < -tol):
        raise PoolingError(f"D2 statistics must be >= 0, got {d.min()}.")
    d = np.maximum(d, 0.0)
    m = d.size
    root = np.sqrt(d)
    tied = np.ptp(root) <= 4.0 * _EPS * np.max(root)
    r = 0.0 if tied else float((1.0 + 1.0 / m) * np.var(root, ddof=1))
    stat = float((d.mean() / k - (m + 1.0) / (m - 1.0) * r) / (1.0 + r))
    df2 = np.inf if r == 0 else k ** (-3.0 / m) * (m - 1) * (1.0 + 1.0 / r) ** 2
    return TestResult(stat, float(k), float(df2), _f_sf(stat, k, df2), r, "D2")


def d3(
    lr_own: ArrayLike,
    lr_pooled: ArrayLike,
    k: int,
    ariv: Literal["default", "positive"] = "default",
) -> TestResult:
    """D3 likelihood-ratio test (Meng & Rubin 1992).

    Parameters
    ----------
    lr_own : array_like, shape (m,)
        ``2 (logL_full - logL_reduced)`` of each imputation, both models at their own
        (ML) estimates.
    lr_pooled : array_like, shape (m,)
        The same, but with both log-likelihoods evaluated at the parameters pooled over
        the imputations (for each model separately).
    k : int
        Number of parameters the reduced model lacks.
    ariv : {"default", "positive"}
        ``"positive"`` truncates a negative ``r`` at zero (mitml's ``ariv`` option).

    Returns
    -------
    TestResult

    Notes
    -----
    ``r = (m + 1) / (k (m - 1)) * (mean(lr_own) - mean(lr_pooled))`` and
    ``D3 = mean(lr_pooled) / (k (1 + r))`` on ``F(k, nu)`` with the df of :func:`d1`
    (Li et al.'s; mitml ignores a complete-data df for D3). Both models must be fitted by
    ML, not REML (mitml refits REML fits by ML before D3).
    mitml pools the parameters of a linear (mixed) model as the means of the fixed
    effects, of the random-effect covariance matrices and of the residual variances;
    :mod:`mlimpute.analysis.fitters.mixedlm` evaluates the ML log-likelihood there. When
    the two means agree to 1e-10 (identical imputations) ``r = 0`` and ``df2 = inf``.

    Examples
    --------
    >>> from mlimpute.pooling import d3
    >>> res = d3([20.1, 24.3, 18.0, 22.5], [18.2, 21.0, 16.4, 19.9], k=2)
    >>> round(res.statistic, 3), round(res.df2, 1), round(res.riv, 3)
    (3.19, 7.6, 1.958)
    """
    own = np.asarray(lr_own, dtype=float)
    pooled = np.asarray(lr_pooled, dtype=float)
    if own.ndim != 1 or own.shape != pooled.shape or own.size < 2:
        raise PoolingError(
            "lr_own and lr_pooled must be 1-d arrays of the same length m >= 2, got "
            f"shapes {own.shape} and {pooled.shape}."
        )
    if not (np.all(np.isfinite(own)) and np.all(np.isfinite(pooled))):
        raise PoolingError("D3 likelihood-ratio statistics must be finite.")
    k = _check_k(k)
    m = own.size
    dl_bar, dl_tilde = float(own.mean()), float(pooled.mean())
    if np.isclose(dl_bar, dl_tilde, rtol=1e-10, atol=1e-12):
        r = 0.0
    else:
        r = (m + 1.0) / (k * (m - 1.0)) * (dl_bar - dl_tilde)
    if ariv == "positive":
        r = max(r, 0.0)
    elif ariv != "default":
        raise PoolingError(f"ariv must be 'default' or 'positive', got {ariv!r}.")
    if r <= -1.0:
        raise PoolingError(
            f"D3 is undefined: r = {r:.4g} <= -1 (the pooled-parameter likelihood ratios "
            "exceed the own-estimate ones by far); use ariv='positive' or D1/D2."
        )
    stat = dl_tilde / (k * (1.0 + r))
    df2 = _li_df(r, k, m)
    return TestResult(stat, float(k), float(df2), _f_sf(stat, k, df2), r, "D3")


def _check_k(k: int) -> int:
    if int(k) != k or k < 1:
        raise PoolingError(f"k, the number of parameters tested, must be a positive integer: {k}")
    return int(k)
