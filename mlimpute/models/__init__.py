"""Conditional models, one module per family, registered by name.

Every model follows one narrow contract (see :class:`ConditionalModel`):

* ``init(data, rng) -> state``: a starting state from the observed rows;
* ``step(rng, state, data) -> state``: one Gibbs step of the parameters given the current
  completed data (observed rows of the response only, as mice does);
* ``draw_missing(rng, state, data) -> ndarray``: imputations for the missing rows;
* ``param_names(data)`` / ``param_vector(state, data)``: what the traces record.

States are small frozen dataclasses; the engine carries them from visit to visit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from mlimpute.errors import SpecificationError

__all__ = ["ConditionalModel", "ModelInfo", "register", "get_model", "available_models"]


class ConditionalModel(Protocol):
    def init(self, data: Any, rng: np.random.Generator) -> Any: ...

    def step(self, rng: np.random.Generator, state: Any, data: Any) -> Any: ...

    def draw_missing(self, rng: np.random.Generator, state: Any, data: Any) -> np.ndarray: ...

    def param_names(self, data: Any) -> list[str]: ...

    def param_vector(self, state: Any, data: Any) -> np.ndarray: ...


@dataclass(frozen=True)
class ModelInfo:
    """Registry entry: how to build a model and what it accepts.

    Attributes
    ----------
    name : str
        The ``method=`` name (mice's names where one exists).
    factory : callable
        ``factory(**options) -> ConditionalModel``.
    multilevel : bool
        Whether the model uses the formula's random part.
    level : int
        1 for row-level variables, 2 for cluster-level ones.
    kinds : tuple of str
        Response kinds it imputes: ``"numeric"``, ``"binary"``, ``"ordinal"``, ``"nominal"``.
    description : str
    """

    name: str
    factory: Callable[..., ConditionalModel]
    multilevel: bool
    level: int
    kinds: tuple[str, ...]
    description: str


_REGISTRY: dict[str, ModelInfo] = {}


def register(name: str, *, multilevel: bool, level: int = 1, kinds: tuple[str, ...] = ("numeric",),
             aliases: tuple[str, ...] = ()):
    """Class decorator adding a conditional model to the registry under ``name``."""

    def deco(cls):
        doc = (cls.__doc__ or "").strip().splitlines()
        info = ModelInfo(name, cls, multilevel, level, tuple(kinds), doc[0] if doc else "")
        for key in (name, *aliases):
            if key in _REGISTRY:
                raise ValueError(f"model name {key!r} registered twice")
            _REGISTRY[key] = info
        cls.info = info
        return cls

    return deco


def get_model(name: str) -> ModelInfo:
    """Look a model up by name; unknown names fail listing the names that exist."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise SpecificationError(
            f"unknown imputation method {name!r}; available: {', '.join(available_models())}"
        ) from None


def available_models() -> list[str]:
    """Names of all registered models (aliases included), sorted."""
    return sorted(_REGISTRY)


# explicit registry: importing a family module registers it
from mlimpute.models import binary as binary  # noqa: E402
from mlimpute.models import level2 as level2  # noqa: E402
from mlimpute.models import ml_norm as ml_norm  # noqa: E402
from mlimpute.models import ml_norm_het as ml_norm_het  # noqa: E402
from mlimpute.models import nominal as nominal  # noqa: E402
from mlimpute.models import norm as norm  # noqa: E402
from mlimpute.models import ordinal as ordinal  # noqa: E402
from mlimpute.models import pmm as pmm  # noqa: E402
