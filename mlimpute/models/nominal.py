"""Unordered categories: (multilevel) multinomial probit with correlated cluster effects.

Model. For K observed categories (reference r = the first), K − 1 latent utilities
``w_jk = x'β_k + z'b_jk + ε_k``, ``ε ~ N(0, I)``, and ``y = argmax(0, w_1..)`` (0 standing
for the reference). For ``2l.nominal`` a cluster's random effects of all utilities are
stacked, ``b_j = (b_j1, …, b_j,K−1)`` ((K − 1)·q values), and drawn jointly,
``b_j ~ N(0, Ψ)`` with a full (K − 1)q × (K − 1)q covariance Ψ (as jomo does for a
categorical variable): a cluster that pushes its rows towards one category and away from
two others at once is a correlation of −1… +1 between the categories' effects, which the
sampler estimates. Where the formula makes random effects uncorrelated (``||``, separate
terms), each such block is kept apart within a category and correlated across categories
(an intercept with the intercepts, a slope with the same slope).

Why this model: it is the multinomial probit of Albert & Chib (1993) with the latent
errors' covariance fixed at the identity. Fixing it removes the scale and rotation
non-identifiability of the full multinomial probit (which jomo handles with a constrained
covariance draw) and keeps every step conjugate and vectorised; what it gives up is
correlation between the utilities' row-level errors, which matters little for imputation
(category probabilities given x and the cluster are still flexible). The dependence
between categories within a cluster is carried by Ψ. Random effects independent across
categories would not carry it: with one cluster effect on a latent scale cut into three
categories they lost an eighth of the between-cluster variance of the first category's
indicator and inflated the middle one's. A multilevel PMM on a single
latent score would not respect an unordered variable; a multinomial logit would need
Pólya-Gamma augmentation per category for the same structure.

One Gibbs step of ``2l.nominal`` (one grouping factor):

1. For each k in turn (a loop over categories, vectorised over rows), ``w_k`` from its
   normal truncated by the observed category: above ``max(0, w_{−k})`` where ``y = k``,
   below ``w_y`` where ``y`` is another non-reference category, below 0 where ``y = r``.
2. (β, b) jointly given (W, Ψ): the K − 1 equations share only b, so with
   ``P_j = Ψ⁻¹ + I_{K−1} ⊗ Z_j'Z_j`` the stacked ``β = (β_1, …, β_{K−1})`` is drawn from its
   marginal with b integrated out (Woodbury over clusters, as in
   :class:`~mlimpute.models.ml_norm.MultilevelNorm`; precision
   ``I ⊗ X'X + diag(ridge) − Σ_j C_j'P_j⁻¹C_j``, ``C_j = I ⊗ Z_j'X_j``, plus the
   :func:`~mlimpute.models._latent.slope_precision` ridge), then
   ``b_j | β ~ N(P_j⁻¹ vec(Z_j'(W_j − X_jβ_k)), P_j⁻¹)`` for all clusters at once. The
   blocked draw keeps the intercepts from random-walking along the β₀/mean(b) ridge (the
   plain b-then-β Gibbs sampler does when clusters are informative), for every category at
   once, which a per-category blocked draw conditional on the other categories' effects
   would not (the correlation in Ψ would then couple the categories' ridges).
3. Parameter expansion as in :class:`~mlimpute.models.ml_norm.MultilevelNorm`:
   ``Ψ = diag(α) Ψ_ξ diag(α)``, ``b_j = α∘ξ_j``; given ξ and β the scales α of one
   category's effects are a q-dimensional regression of ``w_k − Xβ_k`` on ``z∘ξ_{g,k}``
   (prior ``α ~ N(0, A²/2)``; computed from the cluster sums, no pass over the rows).
4. ``Ψ_ξ | ξ ~ IW(ν + Q − 1 + J, 2ν·I + Σ_j ξ_jξ_j')`` per covariance block of size Q.
   With steps 3–4 the prior of Ψ is Huang & Wand's (2013) with ν = 2: a half-t(2, A) on
   each SD (``A = 1`` for an intercept on the latent scale, ``1/sd(z)`` for a slope) and
   uniform marginal correlations, the prior of ``2l.norm`` and of the other latent models.
5. A scale move (marginal data augmentation; Liu & Sabatti 2000, Imai & van Dyk 2005):
   ``(W, β, α) → c·(W, β, α)`` with ξ and Ψ_ξ kept (so ``b → cb``, ``Ψ → c²Ψ``); the
   truncation by y is unchanged for c > 0, and with the Jacobian ``c^d`` (d = the number
   of utilities, coefficients and scales) and the Haar measure dc/c,
   ``c² ~ Gamma(d/2, rate T/2)``, T the sum of squares of the residuals ``W − Xβ − Zb``,
   of the coefficients weighted by their prior precision and of ``α·√2/A``
   (:func:`scale_move`). Without it the latent scale, and with it Ψ, grows only through
   the utilities' draws, by about a quarter of the remaining gap per step.

Start of ``2l.nominal`` with one grouping factor (no random numbers, then one step): the
utilities of a row at +½ for its own category, −½ where it is the reference, 0 for the
other categories (a valid point of the truncation; coding the others −½ pushed the
clusters' mean utilities towards a negative correlation); each category's core from the
moments of these utilities; with a random intercept, the intercepts' block of Ψ from the
clusters' shares, ``z_jk = Φ⁻¹((n_jk + ½)/(n_jk + n_jr + 1))`` (category k against the
reference), their covariance over clusters less the mean binomial noise, floored to
positive definite, and the intercepts b from the centred ``z_j`` shrunk accordingly. The
moments of the ±½ utilities alone give about 0.05× the stationary Ψ, which takes 40–50
steps to reach; from this start (with the scale move) 40 clusters of 15 rows are there
by about 5–15 steps.
The single-level model and several grouping factors start from utilities at ±½.

Missing values: the argmax of fresh utilities. Cost per step: K − 1 passes over the rows
for the utilities (O(n_obs·K²)), the cluster sums O(n_obs·q·(p + q + K)), and per cluster a
Cholesky factorisation and a triangular solve of size Q = (K − 1)q, O(J·Q²·(Q + K·p)),
plus one (K − 1)p system for β.

The single-level ``nominal`` and ``2l.nominal`` with several grouping factors (whose core
is :class:`~mlimpute.models.ml_multi.MultiTermNorm`) keep one normal-model Gibbs step per
utility with σ² = 1 (independent random effects per category for the latter).
"""

from __future__ import annotations

import numpy as np

from mlimpute.models._latent import (
    core_param_names,
    core_param_vector,
    linear_core,
    slope_precision,
    truncnorm,
)
from mlimpute.models.base import ModelBase, ModelData
from mlimpute.models.ml_norm import MultilevelNorm
from mlimpute.models.nominal_joint import (
    NominalState,
    _block_diag,
    _cross_entries,
    _share_start,
    blocked_draw,
    joint_blocks,
    joint_gibbs,
    scale_move,
)
from mlimpute.models.registry import register

__all__ = [
    "MultinomialProbit",
    "MultilevelMultinomialProbit",
    "NominalState",
    "blocked_draw",
    "joint_blocks",
    "joint_gibbs",
    "scale_move",
]


def _present(data: ModelData) -> tuple[np.ndarray, np.ndarray]:
    """Observed categories (sorted codes) and each observed row's rank among them."""
    levels, rank = np.unique(data.y_obs.astype(np.intp), return_inverse=True)
    return levels, rank


def _joint(data: ModelData, n_utilities: int) -> bool:
    """Whether the categories' random effects are drawn jointly: one grouping factor (the
    core is :class:`MultilevelNorm`) and at least one non-reference category."""
    return n_utilities > 0 and type(linear_core(data)) is MultilevelNorm


def _draw_utility(
    rng: np.random.Generator, W: np.ndarray, k: int, eta: np.ndarray, rank: np.ndarray
) -> None:
    """Draw ``W[:, k]`` in place from ``N(eta, 1)`` truncated by the observed category."""
    rows = np.arange(W.shape[0])
    others = np.delete(W, k, axis=1)
    best_other = np.maximum(others.max(axis=1, initial=-np.inf), 0.0)
    chosen = np.where(rank > 0, W[rows, np.maximum(rank - 1, 0)], 0.0)
    is_k = rank == k + 1
    lower = np.where(is_k, best_other, -np.inf)
    upper = np.where(is_k, np.inf, chosen)
    W[:, k] = truncnorm(rng, eta, lower, upper)


class _NominalBase(ModelBase):
    def init(self, rng: np.random.Generator, data: ModelData) -> NominalState:
        """Utilities ±0.5 by the observed category (0 for another category's row and
        the start of Ψ from the clusters' shares, :func:`_share_start`, where the effects
        are joint), each core's start, then one step."""
        levels, rank = _present(data)
        K = len(levels)
        W = np.where(rank[:, None] == np.arange(1, K)[None, :], 0.5, -0.5)
        core = linear_core(data)
        if _joint(data, K - 1):  # moment starts per category (no random numbers)
            W = np.where(rank[:, None] > 0, W + 0.5, W)  # another category's row: 0
            cores = tuple(core.start_state(data, W[:, k], sigma2=1.0) for k in range(K - 1))
            cores, psi = _share_start(data, rank, cores)
            return self.step(rng, NominalState(cores, W, psi), data)
        cores = tuple(
            core.start(rng, data, W[:, k], sigma2=1.0, beta_prec=slope_precision(data))
            for k in range(K - 1)
        )
        return self.step(rng, NominalState(cores, W), data)

    def step(self, rng: np.random.Generator, state: NominalState, data: ModelData) -> NominalState:
        """Each category's utilities, then the joint draw of the coefficients, random
        effects and their covariance (:func:`joint_gibbs`); single-level and with several
        grouping factors, each category's utilities then its core's Gibbs step."""
        core = linear_core(data)
        _, rank = _present(data)
        W = state.latent.copy()
        cores = list(state.cores)
        K1 = W.shape[1]
        if _joint(data, K1):
            for k in range(K1):  # loop over categories, not rows
                _draw_utility(rng, W, k, core.predict(cores[k], data, "obs"), rank)
            return joint_gibbs(rng, state, data, W, slope_precision(data), core.nu)
        for k in range(K1):  # loop over categories, not rows
            _draw_utility(rng, W, k, core.predict(cores[k], data, "obs"), rank)
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
        """The core's names per non-reference category code, ``[code] name``; with joint
        random effects then the covariances between categories' effects,
        ``cov([code] effect,[code'] effect'|group)``."""
        levels, _ = _present(data)
        names = core_param_names(linear_core(data), data)
        out = [f"[{lev}] {n}" for lev in levels[1:] for n in names]
        K1 = len(levels) - 1
        if _joint(data, K1):
            q, z, g = data.Z.obs.shape[1], data.Z.names, data.group
            lev = levels[1:]
            out += [
                f"cov([{lev[i // q]}] {z[i % q]},[{lev[j // q]}] {z[j % q]}|{g})"
                for i, j in _cross_entries(data, K1)
            ]
        return out

    def param_vector(self, state: NominalState, data: ModelData) -> np.ndarray:
        """As :meth:`param_names`."""
        core = linear_core(data)
        parts = [core_param_vector(core, c, data) for c in state.cores]
        K1 = len(state.cores)
        if _joint(data, K1):
            psi = state.psi
            if psi is None:
                psi = _block_diag([c.psi for c in state.cores])
            entries = np.array(_cross_entries(data, K1), dtype=np.intp).reshape(-1, 2)
            parts.append(psi[entries[:, 0], entries[:, 1]])
        return np.concatenate(parts) if parts else np.zeros(0)

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
    """Multilevel multinomial probit for an unordered categorical variable, the categories'
    random effects correlated (one (K − 1)q × (K − 1)q covariance)."""


@register(
    "nominal",
    multilevel=False,
    kinds=("nominal", "binary"),
    aliases=("polyreg",),
    default_for=[("nominal", 1, False)],
)
class MultinomialProbit(_NominalBase):
    """Single-level multinomial probit for an unordered categorical variable."""
