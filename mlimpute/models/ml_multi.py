"""Multilevel normal model with several random-effect terms (three-level and crossed data).

Model::

    y = Xβ + Σ_k Z_k b_k + e,   b_k,j ~ N(0, Ψ_k),   e ~ N(0, σ²)

Term 0, the *primary* term, is the innermost grouping factor (pupils' class); the rows of
the model data are sorted by its clusters (``data.Z``, ``data.seg_obs``, ``data.codes_mis``).
The other terms (``data.extra_terms``: the school, or a crossed neighbourhood) carry their
own cluster codes. Priors are those of :class:`~mlimpute.models.ml_norm.MultilevelNorm`
for each term: half-t(2, A) on each random-effect SD with uniform correlations (Huang &
Wand 2013), or ``prior="iw"``; flat β; ``p(σ²) ∝ 1/σ²``.

One Gibbs step, given the current completed data (observed rows of y only):

1. **Primary term.** With the other terms' current effects as an offset, collapsed MH on
   the scalar variances of Ψ_0 (b_0 integrated out), then one step of
   :class:`~mlimpute.models.ml_norm.MultilevelNorm` on ``y − Σ_{k≥1} Z_k b_k``: collapsed
   MH on correlated blocks of Ψ_0, then (β, b_0) jointly (β with b_0 integrated out), the
   parameter expansion of b_0, σ² and Ψ_0.
2. **Each further term k**, vectorised over its clusters with cluster sums by
   ``np.bincount`` on its codes (the other terms' effects are an offset): collapsed MH on
   its correlated blocks and on its scalar variances (b_k integrated out; the two-level
   model moves scalar variances by the expansion alone, which is slow near zero),
   ``b_k | β, σ², Ψ_k, rest``, the parameter expansion (α_k a
   q_k-dimensional regression), Ψ_k. For a term whose clusters contain the primary ones
   (classes in schools) b_k is drawn with the primary effects b_0 integrated out and
   then b_0 | b_k (a joint block, per-class sums by the segment machinery): without it
   the split of a school's effect between the school and its classes moves by a random
   walk when clusters are large. Crossed terms are updated given each other.
3. **Translation move** (generalised Gibbs, Liu & Sabatti 2000): ``β_c + δ`` and
   ``b_k,j,c − δ`` for the columns c in both X and Z_k (the intercept) leave the
   likelihood unchanged; δ is drawn from its exact conditional, normal with precision
   ``J_k E'Ψ_k⁻¹E`` (plus β's prior precision for latent models). The joint (β, b_0) draw
   of step 1 removes this ridge for the primary term only.
4. **The same move for cluster-level columns**: ``β_C + δ`` and ``b_k,j,0 − x_jC'δ`` for
   the columns C of X constant within every cluster of term k (a school-level variable,
   ``cmean(x, school)``, the intercept) against k's random intercept; δ is the
   regression of the school effects on those columns. Without it β_C is drawn given
   school effects that absorbed the effect of the school-level values imputed since the
   last step, and an imputed school-level variable's coefficient stays too small (0.37
   for 0.6 with 10 of 50 schools missing it; lag-1 autocorrelation 0.64 → 0.11).

Mixing (effective draws per step, ``benchmarks/bench_three_level.py``; 30 schools × 4
classes, variances 0.5 / 0.3 / 1): with 10 pupils per class var(school) 0.35 → 0.88 with
the joint block, var(class) 0.42 → 0.58; with 30 pupils var(school) 0.21 → 1.0,
var(class) 0.19 → 0.58; the intercept 0.01–0.04 → 0.76–0.84 with the translation move.
A school variance near zero (0.02): 0.14 → 0.75 with the MH on scalar variances; a
class variance near zero (0.01): 0.15 → 0.52.

Missing values: ``y = x'β + Σ_k z_k'b_k + e`` with a fresh ``e``.

The model's state: :mod:`mlimpute.models.ml_multi_state`; the draws of step 2:
:mod:`mlimpute.models.ml_multi_draws`; the moves of steps 3 and 4:
:mod:`mlimpute.models.ml_multi_moves`.

Cost per step: one two-level step, plus O(n·q_k²) per further term and a few O(n·p)
products; no loop runs over rows or clusters (loops run over the terms and the q columns).

References
----------
Liu, J. S. & Sabatti, C. (2000). Generalised Gibbs sampler and multigrid Monte Carlo for
Bayesian computation. *Biometrika* 87, 353–369.
Gelfand, A. E., Sahu, S. K. & Carlin, B. P. (1995). Efficient parametrisations for normal
linear mixed models. *Biometrika* 82, 479–488.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

import numpy as np

from mlimpute.errors import SpecificationError
from mlimpute.models._ml_norm_static import psi_entries
from mlimpute.models.base import ModelData
from mlimpute.models.ml_multi_draws import TermDraws
from mlimpute.models.ml_multi_moves import TranslationMoves
from mlimpute.models.ml_multi_state import MultiTermState, TermState
from mlimpute.models.ml_multi_terms import effect, extra_terms, gsum, scalar_mh
from mlimpute.models.ml_multi_terms import terms as term_info
from mlimpute.models.ml_norm import NU, MultilevelNorm, MultilevelNormState
from mlimpute.models.ml_norm_het import HeteroscedasticMultilevelNorm
from mlimpute.models.registry import register_multi_term

__all__ = ["MultiTermNorm", "MultiTermHeteroscedasticNorm", "MultiTermState", "TermState"]


class MultiTermNorm(TermDraws, TranslationMoves):
    """Multilevel normal model with several random-effect terms (nested or crossed).

    The same options as :class:`~mlimpute.models.ml_norm.MultilevelNorm`, applied to every
    term. Used for ``2l.norm`` variables whose formula has several grouping factors, e.g.
    ``y ~ x + (1 | school) + (1 | class)``; with one grouping factor ``2l.norm`` runs
    :class:`~mlimpute.models.ml_norm.MultilevelNorm` itself.

    Parameters
    ----------
    prior : {"half-t", "iw"}
        Prior of each term's covariance matrix.
    prior_scale : float
        Multiplies the data-based prior scales of the random-effect SDs.
    nu : float
        Degrees of freedom of the half-t prior.
    mh_steps, mh_step : int, float
        Collapsed Metropolis–Hastings proposals per step on correlated blocks, and their
        step size.

    Examples
    --------
    >>> import numpy as np
    >>> from mlimpute.models.ml_multi import MultiTermNorm
    >>> from mlimpute.models.ml_multi_data import example_three_level
    >>> d = example_three_level(n_schools=6, classes=3, pupils=5, rng=0)
    >>> model, rng = MultiTermNorm(), np.random.default_rng(1)
    >>> state = model.init(rng, d)
    >>> for _ in range(5):
    ...     state = model.step(rng, state, d)
    >>> model.param_names(d)[-3:]
    ['var(Intercept|class)', 'var(Intercept|school)', 'var(Residual)']
    >>> model.draw_missing(rng, state, d).shape == (d.n_mis,)
    True
    """

    multi_term = True
    core_cls: type[MultilevelNorm] = MultilevelNorm
    nested_block = True  # the joint (b_k, b_0) draw for terms containing the primary one
    scalar_mh = True  # collapsed MH on the further terms' scalar variances too

    def __init__(
        self,
        prior: Literal["half-t", "iw"] = "half-t",
        prior_scale: float = 1.0,
        nu: float = NU,
        mh_steps: int = 20,
        mh_step: float = 0.6,
    ) -> None:
        self.core = self.core_cls(prior, prior_scale, nu, mh_steps, mh_step)
        self.prior = self.core.prior
        self.prior_scale = self.core.prior_scale
        self.nu = self.core.nu
        self.mh_steps = self.core.mh_steps
        self.mh_step = self.core.mh_step

    # -- set-up ---------------------------------------------------------------------------
    def check(self, data: ModelData) -> None:
        """Every term needs a random part with at least one column."""
        self.core.check(data)
        for t in extra_terms(data):
            if t.Z is None or t.Z.obs.shape[1] == 0:
                raise SpecificationError(
                    f"{data.variable!r}: the random part for {t.group!r} has no column"
                )

    def init(self, rng: np.random.Generator, data: ModelData) -> MultiTermState:
        """:meth:`start` on the observed response."""
        return self.start(rng, data, data.y_obs)

    def start(
        self,
        rng: np.random.Generator,
        data: ModelData,
        y: np.ndarray,
        sigma2: float | None = None,
        beta_prec: np.ndarray | None = None,
        weights: np.ndarray | None = None,
    ) -> MultiTermState:
        """The two-level start for the primary term; the further terms start at b = 0 with
        a method-of-moments variance from the cluster means of the residuals; one step.

        Arguments as :meth:`MultilevelNorm.start <mlimpute.models.ml_norm.MultilevelNorm.start>`.
        """
        if weights is None:  # (the heteroscedastic core's start takes no weights)
            primary = self.core.start(rng, data, y, sigma2, beta_prec)
        else:
            primary = self.core.start(rng, data, y, sigma2, beta_prec, weights)
        if not extra_terms(data):  # the two-level model's start, draw for draw
            return MultiTermState(primary, ())
        if sigma2 is not None:
            sd_y = float(np.sqrt(sigma2))
        else:
            sd_y = float(np.std(y)) if y.size > 1 else 1.0
            sd_y = sd_y if sd_y > 0 else 1.0
        r = y - data.X.obs @ primary.beta
        s2 = float(np.mean(primary.sigma2))
        extra = []
        for t in extra_terms(data):
            Z = t.Z.obs
            q = Z.shape[1]
            sd_z = np.std(Z, axis=0) if Z.shape[0] else np.zeros(q)
            tiny = 1e-12 * (np.abs(Z).max(axis=0) if Z.shape[0] else np.ones(q))
            scale = np.where(sd_z > tiny, sd_y / np.where(sd_z > 0, sd_z, 1.0), sd_y)
            scale = scale * self.prior_scale
            d = (0.5 * scale) ** 2
            n_j = np.bincount(t.codes_obs, minlength=t.n_clusters)
            ok = n_j > 0
            if ok.sum() >= 3:  # between-cluster variance of the residual means
                m = gsum(t.codes_obs, t.n_clusters, r)[ok] / n_j[ok]
                d = np.full(q, m.var(ddof=1) - s2 * np.mean(1.0 / n_j[ok]))
            psi = np.diag(np.clip(d, (0.05 * scale) ** 2, scale**2))
            extra.append(TermState(np.zeros((t.n_clusters, q)), psi, np.sqrt(np.diag(psi)), scale))
        state = MultiTermState(primary, tuple(extra))
        return self.gibbs(rng, state, data, y, sigma2, beta_prec, weights)

    # -- one Gibbs step -------------------------------------------------------------------
    def step(
        self, rng: np.random.Generator, state: MultiTermState, data: ModelData
    ) -> MultiTermState:
        """:meth:`gibbs` on the observed response."""
        return self.gibbs(rng, state, data, data.y_obs)

    def gibbs(
        self,
        rng: np.random.Generator,
        state: MultiTermState,
        data: ModelData,
        y: np.ndarray,
        sigma2: float | None = None,
        beta_prec: np.ndarray | None = None,
        weights: np.ndarray | None = None,
    ) -> MultiTermState:
        """One Gibbs step (steps 1–3 of the module docstring) given the response ``y``.

        Arguments as :meth:`MultilevelNorm.gibbs <mlimpute.models.ml_norm.MultilevelNorm.gibbs>`
        (σ² fixed if given, ``beta_prec`` a prior precision of β, ``weights`` row weights).
        """
        terms = extra_terms(data)
        info = term_info(data)
        X = data.X.obs
        offs = [
            effect(t.Z.obs, s.b, t.codes_obs, ti.ones)
            for t, s, ti in zip(terms, state.extra, info, strict=True)
        ]
        # (1) the primary term: the two-level step on y minus the further terms' effects
        y0 = y - sum(offs) if offs else y
        prior_state = state.primary
        # the primary term's cluster sums, shared by its MH step and the two-level step
        # (one residual variance, no row weights)
        stats = None
        if weights is None and np.ndim(prior_state.sigma2) == 0:
            stats = self.core.cluster_stats(data, y0)
        if offs and self.scalar_mh and self.core.prior != "iw" and self.core.mh_steps:
            prior_state = self._primary_mh(rng, prior_state, data, y0, weights, stats)
        if stats is None:
            primary = self.core.gibbs(rng, prior_state, data, y0, sigma2, beta_prec, weights)
        else:
            primary = self.core.gibbs(
                rng, prior_state, data, y0, sigma2, beta_prec, weights, stats=stats
            )
        beta, b0 = primary.beta, primary.b
        s2 = primary.sigma2
        if np.ndim(s2) == 0:
            wr = None if weights is None else weights / s2
        else:  # a residual variance per primary cluster: row weights 1/σ²_j(i)
            wr = np.take(1.0 / s2, data.seg_obs.codes)
            wr = wr if weights is None else wr * weights
            s2 = 1.0
        off0 = None  # the primary term's effects, computed when a crossed term needs them
        extra = list(state.extra)
        last = len(terms) - 1
        for k, (t, ti) in enumerate(zip(terms, info, strict=True)):
            # (2) b_k, α_k, Ψ_k given the rest; for a term the primary clusters nest in,
            # (b_k, b_0) jointly with b_0 integrated out of b_k's draw
            r = y - X @ beta
            for i, o in enumerate(offs):
                if i != k:
                    r = r - o
            if ti.parent is not None and self.nested_block:
                ts, b0 = self._nested_step(rng, extra[k], t, ti, r, s2, wr, primary.psi, data)
                off0 = None
            else:
                if off0 is None:
                    off0 = self._primary_effect(data, b0)
                ts = self._term_step(rng, extra[k], t, ti, r - off0, s2, wr)
            # (3) translation move against β
            if ti.beta_cols[0].size:
                ts, beta = self._shift_beta(rng, ts, beta, ti, beta_prec)
            # (4) the same move for the columns of X constant within k's clusters
            ts, beta = self._shift_level_columns(rng, ts, beta, X, t, beta_prec, ti)
            extra[k] = ts
            if k < last:
                offs[k] = effect(t.Z.obs, ts.b, t.codes_obs, ti.ones)
        primary = replace(primary, beta=beta, b=b0)
        return MultiTermState(primary, tuple(extra))

    def _primary_mh(
        self,
        rng: np.random.Generator,
        ps: MultilevelNormState,
        data: ModelData,
        y0: np.ndarray,
        weights: np.ndarray | None,
        stats: object = None,
    ) -> MultilevelNormState:
        """The collapsed MH on the primary term's scalar variances (:func:`_scalar_mh`,
        given β, σ² and the other terms' effects, b_0 integrated out), before the
        two-level step draws (β, b_0) given them: a class variance near zero otherwise
        moves by the expansion alone (0.15 effective draws per step)."""
        from mlimpute.models._ml_norm_static import static

        st, seg, Z = static(data), data.seg_obs, data.Z.obs
        s2 = ps.sigma2
        if stats is not None:  # Z'(y0 − Xβ) from the step's cluster sums: no pass over rows
            ZtZ_s = stats.ZtZ / s2
            c = (stats.Zty - stats.ZtX @ ps.beta) / s2
        elif np.ndim(s2) == 0 and weights is None:
            r = y0 - data.X.obs @ ps.beta
            ZtZ_s = (st.ZtZ if st.ZtZ is not None else seg.sum(Z[:, :, None] * Z[:, None, :])) / s2
            c = (seg.sum(r)[:, None] if st.ones else seg.sum(Z * r[:, None])) / s2
        else:
            r = y0 - data.X.obs @ ps.beta
            wr = 1.0 / s2 if np.ndim(s2) == 0 else np.take(1.0 / s2, seg.codes)
            wr = wr * (1.0 if weights is None else weights) * np.ones(r.size)
            Zw = Z * wr[:, None]
            ZtZ_s = seg.sum(Zw[:, :, None] * Z[:, None, :])
            c = seg.sum(Zw * r[:, None])
        core = self.core
        psi, alpha = scalar_mh(
            rng,
            ps.psi,
            ps.alpha,
            ZtZ_s,
            c,
            ps.scale,
            core.nu,
            data,
            max(1, core.mh_steps // 2),
            core.mh_step,
        )
        return replace(ps, psi=psi, alpha=alpha)

    def _primary_effect(self, data: ModelData, b0: np.ndarray) -> np.ndarray:
        from mlimpute.models._ml_norm_static import static

        return effect(data.Z.obs, b0, data.seg_obs.codes, static(data).ones)

    # -- imputation -----------------------------------------------------------------------
    def draw_missing(
        self, rng: np.random.Generator, state: MultiTermState, data: ModelData
    ) -> np.ndarray:
        """``x'β + Σ_k z_k'b_k + e`` with a fresh ``e`` (σ²_j of the row's primary cluster
        if per cluster)."""
        s2 = state.sigma2
        s2 = s2 if np.ndim(s2) == 0 else np.take(s2, data.codes_mis)
        e = np.sqrt(s2) * rng.standard_normal(data.n_mis)
        return self.predict(state, data, "mis") + e

    def predict(
        self, state: MultiTermState, data: ModelData, rows: str = "mis", mean: bool = False
    ) -> np.ndarray:
        """Linear predictor ``x'β + Σ_k z_k'b_k`` on the observed or missing rows.

        ``mean=True`` uses the conditional means of the last step (β̄ and b̄_0 of the
        primary term's block, b̄_k given the drawn β for the further terms).
        """
        out = self.core.predict(state.primary, data, rows, mean)
        for t, s, ti in zip(extra_terms(data), state.extra, term_info(data), strict=True):
            b = s.b_mean if mean and s.b_mean is not None else s.b
            if rows == "obs":
                out = out + effect(t.Z.obs, b, t.codes_obs, ti.ones)
            else:
                out = out + effect(t.Z.mis, b, t.codes_mis, ti.ones and t.Z.mis.size > 0)
        return out

    # -- traces and random effects ----------------------------------------------------------
    def param_names(self, data: ModelData) -> list[str]:
        """Fixed effects, the primary term's Ψ entries, each further term's
        (``var(Intercept|school)``...), then ``var(Residual)``."""
        base = self.core.param_names(data)
        head = len(data.X.names) + len(psi_entries(data))
        names = base[:head]
        for t in extra_terms(data):
            zn = list(t.Z.names)
            for i, j in psi_entries(t):
                n = f"var({zn[i]}|{t.group})" if i == j else f"cov({zn[j]},{zn[i]}|{t.group})"
                while n in names:
                    n = n + "'"
                names.append(n)
        return [*names, *base[head:]]

    def param_vector(self, state: MultiTermState, data: ModelData) -> np.ndarray:
        """β, the traced Ψ entries of every term, σ²."""
        base = self.core.param_vector(state.primary, data)
        head = len(data.X.names) + len(psi_entries(data))
        parts = [base[:head]]
        for t, s in zip(extra_terms(data), state.extra, strict=True):
            e = np.array(psi_entries(t), dtype=np.intp).reshape(-1, 2)
            parts.append(s.psi[e[:, 0], e[:, 1]])
        return np.concatenate([*parts, base[head:]])

    def random_effect_names(self, data: ModelData) -> list[str]:
        """The primary term's random design columns (``ranef(x)`` reads the primary term)."""
        return self.core.random_effect_names(data)

    def random_effects(
        self, state: MultiTermState, data: ModelData
    ) -> tuple[np.ndarray, list[str]]:
        """The primary term's current random effects (J_0, q_0) and their names."""
        return state.primary.b, self.random_effect_names(data)


register_multi_term("2l.norm")(MultiTermNorm)


@register_multi_term("2l.norm.het")
class MultiTermHeteroscedasticNorm(MultiTermNorm):
    """:class:`MultiTermNorm` with a residual variance per primary cluster (per class).

    The primary term's step is that of
    :class:`~mlimpute.models.ml_norm_het.HeteroscedasticMultilevelNorm` (σ_j², their scale
    and degrees of freedom); the further terms' sums are weighted by ``1/σ²_j(i)``.
    """

    core_cls = HeteroscedasticMultilevelNorm
