"""Analyse multiply imputed data: fit on each completed data set, pool by Rubin's rules.

``imp.fit("grade ~ skill*gender + (1 + gender | class)")`` materialises the formula on
each of the ``m`` completed data sets, fits it and pools the fixed effects
(:func:`mlimpute.pooling.pool`) and the variance components (averages, as mitml does).
The formula is lme4's, parsed by :func:`mlimpute.spec.formula.parse_formula`:

* with a random part, a linear mixed model (lme4's profiled REML or ML criterion
  minimised by :func:`mlimpute.analysis.fitters.mixedlm.fit_mixedlm`; REML by default; statsmodels
  ``MixedLM`` with ``engine="statsmodels"``). ``(1 + x || g)`` (uncorrelated
  random effects) and several blocks ``(1 | g) + (0 + x | g)`` are honoured: the
  random-effect covariance is fitted block-diagonal, diagonal within ``||`` blocks;
* with a random part and ``family=`` (binomial with logit or probit link, Poisson), a
  generalised linear mixed model fitted by maximum likelihood
  (:func:`mlimpute.analysis.fitters.glmm.fit_glmm`: adaptive Gauss-Hermite quadrature for a random
  intercept, the Laplace approximation otherwise, as lme4's ``glmer``);
* without one, OLS, or with ``family=`` a GLM (statsmodels ``GLM``);
* ``cmean(x)`` is the cluster mean of ``x`` in each completed data set;
* ``lmean(x)``, the latent cluster mean of a model-based imputation: the latent covariate
  model fitted by maximum likelihood to x and y of each completed data set
  (``latent="ml"``; :mod:`mlimpute.analysis.latent`,
  :func:`mlimpute.analysis.fitters.latent.fit_latent`) where it applies, else the drawn
  column ``lmean(x)`` as a predictor (plausible values, ``latent="plausible"``); the
  default ``latent="auto"`` chooses.

The fixed-effects design is built by formulaic on the first completed data set; its
``ModelSpec`` is reused for the others, so every data set has the same columns (and
categorical encodings), named as formulaic names them (``Intercept``, ``skill:gender``).

:func:`apply` pools any function of a completed data set that returns estimates with a
covariance, and :func:`from_completed` wraps imputations made elsewhere (R's mice,
Blimp...) so that both work on them too.

Notes
-----
Cost: ``m`` model fits plus ``m`` completed data sets. For classroom experiment 3
(600 rows, random slope, m = 25) ``imp.fit`` takes about 0.13 s: about 3 ms per
mixed-model fit (Newton's method, imputations 2..m warm-started from imputation 1's
estimates), against about 0.2 s per fit with ``engine="statsmodels"``; see
``benchmarks/bench_fit.py``. A random-intercept logit GLMM on 1,000 rows in 50 clusters
takes about 0.05-0.1 s per fit. The designs are materialised by formulaic for the first
data set only; later ones reuse it and re-materialise only the rows whose predictors
were imputed (:class:`_Model`). With ``n_jobs`` or ``client`` the fits of imputations
2..m run in worker processes (:func:`mlimpute.parallel.map_blocks`), with results
identical to the serial run. Likelihood-based tests refit: D3 on a REML fit refits the
full model by ML and fits the reduced one, ``2 m`` more fits.

References
----------
.. [1] Rubin, D. B. (1987). *Multiple Imputation for Nonresponse in Surveys*. Wiley.
.. [2] Grund, S., Lüdtke, O. & Robitzsch, A. (2016). Multiple imputation of multilevel
   missing data: an introduction to the R package pan. *SAGE Open* 6(4).
.. [3] Bates, D., Mächler, M., Bolker, B. & Walker, S. (2015). Fitting linear
   mixed-effects models using lme4. *Journal of Statistical Software* 67(1).
"""

from __future__ import annotations

from mlimpute.analysis.apply import apply
from mlimpute.analysis.completed import CompletedImputations, from_completed
from mlimpute.analysis.fitting import fit
from mlimpute.analysis.model import (
    Design,  # noqa: F401  (re-exported)
    _changed_rows,  # noqa: F401  (tests reach it here)
    _Model,  # noqa: F401  (tests and benchmarks reach it here)
)

__all__ = ["CompletedImputations", "apply", "fit", "from_completed"]
