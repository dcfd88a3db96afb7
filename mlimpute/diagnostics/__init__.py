"""Convergence diagnostics for the imputation chains: R-hat and effective sample size.

Each of the ``m`` imputations is an independent Markov chain, so the usual MCMC
diagnostics apply to any trace stored along ``(imputation, iteration)``: chain means and
variances of the imputed values and the parameters of every conditional model.

The module is built in layers:

1. **numpy kernels** -- :func:`rhat_array`, :func:`ess_bulk_array`, :func:`ess_tail_array` take
   a float array with one *chain* axis and one *draw* axis (by default the last two:
   ``(..., chain, draw)``) and return an array with those two axes removed. Every other axis,
   leading or trailing, is a batch axis and is kept in its order. Nothing loops in Python
   over chains, draws or batch elements.
2. **xarray wrappers** -- :func:`rhat`, :func:`ess_bulk`, :func:`ess_tail` and
   :func:`converged` apply a kernel with :func:`xarray.apply_ufunc` to every data variable
   that has both the chain and the draw dimension (``"imputation"`` and ``"iteration"`` by
   default) and drop the others.
3. **result layer** -- :func:`rhat_table` and :func:`convergence_warning` read the traces of
   a :class:`~mlimpute.result.imputed.MultiplyImputed`; :func:`rhat_threshold` is the R-hat value
   converged chains of a given length and autocorrelation exceed with a given probability,
   and the warning applies it to every trace with that trace's autocorrelation (estimated
   within chains by :func:`inflation_array`); see :func:`convergence_warning`.

Algorithms follow Vehtari, Gelman, Simpson, Carpenter & Bürkner (2021):

- Each chain is split in two halves (the middle draw of an odd-length chain is dropped), so
  ``M`` chains of ``n`` draws become ``2M`` chains of ``N = n // 2`` draws; one chain is enough.
- *Rank normalisation*: the draws pooled over all chains are replaced by their average ranks
  ``r`` and mapped to normal scores ``Phi^{-1}((r - 3/8) / (S + 1/4))`` (Blom 1958), ``S`` the
  number of pooled draws.
- *R-hat* is the larger of the bulk R-hat (split R-hat of the rank-normalised draws) and
  the folded R-hat (split R-hat of the rank-normalised ``|x - median(x)|``, sensitive to
  chains that differ in scale).
- *Bulk ESS* is the effective sample size of the rank-normalised split chains; *tail ESS* the
  smaller of the effective sample sizes of the indicators ``x <= q05`` and ``x <= q95``.
- The effective sample size is computed exactly as the paper's reference implementation
  (Stan's ``ess_rfun``, the posterior package, arviz) computes it: ``M N / tau`` with the
  combined-chain autocorrelations ``rho_t = 1 - (W - mean_m acov_m(t)) / var_plus``, where
  ``acov_m(t)`` is the autocovariance of chain ``m`` at lag ``t`` divided by ``N`` (by FFT),
  ``W = mean_m acov_m(0) N / (N - 1)`` the mean within-chain variance and
  ``var_plus = W (N - 1) / N + var(chain means)``; ``rho_0 = 1``. They are summed with
  Geyer's (1992) initial monotone sequence estimator over the lags up to ``N - 2``: the
  pair sums ``P_k = rho_{2k} + rho_{2k+1}`` before the first non-positive one (or before
  the last pair) are made non-increasing, and of that pair only ``rho_{2k}`` is added
  once (when it is positive or its pair sum is not negative):
  ``tau = -1 + 2 sum P_k + rho_{2k}``. ``tau`` is bounded below by ``1 / log10(M N)``, so
  ESS never exceeds ``M N log10(M N)``.
- The tail ESS takes the 5 % and 95 % quantiles of all draws (the middle draw of odd-length
  chains included) and splits the indicators afterwards, as the reference does.

Special cases (the NaN policy)
------------------------------
- **Constant trace** (every draw of every chain equal, e.g. a parameter that is genuinely
  fixed): R-hat, bulk ESS and tail ESS are NaN -- the statistics are 0/0 (arviz returns
  the number of draws as the ESS of a constant trace).
- **Constant tail indicator** (a trace that is not constant but has 95 % or more of its
  draws tied at its largest value, say): as in arviz, the ESS of a constant indicator is
  the number of split draws ``M N``, so the tail ESS is the other indicator's ESS when
  that is smaller, else ``M N`` (the reference fixture of the tests comes from arviz).
  :func:`converged` counts such a trace as converged, since a constant value cannot be
  unmixed.
- **Chains constant but different** (each split chain stuck at its own value): R-hat is
  ``inf``; :func:`converged` reports a failure.
- **Non-finite draws** (NaN or +-inf anywhere in the trace of one batch element): all
  statistics are NaN for that element and :func:`converged` reports a failure.
- **Fewer than 4 draws per chain**: a :class:`~mlimpute.errors.DataError` is raised, because a
  split chain then has fewer than 2 draws and no within-chain variance.

Notes
-----
Cost: ``O(B M n log n)`` for ``B`` batch elements (the ranking is a sort of the pooled draws,
the autocovariances one real FFT per chain).

References
----------
.. [1] Vehtari, A., Gelman, A., Simpson, D., Carpenter, B. & Bürkner, P.-C. (2021).
   Rank-normalization, folding, and localization: an improved R-hat for assessing
   convergence of MCMC. *Bayesian Analysis* 16(2), 667-718.
.. [2] Geyer, C. J. (1992). Practical Markov chain Monte Carlo. *Statistical Science* 7(4),
   473-483.
.. [4] Vats, D. & Knudson, C. (2021). Revisiting the Gelman-Rubin diagnostic.
   *Statistical Science* 36(4), 518-529.
.. [3] Blom, G. (1958). *Statistical Estimates and Transformed Beta-Variables*. Wiley.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np
import xarray as xr

from mlimpute.diagnostics.convergence import (
    MIN_WARNING_ITERATIONS,
    check_threshold,
    convergence_warning,
    flag_traces,
    rhat_table,
    rhat_threshold,
    trace_limits,
)
from mlimpute.diagnostics.kernels import (
    MIN_DRAWS,
    _converged_kernel,
    ess_bulk_array,
    ess_tail_array,
    inflation_array,
    rhat_array,
)
from mlimpute.errors import DataError, DataTypeError

__all__ = [
    "MIN_DRAWS",
    "rhat_array",
    "ess_bulk_array",
    "ess_tail_array",
    "rhat",
    "ess_bulk",
    "ess_tail",
    "converged",
    "rhat_threshold",
    "inflation_array",
    "rhat_table",
    "convergence_warning",
    "MIN_WARNING_ITERATIONS",
]

_XrObj = TypeVar("_XrObj", xr.Dataset, xr.DataArray)


# --------------------------------------------------------------------------------------------
# xarray layer
# --------------------------------------------------------------------------------------------


def _apply(
    kernel: Callable[..., np.ndarray],
    data: _XrObj,
    chain_dim: str,
    draw_dim: str,
    output_dtype: type,
    **kwargs: object,
) -> _XrObj:
    """Apply ``kernel`` over (chain_dim, draw_dim) of every variable that has both dims."""
    dims = [chain_dim, draw_dim]
    if chain_dim == draw_dim:
        raise DataError(f"chain_dim and draw_dim must differ, both are {chain_dim!r}")
    if isinstance(data, xr.DataArray):
        missing = [d for d in dims if d not in data.dims]
        if missing:
            raise DataError(f"DataArray {data.name!r} has dims {tuple(data.dims)}, lacks {missing}")
    elif isinstance(data, xr.Dataset):
        names = [
            name
            for name, var in data.data_vars.items()
            if chain_dim in var.dims and draw_dim in var.dims
        ]
        if not names:
            raise DataError(
                f"no data variable has both dims {chain_dim!r} and {draw_dim!r}; "
                f"variables: {list(data.data_vars)}"
            )
        data = data[names]
    else:
        raise DataTypeError(f"expected an xarray Dataset or DataArray, got {type(data).__name__}")
    return xr.apply_ufunc(
        kernel,
        data,
        input_core_dims=[dims],
        kwargs=kwargs,
        dask="parallelized",
        output_dtypes=[output_dtype],
        keep_attrs=True,
    )


def rhat(
    ds: xr.Dataset | xr.DataArray,
    chain_dim: str = "imputation",
    draw_dim: str = "iteration",
) -> xr.Dataset | xr.DataArray:
    """Rank-normalised split R-hat of every trace in an xarray object.

    Parameters
    ----------
    ds : xarray.Dataset or xarray.DataArray
        Traces. In a Dataset, every data variable with both ``chain_dim`` and ``draw_dim`` is
        diagnosed and the others are dropped.
    chain_dim : str, default "imputation"
        Dimension holding the chains (one per imputation).
    draw_dim : str, default "iteration"
        Dimension holding the draws of each chain.

    Returns
    -------
    xarray.Dataset or xarray.DataArray
        Same type as ``ds``, without ``chain_dim`` and ``draw_dim``; other dims and their
        coordinates are kept. NaN for constant traces and traces with non-finite values.

    Raises
    ------
    DataError
        No variable has both dims, or fewer than 4 draws per chain.

    See Also
    --------
    rhat_array : the numpy kernel, with the algorithm and NaN policy.
    converged : R-hat turned into a verdict per trace.

    Examples
    --------
    >>> import numpy as np
    >>> import xarray as xr
    >>> from mlimpute.diagnostics import rhat
    >>> rng = np.random.default_rng(4)
    >>> ds = xr.Dataset(
    ...     {"mean": (("imputation", "iteration"), rng.normal(size=(5, 200))),
    ...      "sd": (("imputation", "iteration"), np.ones((5, 200)))}
    ... )
    >>> r = rhat(ds)
    >>> bool(r["mean"] < 1.05), bool(np.isnan(r["sd"]))
    (True, True)
    """
    return _apply(rhat_array, ds, chain_dim, draw_dim, float)


def ess_bulk(
    ds: xr.Dataset | xr.DataArray,
    chain_dim: str = "imputation",
    draw_dim: str = "iteration",
) -> xr.Dataset | xr.DataArray:
    """Bulk effective sample size of every trace in an xarray object.

    Parameters
    ----------
    ds : xarray.Dataset or xarray.DataArray
        Traces. In a Dataset, every data variable with both ``chain_dim`` and ``draw_dim`` is
        diagnosed and the others are dropped.
    chain_dim : str, default "imputation"
        Dimension holding the chains.
    draw_dim : str, default "iteration"
        Dimension holding the draws of each chain.

    Returns
    -------
    xarray.Dataset or xarray.DataArray
        Same type as ``ds``, without ``chain_dim`` and ``draw_dim``.

    Raises
    ------
    DataError
        No variable has both dims, or fewer than 4 draws per chain.

    See Also
    --------
    ess_bulk_array : the numpy kernel.

    Examples
    --------
    >>> import numpy as np
    >>> import xarray as xr
    >>> from mlimpute.diagnostics import ess_bulk
    >>> rng = np.random.default_rng(5)
    >>> da = xr.DataArray(rng.normal(size=(4, 500)), dims=("imputation", "iteration"))
    >>> bool(1600 < ess_bulk(da) < 2400)
    True
    """
    return _apply(ess_bulk_array, ds, chain_dim, draw_dim, float)


def ess_tail(
    ds: xr.Dataset | xr.DataArray,
    chain_dim: str = "imputation",
    draw_dim: str = "iteration",
) -> xr.Dataset | xr.DataArray:
    """Tail effective sample size (5 % and 95 % quantiles) of every trace in an xarray object.

    Parameters
    ----------
    ds : xarray.Dataset or xarray.DataArray
        Traces. In a Dataset, every data variable with both ``chain_dim`` and ``draw_dim`` is
        diagnosed and the others are dropped.
    chain_dim : str, default "imputation"
        Dimension holding the chains.
    draw_dim : str, default "iteration"
        Dimension holding the draws of each chain.

    Returns
    -------
    xarray.Dataset or xarray.DataArray
        Same type as ``ds``, without ``chain_dim`` and ``draw_dim``.

    Raises
    ------
    DataError
        No variable has both dims, or fewer than 4 draws per chain.

    See Also
    --------
    ess_tail_array : the numpy kernel.

    Examples
    --------
    >>> import numpy as np
    >>> import xarray as xr
    >>> from mlimpute.diagnostics import ess_tail
    >>> rng = np.random.default_rng(6)
    >>> da = xr.DataArray(rng.normal(size=(4, 500)), dims=("imputation", "iteration"))
    >>> bool(1400 < ess_tail(da) < 2600)
    True
    """
    return _apply(ess_tail_array, ds, chain_dim, draw_dim, float)


def converged(
    ds: xr.Dataset | xr.DataArray,
    threshold: float | None = None,
    chain_dim: str = "imputation",
    draw_dim: str = "iteration",
    *,
    alpha: float = 0.05,
) -> xr.Dataset | xr.DataArray:
    """Whether each trace has mixed: R-hat below its limit, or a constant trace.

    Parameters
    ----------
    ds : xarray.Dataset or xarray.DataArray
        Traces, as for :func:`rhat`.
    threshold : float, optional
        By default (None) each trace is held to its own limit, as
        :meth:`MultiplyImputed.converged() <mlimpute.result.imputed.MultiplyImputed.converged>`
        and the :class:`~mlimpute.errors.ConvergenceWarning` hold the traces of a run: the
        R-hat that converged chains of this length, with that trace's autocorrelation,
        exceed on some trace of ``ds`` in at most a fraction ``alpha`` of cases (the
        ``limit`` column of :func:`rhat_table`). A number (at least 1) holds every trace
        to that one R-hat instead (exclusive), e.g. ``1.01`` for long runs.
    chain_dim : str, default "imputation"
        Dimension holding the chains.
    draw_dim : str, default "iteration"
        Dimension holding the draws of each chain.
    alpha : float, default 0.05
        Probability that converged chains put some trace of ``ds`` above its limit;
        ignored when ``threshold`` is given.

    Returns
    -------
    xarray.Dataset or xarray.DataArray
        Booleans, same type and dims as :func:`rhat` returns. True where R-hat is below
        the limit (at or below its own limit; below ``threshold``) and where the trace is
        constant over all chains and draws (a parameter that is genuinely fixed). False
        where R-hat is above the limit, infinite (chains stuck at different values) or
        NaN because of non-finite values. ``bool(converged(ds).to_array().all())`` gives
        one verdict for a whole Dataset.

    Raises
    ------
    DataError
        No variable has both dims, fewer than 4 draws per chain, or ``threshold`` below
        1.
    DataTypeError
        ``threshold`` is not a number.

    Notes
    -----
    Imputation runs are short, and the R-hat of short, perfectly mixed chains is noisy:
    for ``m = 5`` chains of 20 independent draws its median is 1.01, its 95th percentile
    1.05 and its 99th percentile 1.08 (400 simulated runs), and autocorrelated draws of
    converged chains spread it further. A fixed limit such as 1.1 therefore flags healthy
    traces of a short run that checks dozens of them, or lets a long run's unmixed trace
    pass. The default limit allows for the number of chains and draws, for each trace's
    autocorrelation (estimated within chains by :func:`inflation_array`) and for the
    number of traces checked together (:func:`rhat_threshold`); it is never below 1.01
    and shrinks towards it as the chains get longer. The limits depend on the traces
    checked together: the same trace can pass in a Dataset of many traces and fail on its
    own. For long runs a fixed ``threshold=1.01`` (Vehtari et al. 2021) is the usual
    choice. The default limits read the draws into memory (a dask-backed ``ds`` is
    computed).

    Examples
    --------
    >>> import numpy as np
    >>> import xarray as xr
    >>> from mlimpute.diagnostics import converged
    >>> rng = np.random.default_rng(7)
    >>> good = rng.normal(size=(5, 200))
    >>> ds = xr.Dataset(
    ...     {"mixed": (("imputation", "iteration"), good),
    ...      "stuck": (("imputation", "iteration"), good + np.arange(5)[:, None]),
    ...      "fixed": (("imputation", "iteration"), np.zeros((5, 200)))}
    ... )
    >>> {k: bool(v) for k, v in converged(ds).items()}
    {'mixed': True, 'stuck': False, 'fixed': True}
    >>> {k: bool(v) for k, v in converged(ds, threshold=1.01).items()}
    {'mixed': True, 'stuck': False, 'fixed': True}
    """
    if threshold is not None:
        threshold = check_threshold(threshold)
        return _apply(_converged_kernel, ds, chain_dim, draw_dim, bool, threshold=threshold)
    # the kernel's checks (dims, draws per chain), then one table over every trace
    rhats = _apply(rhat_array, ds, chain_dim, draw_dim, float)
    one = isinstance(rhats, xr.DataArray)
    arrays = [rhats] if one else list(rhats.data_vars.values())
    sources = [ds] if one else [ds[name] for name in rhats.data_vars]
    blocks = []
    for r, src in zip(arrays, sources, strict=True):
        x = src.transpose(*r.dims, chain_dim, draw_dim).to_numpy().astype(float)
        blocks.append(x.reshape(-1, *x.shape[-2:]))
    _, fails = flag_traces(trace_limits(np.concatenate(blocks), alpha))
    out, start = [], 0
    for r in arrays:
        ok = ~fails[start : start + r.size]
        start += r.size
        out.append(r.copy(data=ok.reshape(r.shape)))
    if one:
        return out[0]
    return xr.Dataset(dict(zip(rhats.data_vars, out, strict=True)), attrs=rhats.attrs)
