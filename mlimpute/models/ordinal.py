"""Ordered categories: (multilevel) ordered probit with Metropolis cut-point draws.

``y = k  ⇔  γ_k < y* ≤ γ_{k+1}``, ``y* = x'β + z'b_j + ε``, ``ε ~ N(0, 1)``, with
``γ_0 = −∞``, ``γ_1 = 0`` (the intercept carries the location) and ``γ_K = ∞``. One step:

1. cut-points ``γ_2..γ_{K−1}`` by Cowles' (1996) Metropolis–Hastings with the latent values
   integrated out: each proposal ``γ'_j ~ N(γ_j, s²)`` truncated to ``(γ'_{j−1}, γ_{j+1})``,
   accepted with the ratio of ``Π_i [Φ(γ_{y_i+1} − η_i) − Φ(γ_{y_i} − η_i)]`` times the
   proposal normalisers (Cowles 1996, eq. 3). Albert & Chib's Gibbs draw of each cut-point
   between neighbouring latent values mixes ever more slowly as n grows; this does not.
2. latent ``y* ~ N(η, 1)`` truncated to ``(γ_y, γ_{y+1}]``;
3. one Gibbs step of the normal model with σ² = 1 on ``y*`` (multilevel for ``2l.ordinal``).

Categories with no observed value cannot be estimated (their cut-points are unidentified);
the model is fitted on the observed categories and never imputes an empty one (an event
says so). Cost per step: the normal model's plus O(n·M) for M Metropolis proposals.

References
----------
Cowles, M. K. (1996). Accelerating Monte Carlo Markov chain convergence for
cumulative-link generalized linear models. *Statistics and Computing* 6, 101–111.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import log_ndtr, ndtri

from mlimpute.errors import SpecificationError
from mlimpute.models._latent import (
    core_param_names,
    core_param_vector,
    linear_core,
    slope_precision,
    truncnorm,
)
from mlimpute.models.base import ModelBase, ModelData
from mlimpute.models.registry import register

__all__ = ["OrderedProbit", "MultilevelOrderedProbit", "OrderedState"]

MH_PROPOSALS = 3


@dataclass(frozen=True)
class OrderedState:
    """The linear core's state, the latent values, the cut-points and the MH step size."""

    core: object
    latent: np.ndarray
    cuts: np.ndarray  # (K'−1,) with cuts[0] = 0
    step: float


def _present(data: ModelData) -> tuple[np.ndarray, np.ndarray]:
    """Observed categories (sorted codes) and each observed row's rank among them."""
    levels, rank = np.unique(data.y_obs.astype(np.intp), return_inverse=True)
    return levels, rank


def _log_interval(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """log[Φ(hi) − Φ(lo)] elementwise, stable in both tails (mirrored when lo > 0)."""
    flip = lo > 0
    a = np.where(flip, -hi, lo)
    b = np.where(flip, -lo, hi)
    la, lb = log_ndtr(a), log_ndtr(b)
    return lb + np.log1p(-np.exp(np.minimum(la - lb, -1e-300)))


def _log_lik(eta: np.ndarray, rank: np.ndarray, bounds: np.ndarray) -> float:
    """Σ_i log[Φ(γ_{y+1} − η) − Φ(γ_y − η)]."""
    return float(np.sum(_log_interval(bounds[rank] - eta, bounds[rank + 1] - eta)))


class _OrderedBase(ModelBase):
    def check(self, data: ModelData) -> None:
        """The formula must keep an intercept: cut-point 1 is fixed at 0."""
        if "Intercept" not in data.X.names:
            raise SpecificationError(
                f"{data.variable!r}: the ordinal model needs an intercept in its formula "
                "(cut-point 1 is fixed at 0, the intercept carries the location); remove "
                "the '0 +' or '- 1' from the formula"
            )

    def init(self, rng: np.random.Generator, data: ModelData) -> OrderedState:
        """Cut-points from the observed category shares, latent values inside their
        intervals, the core's start, then one step."""
        levels, rank = _present(data)
        K = len(levels)
        cum = np.cumsum(np.bincount(rank, minlength=K))[:-1] / rank.size
        cuts = ndtri(cum) - ndtri(cum[0]) if K > 1 else np.zeros(0)
        bounds = np.r_[-np.inf, cuts, np.inf] + ndtri(cum[0]) * (K > 1)
        mid = np.where(np.isfinite(bounds[rank]), bounds[rank], bounds[rank + 1] - 1)
        top = np.where(np.isfinite(bounds[rank + 1]), bounds[rank + 1], bounds[rank] + 1)
        latent = (mid + top) / 2 - ndtri(cum[0]) * (K > 1)
        core = linear_core(data).start(
            rng, data, latent, sigma2=1.0, beta_prec=slope_precision(data)
        )
        step = 2.0 / np.sqrt(max(rank.size, 1) / max(K, 1))
        return self.step(rng, OrderedState(core, latent, cuts, step), data)

    def step(self, rng: np.random.Generator, state: OrderedState, data: ModelData) -> OrderedState:
        """Cut-points by Metropolis–Hastings, latent values, then the core's Gibbs step."""
        core = linear_core(data)
        _, rank = _present(data)
        eta = core.predict(state.core, data, "obs")
        cuts = self._cuts(rng, state.cuts, state.step, eta, rank)
        bounds = np.r_[-np.inf, cuts, np.inf]
        latent = truncnorm(rng, eta, bounds[rank], bounds[rank + 1])
        core_state = core.gibbs(
            rng, state.core, data, latent, sigma2=1.0, beta_prec=slope_precision(data)
        )
        return OrderedState(core_state, latent, cuts, state.step)

    @staticmethod
    def _cuts(
        rng: np.random.Generator, cuts: np.ndarray, s: float, eta: np.ndarray, rank: np.ndarray
    ) -> np.ndarray:
        K1 = cuts.size
        if K1 < 2:
            return cuts
        cur = _log_lik(eta, rank, np.r_[-np.inf, cuts, np.inf])
        for _ in range(MH_PROPOSALS):
            new = cuts.copy()
            for j in range(1, K1):  # γ_1 = 0 fixed; loop over the few free cut-points
                upper = cuts[j + 1] if j + 1 < K1 else np.inf
                new[j] = (
                    cuts[j]
                    + s
                    * truncnorm(
                        rng, np.zeros(1), (new[j - 1] - cuts[j]) / s, (upper - cuts[j]) / s
                    )[0]
                )
            up_old = np.r_[cuts[2:], np.inf]
            up_new = np.r_[new[2:], np.inf]
            log_q = np.sum(
                _log_interval((new[:-1] - cuts[1:]) / s, (up_old - cuts[1:]) / s)
                - _log_interval((cuts[:-1] - new[1:]) / s, (up_new - new[1:]) / s)
            )
            prop = _log_lik(eta, rank, np.r_[-np.inf, new, np.inf])
            if np.log(rng.random()) < prop - cur + log_q:
                cuts, cur = new, prop
        return cuts

    def draw_missing(
        self, rng: np.random.Generator, state: OrderedState, data: ModelData
    ) -> np.ndarray:
        """The interval of a fresh latent value ``η + ε`` between the cut-points."""
        levels, _ = _present(data)
        eta = linear_core(data).predict(state.core, data, "mis")
        k = np.searchsorted(state.cuts, eta + rng.standard_normal(data.n_mis))
        return levels[k].astype(np.float64)

    def param_names(self, data: ModelData) -> list[str]:
        """The core's (without the residual variance), then the free cut-points."""
        K = len(_present(data)[0])
        return [
            *core_param_names(linear_core(data), data),
            *(f"cut{j + 1}" for j in range(1, K - 1)),
        ]

    def param_vector(self, state: OrderedState, data: ModelData) -> np.ndarray:
        """As :meth:`param_names`."""
        return np.r_[core_param_vector(linear_core(data), state.core, data), state.cuts[1:]]

    def random_effect_names(self, data: ModelData) -> list[str]:
        """The core's (the random design's columns; none for single-level models)."""
        return linear_core(data).random_effect_names(data)

    def random_effects(self, state: OrderedState, data: ModelData) -> tuple[np.ndarray, list[str]]:
        """The core's random effects, on the latent scale."""
        return linear_core(data).random_effects(state.core, data)


@register(
    "2l.ordinal", multilevel=True, kinds=("ordinal", "binary"), default_for=[("ordinal", 1, True)]
)
class MultilevelOrderedProbit(_OrderedBase):
    """Multilevel ordered probit for an ordered categorical variable."""


@register(
    "ordinal",
    multilevel=False,
    kinds=("ordinal", "binary"),
    aliases=("polr",),
    default_for=[("ordinal", 1, False)],
)
class OrderedProbit(_OrderedBase):
    """Single-level ordered probit for an ordered categorical variable."""
