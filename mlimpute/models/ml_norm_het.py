"""Multilevel normal model with cluster-specific residual variances (mice's ``2l.norm``).

``y_ij = x_ij'β + z_ij'b_j + e_ij``, ``e_ij ~ N(0, σ_j²)``: for longitudinal data (measures
in persons) the within-person variance often differs between persons (an open problem in
Jacobusse 2005). Hierarchical prior: ``σ_j² ~ Scaled-Inv-χ²(ν, s²)`` with ``p(s²) ∝ 1/s²`` and
ν uniform on a grid from 1 to 100, so the data decide how much the variances differ
(ν → ∞ is the homoscedastic model). Conditionals replacing the homoscedastic σ² step:

* ``σ_j² | · ~ Scaled-Inv-χ²(ν + n_j, (ν s² + SSR_j) / (ν + n_j))`` (clusters without
  observed rows draw from the prior);
* ``s² | · ~ Gamma(Jν/2, rate = (ν/2) Σ_j 1/σ_j²)``;
* ν | · by griddy Gibbs: exact draw from its conditional on the grid.

Everything else — the joint (β, b) draw, the parameter expansion, the collapsed MH on Ψ —
is :class:`~mlimpute.models.ml_norm.MultilevelNorm`'s with row weights 1/σ²_{j(i)}.
Cost per step: the homoscedastic model's plus O(n + J·G) for G grid points.

References
----------
van Buuren, S. (2011). Multiple imputation of multilevel data. In Hox & Roberts (eds.),
*Handbook of Advanced Multilevel Analysis*, 173–196 (mice's ``2l.norm``).
Gelman, A. et al. (2013). *Bayesian Data Analysis*, 3rd ed., §17.2 (scaled inverse-χ²
variances with an estimated scale).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.special import gammaln

from mlimpute.models.base import ModelData
from mlimpute.models.ml_norm import MultilevelNorm, MultilevelNormState
from mlimpute.models.registry import register
from mlimpute.models.segments import Segments

__all__ = ["HeteroscedasticMultilevelNorm"]

NU_GRID = np.r_[np.arange(1.0, 31.0), 40.0, 50.0, 70.0, 100.0]


@register(
    "2l.norm.het",
    multilevel=True,
    kinds=("numeric",),
    default_for=[("numeric", 1, True, "heteroscedastic")],
)
class HeteroscedasticMultilevelNorm(MultilevelNorm):
    """Multilevel normal model with a residual variance per cluster (mice ``2l.norm``)."""

    def start(
        self,
        rng: np.random.Generator,
        data: ModelData,
        y: np.ndarray,
        sigma2: float | None = None,
        beta_prec: np.ndarray | None = None,
    ) -> MultilevelNormState:
        """The homoscedastic start, then σ_j² = σ² in every cluster and one step."""
        state = super().start(rng, data, y, sigma2, beta_prec)
        if sigma2 is not None:
            return state
        J = data.n_clusters
        s2 = float(state.sigma2) if np.ndim(state.sigma2) == 0 else float(np.mean(state.sigma2))
        state = replace(state, sigma2=np.full(J, s2), sigma_hyper=np.array([s2, 10.0]))
        return self.gibbs(rng, state, data, y)

    def _draw_sigma2(
        self, rng: np.random.Generator, resid: np.ndarray, seg: Segments, state: MultilevelNormState
    ) -> tuple[float | np.ndarray, np.ndarray | None]:
        """σ_j², then the scale s² and the degrees of freedom ν of their prior."""
        if state.sigma_hyper is None:  # the first (homoscedastic) step of start()
            return super()._draw_sigma2(rng, resid, seg, state)
        s2_scale, nu = state.sigma_hyper
        n_j = seg.counts
        ssr = seg.sum(resid * resid)
        df = nu + n_j
        sig = np.maximum((nu * s2_scale + ssr) / rng.chisquare(df), state.sigma2_floor)
        J = sig.size
        inv_sum = float(np.sum(1.0 / sig))
        s2_scale = rng.gamma(J * nu / 2, 2.0 / (nu * inv_sum))
        # griddy Gibbs for ν: log p(ν | σ², s²) up to a constant, vectorised over the grid
        g = NU_GRID[:, None]
        logp = (
            J * (g[:, 0] / 2 * np.log(g[:, 0] * s2_scale / 2) - gammaln(g[:, 0] / 2))
            - ((g / 2 + 1) * np.log(sig)[None, :]).sum(1)
            - g[:, 0] * s2_scale / 2 * inv_sum
        )
        w = np.exp(logp - logp.max())
        nu = float(rng.choice(NU_GRID, p=w / w.sum()))
        return sig, np.array([s2_scale, nu])

    def param_names(self, data: ModelData) -> list[str]:
        """As the homoscedastic model, with the mean σ_j² and the prior's s² and ν."""
        return [*super().param_names(data)[:-1], "var(Residual)", "scale(Residual)", "df(Residual)"]

    def param_vector(self, state: MultilevelNormState, data: ModelData) -> np.ndarray:
        """As :meth:`param_names`."""
        base = super().param_vector(replace(state, sigma2=float(np.mean(state.sigma2))), data)
        return np.r_[base, state.sigma_hyper]
