"""Random effects that formulas read through ``ranef(x)``: the current effects of x's model."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mlimpute.spec.formula import ranef_column

if TYPE_CHECKING:
    from mlimpute.sampler.engine import Plan

__all__ = ["ranef_arrays"]


def ranef_arrays(plan: Plan, name: str, states: dict) -> dict[str, np.ndarray]:
    """Current random effects of the models that ``name``'s formula uses via ``ranef()``,
    read through :meth:`~mlimpute.models.base.ConditionalModel.random_effects` (zeros before
    x's model has a state: its variable comes later in the visit order)."""
    out = {}
    J = plan.layout.segments.n_clusters
    for x in plan.spec.variables_by_name[name].formula.ranefs:
        model, d = plan.models[x], plan.data[x]
        if x in states:
            b, znames = model.random_effects(states[x], d)
        else:
            znames = model.random_effect_names(d)
            b = np.zeros((J, len(znames)))
        if len(znames) == 1:
            out[ranef_column(x)] = b[:, 0]
        else:
            out.update({ranef_column(x, z): b[:, k] for k, z in enumerate(znames)})
    return out
