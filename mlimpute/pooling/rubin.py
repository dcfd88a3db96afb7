"""Rubin's rules (:mod:`mlimpute.pooling`): pooled estimates, their df, variance components.

:func:`pool` and :func:`pool_scalar` combine ``m`` estimates and their covariances by
Rubin's rules with the Barnard-Rubin degrees of freedom (:func:`barnard_rubin_df`);
:func:`pool_variance_components` averages variance components; the helpers check the
arrays that the multi-parameter tests of :mod:`mlimpute.pooling.multiparam` share.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

from mlimpute.errors import PoolingError

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
        check_alpha(alpha)
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


# --------------------------------------------------------------------------------------
# helpers


def check_alpha(alpha: float) -> None:
    """Refuse an ``alpha`` (an interval's two-sided level ``1 - alpha``) outside (0, 1).

    Raises
    ------
    PoolingError
        If ``alpha`` is not a number strictly between 0 and 1 (a bool, a string, NaN,
        0, 1...).
    """
    if (
        isinstance(alpha, (bool, np.bool_))
        or not isinstance(alpha, (int, float, np.integer, np.floating))
        or not 0.0 < alpha < 1.0
    ):
        raise PoolingError(f"alpha must lie in (0, 1), got {alpha!r}.")


def _as_estimates(estimates: ArrayLike, names: Sequence[str] | None = None) -> np.ndarray:
    """``estimates`` as an ``(m, k)`` float array: at least 2 rows, every value finite.

    ``names`` (the ``k`` parameter names, when known) name the parameter in the message
    about a value that is not finite; data sets are counted from 1.
    """
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
        row, col = (int(i) for i in np.argwhere(~np.isfinite(q))[0])
        what = (
            f"the estimate of {str(names[col])!r}"
            if names is not None and len(names) == q.shape[1]
            else f"estimate {col + 1} of {q.shape[1]}"
        )
        raise PoolingError(f"{what} in completed data set {row + 1} is not finite ({q[row, col]}).")
    return q


def _names(names: Sequence[str] | None, k: int) -> tuple[str, ...]:
    if names is None:
        return tuple(f"Parameter.{j + 1}" for j in range(k))
    names = tuple(str(n) for n in names)
    if len(names) != k:
        raise PoolingError(f"{len(names)} names given for {k} parameters.")
    return names


def check_dfcom(dfcom: float) -> float:
    """``dfcom`` (the complete-data df) as a float; refused unless a number > 0 (inf allowed)."""
    if isinstance(dfcom, bool) or not isinstance(dfcom, (int, float, np.integer, np.floating)):
        raise PoolingError(
            f"dfcom (the complete-data df) must be a positive number (or inf), got {dfcom!r}."
        )
    value = float(dfcom)
    if not value > 0:
        raise PoolingError(
            f"dfcom (the complete-data df) must be positive (or inf), got {dfcom!r}."
        )
    return value


SYMMETRY_TOL = 1e-8
"""Largest ``|U - U'|`` accepted in a covariance matrix ``U``, relative to ``max |U|``."""

PSD_TOL = 1e-8
"""Most negative eigenvalue accepted in a covariance matrix, relative to its largest one."""


def check_covariances(u: np.ndarray, names: Sequence[str]) -> None:
    """Refuse covariances that are not finite, not symmetric or not positive semi-definite.

    Parameters
    ----------
    u : ndarray, shape (m, k, k) or (m, k)
        One covariance matrix per completed data set, or only the variances.
    names : sequence of str
        The ``k`` parameter names, used in the messages.

    Raises
    ------
    PoolingError
        Naming the first completed data set (counted from 1) whose covariance matrix has a
        value that is not finite, is not symmetric (``|U - U'| > 1e-8 max |U|``), or has
        an eigenvalue below ``-1e-8`` times its largest one (a negative variance when only
        variances are given).
    """
    finite = np.isfinite(u).reshape(u.shape[0], -1).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise PoolingError(
            f"the covariance of completed data set {row + 1} has values that are not finite."
        )
    if u.ndim == 2:
        if np.any(u < 0):
            row, col = (int(i) for i in np.argwhere(u < 0)[0])
            raise PoolingError(
                f"the variance of {names[col]!r} in completed data set {row + 1} is "
                f"negative ({u[row, col]})."
            )
        return
    scale = np.abs(u).max(axis=(1, 2))
    asym = np.abs(u - np.swapaxes(u, 1, 2))
    bad = asym.max(axis=(1, 2)) > SYMMETRY_TOL * scale
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        i, j = np.unravel_index(int(np.argmax(asym[row])), asym.shape[1:])
        raise PoolingError(
            f"the covariance matrix of completed data set {row + 1} is not symmetric: its "
            f"entry ({names[i]!r}, {names[j]!r}) is {u[row, i, j]} but "
            f"({names[j]!r}, {names[i]!r}) is {u[row, j, i]}."
        )
    eig = np.linalg.eigvalsh(u)  # ascending, per data set
    bad = eig[:, 0] < -PSD_TOL * np.maximum(np.abs(eig).max(axis=1), np.finfo(float).tiny)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise PoolingError(
            f"the covariance matrix of completed data set {row + 1} is not positive "
            f"semi-definite: its smallest eigenvalue is {eig[row, 0]:.4g} (largest "
            f"{eig[row, -1]:.4g}), so it is not the covariance matrix of any estimates."
        )


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
    dfcom = check_dfcom(dfcom)
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
        If ``m < 2``, shapes disagree, a value is not finite, a covariance matrix is not
        symmetric or not positive semi-definite (:func:`check_covariances`; the completed
        data set is named, counted from 1) or a mean within-imputation variance is not
        positive.

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
    q = _as_estimates(estimates, names)
    m, k = q.shape
    names = _names(names, k)
    dfcom = check_dfcom(dfcom)
    u = np.asarray(covariances, dtype=float)
    if u.shape not in ((m, k), (m, k, k)):
        raise PoolingError(
            f"covariances must have shape ({m}, {k}, {k}) or ({m}, {k}) to match "
            f"estimates of shape ({m}, {k}), got {u.shape}."
        )
    check_covariances(u, names)
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
