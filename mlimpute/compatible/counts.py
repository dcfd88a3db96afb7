"""Counts in model-based imputation: a count outcome and a count predictor.

**A count outcome** (``impute(model=..., family="poisson")`` or ``"negative_binomial"``).
The analysis model is the count model of :mod:`mlimpute.models.counts` on the rows with
the outcome observed: Poisson–log-normal (``y_i ~ Poisson(e^(η_i))``,
``η_i = x_i'β + z_i'b_j + e_i``, ``e_i ~ N(0, σ²)``, σ² small unless the counts are
overdispersed) or negative binomial (``y_i ~ NB(r, e^(ψ_i))``). Its parameters take the
count model's step (Poisson: per-row η by independence Metropolis, the normal core's
Gibbs step, non-centred moves; NB: Pólya–Gamma augmentation, r by Metropolis); its
missing outcomes are drawn from it (non-negative integers).

A missing value of a continuous predictor x (with the outcome observed on its row) is
drawn by one vectorised random-walk Metropolis–Hastings step per row
(:func:`mlimpute.sampler.compatible_draws.count_outcome_draw`): the count likelihood is
not Gaussian in x, whether x enters the linear predictor linearly or not. The target is
x's closed-form conditional under its own model and the models it predicts,
``N(x; μ*, v*)`` (:func:`~mlimpute.compatible.conditional_moments`), times the
outcome's likelihood at the linear predictor η(x):

* negative binomial: ``NB(y; r, e^(ψ(x)))``, the marginal likelihood (no latent state);
* Poisson–log-normal: ``Poisson(y; e^(η(x) + e))`` with the row's residual
  ``e = η − η_lin(x)`` held fixed — a joint move of (x, η) along ``η' = η + η_lin(x') −
  η_lin(x)`` (a shift, Jacobian 1) under which ``N(η; η_lin(x), σ²)`` is unchanged, so the
  acceptance ratio has the Poisson factor only; an accepted move updates the row's η in
  the analysis state. Drawing x given η instead (a closed form) would pin x within
  ``σ/|c|`` of its value when σ is small (counts close to Poisson) and crawl.

The proposal SD is ``s·√v*``, s tuned toward acceptance 0.44 by the Robbins–Monro
recursion of :mod:`mlimpute.compatible.metropolis` (gain depending on the step count
only, so a continued chain equals a longer one bit for bit); acceptance rate and s are
traced as ``accept(MH)``, ``scale(MH)``. Rows with the outcome missing: the outcome
factor integrates to 1 and x is drawn from ``N(μ*, v*)`` exactly.

**A count predictor** k (an integer column of non-negative values; one so far) has its
own count model ``k ~ later + complete + (1 | g)`` (``2l.poisson``, or ``2l.nb`` when its
observed values are overdispersed within clusters: :mod:`mlimpute.spec.model_counts`),
fitted in step 2 to the completed column. Its missing values are drawn by an
independence Metropolis–Hastings step per row
(:func:`mlimpute.sampler.compatible_counts.count_predictor_draw`): propose from the own
model — NB: ``k_new ~ NB(r, e^(ψ_i))``; Poisson–log-normal: ``η_new ~ N(m_i, σ²)``,
``k_new ~ Poisson(e^(η_new))``, a joint proposal of the row's (η, k) from its prior — and accept
with the ratio of the other factors that contain k: the analysis model's likelihood on
the row (normal, probit, or count as above) and the likelihoods of the models that take
k as a predictor. The own model's factor cancels against the proposal, so the step
leaves the exact full conditional invariant; imputations are non-negative integers by
construction. The acceptance rate is traced as ``accept(MH)``.

Everything is vectorised over rows; no Python loop runs over rows or clusters.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from mlimpute.models.counts import NBState, PoissonState
from mlimpute.models.counts_kernels import nb_loglik

__all__ = [
    "COUNT_PARAMS",
    "is_count_state",
    "count_loglik",
    "count_residual",
    "with_eta",
]

#: trace column of a count predictor: the fraction of its missing values whose
#: independence proposal was accepted at that iteration
COUNT_PARAMS = ("accept(MH)",)

_MAX_ETA = 700.0


def is_count_state(state) -> bool:
    """A Poisson–log-normal or negative-binomial model's state.

    Examples
    --------
    >>> is_count_state(None)
    False
    """
    return isinstance(state, (PoissonState, NBState))


def count_loglik(state, y: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Per-row log-likelihood (up to terms free of η) of counts y at log-means η:
    ``y·η − e^η`` (Poisson; η includes the row's residual) or the NB log-pmf with the
    state's dispersion r.

    Examples
    --------
    >>> st = NBState(None, 2.0, 0.3, 0, 0)
    >>> from scipy.stats import nbinom
    >>> bool(np.isclose(count_loglik(st, np.array([3.0]), np.log([2.0]))[0],
    ...                 nbinom.logpmf(3, 2.0, 0.5)))
    True
    """
    if isinstance(state, NBState):
        return nb_loglik(y, eta, state.r)
    with np.errstate(over="ignore"):
        return y * eta - np.exp(np.minimum(eta, _MAX_ETA))


def count_residual(sa, rd, eta_now: np.ndarray) -> np.ndarray:
    """The Poisson analysis rows' residuals ``η − η_lin`` at the current values (zeros,
    one per row, for a negative-binomial analysis model, which has none)."""
    if isinstance(sa, PoissonState):
        return sa.eta[rd.pos] - eta_now
    return np.zeros_like(eta_now)


def with_eta(sa, rd, eta_new: np.ndarray):
    """The Poisson analysis state with the rows' η replaced (unchanged for NB)."""
    if not isinstance(sa, PoissonState):
        return sa
    eta = sa.eta.copy()
    eta[rd.pos] = eta_new
    return replace(sa, eta=eta)
