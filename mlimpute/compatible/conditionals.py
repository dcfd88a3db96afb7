"""Closed-form full conditional of a missing level-1 predictor that enters linearly.

In the factored (sequential) specification the joint density of one row is a product of
normal models: the predictor's own model and every model in which it is a predictor (the
analysis model, and the models of predictors earlier in the order). Write them as

* x's own model: ``x_ij ~ N(μ_x,ij, σ_x²)``, ``μ_x,ij`` = its linear predictor from the
  other predictors plus its random intercept;
* each model ``m`` that x predicts, linearly given everything else:
  ``v_m,ij ~ N(a_m,ij + c_m,ij · x_ij, σ_m²)``.

For the analysis model ``y_ij ~ N(η_ij, σ_y²)`` with ``η_ij = a_ij + c_ij x_ij``, the
coefficient ``c_ij = β_x + Σ_k β_x:k · v_k,ij + b_1j`` collects the fixed slope, the
interaction coefficients times the partner values and the random slope; ``a_ij`` is the
rest of η. Both follow from any η that is affine in x: ``a = η(0)``, ``c = η(1) − η(0)``
(:func:`affine_coefficients`).

Derivation. As a function of x the log of the product is, up to constants,

    −(x − μ_x)²/(2σ_x²) − Σ_m (v_m − a_m − c_m x)²/(2σ_m²)
      = −½ x² [1/σ_x² + Σ_m c_m²/σ_m²] + x [μ_x/σ_x² + Σ_m c_m (v_m − a_m)/σ_m²] + const,

a normal log-density with

    precision   λ  = 1/σ_x² + Σ_m c_m²/σ_m²
    mean        μ* = (μ_x/σ_x² + Σ_m c_m (v_m − a_m)/σ_m²) / λ,   variance 1/λ.

Everything is elementwise over rows, so a whole column's missing values are drawn at once.
Where the response ``v_m`` of a model is itself missing in a row, that model's term is
dropped in that row (it integrates to 1 over the missing response): x is then drawn from
the remaining terms and the missing response afterwards from its own model given the new
x, which is a blocked draw of (x, v_m) from their joint conditional.

A binary (probit) outcome ``y = 1{y* > 0}``, ``y* ~ N(η, 1)``, is handled through its
latent normal y* (Albert & Chib 1993): given y* the outcome term is a normal term with
σ² = 1, so the same formula applies; y* given x is a truncated normal. Alternating the two
leaves ``p(x | y, rest) ∝ N(x; μ_x, σ_x²) Φ((2y − 1)(a + c x))`` invariant
(:func:`draw_probit_step`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from mlimpute.errors import DataError

# truncated normal draws of the probit's latent response (shared with the latent models;
# the models package is being reorganised: import it from wherever it lands)
from mlimpute.models._latent import truncnorm_sign

__all__ = [
    "LinearTerm",
    "affine_coefficients",
    "conditional_moments",
    "draw_conditional",
    "normal_conditional",
    "draw_normal_conditional",
    "draw_probit_latent",
    "draw_probit_step",
]


class LinearTerm(NamedTuple):
    """A normal model in which x enters linearly: ``response ~ N(offset + coef·x, sigma2)``.

    Attributes
    ----------
    response : ndarray, shape (n,)
        The model's response (analysis outcome, or a predictor modelled on x).
    offset : ndarray, shape (n,)
        ``a``: the linear predictor with x set to 0.
    coef : ndarray, shape (n,), or float
        ``c``: the change of the linear predictor per unit of x (fixed slope + interaction
        coefficients × partners + random slope).
    sigma2 : float or ndarray, shape (n,)
        Residual variance (1 for a probit's latent response).
    active : ndarray of bool, shape (n,), optional
        False where the response is missing: the term is dropped in that row.
    """

    response: np.ndarray
    offset: np.ndarray
    coef: np.ndarray | float
    sigma2: float | np.ndarray
    active: np.ndarray | None = None

    def precision_and_shift(self) -> tuple[np.ndarray, np.ndarray]:
        """``c²/σ²`` and ``c (v − a)/σ²`` per row, zero where inactive."""
        c = np.asarray(self.coef, dtype=float)
        s2 = np.asarray(self.sigma2, dtype=float)
        if np.any(s2 <= 0):
            raise DataError("a residual variance of a linear term is not positive")
        resid = np.asarray(self.response, dtype=float) - self.offset
        prec = c * c / s2
        shift = c * resid / s2
        if self.active is not None:
            prec = np.where(self.active, prec, 0.0)
            shift = np.where(self.active, shift, 0.0)
        return np.broadcast_to(prec, resid.shape), shift


def affine_coefficients(
    eta: Callable[[np.ndarray], np.ndarray], n: int
) -> tuple[np.ndarray, np.ndarray]:
    """``a = η(0)`` and ``c = η(1) − η(0)`` of a linear predictor affine in x.

    Parameters
    ----------
    eta : callable
        ``eta(x)`` returns the linear predictor (n,) of the rows for candidate x (n,),
        everything else held at its current value.
    n : int
        Number of rows.

    Returns
    -------
    a, c : ndarray, shape (n,)

    Examples
    --------
    >>> z = np.array([0.0, 1.0, 2.0])
    >>> a, c = affine_coefficients(lambda x: 1 + 0.5 * x + 0.25 * x * z, 3)
    >>> a.tolist(), c.tolist()
    ([1.0, 1.0, 1.0], [0.5, 0.75, 1.0])
    """
    a = np.asarray(eta(np.zeros(n)), dtype=float)
    return a, np.asarray(eta(np.ones(n)), dtype=float) - a


def conditional_moments(
    mu_x: np.ndarray, sigma2_x: float | np.ndarray, terms: Sequence[LinearTerm] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of x's full conditional given its own model and linear terms.

    ``λ = 1/σ_x² + Σ_m c_m²/σ_m²`` and ``μ* = (μ_x/σ_x² + Σ_m c_m (v_m − a_m)/σ_m²)/λ``
    (module docstring), elementwise over rows.

    Parameters
    ----------
    mu_x : ndarray, shape (n,)
        Mean of x's own model (fixed part + random intercept).
    sigma2_x : float or ndarray
        Residual variance of x's own model.
    terms : sequence of LinearTerm
        Every model in which x enters linearly (the analysis model first).

    Returns
    -------
    mean, var : ndarray, shape (n,)

    Examples
    --------
    >>> t = LinearTerm(np.array([2.0]), np.array([0.0]), 1.0, 1.0)
    >>> conditional_moments(np.array([0.0]), 1.0, [t])
    (array([1.]), array([0.5]))
    """
    mu_x = np.asarray(mu_x, dtype=float)
    s2x = np.asarray(sigma2_x, dtype=float)
    if np.any(s2x <= 0):
        raise DataError("the residual variance of the predictor's own model is not positive")
    prec = np.broadcast_to(1.0 / s2x, mu_x.shape).astype(float)
    num = mu_x / s2x
    for term in terms:  # a few models, never rows
        p, h = term.precision_and_shift()
        prec = prec + p
        num = num + h
    return num / prec, 1.0 / prec


def draw_conditional(
    rng: np.random.Generator,
    mu_x: np.ndarray,
    sigma2_x: float | np.ndarray,
    terms: Sequence[LinearTerm] = (),
) -> np.ndarray:
    """One draw per row from the closed-form full conditional (:func:`conditional_moments`).

    Examples
    --------
    >>> t = LinearTerm(np.zeros(4), np.zeros(4), 2.0, 0.5)
    >>> draw_conditional(np.random.default_rng(1), np.zeros(4), 1.0, [t]).shape
    (4,)
    """
    mean, var = conditional_moments(mu_x, sigma2_x, terms)
    return mean + np.sqrt(var) * rng.standard_normal(mean.shape)


def normal_conditional(mu_x, sigma2_x, y, a, c, sigma2_y, y_observed=None):
    """Full conditional of x with one normal analysis model ``y ~ N(a + c·x, σ_y²)``.

    Parameters
    ----------
    mu_x, sigma2_x : ndarray, float
        x's own model: mean per row and residual variance.
    y, a, c : ndarray, shape (n,)
        Outcome (any value where missing), η at x = 0, and ∂η/∂x.
    sigma2_y : float or ndarray
        Residual variance of the analysis model.
    y_observed : ndarray of bool, optional
        Rows whose y is observed; elsewhere only x's own model applies.

    Returns
    -------
    mean, var : ndarray, shape (n,)
        ``var = 1/(1/σ_x² + c²/σ_y²)``, ``mean = var·(μ_x/σ_x² + c (y − a)/σ_y²)``.

    Examples
    --------
    >>> mean, var = normal_conditional(np.zeros(2), 1.0, np.array([2.0, 2.0]), np.zeros(2),
    ...                                np.ones(2), 1.0, np.array([True, False]))
    >>> mean.tolist(), var.tolist()
    ([1.0, 0.0], [0.5, 1.0])
    """
    return conditional_moments(mu_x, sigma2_x, [LinearTerm(y, a, c, sigma2_y, y_observed)])


def draw_normal_conditional(
    rng: np.random.Generator, mu_x, sigma2_x, y, a, c, sigma2_y, y_observed=None
) -> np.ndarray:
    """Draw x from :func:`normal_conditional` (one value per row).

    Examples
    --------
    >>> x = draw_normal_conditional(np.random.default_rng(0), np.zeros(3), 1.0, np.ones(3),
    ...                             np.zeros(3), np.ones(3), 0.5)
    >>> x.shape
    (3,)
    """
    mean, var = normal_conditional(mu_x, sigma2_x, y, a, c, sigma2_y, y_observed)
    return mean + np.sqrt(var) * rng.standard_normal(mean.shape)


def draw_probit_latent(
    rng: np.random.Generator, eta: np.ndarray, y: np.ndarray, y_observed=None
) -> np.ndarray:
    """Latent ``y* ~ N(η, 1)`` truncated to ``y* > 0`` where y = 1 and ``y* < 0`` where 0.

    Where y is missing y* is an untruncated ``N(η, 1)`` (a draw of y is then ``y* > 0``).

    Examples
    --------
    >>> s = draw_probit_latent(np.random.default_rng(0), np.zeros(4), np.array([1, 0, 1, 0]))
    >>> (s > 0).tolist()
    [True, False, True, False]
    """
    eta = np.asarray(eta, dtype=float)
    positive = np.asarray(y) == 1
    ystar = truncnorm_sign(rng, eta, positive)
    if y_observed is not None:
        free = eta + rng.standard_normal(eta.shape)
        ystar = np.where(y_observed, ystar, free)
    return ystar


def draw_probit_step(
    rng: np.random.Generator, x: np.ndarray, mu_x, sigma2_x, y, a, c, y_observed=None
) -> tuple[np.ndarray, np.ndarray]:
    """One data-augmentation step for x under a probit analysis model.

    Draws ``y* | x, y`` (truncated normal at ``η = a + c x``), then ``x | y*`` from the
    closed form with σ_y² = 1. Repeated, x's draws have the stationary law
    ``p(x | y) ∝ N(x; μ_x, σ_x²) Φ((2y − 1)(a + c x))``.

    Parameters
    ----------
    rng : numpy.random.Generator
    x : ndarray, shape (n,)
        Current values of the predictor.
    mu_x, sigma2_x, a, c, y_observed
        As in :func:`normal_conditional`.
    y : ndarray of {0, 1}, shape (n,)

    Returns
    -------
    x, ystar : ndarray, shape (n,)

    Examples
    --------
    >>> x, s = draw_probit_step(np.random.default_rng(0), np.zeros(3), np.zeros(3), 1.0,
    ...                         np.array([1, 0, 1]), np.zeros(3), np.ones(3))
    >>> x.shape, s.shape
    ((3,), (3,))
    """
    ystar = draw_probit_latent(rng, np.asarray(a) + np.asarray(c) * x, y, y_observed)
    return draw_normal_conditional(rng, mu_x, sigma2_x, ystar, a, c, 1.0, y_observed), ystar
