"""Analysis-model-compatible imputation: the statistical kernels.

Chained equations cannot reproduce an analysis in which an incomplete variable is a
predictor with a random slope, enters an interaction or a square, or is a latent cluster
mean: no set of per-variable regressions implies those relations. Model-based (factored,
substantive-model-compatible) imputation writes the joint distribution as the analysis
model times one model per incomplete predictor and draws every missing value from its full
conditional under that joint model (Goldstein, Carpenter & Browne 2014; Erler et al. 2016;
Lüdtke, Robitzsch & West 2020; Enders, Du & Keller 2020).

Factorisation
-------------
With outcome y, incomplete predictors x_1, …, x_K in a fixed order, complete predictors and
auxiliaries z::

    p(y, x_1, …, x_K | z) = f(y | x, z, b) · Π_k p_k(x_k | x_{k+1}, …, x_K, z)

f is the analysis model (normal, or probit through a latent normal); each p_k is a
normal model with a random intercept for a level-1 predictor (categorical ones through
latent probit models), a normal model on one row per cluster for a level-2 predictor
(which may use the latent cluster means of level-1 variables). Missing outcomes are drawn
from f itself.

Full conditionals
-----------------
The full conditional of a missing x_k is its own model times every factor that contains
it: f, and the models p_l (l < k) in which it is a predictor.

* **Closed form** where x_k enters each factor's linear predictor linearly given
  everything else — a main effect, a random slope, an interaction with another variable
  (also an incomplete one: x·v is linear in x given v): the product of normals is normal
  with precision ``1/σ_x² + Σ_m c_m²/σ_m²`` and mean
  ``(μ_x/σ_x² + Σ_m c_m (v_m − a_m)/σ_m²)/precision``
  (:mod:`~mlimpute.compatible.conditionals`; a probit outcome via its latent y* with
  σ² = 1). For a level-2 predictor the sums run over every row of its cluster, plus
  cluster-level terms where it predicts random effects (:mod:`~mlimpute.compatible.level2`);
  a latent cluster mean ``lmean(x)`` is the random intercept of x's model, drawn the same
  way with x's own rows as one more term (:mod:`~mlimpute.compatible.lmean`, Lüdtke et
  al. 2008).
* **Metropolis–Hastings** where x_k enters non-linearly (``I(x**2)``, ``x:x``,
  transforms): a vectorised random walk, one accept/reject per row, the proposal scale
  tuned toward acceptance 0.44 by a Robbins–Monro recursion with a diminishing gain that
  depends only on the iteration index (:mod:`~mlimpute.compatible.metropolis`; Roberts &
  Rosenthal 2009), so a continued chain equals a longer one bit for bit.
* Categorical predictors (later): exactly over the categories, ``p(x = k | rest) ∝
  p_x(k) f(y | η(k))`` — η evaluated once per category, vectorised over rows.

Cost per iteration
------------------
For n rows, J clusters, p fixed and q random effects in the analysis model: the
parameter step of each normal mixed model costs O(n(p + q)² + J q²p + p³) (segment sums
over rows sorted by cluster, a Cholesky written out over q and vectorised over clusters);
a closed-form predictor draw costs O(n) per factor it enters (η's pieces a, c from two
evaluations of the linear predictor), a level-2 draw O(n + J q²), an MH step two
evaluations of η. On design (a) (J = 100 clusters of 10, q = 2) one iteration of the
reference sampler (:func:`~mlimpute.compatible.sampler.run_compatible`) takes about
0.5 ms: 1,000 iterations in about 0.5 s.

Plugging into the engine
------------------------
The kernels are pure functions of arrays (rows sorted by cluster,
:class:`~mlimpute.models.segments.Segments`) and an explicit ``numpy.random.Generator``
passed first; they hold no state except the MH scale (:class:`ProposalScale`, carried in
the chain's state like every model state). One Gibbs iteration of the engine becomes:
parameter steps of f and of every p_k on the completed data (the existing multilevel
normal / latent models), then for each incomplete predictor in order its draw from
``conditional_moments``/``level2_moments``/``rw_step`` with the terms of the factors that
contain it (a, c from each factor's linear predictor at x = 0 and x = 1:
:func:`affine_coefficients`), then the missing outcomes from f. Acceptance rates and
scales go into the traces.

References
----------
Goldstein, H., Carpenter, J. R. & Browne, W. J. (2014). Fitting multilevel multivariate
models with missing data in responses and covariates that may include interactions and
non-linear terms. *JRSS A* 177(2), 553–564.
Erler, N. S., Rizopoulos, D., van Rosmalen, J., Jaddoe, V. W. V., Franco, O. H. &
Lesaffre, E. M. E. H. (2016). Dealing with missing covariates in epidemiologic studies: a
comparison between multiple imputation and a full Bayesian approach. *Statistics in
Medicine* 35(17), 2955–2974.
Lüdtke, O., Robitzsch, A. & West, S. G. (2020). Regression models involving nonlinear
effects with missing data: a sequential modeling approach using Bayesian estimation.
*Psychological Methods* 25(2), 157–181.
Enders, C. K., Du, H. & Keller, B. T. (2020). A model-based imputation procedure for
multilevel regression models with random coefficients, interaction effects, and nonlinear
terms. *Psychological Methods* 25(1), 88–112.
Lüdtke, O., Marsh, H. W., Robitzsch, A., Trautwein, U., Asparouhov, T. & Muthén, B.
(2008). The multilevel latent covariate model: a new, more reliable approach to group-level
effects in contextual studies. *Psychological Methods* 13(3), 203–229.
Albert, J. H. & Chib, S. (1993). Bayesian analysis of binary and polychotomous response
data. *JASA* 88, 669–679.
Roberts, G. O. & Rosenthal, J. S. (2001). Optimal scaling for various Metropolis–Hastings
algorithms. *Statistical Science* 16(4), 351–367.
Roberts, G. O. & Rosenthal, J. S. (2009). Examples of adaptive MCMC. *Journal of
Computational and Graphical Statistics* 18(2), 349–367.

Examples
--------
>>> import numpy as np
>>> from mlimpute.compatible import normal_conditional
>>> mean, var = normal_conditional(np.zeros(1), 1.0, np.array([2.0]), np.zeros(1),
...                                np.ones(1), 1.0)
>>> float(mean[0]), float(var[0])
(1.0, 0.5)
"""

from mlimpute.compatible.conditionals import (
    LinearTerm,
    affine_coefficients,
    conditional_moments,
    draw_conditional,
    draw_normal_conditional,
    draw_probit_latent,
    draw_probit_step,
    normal_conditional,
)
from mlimpute.compatible.level2 import ClusterTerm, draw_level2, level2_moments
from mlimpute.compatible.lmean import latent_mean_moments
from mlimpute.compatible.metropolis import (
    TARGET_ACCEPT,
    ProposalScale,
    normal_log_target,
    probit_log_target,
    rw_step,
)
from mlimpute.compatible.sampler import CompatibleRun, run_compatible

__all__ = [
    "LinearTerm",
    "ClusterTerm",
    "affine_coefficients",
    "conditional_moments",
    "draw_conditional",
    "normal_conditional",
    "draw_normal_conditional",
    "draw_probit_latent",
    "draw_probit_step",
    "level2_moments",
    "draw_level2",
    "latent_mean_moments",
    "TARGET_ACCEPT",
    "ProposalScale",
    "rw_step",
    "normal_log_target",
    "probit_log_target",
    "CompatibleRun",
    "run_compatible",
]
