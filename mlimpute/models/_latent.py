"""Latent-normal machinery shared by the probit, ordered-probit and multinomial models.

A categorical response is the discretisation of a latent normal ``y* = x'β + z'b + ε`` with
``ε ~ N(0, 1)`` (Albert & Chib 1993). Given the latent values, the parameters are those of a
normal model with σ² fixed at 1, so each latent model reuses the normal models' Gibbs steps
(``gibbs(rng, state, data, y, sigma2=1.0)``): the multilevel one when the formula has a
random part, the single-level one otherwise.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr, ndtri

from mlimpute.models.base import LinearCore, ModelData
from mlimpute.models.ml_multi import MultiTermNorm
from mlimpute.models.ml_norm import MultilevelNorm
from mlimpute.models.norm import Norm

__all__ = [
    "truncnorm",
    "truncnorm_sign",
    "linear_core",
    "core_param_names",
    "core_param_vector",
    "slope_precision",
]

#: Prior SD of a latent-scale coefficient per root-mean-square unit of its predictor.
SLOPE_PRIOR_SD = 10.0

_TINY = 1e-300


def truncnorm(
    rng: np.random.Generator, mu: np.ndarray, lower: np.ndarray, upper: np.ndarray
) -> np.ndarray:
    """Draw ``N(mu, 1)`` truncated to ``(lower, upper)``, elementwise, by inversion.

    The interval is mapped to the lower tail before inverting (``ndtri`` is accurate there),
    so truncation points many SDs from the mean stay exact; a numerically empty interval
    returns its nearest end.

    Examples
    --------
    >>> x = truncnorm(np.random.default_rng(0), np.zeros(5), np.full(5, 8.0), np.full(5, np.inf))
    >>> bool(np.all(x > 8))
    True
    """
    a = np.asarray(lower, dtype=float) - mu
    b = np.asarray(upper, dtype=float) - mu
    flip = a > 0  # interval in the upper tail: draw −t from (−b, −a)
    lo = np.where(flip, -b, a)
    hi = np.where(flip, -a, b)
    p_lo, p_hi = ndtr(lo), ndtr(hi)
    u = rng.random(np.shape(mu))
    t = ndtri(np.clip(p_lo + u * (p_hi - p_lo), _TINY, 1 - 1e-16))
    t = np.clip(t, lo, hi)
    bad = ~np.isfinite(t)
    if bad.any():
        t = np.where(bad, np.where(np.isfinite(hi), hi, lo), t)
    return mu + np.where(flip, -t, t)


def truncnorm_sign(rng: np.random.Generator, mu: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """:func:`truncnorm` for the probit's intervals, ``(0, ∞)`` where ``positive`` and
    ``(−∞, 0)`` elsewhere: the same arithmetic and random numbers, the same result, at less
    than half the cost (one finite end per value, so one ``ndtr``: ``ndtr(±∞)`` is 1 or 0).

    Parameters
    ----------
    rng : numpy.random.Generator
    mu : ndarray
        Means (unit variance).
    positive : ndarray of bool
        Where the draw must be positive (``y = 1`` of a probit).

    Returns
    -------
    ndarray, the shape of ``mu``

    Examples
    --------
    >>> x = truncnorm_sign(np.random.default_rng(0), np.zeros(4), np.array([True, False] * 2))
    >>> bool(np.all((x > 0) == np.array([True, False] * 2)))
    True
    """
    a = 0.0 - mu  # truncnorm's lower - mu where positive, its upper - mu elsewhere
    flip = positive & (a > 0)
    end = np.where(flip, -a, a)  # the finite end of the interval truncnorm inverts on
    low = positive & ~flip  # (end, ∞); otherwise (−∞, end)
    p = ndtr(end)
    u = rng.random(np.shape(mu))
    t = ndtri(np.clip(np.where(low, p + u * (1.0 - p), u * p), _TINY, 1 - 1e-16))
    t = np.where(low, np.maximum(t, end), np.minimum(t, end))
    bad = ~np.isfinite(t)
    if bad.any():
        t = np.where(bad, end, t)
    return mu + np.where(flip, -t, t)


def linear_core(data: ModelData) -> LinearCore:
    """The normal model whose Gibbs step serves a latent model on ``data``: the multilevel
    one when the formula has a random part, the several-terms one
    (:class:`~mlimpute.models.ml_multi.MultiTermNorm`) when it has several grouping
    factors (a :class:`~mlimpute.models.base.LinearCore`)."""
    if data.Z is None:
        return Norm()
    return MultiTermNorm() if getattr(data, "extra_terms", ()) else MultilevelNorm()


def slope_precision(data: ModelData) -> np.ndarray:
    """Prior precision of β on the latent scale: ``N(0, (10 / rms(x_k))²)``, intercept flat.

    Separated data (a category fully determined by a predictor, common once categorical
    predictors are imputed) have no finite maximum; under a flat prior the probit
    coefficients then drift off to infinity. This prior bounds them at effects of about
    ±10 latent SDs per RMS unit of the predictor — far outside anything estimable, so it
    leaves estimable coefficients alone — and scales with the predictors' units
    (cf. the weakly informative priors of Gelman et al. 2008).
    """
    X = data.X.obs
    ms = (X * X).mean(axis=0) if X.shape[0] else np.ones(X.shape[1])
    prec = ms / SLOPE_PRIOR_SD**2
    prec[[i for i, n in enumerate(data.X.names) if n == "Intercept"]] = 0.0
    return prec


def core_param_names(core: LinearCore, data: ModelData) -> list[str]:
    """Parameter names without the residual variance (fixed at 1 on the latent scale)."""
    return core.param_names(data)[:-1]


def core_param_vector(core: LinearCore, state: object, data: ModelData) -> np.ndarray:
    """Parameter values without the residual variance (see :func:`core_param_names`)."""
    return core.param_vector(state, data)[:-1]
