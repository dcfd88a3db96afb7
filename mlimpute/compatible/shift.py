"""δ-adjustment (sensitivity to missing not at random) in model-based imputation.

The pattern-mixture reading of NARFCS (Leacy et al. 2017; Tompsett et al. 2018): the
missing values of a shifted variable x are ``x = x* + δ`` (plus ``u_j``, one shift per
cluster, with ``delta_cluster_sd=``), where ``x*`` follows the missing-at-random model.
In model-based imputation x's own model is updated from its *completed* column, so the
chain carries two versions of x's missing values:

* ``x*`` (unshifted) is what x's own model sees: its parameter update, and its factor
  ``N(x*; μ_x, σ_x²)`` in x's full conditional; a model in which x is the *response*
  (an earlier predictor's model in the factorisation, x's own model) always sees x*;
* ``x = x* + δ`` is what every other model sees: the analysis model and the models of the
  predictors that take x as a predictor, and the completed data sets.

The full conditional of x* is

    p(x* | rest) ∝ N(x*; μ_x, σ_x²) · f(y | η(x* + δ)) · Π_m p_m(v_m | η_m(x* + δ)),

so x = x* + δ has the full conditional of the unshifted sampler with x's own mean moved
to ``μ_x + δ``:

    p(x | rest) ∝ N(x; μ_x + δ, σ_x²) · f(y | η(x)) · Π_m p_m(v_m | η_m(x)).

The closed form (:func:`shifted_moments`), the Metropolis–Hastings target and the
level-2 draw (the mean of the cluster's own model moved by ``δ + u_j``) all follow from it;
x* is then ``x − δ``. Without this split the shifted values would feed back into x's own
model and the shift would compound from iteration to iteration.

A missing outcome is drawn from the analysis model (whose parameters use the observed
outcomes only) and shifted; a binary outcome on its latent (probit) scale, through the
intercept of the analysis model. Columns outside the analysis model (imputed by chained
defaults with ``cluster=``) are shifted as on the chained path. Categorical predictors of
model-based imputation and latent cluster means ``lmean()`` cannot be shifted yet (their
models are fitted to the completed categories or to the drawn cluster means, where the
unshifted values are not defined); both are refused by name.

Where the pieces live: this kernel (:func:`shifted_moments`); the checks of ``delta=``
against the factorisation in :mod:`mlimpute.spec.shifts`; the shifts of one chain (the
per-cluster ones from their own generator, the unshifted values for the predictors' own
models) in :mod:`mlimpute.sampler.shifts`.

References
----------
Leacy, F. P., Floyd, S., Yates, T. A. & White, I. R. (2017). *American Journal of
Epidemiology* 185(4), 304–315.
Tompsett, D. M., Leacy, F., Moreno-Betancur, M., Heron, J. & White, I. R. (2018).
*Statistics in Medicine* 37(15), 2338–2353.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mlimpute.compatible.conditionals import LinearTerm, conditional_moments

__all__ = ["shifted_moments"]


def shifted_moments(
    mu_x: np.ndarray,
    sigma2_x: float | np.ndarray,
    terms: Sequence[LinearTerm],
    shift: np.ndarray | float,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of the shifted value ``x = x* + δ`` of a missing predictor.

    x* has the full conditional ``N(x*; μ_x, σ_x²) Π_m N(v_m; a_m + c_m (x* + δ), σ_m²)``
    (its own model at x*, every model it predicts at the shifted value); x = x* + δ is
    then normal with the moments of :func:`~mlimpute.compatible.conditional_moments` at
    the own mean ``μ_x + δ``.

    Parameters
    ----------
    mu_x : ndarray, shape (n,)
        Mean of x's own (missing-at-random) model per row.
    sigma2_x : float or ndarray
        Residual variance of x's own model.
    terms : sequence of LinearTerm
        The models in which x enters linearly, as functions of the shifted x.
    shift : float or ndarray, shape (n,)
        δ (plus the cluster's shift) per row.

    Returns
    -------
    mean, var : ndarray, shape (n,)
        Of x; x* has mean ``mean − shift`` and the same variance.

    Examples
    --------
    >>> t = LinearTerm(np.array([2.0]), np.array([0.0]), 1.0, 1.0)
    >>> shifted_moments(np.array([0.0]), 1.0, [t], 1.0)
    (array([1.5]), array([0.5]))
    """
    mu = np.asarray(mu_x, dtype=float) + shift
    return conditional_moments(mu, sigma2_x, terms)
