"""Pooling any per-data-set analysis: :func:`apply` (``imp.apply(func)``).

``func`` returns estimates with a covariance (a statsmodels result, a pair of arrays or
pandas objects); :func:`apply` runs it on every completed data set and pools the
estimates by Rubin's rules. :func:`_check_source` is the check that :func:`apply` and
:func:`mlimpute.analysis.fit` share.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlimpute.analysis.results import PooledResult
from mlimpute.errors import MlimputeWarning, PoolingError
from mlimpute.pooling import pool
from mlimpute.pooling.rubin import check_dfcom


def _check_source(imp: Any) -> int:
    if not (hasattr(imp, "complete") and hasattr(imp, "m")):
        raise PoolingError(
            f"expected multiply imputed data (a MultiplyImputed or the result of "
            f"from_completed()), got {type(imp).__name__}."
        )
    m = int(imp.m)
    if m < 2:
        raise PoolingError(
            f"pooling needs at least 2 imputations, got m = {m}: with one completed data set "
            "there is no between-imputation variance and the standard errors would ignore "
            "the uncertainty due to the missing data. Impute with m >= 2 (20 or more is "
            "usual), or analyse that single data set directly."
        )
    return m


def _labels(obj: Any) -> list[str] | None:
    if isinstance(obj, (pd.Series, pd.DataFrame)):
        return [str(x) for x in obj.index]
    return None


def _labelled(variances: pd.Series, est: pd.Series | pd.DataFrame) -> bool:
    """Whether ``variances`` has labels: not a default ``0, 1, ...`` index (unless the
    estimates' index is that too)."""
    default = pd.RangeIndex(len(variances))
    return not (variances.index.equals(default) and not est.index.equals(default))


def _aligned_variances(variances: pd.Series, est: pd.Series | pd.DataFrame, i: int) -> pd.Series:
    """Variances in the order of the estimates' labels; refused unless the labels agree."""
    have = [str(x) for x in variances.index]
    want = [str(x) for x in est.index]
    if sorted(have) != sorted(want):
        missing = [n for n in want if n not in have]
        extra = [n for n in have if n not in want]
        parts = [f"lack {missing}" if missing else "", f"add {extra}" if extra else ""]
        detail = " and ".join(p for p in parts if p) or "repeat some labels"
        raise PoolingError(
            f"the variances returned for completed data set {i} do not match the terms of "
            f"the estimates: they {detail}. Return a Series indexed by the same terms as "
            "the estimates (it is aligned by label), or an array in their order."
        )
    return pd.Series(variances.to_numpy(), index=have).reindex(want)


def _returned_dfcom(value: Any, i: int) -> float:
    """The dfcom that ``func`` returned for completed data set ``i``, checked."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    try:
        return check_dfcom(value)
    except PoolingError:
        raise PoolingError(
            f"the dfcom (complete-data df, the third item) returned by func for completed "
            f"data set {i} must be a positive number (or inf), got {value!r}."
        ) from None


def _unpack(
    out: Any, i: int
) -> tuple[np.ndarray, np.ndarray, list[str] | None, float | None, bool]:
    """(estimates, covariance, names, dfcom, converged) from what the user function returned."""
    converged = True
    if hasattr(out, "params") and hasattr(out, "cov_params"):
        cov_full = out.cov_params()
        if hasattr(out, "fe_params"):  # MixedLMResults: pool the fixed effects only
            est = out.fe_params
            k = len(np.asarray(est))
            cov = np.asarray(cov_full)[:k, :k]
        else:
            est, cov = out.params, cov_full
        names = _labels(est)
        if names is None and getattr(getattr(out, "model", None), "exog_names", None):
            names = [str(n) for n in out.model.exog_names][: len(np.asarray(est))]
        dfc = getattr(out, "df_resid", None)
        if getattr(out, "converged", True) is False or (
            isinstance(getattr(out, "mle_retvals", None), dict)
            and out.mle_retvals.get("converged") is False
        ):
            converged = False
        dfc = float(dfc) if dfc is not None and np.isfinite(dfc) and dfc > 0 else None
        return np.asarray(est, float), np.asarray(cov, float), names, dfc, converged
    if isinstance(out, (tuple, list)) and len(out) in (2, 3):
        est, cov = out[0], out[1]
        names = _labels(est)
        if isinstance(cov, pd.DataFrame) and names is not None:
            try:
                cov = cov.loc[list(est.index), list(est.index)]
            except KeyError as exc:
                raise PoolingError(
                    f"the covariance returned for completed data set {i} lacks the term "
                    f"{exc.args[0]!r} of the estimates."
                ) from None
        elif isinstance(cov, pd.Series) and names is not None and _labelled(cov, est):
            cov = _aligned_variances(cov, est, i)
        dfc = None if len(out) == 2 or out[2] is None else _returned_dfcom(out[2], i)
        return np.asarray(est, float), np.asarray(cov, float), names, dfc, converged
    raise PoolingError(
        f"func returned a {type(out).__name__} for completed data set {i}; expected a fitted "
        "statsmodels results object or a tuple (estimates, covariance[, dfcom])."
    )


def apply(
    imp: Any,
    func: Callable[[pd.DataFrame], Any],
    *,
    dfcom: float | None = None,
    names: Sequence[str] | None = None,
) -> PooledResult:
    """Pool any analysis: call ``func`` on each completed data set, combine by Rubin's rules.

    Usually called as ``imp.apply(func)``.

    Parameters
    ----------
    imp : MultiplyImputed or CompletedImputations
        The imputations (``m >= 2``).
    func : callable
        Receives one completed data set (a copy; changing it changes nothing) and returns
        either a fitted statsmodels results object (its ``.params``, ``.cov_params()``
        and ``.df_resid`` are used; for ``MixedLM`` the fixed effects ``.fe_params``) or
        a tuple ``(estimates, covariance)`` / ``(estimates, covariance, dfcom)``.
        Estimates may be a pandas Series (its index names the terms), an array or one
        number; the covariance a ``(k, k)`` array or DataFrame, a ``(k,)`` array or Series
        of variances, or one variance for one estimate. A covariance DataFrame or a
        variance Series with labels is aligned to the estimates' terms by label (a Series
        with other labels is refused); an array is taken in the estimates' order.
    dfcom : float, optional
        Complete-data df; by default the smallest returned (``dfcom`` or ``df_resid``)
        over the imputations, else ``inf``.
    names : sequence of str, optional
        Term names when the estimates are unnamed (default ``Parameter.1``, ...).

    Returns
    -------
    PooledResult
        D1 and D2 (Wald) tests work on it; likelihood-based tests need :func:`fit`.

    Examples
    --------
    >>> import mlimpute, statsmodels.formula.api as smf
    >>> from mlimpute.datasets import classroom
    >>> d = classroom(1, rng=1)
    >>> imp = d.incomplete.mi.impute(d.imputation, m=5, iterations=10, rng=2)
    >>> res = imp.apply(lambda df: smf.ols("grade ~ skill", df).fit())
    >>> list(res.summary().index)
    ['Intercept', 'skill']
    >>> res = imp.apply(lambda df: (df[["grade"]].mean(), df[["grade"]].var() / len(df)))
    >>> round(float(res.summary().loc["grade", "estimate"]), 2)
    9.92
    """
    m = _check_source(imp)
    if not callable(func):
        raise PoolingError(f"func must be callable, got {type(func).__name__}.")
    if dfcom is not None:
        dfcom = check_dfcom(dfcom)  # before the analyses run
    ests, covs, dfcs, fits, nonconv = [], [], [], [], []
    first_names: list[str] | None = None
    for i, df in enumerate(imp.complete("all"), start=1):
        out = func(df)
        est, cov, nm, dfc, ok = _unpack(out, i)
        est = np.atleast_1d(est)
        k = est.size
        if cov.ndim == 0 and k == 1:  # a scalar estimate and its variance
            cov = cov.reshape(1, 1)
        if cov.shape == (k,):
            cov = np.diag(cov)
        if cov.shape != (k, k):
            raise PoolingError(
                f"completed data set {i}: {k} estimates but a covariance of shape {cov.shape}; "
                f"expected ({k}, {k}) or ({k},)."
            )
        if i == 1:
            first_names = nm
        elif nm is not None and first_names is not None and nm != first_names:
            if sorted(nm) != sorted(first_names):
                odd = sorted(set(nm) ^ set(first_names))
                raise PoolingError(
                    f"completed data set {i} returned other terms than data set 1: {odd}."
                )
            order = [nm.index(n) for n in first_names]
            est, cov = est[order], cov[np.ix_(order, order)]
        if ests and k != ests[0].size:
            raise PoolingError(
                f"completed data set {i} returned {k} estimates, data set 1 {ests[0].size}."
            )
        ests.append(est)
        covs.append(cov)
        fits.append(out)
        if dfc is not None:
            dfcs.append(dfc)
        if not ok:
            nonconv.append(i)
    label = names if names is not None else first_names
    dfc = check_dfcom(dfcom) if dfcom is not None else (min(dfcs) if dfcs else np.inf)
    pooled = pool(np.array(ests), np.array(covs), dfcom=dfc, names=label)
    name = getattr(func, "__name__", type(func).__name__)
    result = PooledResult(
        estimates=np.array(ests),
        covariances=np.array(covs),
        pooled=pooled,
        model=f"user function {name}()",
        fits=fits,
        nonconverged=nonconv,
        source=imp,
    )
    if result.notes:
        warnings.warn("; ".join(result.notes) + f" (m = {m}).", MlimputeWarning, stacklevel=3)
    return result
