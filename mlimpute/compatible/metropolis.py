"""Random-walk Metropolis–Hastings for predictors that enter the analysis non-linearly.

Where x enters η non-linearly (``I(x**2)``, ``x:x``, a spline, ``exp(x)``) its full
conditional

    p(x_ij | rest) ∝ N(x_ij; μ_x,ij, σ_x²) · f(y_ij | η_ij(x_ij))

has no closed form. Rows are conditionally independent given the parameters and random
effects (x_ij enters only its own row's η), so one random-walk MH step updates all rows at
once: a proposal ``x' = x + s·d_ij·ε`` per row (ε ~ N(0, 1), ``d_ij`` an optional per-row
base scale such as the SD of x's own model, ``s`` one scale per variable), and an
accept/reject per row with probability ``min(1, π(x')/π(x))``. The proposal is symmetric,
so no Hastings correction enters.

Scale tuning. ``log s`` follows a Robbins–Monro recursion toward the acceptance rate 0.44
(the optimum of a one-dimensional random walk; Roberts & Rosenthal 2001) at every step:
after the t-th adapted step (t = 0, 1, …) ``log s ← log s + γ_t (â_t − 0.44)`` with ``â_t``
the fraction of rows accepted in that step and ``γ_t = c·(t + 1)^(−0.6)``, c = 1, and
``log s`` kept within ``[log 0.01, log 100]``. The gain depends only on the number of steps
taken so far (a counter carried with the scale in the chain's state), never on the total
number of iterations: a run of a + b iterations and a run of a iterations continued by b
are the same chain, bit for bit. The adaptation diminishes (γ_t → 0) and the scale stays
in a compact set, the two conditions under which an adaptive chain keeps its target
(diminishing adaptation and containment; Roberts & Rosenthal 2007, 2009). The acceptance
rate of every step is returned for the traces.

A product of two incomplete variables ``x·v`` is linear in x given v (and in v given x),
so it has the closed form of :mod:`mlimpute.compatible.conditionals`; MH is needed when the
same variable enters non-linearly.

References
----------
Roberts, G. O. & Rosenthal, J. S. (2001). Optimal scaling for various Metropolis–Hastings
algorithms. *Statistical Science* 16(4), 351–367.
Roberts, G. O. & Rosenthal, J. S. (2007). Coupling and ergodicity of adaptive Markov chain
Monte Carlo algorithms. *Journal of Applied Probability* 44(2), 458–475.
Roberts, G. O. & Rosenthal, J. S. (2009). Examples of adaptive MCMC. *Journal of
Computational and Graphical Statistics* 18(2), 349–367.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import log_ndtr

from mlimpute.errors import DataError

__all__ = [
    "TARGET_ACCEPT",
    "ADAPT_GAIN",
    "LOG_SCALE_BOUNDS",
    "ProposalScale",
    "rw_step",
    "normal_log_target",
    "probit_log_target",
]

#: Acceptance rate the adaptation tunes toward (optimal one-dimensional random walk).
TARGET_ACCEPT = 0.44

#: Robbins–Monro gain ``c`` of the adaptation, ``γ_t = c·(t + 1)^(−0.6)``.
ADAPT_GAIN = 1.0

#: Bounds of ``log s`` (containment: the scale stays in a compact set).
LOG_SCALE_BOUNDS = (float(np.log(0.01)), float(np.log(100.0)))


@dataclass(frozen=True)
class ProposalScale:
    """The proposal scale of one variable's random walk and its adaptation counter.

    Attributes
    ----------
    log_scale : float
        ``log s``; the proposal SD of row ij is ``s·d_ij``.
    n_adapted : int
        Number of adaptation steps taken (sets the Robbins–Monro gain).
    """

    log_scale: float = float(np.log(2.4))
    n_adapted: int = 0

    @property
    def scale(self) -> float:
        return float(np.exp(self.log_scale))

    def adapted(self, rate: float, target: float = TARGET_ACCEPT) -> ProposalScale:
        """The scale after one Robbins–Monro update given this step's acceptance rate.

        The gain ``c·(t + 1)^(−0.6)`` depends only on the steps taken so far
        (``n_adapted``), and ``log s`` is kept within :data:`LOG_SCALE_BOUNDS`.

        Examples
        --------
        >>> s = ProposalScale().adapted(1.0)
        >>> s.n_adapted, round(s.log_scale - float(np.log(2.4)), 2)
        (1, 0.56)
        """
        gain = ADAPT_GAIN * (self.n_adapted + 1.0) ** -0.6
        lo, hi = LOG_SCALE_BOUNDS
        log_scale = min(max(self.log_scale + gain * (rate - target), lo), hi)
        return ProposalScale(log_scale, self.n_adapted + 1)


def rw_step(
    rng: np.random.Generator,
    x: np.ndarray,
    log_target: Callable[[np.ndarray], np.ndarray],
    scale: ProposalScale,
    base_sd: float | np.ndarray = 1.0,
    adapt: bool = False,
    current: np.ndarray | None = None,
) -> tuple[np.ndarray, ProposalScale, float, np.ndarray]:
    """One vectorised random-walk MH step for every row of one variable.

    Parameters
    ----------
    rng : numpy.random.Generator
    x : ndarray, shape (n,)
        Current values (the missing entries of one variable).
    log_target : callable
        ``log_target(x)`` → (n,): the log of the unnormalised full conditional of each row
        at candidate values x (rows independent).
    scale : ProposalScale
        The variable's current proposal scale.
    base_sd : float or ndarray, shape (n,)
        Per-row base scale ``d_ij`` of the proposal (e.g. √σ_x² of x's own model).
    adapt : bool
        Update the scale toward acceptance 0.44 after the step (the model-based sampler
        adapts at every iteration, with a diminishing gain).
    current : ndarray, optional
        ``log_target(x)`` if already known (saves one evaluation).

    Returns
    -------
    x : ndarray, shape (n,)
        New values (accepted proposals, else the old values).
    scale : ProposalScale
        Updated scale if ``adapt``, else the same.
    rate : float
        Fraction of rows accepted in this step.
    log_pi : ndarray, shape (n,)
        ``log_target`` at the new values.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x, sc = np.zeros(500), ProposalScale()
    >>> for _ in range(200):
    ...     x, sc, rate, _ = rw_step(rng, x, lambda v: -0.5 * v**2, sc, adapt=True)
    >>> 0.3 < rate < 0.6
    True
    """
    x = np.asarray(x, dtype=float)
    cur = log_target(x) if current is None else current
    prop = x + scale.scale * np.asarray(base_sd, dtype=float) * rng.standard_normal(x.shape)
    new = log_target(prop)
    log_u = np.log(rng.random(x.shape))
    accept = log_u < new - cur  # NaN (a proposal outside the support) → rejected
    x_new = np.where(accept, prop, x)
    log_pi = np.where(accept, new, cur)
    rate = float(accept.mean()) if accept.size else 0.0
    if adapt and accept.size:
        scale = scale.adapted(rate)
    return x_new, scale, rate, log_pi


def normal_log_target(
    mu_x: np.ndarray,
    sigma2_x: float | np.ndarray,
    y: np.ndarray,
    eta: Callable[[np.ndarray], np.ndarray],
    sigma2_y: float | np.ndarray,
    y_observed: np.ndarray | None = None,
) -> Callable[[np.ndarray], np.ndarray]:
    """``log N(x; μ_x, σ_x²) + log N(y; η(x), σ_y²)`` per row, up to constants.

    Parameters
    ----------
    mu_x, sigma2_x
        x's own model: mean per row, residual variance.
    y : ndarray, shape (n,)
        Analysis outcome (any value where missing).
    eta : callable
        ``eta(x)`` → (n,): the analysis linear predictor of the rows at candidate x.
    sigma2_y : float or ndarray
        Residual variance of the analysis model.
    y_observed : ndarray of bool, optional
        Where False the outcome term is dropped.

    Returns
    -------
    callable
        ``x ↦ log π(x)`` (n,).

    Examples
    --------
    >>> f = normal_log_target(np.zeros(2), 1.0, np.ones(2), lambda x: x**2, 1.0)
    >>> f(np.zeros(2)).tolist()
    [-0.5, -0.5]
    """
    if np.any(np.asarray(sigma2_x) <= 0) or np.any(np.asarray(sigma2_y) <= 0):
        raise DataError("a residual variance of the target is not positive")

    def log_target(x: np.ndarray) -> np.ndarray:
        own = -0.5 * (x - mu_x) ** 2 / sigma2_x
        lik = -0.5 * (y - eta(x)) ** 2 / sigma2_y
        if y_observed is not None:
            lik = np.where(y_observed, lik, 0.0)
        return own + lik

    return log_target


def probit_log_target(
    mu_x: np.ndarray,
    sigma2_x: float | np.ndarray,
    y: np.ndarray,
    eta: Callable[[np.ndarray], np.ndarray],
    y_observed: np.ndarray | None = None,
) -> Callable[[np.ndarray], np.ndarray]:
    """``log N(x; μ_x, σ_x²) + log Φ((2y − 1)·η(x))`` per row: a probit outcome, no latent.

    Examples
    --------
    >>> f = probit_log_target(np.zeros(1), 1.0, np.array([1]), lambda x: x)
    >>> round(float(f(np.zeros(1))[0]), 6)  # log Φ(0)
    -0.693147
    """
    sign = np.where(np.asarray(y) == 1, 1.0, -1.0)

    def log_target(x: np.ndarray) -> np.ndarray:
        lik = log_ndtr(sign * eta(x))
        if y_observed is not None:
            lik = np.where(y_observed, lik, 0.0)
        return -0.5 * (x - mu_x) ** 2 / sigma2_x + lik

    return log_target
