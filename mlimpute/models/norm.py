"""Single-level Bayesian linear regression (mice's ``norm``).

Model: ``y = Xβ + e``, ``e ~ N(0, σ²)``, flat prior on β and ``p(σ²) ∝ 1/σ²``. Each step
is an exact posterior draw (Rubin 1987, p. 167; van Buuren 2018, alg. 3.1):
``σ² = SSR / χ²(n_obs − p)``, ``β ~ N(β̂, σ²(X'X)⁻¹)``. It ignores the cluster structure,
so on multilevel data it under-estimates the between-cluster variance, as Jacobusse (2005) showed.
Cost per step: O(n_obs·p² + p³).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlimpute.models.base import ModelBase, ModelData
from mlimpute.models.linalg import draw_chol, solve_spd
from mlimpute.models.registry import register

__all__ = ["Norm", "NormState"]


@dataclass(frozen=True)
class NormState:
    """β draw, σ², and the least-squares estimate β̂."""

    beta: np.ndarray
    sigma2: float
    beta_mean: np.ndarray | None = None  # the least-squares estimate β̂


@register("norm", multilevel=False, kinds=("numeric",), default_for=[("numeric", 1, False)])
class Norm(ModelBase):
    """Bayesian linear regression ignoring clusters (mice ``norm``)."""

    def init(self, rng: np.random.Generator, data: ModelData) -> NormState:
        """An exact posterior draw: no start is needed."""
        return self.step(rng, None, data)

    def start(
        self,
        rng: np.random.Generator,
        data: ModelData,
        y: np.ndarray,
        sigma2: float | None = None,
        beta_prec: np.ndarray | None = None,
        weights: np.ndarray | None = None,
    ) -> NormState:
        """:class:`~mlimpute.models.base.LinearCore` start: one exact draw given ``y``."""
        return self.gibbs(rng, None, data, y, sigma2, beta_prec, weights)

    def step(self, rng: np.random.Generator, state: NormState | None, data: ModelData) -> NormState:
        """An exact posterior draw given the observed response (the state is not needed)."""
        return self.gibbs(rng, state, data, data.y_obs)

    def gibbs(
        self,
        rng: np.random.Generator,
        state: NormState | None,
        data: ModelData,
        y: np.ndarray,
        sigma2: float | None = None,
        beta_prec: np.ndarray | None = None,
        weights: np.ndarray | None = None,
    ) -> NormState:
        """An exact posterior draw given ``y``; with ``sigma2`` fixed, β | y, σ² only.

        ``beta_prec`` (with ``sigma2`` fixed) adds a N(0, 1/beta_prec) prior on β.
        ``weights`` (n_obs,), positive, make row i's residual variance ``σ²/w_i``
        (weighted least squares: X'WX, X'Wy and SSR = Σ w_i r_i²); the Pólya–Gamma logit
        passes its precisions ω here with σ² = 1.
        """
        X = data.X.obs
        n, p = X.shape
        Xw = X if weights is None else X * weights[:, None]
        xtx = Xw.T @ X
        xtx[np.diag_indices(p)] *= 1.0 + 1e-10  # guards round-off only; collinear columns
        # were dropped when the design was built
        xty = Xw.T @ y
        if beta_prec is not None and sigma2 is not None:
            xtx = xtx / sigma2 + np.diag(beta_prec)
            xty = xty / sigma2
            beta_hat, L = solve_spd(xtx, xty)
            return NormState(draw_chol(rng, L, beta_hat), sigma2, beta_hat)
        beta_hat, L = solve_spd(xtx, xty)
        if sigma2 is None:
            r = y - X @ beta_hat
            ssr = float(np.sum(r**2)) if weights is None else float(np.sum(weights * r**2))
            # an exact fit (SSR = 0) would give σ² = 0: floored at 1e-10·var(y), scale-free
            sigma2 = max(ssr / rng.chisquare(max(n - p, 1)), 1e-10 * float(np.var(y)))
        beta = draw_chol(rng, L, beta_hat, sigma2)
        return NormState(beta, sigma2, beta_hat)

    def draw_missing(
        self, rng: np.random.Generator, state: NormState, data: ModelData
    ) -> np.ndarray:
        """``x'β + e`` with a fresh ``e ~ N(0, σ²)`` for each missing row."""
        e = np.sqrt(state.sigma2) * rng.standard_normal(data.n_mis)
        return self.predict(state, data, "mis") + e

    def predict(
        self, state: NormState, data: ModelData, rows: str = "mis", mean: bool = False
    ) -> np.ndarray:
        """Linear predictor on the observed or missing rows (β̂ with ``mean=True``)."""
        beta = state.beta_mean if mean else state.beta
        return (data.X.obs if rows == "obs" else data.X.mis) @ beta

    def param_names(self, data: ModelData) -> list[str]:
        """The fixed effects, then ``var(Residual)``."""
        return [*data.X.names, "var(Residual)"]

    def param_vector(self, state: NormState, data: ModelData) -> np.ndarray:
        """β, then σ²."""
        return np.r_[state.beta, state.sigma2]
