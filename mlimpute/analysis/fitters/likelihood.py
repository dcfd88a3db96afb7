"""The GLMM marginal likelihood: families, quadrature nodes, conditional modes.

Used by :mod:`mlimpute.analysis.fitters.glmm`.

The log density, score and observed weight in ``eta`` of each supported family and link
(:func:`glmm_family` names them), the Gauss-Hermite nodes, and :class:`_Problem`: the
conditional modes of the spherical random effects by Newton's method and the marginal
log-likelihood by adaptive quadrature or the Laplace approximation.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import statsmodels.api as sm
from scipy import special

from mlimpute.analysis.fitters.profiled import _clusters
from mlimpute.errors import UnsupportedError

_LOG_2PI = np.log(2.0 * np.pi)
_SUPPORTED = "binomial (logit, probit), poisson (log) and negative_binomial (log)"
#: Newton iterations for the conditional modes stop when no component moves by more.
_MODE_TOL = 1e-8


# --------------------------------------------------------------------------------------
# families: log density, score and observed weight in eta


def _logit(y: np.ndarray, eta: np.ndarray, derivs: bool):
    logf = y * eta - np.logaddexp(0.0, eta)
    if not derivs:
        return logf
    mu = special.expit(eta)
    return logf, y - mu, mu * (1.0 - mu)


def _probit(y: np.ndarray, eta: np.ndarray, derivs: bool):
    sign = 2.0 * y - 1.0
    x = sign * eta
    logf = special.log_ndtr(x)
    if not derivs:
        return logf
    mills = np.exp(-0.5 * x * x - 0.5 * _LOG_2PI - logf)  # phi(x) / Phi(x), stable
    return logf, sign * mills, mills * (x + mills)


def _poisson_log(y: np.ndarray, eta: np.ndarray, derivs: bool):
    mu = np.exp(eta)
    logf = y * eta - mu  # without -log(y!), added once as a constant
    if not derivs:
        return logf
    return logf, y - mu, mu


def _nb_log(y: np.ndarray, eta: np.ndarray, derivs: bool, r: float = 1.0):
    """NB with mean ``e^η`` and dispersion r (variance ``μ + μ²/r``, glmmTMB's nbinom2),
    without ``−log y!`` (a constant added once): ``log Γ(y + r) − log Γ(r) +
    r·log(r/(r + μ)) + y·log(μ/(r + μ))``; score ``r(y − μ)/(r + μ)``, observed weight
    ``rμ(r + y)/(r + μ)²`` (positive: the log density is concave in η)."""
    d = eta - np.log(r)  # log(μ/r)
    logf = (
        special.gammaln(y + r)
        - special.gammaln(r)
        + r * special.log_expit(-d)
        + y * special.log_expit(d)
    )
    if not derivs:
        return logf
    p = special.expit(d)  # μ/(r + μ)
    return logf, y - (y + r) * p, (y + r) * p * (1.0 - p)


_KERNELS: dict[tuple[str, str], Callable] = {
    ("binomial", "logit"): _logit,
    ("binomial", "probit"): _probit,
    ("poisson", "log"): _poisson_log,
    ("negative_binomial", "log"): _nb_log,
}
#: the families with a dispersion parameter (estimated with the fit)
DISPERSION_FAMILIES = ("negative_binomial",)


def glmm_family(family: str | sm.families.Family, link: str | None = None) -> tuple[str, str]:
    """Normalise a family (and link) to one of the supported ``(family, link)`` pairs.

    Parameters
    ----------
    family : str or statsmodels family
        ``"binomial"``, ``"poisson"`` or ``"negative_binomial"``, or
        ``sm.families.Binomial(...)`` / ``sm.families.Poisson(...)`` /
        ``sm.families.NegativeBinomial(...)`` whose link is used (the NB dispersion of a
        statsmodels family object is ignored: a GLMM estimates it).
    link : str, optional
        ``"logit"`` (binomial default), ``"probit"`` or ``"log"`` (Poisson default);
        only with a family given by name.

    Returns
    -------
    tuple of str
        E.g. ``("binomial", "probit")``.

    Raises
    ------
    UnsupportedError
        For other families and links, naming them.

    Examples
    --------
    >>> import statsmodels.api as sm
    >>> glmm_family(sm.families.Binomial(sm.families.links.Probit()))
    ('binomial', 'probit')
    >>> glmm_family("poisson")
    ('poisson', 'log')
    >>> glmm_family(sm.families.NegativeBinomial())
    ('negative_binomial', 'log')
    """
    if isinstance(family, sm.families.Family):
        if link is not None:
            raise UnsupportedError("give the link in the family object or as link=, not both.")
        name = type(family).__name__.lower()
        link_name = type(family.link).__name__.lower()
    else:
        name = str(family).lower()
        link_name = None if link is None else str(link).lower()
    name = {"negativebinomial": "negative_binomial", "nb": "negative_binomial"}.get(name, name)
    if link_name is None:
        link_name = {"binomial": "logit", "poisson": "log", "negative_binomial": "log"}.get(
            name, ""
        )
    if (name, link_name) not in _KERNELS:
        raise UnsupportedError(
            f"generalised linear mixed models support {_SUPPORTED}; got family {name!r} with "
            f"link {link_name!r}."
        )
    return name, link_name


def _nodes(nagq: int, q: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Hermite nodes ``(K^q, q)`` and log weights for the standard normal density."""
    x, w = np.polynomial.hermite_e.hermegauss(nagq)
    logw = np.log(w) - 0.5 * _LOG_2PI
    grids = np.meshgrid(*([x] * q), indexing="ij")
    lw = np.meshgrid(*([logw] * q), indexing="ij")
    return (np.stack([g.ravel() for g in grids], axis=1), np.sum([a.ravel() for a in lw], axis=0))


# --------------------------------------------------------------------------------------
# the marginal likelihood


class _Problem:
    """One data set, sorted by cluster, with its marginal log-likelihood.

    ``loglik(beta, lam)`` finds the conditional modes (warm-started from the last
    call's) and evaluates the quadrature. Cost per evaluation:
    ``O(n q^2 (newton iterations) + n K^q)`` plus ``O(J q^3)`` batched factorisations.
    """

    def __init__(self, y, X, Z, groups, family: tuple[str, str], nagq: int, mask):
        n = y.size
        order, starts, sizes = _clusters(groups, n)
        self.y = np.take(y, order)
        self.X = np.take(X, order, axis=0)
        self.Z = np.take(Z, order, axis=0)
        self.starts = starts
        self.codes = np.repeat(np.arange(sizes.size), sizes)
        self.n, self.p = X.shape
        self.q = Z.shape[1]
        self.J = sizes.size
        self._kernel = _KERNELS[family]
        self.family = family
        self.r = 1.0  # NB dispersion (set by loglik)
        counts = family[0] in ("poisson", "negative_binomial")
        self.const = -float(special.gammaln(self.y + 1.0).sum()) if counts else 0.0
        self.nagq = nagq
        self.t, logw = _nodes(nagq, self.q)
        self.shift = 0.5 * np.einsum("kq,kq->k", self.t, self.t) + logw
        self.rows, self.cols = np.nonzero(np.tril(mask))
        self.u = np.zeros((self.J, self.q))
        self.mode_failures = 0

    def kernel(self, y: np.ndarray, eta: np.ndarray, derivs: bool):
        """The family's log density (and score, weight) in η at the current dispersion."""
        if self.family[0] in DISPERSION_FAMILIES:
            return self._kernel(y, eta, derivs, self.r)
        return self._kernel(y, eta, derivs)

    def seg(self, a: np.ndarray) -> np.ndarray:
        return np.add.reduceat(a, self.starts, axis=0)

    def lam(self, theta: np.ndarray) -> np.ndarray:
        out = np.zeros((self.q, self.q))
        out[self.rows, self.cols] = theta
        return out

    def _eta(self, off: np.ndarray, V: np.ndarray, u: np.ndarray) -> np.ndarray:
        if self.q == 1:
            return off + V[:, 0] * np.take(u[:, 0], self.codes)
        return off + np.einsum("nq,nq->n", V, np.take(u, self.codes, axis=0))

    def _hessian(self, V: np.ndarray, w: np.ndarray) -> np.ndarray:
        """``H_j = I + sum_i w_i v_i v_i'`` for all clusters, ``(J, q, q)``."""
        vw = V * w[:, None]
        return self.seg(vw[:, :, None] * V[:, None, :]) + np.eye(self.q)

    def modes(self, off: np.ndarray, V: np.ndarray, u0: np.ndarray):
        """Conditional modes by Newton's method, all clusters at once.

        Returns ``(u, eta, logf, H, converged)`` at the modes.
        """
        u = u0.copy()
        u_old, h_old = u.copy(), np.full(self.J, -np.inf)
        converged = False
        for _ in range(100):
            eta = self._eta(off, V, u)
            logf, s, w = self.kernel(self.y, eta, True)
            h = self.seg(logf) - 0.5 * np.einsum("jq,jq->j", u, u)
            worse = ~(h >= h_old - 1e-10 * (1.0 + np.abs(h_old)))
            if worse.any():  # step halving in the clusters whose h decreased (or is nan)
                u[worse] = 0.5 * (u[worse] + u_old[worse])
                continue
            g = self.seg(V * s[:, None]) - u
            H = self._hessian(V, w)
            step = g / H[:, :, 0] if self.q == 1 else np.linalg.solve(H, g[:, :, None])[..., 0]
            u_old, h_old = u, h
            u = u + step
            if np.max(np.abs(step), initial=0.0) < _MODE_TOL:
                converged = True
                break
        eta = self._eta(off, V, u)
        logf, _, w = self.kernel(self.y, eta, True)
        if not np.all(np.isfinite(u)):
            converged = False
        return u, eta, logf, self._hessian(V, w), converged

    def loglik(
        self, beta: np.ndarray, theta: np.ndarray, *, keep: bool = False, r: float | None = None
    ) -> float:
        """Approximate marginal log-likelihood at ``(beta, theta)`` (and NB dispersion r)."""
        if r is not None:
            if not np.isfinite(r) or r <= 0:
                return -np.inf
            self.r = float(r)
        off = self.X @ beta
        V = self.Z @ self.lam(theta)  # rows v_i = L' z_i
        u, eta, logf, H, ok = self.modes(off, V, self.u)
        if not ok:
            self.mode_failures += 1
            return -np.inf
        if keep:
            self.u = u
        if self.q == 1:
            logdet = np.log(H[:, 0, 0])
            A = 1.0 / np.sqrt(H[:, 0, 0])[:, None, None]
        else:
            R = np.linalg.cholesky(H)
            logdet = 2.0 * np.log(np.diagonal(R, axis1=1, axis2=2)).sum(axis=1)
            A = np.linalg.inv(R).transpose(0, 2, 1)  # A A' = H^-1
        if self.nagq == 1:
            ell = self.seg(logf) - 0.5 * np.einsum("jq,jq->j", u, u)
            return float(np.sum(ell - 0.5 * logdet) + self.const)
        if self.q == 1:  # d eta / d t, per row
            eta_k = eta[:, None] + (V[:, 0] * np.take(A[:, 0, 0], self.codes))[:, None] * self.t.T
            uk = u[:, None, :] + A[:, :, 0][:, None, :] * self.t[None, :, :]
        else:
            D = np.einsum("nq,nqr->nr", V, np.take(A, self.codes, axis=0))
            eta_k = eta[:, None] + D @ self.t.T  # (n, K)
            uk = u[:, None, :] + np.einsum("jqr,kr->jkq", A, self.t)  # (J, K, q)
        ell = self.seg(self.kernel(self.y[:, None], eta_k, False))  # (J, K)
        g = ell - 0.5 * np.einsum("jkq,jkq->jk", uk, uk) + self.shift
        top = g.max(axis=1)
        with np.errstate(invalid="ignore", over="ignore"):
            lse = top + np.log(np.exp(g - top[:, None]).sum(axis=1))
            total = np.sum(lse - 0.5 * logdet)
        return float(total + self.const) if np.isfinite(total) else -np.inf
