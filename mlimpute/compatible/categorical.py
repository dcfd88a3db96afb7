"""Exact draws of a categorical predictor over its categories.

A binary or ordinal level-1 predictor x has a latent probit model of its own (``2l.bin``,
``2l.ordinal``: ``x* = η_x + b_j + ε``, ``ε ~ N(0, 1)``, x the interval of x* between
cut-points). Its full conditional in row i is discrete,

    p(x_i = k | rest) ∝ p_x(k | η_x,i) · f(y_i | η_i(k)) · Π_m p_m(v_m,i | η_m,i(k)),

with ``p_x(k) = Φ(γ_{k+1} − η_x) − Φ(γ_k − η_x)`` (``γ = (−∞, 0, ∞)`` for a binary x), f
the analysis model (normal, or probit ``Φ((2y − 1)η)``) where y is observed, and p_m the
models of earlier predictors in which x is a predictor. Every factor is evaluated at each
of the K categories (K evaluations of each linear predictor, vectorised over rows), the
K log-probabilities are normalised per row and one category is drawn per row by inverting
the cumulative probabilities with one uniform: exact, no Metropolis step.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_ndtr

__all__ = ["log_interval", "category_log_prob", "draw_categories"]


def log_interval(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``log[Φ(hi) − Φ(lo)]`` elementwise, stable in both tails.

    Examples
    --------
    >>> round(float(log_interval(np.array([-np.inf]), np.array([0.0]))[0]), 6)
    -0.693147
    """
    lo, hi = np.broadcast_arrays(np.asarray(lo, dtype=float), np.asarray(hi, dtype=float))
    flip = lo > 0
    a = np.where(flip, -hi, lo)
    b = np.where(flip, -lo, hi)
    la, lb = log_ndtr(a), log_ndtr(b)
    return lb + np.log1p(-np.exp(np.minimum(la - lb, -1e-300)))


def category_log_prob(eta: np.ndarray, cuts: np.ndarray, k: int) -> np.ndarray:
    """``log P(x = k)`` under an ordered probit with linear predictor η and cut-points
    ``cuts`` (K − 1 of them; ``[0.0]`` for a binary probit), k the 0-based rank.

    Examples
    --------
    >>> category_log_prob(np.zeros(1), np.array([0.0]), 1).round(6).tolist()
    [-0.693147]
    """
    bounds = np.r_[-np.inf, np.asarray(cuts, dtype=float), np.inf]
    return log_interval(bounds[k] - eta, bounds[k + 1] - eta)


def draw_categories(rng: np.random.Generator, log_p: np.ndarray) -> np.ndarray:
    """One category (column index) per row from unnormalised log-probabilities (n, K).

    Examples
    --------
    >>> lp = np.log(np.array([[1.0, 0.0], [0.0, 1.0]]) + 1e-300)
    >>> draw_categories(np.random.default_rng(0), lp).tolist()
    [0, 1]
    """
    log_p = np.asarray(log_p, dtype=float)
    p = np.exp(log_p - log_p.max(axis=1, keepdims=True))
    cum = np.cumsum(p, axis=1)
    u = rng.random(log_p.shape[0]) * cum[:, -1]
    return np.minimum((cum < u[:, None]).sum(axis=1), log_p.shape[1] - 1)
