"""Latent cluster means ``lmean(x)``: the random intercept of x's model as a predictor.

x's own model (random intercept, Lüdtke et al. 2008)::

    x_ij = o_ij + ξ_j + e_ij,   e_ij ~ N(0, σ_x²)
    ξ_j  = m_j + r_j,           r_j ~ N(0, τ)

with ``o_ij`` the level-1 part of its linear predictor (0 without level-1 covariates) and
``m_j`` the level-2 part (intercept + level-2 predictors). ``lmean(x)`` is ξ_j. In the
analysis model it enters linearly given everything else, ``η_ij = a_ij + c_ij ξ_j``:

* uncentred x: ``y = β_W x_ij + β_C ξ_j + …`` → ``c = β_C`` (the contextual effect),
  ``β_W x_ij`` in a;
* latent group-mean centring: ``y = β_W (x_ij − ξ_j) + β_B ξ_j + …`` →
  ``c = β_B − β_W``, ``β_W x_ij`` in a;
* a cross-level interaction ``ξ_j · v_ij`` adds ``γ v_ij`` to c.

The full conditional of ξ_j is the level-2 case (:mod:`mlimpute.compatible.level2`) with
the rows of x as one more term (x's own model, coefficient 1)::

    λ_j  = 1/τ + n_j/σ_x² + Σ_{i∈j, y_ij obs} c_ij²/σ_y²
    μ*_j = (m_j/τ + Σ_{i∈j} (x_ij − o_ij)/σ_x² + Σ_{i∈j, y_ij obs} c_ij (y_ij − a_ij)/σ_y²)/λ_j

``n_j`` counts every row of x in the cluster, observed and currently imputed (the
imputations are data in the augmented chain). Without the analysis term this is the usual
posterior of a random intercept, whose shrinkage toward m_j is what corrects the
observed cluster mean's unreliability in small clusters (the contextual effect's bias of
``cmean(x)``; Lüdtke et al. 2008).

Where ξ enters the analysis model, x's parameter step must condition on ξ (draw the
fixed part from ``x − ξ``, τ from ``ξ − m``, σ_x² from ``x − o − ξ``) rather than
integrate the random intercept out: ξ's draw has to see the analysis likelihood.

Accuracy (``benchmarks/contextual_ml.py``; design (d) of the compatible study: 200 clusters
of five, ICC_x 0.2, contextual effect 0.3, 20 % of x missing). The pooled ``lmean(x)``
estimate is a Bayesian one: with m large and chains at stationarity it is close to the
posterior mean of the contextual effect (paired over 84 data sets, 200 iterations: +0.008 ±
0.006 from a posterior mean computed by importance sampling). That posterior mean lies
0.032 ± 0.003 above the maximum-likelihood estimate of the same data (120 data sets): the
effect is a ratio over τ, and with clusters of five its posterior is skewed to the right.
Maximum likelihood itself is nearly unbiased (0.3047 ± 0.0011 over 20,000 complete data
sets). About half of the shift comes from the prior ``p(τ) ∝ 1/τ`` (with ``p(τ) ∝ 1`` the
posterior mean falls by 0.015, with a flat prior on τ's SD by 0.008). The chains reach
stationarity for τ within about 20 iterations (lag-1 autocorrelation 0.76), but the
estimate after 30 iterations is still 0.013 ± 0.004 below the posterior mean and 0.022 ±
0.007 below the estimate after 200 iterations. The 95 % intervals cover 0.976 of 500 data
sets although the mean SE equals the spread of the estimates (0.197 and 0.201): the SE is
large exactly where the estimate is far off (a small between-cluster variance of x inflates
both; correlation of SE and absolute error 0.42). Maximum likelihood's Wald intervals
share this (coverage 0.970 over 200 data sets). Analysed by maximum likelihood instead
(``imp.fit(latent="ml")``, :mod:`mlimpute.analysis.latent`; ``benchmarks/lmean_ml_study.py``,
1,000 data sets, 30 iterations), the same imputations give an estimate 0.0133 ± 0.0010
lower: relative bias +7.4 % ± 2.0 % against +11.9 % ± 2.1 % for the plausible values,
coverage 0.962 against 0.970. It still lies 0.0166 ± 0.0027 above maximum likelihood of
the complete data (whose mean over 20,000 data sets is 0.3064 ± 0.0011) and 0.0100 ±
0.0008 above that of the incomplete data (500 data sets): the imputed values themselves
are drawn under the skewed posterior. From 30 to 100 iterations it rises by 0.0035 ±
0.0012, the plausible-values estimate by 0.0125 ± 0.0027. ``imp.fit()`` therefore uses
the maximum-likelihood analysis by default where it applies (``latent="auto"``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mlimpute.compatible.conditionals import LinearTerm
from mlimpute.compatible.level2 import ClusterTerm, level2_moments
from mlimpute.models.segments import Segments

__all__ = ["latent_mean_moments"]


def latent_mean_moments(
    seg: Segments,
    m: np.ndarray,
    tau: float,
    x: np.ndarray,
    x_offset: np.ndarray | float,
    sigma2_x: float,
    terms: Sequence[LinearTerm] = (),
    cluster_terms: Sequence[ClusterTerm] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of the latent cluster means ξ_j given x and the analysis model.

    Parameters
    ----------
    seg : Segments
        Rows sorted by cluster.
    m : ndarray, shape (J,)
        Level-2 part of x's model (mean of ξ_j).
    tau : float
        Random-intercept variance of x's model.
    x : ndarray, shape (n,)
        x, observed and currently imputed.
    x_offset : ndarray, shape (n,), or float
        Level-1 part ``o_ij`` of x's model.
    sigma2_x : float
        Residual variance of x's model.
    terms : sequence of LinearTerm
        Models in which ξ_j enters linearly, per row (the analysis model: response y,
        offset a, coefficient c, ``active`` = y observed).
    cluster_terms : sequence of ClusterTerm
        Cluster-level models linear in ξ_j.

    Returns
    -------
    mean, var : ndarray, shape (J,)

    Examples
    --------
    >>> seg = Segments.from_codes(np.array([0, 0, 1, 1]), 2)
    >>> x = np.array([1.0, 3.0, -1.0, -1.0])
    >>> mean, var = latent_mean_moments(seg, np.zeros(2), 1.0, x, 0.0, 1.0)
    >>> mean.round(4).tolist(), var.round(4).tolist()
    ([1.3333, -0.6667], [0.3333, 0.3333])
    """
    x = np.asarray(x, dtype=float)
    own = LinearTerm(x, np.broadcast_to(np.asarray(x_offset, dtype=float), x.shape), 1.0, sigma2_x)
    return level2_moments(seg, m, tau, [own, *terms], cluster_terms)
