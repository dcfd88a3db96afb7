"""The four designs of the compatible-imputation study, each a data generator with its truth.

Every design has J clusters (column ``g``), an outcome ``y`` and the analysis model the
imputation is made for; :class:`Design` also carries the best chained formulas a careful
user would write by hand for the same data, and the analysis a user of chained
imputation would run.

(a) **Random slope on an incomplete predictor** (100 clusters of 10)::

        z_j ~ N(0, 1),  x = w_j + e (ICC_x 0.2),
        y = −0.5 z_j + (0.5 + u1j) x + u0j + e,
        var(u0) 1, var(u1) 0.2, cov 0.2, residual 1;

    25 % of x missing at random on y and z, 15 % of y missing completely at random.
(b) **Interaction of a level-1 and a level-2 predictor** (100 clusters of 10)::

        y = 0.5 x + 0.5 z_j + 0.3 x z_j + u0j + u1j x + e,
        var(u0) 0.5, var(u1) 0.1, cov 0, residual 1, x = w_j + e (ICC_x 0.2);

    20 % of x missing at random on y; z missing for 20 % of the clusters, at random on
    the cluster mean of y.
(c) **A quadratic effect** (100 clusters of 10)::

        y = 0.5 x + 0.25 x² + u0j + e,  var(u0) 0.5, residual 1, x = w_j + e (ICC_x 0.2);

    30 % of x missing at random on y.
(d) **A contextual effect with small clusters** (200 clusters of 5)::

        x = μ_j + e (var(μ) 0.2, var(e) 0.8: ICC_x 0.2),
        y = 0.5 x + 0.3 μ_j + u0j + e,  var(u0) 0.2, residual 1;

    20 % of x missing at random on y. The contextual effect 0.3 is the coefficient of the
    latent cluster mean ``lmean(x)``; with five pupils per cluster the observed mean
    ``cmean(x)`` is an unreliable measure of μ_j and its coefficient is biased (Lüdtke et
    al. 2008).

Missingness at random is logistic in a standardised score, with the intercept solved so
that the expected share equals the target (as in :func:`mlimpute.ampute`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit

from mlimpute.compatible.designs import GAMMA_A, PSI_A, design_a

__all__ = ["DESIGNS", "Design"]


@dataclass(frozen=True)
class Design:
    """One design of the study.

    Attributes
    ----------
    name : str
        ``"a"`` … ``"d"``.
    title : str
        One line for tables.
    generate : callable
        ``generate(rng) -> (complete, incomplete)``: two DataFrames with columns ``y``,
        the predictors and ``g``.
    model : str
        The analysis model, which drives model-based imputation.
    analysis : str
        The analysis fitted to chained imputations, complete cases and complete data
        (the model with ``lmean`` written as ``cmean``).
    chained : dict
        The best hand-written chained formulas, one per incomplete variable.
    truth : dict
        True value of each parameter, keyed by the name in the pooled tables
        (``summary()`` terms, ``variance_components()`` rows).
    aliases : dict
        Term names that mean the same parameter under another analysis (``cmean(x)`` for
        ``lmean(x)``).
    """

    name: str
    title: str
    generate: Callable[[np.random.Generator], tuple[pd.DataFrame, pd.DataFrame]]
    model: str
    analysis: str
    chained: dict[str, str]
    truth: dict[str, float]
    aliases: dict[str, str] = field(default_factory=dict)


def _mar(rng: np.random.Generator, score: np.ndarray, share: float) -> np.ndarray:
    """Missing (True) with logistic probability in the standardised ``score``, expected
    share ``share``."""
    s = (score - score.mean()) / score.std()
    shift = brentq(lambda c: expit(c + s).mean() - share, -30, 30)
    return rng.random(s.size) < expit(shift + s)


def _frame(**cols: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(cols)


def _generate_a(rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    d = design_a(rng)
    complete = _frame(y=d.y, x=d.x, z=d.z, g=d.cluster)
    return complete, _frame(y=d.y_obs, x=d.x_obs, z=d.z, g=d.cluster)


def _level1_x(rng: np.random.Generator, J: int, n: int, between: float, within: float):
    g = np.repeat(np.arange(J), n)
    mu = np.sqrt(between) * rng.standard_normal(J)
    return g, mu, mu[g] + np.sqrt(within) * rng.standard_normal(J * n)


def _generate_b(rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    J, n = 100, 10
    g, _, x = _level1_x(rng, J, n, 0.25, 1.0)
    zj = rng.standard_normal(J)
    u = rng.standard_normal((J, 2)) * np.sqrt([0.5, 0.1])
    z = zj[g]
    y = 0.5 * x + 0.5 * z + 0.3 * x * z + u[g, 0] + u[g, 1] * x + rng.standard_normal(J * n)
    complete = _frame(y=y, x=x, z=z, g=g)
    x_mis = _mar(rng, y, 0.20)
    ybar = np.bincount(g, weights=y) / n
    z_mis = _mar(rng, ybar, 0.20)[g]
    return complete, complete.assign(x=np.where(x_mis, np.nan, x), z=np.where(z_mis, np.nan, z))


def _generate_c(rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    J, n = 100, 10
    g, _, x = _level1_x(rng, J, n, 0.25, 1.0)
    u0 = np.sqrt(0.5) * rng.standard_normal(J)
    y = 0.5 * x + 0.25 * x**2 + u0[g] + rng.standard_normal(J * n)
    complete = _frame(y=y, x=x, g=g)
    return complete, complete.assign(x=np.where(_mar(rng, y, 0.30), np.nan, x))


def _generate_d(rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    J, n = 200, 5
    g, mu, x = _level1_x(rng, J, n, 0.2, 0.8)
    u0 = np.sqrt(0.2) * rng.standard_normal(J)
    y = 0.5 * x + 0.3 * mu[g] + u0[g] + rng.standard_normal(J * n)
    complete = _frame(y=y, x=x, g=g)
    return complete, complete.assign(x=np.where(_mar(rng, y, 0.20), np.nan, x))


DESIGNS: dict[str, Design] = {
    "a": Design(
        "a",
        "random slope on an incomplete predictor",
        _generate_a,
        model="y ~ x + z + (1 + x | g)",
        analysis="y ~ x + z + (1 + x | g)",
        chained={"x": "x ~ y + z + (1 + y | g)", "y": "y ~ x + z + (1 + x | g)"},
        truth={
            "Intercept": float(GAMMA_A[0]),
            "x": float(GAMMA_A[2]),
            "z": float(GAMMA_A[1]),
            "var(Intercept|g)": float(PSI_A[0, 0]),
            "cov(Intercept,x|g)": float(PSI_A[0, 1]),
            "var(x|g)": float(PSI_A[1, 1]),
            "var(Residual)": 1.0,
        },
    ),
    "b": Design(
        "b",
        "interaction of an incomplete level-1 and level-2 predictor",
        _generate_b,
        model="y ~ x * z + (1 + x | g)",
        analysis="y ~ x * z + (1 + x | g)",
        chained={"x": "x ~ y * z + (1 | g)", "z": "z ~ cmean(y) + cmean(x)"},
        truth={
            "Intercept": 0.0,
            "x": 0.5,
            "z": 0.5,
            "x:z": 0.3,
            "var(Intercept|g)": 0.5,
            "cov(Intercept,x|g)": 0.0,
            "var(x|g)": 0.1,
            "var(Residual)": 1.0,
        },
    ),
    "c": Design(
        "c",
        "quadratic effect of an incomplete predictor",
        _generate_c,
        model="y ~ x + I(x**2) + (1 | g)",
        analysis="y ~ x + I(x**2) + (1 | g)",
        chained={"x": "x ~ y + I(y**2) + (1 | g)"},
        truth={
            "Intercept": 0.0,
            "x": 0.5,
            "I(x ** 2)": 0.25,
            "var(Intercept|g)": 0.5,
            "var(Residual)": 1.0,
        },
    ),
    "d": Design(
        "d",
        "contextual effect with clusters of five",
        _generate_d,
        model="y ~ x + lmean(x) + (1 | g)",
        analysis="y ~ x + cmean(x) + (1 | g)",
        chained={"x": "x ~ y + cmean(y) + (1 | g)"},
        truth={
            "Intercept": 0.0,
            "x": 0.5,
            "lmean(x)": 0.3,
            "var(Intercept|g)": 0.2,
            "var(Residual)": 1.0,
        },
        aliases={"cmean(x)": "lmean(x)"},
    ),
}
