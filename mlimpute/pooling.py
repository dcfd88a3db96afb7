"""Rubin's rules and multi-parameter tests for multiply imputed analyses.

Every function here is a pure function of arrays whose leading axis runs over the
``m`` imputations: estimates ``(m, k)``, their covariance matrices ``(m, k, k)``, or
``m`` test statistics. Nothing here fits a model; :mod:`mlimpute._mixedlm` does that.

Scalar inference (:func:`pool`, :func:`pool_scalar`) follows Rubin (1987) with the
small-sample degrees of freedom of Barnard & Rubin (1999), as R's mice ``pool()`` does.
Tests of ``k`` parameters at once are D1 (Li, Raghunathan & Rubin 1991, with the
denominator df of Reiter 2007 when the complete-data df is finite), D2 (Li, Meng,
Raghunathan & Rubin 1991) and D3 (Meng & Rubin 1992); their conventions are those of
R's mitml ``testModels()``. Variance components are pooled by averaging, as mitml does.

References
----------
.. [1] Rubin, D. B. (1987). *Multiple Imputation for Nonresponse in Surveys*. Wiley.
.. [2] Barnard, J. & Rubin, D. B. (1999). Small-sample degrees of freedom with multiple
   imputation. *Biometrika* 86(4), 948-955.
.. [3] Li, K. H., Raghunathan, T. E. & Rubin, D. B. (1991). Large-sample significance
   levels from multiply imputed data using moment-based statistics and an F reference
   distribution. *JASA* 86(416), 1065-1073.
.. [4] Li, K. H., Meng, X.-L., Raghunathan, T. E. & Rubin, D. B. (1991). Significance
   levels from repeated p-values with multiply-imputed data. *Statistica Sinica* 1, 65-92.
.. [5] Meng, X.-L. & Rubin, D. B. (1992). Performing likelihood ratio tests with
   multiply-imputed data sets. *Biometrika* 79(1), 103-111.
.. [6] Reiter, J. P. (2007). Small-sample degrees of freedom for multi-component
   significance tests with multiple imputation for missing data. *Biometrika* 94(2),
   502-508.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

from mlimpute.errors import MlimputeWarning, PoolingError

__all__ = [
    "PooledEstimates",
    "TestResult",
    "barnard_rubin_df",
    "d1",
    "d2",
    "d3",
    "pool",
    "pool_scalar",
    "pool_variance_components",
    "wald_statistics",
]

_EPS = np.finfo(float).eps


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class PooledEstimates:
    """Estimates of ``k`` parameters pooled over ``m`` imputations by Rubin's rules.

    Attributes
    ----------
    qbar : ndarray, shape (k,)
        Pooled estimate, the mean of the ``m`` estimates.
    ubar, b, t : ndarray, shape (k, k)
        Within-imputation, between-imputation and total covariance matrices. When only
        variances were pooled (:func:`pool_scalar`) they are diagonal.
    riv, lambda_, fmi, df, se : ndarray, shape (k,)
        Per parameter: relative increase in variance ``r``, proportion of the variance due
        to missingness ``lambda``, fraction of missing information, degrees of freedom of
        the t reference distribution (may be ``inf``) and standard error ``sqrt(diag(t))``.
    m : int
        Number of imputations.
    dfcom : float
        Complete-data degrees of freedom used (``inf`` for large-sample inference).
    names : tuple of str
        Parameter names (``"Parameter.1"``, ... when none were given).
    """

    qbar: np.ndarray
    ubar: np.ndarray
    b: np.ndarray
    t: np.ndarray
    riv: np.ndarray
    lambda_: np.ndarray
    fmi: np.ndarray
    df: np.ndarray
    se: np.ndarray
    m: int
    dfcom: float
    names: tuple[str, ...]

    def table(self, names: Sequence[str] | None = None, alpha: float = 0.05) -> pd.DataFrame:
        """Summary table with t-based p-values and ``1 - alpha`` confidence intervals.

        Parameters
        ----------
        names : sequence of str, optional
            Row labels; defaults to :attr:`names`.
        alpha : float, default 0.05
            Two-sided level of the confidence interval.

        Returns
        -------
        pandas.DataFrame
            Columns ``estimate, se, t, df, p, ci_low, ci_high, riv, lambda, fmi``, one
            row per parameter. ``p`` is two-sided, ``2 * P(T_df > |t|)``, as in mice and
            mitml (mitml's ``2 * (1 - pt(|t|, df))`` rounds p < 1e-16 to 0; we do not);
            with ``df = inf`` the reference distribution is the standard normal.
        """
        if not 0.0 < alpha < 1.0:
            raise PoolingError(f"alpha must lie in (0, 1), got {alpha!r}.")
        index = list(self.names if names is None else names)
        if len(index) != self.qbar.size:
            raise PoolingError(f"{len(index)} names given for {self.qbar.size} pooled parameters.")
        tval = self.qbar / self.se
        crit = stats.t.ppf(1.0 - alpha / 2.0, self.df)
        return pd.DataFrame(
            {
                "estimate": self.qbar,
                "se": self.se,
                "t": tval,
                "df": self.df,
                "p": 2.0 * stats.t.sf(np.abs(tval), self.df),
                "ci_low": self.qbar - crit * self.se,
                "ci_high": self.qbar + crit * self.se,
                "riv": self.riv,
                "lambda": self.lambda_,
                "fmi": self.fmi,
            },
            index=pd.Index(index, name="term"),
        )


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
    """

    __test__ = False  # not a pytest test class despite its name

    statistic: float
    df1: float
    df2: float
    p: float
    riv: float
    method: Literal["D1", "D2", "D3"]


# --------------------------------------------------------------------------------------
# helpers


def _as_estimates(estimates: ArrayLike) -> np.ndarray:
    q = np.asarray(estimates, dtype=float)
    if q.ndim != 2:
        raise PoolingError(
            f"estimates must have shape (m, k), got shape {q.shape}; "
            "use pool_scalar for one estimate per imputation."
        )
    if q.shape[0] < 2:
        raise PoolingError(
            f"pooling needs at least 2 imputations, got m = {q.shape[0]}: the "
            "between-imputation variance cannot be estimated from a single data set."
        )
    if not np.all(np.isfinite(q)):
        bad = np.argwhere(~np.isfinite(q))[0]
        raise PoolingError(f"estimate {bad[1]} of imputation {bad[0]} is not finite.")
    return q


def _names(names: Sequence[str] | None, k: int) -> tuple[str, ...]:
    if names is None:
        return tuple(f"Parameter.{j + 1}" for j in range(k))
    names = tuple(str(n) for n in names)
    if len(names) != k:
        raise PoolingError(f"{len(names)} names given for {k} parameters.")
    return names


def _check_dfcom(dfcom: float) -> float:
    dfcom = float(dfcom)
    if not dfcom > 0:
        raise PoolingError(f"the complete-data df must be positive (or inf), got {dfcom}.")
    return dfcom


def _mean_and_between(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and between-imputation covariance; exactly zero for identical estimates.

    A column whose ``m`` values agree to rounding is treated as tied: its mean is the
    common value and its rows and columns of ``B`` are exactly zero, so that identical
    imputations reproduce the complete-data answer bit for bit.
    """
    m = q.shape[0]
    tied = np.ptp(q, axis=0) <= 4.0 * _EPS * np.max(np.abs(q), axis=0)
    qbar = np.where(tied, q[0], q.mean(axis=0))
    dev = np.where(tied, 0.0, q - qbar)
    return qbar, dev.T @ dev / (m - 1)


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


# --------------------------------------------------------------------------------------
# scalar pooling


def barnard_rubin_df(m: int, b: ArrayLike, t: ArrayLike, dfcom: float = np.inf) -> np.ndarray:
    """Degrees of freedom of Barnard & Rubin (1999) for pooled scalar estimates.

    Parameters
    ----------
    m : int
        Number of imputations (at least 2).
    b, t : array_like
        Between-imputation and total variances of each parameter.
    dfcom : float, default inf
        Complete-data degrees of freedom; ``inf`` gives Rubin's (1987) df.

    Returns
    -------
    ndarray
        ``nu = nu_old * nu_obs / (nu_old + nu_obs)`` with ``lambda = (1 + 1/m) b / t``,
        ``nu_old = (m - 1) / lambda**2`` and
        ``nu_obs = (dfcom + 1) / (dfcom + 3) * dfcom * (1 - lambda)``; ``nu_old`` alone
        when ``dfcom`` is infinite.

    Notes
    -----
    Where ``b = 0`` (no between-imputation variance) the result is ``dfcom`` itself: with
    no missing information the complete-data reference distribution applies. This is a
    deliberate jump, since the limit of the formula as ``b -> 0`` is
    ``(dfcom + 1) / (dfcom + 3) * dfcom``. mice's ``barnard.rubin()`` instead floors
    ``lambda`` at 1e-4; the two agree for ``lambda >= 1e-4``.

    Examples
    --------
    >>> from mlimpute.pooling import barnard_rubin_df
    >>> barnard_rubin_df(5, [0.01, 0.0], [0.05, 0.04], dfcom=100).round(3)
    array([ 35.947, 100.   ])
    >>> barnard_rubin_df(5, [0.01], [0.05]).round(3)
    array([69.444])
    """
    if m < 2:
        raise PoolingError(f"the Barnard-Rubin df needs m >= 2 imputations, got m = {m}.")
    dfcom = _check_dfcom(dfcom)
    b = np.asarray(b, dtype=float)
    t = np.asarray(t, dtype=float)
    zero = b == 0
    lam = np.where(zero, 0.0, (1.0 + 1.0 / m) * b / np.where(zero, 1.0, t))
    nu_old = (m - 1) / np.where(zero, 1.0, lam) ** 2
    if np.isinf(dfcom):
        return np.where(zero, np.inf, nu_old)
    nu_obs = (dfcom + 1.0) / (dfcom + 3.0) * dfcom * (1.0 - lam)
    return np.where(zero, dfcom, nu_old * nu_obs / (nu_old + nu_obs))


def pool(
    estimates: ArrayLike,
    covariances: ArrayLike,
    dfcom: float = np.inf,
    names: Sequence[str] | None = None,
) -> PooledEstimates:
    """Pool ``m`` complete-data estimates by Rubin's rules.

    Parameters
    ----------
    estimates : array_like, shape (m, k)
        Estimates ``Q_l`` from each completed data set (``m >= 2``).
    covariances : array_like, shape (m, k, k) or (m, k)
        Their covariance matrices ``U_l``, or only their variances (then ``ubar``, ``b``
        and ``t`` are diagonal and each parameter is pooled on its own).
    dfcom : float, default inf
        Complete-data degrees of freedom (e.g. ``n - p`` for OLS); ``inf`` gives Rubin's
        (1987) large-sample df, a finite value the Barnard & Rubin (1999) df.
    names : sequence of str, optional
        Parameter names, used in messages and by :meth:`PooledEstimates.table`.

    Returns
    -------
    PooledEstimates

    Raises
    ------
    PoolingError
        If ``m < 2``, shapes disagree, a value is not finite or a within-imputation
        variance is not positive.

    Notes
    -----
    ``Qbar = mean Q_l``, ``Ubar = mean U_l``, ``B = sum (Q_l - Qbar)(Q_l - Qbar)' / (m-1)``
    and ``T = Ubar + (1 + 1/m) B``. Per parameter ``riv = (1 + 1/m) B / Ubar``,
    ``lambda = (1 + 1/m) B / T``, ``df`` from :func:`barnard_rubin_df` and
    ``fmi = (df + 1) / (df + 3) * lambda + 2 / (df + 3)``, which equals mice's and
    mitml's ``(riv + 2 / (df + 3)) / (riv + 1)`` (mitml's old ``testEstimates`` put the
    unadjusted df ``(m - 1) / lambda**2`` there even when ``dfcom`` was given).

    When a parameter has the same estimate in every imputation (``B = 0``, e.g. no
    missing data) its result is the complete-data one: ``qbar`` is that estimate,
    ``t = ubar``, ``riv = lambda = fmi = 0`` and ``df = dfcom``. Cost: ``O(m k^2)``.

    Examples
    --------
    >>> import numpy as np
    >>> from mlimpute.pooling import pool
    >>> q = np.array([[1.0, 2.0], [1.2, 2.1], [0.9, 1.8]])
    >>> u = np.tile(np.diag([0.04, 0.09]), (3, 1, 1))
    >>> res = pool(q, u, dfcom=50, names=["a", "b"])
    >>> res.table().round(3)[["estimate", "se", "df", "fmi"]]  # doctest: +NORMALIZE_WHITESPACE
          estimate     se      df    fmi
    term
    a        1.033  0.267   7.538  0.544
    b        1.967  0.348  16.403  0.333
    """
    q = _as_estimates(estimates)
    m, k = q.shape
    names = _names(names, k)
    dfcom = _check_dfcom(dfcom)
    u = np.asarray(covariances, dtype=float)
    if u.shape not in ((m, k), (m, k, k)):
        raise PoolingError(
            f"covariances must have shape ({m}, {k}, {k}) or ({m}, {k}) to match "
            f"estimates of shape ({m}, {k}), got {u.shape}."
        )
    if not np.all(np.isfinite(u)):
        raise PoolingError("covariances contain values that are not finite.")
    qbar, b = _mean_and_between(q)
    if u.ndim == 2:
        ubar = np.diag(u.mean(axis=0))
        b = np.diag(np.diag(b))
    else:
        ubar = u.mean(axis=0)
    ud, bd = np.diag(ubar).copy(), np.diag(b).copy()
    if np.any(ud <= 0):
        j = int(np.flatnonzero(ud <= 0)[0])
        raise PoolingError(
            f"the mean within-imputation variance of {names[j]!r} is {ud[j]}, not positive."
        )
    t = ubar + (1.0 + 1.0 / m) * b
    td = np.diag(t).copy()
    riv = (1.0 + 1.0 / m) * bd / ud
    lam = (1.0 + 1.0 / m) * bd / td
    df = barnard_rubin_df(m, bd, td, dfcom)
    fmi = np.where(bd == 0, 0.0, lam + 2.0 * (1.0 - lam) / (df + 3.0))
    return PooledEstimates(
        *(_frozen(a) for a in (qbar, ubar, b, t, riv, lam, fmi, df, np.sqrt(td))),
        m=m,
        dfcom=dfcom,
        names=names,
    )


def pool_scalar(
    estimates: ArrayLike,
    variances: ArrayLike,
    dfcom: float = np.inf,
    names: Sequence[str] | None = None,
) -> PooledEstimates:
    """Pool scalar estimates with their variances (mice's ``pool.scalar``).

    Parameters
    ----------
    estimates, variances : array_like, shape (m,) or (m, k)
        One estimate (or ``k`` unrelated ones) per imputation and its variance.
    dfcom : float, default inf
        Complete-data degrees of freedom (mice's ``n - k``).
    names : sequence of str, optional
        Parameter names.

    Returns
    -------
    PooledEstimates
        With ``k = 1`` for 1-d input; read scalars as ``res.qbar[0]``, ``res.df[0]``...

    Examples
    --------
    >>> from mlimpute.pooling import pool_scalar
    >>> res = pool_scalar([1.9, 2.0, 1.8, 2.2], [0.03, 0.02, 0.04, 0.03], dfcom=40)
    >>> float(res.qbar[0]), round(float(res.t[0, 0]), 4), round(float(res.df[0]), 2)
    (1.975, 0.0665, 6.31)
    """
    q = np.asarray(estimates, dtype=float)
    u = np.asarray(variances, dtype=float)
    if q.ndim == 1:
        q = q[:, None]
    if u.ndim == 1:
        u = u[:, None]
    if q.ndim != 2 or u.shape != q.shape:
        raise PoolingError(
            f"estimates and variances must both have shape (m,) or (m, k); got "
            f"{np.shape(estimates)} and {np.shape(variances)}."
        )
    return pool(q, u, dfcom=dfcom, names=names)


# --------------------------------------------------------------------------------------
# multi-parameter tests


def wald_statistics(estimates: ArrayLike, covariances: ArrayLike) -> np.ndarray:
    """Per-imputation Wald statistics ``Q_l' U_l^{-1} Q_l`` for the input of :func:`d2`.

    Parameters
    ----------
    estimates : array_like, shape (m, k)
    covariances : array_like, shape (m, k, k)

    Returns
    -------
    ndarray, shape (m,)

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
    return np.einsum("lj,lj->l", q, np.linalg.solve(u, q[..., None])[..., 0])


def d1(estimates: ArrayLike, covariances: ArrayLike, dfcom: float = np.inf) -> TestResult:
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

    Returns
    -------
    TestResult

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
    dfcom = _check_dfcom(dfcom)
    u = np.asarray(covariances, dtype=float)
    if u.shape != (m, k, k):
        raise PoolingError(f"covariances must have shape ({m}, {k}, {k}), got {u.shape}.")
    qbar, b = _mean_and_between(q)
    ubar = u.mean(axis=0)
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
    :mod:`mlimpute._mixedlm` evaluates the ML log-likelihood there. When the two means
    agree to 1e-10 (identical imputations) ``r = 0`` and ``df2 = inf``.

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


# --------------------------------------------------------------------------------------
# variance components


def pool_variance_components(values: ArrayLike, names: Sequence[str]) -> pd.DataFrame:
    """Pool variance components (or any derived quantity) by averaging over imputations.

    Parameters
    ----------
    values : array_like, shape (m, c)
        ``c`` quantities per imputation, e.g. random-intercept variance, residual
        variance and the intra-class correlation computed within each imputation.
    names : sequence of str
        Their ``c`` labels.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``names`` with columns ``estimate`` (the mean over imputations, as
        mitml's ``testEstimates(var.comp = TRUE)``) and ``between_sd`` (standard
        deviation over imputations, ``m - 1`` divisor).

    Notes
    -----
    Derived quantities such as the ICC are computed per imputation and then averaged
    (as mitml does), not computed from averaged variances.

    Examples
    --------
    >>> from mlimpute.pooling import pool_variance_components
    >>> vc = [[1.0, 4.0], [1.2, 3.8], [0.8, 4.2]]
    >>> pool_variance_components(vc, ["D0", "S"])  # doctest: +NORMALIZE_WHITESPACE
          estimate  between_sd
    term
    D0         1.0         0.2
    S          4.0         0.2
    """
    v = np.asarray(values, dtype=float)
    if v.ndim == 1:
        v = v[:, None]
    if v.ndim != 2 or v.shape[0] < 2:
        raise PoolingError(
            f"values must have shape (m, c) with m >= 2 imputations, got {np.shape(values)}."
        )
    names = _names(names, v.shape[1])
    return pd.DataFrame(
        {"estimate": v.mean(axis=0), "between_sd": v.std(axis=0, ddof=1)},
        index=pd.Index(names, name="term"),
    )
