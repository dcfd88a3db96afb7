"""Unordered categories: (multilevel) multinomial probit with independent utilities.

For K observed categories (reference r = the first), K − 1 latent utilities
``w_k = x'β_k + z'b_jk + ε_k``, ``ε_k ~ N(0, 1)`` independent, and ``y = argmax(0, w_1..)``
(0 standing for the reference). Each step draws, for every k in turn, ``w_k`` from its
normal truncated by the observed category (above ``max(0, w_{−k})`` where ``y = k``; below
``w_y`` where ``y`` is another non-reference category; below 0 where ``y = r``), then one
Gibbs step of a normal model with σ² = 1 for ``w_k`` (multilevel for ``2l.nominal``, with its
own random effects and covariance per category). Missing values: the argmax of fresh
utilities. Cost per step: K − 1 normal-model steps.

Why this model: it is the multinomial probit of Albert & Chib (1993) with the latent
covariance fixed at the identity. Fixing it removes the scale and rotation
non-identifiability of the full multinomial probit (which jomo handles with a constrained
covariance draw) and keeps every step conjugate and vectorised. Dependence between
categories within a cluster enters through the random effects; what it gives up is
correlation between the utilities' row-level errors, which matters little for imputation
(category probabilities given x and the cluster are still flexible). A multilevel PMM on a
single latent score would not respect an unordered variable; a multinomial logit would
need Pólya-Gamma augmentation per category for the same structure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlimpute.models._latent import (
    core_param_names,
    core_param_vector,
    linear_core,
    slope_precision,
    truncnorm,
)
from mlimpute.models.base import ModelBase, ModelData
from mlimpute.models.registry import register

__all__ = ["MultinomialProbit", "MultilevelMultinomialProbit", "NominalState"]


@dataclass(frozen=True)
class NominalState:
    """One linear core's state per non-reference category, and the latent utilities."""

    cores: tuple
    latent: np.ndarray  # (n_obs, K − 1)


def _present(data: ModelData) -> tuple[np.ndarray, np.ndarray]:
    """Observed categories (sorted codes) and each observed row's rank among them."""
    levels, rank = np.unique(data.y_obs.astype(np.intp), return_inverse=True)
    return levels, rank


class _NominalBase(ModelBase):
    def init(self, rng: np.random.Generator, data: ModelData) -> NominalState:
        """Utilities ±0.5 by the observed category, each core's start, then one step."""
        levels, rank = _present(data)
        K = len(levels)
        W = np.where(rank[:, None] == np.arange(1, K)[None, :], 0.5, -0.5)
        core = linear_core(data)
        cores = tuple(
            core.start(rng, data, W[:, k], sigma2=1.0, beta_prec=slope_precision(data))
            for k in range(K - 1)
        )
        return self.step(rng, NominalState(cores, W), data)

    def step(self, rng: np.random.Generator, state: NominalState, data: ModelData) -> NominalState:
        """For each category in turn: its utilities, then its core's Gibbs step."""
        core = linear_core(data)
        _, rank = _present(data)
        W = state.latent.copy()
        cores = list(state.cores)
        K1 = W.shape[1]
        rows = np.arange(W.shape[0])
        for k in range(K1):  # loop over categories, not rows
            eta = core.predict(cores[k], data, "obs")
            others = np.delete(W, k, axis=1)
            best_other = np.maximum(others.max(axis=1, initial=-np.inf), 0.0)
            chosen = np.where(rank > 0, W[rows, np.maximum(rank - 1, 0)], 0.0)
            is_k = rank == k + 1
            lower = np.where(is_k, best_other, -np.inf)
            upper = np.where(is_k, np.inf, chosen)
            W[:, k] = truncnorm(rng, eta, lower, upper)
            cores[k] = core.gibbs(
                rng, cores[k], data, W[:, k], sigma2=1.0, beta_prec=slope_precision(data)
            )
        return NominalState(tuple(cores), W)

    def draw_missing(
        self, rng: np.random.Generator, state: NominalState, data: ModelData
    ) -> np.ndarray:
        """The category of the largest fresh utility (the reference's is 0)."""
        levels, _ = _present(data)
        core = linear_core(data)
        W = np.stack([core.predict(c, data, "mis") for c in state.cores], axis=1)
        W = W + rng.standard_normal(W.shape)
        k = np.where(W.max(axis=1, initial=-np.inf) > 0, W.argmax(axis=1) + 1, 0)
        return levels[k].astype(np.float64)

    def param_names(self, data: ModelData) -> list[str]:
        """The core's names per non-reference category code, ``[code] name``."""
        levels, _ = _present(data)
        names = core_param_names(linear_core(data), data)
        return [f"[{lev}] {n}" for lev in levels[1:] for n in names]

    def param_vector(self, state: NominalState, data: ModelData) -> np.ndarray:
        """As :meth:`param_names`."""
        core = linear_core(data)
        return np.concatenate([core_param_vector(core, c, data) for c in state.cores])

    def random_effect_names(self, data: ModelData) -> list[str]:
        """``<category>:<effect>`` for each non-reference category (in code order) and each
        random effect of its utility, e.g. ``b:Intercept``, ``c:Intercept``; category
        labels where the data carry them (``data.categories``), codes otherwise."""
        levels, _ = _present(data)
        names = linear_core(data).random_effect_names(data)
        labels = data.categories
        cats = [labels[k] if labels is not None else k for k in levels[1:].tolist()]
        return [f"{c}:{n}" for c in cats for n in names]

    def random_effects(self, state: NominalState, data: ModelData) -> tuple[np.ndarray, list[str]]:
        """Each category's utility random effects, side by side: (J, (K − 1)·q), on the
        latent scale (a cluster's effect on choosing that category over the reference)."""
        core = linear_core(data)
        blocks = [core.random_effects(c, data)[0] for c in state.cores]
        b = np.concatenate(blocks, axis=1) if blocks else np.zeros((data.n_clusters, 0))
        return b, self.random_effect_names(data)


@register(
    "2l.nominal", multilevel=True, kinds=("nominal", "binary"), default_for=[("nominal", 1, True)]
)
class MultilevelMultinomialProbit(_NominalBase):
    """Multilevel multinomial probit for an unordered categorical variable."""


@register(
    "nominal",
    multilevel=False,
    kinds=("nominal", "binary"),
    aliases=("polyreg",),
    default_for=[("nominal", 1, False)],
)
class MultinomialProbit(_NominalBase):
    """Single-level multinomial probit for an unordered categorical variable."""
