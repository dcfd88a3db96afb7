"""Multilevel normal model for a level-1 continuous variable (mice ``2l.pan``/``2l.lmer``).

Model::

    y_ij = x_ij'β + z_ij'b_j + e_ij,   b_j ~ N(0, Ψ),   e_ij ~ N(0, σ²)

Priors: flat on β, ``p(σ²) ∝ 1/σ²``, and for Ψ by default the Huang & Wand (2013)
hierarchical inverse-Wishart with ν = 2: each random-effect SD gets a half-t(2, A_k) prior
and correlations are uniform. The scales are set from the data,
``A_k = sd(y_obs) / sd(z_k)`` (``sd(y_obs)`` for an intercept), so the prior does not depend
on the units of the data (rescaling y or z rescales Ψ's prior with it).
``prior="iw"`` gives the inverse-Wishart(q, diag(A_k²)) that pan and jomo use on
standardised data, kept for comparison (``benchmarks/bench_priors.py``); the options are
passed with ``method={"y": ("2l.norm", {"prior": "iw"})}``.

One Gibbs step, given the current completed data (observed rows of y only):

0. For each correlated block of Ψ: 20 random-walk Metropolis–Hastings proposals on its
   Cholesky factor targeting ``p(Ψ | β, σ², y)`` with b and α integrated out (the marginal
   likelihood costs O(J·q³) from per-cluster statistics, no pass over the rows), then α | Ψ.
   Given b, the Gibbs steps move correlations and small slope variances slowly when
   clusters say little about their slopes; on experiment-3 data the effective sample size
   per iteration rose from 0.21/0.11/0.14 (D0, D1, D01) to 0.93/0.49/0.73.
1. (β, b) jointly given (σ², Ψ): β from its marginal ``N(A⁻¹h, A⁻¹)`` with
   ``A = X'X/σ² − Σ_j C_j'P_j⁻¹C_j``, ``h = X'y/σ² − Σ_j C_j'P_j⁻¹Z_j'y_j/σ²``,
   ``C_j = Z_j'X_j/σ²``, ``P_j = Z_j'Z_j/σ² + Ψ⁻¹`` (Woodbury over clusters); then
   ``b_j ~ N(P_j⁻¹Z_j'(y_j − X_jβ)/σ², P_j⁻¹)``. Clusters with no observed y get
   ``b_j ~ N(0, Ψ)``. The blocked draw removes the β₀/mean(b) ridge along which the plain
   b-then-β Gibbs sampler random-walks when clusters are informative.
2. Parameter expansion (Liu & Wu 1999; Gelman 2006): the Huang–Wand prior is exactly
   ``Ψ = diag(α) Ψ_ξ diag(α)`` with ``Ψ_ξ ~ IW(ν + q − 1, 2ν·I)`` and
   ``α_k ~ N(0, A_k²/2)``, and ``b_j = α∘ξ_j``. Given ξ, α is a q-dimensional linear
   regression of ``y − Xβ`` on ``Z∘ξ_g``; drawing it rescales all random effects at once,
   which frees the sampler from the trap near a zero variance (lag-1 autocorrelation of a
   small slope variance fell from 0.91 to 0.65 on experiment-3 data; with step 0 to 0.3).
3. ``σ² = SSR / χ²(n_obs)``.
4. ``Ψ_ξ | ξ ~ IW(ν + k − 1 + J, 2ν·I + Σ_j ξ_j ξ_j')`` per covariance block of size k
   (one scalar block per column for ``||``), and ``Ψ = diag(α) Ψ_ξ diag(α)``.

Missing values: ``y = x'β + z'b_j + e`` with a fresh ``e``.

The prior was chosen by ``benchmarks/bench_priors.py``: on experiment 3 (20 data sets,
m = 10) the half-t prior's scale and ν barely mattered (pooled D1 1.18–1.21 × the
complete-data value, D0 0.95–0.96 ×) while the inverse-Wishart on the same scale gave D0
0.84 ×; with ICC 0.05 and 15 clusters the pooled D0 was 0.97 × (± 0.08) the complete-data
value — no upward bias.

Against R's pan and jomo (``benchmarks/compare_pan_jomo.py``; experiment 3, 30 data sets,
every completed data set fitted by the same REML fitter; mean paired difference of the
absolute errors against the complete-data estimates, ± its SE): at m = 25 pan and jomo are
closer by 0.021–0.024 (± 0.008) for D0 and 0.043–0.052 (± 0.02) for D1; at m = 100 by
0.015–0.023 (± 0.008) and 0.056 (± 0.012). The mean signed errors are alike (D1: +0.08 to
+0.10 for all three at m = 25 and 100): the difference is in the spread, not in a bias.
Not the cause: Monte Carlo error (the gap stays at m = 100; the Monte Carlo SD of the pooled
D1 at m = 25 is 0.045 for mlimpute and 0.036–0.052 for pan/jomo), mixing (100 instead
of 20 iterations, or plain Gibbs without step 0: D1 gap 0.05–0.07), the half-t scale (A/2,
A/4: 0.045–0.059). The cause is the prior: theirs is an inverse-Wishart with q degrees of
freedom and an identity scale *in the data's units*, a prior that avoids zero and
penalises large variances (``p(D) ∝ D^(−3/2) exp(−1/(2D))`` per variance), here centred near
the true D0 = 1, D1 = 0.5, so it shrinks the weakly identified D1 towards the truth. Its
price shows when the units change (grade × 3: their D1 bias −0.04; grade / 3: +0.30, +54 %)
and at small intraclass correlations (``--design small``: 30 clusters of 5, ICC 0.03, 30 %
of y missing; pooled D0 minus the complete-data value +0.060 ± 0.009 for pan, +0.057 for
jomo, +0.017 ± 0.010 for mlimpute, whose absolute errors are 0.022–0.025 ± 0.006 smaller).
An inverse-Wishart on the data's scale, ``prior="iw", prior_scale=0.2``, closes the D1 gap
(+0.001 ± 0.009 at m = 100) and does well at ICC 0.03 (+0.012), but its scale is tuned to
these data, its mean bias of D0 is −0.066 (−7.7 %, against −0.009) and of D1 +0.12 (against
+0.10), and it has no parameter expansion; it stays an option and the default stays.

Cost per step: O(n_obs·(p² + p·q + q²) + J·q²·p + p³): segment sums (``reduceat`` over
rows sorted by cluster) and a Cholesky written out over q, vectorised over clusters.

Where the pieces live: the model and its state here; the per-cluster statistics and the
blocked (β, b) draw in :mod:`mlimpute.models.ml_norm_stats`; the kernels that move Ψ
(collapsed Metropolis–Hastings, Huang–Wand prior) in :mod:`mlimpute.models.ml_norm_psi`;
the starting values in :mod:`mlimpute.models.ml_norm_start`; the block-of-chains path in
:mod:`mlimpute.models.ml_norm_batched`; the step of the paths the kernels cover (the
default prior, one residual variance, a random part the imputations do not change), the
same step with every sum in one fixed order, compiled or in numpy with the same numbers,
in :mod:`mlimpute.models.ml_norm_compiled`.

References
----------
Gelman, A. (2006). Prior distributions for variance parameters in hierarchical models.
*Bayesian Analysis* 1(3), 515–534.
Liu, J. S. & Wu, Y. N. (1999). Parameter expansion for data augmentation. *JASA* 94,
1264–1274.
Huang, A. & Wand, M. P. (2013). Simple marginally noninformative prior distributions for
covariance matrices. *Bayesian Analysis* 8(2), 439–452.
Schafer, J. L. & Yucel, R. M. (2002). Computational strategies for multivariate linear
mixed-effects models with missing values. *JCGS* 11(2), 437–457.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from mlimpute.errors import SpecificationError
from mlimpute.models._ml_norm_static import psi_entries, static
from mlimpute.models.arguments import positive, whole
from mlimpute.models.base import ModelData
from mlimpute.models.linalg import (
    draw_chol,
    draw_precision_batched,
    inv_wishart,
    solve_spd,
)
from mlimpute.models.ml_norm_psi import (  # noqa: F401 (re-exported: older import paths)
    _log_hw_prior,
    _log_hw_prior_2x2,
    _log_marginal,
    _mh_2x2,
    _psi_collapsed_mh,
    mh_2x2_stacked,
    psi_xi_posterior,
)
from mlimpute.models.ml_norm_start import _moments, _scatter, _start_beta  # noqa: F401
from mlimpute.models.ml_norm_stats import (
    _b_mean,
    _beta_marginal,
    _cluster_precision,
    _cluster_stats,
    _ClusterStats,
    _residual_of_beta,
    _weighted_cluster_stats,
    _Weights,
)
from mlimpute.models.registry import register
from mlimpute.models.segments import Segments

__all__ = ["MultilevelNorm", "MultilevelNormState"]

NU = 2.0  # Huang–Wand ν: half-t(2) on each SD, uniform marginal on correlations


@dataclass(frozen=True)
class MultilevelNormState:
    """A state of :class:`MultilevelNorm` (and of the heteroscedastic model)."""

    beta: np.ndarray  # (p,)
    b: np.ndarray  # (J, q)
    sigma2: float | np.ndarray  # a scalar, or (J,) for the heteroscedastic model
    psi: np.ndarray  # (q, q)
    alpha: np.ndarray  # (q,) working scales of the parameter expansion
    scale: np.ndarray  # (q,) prior scales A_k
    beta_mean: np.ndarray | None = None  # E[β | σ², Ψ, y] (for predictive mean matching)
    b_mean: np.ndarray | None = None  # E[b | β̄, σ², Ψ, y]
    sigma_hyper: np.ndarray | None = None  # heteroscedastic model: (s², ν)
    sigma2_floor: float = 0.0  # 1e-10·var(y_obs): an exact fit cannot drive σ² to 0


@register(
    "2l.norm",
    multilevel=True,
    kinds=("numeric",),
    aliases=("2l.pan", "2l.lmer"),
    default_for=[("numeric", 1, True)],
)
class MultilevelNorm:
    """Multilevel normal model with random intercepts and slopes (homoscedastic)."""

    def __init__(
        self,
        prior: Literal["half-t", "iw"] = "half-t",
        prior_scale: float = 1.0,
        nu: float = NU,
        mh_steps: int = 20,
        mh_step: float = 0.6,
    ) -> None:
        if prior not in ("half-t", "iw"):
            raise ValueError(f"prior must be 'half-t' or 'iw', got {prior!r}")
        self.prior = prior
        self.prior_scale = positive("prior_scale", prior_scale)
        self.nu = positive("nu", nu)
        self.mh_steps = whole("mh_steps", mh_steps, minimum=0)  # 0: no collapsed move
        self.mh_step = positive("mh_step", mh_step)

    # -- set-up ---------------------------------------------------------------------------
    def check(self, data: ModelData) -> None:
        """A random part with at least one column (the sampler's plan checks it too)."""
        if data.Z is None or data.Z.obs.shape[1] == 0:
            raise SpecificationError(
                f"{data.variable!r}: the multilevel model needs a random part with at least "
                "one column; use (1 | ...) or a single-level method"
            )

    def init(self, rng: np.random.Generator, data: ModelData) -> MultilevelNormState:
        """:meth:`start` on the observed response."""
        kernel = _kernel(self, data)
        if kernel is not None:
            state = self.start_state(data, data.y_obs)
            return kernel.step_chains(self, [rng], [state], [data], MultilevelNormState)[0]
        return self.start(rng, data, data.y_obs)

    def start(
        self,
        rng: np.random.Generator,
        data: ModelData,
        y: np.ndarray,
        sigma2: float | None = None,
        beta_prec: np.ndarray | None = None,
        weights: np.ndarray | None = None,
    ) -> MultilevelNormState:
        """Start near the data: OLS for β, method-of-moments Ψ and σ², then one step.

        A start far from the posterior costs burn-in that the carried one-step-per-visit
        chain pays at every run; moments put Ψ and σ² in the right region at O(n) cost.
        With ``sigma2`` given (latent-variable models: 1) the residual variance is fixed and
        the prior scales refer to that unit scale. With ``weights`` (see :meth:`gibbs`) the
        start of β is weighted least squares. On the split path (many rows per cluster)
        the start's normal equations and its step's cluster statistics are one
        computation.
        """
        stats = None
        if weights is None and static(data).split is not None:
            stats = self.cluster_stats(data, y)
        state = self.start_state(data, y, sigma2, weights, stats)
        return self.gibbs(rng, state, data, y, sigma2, beta_prec, weights, stats)

    def start_state(
        self,
        data: ModelData,
        y: np.ndarray,
        sigma2: float | None = None,
        weights: np.ndarray | None = None,
        stats: _ClusterStats | None = None,
    ) -> MultilevelNormState:
        """:meth:`start`'s state before its Gibbs step (no random numbers); ``stats``:
        :meth:`cluster_stats` of ``(data, y)`` when the caller has them."""
        X, Z = data.X.obs, data.Z.obs
        q, J = Z.shape[1], data.n_clusters
        if sigma2 is not None:
            sd_y = float(np.sqrt(sigma2))
        else:
            sd_y = _sd_response(data, y) if y.size > 1 else 1.0
            sd_y = sd_y if sd_y > 0 else 1.0
        if static(data).ones:  # a column of ones: SD 0, so each scale is sd(y)
            scale = np.full(q, sd_y)
            Z = np.broadcast_to(1.0, Z.shape)  # the same ones as one value, for the moments
        else:
            sd_z = np.std(Z, axis=0)
            tiny = 1e-12 * (np.abs(Z).max(axis=0) if Z.shape[0] else np.ones(q))
            scale = np.where(sd_z > tiny, sd_y / np.where(sd_z > 0, sd_z, 1.0), sd_y)
        scale = scale * self.prior_scale
        if weights is None:
            beta = _start_beta(X, y, data, stats)
        else:
            sw = np.sqrt(weights)
            beta = np.linalg.lstsq(X * sw[:, None], y * sw, rcond=None)[0]
        fit = X @ beta
        psi, s2 = _moments(np.subtract(y, fit, out=fit), Z, data.seg_obs, scale)  # y - Xβ
        alpha = np.sqrt(np.diag(psi))
        floor = 1e-10 * sd_y**2
        return MultilevelNormState(
            beta,
            np.zeros((J, q)),
            max(s2, floor) if sigma2 is None else sigma2,
            psi,
            alpha,
            scale,
            sigma2_floor=floor,
        )

    # -- one Gibbs step -------------------------------------------------------------------
    def step(
        self, rng: np.random.Generator, state: MultilevelNormState, data: ModelData
    ) -> MultilevelNormState:
        """:meth:`gibbs` on the observed response; where the data take a path the kernels
        cover, their step instead (:mod:`mlimpute.models.ml_norm_compiled`: compiled or
        their numpy twins, the same numbers bit for bit, which agree with :meth:`gibbs` to
        round-off)."""
        kernel = _kernel(self, data)
        if kernel is not None:
            return kernel.step_chains(self, [rng], [state], [data], MultilevelNormState)[0]
        return self.gibbs(rng, state, data, data.y_obs)

    @staticmethod
    def cluster_stats(data: ModelData, y: np.ndarray) -> _ClusterStats:
        """The per-cluster sums :meth:`gibbs` computes first (``Z'Z``, ``Z'X``, ``Z'y``; one
        residual variance, no row weights), for a caller that needs them before the step."""
        st = static(data)
        known = getattr(data.X, "cluster_values", None)
        return _cluster_stats(data.X.obs, data.Z.obs, y, data.seg_obs, st, st.split, known)

    def gibbs(
        self,
        rng: np.random.Generator,
        state: MultilevelNormState,
        data: ModelData,
        y: np.ndarray,
        sigma2: float | None = None,
        beta_prec: np.ndarray | None = None,
        weights: np.ndarray | None = None,
        stats: _ClusterStats | None = None,
    ) -> MultilevelNormState:
        """One Gibbs step given the response ``y`` (observed rows); σ² fixed if given.

        Steps (0)–(4) of the module docstring. ``beta_prec`` is an optional prior precision
        (p,) for β (prior mean 0); the latent models use it so that separated data cannot
        send a coefficient to infinity. ``weights`` (n_obs,), positive, make row i's
        residual variance ``σ²/w_i``: every sum over rows (X'X, X'y and the per-cluster
        Z'Z, Z'X, Z'y, the residual sum of squares) is then weighted, and the cached and
        split fast paths are skipped. The Pólya–Gamma logit passes its precisions ω with
        σ² = 1. ``stats``: :func:`cluster_stats` of ``(data, y)`` when the caller has them
        (no weights, one residual variance).
        """
        X, Z, seg = data.X.obs, data.Z.obs, data.seg_obs
        st = static(data)
        w = _Weights.of(state.sigma2, seg)
        if weights is not None:
            w = w.with_rows(weights)
            stats = _weighted_cluster_stats(X, Z, y, seg, w.wr, st.ones)
        elif stats is None or w.het:
            split = None if w.het else st.split
            known = getattr(data.X, "cluster_values", None)
            stats = _cluster_stats(X, Z, y, seg, st, split, known)
        ZtZ_s = stats.ZtZ / w.s2d
        psi, alpha = state.psi, state.alpha
        if self.prior != "iw" and self.mh_steps and st.mh:
            # (0) collapsed MH on Ψ given (β, σ²), b and α integrated out; then α | Ψ
            c = (stats.Zty - stats.ZtX @ state.beta) / w.s2c
            psi, alpha = _psi_collapsed_mh(
                rng, psi, alpha, ZtZ_s, c, state.scale, self.nu, data, self.mh_steps, self.mh_step
            )
        # (1) β marginal of b, then b_j | β
        P, L, Ww = _cluster_precision(ZtZ_s, psi, stats, w, st.q)
        A, h = _beta_marginal(X, y, Ww, stats, w)
        del Ww  # (J, q, p + 1): not held through the rest of the step
        if beta_prec is not None:
            A[np.diag_indices(X.shape[1])] += beta_prec
        mean, LA = solve_spd(A, h)
        beta = draw_chol(rng, LA, mean)
        b = draw_precision_batched(rng, P, (stats.Zty - stats.ZtX @ beta) / w.s2c)
        b_mean = _b_mean(L, stats, mean, w, st.q)
        if self.prior == "iw":
            return self._rest_iw(rng, state, data, y, beta, b, mean, b_mean, sigma2, weights)
        # (2) parameter expansion: b = α∘ξ; α | ξ is a q-dim regression with prior N(0, A²/2)
        alpha = np.where(np.abs(alpha) > 1e-150, alpha, 1e-150)
        xi = b / alpha
        r = _residual_of_beta(X, y, beta, stats, seg)
        Wn = np.take(xi, seg.codes, axis=0)
        if not st.ones:
            Wn = Z * Wn
        prec = w.gram(Wn) + np.diag(2.0 / state.scale**2)  # α_k ~ N(0, A_k²/2)
        m_a, La = solve_spd(prec, w.gram(Wn, r))
        alpha = draw_chol(rng, La, m_a)
        alpha = np.where(np.abs(alpha) > 1e-150, alpha, 1e-150)
        b = xi * alpha
        # (3) σ² | β, b
        hyper = state.sigma_hyper
        if sigma2 is None:
            if Wn.shape[1] == 1:  # Wn @ alpha of one column: its products, in Wn's place
                zb = np.multiply(Wn[:, 0], alpha[0], out=Wn[:, 0])
            else:
                zb = Wn @ alpha
            resid = np.subtract(r, zb, out=r)  # r is not needed after this
            if weights is not None:
                resid = resid * np.sqrt(weights)
            sigma2, hyper = self._draw_sigma2(rng, resid, seg, state)
        # (4) Ψ_ξ | ξ per covariance block, Ψ = diag(α) Ψ_ξ diag(α)
        psi_xi = self._psi_xi(rng, xi, data)
        psi = psi_xi * np.outer(alpha, alpha)
        return MultilevelNormState(
            beta, b, sigma2, psi, alpha, state.scale, mean, b_mean, hyper, state.sigma2_floor
        )

    def _rest_iw(
        self,
        rng: np.random.Generator,
        state: MultilevelNormState,
        data: ModelData,
        y: np.ndarray,
        beta: np.ndarray,
        b: np.ndarray,
        mean: np.ndarray,
        b_mean: np.ndarray,
        sigma2: float | None,
        weights: np.ndarray | None = None,
    ) -> MultilevelNormState:
        """Steps (3) and (4) under the inverse-Wishart comparison prior (no expansion)."""
        X, Z, seg = data.X.obs, data.Z.obs, data.seg_obs
        hyper = state.sigma_hyper
        resid = y - X @ beta - np.einsum("nq,nq->n", Z, np.take(b, seg.codes, axis=0))
        if sigma2 is None:
            if weights is not None:
                resid = resid * np.sqrt(weights)
            sigma2, hyper = self._draw_sigma2(rng, resid, seg, state)
        psi = self._psi_iw(rng, b, state.scale, data)
        return replace(
            state,
            beta=beta,
            b=b,
            sigma2=sigma2,
            psi=psi,
            beta_mean=mean,
            b_mean=b_mean,
            sigma_hyper=hyper,
        )

    def _draw_sigma2(
        self, rng: np.random.Generator, resid: np.ndarray, seg: Segments, state: MultilevelNormState
    ) -> tuple[float | np.ndarray, np.ndarray | None]:
        """σ² | β, b = SSR / χ²(n_obs) (p(σ²) ∝ 1/σ²); no hyper-parameters."""
        s2 = float(resid @ resid) / rng.chisquare(max(resid.size, 1))
        return max(s2, state.sigma2_floor), None

    @staticmethod
    def _blocks(data: ModelData) -> Iterator[list[int]]:
        for cols, correlated in zip(data.random_blocks, data.random_correlated, strict=True):
            yield from ([list(cols)] if correlated else [[c] for c in cols])

    def _psi_xi(self, rng: np.random.Generator, xi: np.ndarray, data: ModelData) -> np.ndarray:
        """Ψ_ξ ~ IW(ν + k − 1 + J, 2ν·I + Σ_j ξ_j ξ_j') for each block of size k."""
        J, q = xi.shape
        out = np.zeros((q, q))
        S = xi.T @ xi
        if q == 1:  # one scalar block: inv_wishart's 1×1 case, written out
            out[0, 0] = (2 * self.nu * 1.0 + S[0, 0]) / rng.chisquare(self.nu + 1 - 1 + J)
            return out
        for g in self._blocks(data):
            out[np.ix_(g, g)] = inv_wishart(rng, *psi_xi_posterior(self.nu, J, S[np.ix_(g, g)]))
        return out

    def _psi_iw(
        self, rng: np.random.Generator, b: np.ndarray, scale: np.ndarray, data: ModelData
    ) -> np.ndarray:
        """Ψ ~ IW(k + J, diag(A²) + Σ_j b_j b_j') per block (the comparison prior)."""
        J, q = b.shape
        out = np.zeros((q, q))
        S = b.T @ b
        for g in self._blocks(data):
            out[np.ix_(g, g)] = inv_wishart(
                rng, len(g) + J, np.diag(scale[g] ** 2) + S[np.ix_(g, g)]
            )
        return out

    # -- imputation -----------------------------------------------------------------------
    def draw_missing(
        self, rng: np.random.Generator, state: MultilevelNormState, data: ModelData
    ) -> np.ndarray:
        """``x'β + z'b_j + e`` with a fresh ``e`` (σ²_j of the row's cluster if per cluster)."""
        if np.ndim(state.sigma2) == 0:
            from mlimpute.models import ml_norm_compiled

            if ml_norm_compiled.compiled_draws(data):
                return ml_norm_compiled.draw_missing_chains([rng], [state], [data])[0]
        s2 = state.sigma2 if np.ndim(state.sigma2) == 0 else np.take(state.sigma2, data.codes_mis)
        out = self.predict(state, data, "mis")  # no random numbers
        e = rng.standard_normal(data.n_mis)
        np.multiply(np.sqrt(s2), e, out=e)
        out += e  # as predict + e, without the temporaries
        return out

    def predict(
        self, state: MultilevelNormState, data: ModelData, rows: str = "mis", mean: bool = False
    ) -> np.ndarray:
        """Linear predictor ``x'β + z'b_j`` on the observed or missing rows.

        ``mean=True`` uses the conditional posterior means (β̄, b̄) instead of the draws.
        """
        beta, b = (state.beta_mean, state.b_mean) if mean else (state.beta, state.b)
        if rows == "obs":
            X, Z, codes = data.X.obs, data.Z.obs, data.seg_obs.codes
        else:
            X, Z, codes = data.X.mis, data.Z.mis, data.codes_mis
        out = X @ beta  # a new array: the sums below in place (as ``X @ beta + ...``)
        if static(data).ones:  # z'b_j = b_j
            out += np.take(b[:, 0], codes)
        else:
            out += np.einsum("nq,nq->n", Z, np.take(b, codes, axis=0))
        return out

    # -- traces and random effects ----------------------------------------------------------
    def param_names(self, data: ModelData) -> list[str]:
        """Fixed effects, the traced entries of Ψ (``var(z|g)``, ``cov(z1,z2|g)``), then
        ``var(Residual)``."""
        return [*data.X.names, *_psi_names(data), "var(Residual)"]

    def param_vector(self, state: MultilevelNormState, data: ModelData) -> np.ndarray:
        """β, the traced entries of Ψ, σ²."""
        st = static(data)
        return np.concatenate((state.beta, state.psi[st.psi_rows, st.psi_cols], [state.sigma2]))

    def random_effect_names(self, data: ModelData) -> list[str]:
        """The random design's column names (``Intercept``, ``gender``...)."""
        return list(data.Z.names) if data.Z is not None else []

    def random_effects(
        self, state: MultilevelNormState, data: ModelData
    ) -> tuple[np.ndarray, list[str]]:
        """The current draw of b (J, q) and the random design's column names."""
        return state.b, self.random_effect_names(data)


def start_states(model: MultilevelNorm, datas: list[ModelData]) -> list[MultilevelNormState]:
    """The states of :meth:`MultilevelNorm.init` before its Gibbs step, one per chain (made
    once for chains that share a fixed design and random part)."""
    cache: dict[tuple[int, int], MultilevelNormState] = {}
    states = []
    for d in datas:
        key = (id(d.X.obs), id(d.Z.obs))
        if key not in cache:
            cache[key] = model.start_state(d, d.y_obs)
        states.append(cache[key])
    return states


def _sd_response(data: ModelData, y: np.ndarray) -> float:
    """``np.std(y)``, kept in ``data.cache`` for the observed response (each chain's
    start asks for it; the response does not change)."""
    if y is not data.y_obs:
        return float(np.std(y))
    hit = data.cache.get("ml_norm_sd_y")
    if hit is None or hit[0] is not y:
        hit = data.cache["ml_norm_sd_y"] = (y, float(np.std(y)))
    return hit[1]


def _kernel(model: MultilevelNorm, data: ModelData) -> Any:
    """The kernels' module where they run ``model``'s step on ``data`` (compiled or their
    numpy twins, whichever the switch selects), else None (``prior="iw"``, another model
    class, or a path they do not cover: :meth:`MultilevelNorm.gibbs` runs)."""
    if type(model) is not MultilevelNorm or model.prior == "iw":
        return None
    from mlimpute.models import ml_norm_compiled

    return ml_norm_compiled if ml_norm_compiled.usable(model, data) else None


def compiled_variables(models: dict, datas: dict) -> list[str]:
    """The variables whose Gibbs step the kernels run (compiled or their numpy twins:
    whatever the switch, the same variables)."""
    return [n for n, m in models.items() if n in datas and _kernel(m, datas[n]) is not None]


def _psi_names(data: ModelData) -> list[str]:
    names, g = data.Z.names, data.group
    return [
        f"var({names[i]}|{g})" if i == j else f"cov({names[j]},{names[i]}|{g})"
        for i, j in psi_entries(data)
    ]
