"""The sensitivity shifts of a chain (``delta=``, ``delta_cluster_sd=``).

Which variables' shifts move the linear predictor of their model (:func:`latent_shifts`:
categorical and count models), the model state with its intercept and random intercepts
moved for drawing (:func:`shift_intercept`), and the per-cluster shifts drawn from a
generator of their own (:func:`cluster_shifts`).
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from mlimpute.errors import SpecificationError
from mlimpute.spec.build import LATENT_DELTA_METHODS

if TYPE_CHECKING:  # pragma: no cover
    from mlimpute.sampler.plan import Plan

__all__ = ["latent_shifts", "shift_intercept", "cluster_shifts"]


def latent_shifts(plan: Plan) -> dict[str, tuple[int | None, float, int | None]]:
    """The variables whose shifts move the linear predictor (the latent scale of categorical
    models, the log scale of count models): per variable the position of the intercept in
    the fixed-effect design and the ``delta=`` shift (None and 0.0 without one), and, with
    ``delta_cluster_sd=``, the position of the random intercept in the random design (the
    per-cluster shifts are added to the clusters' random intercepts)."""
    delta = dict(plan.spec.delta)
    cluster_sd = dict(plan.spec.delta_cluster_sd)
    out = {}
    for name in plan.names:
        v = plan.spec.variables_by_name[name]
        if v.method not in LATENT_DELTA_METHODS or (name not in delta and name not in cluster_sd):
            continue
        d = plan.data[name]
        index = zi = None
        if name in delta:
            if "Intercept" not in d.X.names:
                raise SpecificationError(
                    f"delta for {name!r} shifts the linear predictor of its {v.method!r} "
                    f"model through its intercept, and {v.formula.text!r} has none; keep the "
                    "intercept"
                )
            index = d.X.names.index("Intercept")
        if name in cluster_sd:
            if v.level == 2 or d.Z is None or "Intercept" not in d.Z.names:
                raise SpecificationError(
                    f"delta_cluster_sd for {name!r} shifts the random intercepts of its "
                    f"{v.method!r} model, and {v.formula.text!r} has none; give it a random "
                    "intercept, (1 | cluster)"
                )
            zi = d.Z.names.index("Intercept")
        out[name] = (index, float(delta.get(name, 0.0)), zi)
    return out


def shift_intercept(
    state: object,
    index: int | None,
    delta: float,
    zi: int | None = None,
    u: np.ndarray | None = None,
) -> object:
    """``state`` with ``delta`` added to the intercept (position ``index``) of every linear
    core in it, and ``u`` (one shift per cluster) to the random intercepts (column ``zi``);
    a latent model keeps its core in ``core`` or, one per category, ``cores``. Its draws are
    those of the model with the linear predictor moved. Used for drawing only; the chain
    carries the unshifted state."""
    if not is_dataclass(state) or isinstance(state, type):
        return state
    changes = {}
    for f in fields(state):
        value = getattr(state, f.name)
        if f.name == "beta" and index is not None and isinstance(value, np.ndarray):
            beta = value.copy()
            beta[index] += delta
            changes["beta"] = beta
        elif f.name == "b" and u is not None and isinstance(value, np.ndarray):
            b = value.copy()
            b[:, zi] += u
            changes["b"] = b
        elif is_dataclass(value):
            changes[f.name] = shift_intercept(value, index, delta, zi, u)
        elif isinstance(value, tuple) and value and all(is_dataclass(x) for x in value):
            changes[f.name] = tuple(shift_intercept(x, index, delta, zi, u) for x in value)
    return replace(state, **changes) if changes else state


#: the spawn-key entry of the generator of the per-cluster shifts: a child of the chain's
#: seed that ``spawn()`` never reaches, so the chain's own random numbers are untouched
_CLUSTER_SHIFT_KEY = 2**32 - 1


def cluster_shifts(plan: Plan, seed: np.random.SeedSequence) -> dict[str, np.ndarray]:
    """Each variable of ``delta_cluster_sd``'s shift per cluster, N(0, sd²), drawn from a
    generator of its own derived from the chain's seed: the same at every iteration and
    when the chain is continued, and the chain's other draws are those of a run without."""
    if not plan.spec.delta_cluster_sd:
        return {}
    ss = np.random.SeedSequence(
        seed.entropy, spawn_key=(*seed.spawn_key, _CLUSTER_SHIFT_KEY), pool_size=seed.pool_size
    )
    g = np.random.default_rng(ss)
    J = plan.layout.segments.n_clusters
    return {name: sd * g.standard_normal(J) for name, sd in plan.spec.delta_cluster_sd}
