"""One step of the Poisson–log-normal model (``poisson``, ``2l.poisson`` and the count part
of ``zip``, ``2l.zip``): the observed rows' log-rates by independence Metropolis, the linear
core's Gibbs step on them, and the non-centred moves on β, the clusters' b and log σ².

The model, its priors and why each move is there: :mod:`mlimpute.models.counts`. Every
function here reads a :class:`~mlimpute.models.base.ModelData` and moves one chain's
:class:`PoissonState`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from scipy.linalg import lapack

from mlimpute.models._latent import linear_core
from mlimpute.models.base import ModelData
from mlimpute.models.counts_kernels import _log_counts, cached_slope_precision, poisson_eta_step

__all__ = ["PoissonState", "poisson_step", "SIGMA2_PRIOR_DF", "SIGMA2_PRIOR_SCALE"]

#: Prior of the Poisson–log-normal residual variance: scaled-inverse-χ²(ν₀, s₀²).
SIGMA2_PRIOR_DF = 1.0
SIGMA2_PRIOR_SCALE = 1e-4  # see mlimpute.models.counts: sets σ² on equidispersed counts
#: Random-walk steps of the non-centred moves on log σ², one move each per step: a local
#: one, and a wide one that crosses the flat stretch between the prior's scale and the
#: likelihood's upper limit when the counts are close to Poisson.
SIGMA2_STEPS = (0.5, 2.5)

_potrf, _trtrs = lapack.dpotrf, lapack.dtrtrs


def _shift(y: np.ndarray, mu: np.ndarray, delta: np.ndarray, active: np.ndarray | None):
    """Per-row change of the Poisson log-likelihood when η moves by ``delta`` (``mu = e^η``),
    zero on rows outside ``active`` (structural zeros of a zero-inflated model, whose count
    has no likelihood); and the change of ``mu``, ``e^η (e^δ − 1)``. Called inside
    :func:`poisson_step`'s ``np.errstate(over="ignore", invalid="ignore")``: an overflow
    makes a proposal that is never accepted."""
    d_mu = mu * np.expm1(delta)
    ll = y * delta - d_mu
    return (ll if active is None else np.where(active, ll, 0.0)), d_mu


def _kept(data, key: str, fixed: bool, compute):
    """``compute()``, a function of the design and ``y_obs`` only (an array or a tuple of
    arrays), kept in ``data.cache`` with the bytes of the y it was computed from and reused
    only for an equal y (the compatible sampler refits a count predictor's model to its
    completed column, so y may change between steps and differ between the chains that
    share the cache; a reused value is then bit for bit what ``compute()`` would give)."""
    y = data.y_obs
    if fixed:
        kept = data.cache.get(key)
        # equal bytes: exactly the y the value was computed from (cheaper than array_equal)
        if kept is not None and kept[0] == np.asarray(y, dtype=float).tobytes():
            return kept[1]
    value = compute()
    if fixed:
        for v in value if isinstance(value, tuple) else (value,):
            v.setflags(write=False)
        data.cache[key] = (np.asarray(y, dtype=float).tobytes(), value)
    return value


def _beta_walk(data, prec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower Cholesky factor of ``X' diag(y + ½) X + P`` (with a 1e-10 relative jitter on
    the diagonal), ``X'y`` and ``log y`` (:func:`~mlimpute.models.counts_kernels.
    _log_counts`); kept for as long as X is fixed and y unchanged."""

    def compute():
        X, y = data.X.obs, np.asarray(data.y_obs, dtype=float)
        p = X.shape[1]
        info = (X.T * (y + 0.5)) @ X
        diag = info.diagonal() + prec
        info.flat[:: p + 1] = diag + 1e-10 * (1.0 + np.abs(diag))
        L, fail = _potrf(info, lower=1)
        if fail:
            L = np.linalg.cholesky(info)  # raises as a failed factorisation should
        return L, X.T @ y, _log_counts(y)

    return _kept(data, "poisson_beta_walk", not data.X.dynamic, compute)


def _log_ratio(y, mu, d_eta, em1, y_d_eta: float, active) -> float:
    """The Poisson log-likelihood change ``Σ_active y·δ − e^η (e^δ − 1)`` of a move of η by
    ``d_eta`` (``em1 = e^δ − 1``; ``y_d_eta``: ``y·δ`` summed), ``mu`` being ``e^η`` on
    the active rows and 0 elsewhere (whose y are 0: they drop out of both sums); a sum
    made undefined by an overflow (0·∞ on a row outside ``active``, or ∞·0) is taken row
    by row as :func:`_shift` does. Only a Metropolis decision reads it."""
    log_l = y_d_eta - float(mu @ em1)
    if log_l != log_l:  # NaN: an overflow somewhere; the masked sum of the exact terms
        log_l = float(_shift(y, mu, d_eta, active)[0].sum())
    return log_l


def _noncentred_beta(rng, core_state, data, eta, mu, prec, walk, active=None):
    """Random-walk Metropolis on β with e fixed: ``δ ~ N(0, 2.38²/p·(X'MX + P)⁻¹)``,
    ``M = diag(y + ½)`` (the Poisson information ``e^η`` with the counts in place of
    their means: a covariance that does not move with β), target the Poisson likelihood
    times the prior ``N(0, P⁻¹)``. ``mu``: ``e^η`` on the active rows, 0 elsewhere (rows
    outside ``active`` have y = 0); ``walk``: the factor and ``X'y`` of :func:`_beta_walk`.
    Returns β (the core state's own array if the move was rejected), η and ``mu`` after
    the move."""
    X = data.X.obs
    p = X.shape[1]
    L, xty = walk
    z = rng.standard_normal(p) * (2.38 / math.sqrt(p))
    delta = _trtrs(L, z, lower=1, trans=1)[0]  # L'⁻¹z
    beta = core_state.beta
    d_eta = X @ delta
    em1 = np.expm1(d_eta)
    # Σ y·Xδ = (X'y)·δ; the prior's change ½Σ P_k (β_k'² − β_k²), in floats (p is small)
    d, b, pr, c = delta.tolist(), beta.tolist(), prec.tolist(), xty.tolist()
    k = range(p)
    y_d = sum([c[i] * d[i] for i in k])
    prior = sum([pr[i] * d[i] * (2.0 * b[i] + d[i]) for i in k])
    log_a = _log_ratio(data.y_obs, mu, d_eta, em1, y_d, active) - 0.5 * prior
    if math.log(rng.random()) < log_a:
        new_beta = beta + delta
        return new_beta, eta + d_eta, mu + mu * em1
    return beta, eta, mu


def _noncentred_sigma2(rng, s2, data, eta, mu, resid, active=None, step=0.5):
    """Random-walk Metropolis on ``log σ²`` with ``ε = e/σ`` fixed (η moves with σ):
    target the Poisson likelihood times the scaled-inverse-χ²(ν₀, s₀²) prior (on the log
    scale, its density times σ²); ``mu`` as in :func:`_noncentred_beta`, ``step`` the
    walk's SD. Returns σ², η, ``mu`` and the residuals e after the move."""
    tau = math.log(s2)
    new_tau = tau + step * float(rng.standard_normal())
    grow = math.expm1((new_tau - tau) / 2)  # e' = e·(1 + grow)
    d_eta = grow * resid
    y = data.y_obs
    em1 = np.expm1(d_eta)
    log_a = _log_ratio(y, mu, d_eta, em1, float(y @ d_eta), active)
    # the prior's change: −ν₀/2·(τ' − τ) − ν₀s₀²/2·(e^(−τ') − e^(−τ))
    log_a -= SIGMA2_PRIOR_DF / 2 * (new_tau - tau) + SIGMA2_PRIOR_DF * SIGMA2_PRIOR_SCALE / 2 * (
        math.exp(-new_tau) - math.exp(-tau)
    )
    if math.log(rng.random()) < log_a:
        return math.exp(new_tau), eta + d_eta, mu + mu * em1, resid + d_eta
    return s2, eta, mu, resid


def _psi_inverse(psi: np.ndarray) -> np.ndarray:
    """``Ψ⁺`` (the pseudo-inverse: 0 for a zero variance), by division when q = 1."""
    if psi.shape == (1, 1):
        v = float(psi[0, 0])
        return np.array([[1.0 / v if v > 0 else 0.0]])
    return np.linalg.pinv(psi)


def _noncentred_b(rng, core_state, data, eta, mu, active=None):
    """Per-cluster random-walk Metropolis on b_j with e fixed (vectorised over clusters):
    ``δ_jk ~ N(0, 2.38²/q / (Σ_i z_ik² (y_i + ½) + (Ψ⁻¹)_kk))`` (the counts in place of
    their means ``e^(η_i)``: a scale that does not move with b, Ψ being fixed during the
    move), target the cluster's Poisson likelihood times ``N(b_j; 0, Ψ)``. Returns the
    core state, η and ``e^η``."""
    Z, y, seg = data.Z.obs, data.y_obs, data.seg_obs
    q = Z.shape[1]
    b = core_state.b
    psi_inv = _psi_inverse(core_state.psi)
    zz = _kept(
        data, "poisson_b_walk", not data.Z.dynamic, lambda: seg.sum(Z * Z * (y + 0.5)[:, None])
    )
    info = zz + psi_inv.diagonal()
    delta = rng.standard_normal(b.shape) * (2.38 / np.sqrt(q)) / np.sqrt(info)
    if q == 1:
        d_eta = Z[:, 0] * np.take(delta[:, 0], seg.codes)
        new_b = b + delta
        quad = psi_inv[0, 0] * (new_b[:, 0] ** 2 - b[:, 0] ** 2)
    else:
        d_eta = np.einsum("nq,nq->n", Z, np.take(delta, seg.codes, axis=0))
        new_b = b + delta
        quad = np.einsum("jk,kl,jl->j", new_b, psi_inv, new_b) - np.einsum(
            "jk,kl,jl->j", b, psi_inv, b
        )
    ll, d_mu = _shift(y, mu, d_eta, active)
    log_a = seg.sum(ll) - 0.5 * quad
    ok = np.log(rng.random(b.shape[0])) < log_a
    if not ok.any():
        return core_state, eta, mu
    new_b = np.where(ok[:, None], new_b, b)
    keep = np.take(ok, seg.codes)
    return (
        dataclasses.replace(core_state, b=new_b),
        np.where(keep, eta + d_eta, eta),
        np.where(keep, mu + d_mu, mu),
    )


@dataclass(frozen=True)
class PoissonState:
    """The core's state (response η), the observed rows' log-rates, the last acceptance
    and, for a single-level model whose design is fixed, ``(β, x'β)`` of the observed
    rows as the step computed them (the next step reuses ``x'β`` if the core's β is still
    that very array)."""

    core: object
    eta: np.ndarray
    accept: float
    mean: tuple | None = None  # (β, x'β) (single level, fixed design only)


def poisson_step(
    rng: np.random.Generator,
    state: PoissonState,
    data: ModelData,
    active: np.ndarray | None = None,
) -> PoissonState:
    """One step of the Poisson–log-normal model; the counts of rows outside ``active``
    (bool, observed rows) carry no likelihood: their η is drawn from ``N(x'β + z'b, σ²)``.

    ``active=None`` (every row) is the step of ``poisson``/``2l.poisson``; the
    zero-inflated models pass the rows that are not structural zeros. Every row outside
    ``active`` must be a zero (y = 0): the non-centred moves sum ``y·δ`` over all rows.
    """
    core = linear_core(data)
    s2 = float(state.core.sigma2)
    kept = state.mean is not None and not data.X.dynamic and data.Z is None
    if kept and state.mean[0] is state.core.beta and state.mean[1].shape == state.eta.shape:
        mean = state.mean[1]  # x'β at this very β, computed by the last step
    else:
        mean = core.predict(state.core, data, "obs")
    prec = cached_slope_precision(data)
    walk = _beta_walk(data, prec)  # the β walk's factor, X'y and log y (kept: fixed X)
    log_y = walk[2]
    if active is None:
        eta, acc = poisson_eta_step(rng, state.eta, data.y_obs, mean, s2, log_y)
        rate = np.count_nonzero(acc) / acc.size
    else:  # the counted rows by Metropolis, the structural zeros' η from its prior
        rows = active.nonzero()[0]
        eta = rng.standard_normal(mean.shape)
        eta *= math.sqrt(s2)
        eta += mean
        eta[rows], acc = poisson_eta_step(
            rng,
            state.eta[rows],
            data.y_obs[rows],
            mean[rows],
            s2,
            log_y[rows],
        )
        rate = np.count_nonzero(acc) / acc.size if acc.size else 1.0
    new = core.gibbs(rng, state.core, data, eta, sigma2=s2, beta_prec=prec)
    fitted, at = core.predict(new, data, "obs"), new.beta
    resid = eta - fitted
    # non-centred moves (residuals e = η − x'β − z'b held fixed, η shifts with β, b)
    with np.errstate(over="ignore", invalid="ignore"):  # for every move below
        # e^η on the rows whose counts carry a likelihood, 0 on the others (y = 0 there)
        mu = np.exp(eta)
        if active is not None:
            mu = np.where(active, mu, 0.0)
        beta, eta, mu = _noncentred_beta(rng, new, data, eta, mu, prec, walk[:2], active)
        if data.Z is not None:
            new, eta, mu = _noncentred_b(rng, new, data, eta, mu, active)
        ssr = float(resid @ resid) + SIGMA2_PRIOR_DF * SIGMA2_PRIOR_SCALE
        s2 = ssr / rng.chisquare(data.n_obs + SIGMA2_PRIOR_DF)
        for step in SIGMA2_STEPS:
            s2, eta, mu, resid = _noncentred_sigma2(rng, s2, data, eta, mu, resid, active, step)
    # x'β at the β it was computed at (the next step uses it if the moves left that β)
    mean = (at, fitted) if data.Z is None and not data.X.dynamic else None
    core_state = dataclasses.replace(new, beta=beta, sigma2=s2)  # (b by the move above)
    return PoissonState(core_state, eta, float(rate), mean)
