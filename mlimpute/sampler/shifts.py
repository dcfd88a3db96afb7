"""The shifts of one model-based chain (``delta=``, ``delta_cluster_sd=``).

The chain carries the shifted values ``x = x* + δ`` of a shifted predictor; its own model
sees the unshifted ``x*`` (:mod:`mlimpute.compatible.shift`). Built by
:func:`mlimpute.sampler.engine.run_chain` and used by
:func:`mlimpute.sampler.compatible.run_compatible_chain`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from mlimpute.sampler.engine import Plan

__all__ = ["ModelShifts"]


class ModelShifts:
    """The shifts of one model-based chain: per shifted variable, the shift of each missing
    row (a level-1 variable, ``δ + u_j`` of the row's cluster) or of each cluster (a
    level-2 variable, length J).

    Parameters
    ----------
    plan : Plan
        The chain's plan.
    latent : dict
        :func:`~mlimpute.sampler.engine.latent_shifts` of the plan: the variables shifted
        on their linear predictor (a binary outcome, categorical columns imputed by
        chained defaults).
    cluster : dict
        :func:`~mlimpute.sampler.engine.cluster_shifts` of the chain: the per-cluster
        shifts, from a generator of their own derived from the chain's seed (as on the
        chained path), the same at every iteration and when the chain is continued; the
        chain's other draws are those of a run without.
    shift_intercept : callable
        :func:`~mlimpute.sampler.engine.shift_intercept`.

    Examples
    --------
    >>> ModelShifts.__name__
    'ModelShifts'
    """

    def __init__(
        self,
        plan: Plan,
        latent: dict[str, tuple],
        cluster: dict[str, np.ndarray],
        shift_intercept: Callable,
    ) -> None:
        spec = plan.spec
        delta = dict(spec.delta)
        u = cluster
        names = [n for n in plan.names if n in delta or n in dict(spec.delta_cluster_sd)]
        #: shifts on the linear predictor: (intercept index, δ, random-intercept index)
        self.latent = latent
        self._shift_intercept = shift_intercept
        #: the per-cluster shifts u_j of each variable of ``delta_cluster_sd``
        self.cluster = u
        codes = plan.layout.codes
        self.level2 = {v.name for v in spec.variables if v.level == 2}
        self.rows: dict[str, np.ndarray] = {}  # missing rows (sorted order)
        self.shift: dict[str, np.ndarray] = {}
        J = plan.layout.segments.n_clusters
        #: a binary predictor's shift of the linear predictor on each missing row
        self.offset: dict[str, np.ndarray] = {}
        for name in names:
            d = float(delta.get(name, 0.0))
            if name in self.latent:
                if name not in self.level2:
                    rows = plan.missing_rows(name)
                    off = np.full(rows.size, d)
                    if name in u:
                        off = off + u[name][codes[rows]]
                    self.offset[name] = (rows, off)
                continue
            if name in self.level2:
                s = np.full(J, d)
                if name in u:
                    s = s + u[name]
            else:
                rows = plan.missing_rows(name)
                self.rows[name] = rows
                s = np.full(rows.size, d)
                if name in u:
                    s = s + u[name][codes[rows]]
            self.shift[name] = s

    def draw_missing(self, rng, name: str, model, state, d, mis_idx: np.ndarray):
        """``model.draw_missing`` for column ``name`` (the outcome, or a column imputed by
        chained defaults), shifted: on the linear predictor for a latent model, else added
        to the draws (``mis_idx``: the missing rows, or clusters of a level-2 column)."""
        if name in self.latent:
            index, delta, zi = self.latent[name]
            u = self.cluster.get(name)
            state = self._shift_intercept(state, index, delta, zi, u)
            return model.draw_missing(rng, state, d)
        draw = model.draw_missing(rng, state, d)
        if name not in self.shift:
            return draw
        if name in self.level2:
            return draw + self.shift[name][mis_idx]
        return draw + self.shift[name]

    def __contains__(self, name: str) -> bool:
        return name in self.shift

    def __bool__(self) -> bool:
        return bool(self.shift)

    def probit_step(self, rng, name: str, state, d):
        """One step of a binary predictor's probit model whose missing rows have their
        linear predictor shifted (the latent scale): the latent ``z ~ N(η + s, 1)`` of
        those rows is truncated to the side of their (shifted) category and the model is
        fitted to ``z* = z − s`` (the unshifted latent values), the observed rows as in
        :meth:`~mlimpute.models.binary.MultilevelProbit.step`."""
        from mlimpute.models._latent import linear_core, slope_precision, truncnorm_sign
        from mlimpute.models.binary import ProbitState

        rows, off = self.offset[name]
        core = linear_core(d)
        eta = core.predict(state.core, d, "obs")  # every row is observed: the completed x
        shift = np.zeros_like(eta)
        shift[rows] = off
        latent = truncnorm_sign(rng, eta + shift, d.y_obs > 0.5) - shift
        new = core.gibbs(rng, state.core, d, latent, sigma2=1.0, beta_prec=slope_precision(d))
        return ProbitState(new, latent)

    def shift_start(self, names, values, mis_clusters) -> None:
        """A new chain's start values of the missing values are x*: the chain carries
        x = x* + δ (no random numbers; ``names`` are the predictors of the factorisation)."""
        for name in names:
            if name not in self.shift:
                continue
            if name in self.level2:
                s = np.where(mis_clusters[name], self.shift[name], 0.0)
                values[name] = values[name] + s[values.layout.codes]
            else:
                x = values[name].copy()
                x[self.rows[name]] += self.shift[name]
                values[name] = x
            values.touch(name)

    def unshifted(self, name: str, values, first: np.ndarray, missing_clusters=None):
        """x's column with its missing values unshifted (x*): a new array for a shifted
        variable (all rows; a level-2 one repeated over the rows of each cluster), the
        column itself otherwise."""
        v = values[name]
        if name not in self.shift:
            return v
        out = v.copy()
        if name in self.level2:
            s = np.where(missing_clusters, self.shift[name], 0.0)
            out = out - s[values.layout.codes]
        else:
            out[self.rows[name]] -= self.shift[name]
        return out

    def responses(self, names, values, first, mis_clusters) -> dict[str, np.ndarray]:
        """``{p: p*}`` for the shifted variables among ``names`` (the responses of the
        models in which another predictor is a predictor)."""
        return {
            p: self.unshifted(p, values, first, mis_clusters.get(p))
            for p in names
            if p in self.shift
        }
