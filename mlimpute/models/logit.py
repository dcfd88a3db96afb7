"""Binary variables: (multilevel) logistic regression by Pólya–Gamma augmentation.

``P(y = 1) = expit(x'β + z'b_j)``, the link of mice's ``2l.bin`` and of a logistic GLMM
analysis model. The probit models (:mod:`mlimpute.models.binary`) stay the default for
binary variables; choose these with ``method={"y": "2l.logit"}`` (or ``"logit"``,
``"2lonly.logit"``).

One Gibbs step (Polson, Scott & Windle 2013): given the current linear predictor η on the
observed rows, draw ``ω_i ~ PG(1, η_i)`` (exact, by Devroye's alternating-series sampler,
:func:`~mlimpute.models.polya_gamma.draw_pg`); given ω the likelihood of η is Gaussian, with
pseudo-responses ``z_i = (y_i − ½)/ω_i`` and precisions ``ω_i``, so the parameters take one
*weighted* Gibbs step of the normal linear core with σ² = 1
(``core.gibbs(rng, state, data, z, sigma2=1.0, weights=ω)``): :class:`~mlimpute.models.norm.Norm`
for ``logit`` and ``2lonly.logit``, :class:`~mlimpute.models.ml_norm.MultilevelNorm` (joint
(β, b) draw, parameter-expanded half-t prior on the random-effect SDs, collapsed MH on
correlations) for ``2l.logit``. Missing values are ``Bernoulli(expit(η))``.

Priors, as the probit's with its unit latent scale replaced by the logistic one,
``π/√3 ≈ 1.81`` (the SD of the standard logistic distribution): fixed slopes
``N(0, (10·π/√3 / rms(x_k))²)``, intercept flat; the half-t scales of the random-effect SDs
``A_k = (π/√3) / sd(z_k)`` (``π/√3`` for a random intercept).

Cost per step: the normal core's weighted step (the cached Z'Z and split fast paths do not
apply to weighted sums) plus n_obs PG(1, ·) draws.

References
----------
Polson, N. G., Scott, J. G. & Windle, J. (2013). Bayesian inference for logistic models
using Pólya–Gamma latent variables. *JASA* 108, 1339–1349.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from mlimpute.models._latent import core_param_names, core_param_vector
from mlimpute.models.base import LinearCore, ModelBase, ModelData
from mlimpute.models.counts_kernels import cached_slope_precision
from mlimpute.models.ml_norm import MultilevelNorm
from mlimpute.models.norm import Norm
from mlimpute.models.polya_gamma import draw_pg
from mlimpute.models.registry import register

__all__ = ["Logit", "MultilevelLogit", "Level2Logit", "LogitState", "LOGISTIC_SD"]

#: SD of the standard logistic distribution: the logit's latent scale, π/√3.
LOGISTIC_SD = float(np.pi / np.sqrt(3.0))


@dataclass(frozen=True)
class LogitState:
    """The linear core's state (on the log-odds scale, σ² = 1)."""

    core: object


def _core(data: ModelData) -> LinearCore:
    """The weighted normal core: multilevel with a random part, its prior on the logistic
    scale."""
    return MultilevelNorm(prior_scale=LOGISTIC_SD) if data.Z is not None else Norm()


def _beta_prec(data: ModelData) -> np.ndarray:
    """The probit's slope prior precision with its SDs scaled by π/√3."""
    return cached_slope_precision(data) / LOGISTIC_SD**2


class _LogitBase(ModelBase):
    def init(self, rng: np.random.Generator, data: ModelData) -> LogitState:
        """The core's start on the pseudo-responses at η = 0 with ω = E[PG(1, 0)] = ¼,
        then one step."""
        kappa = np.where(data.y_obs > 0.5, 0.5, -0.5)
        w0 = np.full(data.n_obs, 0.25)
        core = _core(data).start(
            rng, data, kappa / w0, sigma2=1.0, beta_prec=_beta_prec(data), weights=w0
        )
        return self.step(rng, LogitState(core), data)

    def step(self, rng: np.random.Generator, state: LogitState, data: ModelData) -> LogitState:
        """ω ~ PG(1, η) on the observed rows, then the core's weighted Gibbs step."""
        core = _core(data)
        eta = core.predict(state.core, data, "obs")
        omega = draw_pg(rng, 1.0, eta)
        z = np.where(data.y_obs > 0.5, 0.5, -0.5) / omega
        new = core.gibbs(
            rng, state.core, data, z, sigma2=1.0, beta_prec=_beta_prec(data), weights=omega
        )
        return LogitState(new)

    def draw_missing(
        self, rng: np.random.Generator, state: LogitState, data: ModelData
    ) -> np.ndarray:
        """``Bernoulli(expit(η))`` for each missing row (0.0/1.0)."""
        eta = _core(data).predict(state.core, data, "mis")
        return (rng.random(data.n_mis) < expit(eta)).astype(np.float64)

    def param_names(self, data: ModelData) -> list[str]:
        """The core's, without the residual variance (fixed by the logistic link)."""
        return core_param_names(_core(data), data)

    def param_vector(self, state: LogitState, data: ModelData) -> np.ndarray:
        """As :meth:`param_names`."""
        return core_param_vector(_core(data), state.core, data)

    def random_effect_names(self, data: ModelData) -> list[str]:
        """The core's (the random design's columns; none for single-level models)."""
        return _core(data).random_effect_names(data)

    def random_effects(self, state: LogitState, data: ModelData) -> tuple[np.ndarray, list[str]]:
        """The core's random effects, on the log-odds scale."""
        return _core(data).random_effects(state.core, data)


@register("2l.logit", multilevel=True, kinds=("binary",))
class MultilevelLogit(_LogitBase):
    """Multilevel logistic regression for a binary variable (random intercepts and slopes).

    Examples
    --------
    >>> from mlimpute.models import check_model
    >>> check_model("2l.logit")
    """


@register("logit", multilevel=False, kinds=("binary",))
class Logit(_LogitBase):
    """Single-level Bayesian logistic regression for a binary variable.

    Examples
    --------
    >>> from mlimpute.models.testing import example_data
    >>> data = example_data("binary", multilevel=False)
    >>> model = Logit()
    >>> rng = np.random.default_rng(0)
    >>> state = model.step(rng, model.init(rng, data), data)
    >>> set(model.draw_missing(rng, state, data)) <= {0.0, 1.0}
    True
    """


@register("2lonly.logit", multilevel=False, level=2, kinds=("binary",))
class Level2Logit(Logit):
    """Logistic regression on cluster rows for a binary level-2 variable."""
