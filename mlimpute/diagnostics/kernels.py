"""numpy kernels of the convergence diagnostics: split R-hat and bulk/tail ESS.

Arrays are shaped ``(..., chain, draw)`` (or any chain and draw axes); every other axis
is a batch axis. The algorithms (Vehtari et al. 2021) are described in
:mod:`mlimpute.diagnostics`, which is the public face of this module.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.typing import ArrayLike
from scipy import fft, special, stats

from mlimpute.errors import DataError, DataTypeError

MIN_DRAWS = 4
"""Fewest draws per chain the diagnostics accept (each split half needs two)."""

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
    """Effective sample size of already split chains (..., M, N) -> (...).

    The estimator of Vehtari et al. (2021) as their reference implementation computes it
    (Stan's ``ess_rfun``, arviz's ``_ess``), vectorised over the batch axes:

    - ``W = mean_m acov_m(0) N / (N - 1)`` and ``var_plus = W (N - 1) / N + var(chain
      means)``; ``rho_t = 1 - (W - mean_m acov_m(t)) / var_plus`` with the biased
      (divided by ``N``) autocovariances ``acov_m(t)``; ``rho_0 = 1``.
    - Pair sums ``P_k = rho_{2k} + rho_{2k+1}`` for ``k < K = max(1, ceil((N - 2) / 2))``
      (the lags up to ``N - 2``). Let ``j`` be the first ``k`` with ``P_k <= 0``, else
      ``K - 1``. The pairs before ``j`` are made non-increasing (Geyer's initial
      monotone sequence) and summed; of pair ``j`` only ``rho_{2j}`` is added, once,
      when it is positive or ``P_j >= 0``:
      ``tau = -1 + 2 sum_{k < j} P'_k + rho_{2j}``.
    - ``ESS = M N / max(tau, 1 / log10(M N))``; ``M N`` when the draws are constant (to
      ``1e-15``), NaN when ``var_plus`` is 0.
    """
    n_chains, n_draws = x.shape[-2:]
    total = n_chains * n_draws
    acov = _autocovariance(x).mean(axis=-2)  # (..., N): averaged over chains
    within = acov[..., 0] * (n_draws / (n_draws - 1.0))
    var_plus = within * ((n_draws - 1.0) / n_draws) + x.mean(axis=-1).var(axis=-1, ddof=1)
    n_pairs = max(1, -(-(n_draws - 2) // 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1.0 - (within[..., None] - acov[..., : 2 * n_pairs]) / var_plus[..., None]
    rho[..., 0] = 1.0
    pairs = rho.reshape(*rho.shape[:-1], n_pairs, 2).sum(axis=-1)
    nonpositive = ~(pairs > 0)
    last = np.where(nonpositive.any(axis=-1), nonpositive.argmax(axis=-1), n_pairs - 1)
    before = np.arange(n_pairs) < last[..., None]
    monotone = np.minimum.accumulate(np.where(before, pairs, np.inf), axis=-1)
    rho_last = np.take_along_axis(rho, (2 * last)[..., None], axis=-1)[..., 0]
    pair_last = np.take_along_axis(pairs, last[..., None], axis=-1)[..., 0]
    tail = np.where(pair_last >= 0, rho_last, np.maximum(rho_last, 0.0))
    tau = -1.0 + 2.0 * np.where(before, monotone, 0.0).sum(axis=-1) + tail
    ess = total / np.maximum(tau, 1.0 / np.log10(total))
    ess = np.where(np.isnan(rho).any(axis=-1), np.nan, ess)
    with np.errstate(invalid="ignore"):
        constant = np.ptp(_pooled(x), axis=-1) < np.finfo(float).resolution
    return np.where(constant, float(total), ess)


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
    AR(1) chain with coefficient ``phi`` it is close to ``n (1 - phi) / (1 + phi)``. The
    result equals that of the reference implementation of Vehtari et al. (2021) (Stan,
    posterior, arviz's ``ess(method="bulk")``) to rounding, except that a constant trace
    gives NaN.

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
        constant traces and traces with non-finite draws. An indicator that is constant (a
        trace with heavy ties) has ESS ``M N``, the number of split draws, as in arviz.

    Notes
    -----
    The indicators ``x <= q05`` and ``x <= q95`` use the quantiles of all draws (linear
    interpolation, R's type 7), the middle draw of odd-length chains included; the
    indicators are then split like the draws, as in the reference implementation.

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
    draws = _clean(draws, bad)
    # the quantiles of all draws (the middle draw of odd chains too), as the reference does
    quantiles = np.quantile(_pooled(draws), [0.05, 0.95], axis=-1)
    lower = _ess(_split_chains((draws <= quantiles[0][..., None, None]).astype(np.float64)))
    upper = _ess(_split_chains((draws <= quantiles[1][..., None, None]).astype(np.float64)))
    return np.where(bad, np.nan, np.minimum(lower, upper))


# --------------------------------------------------------------------------------------------
# numpy layer: autocorrelation allowance of the convergence check
# --------------------------------------------------------------------------------------------

PHI_MAX = 0.6
"""Largest lag-1 autocorrelation the convergence check allows for (integrated time 4)."""

_PHI_GRID = np.linspace(-0.5, PHI_MAX, 1101)


def _ar1_chain_mean_factor(phi: np.ndarray, n: int) -> np.ndarray:
    """``n Var(chain mean) / sigma^2`` of a stationary AR(1) chain of ``n`` draws."""
    lags = np.arange(1, n)
    phi = np.asarray(phi, dtype=np.float64)
    return 1.0 + 2.0 * np.sum((1.0 - lags / n) * phi[..., None] ** lags, axis=-1)


def ar1_inflation(phi: ArrayLike, n: int) -> np.ndarray:
    """``E[B] / E[W]`` of split R-hat for stationary AR(1) chains of ``n`` draws (1 if iid).

    ``B = n Var(chain means)`` has expectation ``sigma^2 c_n`` and the within-chain
    variance ``W`` has ``sigma^2 (n - c_n) / (n - 1)``, ``c_n = 1 + 2 sum_t (1 - t/n) phi^t``.
    """
    c = _ar1_chain_mean_factor(np.asarray(phi, dtype=np.float64), n)
    return c * (n - 1) / (n - c)


def _ar1_difference_ratio(phi: np.ndarray, n: int) -> np.ndarray:
    """``E[mean squared successive difference] / (2 E[W])`` for AR(1) chains of ``n`` draws."""
    return (1.0 - phi) * (n - 1) / (n - _ar1_chain_mean_factor(phi, n))


def _phi_from_ratio(ratio: np.ndarray, n: int) -> np.ndarray:
    """Invert :func:`_ar1_difference_ratio` (decreasing in phi) on a grid, clipped to it."""
    return np.interp(-ratio, _negative_ratio_table(int(n)), _PHI_GRID)


@functools.lru_cache(maxsize=64)
def _negative_ratio_table(n: int) -> np.ndarray:
    """``-_ar1_difference_ratio(_PHI_GRID, n)``, computed once per chain length (half a
    millisecond each time; the check asks for it eight times per run)."""
    table = -_ar1_difference_ratio(_PHI_GRID, n)
    table.setflags(write=False)
    return table


def _log_inflation(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log of the AR(1) inflation of split chains (..., M, N) and its jackknife variance.

    The lag-1 autocorrelation is estimated within chains only (each centred at its own
    mean), from the ratio of the mean squared successive difference to twice the
    within-chain variance (von Neumann), matched to its AR(1) expectation, so differences
    between chains -- what R-hat detects -- do not raise it. The variance is the
    leave-one-chain-out jackknife variance.
    """
    n_chains, n_draws = z.shape[-2:]
    diff = (np.diff(z, axis=-1) ** 2).sum(axis=-1)
    ss = z.var(axis=-1, ddof=1) * (n_draws - 1)
    d_sum, s_sum = diff.sum(axis=-1), ss.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = d_sum / (2.0 * s_sum)
        ratio_j = (d_sum[..., None] - diff) / (2.0 * (s_sum[..., None] - ss))
    log_k = np.log(ar1_inflation(_phi_from_ratio(ratio, n_draws), n_draws))
    if n_chains < 2:
        return log_k, np.full(log_k.shape, np.inf)
    log_kj = np.log(ar1_inflation(_phi_from_ratio(ratio_j, n_draws), n_draws))
    var = (
        (n_chains - 1)
        / n_chains
        * ((log_kj - log_kj.mean(axis=-1, keepdims=True)) ** 2).sum(axis=-1)
    )
    return log_k, var


def inflation_array(
    x: ArrayLike, *, chain_axis: int = -2, draw_axis: int = -1
) -> tuple[np.ndarray, np.ndarray]:
    """Autocorrelation inflation of R-hat's between/within ratio, and its uncertainty.

    For the rank-normalised split chains (bulk) and their folded counterparts, the lag-1
    autocorrelation ``phi`` within chains is estimated and turned into the factor by which
    autocorrelated but converged chains inflate ``B / W`` (:func:`ar1_inflation`); the
    larger of the bulk and folded factors is returned with the jackknife (over chains)
    variance of its log. ``phi`` is limited to [-0.5, :data:`PHI_MAX`]: slower mixing is
    not allowed for, so such traces are flagged.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Inflation (>= 0; 1 for independent draws) and the variance of its log, per batch
        element; NaN for constant or non-finite traces.

    Examples
    --------
    >>> import numpy as np
    >>> from mlimpute.diagnostics import inflation_array
    >>> kappa, var = inflation_array(np.random.default_rng(1).normal(size=(20, 100)))
    >>> bool(0.8 < kappa < 1.25), bool(var < 0.05)
    (True, True)
    """
    draws = _prepare(x, chain_axis, draw_axis)
    bad = _bad_mask(draws)
    split = _split_chains(_clean(draws, bad))
    lb, vb = _log_inflation(_rank_normalize(split))
    lf, vf = _log_inflation(_rank_normalize(_fold(split)))
    with np.errstate(invalid="ignore"):
        use_bulk = ~(lf > lb)
    log_k = np.where(use_bulk, lb, lf)
    var = np.where(use_bulk, vb, vf)
    return np.where(bad, np.nan, np.exp(log_k)), np.where(bad, np.nan, var)


def _converged_kernel(x: np.ndarray, threshold: float) -> np.ndarray:
    """R-hat below threshold, or a constant finite trace; over the last two axes."""
    draws = _prepare(x, -2, -1)
    finite = np.isfinite(draws).all(axis=(-2, -1))
    with np.errstate(invalid="ignore"):
        constant = finite & (np.ptp(_pooled(draws), axis=-1) == 0)
    return constant | (rhat_array(draws) < threshold)
