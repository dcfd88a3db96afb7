"""Maximum likelihood of the latent covariate model on one complete data set.

The model of Lüdtke et al. (2008, *Psychological Methods* 13:203-229), with ξ_j the
latent cluster mean of x (``lmean(x)``) and w_j the cluster-level columns::

    x_ij = ξ_j + e_ij,        ξ_j = w_j'α + r_j,   r_j ~ N(0, τ),  e_ij ~ N(0, σ_x²)
    y_ij = w_j'γ + b1 x_ij + b2 ξ_j + u_j + ε_ij,   u_j ~ N(0, ψ),  ε_ij ~ N(0, σ²)

ξ_j is integrated out: each cluster's (x, y) rows are jointly normal, and with x and y
complete the likelihood factorises (Helmert contrasts within each cluster) into

* a within part: the pooled within-cluster cross-products ``S`` of (x, y), Wishart with
  ``N − J`` degrees of freedom and covariance
  ``Σ_W = [[σ_x², b1 σ_x²], [b1 σ_x², b1² σ_x² + σ²]]``;
* a between part: the cluster means ``(x̄_j, ȳ_j) ~ N(m_j, Σ_B + Σ_W / n_j)`` with
  ``Σ_B = [[τ, bt τ], [bt τ, bt² τ + ψ]]``, ``bt = b1 + b2``, and means
  ``m_j = (w_j'α, w_j'δ)``, ``δ = γ + bt α``.

So the model is the bivariate random-intercept model of (x, y) with the same cluster-level
columns in both means, reparametrised: ``(σ_x², b1, σ²) ↔ Σ_W`` and ``(τ, bt, ψ) ↔ Σ_B``
one to one. The fit maximises over ``v = (log σ_x², b1, log σ², log τ, bt, log ψ)`` with the
means profiled out (a generalised least-squares solve with 2×2 weights per cluster), by
L-BFGS-B on the analytic gradient (log-variances bounded 25 units around the log of the
within variance of x and y), then Newton steps on the Hessian from central differences
of that gradient; every cluster-level quantity is an array over clusters with
closed-form 2×2 inverses and determinants. The start is the moment estimates of Σ_W and
Σ_B (τ and ψ raised to 5 % of a cluster mean's within variance when the moments leave
them lower). With equal cluster sizes the
maximum has a closed form (within and between moments, :func:`closed_form`), which the
tests check.

Standard errors come from the observed information: the Hessian of the log-likelihood
in ``φ = (α, δ, v)`` by central differences of its analytic gradient (relative step
1e-5), inverted, and carried to the model's parameters ``(γ, b1, b2, α, τ, σ_x², ψ, σ²)``
by the delta method. At the maximum this equals the inverse observed information of
those parameters themselves (the gradient vanishes there). When the observed information
is not positive definite (its diagonally scaled form has an eigenvalue at or below 1e-8:
a flat or upward-curving direction, as when x's cluster means hardly vary beyond their
sampling error and the between-cluster covariance of x and y is at its boundary) the fit
is a boundary fit (:attr:`LatentFit.boundary`) without standard errors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize

from mlimpute.analysis.fitters.base import MixedFit
from mlimpute.errors import DataError

__all__ = [
    "LatentFit",
    "NOT_POSITIVE_DEFINITE",
    "closed_form",
    "fit_latent",
    "latent_loglike",
    "positive_definite",
]

_LOG_2PI = np.log(2.0 * np.pi)
#: Bounds of the log-variances (a variance below e^-25 relative to 1 is a boundary fit).
_LOG_BOUND = 25.0
#: Relative step of the central differences of the gradient (observed information).
_STEP = 1e-5
#: Smallest eigenvalue of the diagonally scaled observed information still taken as
#: positive (:func:`positive_definite`): below it a direction is flat or curves up, as
#: at a variance on its boundary, and the inverse is no covariance.
_PD_TOL = 1e-8
#: :attr:`LatentFit.messages` of a fit whose observed information is not positive definite.
NOT_POSITIVE_DEFINITE = "observed information not positive definite (a boundary fit)"


@dataclass(frozen=True, eq=False)
class LatentFit(MixedFit):
    """One maximum-likelihood fit of the latent covariate model.

    The fields of :class:`~mlimpute.analysis.fitters.base.MixedFit` describe y's model:
    ``fe_params`` are ``(γ, b1, b2)`` (cluster-level columns, x, ``lmean(x)``) in that
    order, ``cov_fe`` their covariance, ``cov_re`` ``[[ψ]]``, ``scale`` σ², ``cov_vc`` the
    covariance of ``(ψ, σ²)``; ``llf`` is the joint log-likelihood of x and y. The rest
    is x's model.
    """

    x_params: np.ndarray | None = None  # α, the cluster-level coefficients of ξ's mean
    tau: float = float("nan")  # variance of ξ
    sigma2_x: float = float("nan")  # within-cluster variance of x
    #: covariance of all parameters (γ, b1, b2, α, τ, σ_x², ψ, σ²)
    cov_all: np.ndarray | None = None
    #: the optimiser's variances ``v`` (a warm start for :func:`fit_latent`)
    start: np.ndarray | None = None
    #: the observed information is not positive definite: the maximum is on the boundary
    #: of the parameter space (e.g. the latent variance τ or ψ near zero, the between-
    #: cluster covariance of x and y singular); ``cov_fe`` and ``cov_all`` are NaN
    boundary: bool = False


class _Stats:
    """Sufficient statistics of one data set: cluster sizes and means, within SSCP."""

    def __init__(self, x, y, codes, W):
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        codes = np.asarray(codes)
        W = np.asarray(W, dtype=float)
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y)) and np.all(np.isfinite(W))):
            raise DataError("the latent covariate model needs complete, finite x, y and w")
        J = W.shape[0]
        n = np.bincount(codes, minlength=J).astype(float)
        if n.size != J or np.any(n == 0):
            raise DataError(f"cluster codes must be 0..{J - 1}, each with rows")
        self.n, self.N, self.J, self.W = n, float(x.size), J, W
        self.xm = np.bincount(codes, x, J) / n
        self.ym = np.bincount(codes, y, J) / n
        dx, dy = x - self.xm[codes], y - self.ym[codes]
        self.S = np.array([[dx @ dx, dx @ dy], [dx @ dy, dy @ dy]])
        self.const = -self.N * _LOG_2PI - np.log(n).sum()
        if self.N - J < 2:
            raise DataError("the latent covariate model needs clusters with several rows")


def _sigmas(v):
    lsx, b1, ls2, lt, bt, lpsi = v
    sx, s2, tau, psi = np.exp(lsx), np.exp(ls2), np.exp(lt), np.exp(lpsi)
    sw = np.array([[sx, b1 * sx], [b1 * sx, b1 * b1 * sx + s2]])
    sb = np.array([[tau, bt * tau], [bt * tau, bt * bt * tau + psi]])
    return sw, sb


def _derivs(v) -> tuple[list, list]:
    """∂Σ_W/∂v_k and ∂Σ_B/∂v_k (k = 0..5)."""
    lsx, b1, ls2, lt, bt, lpsi = v
    sx, s2, tau, psi = np.exp(lsx), np.exp(ls2), np.exp(lt), np.exp(lpsi)
    z = np.zeros((2, 2))
    dw = [
        sx * np.array([[1.0, b1], [b1, b1 * b1]]),
        np.array([[0.0, sx], [sx, 2.0 * b1 * sx]]),
        np.array([[0.0, 0.0], [0.0, s2]]),
        z,
        z,
        z,
    ]
    db = [
        z,
        z,
        z,
        tau * np.array([[1.0, bt], [bt, bt * bt]]),
        np.array([[0.0, tau], [tau, 2.0 * bt * tau]]),
        np.array([[0.0, 0.0], [0.0, psi]]),
    ]
    return dw, db


def _between(st: _Stats, sw, sb):
    """Per cluster: V_j = Σ_B + Σ_W/n_j as (a, b, c), its determinant and inverse."""
    a = sb[0, 0] + sw[0, 0] / st.n
    b = sb[0, 1] + sw[0, 1] / st.n
    c = sb[1, 1] + sw[1, 1] / st.n
    det = a * c - b * b
    return det, c / det, -b / det, a / det  # det, inverse (i00, i01, i11)


def _gls(st: _Stats, i00, i01, i11):
    """(α, δ) maximising the between part given the variances (weights V_j⁻¹)."""
    W = st.W
    k = W.shape[1]
    ww = W[:, :, None] * W[:, None, :]
    p00, p01, p11 = i00, i01, i11
    A = np.empty((2 * k, 2 * k))
    A[:k, :k] = np.tensordot(p00, ww, 1)
    A[:k, k:] = A[k:, :k] = np.tensordot(p01, ww, 1)
    A[k:, k:] = np.tensordot(p11, ww, 1)
    r = np.r_[W.T @ (p00 * st.xm + p01 * st.ym), W.T @ (p01 * st.xm + p11 * st.ym)]
    sol = np.linalg.solve(A, r)
    return sol[:k], sol[k:]


def _loglik(st: _Stats, v, means=None, grad: bool = True):
    """Log-likelihood at variances ``v`` and means ``(α, δ)`` (profiled when None), with
    its gradient in ``v`` and, if ``means`` are given, in ``(α, δ)`` first."""
    sw, sb = _sigmas(v)
    detw = sw[0, 0] * sw[1, 1] - sw[0, 1] ** 2
    det, i00, i01, i11 = _between(st, sw, sb)
    if np.any(det <= 0) or detw <= 0:
        return -np.inf, None
    alpha, delta = _gls(st, i00, i01, i11) if means is None else means
    dx = st.xm - st.W @ alpha
    dy = st.ym - st.W @ delta
    u0 = i00 * dx + i01 * dy  # V_j⁻¹ d_j
    u1 = i01 * dx + i11 * dy
    swi = np.array([[sw[1, 1], -sw[0, 1]], [-sw[0, 1], sw[0, 0]]]) / detw
    dfw = st.N - st.J
    quad = (dx * u0 + dy * u1).sum()
    ll = st.const - 0.5 * (dfw * np.log(detw) + np.sum(swi * st.S) + np.log(det).sum() + quad)
    if not grad:
        return ll, None
    # dℓ = tr(G_W dΣ_W) + tr(G_B dΣ_B), M_j = V_j⁻¹ − u_j u_j'
    m00, m01, m11 = i00 - u0 * u0, i01 - u0 * u1, i11 - u1 * u1
    gb = -0.5 * np.array([[m00.sum(), m01.sum()], [m01.sum(), m11.sum()]])
    mw = np.array([[(m00 / st.n).sum(), (m01 / st.n).sum()], [(m01 / st.n).sum(), 0.0]])
    mw[1, 1] = (m11 / st.n).sum()
    gw = -0.5 * (dfw * swi - swi @ st.S @ swi + mw)
    dw, db = _derivs(v)
    gv = np.array([np.sum(gw * a) + np.sum(gb * b) for a, b in zip(dw, db, strict=True)])
    if means is None:
        return ll, gv
    ga = st.W.T @ u0
    gd = st.W.T @ u1
    return ll, np.r_[ga, gd, gv]


def _moments(st: _Stats) -> tuple[np.ndarray, np.ndarray]:
    """Moment estimates of ``(Σ_W, Σ_B)``: the within cross-products over ``N − J``, and
    the cross-products of the cluster means' residuals from their least-squares fit on w
    over J, less Σ_W times the mean of 1/n_j. With equal cluster sizes and Σ_B positive
    definite these are the ML estimates."""
    sw = st.S / (st.N - st.J)
    coef, *_ = np.linalg.lstsq(st.W, np.c_[st.xm, st.ym], rcond=None)
    res = np.c_[st.xm, st.ym] - st.W @ coef
    return sw, res.T @ res / st.J - sw * np.mean(1.0 / st.n)


def _start(st: _Stats) -> np.ndarray:
    """Starting variances ``v``: :func:`_moments`, τ and ψ at least 5 % of the within
    variance of a cluster mean (so that the start is inside the parameter space)."""
    sw, sb = _moments(st)
    tau = max(sb[0, 0], 0.05 * sw[0, 0] * np.mean(1.0 / st.n))
    bt = sb[0, 1] / tau
    psi = max(sb[1, 1] - bt * bt * tau, 0.05 * sw[1, 1] * np.mean(1.0 / st.n))
    b1 = sw[0, 1] / sw[0, 0]
    s2 = sw[1, 1] - b1 * b1 * sw[0, 0]
    return np.array([np.log(sw[0, 0]), b1, np.log(s2), np.log(tau), bt, np.log(psi)])


def _scales(st: _Stats) -> tuple[float, float]:
    """Variances of x and y, to put the log-variance bounds on their scale."""
    return st.S[0, 0] / (st.N - st.J), st.S[1, 1] / (st.N - st.J)


def closed_form(x, y, codes, W=None) -> dict[str, float]:
    """The maximum-likelihood estimates with equal cluster sizes, from moments.

    Within: ``Σ_W = S / (N − J)``; between: ``Σ_B = S_B / J − Σ_W / n`` with ``S_B`` the
    cross-products of the cluster means' residuals from their least-squares fit on
    ``W``. The maximum when all clusters have ``n`` rows and this ``Σ_B`` is positive
    definite (otherwise the maximum is on the boundary and differs).

    Returns
    -------
    dict
        ``b1``, ``b2``, ``tau``, ``sigma2_x``, ``psi``, ``sigma2``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> codes = np.repeat(np.arange(50), 4)
    >>> xi = rng.normal(size=50)
    >>> x = xi[codes] + rng.normal(size=200)
    >>> y = x + xi[codes] + rng.normal(size=50)[codes] + rng.normal(size=200)
    >>> cf = closed_form(x, y, codes)
    >>> bool(cf["psi"] > 0 and cf["tau"] > 0)
    True
    >>> fit = fit_latent(x, y, codes)
    >>> bool(abs(fit.fe_params[2] - cf["b2"]) < 1e-6)
    True
    """
    st = _Stats(x, y, codes, np.ones((int(np.max(codes)) + 1, 1)) if W is None else W)
    if np.ptp(st.n) != 0:
        raise DataError("the closed form needs equal cluster sizes")
    sw, sb = _moments(st)
    b1, bt = sw[0, 1] / sw[0, 0], sb[0, 1] / sb[0, 0]
    return {
        "b1": float(b1),
        "b2": float(bt - b1),
        "tau": float(sb[0, 0]),
        "sigma2_x": float(sw[0, 0]),
        "psi": float(sb[1, 1] - bt * bt * sb[0, 0]),
        "sigma2": float(sw[1, 1] - b1 * b1 * sw[0, 0]),
    }


def latent_loglike(x, y, codes, W, params: dict) -> float:
    """The log-likelihood of the latent covariate model at given parameters.

    Parameters
    ----------
    x, y : array_like, shape (n,)
    codes : array_like of int, shape (n,)
        Cluster of each row, ``0 .. J − 1``.
    W : array_like, shape (J, k)
        Cluster-level columns (an intercept among them).
    params : dict
        ``gamma`` (k,), ``b1``, ``b2``, ``alpha`` (k,), ``tau``, ``sigma2_x``, ``psi``,
        ``sigma2``.

    Returns
    -------
    float

    Examples
    --------
    >>> codes = np.repeat(np.arange(3), 2)
    >>> x, y = np.arange(6.0), np.array([0.0, 1, 1, 3, 2, 6])
    >>> p = dict(gamma=[0.0], b1=0.5, b2=0.2, alpha=[2.5], tau=1.0, sigma2_x=1.0, psi=0.5,
    ...          sigma2=1.0)
    >>> round(latent_loglike(x, y, codes, np.ones((3, 1)), p), 4)
    -21.347
    """
    st = _Stats(x, y, codes, W)
    bt = params["b1"] + params["b2"]
    alpha = np.asarray(params["alpha"], dtype=float)
    delta = np.asarray(params["gamma"], dtype=float) + bt * alpha
    v = np.array(
        [
            np.log(params["sigma2_x"]),
            params["b1"],
            np.log(params["sigma2"]),
            np.log(params["tau"]),
            bt,
            np.log(params["psi"]),
        ]
    )
    return float(_loglik(st, v, (alpha, delta), grad=False)[0])


def fit_latent(x, y, codes, W=None, *, start: np.ndarray | None = None) -> LatentFit:
    """Maximum-likelihood fit of the latent covariate model (module docstring).

    Parameters
    ----------
    x, y : array_like, shape (n,)
        The predictor whose latent cluster mean enters y's model, and the response;
        complete.
    codes : array_like of int, shape (n,)
        Cluster of each row, ``0 .. J − 1``; clusters may differ in size.
    W : array_like, shape (J, k), optional
        Cluster-level columns of both means, ξ's and y's (default: an intercept only).
    start : ndarray, shape (6,), optional
        Starting variances ``v`` (another fit's :attr:`LatentFit.start`); default
        the moment estimates.

    Returns
    -------
    LatentFit
        ``fe_params`` = ``(γ, b1, b2)``.

    Raises
    ------
    DataError
        For missing values, clusters of one row only, or a singular ``W``.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> codes = np.repeat(np.arange(100), 5)
    >>> xi = rng.normal(size=100)
    >>> x = xi[codes] + rng.normal(size=500)
    >>> y = 0.5 * x + 0.3 * xi[codes] + rng.normal(size=500)
    >>> f = fit_latent(x, y, codes)
    >>> f.fe_params.shape, bool(f.converged)
    ((3,), True)
    """
    W = np.ones((int(np.max(codes)) + 1, 1)) if W is None else np.asarray(W, dtype=float)
    st = _Stats(x, y, codes, W)
    if np.linalg.matrix_rank(W) < W.shape[1]:
        raise DataError("the cluster-level columns of the latent covariate model are collinear")
    v0 = _start(st) if start is None else np.asarray(start, dtype=float)
    lx, ly = np.log(_scales(st))
    bx, by = (lx - _LOG_BOUND, lx + _LOG_BOUND), (ly - _LOG_BOUND, ly + _LOG_BOUND)
    bounds = [bx, (None, None), by, bx, (None, None), by]

    def objective(v):
        ll, g = _loglik(st, v)
        if not np.isfinite(ll):
            return np.inf, np.zeros(6)
        return -ll, -g

    res = optimize.minimize(
        objective,
        v0,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 1000, "ftol": 1e-13, "gtol": 1e-6},
    )
    v = _newton(st, res.x, bounds)
    ll, g = _loglik(st, v)
    converged = bool(np.isfinite(ll) and np.max(np.abs(g)) < 1e-4)
    sw, sb = _sigmas(v)
    _, i00, i01, i11 = _between(st, sw, sb)
    alpha, delta = _gls(st, i00, i01, i11)
    phi = np.r_[alpha, delta, v]
    cov_phi, messages = _inverse_information(st, phi)
    return _assemble(st, phi, cov_phi, ll, converged, (*messages, str(res.message)))


def _hessian(grad, phi: np.ndarray) -> np.ndarray:
    """Hessian of ℓ by central differences of its gradient ``grad`` (symmetrised)."""
    p = phi.size
    H = np.empty((p, p))
    for i in range(p):  # parameters, not clusters
        h = _STEP * max(1.0, abs(phi[i]))
        e = np.zeros(p)
        e[i] = h
        H[i] = (grad(phi + e) - grad(phi - e)) / (2.0 * h)
    return (H + H.T) / 2.0


def _newton(st: _Stats, v: np.ndarray, bounds, steps: int = 8) -> np.ndarray:
    """Polish the quasi-Newton optimum with Newton steps on the profiled likelihood (step
    halving, within the bounds); stops when a step moves no parameter by 1e-10."""
    lo = np.array([-np.inf if b[0] is None else b[0] for b in bounds])
    hi = np.array([np.inf if b[1] is None else b[1] for b in bounds])
    ll, g = _loglik(st, v)
    for _ in range(steps):
        try:
            step = -np.linalg.solve(_hessian(lambda f: _loglik(st, f)[1], v), g)
        except np.linalg.LinAlgError:
            return v
        if not np.all(np.isfinite(step)):
            return v
        for _ in range(30):
            new = np.clip(v + step, lo, hi)
            ll_new, g_new = _loglik(st, new)
            if ll_new >= ll:
                break
            step = step / 2.0
        else:
            return v
        done = np.max(np.abs(new - v)) < 1e-10
        v, ll, g = new, ll_new, g_new
        if done:
            break
    return v


def _inverse_information(st: _Stats, phi: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """Inverse of the Hessian of −ℓ in φ by central differences of the analytic gradient;
    all NaN, with the message :data:`NOT_POSITIVE_DEFINITE`, when that observed information
    is not positive definite (:func:`positive_definite`): a boundary fit."""
    k = st.W.shape[1]
    p = phi.size
    H = -_hessian(lambda f: _loglik(st, f[2 * k :], (f[:k], f[k : 2 * k]))[1], phi)
    if not positive_definite(H):
        return np.full((p, p), np.nan), (NOT_POSITIVE_DEFINITE,)
    try:
        return np.linalg.inv(H), ()
    except np.linalg.LinAlgError:  # pragma: no cover - positive definite matrices invert
        return np.full((p, p), np.nan), (NOT_POSITIVE_DEFINITE,)


def positive_definite(H: np.ndarray, tol: float = _PD_TOL) -> bool:
    """Whether a symmetric matrix is positive definite beyond rounding: finite, with a
    positive diagonal, and the smallest eigenvalue of its diagonally scaled form
    ``D^-1/2 H D^-1/2`` (unit diagonal; unchanged by the units of the parameters) above
    ``tol``.

    Examples
    --------
    >>> positive_definite(np.array([[2.0, 0.0], [0.0, 1e-6]]))
    True
    >>> positive_definite(np.array([[1.0, 1.0], [1.0, 1.0]]))
    False
    """
    H = np.asarray(H, dtype=float)
    d = np.diag(H)
    if not (np.all(np.isfinite(H)) and np.all(d > 0)):
        return False
    s = 1.0 / np.sqrt(d)
    return bool(np.linalg.eigvalsh(H * s[:, None] * s[None, :])[0] > tol)


def _assemble(st, phi, cov_phi, ll, converged, messages) -> LatentFit:
    """The model's parameters from φ = (α, δ, v), their covariance by the delta method."""
    k = st.W.shape[1]
    alpha, delta, v = phi[:k], phi[k : 2 * k], phi[2 * k :]
    lsx, b1, ls2, lt, bt, lpsi = v
    sx, s2, tau, psi = np.exp(lsx), np.exp(ls2), np.exp(lt), np.exp(lpsi)
    gamma = delta - bt * alpha
    # θ = (γ (k), b1, b2, α (k), τ, σ_x², ψ, σ²) as a function of φ
    p = phi.size
    jac = np.zeros((2 * k + 6, p))
    ia, idl = np.arange(k), k + np.arange(k)
    iv = 2 * k + np.arange(6)  # lsx, b1, ls2, lt, bt, lpsi
    jac[ia, ia] = -bt
    jac[ia, idl] = 1.0
    jac[ia, iv[4]] = -alpha
    jac[k, iv[1]] = 1.0
    jac[k + 1, iv[4]] = 1.0
    jac[k + 1, iv[1]] = -1.0
    jac[k + 2 + ia, ia] = 1.0
    r = 2 * k + 2
    jac[r, iv[3]] = tau
    jac[r + 1, iv[0]] = sx
    jac[r + 2, iv[5]] = psi
    jac[r + 3, iv[2]] = s2
    cov = jac @ cov_phi @ jac.T
    fe = np.r_[gamma, b1, bt - b1]
    return LatentFit(
        fe_params=fe,
        cov_fe=cov[: k + 2, : k + 2],
        cov_re=np.array([[psi]]),
        scale=float(s2),
        llf=float(ll),
        reml=False,
        nobs=int(st.N),
        n_groups=int(st.J),
        converged=converged,
        messages=tuple(m for m in messages if m),
        boundary=NOT_POSITIVE_DEFINITE in messages,
        theta=np.array([np.sqrt(psi / s2)]),
        optimizer="L-BFGS-B",
        cov_vc=cov[r + 2 :, r + 2 :],
        x_params=alpha,
        tau=float(tau),
        sigma2_x=float(sx),
        cov_all=cov,
        start=v.copy(),
    )
