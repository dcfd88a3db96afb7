"""Count variables: (multilevel) Poisson–log-normal and negative-binomial regression.

For non-negative integer variables (visits, absences, symptoms): choose them with
``method={"y": "2l.poisson"}`` (or ``"2l.nb"``, and the single-level ``"poisson"``,
``"nb"``). They are never chosen by default. Imputed values are non-negative integers; an
integer-typed column comes back in its own dtype.

**Poisson** (``2l.poisson``, ``poisson``). ``y_i ~ Poisson(e^(η_i))`` with
``η_i = x_i'β + z_i'b_j + e_i``, ``e_i ~ N(0, σ²)``: a Poisson–log-normal model, whose
observation-level residual absorbs overdispersion and makes the normal linear core apply
to η. One step: every observed row's η_i is updated by an independence Metropolis step
targeting ``p(η_i | y_i, x_i'β + z_i'b_j, σ²)`` (a t₄ proposal at the mode with the Laplace
scale, :func:`~mlimpute.models.counts_kernels.poisson_eta_step`); the core then takes one
ordinary Gibbs step with η as its response and σ² fixed; finally
``σ² | η, β, b ~ Scaled-Inv-χ²(n_obs + ν₀, (SSR + ν₀s₀²)/(n_obs + ν₀))`` with ``ν₀ = 1``,
``s₀² = 10⁻⁴`` (σ² is on the log scale, so the scale is unitless and absolute). The
core's own ``p(σ²) ∝ 1/σ²`` is not used: with counts that are not overdispersed the
likelihood stays positive as σ² → 0, and that prior would make the posterior improper
(the chain would drift to σ² = 0). On such equidispersed counts the likelihood is flat
below some limit U (about 0.03–0.05 for 200 rows) and the posterior of σ² is the prior
cut off there, with mean about ``s₀·√U`` (0.0015–0.006 with these defaults; 0.01–0.03 with
the former s₀² = 0.01, which added about μ²σ², some 8 % of the counts' variance, to the
spread of the imputed counts). Estimable overdispersion is left alone (σ² = 0.3 is
recovered the same with either scale). Every imputed count carries this small residual:
for counts known to be overdispersed choose ``nb``/``2l.nb``; for counts close to Poisson
``poisson`` imputes them with at most a few per cent extra variance. The fraction of rows
whose proposal was accepted is traced as ``accept(eta)`` (typically above 0.9).

When σ² is small (counts close to Poisson) this centred chain crawls: given η, β and b are
pinned within ``σ/√n`` of their current values. Each step therefore adds non-centred
Metropolis moves (interweaving, in the spirit of Yu & Meng 2011) with the residuals
``e = η − x'β − z'b`` (for σ, ``e/σ``) held fixed and η moving with the parameters: a
random walk on β with covariance ``2.38²/p·(X'MX + P)⁻¹``, ``M = diag(y + ½)``;
independent random walks on every cluster's b_j (vectorised over clusters, target its
Poisson likelihood times ``N(0, Ψ)``, scale from the same M); two random walks on
``log σ²``, of SD 0.5 and 2.5 (the wide one crosses the flat stretch between s₀² and U of
equidispersed counts: on 40 clusters × 10 Poisson counts the effective sample size per
step of σ² is about 0.13 with it, 0.01 without it, and was 0.04 with the former s₀²;
for σ² = 0.3 it stays at about 0.12). The walks' scales use the counts in place of the
Poisson information ``e^η``: they do not move with the parameters, so the walks are
symmetric and the Metropolis ratios need no proposal term (a scale computed from the
current η would move with them and need one). On 50 clusters × 12 Poisson counts the
moves cut the integrated autocorrelation time of the slope from about 100 to 9 and of the
random intercepts from about 150 to 4.

Missing values: ``η ~ N(x'β + z'b_j, σ²)``, ``y ~ Poisson(e^η)``.

**Negative binomial** (``2l.nb``, ``nb``). ``y_i ~ NB(r, mean e^(ψ_i))``,
``ψ_i = x_i'β + z_i'b_j``, variance ``μ + μ²/r``. ``2l.nb``: Pólya–Gamma augmentation
(Polson, Scott & Windle 2013; Zhou, Li, Dunson & Carin 2012):
``ω_i ~ PG(y_i + r, ψ_i − log r)`` gives ψ Gaussian pseudo-responses
``(y_i − r)/(2ω_i) + log r`` with precisions ω_i
(:func:`~mlimpute.models.counts_kernels.nb_pseudo`), so the core takes one *weighted*
Gibbs step with σ² = 1. ``nb`` (no random effects): one Metropolis–Hastings step on β
whose proposal is the normal of one iteratively-weighted-least-squares step from the
current β (Gamerman 1997, :func:`~mlimpute.models.iwls_mh.iwls_mh_step`); it is exact
(the NB likelihood itself is the target) and costs O(n p²) instead of n Pólya–Gamma draws
of several gamma variables each; its running acceptance rate is traced as
``accept(beta)`` (typically above 0.9). Then the dispersion r takes two random-walk
Metropolis steps on
``log r`` (prior ``log r ~ N(0, 2.5²)``,
:func:`~mlimpute.models.counts_kernels.nb_dispersion_step`). The step size starts at 0.3
and, during the first 50 steps of a chain only, is adapted towards an acceptance rate of
0.44 (Robbins–Monro on its logarithm); after that it is fixed, so the chain is an ordinary
Metropolis-within-Gibbs chain from then on. r and the running acceptance rate ``accept(r)``
are traced. Missing values are NB draws (gamma–Poisson mixture).

Priors (both families, log scale): fixed slopes ``N(0, (10/rms(x_k))²)``, intercept flat
(as the probit models, :func:`~mlimpute.models._latent.slope_precision`); random-effect SDs
half-t as in ``2l.norm``.

Cost per step over n observed rows: Poisson 3 vector passes (Newton towards the mode) plus
one t draw per row, the core's step (unweighted, so its cached fast paths apply) and four
O(n) non-centred moves;
``2l.nb`` n PG(y + r, ·) draws and the core's weighted step, ``nb`` two O(n) passes
and two p × p factorisations for β; both one O(n) pass per dispersion proposal and
log-gamma evaluations at the distinct counts.

References
----------
Polson, N. G., Scott, J. G. & Windle, J. (2013). Bayesian inference for logistic models
using Pólya–Gamma latent variables. *JASA* 108, 1339–1349.
Zhou, M., Li, L., Dunson, D. & Carin, L. (2012). Lognormal and gamma mixed negative
binomial regression. *ICML* 2012, 1343–1350.
Gamerman, D. (1997). Sampling from the posterior distribution in generalized linear mixed
models. *Statistics and Computing* 7, 57–68.
Yu, Y. & Meng, X.-L. (2011). To center or not to center: that is not the question — an
ancillarity–sufficiency interweaving strategy (ASIS) for boosting MCMC efficiency. *JCGS*
20, 531–570.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from mlimpute.errors import SpecificationError
from mlimpute.models._latent import core_param_names, core_param_vector, linear_core
from mlimpute.models.base import ModelBase, ModelData
from mlimpute.models.counts_kernels import (
    LOG_R_PRIOR_SD,
    _nb_dispersion_mh,
    _nb_r_context,
    cached_slope_precision,
    draw_nb,
    draw_poisson,
    nb_pseudo,
)
from mlimpute.models.iwls_mh import iwls_mh_step, nb_family
from mlimpute.models.ml_norm import MultilevelNorm
from mlimpute.models.poisson_step import (
    PoissonState,
    poisson_step,
)
from mlimpute.models.registry import register

__all__ = [
    "Poisson",
    "MultilevelPoisson",
    "NegativeBinomial",
    "MultilevelNegativeBinomial",
    "PoissonState",
    "NBState",
    "Level2Poisson",
    "Level2NegativeBinomial",
    "poisson_step",
    "nb_step",
]

#: NB dispersion: Metropolis steps per Gibbs step, adaptation length and target.
R_MH_STEPS = 2
R_ADAPT_STEPS = 50
R_TARGET_ACCEPT = 0.44


def _check_counts(data: ModelData, method: str) -> None:
    y = np.asarray(data.y_obs, dtype=float)
    bad = ~np.isfinite(y) | (y < 0) | (y != np.round(y))
    if data.categories is not None or bad.any():
        example = "" if data.categories is not None else f" (e.g. {y[bad][0]!r})"
        raise SpecificationError(
            f"{data.variable!r}: {method} imputes counts, but the observed values include "
            f"values that are not non-negative integers{example}; use a normal or PMM method"
        )
    if data.n_obs == 0:
        raise SpecificationError(f"{data.variable!r}: {method} needs observed values")


# -- Poisson -------------------------------------------------------------------------------
class _PoissonBase(ModelBase):
    method = "poisson"
    example_kinds = ("count",)  # check_model's data: see mlimpute.models.testing

    def check(self, data: ModelData) -> None:
        """Refuse observed values that are not non-negative integers."""
        _check_counts(data, self.method)
        if data.Z is not None:
            MultilevelNorm().check(data)

    def init(self, rng: np.random.Generator, data: ModelData) -> PoissonState:
        """η = log(y + ½), the core's start on it, then one step."""
        eta = np.log(np.asarray(data.y_obs, dtype=float) + 0.5)
        core = linear_core(data).start(rng, data, eta)
        return self.step(rng, PoissonState(core, eta, 1.0), data)

    def step(self, rng: np.random.Generator, state: PoissonState, data: ModelData) -> PoissonState:
        """η | y by independence MH, (β, b, Ψ) | η by the core, then σ² | η, β, b."""
        return poisson_step(rng, state, data)

    def draw_missing(
        self, rng: np.random.Generator, state: PoissonState, data: ModelData
    ) -> np.ndarray:
        """``y ~ Poisson(e^η)``, ``η ~ N(x'β + z'b_j, σ²)``, as floats holding integers."""
        eta = linear_core(data).draw_missing(rng, state.core, data)
        return draw_poisson(rng, eta).astype(np.float64)

    def param_names(self, data: ModelData) -> list[str]:
        """The core's (``var(Residual)`` is σ² of the log-rate), then ``accept(eta)``."""
        return [*linear_core(data).param_names(data), "accept(eta)"]

    def param_vector(self, state: PoissonState, data: ModelData) -> np.ndarray:
        """As :meth:`param_names`."""
        return np.r_[linear_core(data).param_vector(state.core, data), state.accept]

    def random_effect_names(self, data: ModelData) -> list[str]:
        """The core's (the random design's columns; none for single-level models)."""
        return linear_core(data).random_effect_names(data)

    def random_effects(self, state: PoissonState, data: ModelData):
        """The core's random effects, on the log-rate scale."""
        return linear_core(data).random_effects(state.core, data)


@register("2l.poisson", multilevel=True, kinds=("numeric",))
class MultilevelPoisson(_PoissonBase):
    """Multilevel Poisson–log-normal regression for a count variable.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> import mlimpute  # noqa: F401  (registers the .mi accessor)
    >>> rng = np.random.default_rng(0)
    >>> g = np.repeat(np.arange(20), 10)
    >>> x = rng.standard_normal(200)
    >>> visits = rng.poisson(np.exp(0.5 + 0.4 * x + rng.normal(0, 0.5, 20)[g])).astype(float)
    >>> visits[rng.random(200) < 0.2] = np.nan
    >>> df = pd.DataFrame({"visits": visits, "x": x, "g": g})
    >>> imp = df.mi.impute({"visits": "~ x + (1 | g)"}, method={"visits": "2l.poisson"},
    ...                    m=2, iterations=5, rng=1)
    >>> done = imp.complete(1)["visits"]
    >>> bool((done >= 0).all() and (done == done.round()).all())
    True
    """

    method = "2l.poisson"


@register("poisson", multilevel=False, kinds=("numeric",))
class Poisson(_PoissonBase):
    """Single-level Poisson–log-normal regression for a count variable.

    Examples
    --------
    >>> from mlimpute.models import check_model
    >>> check_model("poisson")
    """


# -- negative binomial ---------------------------------------------------------------------
@dataclass(frozen=True)
class NBState:
    """The core's state (log-mean ψ, σ² = 1), the dispersion r and its Metropolis tuning,
    and (single-level models) the number of accepted Metropolis–Hastings moves of β."""

    core: object
    r: float
    step_size: float
    n_steps: int
    n_accepted: int
    beta_accepted: int = 0


def _nb_start_r(y: np.ndarray) -> float:
    """Moment estimate ``ȳ²/(s² − ȳ)``, clipped to [0.1, 100]."""
    m, v = float(np.mean(y)), float(np.var(y))
    return float(np.clip(m * m / (v - m), 0.1, 100.0)) if v > m else 100.0


def nb_step(
    rng: np.random.Generator,
    state: NBState,
    data: ModelData,
    active: np.ndarray | None = None,
    psi: np.ndarray | None = None,
) -> NBState:
    """One step of the negative-binomial model; rows outside ``active`` (bool, observed
    rows) carry no likelihood (weight 0 in the core's step, left out of the dispersion's).

    ``active=None`` (every row) is the step of ``nb``/``2l.nb``; the zero-inflated models
    pass the rows that are not structural zeros, and ``psi``, the log-means of the
    observed rows at ``state.core`` when they have them.
    """
    core = linear_core(data)
    y = data.y_obs
    beta_acc = state.beta_accepted
    if data.Z is None:  # single level: β by IWLS-proposal Metropolis–Hastings
        X = data.X.obs
        if active is not None:
            X, y = X[active], y[active]
        beta, ok = iwls_mh_step(
            rng, state.core.beta, X, nb_family(y, state.r), cached_slope_precision(data)
        )
        new = dataclasses.replace(state.core, beta=beta, beta_mean=None)
        psi = X @ beta
        beta_acc += ok
    else:  # multilevel: Pólya–Gamma augmentation and the core's weighted Gibbs step
        if psi is None:
            psi = core.predict(state.core, data, "obs")
        if active is None:
            omega, z = nb_pseudo(rng, y, psi, state.r)
        else:
            rows = np.flatnonzero(active)
            omega, z = np.zeros(y.shape), np.zeros(y.shape)
            omega[rows], z[rows] = nb_pseudo(rng, y[rows], psi[rows], state.r)
        new = core.gibbs(
            rng,
            state.core,
            data,
            z,
            sigma2=1.0,
            beta_prec=cached_slope_precision(data),
            weights=omega,
        )
        psi = core.predict(new, data, "obs")
        if active is not None:
            y, psi = y[rows], psi[rows]
    r, step_size, n_acc = state.r, state.step_size, state.n_accepted
    adapting = state.n_steps < R_ADAPT_STEPS
    acc_here = 0
    ctx, ll_r = _nb_r_context(y, psi), None  # ψ is fixed over the Metropolis steps
    for _ in range(R_MH_STEPS):
        r, ok, ll_r = _nb_dispersion_mh(rng, r, y, psi, step_size, LOG_R_PRIOR_SD, ctx, ll_r)
        acc_here += ok
    if adapting:  # Robbins–Monro on log(step size), first R_ADAPT_STEPS steps only
        gain = 1.0 / np.sqrt(state.n_steps + 1)
        step_size *= float(np.exp(gain * (acc_here / R_MH_STEPS - R_TARGET_ACCEPT)))
    return NBState(new, r, step_size, state.n_steps + 1, n_acc + acc_here, beta_acc)


class _NBBase(ModelBase):
    method = "nb"
    example_kinds = ("count",)

    def check(self, data: ModelData) -> None:
        """Refuse observed values that are not non-negative integers."""
        _check_counts(data, self.method)
        if data.Z is not None:
            MultilevelNorm().check(data)

    def init(self, rng: np.random.Generator, data: ModelData) -> NBState:
        """r by moments; the core's weighted start at ψ = log(ȳ + ½) with ω at its mean."""
        y = np.asarray(data.y_obs, dtype=float)
        r = _nb_start_r(y)
        c = np.log(y.mean() + 0.5) - np.log(r)
        omega = (y + r) / (2 * c) * np.tanh(c / 2) if abs(c) > 1e-8 else (y + r) / 4
        z = (y - r) / (2 * omega) + np.log(r)
        core = linear_core(data).start(
            rng, data, z, sigma2=1.0, beta_prec=cached_slope_precision(data), weights=omega
        )
        return self.step(rng, NBState(core, r, 0.3, 0, 0), data)

    def step(self, rng: np.random.Generator, state: NBState, data: ModelData) -> NBState:
        """ω ~ PG(y + r, ψ − log r), the core's weighted step, then r by Metropolis."""
        return nb_step(rng, state, data)

    def draw_missing(self, rng: np.random.Generator, state: NBState, data: ModelData) -> np.ndarray:
        """NB(r, mean e^ψ) draws, as floats holding integers."""
        psi = linear_core(data).predict(state.core, data, "mis")
        return draw_nb(rng, psi, state.r).astype(np.float64)

    def param_names(self, data: ModelData) -> list[str]:
        """The core's without the residual variance, then ``r`` and ``accept(r)``, and for
        a single-level model ``accept(beta)``."""
        extra = ["accept(beta)"] if data.Z is None else []
        return [*core_param_names(linear_core(data), data), "r", "accept(r)", *extra]

    def param_vector(self, state: NBState, data: ModelData) -> np.ndarray:
        """As :meth:`param_names` (the acceptance rates are running rates of the chain)."""
        rate = state.n_accepted / max(state.n_steps * R_MH_STEPS, 1)
        extra = [state.beta_accepted / max(state.n_steps, 1)] if data.Z is None else []
        return np.r_[core_param_vector(linear_core(data), state.core, data), state.r, rate, extra]

    def random_effect_names(self, data: ModelData) -> list[str]:
        """The core's (the random design's columns; none for single-level models)."""
        return linear_core(data).random_effect_names(data)

    def random_effects(self, state: NBState, data: ModelData):
        """The core's random effects, on the log-mean scale."""
        return linear_core(data).random_effects(state.core, data)


@register("2l.nb", multilevel=True, kinds=("numeric",))
class MultilevelNegativeBinomial(_NBBase):
    """Multilevel negative-binomial regression for an overdispersed count variable.

    Examples
    --------
    >>> from mlimpute.models import check_model
    >>> check_model("2l.nb")
    """

    method = "2l.nb"


@register("nb", multilevel=False, kinds=("numeric",))
class NegativeBinomial(_NBBase):
    """Single-level negative-binomial regression for an overdispersed count variable.

    Examples
    --------
    >>> from mlimpute.models import check_model
    >>> check_model("nb")
    """


@register("2lonly.poisson", multilevel=False, level=2, kinds=("numeric",))
class Level2Poisson(Poisson):
    """Poisson–log-normal regression on cluster rows for a count level-2 variable.

    Examples
    --------
    >>> from mlimpute.models import check_model
    >>> check_model("2lonly.poisson")
    """

    method = "2lonly.poisson"


@register("2lonly.nb", multilevel=False, level=2, kinds=("numeric",))
class Level2NegativeBinomial(NegativeBinomial):
    """Negative-binomial regression on cluster rows for a count level-2 variable.

    Examples
    --------
    >>> from mlimpute.models import check_model
    >>> check_model("2lonly.nb")
    """

    method = "2lonly.nb"
