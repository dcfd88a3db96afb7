"""Data generators for the compatible-imputation checks.

Design (a), a random slope on an incomplete predictor (J clusters of size n)::

    z_j ~ N(0, 1),  x_ij = w_j + e_ij  (var(w) 0.25, var(e) 1: ICC_x 0.2)
    y_ij = γ00 − 0.5 z_j + (0.5 + u1j) x_ij + u0j + e_ij,
    var(u0) 1, var(u1) 0.2, cov(u0, u1) 0.2, residual variance 1;

25 % of x missing at random on y and z (the log-odds of missingness rise by 1 per SD of
y + z), 15 % of y missing completely at random.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit

__all__ = ["DesignA", "design_a", "PSI_A", "GAMMA_A"]

#: True (γ00, γ01, γ10) of design (a).
GAMMA_A = np.array([0.0, -0.5, 0.5])
#: True covariance of (u0, u1) in design (a).
PSI_A = np.array([[1.0, 0.2], [0.2, 0.2]])


@dataclass(frozen=True)
class DesignA:
    """One data set of design (a): complete values and the incomplete copies (NaN)."""

    y: np.ndarray
    x: np.ndarray
    z: np.ndarray
    cluster: np.ndarray
    y_obs: np.ndarray  # y with NaN where missing
    x_obs: np.ndarray  # x with NaN where missing


def design_a(
    rng: np.random.Generator,
    n_clusters: int = 100,
    size: int = 10,
    x_missing: float = 0.25,
    y_missing: float = 0.15,
) -> DesignA:
    """Draw one data set of design (a).

    Examples
    --------
    >>> d = design_a(np.random.default_rng(0), 20, 5)
    >>> d.y.shape, bool(np.isnan(d.x_obs).any())
    ((100,), True)
    """
    J, n = n_clusters, n_clusters * size
    cluster = np.repeat(np.arange(J), size)
    z = np.repeat(rng.standard_normal(J), size)
    x = np.repeat(np.sqrt(0.25) * rng.standard_normal(J), size) + rng.standard_normal(n)
    u = rng.standard_normal((J, 2)) @ np.linalg.cholesky(PSI_A).T
    u = np.take(u, cluster, axis=0)
    y = GAMMA_A[0] + GAMMA_A[1] * z + (GAMMA_A[2] + u[:, 1]) * x + u[:, 0] + rng.standard_normal(n)
    score = (y - y.mean()) / y.std() + (z - z.mean()) / z.std()
    score = score / score.std()
    if x_missing > 0:
        shift = brentq(lambda c: expit(c + score).mean() - x_missing, -30, 30)
        x_obs = np.where(rng.random(n) < expit(shift + score), np.nan, x)
    else:
        x_obs = x.copy()
    y_obs = np.where(rng.random(n) < y_missing, np.nan, y)
    return DesignA(y, x, z, cluster, y_obs, x_obs)
