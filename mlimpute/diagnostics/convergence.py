"""The convergence check of an imputation run: R-hat table, threshold and warning.

Reads the traces of a :class:`~mlimpute.result.imputed.MultiplyImputed`; the public names are
re-exported by :mod:`mlimpute.diagnostics`, whose docstring describes the algorithms.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from mlimpute.diagnostics.kernels import MIN_DRAWS, inflation_array, rhat_array
from mlimpute.errors import DataError, DataTypeError

if TYPE_CHECKING:
    import pandas as pd

    from mlimpute.result.imputed import MultiplyImputed

MIN_WARNING_ITERATIONS = 8
"""Fewest iterations for which :func:`convergence_warning` checks anything (4 kept draws)."""


def rhat_threshold(
    m: int,
    n_draws: int,
    *,
    n_traces: int = 1,
    alpha: float = 0.05,
    inflation: ArrayLike = 1.0,
    inflation_var: ArrayLike = 0.0,
) -> float | np.ndarray:
    """The R-hat that healthy chains of this length exceed with probability ``alpha``.

    For ``m`` chains of ``n_draws`` independent draws from one distribution, the value that
    the largest of ``n_traces`` R-hats (:func:`rhat_array`) exceeds with probability at most
    ``alpha``. It is the critical value of R-hat read as a test of "these chains are
    draws from the same distribution", and it shrinks towards 1 as chains get longer.

    Parameters
    ----------
    m : int
        Number of chains (imputations), at least 1.
    n_draws : int
        Draws per chain, at least 4.
    n_traces : int, default 1
        Number of traces checked together; the level is split over them (Bonferroni).
    alpha : float, default 0.05
        Probability that healthy chains exceed the threshold on some trace.
    inflation : float or array_like, default 1.0
        Factor by which autocorrelation inflates the between/within variance ratio ``B/W``
        of converged chains (1 for independent draws; see :func:`inflation_array`).
    inflation_var : float or array_like, default 0.0
        Variance of the log of an estimated ``inflation`` (0 when it is known).

    Returns
    -------
    float or numpy.ndarray
        An array when ``inflation`` or ``inflation_var`` is one.

    Raises
    ------
    DataError
        ``m < 1``, ``n_draws < 4``, ``n_traces < 1`` or ``alpha`` outside (0, 1).

    Notes
    -----
    Splitting gives ``M = 2m`` chains of ``N = n_draws // 2`` draws. For normal draws the
    ratio of the between- to the within-chain variance estimate, ``B/W``, follows an
    ``F(M - 1, M (N - 1))`` distribution and the split R-hat is
    ``sqrt((N - 1)/N + (B/W)/N)``. Rank normalisation makes any continuous draws
    close to normal, and the R-hat of :func:`rhat_array` is the larger of the bulk and the
    folded R-hat, so each gets ``alpha / (2 n_traces)``:
    ``sqrt((N - 1)/N + F_{1 - alpha/(2 n_traces)}(M - 1, M (N - 1)) / N)``.

    With autocorrelated draws ``B/W`` is inflated by ``kappa`` (:func:`inflation_array`)
    and the critical value becomes ``kappa F_{1 - alpha/(2 n_traces)}(M - 1, d)``; an
    estimated ``kappa`` adds to the noise of the denominator, so ``d`` is the
    Satterthwaite-type ``1 / (1 / (M (N - 1)) + inflation_var / 2)`` (the log of a
    chi-square variable with ``d`` degrees of freedom has variance about ``2 / d``).

    Checked against 20,000 simulated sets of independent normal chains (rate at which
    :func:`rhat_array` exceeded the threshold, target in brackets):

    ============  ==========  ===================  ==========  ====================
    m x n_draws   1 trace     exceeded [0.05]      18 traces   exceeded [0.0028]
    ============  ==========  ===================  ==========  ====================
    3 x 5         1.869       0.043                3.120       0.0019
    5 x 10        1.136       0.052                1.254       0.0022
    5 x 20        1.061       0.049                1.112       0.0032
    20 x 10       1.057       0.050                1.096       0.0032
    25 x 50       1.009       0.048                1.015       0.0024
    ============  ==========  ===================  ==========  ====================

    Examples
    --------
    >>> from mlimpute.diagnostics import rhat_threshold
    >>> round(rhat_threshold(5, 10), 3), round(rhat_threshold(5, 10, n_traces=18), 3)
    (1.136, 1.254)
    >>> round(rhat_threshold(25, 50), 3)
    1.009
    """
    if isinstance(m, bool) or int(m) != m or m < 1:
        raise DataError(f"m must be a positive integer, got {m!r}")
    if isinstance(n_draws, bool) or int(n_draws) != n_draws or n_draws < MIN_DRAWS:
        raise DataError(f"n_draws must be an integer >= {MIN_DRAWS}, got {n_draws!r}")
    if isinstance(n_traces, bool) or int(n_traces) != n_traces or n_traces < 1:
        raise DataError(f"n_traces must be a positive integer, got {n_traces!r}")
    if not 0.0 < alpha < 1.0:
        raise DataError(f"alpha must be between 0 and 1, got {alpha!r}")
    n_chains = 2 * int(m)
    half = int(n_draws) // 2
    kappa = np.asarray(inflation, dtype=np.float64)
    var = np.asarray(inflation_var, dtype=np.float64)
    df_within = 1.0 / (1.0 / (n_chains * (half - 1)) + var / 2.0)
    f_crit = stats.f.isf(alpha / (2 * int(n_traces)), n_chains - 1, df_within)
    out = np.sqrt((half - 1) / half + kappa * f_crit / half)
    return float(out) if out.ndim == 0 else out


def default_burn(n_iter: int) -> int:
    """Iterations discarded by default: the first half (warm-up)."""
    return n_iter // 2


def check_burn(burn: object, n_iter: int) -> int:
    """``burn``, the first iterations to discard, checked against ``n_iter`` iterations.

    Raises
    ------
    DataTypeError
        If ``burn`` is not a whole number (an int; not a bool or a float such as 2.5).
    DataError
        If ``burn`` is negative or leaves fewer than 4 iterations.
    """
    if isinstance(burn, (bool, np.bool_)) or not isinstance(burn, (int, np.integer)):
        raise DataTypeError(f"burn must be a whole number of iterations to discard, got {burn!r}")
    if burn < 0:
        raise DataError(
            f"burn={burn} is negative: it is the number of first iterations to discard "
            "(0 keeps them all)"
        )
    if burn > n_iter - MIN_DRAWS:
        raise DataError(
            f"burn={burn} leaves {max(n_iter - burn, 0)} of {n_iter} iterations; R-hat "
            f"needs at least {MIN_DRAWS}"
        )
    return int(burn)


def check_threshold(threshold: object) -> float:
    """An R-hat threshold, checked: a number of at least 1.

    R-hat is about 1 for chains that have mixed (for short chains a little below or above
    1), so a threshold below 1 would flag every healthy trace; 1 itself flags every trace
    above 1 (as an example does in :func:`convergence_warning`).

    Raises
    ------
    DataTypeError
        If ``threshold`` is not a number.
    DataError
        If it is below 1 (or NaN).
    """
    if isinstance(threshold, (bool, np.bool_)) or not isinstance(
        threshold, (int, float, np.integer, np.floating)
    ):
        raise DataTypeError(f"threshold must be a number of at least 1, got {threshold!r}")
    if not threshold >= 1.0:
        raise DataError(
            f"threshold must be at least 1 (R-hat is about 1 for chains that have mixed; "
            f"leave threshold unset for the calibrated per-trace limits, or 1.01 for long "
            f"runs), got {threshold!r}"
        )
    return float(threshold)


def rhat_table(
    imp: MultiplyImputed,
    *,
    burn: int | None = None,
    params: bool = True,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """R-hat of every trace of an imputation run, with the limit the warning applies.

    Parameters
    ----------
    imp : MultiplyImputed
        The result of :func:`mlimpute.impute`.
    burn : int, optional
        Iterations to discard first; default ``iterations // 2`` (the second half is kept,
        as by :meth:`MultiplyImputed.rhat` and :func:`convergence_warning`). ``burn=0``
        uses all iterations.
    params : bool, default True
        List the model parameters too; with False only the chain mean and SD of the
        imputed values.
    alpha : float, default 0.05
        Probability that converged chains put some trace of the table above its limit.

    Returns
    -------
    pandas.DataFrame
        Columns ``variable`` (the imputed variable), ``trace`` (``"mean"`` and ``"sd"`` of
        its imputed values, then its model's parameters by name), ``rhat`` (see
        :func:`rhat_array`: NaN for a constant trace or one with non-finite draws),
        ``limit`` (:func:`rhat_threshold` for this trace's estimated autocorrelation and
        the number of rows of the table; NaN where ``rhat`` is) and ``finite`` (False
        when some draw is NaN or infinite). In visit order; empty when nothing was imputed.

    Raises
    ------
    DataError
        Fewer than 4 iterations are left after ``burn``.

    Examples
    --------
    >>> import mlimpute
    >>> from mlimpute.datasets import classroom
    >>> from mlimpute.diagnostics import rhat_table
    >>> df = classroom(1, rng=1).incomplete
    >>> imp = df.mi.impute({"grade": "~ skill + (1 | class)"}, m=3, iterations=10, rng=1)
    >>> rhat_table(imp)["trace"].tolist()
    ['mean', 'sd', 'Intercept', 'skill', 'var(Intercept|class)', 'var(Residual)']
    >>> bool((rhat_table(imp)["limit"] > 1).all())
    True
    """
    import pandas as pd

    from mlimpute.schema import param_dim, param_var

    columns = ["variable", "trace", "rhat", "limit", "finite"]
    traces = imp.traces
    if "iteration" not in traces.dims or not imp.variables:
        return pd.DataFrame(
            {
                c: pd.Series(dtype=d)
                for c, d in zip(columns, (object, object, float, float, bool), strict=True)
            }
        )
    n_iter = traces.sizes["iteration"]
    burn = check_burn(default_burn(n_iter) if burn is None else burn, n_iter)
    # every trace of every variable as one (traces, imputation, iteration) array: one call
    # of the kernel (the xarray layer would apply it variable by variable)
    kept = traces.isel(iteration=slice(burn, None))
    chain_draw = ("imputation", "iteration")
    stats_ = {
        stat: kept[stat].transpose(*chain_draw, "variable").to_numpy()
        for stat in ("mean", "sd")
        if stat in kept
    }
    position = {v: k for k, v in enumerate(kept["variable"].to_numpy().tolist())} if stats_ else {}
    labels: list[str] = []
    owners: list[str] = []
    blocks: list[np.ndarray] = []
    for name in imp.variables:
        for stat, arr in stats_.items():
            labels.append(stat)
            blocks.append(arr[None, :, :, position[name]])
        pvar = param_var(name)
        if params and pvar in kept and "iteration" in kept[pvar].dims:
            da = kept[pvar].transpose(*chain_draw, param_dim(name))
            labels += [str(p) for p in da[param_dim(name)].to_numpy()]
            blocks.append(np.moveaxis(da.to_numpy(), -1, 0))
        owners += [name] * (len(labels) - len(owners))
    n_kept = n_iter - burn
    draws = np.concatenate(blocks) if blocks else np.empty((0, 1, n_kept))
    table = trace_limits(draws, alpha)
    table.insert(0, "trace", labels)
    table.insert(0, "variable", owners)
    return table[columns]


def trace_limits(draws: np.ndarray, alpha: float = 0.05) -> pd.DataFrame:
    """R-hat, limit and finiteness of every trace of ``draws`` (traces, chains, draws), as
    the columns ``rhat``, ``limit`` and ``finite`` of :func:`rhat_table`: the limit is
    :func:`rhat_threshold` (at least 1.01) for the trace's estimated autocorrelation, with
    the level ``alpha`` split over all the traces; NaN where the autocorrelation cannot be
    estimated (a constant trace, non-finite draws)."""
    import pandas as pd

    finite = np.isfinite(draws).all(axis=(-2, -1))
    if len(draws):
        values = rhat_array(draws)
        kappa, kappa_var = inflation_array(draws)
        ok = np.isfinite(kappa) & np.isfinite(kappa_var)
        limits = np.full(len(draws), np.nan)
        if ok.any():
            limits[ok] = np.maximum(
                1.01,
                rhat_threshold(
                    draws.shape[1],
                    draws.shape[2],
                    n_traces=len(draws),
                    alpha=alpha,
                    inflation=kappa[ok],
                    inflation_var=kappa_var[ok],
                ),
            )
    else:
        values = limits = np.empty(0)
    return pd.DataFrame({"rhat": values, "limit": limits, "finite": finite})


def flag_traces(
    table: pd.DataFrame, threshold: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The limit of each row of :func:`rhat_table` and whether the row fails it.

    The one rule of the convergence check, shared by :func:`convergence_warning`,
    :meth:`MultiplyImputed.converged() <mlimpute.result.imputed.MultiplyImputed.converged>`
    and :func:`mlimpute.diagnostics.converged` (``table`` from :func:`trace_limits`): a
    trace fails when its R-hat is above its limit (the table's ``limit``, or ``threshold``
    when given), infinite (chains stuck at different values) or when it has non-finite
    draws. A constant trace (R-hat NaN, draws finite) does not fail.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        The limits (float) and the failures (bool), one per row.
    """
    if threshold is None:
        limits = table["limit"].to_numpy(dtype=float)
    else:
        limits = np.full(len(table), float(threshold))
    rhat = table["rhat"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        high = (rhat > limits) | np.isposinf(rhat)  # chains stuck at different values
    return limits, high | ~table["finite"].to_numpy(dtype=bool)


def convergence_warning(
    imp: MultiplyImputed,
    threshold: float | None = None,
    *,
    alpha: float = 0.05,
    params: bool = True,
) -> str | None:
    """A message naming the traces whose chains have not mixed, or None.

    The engine calls it after every run and, when it returns a message, emits it as a
    :class:`~mlimpute.errors.ConvergenceWarning`.

    Parameters
    ----------
    imp : MultiplyImputed
        The result of :func:`mlimpute.impute`.
    threshold : float, optional
        Flag traces with R-hat above this one value. Default: each trace's own ``limit``
        of :func:`rhat_table`, which allows for that trace's autocorrelation and for the
        number of traces checked, so that converged chains trigger the warning in at most
        a fraction ``alpha`` of runs.
    alpha : float, default 0.05
        False-alarm rate per run of the default limits; ignored when ``threshold`` is given.
    params : bool, default True
        Check the model parameters too; with False only the chain mean and SD of the
        imputed values are checked (and counted).

    Returns
    -------
    str or None
        None when every trace is fine, when nothing was imputed or when the run has fewer
        than 8 iterations (too few to judge; the first half is discarded and R-hat needs
        4 draws per chain). Otherwise one sentence listing, per variable, the traces
        (``mean``/``sd`` of the imputed values, model parameters by name) with their R-hat
        and limit, and the traces with non-finite draws, then which draws were looked at
        and what to do.

    Notes
    -----
    R-hat is computed on the second half of the iterations (``burn = iterations // 2``)
    of every trace, the same number :meth:`MultiplyImputed.rhat` and :func:`rhat_table`
    report by default.

    *Why a limit per trace.* Imputation chains are short, and the R-hat of short,
    perfectly mixed chains is noisy; it is noisier still when successive draws are
    autocorrelated, as the variance parameters of multilevel models are (lag-1
    autocorrelation 0.1-0.35 in the classroom example of Jacobusse (2005) and in
    longitudinal random-slope models). A limit that assumes independent draws then
    fires on most converged runs, and more iterations do not help (R-hat of AR(1)
    chains stays about ``sqrt(1 + (kappa - 1) / N)`` above 1). Following the relation
    between R-hat and the effective sample size of Vats & Knudson (2021), ``R-hat^2 ~ 1 +
    M / ESS``, the limit of each trace is the critical value of R-hat for chains with that
    trace's autocorrelation: :func:`rhat_threshold` with the inflation of ``B/W``
    estimated from the lag-1 autocorrelation *within* chains (:func:`inflation_array`).
    Estimating it within chains matters: the usual ESS uses the between-chain variance
    too, so chains that disagree would lower their own ESS and raise their own limit.
    The level ``alpha`` is split over the traces checked (Bonferroni), so it bounds the
    false-alarm rate of a whole run. Autocorrelation beyond a lag-1 coefficient of 0.6
    (integrated time above 4) is not allowed for: chains mixing that slowly are flagged.
    The limit is never below 1.01, the value Vehtari et al. (2021) give for long runs.

    Very short runs have no power: R-hat of rank-normalised draws is bounded, and with 2 or
    3 chains of 4 or 5 kept draws even chains far apart stay below the limit.

    References: Vats, D. & Knudson, C. (2021). Revisiting the Gelman-Rubin diagnostic.
    *Statistical Science* 36(4), 518-529.

    Examples
    --------
    >>> import mlimpute
    >>> from mlimpute.datasets import classroom
    >>> from mlimpute.diagnostics import convergence_warning
    >>> df = classroom(1, rng=1).incomplete
    >>> imp = df.mi.impute({"grade": "~ skill + (1 | class)"}, m=5, iterations=40, rng=1)
    >>> convergence_warning(imp) is None
    True
    >>> print(convergence_warning(imp, threshold=1.0))  # doctest: +ELLIPSIS
    R-hat above its limit for: grade (...) -- iterations 21-40 of 40, 5 chains, ...
    """
    if threshold is not None:
        threshold = check_threshold(threshold)
    traces = imp.traces
    if not imp.variables or "iteration" not in traces.dims:
        return None
    n_iter = traces.sizes["iteration"]
    if n_iter < MIN_WARNING_ITERATIONS:
        return None
    burn = default_burn(n_iter)
    table = rhat_table(imp, burn=burn, params=params, alpha=alpha)
    m = traces.sizes["imputation"]
    limits, flagged = flag_traces(table, threshold)
    if threshold is None:
        how = f"limits allow for each trace's autocorrelation, false-alarm rate {alpha:g} per run"
    else:
        how = f"limit {float(threshold):.3f} given"
    bad = table[flagged]
    if bad.empty:
        return None
    lim_of = dict(zip(table.index, limits, strict=True))
    groups = []
    for name, rows in bad.groupby("variable", sort=False):
        items = [
            f"{t} {r:.3f} > {lim_of[i]:.3f}" if ok else f"{t} non-finite draws"
            for i, t, r, ok in zip(
                rows.index, rows["trace"], rows["rhat"], rows["finite"], strict=True
            )
        ]
        groups.append(f"{name} ({', '.join(items)})")
    what = (
        "imputed-value means and SDs and model parameters"
        if params
        else "imputed-value means and SDs"
    )
    return (
        f"R-hat above its limit for: {'; '.join(groups)} -- iterations {burn + 1}-{n_iter} "
        f"of {n_iter}, {m} chains, {what} ({len(table)} traces; {how}). The chains may "
        f"not have mixed: look at imp.plot.trace(params=True) and, if the flagged traces "
        f"still drift or the chains disagree, run more iterations (e.g. "
        f"iterations={2 * n_iter})."
    )
