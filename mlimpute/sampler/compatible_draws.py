"""The draws of model-based imputation, one kind of missing value each.

Used by :func:`mlimpute.sampler.compatible.run_compatible_chain`: the analysis model's (and
any model's) linear predictor on a few rows at candidate values (:class:`RowDesign`),
closed-form terms from affine linear predictors (:func:`eta_at`), level-2 predictors on one
row per cluster (:func:`level2_draw`), categorical predictors exactly over their
categories (:func:`categorical_draw`) and predictors that enter non-linearly by
Metropolis–Hastings (:func:`mh_draw`). Everything is vectorised over rows and clusters.

The linear predictors are in :mod:`mlimpute.sampler.compatible_eta`, the level-2 and
latent-mean draws in :mod:`mlimpute.sampler.compatible_level2`, the categorical draws in
:mod:`mlimpute.sampler.compatible_categorical`; this module holds the
Metropolis–Hastings draw and names them all.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_ndtr

from mlimpute.compatible import ProposalScale, conditional_moments, rw_step
from mlimpute.sampler.compatible_categorical import (
    _log_lik,  # noqa: F401  (re-exported: compatible_counts reaches it here)
    categorical_draw,
    fresh_utilities,
    latent_responses,
    nominal_utilities,
)
from mlimpute.sampler.compatible_eta import (
    RowDesign,
    _probit,
    cluster_eta_at,  # noqa: F401  (re-exported: compatible_terms reaches it here)
    eta_at,
    linear_predictor,
    outcome_term,
)
from mlimpute.sampler.compatible_level2 import (
    all_clusters,
    latent_mean_draw,
    latent_mean_owner_state,
    level2_draw,
)

__all__ = [
    "RowDesign",
    "proposal_key",
    "linear_predictor",
    "eta_at",
    "outcome_term",
    "all_clusters",
    "level2_draw",
    "latent_mean_owner_state",
    "latent_mean_draw",
    "categorical_draw",
    "latent_responses",
    "nominal_utilities",
    "fresh_utilities",
    "mh_draw",
]


def proposal_key(x: str) -> str:
    """Key of x's proposal scale ``(log s, adaptation steps)`` among the chain's states."""
    return f"(proposal) {x}"


def mh_draw(
    rng,
    plan,
    x,
    rows,
    mu,
    sigma2_x,
    terms,
    ma,
    sa,
    da,
    values,
    y_values,
    y_obs_rows,
    row_designs,
    states,
    adapt,
):
    """x's missing values where it enters the analysis model non-linearly.

    Rows with the outcome missing: the analysis factor integrates to 1, so x's full
    conditional there is the closed form of its own model and the models it predicts.
    Rows with the outcome observed: one random-walk Metropolis–Hastings step per row
    (vectorised), target ``N(x; μ_x, σ_x²) · Π_m N(v_m; a_m + c_m x, σ_m²) ·
    N(y; η(x), σ_y²)``, proposal SD ``s·√(closed-form variance without the analysis
    term)``; s is tuned toward acceptance 0.44 when ``adapt`` (at every iteration, with the
    diminishing gain of :meth:`mlimpute.compatible.ProposalScale.adapted`). Returns the
    draws and the acceptance rate.
    """
    m_, v_ = conditional_moments(mu, sigma2_x, terms)
    act = y_obs_rows[rows]
    draw = values[x][rows].copy()
    free = ~act
    draw[free] = m_[free] + np.sqrt(v_[free]) * rng.standard_normal(int(free.sum()))
    if not act.any():
        return draw, np.nan
    rd = row_designs[x]
    frame = rd.frame(values, plan.static)
    yo = y_values[rd.rows]
    probit = _probit(sa)
    sign = np.where(yo > 0.5, 1.0, -1.0)
    mu_a, s2x = mu[act], sigma2_x
    lin = [
        (t.response[act], t.offset[act], np.broadcast_to(t.coef, act.shape)[act], t.sigma2)
        for t in terms
    ]

    def log_target(v: np.ndarray) -> np.ndarray:
        frame[x] = v
        eta = rd.eta(da, sa, frame)
        if probit:
            lik = log_ndtr(sign * eta)
        else:
            lik = -0.5 * (yo - eta) ** 2 / sa.sigma2
        out = -0.5 * (v - mu_a) ** 2 / s2x + lik
        for resp, off, c, s2 in lin:
            out = out - 0.5 * (resp - off - c * v) ** 2 / s2
        return np.where(np.isfinite(out), out, -np.inf)

    key = proposal_key(x)
    scale = ProposalScale(*states[key])
    new, scale, rate, _ = rw_step(
        rng, draw[act], log_target, scale, base_sd=np.sqrt(v_[act]), adapt=adapt
    )
    states[key] = (scale.log_scale, scale.n_adapted)
    draw[act] = new
    return draw, rate
