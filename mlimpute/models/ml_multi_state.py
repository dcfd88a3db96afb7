"""The state of the multilevel normal model with several random-effect terms.

:class:`MultiTermState` holds the primary term's state of the two-level model (β, σ²,
b_0, Ψ_0) and one :class:`TermState` per further term
(:class:`~mlimpute.models.ml_multi.MultiTermNorm`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlimpute.models.ml_norm import MultilevelNormState

__all__ = ["MultiTermState", "TermState"]


@dataclass(frozen=True)
class TermState:
    """One further random-effect term's part of a :class:`MultiTermState`."""

    b: np.ndarray  # (J_k, q_k)
    psi: np.ndarray  # (q_k, q_k)
    alpha: np.ndarray  # (q_k,) working scales of the parameter expansion
    scale: np.ndarray  # (q_k,) prior scales A
    b_mean: np.ndarray | None = None  # E[b_k | β, σ², Ψ_k, rest] (predictive mean matching)


@dataclass(frozen=True)
class MultiTermState:
    """A state of :class:`MultiTermNorm`: the primary term's state of the two-level model
    (it holds β and σ²) and one :class:`TermState` per further term."""

    primary: MultilevelNormState
    extra: tuple[TermState, ...]

    @property
    def beta(self) -> np.ndarray:
        return self.primary.beta

    @property
    def sigma2(self) -> float | np.ndarray:
        return self.primary.sigma2
