"""The draws of model-based imputation, one kind of missing value each.

Used by :func:`mlimpute.sampler.compatible.run_compatible_chain`: the analysis model's (and
any model's) linear predictor on a few rows at candidate values (:class:`RowDesign`),
closed-form terms from affine linear predictors (:func:`eta_at`), level-2 predictors on one
row per cluster (:func:`level2_draw`), categorical predictors exactly over their
categories (:func:`categorical_draw`) and predictors that enter non-linearly by
Metropolis–Hastings (:func:`mh_draw`). Everything is vectorised over rows and clusters.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.special import log_ndtr

from mlimpute.codec import decode
from mlimpute.compatible import (
    ClusterTerm,
    LinearTerm,
    ProposalScale,
    affine_coefficients,
    conditional_moments,
    draw_latent_means,
    level2_moments,
    rw_step,
)
from mlimpute.compatible.categorical import (
    category_log_prob,
    draw_categories,
    draw_nominal_utilities,
    log_interval,
    nominal_log_prob,
)
from mlimpute.models._latent import linear_core, truncnorm, truncnorm_sign
from mlimpute.models.binary import ProbitState
from mlimpute.models.counts import NBState, PoissonState
from mlimpute.models.nominal import NominalState
from mlimpute.models.ordinal import OrderedState
from mlimpute.models.segments import Segments
from mlimpute.sampler.design import ModelData, Values
from mlimpute.spec.formula import cmean_column
from mlimpute.spec.grammar import EVALUATION_CONTEXT

if TYPE_CHECKING:  # pragma: no cover
    from mlimpute.sampler.engine import Plan

__all__ = [
    "RowDesign",
    "proposal_key",
    "linear_predictor",
    "eta_at",
    "outcome_term",
    "all_clusters",
    "level2_draw",
    "latent_mean_owner_state",
    "latent_mean_draw",
    "categorical_draw",
    "latent_responses",
    "nominal_utilities",
    "fresh_utilities",
    "mh_draw",
]


def proposal_key(x: str) -> str:
    """Key of x's proposal scale ``(log s, adaptation steps)`` among the chain's states."""
    return f"(proposal) {x}"


class RowDesign:
    """A model's linear predictor on a few of its observed rows at candidate values of one
    column (the analysis model's, or a predictor model's).

    A design block whose dynamic columns are all products of numeric columns is computed
    directly (its other columns read from the design); otherwise the block is re-evaluated
    by formulaic on those rows only (from the model's stored specification, so stateful
    transforms keep their fitted state). A value outside a transform's domain (``log`` of a
    negative proposal) gives a non-finite η, which the Metropolis–Hastings step rejects.
    """

    def __init__(self, plan: Plan, d: ModelData, rows: np.ndarray) -> None:
        self.rows = rows
        self.static = plan.static.iloc[rows].reset_index(drop=True)
        self.codes = plan.layout.codes[rows]
        self.pos = np.searchsorted(d.obs_idx, rows)  # the rows among d's observed rows
        self.x_cols = self._columns(d.X)
        # a random part that depends on no imputed column is read from the design once
        self.z_cols = self._columns(d.Z) if d.Z is not None and d.Z.dynamic else None
        self.z_static = None
        if d.Z is not None and not d.Z.dynamic:
            self.z_static = d.Z.obs[self.pos]
        # further random-effect terms (several grouping factors): (term, columns or None,
        # static Z or None, cluster codes) on the rows
        self.extra = []
        for t in getattr(d, "extra_terms", ()) or ():
            codes = t.codes_obs[self.pos]
            if t.Z.dynamic:
                self.extra.append((t, self._columns(t.Z), None, codes))
            else:
                self.extra.append((t, None, t.Z.obs[self.pos], codes))

    @staticmethod
    def _columns(block):
        if block.spec is None:  # an intercept only
            return None
        names = list(block.spec.column_names)
        return [names.index(c) for c in block.names]

    def frame(self, values: Values, static: pd.DataFrame) -> pd.DataFrame:
        """The rows' data at the chain's current values."""
        frame = self.static.copy(deep=False)
        for name in values:
            if name in frame:
                v = values.frame_value(name)
                frame[name] = v.iloc[self.rows].to_numpy() if hasattr(v, "iloc") else v[self.rows]
            col = cmean_column(name)
            if col in frame:
                frame[col] = values.factor(col, static)[self.rows]
        return frame

    def _matrix(self, block, cols, frame: pd.DataFrame) -> np.ndarray:
        # a random part of several blocks has no formulaic spec (cols None) unless it has
        # transformed columns: its products of numeric columns (a random slope on x) are
        # recomputed here too, never replaced by an intercept
        if not block.slow:  # products of numeric columns: no formulaic call
            X = block.obs[self.pos]
            for col, factors in block.fast:
                v = frame[factors[0]].to_numpy(dtype=np.float64)
                for f in factors[1:]:
                    v = v * frame[f].to_numpy(dtype=np.float64)
                X[:, col] = v
            return X
        if cols is None:  # an intercept only
            return np.ones((len(frame), 1))
        with np.errstate(all="ignore"):
            mm = block.spec.get_model_matrix(frame, context=EVALUATION_CONTEXT)
        return np.asarray(mm, dtype=np.float64)[:, cols]

    def eta(self, d: ModelData, state, frame: pd.DataFrame) -> np.ndarray:
        """``X β + Z b_j`` on the rows for the data in ``frame`` (with several grouping
        factors ``+ Σ_k Z_k b_k,j``: every term's random effects)."""
        X = self._matrix(d.X, self.x_cols, frame)
        if _latent(state):
            state = state.core
        out = X @ state.beta
        extra = getattr(state, "extra", None)
        b0 = state.primary.b if extra is not None else state.b
        if d.Z is not None:
            Z = (
                self.z_static
                if self.z_static is not None
                else self._matrix(d.Z, self.z_cols, frame)
            )
            out = out + np.einsum("nq,nq->n", Z, np.take(b0, self.codes, axis=0))
        for (t, cols, z_static, codes), ts in zip(self.extra, extra or (), strict=True):
            Z = z_static if z_static is not None else self._matrix(t.Z, cols, frame)
            out = out + np.einsum("nq,nq->n", Z, np.take(ts.b, codes, axis=0))
        return out


def _probit(state) -> bool:
    """A probit analysis model (its state carries the latent normal model's)."""
    return isinstance(state, ProbitState)


def _latent(state) -> bool:
    """A latent (probit or ordered probit) model's state, or a count model's (its core
    is the normal model of the log-rate)."""
    return isinstance(state, (ProbitState, OrderedState, PoissonState, NBState))


def linear_predictor(model, state, d: ModelData, n: int) -> np.ndarray:
    """The linear predictor of every row (sorted order), random effects included (on the
    latent scale for a probit model)."""
    if _latent(state):
        model, state = linear_core(d), state.core
    out = np.empty(n)
    out[d.obs_idx] = model.predict(state, d, "obs")
    if d.n_mis:
        out[d.mis_idx] = model.predict(state, d, "mis")
    return out


def outcome_term(rng, sa, y_values, a, c, x_now, active) -> LinearTerm:
    """The analysis model's factor as a term linear in x: ``N(y; a + c x, σ²)``; for a
    probit outcome ``N(y*; a + c x, 1)`` with the latent ``y*`` drawn from its truncated
    normal given the current x (Albert & Chib 1993: alternating the two leaves
    ``N(x; μ, σ²) Φ((2y − 1)(a + c x))`` invariant)."""
    if not _probit(sa):
        return LinearTerm(y_values, a, c, sa.sigma2, active)
    ystar = np.zeros_like(a)
    ystar[active] = truncnorm_sign(rng, (a + c * x_now)[active], y_values[active] > 0.5)
    return LinearTerm(ystar, a, c, 1.0, active)


def eta_at(model, state, d, values: Values, static, x: str, n: int):
    """``a`` and ``c`` of ``d``'s linear predictor as an affine function of column x."""
    current = values[x]

    def eta(v: np.ndarray) -> np.ndarray:
        values[x] = v
        values.touch(x)
        d.refresh(values, static)
        return linear_predictor(model, state, d, n)

    try:
        return affine_coefficients(eta, n)
    finally:
        values[x] = current
        values.touch(x)


def all_clusters(d: ModelData) -> ModelData:
    """A level-2 predictor's data with every cluster as an observed row: its model is
    fitted to the completed cluster values (the missing ones are part of the state)."""
    X = np.empty((d.n_obs + d.n_mis, d.X.obs.shape[1]))
    X[d.obs_idx], X[d.mis_idx] = d.X.obs, d.X.mis
    J = X.shape[0]
    block = replace(d.X, obs=np.asfortranarray(X), mis=np.asfortranarray(np.empty((0, X.shape[1]))))
    Z, seg = None, Segments.from_codes(np.zeros(J, dtype=np.intp), 1)
    if d.Z is not None:  # three levels: a random intercept of the enclosing level
        Zf = np.empty((J, d.Z.obs.shape[1]))
        Zf[d.obs_idx], Zf[d.mis_idx] = d.Z.obs, d.Z.mis
        empty = np.asfortranarray(np.empty((0, Zf.shape[1])))
        Z = replace(d.Z, obs=np.asfortranarray(Zf), mis=empty)
        codes = np.empty(J, dtype=np.intp)
        codes[d.obs_idx], codes[d.mis_idx] = d.seg_obs.codes, d.codes_mis
        seg = Segments.from_codes(codes, d.n_clusters)
    return replace(
        d,
        X=block,
        Z=Z,
        obs_idx=np.arange(J),
        mis_idx=np.zeros(0, dtype=np.intp),
        y_obs=np.zeros(J),
        seg_obs=seg,
        codes_mis=np.zeros(0, dtype=np.intp),
        **({"cache": {}} if Z is not None else {}),  # static sums of these rows, not d's
    )


def cluster_eta_at(model, state, d, cview, static, w: str):
    """``a`` and ``c`` of a level-2 model's linear predictor (one row per cluster) as an
    affine function of the level-2 column w."""
    values = cview.values
    current = values[w]

    def eta(v: np.ndarray) -> np.ndarray:
        values[w] = np.full(values.layout.n, v[0])
        values.touch(w)
        d.refresh(cview, static)
        return model.predict(state, d, "obs")

    try:
        a = eta(np.zeros(1))
        return a, eta(np.ones(1)) - a
    finally:
        values[w] = current
        values.touch(w)


def level2_draw(
    rng,
    plan,
    w,
    in_model,
    datas,
    states,
    users,
    level2,
    cview,
    ma,
    sa,
    da,
    values,
    y_values,
    y_obs_rows,
    missing,
    mu_shift=None,
    responses=None,
):
    """Draw the missing cluster values of a level-2 predictor w from their closed form
    (:func:`mlimpute.compatible.level2_moments`): its own model on one row per cluster,
    times the analysis model on every row of the cluster with the outcome observed (cross-
    level interactions included), times the level-1 models it predicts on every row of the
    cluster and the level-2 models it predicts. Returns the new values of the missing
    clusters.

    With ``delta=`` (:mod:`mlimpute.compatible.shift`): ``mu_shift`` (one per cluster)
    moves w's own mean, so that the draw is the shifted ``w = w* + δ``; ``responses``
    holds the unshifted columns ``p*`` of shifted models among ``users``."""
    n = plan.layout.n
    first = plan.layout.segments.starts
    d, model, st = datas[w], plan.models[w], states[w]
    d.refresh(cview, plan.cluster_static)
    mu = model.predict(st, d, "obs")
    if mu_shift is not None:
        mu = mu + mu_shift
    responses = responses or {}
    terms = []
    if in_model:  # an auxiliary is not in the analysis model's likelihood
        a, c = eta_at(ma, sa, da, values, plan.static, w, n)
        terms.append(outcome_term(rng, sa, y_values, a, c, values[w], y_obs_rows))
    cterms = []
    for p in users:
        dp, mp = datas[p], plan.models[p]
        if p in level2:
            a, c = cluster_eta_at(mp, states[p], dp, cview, plan.cluster_static, w)
            s2 = np.array([[states[p].sigma2]])
            vp = responses.get(p, values[p])[first]
            cterms.append(ClusterTerm(vp[:, None], a[:, None], c[:, None], s2))
        else:
            a, c = eta_at(mp, states[p], dp, values, plan.static, w, n)
            # a binary/ordinal model: its latent response (``responses``), variance 1
            s2 = 1.0 if _latent(states[p]) else states[p].sigma2
            terms.append(LinearTerm(responses.get(p, values[p]), a, c, s2))
    m_, v_ = level2_moments(plan.layout.segments, mu, st.sigma2, terms, cterms)
    cv = values[w][first].copy()
    draw = m_[missing] + np.sqrt(v_[missing]) * rng.standard_normal(int(missing.sum()))
    cv[missing] = draw
    values[w][:] = np.take(cv, plan.layout.codes)
    values.touch(w)
    return draw


def latent_mean_owner_state(rng, plan, x, col, datas, states, values, cview):
    """The state of x's model given its latent cluster means ``lmean(x)`` (column col).

    x's model is ``x_ij = ξ_j + e_ij`` with ``ξ_j = w_j'α + r_j``, ``r_j ~ N(0, τ)``
    (Lüdtke et al. 2008): (α, τ) are the parameters of col's own model, fitted to the
    completed ξ (one row per cluster), and ``σ_x² | x, ξ = Σ(x_ij − ξ_j)²/χ²(n)``
    (``p(σ_x²) ∝ 1/σ_x²``). Written as x's random-intercept model (``x ~ w + (1 | g)``:
    β = α, ``b_j = ξ_j − w_j'α``, Ψ = τ), so that its linear predictor is ξ_j and its
    parameters are traced as for any predictor. Returns the new state.
    """
    first = plan.layout.segments.starts
    dxi, sxi = datas[col], states[col]
    dxi.refresh(cview, plan.cluster_static)
    m = plan.models[col].predict(sxi, dxi, "obs")
    xi = values[col][first]
    resid = values[x] - values[col]
    sigma2 = float(resid @ resid) / rng.chisquare(resid.size)
    st = states[x]
    return replace(
        st,
        beta=np.asarray(sxi.beta, dtype=float).copy(),
        b=(xi - m)[:, None],
        sigma2=sigma2,
        psi=np.array([[float(sxi.sigma2)]]),
        beta_mean=None,
        b_mean=None,
    )


def latent_mean_draw(
    rng, plan, col, x, datas, states, cview, ma, sa, da, values, y_values, y_obs_rows, users=()
):
    """Draw every cluster's latent mean ``ξ_j`` (the column col, ``lmean(x)``) from its
    closed form (:func:`mlimpute.compatible.draw_latent_means`): its own model ``N(w_j'α,
    τ)``, x's rows ``N(x_ij; ξ_j, σ_x²)`` (observed and currently imputed), the analysis
    model on every row of the cluster with the outcome observed (a probit outcome through
    its latent y*) and the models of the level-2 predictors ``users`` that take lmean(x)
    as a predictor (one row per cluster). Returns the draws, one per cluster."""
    n = plan.layout.n
    first = plan.layout.segments.starts
    d, st = datas[col], states[col]
    d.refresh(cview, plan.cluster_static)
    m = plan.models[col].predict(st, d, "obs")
    a, c = eta_at(ma, sa, da, values, plan.static, col, n)
    term = outcome_term(rng, sa, y_values, a, c, values[col], y_obs_rows)
    cterms = []
    for p in users:  # level-2 models: lmean(x) is one of their predictors
        ap, cp = cluster_eta_at(
            plan.models[p], states[p], datas[p], cview, plan.cluster_static, col
        )
        s2 = np.array([[states[p].sigma2]])
        cterms.append(ClusterTerm(values[p][first][:, None], ap[:, None], cp[:, None], s2))
    xi = draw_latent_means(
        rng,
        plan.layout.segments,
        m,
        float(st.sigma2),
        values[x],
        0.0,
        states[x].sigma2,
        [term],
        cterms,
    )
    values[col][:] = np.take(xi, plan.layout.codes)
    values.touch(col)
    return xi


def _log_lik(state, v: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Log-likelihood of responses v at linear predictor η under a model's state: normal,
    probit (v in {0, 1}) or ordered probit (v the ranks of the codes among the present
    categories)."""
    if isinstance(state, OrderedState):
        return category_log_prob_rows(eta, state.cuts, v)
    if isinstance(state, ProbitState):
        return log_ndtr(np.where(v > 0.5, eta, -eta))
    return -0.5 * (v - eta) ** 2 / state.sigma2


def category_log_prob_rows(eta, cuts, codes):
    """``log P(x = k)`` per row under an ordered probit (k the rank 0..K−1 of the code)."""
    bounds = np.r_[-np.inf, cuts, np.inf]
    k = codes.astype(np.intp)
    return log_interval(bounds[k] - eta, bounds[k + 1] - eta)


def categorical_draw(
    rng,
    plan,
    x,
    rows,
    datas,
    states,
    users,
    categorical,
    ma,
    sa,
    da,
    values,
    y_values,
    y_obs_rows,
    in_model,
    responses=None,
    eta_shift=None,
    return_state=False,
):
    """Draw a binary, ordinal or nominal predictor's missing values exactly over its
    categories (:mod:`mlimpute.compatible.categorical`): its own latent model's category
    probability (for a nominal x the multinomial probit's,
    :func:`~mlimpute.compatible.categorical.nominal_log_prob`),
    the analysis model where y is observed and the earlier predictor models that use it,
    each evaluated at every category; one category per row. Returns the draws (codes).
    ``responses`` holds the unshifted columns ``p*`` of the shifted models among
    ``users`` (``delta=``, :mod:`mlimpute.compatible.shift`); ``eta_shift`` moves a
    binary x's own linear predictor on the rows (a shift on the latent scale).

    With a count analysis model its factor is the count likelihood (a Poisson one at
    ``η(x) + e`` with the rows' log-rate residuals e held fixed, the moved log-rates
    written back: :mod:`mlimpute.compatible.counts`); ``return_state=True`` returns
    ``(draws, analysis state)``."""
    from mlimpute.compatible.counts import count_loglik, count_residual, is_count_state, with_eta

    n = plan.layout.n
    st = states[x]
    dx = replace(datas[x], y_obs=values[x])
    dx.refresh(values, plan.static)
    levels = np.unique(values[x])
    if isinstance(st, NominalState):  # one utility per non-reference category
        own = nominal_log_prob(nominal_utilities(st, dx, n)[rows])
    else:
        eta_x = linear_predictor(plan.models[x], st, dx, n)[rows]
        if eta_shift is not None:
            eta_x = eta_x + eta_shift
    cuts = st.cuts if isinstance(st, OrderedState) else np.zeros(1)
    act = y_obs_rows[rows] if in_model else np.zeros(rows.size, dtype=bool)
    K = levels.size
    log_p = np.empty((rows.size, K))
    for k in range(K):  # the few categories, never rows
        log_p[:, k] = (
            own[:, k] if isinstance(st, NominalState) else category_log_prob(eta_x, cuts, k)
        )
    designs = [(da, sa, y_values[rows[act]], act)]
    for p in users:
        dp = replace(datas[p], y_obs=values[p]) if p in categorical else datas[p]
        dp.refresh(values, plan.static)
        v = (responses or {}).get(p, values[p])[rows]
        if isinstance(states[p], OrderedState):  # codes ranked among the present categories
            v = np.searchsorted(np.unique(values[p]), v).astype(np.float64)
        designs.append((dp, states[p], v, None))
    count = is_count_state(sa) and act.any()
    if count:  # the analysis rows' log-rate residuals e, held fixed while x moves
        rd0 = RowDesign(plan, da, rows[act])
        resid = count_residual(sa, rd0, rd0.eta(da, sa, rd0.frame(values, plan.static)))
    for i, (d, state, v, mask) in enumerate(designs):  # every category in one evaluation
        sub = rows if mask is None else rows[mask]
        if sub.size == 0:
            continue
        rd = RowDesign(plan, d, np.tile(sub, K))  # the rows once per category
        frame = rd.frame(values, plan.static)
        # every category on the rows, decoded once: a pandas Categorical keeps its categories
        # (as plain numbers, categories 1 < 2 < 3 would be read by formulaic as a number)
        cand = np.repeat(levels, sub.size)
        lab = decode(cand, plan.like[x]) if x in plan.like else cand
        frame[x] = lab.array if isinstance(lab, pd.Series) else lab
        eta = rd.eta(d, state, frame)
        if i == 0 and count:
            ll = count_loglik(state, np.tile(v, K), eta + np.tile(resid, K))
        else:
            ll = _log_lik(state, np.tile(v, K), eta)
        ll = ll.reshape(K, sub.size).T
        if mask is None:
            log_p = log_p + ll
        else:
            log_p[mask] = log_p[mask] + ll
    draw = levels[draw_categories(rng, log_p)]
    values[x][rows] = draw
    values.touch(x)
    if count:  # the analysis rows' log-rates move with x (e fixed)
        sa = with_eta(sa, rd0, rd0.eta(da, sa, rd0.frame(values, plan.static)) + resid)
    return (draw, sa) if return_state else draw


def latent_responses(rng, plan, p, datas, states, values) -> np.ndarray:
    """Fresh latent responses ``y* ~ N(η, 1)`` of a binary or ordinal predictor's model,
    truncated to the interval of each row's current category (Albert & Chib 1993), every
    row (sorted order).

    Given y* the model is a normal term linear in its predictors, so a level-2 predictor
    that it takes keeps its closed-form draw: drawing y* given the categories and then the
    level-2 values given y* leaves their full conditional given the categories invariant
    (data augmentation; y* is discarded afterwards, and the model's own step draws its
    latent values afresh)."""
    n = plan.layout.n
    st = states[p]
    d = replace(datas[p], y_obs=values[p])
    d.refresh(values, plan.static)
    eta = linear_predictor(plan.models[p], st, d, n)
    v = values[p]
    if isinstance(st, OrderedState):
        rank = np.searchsorted(np.unique(v), v)
        bounds = np.r_[-np.inf, st.cuts, np.inf]
        return truncnorm(rng, eta, bounds[rank], bounds[rank + 1])
    return truncnorm_sign(rng, eta, v > 0.5)


def nominal_utilities(state: NominalState, d: ModelData, n: int) -> np.ndarray:
    """The multinomial probit's linear predictors of every row (sorted order), one column
    per non-reference category, random effects included."""
    core = linear_core(d)
    out = np.empty((n, len(state.cores)))
    for k, c in enumerate(state.cores):  # the few categories
        out[d.obs_idx, k] = core.predict(c, d, "obs")
        if d.n_mis:
            out[d.mis_idx, k] = core.predict(c, d, "mis")
    return out


def fresh_utilities(rng, plan, state: NominalState, d: ModelData, rows: np.ndarray):
    """``state`` with the utilities of ``rows`` (a nominal predictor's missing rows) drawn
    exactly given their current categories
    (:func:`~mlimpute.compatible.categorical.draw_nominal_utilities`): their categories
    were redrawn with the utilities integrated out, so the model's next Gibbs sweep starts
    from the utilities' exact conditional."""
    eta = nominal_utilities(state, d, plan.layout.n)[rows]
    _, rank = np.unique(d.y_obs, return_inverse=True)
    W = state.latent.copy()
    W[rows] = draw_nominal_utilities(rng, eta, rank[rows])
    return replace(state, latent=W)


def mh_draw(
    rng,
    plan,
    x,
    rows,
    mu,
    sigma2_x,
    terms,
    ma,
    sa,
    da,
    values,
    y_values,
    y_obs_rows,
    row_designs,
    states,
    adapt,
):
    """x's missing values where it enters the analysis model non-linearly.

    Rows with the outcome missing: the analysis factor integrates to 1, so x's full
    conditional there is the closed form of its own model and the models it predicts.
    Rows with the outcome observed: one random-walk Metropolis–Hastings step per row
    (vectorised), target ``N(x; μ_x, σ_x²) · Π_m N(v_m; a_m + c_m x, σ_m²) ·
    N(y; η(x), σ_y²)``, proposal SD ``s·√(closed-form variance without the analysis
    term)``; s is tuned toward acceptance 0.44 when ``adapt`` (at every iteration, with the
    diminishing gain of :meth:`mlimpute.compatible.ProposalScale.adapted`). Returns the
    draws and the acceptance rate.
    """
    m_, v_ = conditional_moments(mu, sigma2_x, terms)
    act = y_obs_rows[rows]
    draw = values[x][rows].copy()
    free = ~act
    draw[free] = m_[free] + np.sqrt(v_[free]) * rng.standard_normal(int(free.sum()))
    if not act.any():
        return draw, np.nan
    rd = row_designs[x]
    frame = rd.frame(values, plan.static)
    yo = y_values[rd.rows]
    probit = _probit(sa)
    sign = np.where(yo > 0.5, 1.0, -1.0)
    mu_a, s2x = mu[act], sigma2_x
    lin = [
        (t.response[act], t.offset[act], np.broadcast_to(t.coef, act.shape)[act], t.sigma2)
        for t in terms
    ]

    def log_target(v: np.ndarray) -> np.ndarray:
        frame[x] = v
        eta = rd.eta(da, sa, frame)
        if probit:
            lik = log_ndtr(sign * eta)
        else:
            lik = -0.5 * (yo - eta) ** 2 / sa.sigma2
        out = -0.5 * (v - mu_a) ** 2 / s2x + lik
        for resp, off, c, s2 in lin:
            out = out - 0.5 * (resp - off - c * v) ** 2 / s2
        return np.where(np.isfinite(out), out, -np.inf)

    key = proposal_key(x)
    scale = ProposalScale(*states[key])
    new, scale, rate, _ = rw_step(
        rng, draw[act], log_target, scale, base_sd=np.sqrt(v_[act]), adapt=adapt
    )
    states[key] = (scale.log_scale, scale.n_adapted)
    draw[act] = new
    return draw, rate
