"""Zero-inflated counts: ``zip``, ``2l.zip`` (Poisson) and ``zinb``, ``2l.zinb`` (NB).

For count variables with more zeros than a Poisson or negative-binomial model allows
(days off sick, cigarettes smoked, hospital visits): choose them with
``method={"y": "2l.zinb"}`` (or ``"2l.zip"``, the single-level ``"zip"``, ``"zinb"`` and
the level-2 ``"2lonly.zip"``, ``"2lonly.zinb"``). They are never chosen by default.

The model (Lambert 1992): a row is a *structural zero* with probability π_i, otherwise
its value comes from the count model of :mod:`mlimpute.models.counts` (``2l.poisson``'s
Poisson–log-normal model or ``2l.nb``'s negative binomial, with the same formula, priors
and random effects)::

    P(y_i = 0) = π_i + (1 − π_i) f_i(0),    P(y_i = k) = (1 − π_i) f_i(k),  k > 0,
    logit π_i = w_i'γ.

**The zero part** is a logistic regression with fixed effects only. Its predictors w_i are,
with the default ``zero="fixed"``, the same fixed-effect predictors as the count part
(the formula's fixed part, intercept included), and with ``zero="intercept"`` an
intercept alone (one π for every row). Random effects enter the count part only.
Priors: ``γ₀ ~ N(0, 5²)`` for the intercept (proper, so that data without any zero cannot
send it to −∞), slopes ``N(0, (10·π/√3 / rms(w_k))²)`` as the ``logit`` models.

**One step** (data augmentation with the latent structural-zero indicators s_i, drawn
afresh at every step):

1. ``s_i | y_i, γ, count part``: ``s_i = 0`` where ``y_i > 0``; for an observed zero,
   ``P(s_i = 1) = π_i / (π_i + (1 − π_i) f_i(0))``
   (:func:`~mlimpute.models.counts_kernels.zero_indicator`), with ``f_i(0) = e^(−e^(η_i))``
   given the Poisson row's log-rate η_i, ``(r/(r + μ_i))^r`` for the NB;
2. ``γ | s``: one Metropolis–Hastings step of the logistic regression of s on w, over
   every observed row, with the proposal of one iteratively-weighted-least-squares step
   from the current γ (Gamerman 1997, :func:`~mlimpute.models.iwls_mh.logit_mh_step`;
   exact, the acceptance rate traced as ``accept(zero)``, typically above 0.9). When
   the design is fixed for the run, the work that does not involve s (the linear
   predictor, ``Σ log(1 + e^η)``, ``expit(η)``, the Cholesky factor) is kept in the
   state from one step to the next;
3. the count part's own step on the rows with ``s_i = 0`` (:func:`~mlimpute.models.counts.
   poisson_step`, :func:`~mlimpute.models.counts.nb_step` with the structural zeros
   carrying no likelihood).

The share of observed rows that are structural zeros in the current step is traced as
``zero(share)``, the zero part's coefficients as ``zero(<name>)`` and the running
acceptance rate of step 2 as ``accept(zero)``.

**Missing values**: a structural zero with probability π_i, else a draw of the count part
(:func:`~mlimpute.models.counts_kernels.draw_zero_inflated`); non-negative integers,
returned in the column's own dtype.

Cost per step over n observed rows: the count model's step (the Poisson log-rates'
Metropolis step on the rows that are not structural zeros only) plus, for γ, two O(n)
passes (one with a fixed design) and two p × p factorisations.

References
----------
Lambert, D. (1992). Zero-inflated Poisson regression, with an application to defects in
manufacturing. *Technometrics* 34, 1–14.
Gamerman, D. (1997). Sampling from the posterior distribution in generalized linear mixed
models. *Statistics and Computing* 7, 57–68.
Polson, N. G., Scott, J. G. & Windle, J. (2013). Bayesian inference for logistic models
using Pólya–Gamma latent variables. *JASA* 108, 1339–1349.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlimpute.errors import SpecificationError
from mlimpute.models._latent import linear_core
from mlimpute.models.base import ModelBase, ModelData
from mlimpute.models.counts import (
    NBState,
    PoissonState,
    _NBBase,
    _PoissonBase,
    nb_step,
    poisson_step,
)
from mlimpute.models.counts_kernels import (
    cached_slope_precision,
    draw_zero_inflated,
    zero_indicator,
)
from mlimpute.models.iwls_mh import LogitPoint, logit_mh_step
from mlimpute.models.logit import LOGISTIC_SD
from mlimpute.models.registry import register

__all__ = [
    "ZeroInflatedPoisson",
    "MultilevelZeroInflatedPoisson",
    "ZeroInflatedNB",
    "MultilevelZeroInflatedNB",
    "Level2ZeroInflatedPoisson",
    "Level2ZeroInflatedNB",
    "ZIState",
    "ZERO_INTERCEPT_PRIOR_SD",
]

#: Prior SD of the zero part's intercept on the log-odds scale.
ZERO_INTERCEPT_PRIOR_SD = 5.0
ZERO_PARTS = ("fixed", "intercept")


@dataclass(frozen=True)
class ZIState:
    """The count part's state, the zero part's coefficients γ, the structural-zero share
    of the last step, the steps taken and accepted moves of γ, and the response-free work
    of the zero part's step at γ (reused by the next step when the design is fixed)."""

    count: object
    gamma: np.ndarray
    share: float
    n_steps: int = 0
    n_accepted: int = 0
    point: LogitPoint | None = None  # the zero part's work at γ (fixed designs only)


class _ZeroInflated(ModelBase):
    """Shared machinery; subclasses set ``_count`` (the count model class) and ``method``."""

    method = "zip"
    example_kinds = ("count",)
    _count: type = _PoissonBase

    def __init__(self, zero: str = "fixed"):
        if zero not in ZERO_PARTS:
            raise ValueError(f"zero must be one of {ZERO_PARTS}, not {zero!r}")
        self.zero = zero

    # -- the zero part's design ----------------------------------------------------------
    def _w(self, data: ModelData, rows: str) -> np.ndarray:
        block = data.X.obs if rows == "obs" else data.X.mis
        if self.zero == "intercept":
            return np.ones((block.shape[0], 1))
        return block

    def _w_names(self, data: ModelData) -> list[str]:
        return ["Intercept"] if self.zero == "intercept" else list(data.X.names)

    def _gamma_prec(self, data: ModelData) -> np.ndarray:
        if self.zero == "intercept":
            return np.array([ZERO_INTERCEPT_PRIOR_SD**-2])
        if not data.X.dynamic and "zero_precision" in data.cache:
            return data.cache["zero_precision"]
        prec = cached_slope_precision(data) / LOGISTIC_SD**2
        icpt = [i for i, n in enumerate(data.X.names) if n == "Intercept"]
        prec[icpt] = ZERO_INTERCEPT_PRIOR_SD**-2
        if not data.X.dynamic:  # kept for the run, read-only (as the slope precision)
            prec.setflags(write=False)
            data.cache["zero_precision"] = prec
        return prec

    # -- the count part ------------------------------------------------------------------
    def _log_f0(self, state: object, data: ModelData) -> tuple[np.ndarray, object]:
        """The count part's log-probability of a zero per observed row, and what its step
        can reuse (the ZINB's log-means)."""
        raise NotImplementedError

    def _count_step(self, rng, state, data, active, reuse):
        raise NotImplementedError

    def _indicators(self, rng, state, data, lp) -> tuple[np.ndarray, object]:
        """The structural-zero indicators given ``lp`` (logit π) and the count part's
        state, and what the count part's step can reuse."""
        log_f0, reuse = self._log_f0(state, data)
        return zero_indicator(rng, data.y_obs, lp, log_f0), reuse

    # -- the contract --------------------------------------------------------------------
    def check(self, data: ModelData) -> None:
        """Refuse observed values that are not non-negative integers, or no positive one."""
        base = self._count()
        base.method = self.method
        base.check(data)
        if not np.any(np.asarray(data.y_obs, dtype=float) > 0):
            raise SpecificationError(
                f"{data.variable!r}: {self.method} needs some observed counts above zero "
                "(every observed value is 0)"
            )

    def init(self, rng: np.random.Generator, data: ModelData) -> ZIState:
        """The count part's start on every row, γ at the logit of the excess-zero share,
        then one step."""
        count = self._count().init(rng, data)
        y = np.asarray(data.y_obs, dtype=float)
        p0 = float(np.clip(np.mean(y == 0) - np.mean(self._f0_guess(y)), 0.02, 0.9))
        gamma = np.zeros(self._w(data, "obs").shape[1])
        gamma[0 if self.zero == "intercept" else self._icpt(data)] = np.log(p0 / (1 - p0))
        return self.step(rng, ZIState(count, gamma, p0), data)

    @staticmethod
    def _f0_guess(y: np.ndarray) -> np.ndarray:
        """Poisson zero probability at the positive rows' mean (a rough start)."""
        pos = y[y > 0]
        return np.exp(-pos.mean()) if pos.size else np.ones(1)

    @staticmethod
    def _icpt(data: ModelData) -> int:
        names = list(data.X.names)
        return names.index("Intercept") if "Intercept" in names else 0

    def step(self, rng: np.random.Generator, state: ZIState, data: ModelData) -> ZIState:
        """s | y, γ, count part; γ | s (IWLS-proposal Metropolis–Hastings); the count part
        on the rows s = 0."""
        w = self._w(data, "obs")
        fixed = not data.X.dynamic  # the work at γ stays valid from one step to the next
        point = state.point if fixed else None
        if point is not None and point.coef is state.gamma and point.eta.shape[0] == w.shape[0]:
            lp = point.eta  # w'γ, kept with the rest of that work
        else:
            lp, point = w @ state.gamma, None
        s, reuse = self._indicators(rng, state.count, data, lp)
        gamma, ok, point = logit_mh_step(
            rng, state.gamma, w, s.astype(float), self._gamma_prec(data), point
        )
        count = self._count_step(rng, state.count, data, ~s, reuse)
        share = float(np.count_nonzero(s) / s.size)
        n_steps, n_acc = state.n_steps + 1, state.n_accepted + ok
        return ZIState(count, gamma, share, n_steps, n_acc, point if fixed else None)

    def draw_missing(self, rng: np.random.Generator, state: ZIState, data: ModelData) -> np.ndarray:
        """A structural zero with probability π, else the count part's draw (floats holding
        non-negative integers)."""
        counts = self._count().draw_missing(rng, state.count, data)
        logit_pi = self._w(data, "mis") @ state.gamma
        return draw_zero_inflated(rng, counts, logit_pi).astype(np.float64)

    def param_names(self, data: ModelData) -> list[str]:
        """The count part's, then ``zero(<predictor>)``, ``zero(share)`` and
        ``accept(zero)``."""
        zero = [f"zero({n})" for n in self._w_names(data)]
        return [*self._count().param_names(data), *zero, "zero(share)", "accept(zero)"]

    def param_vector(self, state: ZIState, data: ModelData) -> np.ndarray:
        """As :meth:`param_names` (``accept(zero)``: the running rate of the chain)."""
        rate = state.n_accepted / max(state.n_steps, 1)
        count = self._count().param_vector(state.count, data)
        return np.r_[count, state.gamma, state.share, rate]

    def random_effect_names(self, data: ModelData) -> list[str]:
        """The count part's."""
        return self._count().random_effect_names(data)

    def random_effects(self, state: ZIState, data: ModelData):
        """The count part's random effects (log scale)."""
        return self._count().random_effects(state.count, data)


class _ZIP(_ZeroInflated):
    _count = _PoissonBase

    def _log_f0(self, state: PoissonState, data: ModelData) -> tuple[np.ndarray, None]:
        # f(0 | η) = exp(−e^η): given the row's log-rate (a latent of the Poisson part)
        with np.errstate(over="ignore"):
            return -np.exp(state.eta), None

    def _indicators(self, rng, state, data, lp) -> tuple[np.ndarray, None]:
        # zero_indicator's draw with log f(0) = −e^η, in place: u·(1 + e^(−(e^η + lp))) < 1
        # (−(e^η + lp) is −e^η − lp to the bit: the same indicators)
        u = rng.random(lp.shape)
        with np.errstate(over="ignore", invalid="ignore"):
            a = np.exp(state.eta)
            a += lp
            np.negative(a, out=a)
            np.exp(a, out=a)
        a += 1.0
        u *= a
        return (data.y_obs == 0) & (u < 1.0), None

    def _count_step(self, rng, state, data, active, reuse):
        return poisson_step(rng, state, data, active)


class _ZINB(_ZeroInflated):
    _count = _NBBase

    def _log_f0(self, state: NBState, data: ModelData) -> tuple[np.ndarray, np.ndarray]:
        # f(0) = (r/(r + μ))^r = exp(−r·log1p(μ/r)); ψ is the count step's starting point too
        psi = linear_core(data).predict(state.core, data, "obs")
        with np.errstate(over="ignore"):
            return -state.r * np.log1p(np.exp(psi) / state.r), psi

    def _count_step(self, rng, state, data, active, reuse):
        return nb_step(rng, state, data, active, psi=reuse)


@register("2l.zip", multilevel=True, kinds=("numeric",))
class MultilevelZeroInflatedPoisson(_ZIP):
    """Multilevel zero-inflated Poisson(–log-normal) regression for a count variable.

    Parameters
    ----------
    zero : {"fixed", "intercept"}
        Predictors of the structural-zero probability: the formula's fixed part (default)
        or an intercept only.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> import mlimpute  # noqa: F401  (registers the .mi accessor)
    >>> rng = np.random.default_rng(0)
    >>> g = np.repeat(np.arange(20), 10)
    >>> x = rng.standard_normal(200)
    >>> mu = np.exp(0.5 + 0.4 * x + rng.normal(0, 0.4, 20)[g])
    >>> days = np.where(rng.random(200) < 0.3, 0, rng.poisson(mu)).astype(float)
    >>> days[rng.random(200) < 0.2] = np.nan
    >>> df = pd.DataFrame({"days": days, "x": x, "g": g})
    >>> imp = df.mi.impute({"days": "~ x + (1 | g)"}, method={"days": "2l.zip"},
    ...                    m=2, iterations=5, rng=1)
    >>> done = imp.complete(1)["days"]
    >>> bool((done >= 0).all() and (done == done.round()).all())
    True
    """

    method = "2l.zip"


@register("zip", multilevel=False, kinds=("numeric",))
class ZeroInflatedPoisson(_ZIP):
    """Single-level zero-inflated Poisson(–log-normal) regression for a count variable.

    Examples
    --------
    >>> from mlimpute.models import check_model
    >>> check_model("zip", zero="intercept")
    """


@register("2l.zinb", multilevel=True, kinds=("numeric",))
class MultilevelZeroInflatedNB(_ZINB):
    """Multilevel zero-inflated negative-binomial regression for a count variable.

    Examples
    --------
    >>> from mlimpute.models import check_model
    >>> check_model("2l.zinb")
    """

    method = "2l.zinb"


@register("zinb", multilevel=False, kinds=("numeric",))
class ZeroInflatedNB(_ZINB):
    """Single-level zero-inflated negative-binomial regression for a count variable.

    Examples
    --------
    >>> from mlimpute.models import check_model
    >>> check_model("zinb")
    """

    method = "zinb"


@register("2lonly.zip", multilevel=False, level=2, kinds=("numeric",))
class Level2ZeroInflatedPoisson(ZeroInflatedPoisson):
    """Zero-inflated Poisson(–log-normal) regression on cluster rows (level-2 counts)."""

    method = "2lonly.zip"


@register("2lonly.zinb", multilevel=False, level=2, kinds=("numeric",))
class Level2ZeroInflatedNB(ZeroInflatedNB):
    """Zero-inflated negative-binomial regression on cluster rows (level-2 counts)."""

    method = "2lonly.zinb"
