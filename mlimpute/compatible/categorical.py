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

A nominal (unordered) predictor has the multinomial probit of ``2l.nominal``
(:mod:`mlimpute.models.nominal`): utilities ``w_k = η_k + ε_k``, ``ε_k ~ N(0, 1)``
independent for the K − 1 non-reference categories, the reference's utility 0, x the
category of the largest utility. Its category probabilities are

    P(x = r) = Π_l Φ(−η_l),
    P(x = k) = ∫_{−η_k}^{∞} φ(s) Π_{l ≠ k} Φ(s + η_k − η_l) ds      (k ≠ r),

(condition on ``w_k = η_k + s``: it must exceed 0 and every other utility), one smooth
integral per row and category, computed by Gauss–Legendre quadrature on
``[max(−η_k, −S), S]`` (S = 9: φ beyond it is below 1e-18) with 48 nodes, vectorised over
rows (:func:`nominal_log_prob`). The analysis model's factor at each category is its
linear predictor with x's dummy coding for that category.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_ndtr

__all__ = [
    "log_interval",
    "category_log_prob",
    "nominal_log_prob",
    "draw_nominal_utilities",
    "draw_categories",
]

#: Gauss–Legendre nodes and weights on [-1, 1] of the nominal category probabilities
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(48)
#: the integrals run up to S (the standard normal density beyond 9 is below 1e-18)
_S = 9.0


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


def nominal_log_prob(eta: np.ndarray) -> np.ndarray:
    """``log P(x = k)``, shape (n, K), under the multinomial probit with independent
    unit-variance utilities: η has shape (n, K − 1), the linear predictors of the
    non-reference categories (the reference, column 0, has utility 0).

    Examples
    --------
    >>> p = np.exp(nominal_log_prob(np.array([[0.0, 0.0], [2.0, -1.0]])))
    >>> p.sum(axis=1).round(8).tolist()
    [1.0, 1.0]
    >>> p[0].round(4).tolist()  # reference: Φ(0)² = 1/4; the others (1 − 1/4)/2 each
    [0.25, 0.375, 0.375]
    """
    eta = np.atleast_2d(np.asarray(eta, dtype=float))
    n, K1 = eta.shape
    out = np.empty((n, K1 + 1))
    out[:, 0] = log_ndtr(-eta).sum(axis=1)
    for k in range(K1):  # the few categories, never rows
        lo = np.clip(-eta[:, k], -_S, _S)  # (n,)
        half = 0.5 * (_S - lo)
        s = lo[:, None] + half[:, None] * (_GL_NODES[None, :] + 1.0)  # (n, nodes)
        logf = -0.5 * s * s - 0.5 * np.log(2 * np.pi)
        for m in range(K1):
            if m != k:
                logf = logf + log_ndtr(s + (eta[:, k] - eta[:, m])[:, None])
        top = logf.max(axis=1, keepdims=True)
        total = (np.exp(logf - top) * _GL_WEIGHTS[None, :]).sum(axis=1) * half
        with np.errstate(divide="ignore"):
            out[:, k + 1] = np.log(total) + top[:, 0]
    return out


def draw_nominal_utilities(
    rng: np.random.Generator, eta: np.ndarray, rank: np.ndarray, grid: int = 512
) -> np.ndarray:
    """Utilities ``W ~ N(η, I)`` (n, K − 1) drawn exactly given the category of each row
    (rank 0 the reference: every utility below 0; rank k: ``W_k`` above 0 and above the
    others).

    A model-based imputation redraws a nominal predictor's missing categories with its
    utilities integrated out; before its model's next Gibbs step the utilities of those
    rows must come from their exact conditional given the new categories (a sweep from
    the old utilities would start outside their support). For rank k the largest utility
    ``W_k`` has density ``∝ φ(w − η_k) Π_{l≠k} Φ(w − η_l)`` on ``w > 0``, drawn by
    inverting its distribution function on a grid of ``grid`` points of
    ``[0, max(η) + 9]``; given it the others are normal truncated below it, and with rank 0
    every utility is normal truncated below 0.

    Examples
    --------
    >>> W = draw_nominal_utilities(np.random.default_rng(0), np.zeros((3, 2)),
    ...                            np.array([0, 1, 2]))
    >>> bool((W[0] < 0).all() and W[1, 0] > max(0, W[1, 1]) and W[2, 1] > max(0, W[2, 0]))
    True
    """
    from mlimpute.models._latent import truncnorm

    eta = np.atleast_2d(np.asarray(eta, dtype=float))
    n, K1 = eta.shape
    rank = np.asarray(rank, dtype=np.intp)
    rows = np.arange(n)
    win = rank > 0
    k = np.maximum(rank - 1, 0)
    top = np.zeros(n)  # the winner's utility (0 for the reference)
    if win.any():
        e = eta[win]
        kk = k[win]
        hi = np.maximum(e.max(axis=1), 0.0) + 9.0
        t = np.linspace(0.0, 1.0, grid)
        w = hi[:, None] * t[None, :]  # (m, grid)
        ek = e[np.arange(e.shape[0]), kk]
        logf = -0.5 * (w - ek[:, None]) ** 2
        for m in range(K1):  # the few categories
            other = (kk != m)[:, None]
            logf = logf + np.where(other, log_ndtr(w - e[:, m][:, None]), 0.0)
        f = np.exp(logf - logf.max(axis=1, keepdims=True))
        cdf = np.concatenate(
            [np.zeros((f.shape[0], 1)), np.cumsum(0.5 * (f[:, 1:] + f[:, :-1]), axis=1)], axis=1
        )
        cdf /= cdf[:, -1:]
        u = rng.random(f.shape[0])
        idx = np.clip((cdf < u[:, None]).sum(axis=1), 1, grid - 1)
        c0 = cdf[np.arange(f.shape[0]), idx - 1]
        c1 = cdf[np.arange(f.shape[0]), idx]
        frac = np.where(c1 > c0, (u - c0) / np.where(c1 > c0, c1 - c0, 1.0), 0.0)
        top[win] = hi * (t[idx - 1] + frac * (t[idx] - t[idx - 1]))
    W = truncnorm(rng, eta, np.full(eta.shape, -np.inf), np.broadcast_to(top[:, None], eta.shape))
    W[rows[win], k[win]] = top[win]
    return W


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
