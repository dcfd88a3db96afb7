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
   a :class:`~mlimpute.imputed.MultiplyImputed`; :func:`rhat_threshold` is the R-hat value
   healthy chains of a given length exceed with a given probability, the default threshold
   of the warning.

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
- The effective sample size is ``M N / tau`` with the combined-chain autocorrelations
  ``rho_t = 1 - (W - mean_m s_m^2 rho_{t,m}) / var_plus`` (per-chain autocorrelations by FFT),
  summed with Geyer's (1992) initial monotone sequence estimator:
  ``tau = -1 + 2 sum_k P_k``, ``P_k = rho_{2k} + rho_{2k+1}`` truncated before the first
  non-positive pair sum and made non-increasing. As in the paper's reference implementation,
  ``tau`` is bounded below by ``1 / log10(M N)``, so ESS never exceeds ``M N log10(M N)``.

Special cases (the NaN policy)
------------------------------
- **Constant trace** (every draw of every chain equal, e.g. a parameter that is genuinely
  fixed): R-hat, bulk ESS and tail ESS are NaN -- the statistics are 0/0.
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
.. [3] Blom, G. (1958). *Statistical Estimates and Transformed Beta-Variables*. Wiley.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import xarray as xr
from numpy.typing import ArrayLike
from scipy import fft, special, stats

from mlimpute.errors import DataError, DataTypeError

if TYPE_CHECKING:
    import pandas as pd

    from mlimpute.imputed import MultiplyImputed

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
    "rhat_table",
    "convergence_warning",
    "MIN_WARNING_ITERATIONS",
]

MIN_DRAWS = 4
"""Fewest draws per chain the diagnostics accept (each split half needs two)."""

_XrObj = TypeVar("_XrObj", xr.Dataset, xr.DataArray)


# --------------------------------------------------------------------------------------------
# numpy layer: helpers on arrays shaped (..., chain, draw)
# --------------------------------------------------------------------------------------------


def _prepare(x: ArrayLike, chain_axis: int, draw_axis: int) -> np.ndarray:
    """Move the chain and draw axes to the end, as float64, and check the sizes."""
    arr = np.asarray(x)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise DataTypeError(f"diagnostics need numeric draws, got dtype {arr.dtype}")
    if arr.ndim < 2:
        raise DataError(
            f"diagnostics need a chain axis and a draw axis, got an array of shape {arr.shape}; "
            "a single chain x can be passed as x[np.newaxis]"
        )
    ndim = arr.ndim
    in_range = all(-ndim <= ax < ndim for ax in (chain_axis, draw_axis))
    if not in_range or chain_axis % ndim == draw_axis % ndim:
        raise DataError(
            f"chain_axis={chain_axis} and draw_axis={draw_axis} must be two different axes "
            f"of an array with {ndim} dimensions"
        )
    arr = np.moveaxis(arr, (chain_axis, draw_axis), (-2, -1)).astype(np.float64, copy=False)
    if arr.shape[-2] < 1:
        raise DataError("diagnostics need at least one chain, got 0")
    if arr.shape[-1] < MIN_DRAWS:
        raise DataError(
            f"diagnostics need at least {MIN_DRAWS} draws per chain (two per split half), "
            f"got {arr.shape[-1]}"
        )
    return arr


def _split_chains(x: np.ndarray) -> np.ndarray:
    """(..., M, n) -> (..., 2M, n // 2): first and last halves, the middle draw of odd n dropped."""
    half = x.shape[-1] // 2
    return np.concatenate([x[..., :half], x[..., -half:]], axis=-2)


def _pooled(x: np.ndarray) -> np.ndarray:
    """(..., M, N) -> (..., M * N)."""
    return x.reshape(*x.shape[:-2], x.shape[-2] * x.shape[-1])


def _rank_normalize(x: np.ndarray) -> np.ndarray:
    """Blom normal scores of the average ranks of the pooled draws, shape kept."""
    pooled = _pooled(x)
    size = pooled.shape[-1]
    ranks = stats.rankdata(pooled, method="average", axis=-1)
    return special.ndtri((ranks - 0.375) / (size + 0.25)).reshape(x.shape)


def _fold(x: np.ndarray) -> np.ndarray:
    """Absolute deviation from the median of the pooled draws."""
    median = np.median(_pooled(x), axis=-1)
    return np.abs(x - median[..., None, None])


def _bad_mask(x: np.ndarray) -> np.ndarray:
    """True for batch elements that are constant or contain non-finite draws."""
    nonfinite = ~np.isfinite(x).all(axis=(-2, -1))
    with np.errstate(invalid="ignore"):
        constant = np.ptp(_pooled(x), axis=-1) == 0
    return nonfinite | constant


def _clean(x: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """Replace bad batch elements by zeros so kernels run without warnings."""
    if not bad.any():
        return x
    return np.where(bad[..., None, None], 0.0, x)


def _split_rhat(x: np.ndarray) -> np.ndarray:
    """Potential scale reduction of already split chains (..., M, N) -> (...)."""
    n_draws = x.shape[-1]
    within = x.var(axis=-1, ddof=1).mean(axis=-1)
    between_over_n = x.mean(axis=-1).var(axis=-1, ddof=1)
    var_plus = (n_draws - 1) / n_draws * within + between_over_n
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(var_plus / within)


def _autocovariance(x: np.ndarray) -> np.ndarray:
    """Biased (divided by N) autocovariance of each chain along the last axis, by FFT."""
    n_draws = x.shape[-1]
    centred = x - x.mean(axis=-1, keepdims=True)
    n_fft = fft.next_fast_len(2 * n_draws, real=True)
    spectrum = fft.rfft(centred, n=n_fft, axis=-1)
    acov = fft.irfft(spectrum * np.conj(spectrum), n=n_fft, axis=-1)[..., :n_draws]
    return acov / n_draws


def _ess(x: np.ndarray) -> np.ndarray:
    """Effective sample size of already split chains (..., M, N) -> (...)."""
    n_chains, n_draws = x.shape[-2:]
    acov = _autocovariance(x)
    # s_m^2 rho_{t,m} = acov_{t,m} N / (N - 1), so at lag 0 it is the chain variance s_m^2.
    scaled = acov * (n_draws / (n_draws - 1))
    within = scaled[..., 0].mean(axis=-1)
    var_plus = (n_draws - 1) / n_draws * within + x.mean(axis=-1).var(axis=-1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1.0 - (within[..., None] - scaled.mean(axis=-2)) / var_plus[..., None]
    n_pairs = n_draws // 2
    pair_sums = rho[..., : 2 * n_pairs].reshape(*rho.shape[:-1], n_pairs, 2).sum(axis=-1)
    # Geyer: keep the initial run of positive pair sums, then force it to be non-increasing.
    keep = np.logical_and.accumulate(pair_sums > 0, axis=-1)
    monotone = np.minimum.accumulate(np.where(keep, pair_sums, np.inf), axis=-1)
    tau = -1.0 + 2.0 * np.where(keep, monotone, 0.0).sum(axis=-1)
    # The first pair left out may still start with a positive autocorrelation: count that
    # one term once (it lowers the variance of tau for antithetic chains).
    n_kept = keep.sum(axis=-1)
    first_out = np.take_along_axis(rho, np.minimum(2 * n_kept, n_draws - 1)[..., None], axis=-1)[
        ..., 0
    ]
    tau = tau + np.where(n_kept < n_pairs, np.maximum(first_out, 0.0), 0.0)
    total = n_chains * n_draws
    tau = np.maximum(tau, 1.0 / np.log10(total))
    return total / tau


# --------------------------------------------------------------------------------------------
# numpy layer: public kernels
# --------------------------------------------------------------------------------------------


def rhat_array(x: ArrayLike, *, chain_axis: int = -2, draw_axis: int = -1) -> np.ndarray:
    """Rank-normalised split R-hat: the larger of bulk and folded R-hat.

    Parameters
    ----------
    x : array_like
        Numeric draws with a chain axis and a draw axis; all other axes are batch axes.
    chain_axis, draw_axis : int, default -2, -1
        Positions of the chain and the draw axis in ``x``.

    Returns
    -------
    numpy.ndarray
        R-hat per batch element: ``x``'s shape without the chain and draw axes (a 0-d array
        when ``x`` is 2-D). NaN for a constant trace or one with non-finite draws, ``inf`` when
        every split chain is constant but they differ.

    Raises
    ------
    DataError
        Fewer than 4 draws per chain, or the axes do not exist.
    DataTypeError
        Non-numeric draws.

    See Also
    --------
    rhat : the same over every variable of an xarray object.

    Notes
    -----
    Values close to 1 mean the chains are indistinguishable; Vehtari et al. (2021) recommend
    requiring R-hat < 1.01 for MCMC inference with many draws.

    Examples
    --------
    >>> import numpy as np
    >>> from mlimpute.diagnostics import rhat_array
    >>> rng = np.random.default_rng(1)
    >>> x = rng.normal(size=(4, 500))
    >>> bool(rhat_array(x) < 1.01)
    True
    >>> bool(rhat_array(x + np.array([[0.0], [0.0], [0.0], [2.0]])) > 1.1)
    True
    >>> rhat_array(rng.normal(size=(3, 4, 100)), chain_axis=1, draw_axis=2).shape
    (3,)
    """
    draws = _prepare(x, chain_axis, draw_axis)
    bad = _bad_mask(draws)
    split = _split_chains(_clean(draws, bad))
    bulk = _split_rhat(_rank_normalize(split))
    folded = _split_rhat(_rank_normalize(_fold(split)))
    # fmax: the folded R-hat is 0/0 when |x - median| is constant (e.g. a balanced 0/1 trace)
    # while the bulk R-hat is still informative.
    with np.errstate(invalid="ignore"):
        out = np.fmax(bulk, folded)
    return np.where(bad, np.nan, out)


def ess_bulk_array(x: ArrayLike, *, chain_axis: int = -2, draw_axis: int = -1) -> np.ndarray:
    """Bulk effective sample size: the ESS of the rank-normalised split chains.

    Parameters
    ----------
    x : array_like
        Numeric draws with a chain axis and a draw axis; all other axes are batch axes.
    chain_axis, draw_axis : int, default -2, -1
        Positions of the chain and the draw axis in ``x``.

    Returns
    -------
    numpy.ndarray
        Bulk ESS per batch element (``x``'s shape without the chain and draw axes). NaN for
        constant traces and traces with non-finite draws.

    Raises
    ------
    DataError
        Fewer than 4 draws per chain, or the axes do not exist.
    DataTypeError
        Non-numeric draws.

    See Also
    --------
    ess_bulk : the same over every variable of an xarray object.

    Notes
    -----
    For independent draws the bulk ESS is close to the number of draws; for a stationary
    AR(1) chain with coefficient ``phi`` it is close to ``n (1 - phi) / (1 + phi)``.

    Examples
    --------
    >>> import numpy as np
    >>> from mlimpute.diagnostics import ess_bulk_array
    >>> rng = np.random.default_rng(2)
    >>> ess = ess_bulk_array(rng.normal(size=(4, 1000)))
    >>> bool(3600 < ess < 4400)
    True
    """
    draws = _prepare(x, chain_axis, draw_axis)
    bad = _bad_mask(draws)
    split = _split_chains(_clean(draws, bad))
    return np.where(bad, np.nan, _ess(_rank_normalize(split)))


def ess_tail_array(x: ArrayLike, *, chain_axis: int = -2, draw_axis: int = -1) -> np.ndarray:
    """Tail effective sample size: the smaller ESS of the 5 % and 95 % quantile indicators.

    Parameters
    ----------
    x : array_like
        Numeric draws with a chain axis and a draw axis; all other axes are batch axes.
    chain_axis, draw_axis : int, default -2, -1
        Positions of the chain and the draw axis in ``x``.

    Returns
    -------
    numpy.ndarray
        Tail ESS per batch element (``x``'s shape without the chain and draw axes). NaN for
        constant traces and traces with non-finite draws. When one of the two indicators is
        constant (a trace with heavy ties), the other one's ESS is returned.

    Raises
    ------
    DataError
        Fewer than 4 draws per chain, or the axes do not exist.
    DataTypeError
        Non-numeric draws.

    See Also
    --------
    ess_tail : the same over every variable of an xarray object.

    Examples
    --------
    >>> import numpy as np
    >>> from mlimpute.diagnostics import ess_tail_array
    >>> rng = np.random.default_rng(3)
    >>> ess = ess_tail_array(rng.normal(size=(4, 1000)))
    >>> bool(3200 < ess < 4800)
    True
    """
    draws = _prepare(x, chain_axis, draw_axis)
    bad = _bad_mask(draws)
    split = _split_chains(_clean(draws, bad))
    quantiles = np.quantile(_pooled(split), [0.05, 0.95], axis=-1)
    lower = _ess((split <= quantiles[0][..., None, None]).astype(np.float64))
    upper = _ess((split <= quantiles[1][..., None, None]).astype(np.float64))
    with np.errstate(invalid="ignore"):
        out = np.fmin(lower, upper)
    return np.where(bad, np.nan, out)


def _converged_kernel(x: np.ndarray, threshold: float) -> np.ndarray:
    """R-hat below threshold, or a constant finite trace; over the last two axes."""
    draws = _prepare(x, -2, -1)
    finite = np.isfinite(draws).all(axis=(-2, -1))
    with np.errstate(invalid="ignore"):
        constant = finite & (np.ptp(_pooled(draws), axis=-1) == 0)
    return constant | (rhat_array(draws) < threshold)


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
    threshold: float = 1.1,
    chain_dim: str = "imputation",
    draw_dim: str = "iteration",
) -> xr.Dataset | xr.DataArray:
    """Whether each trace has mixed: R-hat below ``threshold`` or a constant trace.

    Parameters
    ----------
    ds : xarray.Dataset or xarray.DataArray
        Traces, as for :func:`rhat`.
    threshold : float, default 1.1
        Largest acceptable R-hat (exclusive).
    chain_dim : str, default "imputation"
        Dimension holding the chains.
    draw_dim : str, default "iteration"
        Dimension holding the draws of each chain.

    Returns
    -------
    xarray.Dataset or xarray.DataArray
        Booleans, same type and dims as :func:`rhat` returns. True where R-hat <
        ``threshold`` and where the trace is constant over all chains and draws (a parameter
        that is genuinely fixed). False where R-hat is at or above the threshold, infinite
        (chains stuck at different values) or NaN because of non-finite values.
        ``bool(converged(ds).to_array().all())`` gives one verdict for a whole Dataset.

    Raises
    ------
    DataError
        No variable has both dims, or fewer than 4 draws per chain.

    Notes
    -----
    The default of 1.1 is deliberately laxer than the 1.01 Vehtari et al. (2021) recommend
    for MCMC inference with thousands of draws. Imputation runs are short, and the R-hat of
    short, perfectly mixed chains is noisy: for ``m = 5`` chains of 20 independent draws its
    median is 1.01, its 95th percentile 1.05 and its 99th percentile 1.08 (400 simulated
    runs), so 1.01 or 1.05 would flag many healthy traces of a run that checks dozens of
    them. With 5 chains of 20 draws of an AR(1) process with coefficient 0.5 the median
    R-hat is already about 1.1, which is a lack of mixing worth a warning. For long runs,
    pass ``threshold=1.01``.

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
    """
    return _apply(_converged_kernel, ds, chain_dim, draw_dim, bool, threshold=threshold)


# --------------------------------------------------------------------------------------------
# result layer: a MultiplyImputed's traces
# --------------------------------------------------------------------------------------------

MIN_WARNING_ITERATIONS = 8
"""Fewest iterations for which :func:`convergence_warning` checks anything (4 kept draws)."""


def rhat_threshold(
    m: int, n_draws: int, *, n_traces: int = 1, alpha: float = 0.05
) -> float:
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

    Returns
    -------
    float

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
    f_crit = stats.f.isf(alpha / (2 * int(n_traces)), n_chains - 1, n_chains * (half - 1))
    return float(np.sqrt((half - 1) / half + f_crit / half))


def rhat_table(imp: MultiplyImputed, *, burn: int | None = None) -> pd.DataFrame:
    """R-hat of every trace of an imputation run, one row per variable and trace.

    Parameters
    ----------
    imp : MultiplyImputed
        The result of :func:`mlimpute.impute`.
    burn : int, optional
        Iterations to discard first; default ``iterations // 2`` (the second half is kept).

    Returns
    -------
    pandas.DataFrame
        Columns ``variable`` (the imputed variable), ``trace`` (``"mean"`` and ``"sd"`` of
        its imputed values, then its model's parameters by name), ``rhat`` (see
        :func:`rhat_array`: NaN for a constant trace or one with non-finite draws) and
        ``finite`` (False when some draw is NaN or infinite). In visit order; empty when
        nothing was imputed.

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
    """
    import pandas as pd

    from mlimpute.imputed import param_dim, param_var

    columns = ["variable", "trace", "rhat", "finite"]
    traces = imp.traces
    if "iteration" not in traces.dims or not imp.variables:
        return pd.DataFrame({c: pd.Series(dtype=d) for c, d in
                             zip(columns, (object, object, float, bool), strict=True)})
    n_iter = traces.sizes["iteration"]
    burn = n_iter // 2 if burn is None else int(burn)
    if not 0 <= burn <= n_iter - MIN_DRAWS:
        raise DataError(
            f"burn={burn} leaves {n_iter - burn} of {n_iter} iterations; R-hat needs at "
            f"least {MIN_DRAWS}"
        )
    # every trace of every variable as one (traces, imputation, iteration) array: one call
    # of the kernel (the xarray layer would apply it variable by variable)
    kept = traces.isel(iteration=slice(burn, None))
    chain_draw = ("imputation", "iteration")
    stats_ = {stat: kept[stat].transpose(*chain_draw, "variable").to_numpy()
              for stat in ("mean", "sd") if stat in kept}
    position = {v: k for k, v in enumerate(kept["variable"].to_numpy().tolist())} if stats_ else {}
    labels: list[str] = []
    owners: list[str] = []
    blocks: list[np.ndarray] = []
    for name in imp.variables:
        for stat, arr in stats_.items():
            labels.append(stat)
            blocks.append(arr[None, :, :, position[name]])
        pvar = param_var(name)
        if pvar in kept and "iteration" in kept[pvar].dims:
            da = kept[pvar].transpose(*chain_draw, param_dim(name))
            labels += [str(p) for p in da[param_dim(name)].to_numpy()]
            blocks.append(np.moveaxis(da.to_numpy(), -1, 0))
        owners += [name] * (len(labels) - len(owners))
    draws = np.concatenate(blocks) if blocks else np.empty((0, 1, n_iter - burn))
    finite = np.isfinite(draws).all(axis=(-2, -1))
    values = rhat_array(draws) if len(draws) else np.empty(0)
    return pd.DataFrame({"variable": owners, "trace": labels, "rhat": values,
                         "finite": finite})[columns]


def convergence_warning(
    imp: MultiplyImputed,
    threshold: float | None = None,
    *,
    alpha: float = 0.05,
    params: bool = True,
) -> str | None:
    """A message naming the traces whose chains have not mixed, or None.

    The engine calls it after every run and, when it returns a message, issues it as a
    :class:`~mlimpute.errors.ConvergenceWarning`.

    Parameters
    ----------
    imp : MultiplyImputed
        The result of :func:`mlimpute.impute`.
    threshold : float, optional
        Flag traces with R-hat above this value. Default: ``max(1.01,
        rhat_threshold(m, n_kept, n_traces=K, alpha=alpha))``, the value that the largest
        R-hat of the ``K`` traces checked exceeds with probability ``alpha`` when the ``m``
        chains are healthy (independent draws from one distribution), ``n_kept`` the
        iterations in the second half.
    alpha : float, default 0.05
        Level of the default threshold; ignored when ``threshold`` is given.
    params : bool, default True
        Check the model parameters too; with False only the chain mean and SD of the
        imputed values are checked (and counted in ``K``).

    Returns
    -------
    str or None
        None when every trace is fine, when nothing was imputed or when the run has fewer
        than 8 iterations (too few to judge; the first half is discarded and R-hat needs
        4 draws per chain). Otherwise one sentence listing, per variable, the traces
        (``mean``/``sd`` of the imputed values, model parameters by name) with their R-hat,
        and the traces with non-finite draws, then what to do.

    Notes
    -----
    R-hat is computed on the second half of the iterations (``burn = iterations // 2``)
    of every trace: chain mean and SD of the imputed values and every parameter.

    *Why not a fixed 1.05 or 1.1.* Imputation chains are short, and the R-hat of short,
    perfectly mixed chains is noisy. With the default ``m = 5`` and ``iterations = 20``
    R-hat sees 5 chains of 10 draws; for independent draws its median is 1.025, its 95th
    percentile 1.14 and its 99th 1.20 (4,000 simulated runs). A single trace exceeds 1.05
    with probability 0.32 and 1.1 with 0.11, and a run of two variables checks about 18
    traces (two chain statistics and seven parameters each), so a fixed 1.1 would warn on
    about 9 healthy runs in 10 and a fixed 1.05 on all of them: a warning everyone learns
    to ignore. The threshold therefore follows the run's size: the critical value of R-hat
    for ``m`` healthy chains of this length and ``K`` traces at family-wise level 5 %
    (:func:`rhat_threshold`; 1.25 for the default run, 1.11 with 20 kept iterations,
    1.08 for ``m = 25`` chains of 10). Above it the chains of a trace differ more than
    healthy chains plausibly could, whatever the size of the run. It never goes below
    1.01, the limit Vehtari et al. (2021) give for long runs. For the per-trace verdicts of
    :meth:`MultiplyImputed.converged` pass the same value:
    ``imp.converged(threshold=rhat_threshold(m, n_kept, n_traces=K), burn=iterations // 2)``.

    Very short runs have no power: R-hat of rank-normalised draws is bounded, and with 2 or
    3 chains of 4 or 5 kept draws even chains far apart stay below the critical value (with
    3 chains, 12 iterations are enough to flag chains stuck at different values).

    Slowly mixing chains are flagged as well as chains still drifting from their start:
    autocorrelated healthy chains (AR(1) with coefficient 0.5, 5 chains of 10 draws)
    exceed 1.25 on a single trace about 30 % of the time. Both mean the same remedy: more
    iterations.

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
    R-hat above 1.000 (threshold given) in the second half of the iterations (21-40) for: grade (...
    """
    traces = imp.traces
    if not imp.variables or "iteration" not in traces.dims:
        return None
    n_iter = traces.sizes["iteration"]
    if n_iter < MIN_WARNING_ITERATIONS:
        return None
    burn = n_iter // 2
    table = rhat_table(imp, burn=burn)
    if not params:
        table = table[table["trace"].isin(["mean", "sd"]).to_numpy()]
    m = traces.sizes["imputation"]
    if threshold is None:
        threshold = max(1.01, rhat_threshold(m, n_iter - burn, n_traces=len(table),
                                             alpha=alpha))
        how = (f"the value {m} healthy chains of {n_iter - burn} draws exceed with "
               f"probability {alpha:g} over {len(table)} traces")
    else:
        threshold = float(threshold)
        how = "threshold given"
    with np.errstate(invalid="ignore"):
        high = table["rhat"].to_numpy() > threshold
    bad = table[high | ~table["finite"].to_numpy()]
    if bad.empty:
        return None
    groups = []
    for name, rows in bad.groupby("variable", sort=False):
        items = [f"{t} {r:.2f}" if ok else f"{t} non-finite draws"
                 for t, r, ok in zip(rows["trace"], rows["rhat"], rows["finite"], strict=True)]
        groups.append(f"{name} ({', '.join(items)})")
    return (
        f"R-hat above {threshold:.3f} ({how}) in the second half of the iterations "
        f"({burn + 1}-{n_iter}) for: {'; '.join(groups)}. The chains have not mixed: run "
        f"more iterations (e.g. iterations={2 * n_iter}) and look at "
        "imp.plot.trace(params=True)."
    )
