"""Binary variables: (multilevel) probit by latent-variable data augmentation.

``P(y = 1) = Φ(x'β + z'b_j)`` (mice's ``2l.bin`` is a logit; a probit has the same
fixed-effect signs and its latent scale makes every step conjugate). Albert & Chib (1993):
given the current linear predictor η, draw the latent ``y* ~ N(η, 1)`` truncated to
``y* > 0`` when ``y = 1`` and ``y* < 0`` when ``y = 0``; given ``y*`` the parameters take one
Gibbs step of the normal model with σ² = 1 (for ``2l.bin`` the multilevel one: joint (β, b),
parameter-expanded half-t prior on the random-effect SDs, collapsed MH on correlations; see
:mod:`mlimpute.models.ml_norm`). The latent values are part of the carried state.
Missing values are ``1[η + b + ε > 0]``. Cost per step: that of the normal model plus O(n).

References
----------
Albert, J. H. & Chib, S. (1993). Bayesian analysis of binary and polychotomous response
data. *JASA* 88, 669–679.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlimpute.models._latent import (
    core_param_names,
    core_param_vector,
    linear_core,
    slope_precision,
    truncnorm_sign,
)
from mlimpute.models.base import ModelBase, ModelData
from mlimpute.models.registry import register

__all__ = ["Probit", "MultilevelProbit", "ProbitState"]


@dataclass(frozen=True)
class ProbitState:
    """The linear core's state on the latent scale and the latent values."""

    core: object
    latent: np.ndarray  # y* on the observed rows


class _ProbitBase(ModelBase):
    def init(self, rng: np.random.Generator, data: ModelData) -> ProbitState:
        """Latent values ±0.5 by the observed category, the core's start, one step."""
        self_core = linear_core(data)
        y = data.y_obs
        z0 = np.where(y > 0.5, 0.5, -0.5)  # inside the right half-lines
        core = self_core.start(rng, data, z0, sigma2=1.0, beta_prec=slope_precision(data))
        return self.step(rng, ProbitState(core, z0), data)

    def step(self, rng: np.random.Generator, state: ProbitState, data: ModelData) -> ProbitState:
        """Latent values given the linear predictor, then the core's Gibbs step."""
        core = linear_core(data)
        eta = core.predict(state.core, data, "obs")
        latent = truncnorm_sign(rng, eta, data.y_obs > 0.5)
        return ProbitState(
            core.gibbs(rng, state.core, data, latent, sigma2=1.0, beta_prec=slope_precision(data)),
            latent,
        )

    def draw_missing(
        self, rng: np.random.Generator, state: ProbitState, data: ModelData
    ) -> np.ndarray:
        """``1[η + ε > 0]`` for each missing row."""
        eta = linear_core(data).predict(state.core, data, "mis")
        return (eta + rng.standard_normal(data.n_mis) > 0).astype(np.float64)

    def param_names(self, data: ModelData) -> list[str]:
        """The core's, without the residual variance (1 on the latent scale)."""
        return core_param_names(linear_core(data), data)

    def param_vector(self, state: ProbitState, data: ModelData) -> np.ndarray:
        """As :meth:`param_names`."""
        return core_param_vector(linear_core(data), state.core, data)

    def random_effect_names(self, data: ModelData) -> list[str]:
        """The core's (the random design's columns; none for single-level models)."""
        return linear_core(data).random_effect_names(data)

    def random_effects(self, state: ProbitState, data: ModelData) -> tuple[np.ndarray, list[str]]:
        """The core's random effects, on the latent scale."""
        return linear_core(data).random_effects(state.core, data)


@register("2l.bin", multilevel=True, kinds=("binary",), default_for=[("binary", 1, True)])
class MultilevelProbit(_ProbitBase):
    """Multilevel probit for a binary variable (random intercepts and slopes)."""


@register("bin", multilevel=False, kinds=("binary",), default_for=[("binary", 1, False)])
class Probit(_ProbitBase):
    """Single-level Bayesian probit regression for a binary variable."""
