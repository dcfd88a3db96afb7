"""lme4's profiled deviance of a linear mixed model, and Newton's method on it.

:class:`_Profiled` evaluates the profiled REML or ML deviance (``beta`` and ``sigma2``
profiled out) and its analytic gradient in the relative Cholesky factor ``theta``, from
cluster sums computed once per data set, and minimises it (Newton's method with a
Hessian from differences of gradients, bounded Nelder-Mead where that fails); used by
:func:`mlimpute.analysis.fitters.mixedlm.fit_mixedlm`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import optimize

from mlimpute.errors import DataError

#: Smallest diagonal entry of ``Lambda`` Newton's method starts from
#: (:meth:`_Profiled.minimise_newton`).
START_FLOOR = 0.05
#: Newton's method stops when no step exceeds this (relative to ``max(1, |theta|)``).
NEWTON_XTOL = 1e-9
NEWTON_MAXITER = 100
#: Forward-difference step (relative) of the Hessian from the analytic gradient.
NEWTON_FD_STEP = 1e-6


def _clusters(groups: ArrayLike, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort order, start rows and sizes of the clusters (each cluster non-empty)."""
    codes, _ = pd.factorize(pd.Series(np.asarray(groups)), use_na_sentinel=True)
    if codes.size != n:
        raise DataError(f"groups has {codes.size} entries for {n} rows.")
    if np.any(codes < 0):
        raise DataError(f"cluster id missing in row {int(np.flatnonzero(codes < 0)[0])}.")
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    return order, starts, np.diff(np.r_[starts, n])


class _Profiled:
    """lme4's profiled deviance ``-2 log L(theta)`` of a linear mixed model, its gradient,
    and its minimisation.

    ``theta`` packs the free entries of the relative Cholesky factor ``Lambda``
    (``Tau / sigma2 = Lambda Lambda'``); ``beta`` and ``sigma2`` are profiled out. With
    ``M_j = I + Lambda' A_j Lambda``, ``A_j = Z_j' Z_j`` (Woodbury, as in
    :func:`mixedlm_loglike`) every quantity comes from the cluster sums ``A_j`` and
    ``B_j = Z_j' [y X]_j``, computed once, so one evaluation costs
    ``O(J q^2 (q + p) + p^3)``, independent of ``n``:

    * ML: ``log|V| + n (1 + log(2 pi pwrss / n))``;
    * REML: ``log|V| + log|X'V^{-1}X| + (n - p)(1 + log(2 pi pwrss / (n - p)))``,

    with ``V`` relative to ``sigma2``, ``log|V| = sum_j log|M_j|``,
    ``S = [y X]' V^{-1} [y X] = W'W - sum_j B_j' P_j B_j`` (``P_j = Lambda M_j^{-1}
    Lambda'``) and ``pwrss = min_beta r'V^{-1}r = S_yy - S_yX S_XX^{-1} S_Xy`` (Bates et
    al. 2015, Eqs 34 and 41).

    **Gradient.** For the entry ``(r, c)`` of ``Lambda`` (``dLambda = e_r e_c'``), with
    ``C_j = M_j^{-1} Lambda'`` and ``G_j = I - P_j A_j``: ``d log|M_j| = 2 (C_j A_j)_cr``
    and ``dP_j = G_j dLambda C_j + (G_j dLambda C_j)'``, so ``dS = -(T + T')`` with
    ``T = sum_j (G_j' B_j)_r.' (C_j B_j)_c.``. Then ``d pwrss = v' dS v`` with
    ``v = (1, -beta)`` (the envelope theorem: ``beta`` minimises ``pwrss``) and
    ``d log|S_XX| = tr(S_XX^{-1} dS_XX)``. :meth:`evaluate` works on a batch of
    ``theta`` at once, which is how :meth:`minimise_newton` gets its Hessian.
    """

    def __init__(self, y, X, Z, groups, mask: np.ndarray, reml: bool, clusters=None):
        n, p = X.shape
        order, starts, _ = _clusters(groups, n) if clusters is None else clusters

        def seg(a: np.ndarray) -> np.ndarray:
            return np.add.reduceat(np.take(a, order, axis=0), starts, axis=0)

        w = np.column_stack([y, X])
        self.ztz = seg(Z[:, :, None] * Z[:, None, :])  # A_j, (J, q, q)
        self.ztr = seg(Z[:, :, None] * w[:, None, :])  # B_j, (J, q, 1 + p)
        self.wtw = w.T @ w
        self.n, self.p, self.q = n, p, Z.shape[1]
        self.rows, self.cols = np.nonzero(np.tril(mask))
        self.diag = self.rows == self.cols
        self.bounds = [(0.0, None) if d else (None, None) for d in self.diag]
        self.reml = reml
        self.nu = n - p if reml else n
        self.evaluations = 0  # deviance evaluations (a batch of b counts b)

    def lam(self, theta: np.ndarray) -> np.ndarray:
        """``Lambda`` of ``theta``; a batch ``(b, K)`` gives ``(b, q, q)``."""
        theta = np.asarray(theta, dtype=float)
        out = np.zeros(theta.shape[:-1] + (self.q, self.q))
        out[..., self.rows, self.cols] = theta
        return out

    def theta_of(self, rel_cov: np.ndarray) -> np.ndarray:
        """``theta`` of a relative covariance ``Tau / sigma2`` (may be singular)."""
        return _lower_cholesky(rel_cov)[self.rows, self.cols]

    def _m_inverse(self, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(log|M|, M^{-1})`` of a stack of symmetric positive definite ``M`` (>= I)."""
        if self.q == 1:
            return np.log(m[..., 0, 0]), 1.0 / m
        if self.q == 2:  # written out: 5x faster than the batched LAPACK calls here
            a, b, d = m[..., 0, 0], m[..., 0, 1], m[..., 1, 1]
            det = a * d - b * b
            inv = np.stack([np.stack([d, -b], -1), np.stack([-b, a], -1)], -2)
            inv /= det[..., None, None]
            return np.log(det), inv
        _, logdet = np.linalg.slogdet(m)
        return logdet, np.linalg.inv(m)

    def evaluate(self, thetas: np.ndarray, gradient: bool = True):
        """Deviance (and its gradient) at each row of ``thetas``, shape ``(b, K)``.

        Returns ``(dev, grad)`` of shapes ``(b,)`` and ``(b, K)`` (``grad`` is None
        without ``gradient``); ``inf`` where the deviance is undefined (a singular
        ``X'V^{-1}X`` or a perfect fit).
        """
        th = np.atleast_2d(np.asarray(thetas, dtype=float))
        b = th.shape[0]
        self.evaluations += b
        lam = self.lam(th)[:, None]  # (b, 1, q, q)
        lt = lam.transpose(0, 1, 3, 2)
        lt_a = lt @ self.ztz  # Lambda' A_j, (b, J, q, q)
        m = lt_a @ lam
        m[..., range(self.q), range(self.q)] += 1.0
        logdet_m, minv = self._m_inverse(m)
        lt_b = lt @ self.ztr  # Lambda' B_j, (b, J, q, 1 + p)
        h = minv @ lt_b  # C_j B_j
        s = self.wtw - np.einsum("bjqa,bjqc->bac", lt_b, h)  # (b, 1 + p, 1 + p)
        sxx = s[:, 1:, 1:]
        try:
            r_x = np.linalg.cholesky(sxx)
        except np.linalg.LinAlgError:
            return np.full(b, np.inf), (np.zeros_like(th) if gradient else None)
        beta = np.linalg.solve(sxx, s[:, 1:, :1])[..., 0]  # (b, p)
        pwrss = s[:, 0, 0] - np.einsum("bp,bp->b", beta, s[:, 1:, 0])
        ok = pwrss > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            nu = self.nu
            dev = logdet_m.sum(axis=1) + nu * (1.0 + np.log(2.0 * np.pi * pwrss / nu))
            if self.reml:
                dev = dev + 2.0 * np.log(np.diagonal(r_x, axis1=1, axis2=2)).sum(axis=1)
        dev = np.where(ok, dev, np.inf)
        if not gradient:
            return dev, None
        rows, cols = self.rows, self.cols
        # d log|M_j| / d Lambda_rc = 2 (M_j^-1 Lambda' A_j)_cr
        g_logdet = 2.0 * (minv @ lt_a)[:, :, cols, rows].sum(axis=1)
        # T_k = sum_j a_j[r_k]' h_j[c_k] with a_j = G_j' B_j = B_j - A_j Lambda h_j
        a = self.ztr - self.ztz @ (lam @ h)
        t = np.einsum("bjka,bjkc->bkac", a[:, :, rows, :], h[:, :, cols, :])
        v = np.concatenate([np.ones((b, 1)), -beta], axis=1)
        d_pwrss = -2.0 * np.einsum("ba,bkac,bc->bk", v, t, v)
        with np.errstate(divide="ignore", invalid="ignore"):
            grad = g_logdet + nu * d_pwrss / pwrss[:, None]
        if self.reml:
            grad = grad - 2.0 * np.einsum("bac,bkac->bk", np.linalg.inv(sxx), t[:, :, 1:, 1:])
        return dev, np.where(ok[:, None], grad, 0.0)

    def deviance(self, theta: np.ndarray) -> float:
        return float(self.evaluate(theta, gradient=False)[0][0])

    def deviance_and_gradient(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        dev, grad = self.evaluate(theta)
        return float(dev[0]), grad[0]

    def estimates(self, theta: np.ndarray):
        """``(beta, Tau, sigma2, cov_fe, deviance)`` at ``theta``.

        ``cov_fe = sigma2 S_XX^{-1}`` is lme4's ``vcov()``, ``(X' V^{-1} X)^{-1}`` with the
        absolute ``V`` at the estimates.
        """
        lam = self.lam(theta)
        lt = lam.T
        lt_b = lt @ self.ztr
        m = lt @ self.ztz @ lam
        m[:, range(self.q), range(self.q)] += 1.0
        s = self.wtw - np.einsum("jqa,jqc->ac", lt_b, np.linalg.solve(m, lt_b))
        beta = np.linalg.solve(s[1:, 1:], s[1:, 0])
        pwrss = s[0, 0] - beta @ s[1:, 0]
        sigma2 = float(pwrss / self.nu)
        return (
            beta,
            sigma2 * lam @ lam.T,
            sigma2,
            sigma2 * np.linalg.inv(s[1:, 1:]),
            self.deviance(theta),
        )

    def _unprofiled(self, x: np.ndarray) -> np.ndarray:
        """The deviance with ``sigma2`` not profiled out, at rows ``x = (theta, log sigma2)``.

        ``-2 log L = sum_j log|M_j| [+ log|S_XX|] + nu log(2 pi sigma2) + pwrss / sigma2``
        (REML, or ML with ``beta`` profiled out; ``nu = n - p`` or ``n``); minimised over
        ``log sigma2`` it is :meth:`evaluate`'s deviance.
        """
        x = np.atleast_2d(np.asarray(x, dtype=float))
        th, s = x[:, :-1], x[:, -1]
        lam = self.lam(th)[:, None]
        lt = lam.transpose(0, 1, 3, 2)
        m = lt @ self.ztz @ lam
        m[..., range(self.q), range(self.q)] += 1.0
        logdet_m, minv = self._m_inverse(m)
        lt_b = lt @ self.ztr
        sm = self.wtw - np.einsum("bjqa,bjqc->bac", lt_b, minv @ lt_b)
        sxx = sm[:, 1:, 1:]
        beta = np.linalg.solve(sxx, sm[:, 1:, :1])[..., 0]
        pwrss = sm[:, 0, 0] - np.einsum("bp,bp->b", beta, sm[:, 1:, 0])
        dev = logdet_m.sum(axis=1) + self.nu * (np.log(2.0 * np.pi) + s) + pwrss * np.exp(-s)
        if self.reml:
            dev = dev + np.linalg.slogdet(sxx)[1]
        return dev

    def vc_covariance(self, theta: np.ndarray, sigma2: float) -> np.ndarray:
        """Sampling covariance of the variance parameters from the observed information.

        The parameters are ``phi = (Tau[r_k, c_k] for the free entries k of Lambda, sigma2)``
        (the lower-triangular free entries of the absolute random-effect covariance, in
        ``theta``'s order, then the residual variance). The Hessian of the unprofiled
        REML/ML deviance (:meth:`_unprofiled`) in ``x = (theta, log sigma2)`` is taken by
        central differences (step 1e-4, relative; one batch of ``2 d^2 + 1`` deviances,
        ``d = K + 1``), ``cov(x) = 2 H^{-1}`` (the deviance is ``-2 log L``), and the
        delta method with the analytic Jacobian of ``Tau = sigma2 Lambda Lambda'`` gives
        ``cov(phi)``. For REML this is the inverse observed REML information, as
        ``lme4``'s profile-based Wald intervals (``confint(method = "Wald")`` on the
        variance scale). Returns a ``(d, d)`` array, all NaN when the Hessian is not
        positive definite (e.g. a variance estimated as zero).
        """
        th = np.asarray(theta, dtype=float)
        x0 = np.r_[th, np.log(sigma2)]
        d = x0.size
        h = 1e-4 * np.maximum(1.0, np.abs(x0))
        eye = np.eye(d) * h
        i, j = np.triu_indices(d, 1)
        pts = [x0[None], x0 + eye, x0 - eye]
        for si, sj in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
            pts.append(x0 + si * eye[i] + sj * eye[j])
        f = self._unprofiled(np.vstack(pts))
        f0, fp, fm = f[0], f[1 : 1 + d], f[1 + d : 1 + 2 * d]
        npair = i.size
        fpp, fpm, fmp, fmm = f[1 + 2 * d :].reshape(4, npair)
        hess = np.diag((fp - 2.0 * f0 + fm) / h**2)
        off = (fpp - fpm - fmp + fmm) / (4.0 * h[i] * h[j])
        hess[i, j] = off
        hess[j, i] = off
        nan = np.full((d, d), np.nan)
        if not np.all(np.isfinite(hess)):
            return nan
        try:
            np.linalg.cholesky(hess)
        except np.linalg.LinAlgError:
            return nan
        cov_x = 2.0 * np.linalg.inv(hess)
        # Jacobian of phi in x: d Tau / d theta_k = sigma2 (E_k Lambda' + Lambda E_k')
        lam = self.lam(th)
        jac = np.zeros((d, d))
        for k, (r, c) in enumerate(zip(self.rows, self.cols, strict=True)):
            e = np.zeros((self.q, self.q))
            e[r, c] = 1.0
            dtau = sigma2 * (e @ lam.T + lam @ e.T)
            jac[:-1, k] = dtau[self.rows, self.cols]
        jac[:-1, -1] = (sigma2 * lam @ lam.T)[self.rows, self.cols]
        jac[-1, -1] = sigma2
        return jac @ cov_x @ jac.T

    def canonical(self, theta: np.ndarray) -> np.ndarray:
        """The same ``Lambda Lambda'`` with non-negative diagonal: columns with a negative
        diagonal entry change sign (exactly; the deviance is even in each column)."""
        theta = np.asarray(theta, dtype=float).copy()
        for k in np.flatnonzero(self.diag & (theta < 0)):
            theta[self.cols == self.cols[k]] *= -1.0
        return theta

    def minimise_newton(self, theta0: np.ndarray) -> tuple[np.ndarray, bool, str]:
        """Newton's method on the profiled deviance, checked, Nelder-Mead as the fallback.

        Returns ``(theta, converged, optimiser)``, ``theta`` with a non-negative diagonal.

        ``theta`` is left unbounded: the deviance is even in each column of ``Lambda``,
        so a variance at zero is an interior minimum in ``theta`` (of the form
        ``c theta_kk^2``) and needs no bound, and a bound would trap the iterations on
        the wrong side of a column's sign (a covariance of the wrong sign with a variance
        at zero is a local minimum of the bounded problem). The Hessian is
        forward differences of the analytic gradient, all ``K + 1`` gradients in one batch
        (:meth:`evaluate`); its eigenvalues are replaced by their absolute values (with a
        floor) so that every step descends, with backtracking while the predicted
        decrease is above the rounding level of the deviance and full Newton steps (root
        finding on the gradient, which stays accurate where the deviance no longer
        resolves differences) below it. Diagonal entries of the start below
        ``START_FLOOR`` are raised to it: on ``theta_kk = 0`` the derivative in
        ``theta_kk`` vanishes whatever the optimum.

        The result is accepted when the steps have shrunk below 1e-9 (relative), the
        Hessian has no clearly negative eigenvalue and no coordinate step of 1e-3
        (relative) lowers the deviance; otherwise the bounded Nelder-Mead of
        :meth:`minimise` continues from there.
        """
        x = np.asarray(theta0, dtype=float).copy()
        x[self.diag] = np.where(np.abs(x[self.diag]) >= START_FLOOR, x[self.diag], START_FLOOR)
        eye = np.eye(x.size)
        converged = saddle = check = False
        x_acc, dev_acc, slope, t = x, np.inf, 0.0, 1.0
        step = np.zeros(x.size)
        for _ in range(NEWTON_MAXITER):
            h = NEWTON_FD_STEP * np.maximum(1.0, np.abs(x))
            dev, grad = self.evaluate(np.vstack([x, x + h[:, None] * eye]))
            if not np.isfinite(dev[0]) or (check and dev[0] > dev_acc - 1e-4 * t * slope):
                if not np.isfinite(dev_acc) and not check:
                    break  # the start itself is undefined
                t *= 0.5  # backtrack from the last accepted point
                if t < 1e-10:
                    break
                x = x_acc + t * step
                continue
            hess = (grad[1:] - grad[0]).T / h
            w, v = np.linalg.eigh((hess + hess.T) / 2.0)
            top = max(np.abs(w).max(), 1e-12)
            saddle = bool(w[0] < -1e-6 * top)
            x_acc, dev_acc = x, dev[0]
            step = -(v @ ((v.T @ grad[0]) / np.maximum(np.abs(w), 1e-8 * top)))
            slope = -float(grad[0] @ step)  # predicted decrease (x2), > 0
            t = 1.0
            x = x_acc + step
            if np.max(np.abs(step) / np.maximum(1.0, np.abs(x_acc))) < NEWTON_XTOL:
                converged = True
                break
            # below the deviance's rounding level: full Newton steps, unchecked
            check = slope > 1e-10 * max(1.0, abs(dev_acc))
        x = self.canonical(x)
        if converged and not saddle and self._no_descent(x, self.deviance(x)):
            return x, True, "Newton"
        opt = self.minimise(x if np.isfinite(self.deviance(x)) else np.asarray(theta0, float))
        return self.canonical(opt.x), bool(opt.success), "Newton, then Nelder-Mead"

    def _no_descent(self, theta: np.ndarray, dev: float) -> bool:
        """No step of 1e-3 (relative) along one coordinate lowers the deviance."""
        k = theta.size
        h = 1e-3 * np.maximum(1.0, np.abs(theta))
        probes = np.vstack([theta + h[:, None] * np.eye(k), theta - h[:, None] * np.eye(k)])
        return bool(
            np.all(self.evaluate(probes, gradient=False)[0] >= dev - 1e-10 * max(1.0, abs(dev)))
        )

    def minimise(self, theta0: np.ndarray) -> optimize.OptimizeResult:
        """Bounded Nelder-Mead from ``theta0``, restarted once from where it stops.

        Derivative-free, like lme4's default optimisers; the fallback of
        :meth:`minimise_newton` and the check of the statsmodels engine. About 500
        evaluations for ``q = 2``, and ``theta`` only to about 1e-7: the deviance no longer
        resolves smaller steps.
        """
        best = None
        start = np.asarray(theta0, dtype=float)
        for step in (0.25, 0.02):
            simplex = np.vstack([start, start + step * np.eye(start.size)])
            res = optimize.minimize(
                self.deviance,
                start,
                method="Nelder-Mead",
                bounds=self.bounds,
                options={
                    "initial_simplex": simplex,
                    "xatol": 1e-9,
                    "fatol": 1e-11,
                    "maxiter": 1000 * start.size,
                },
            )
            if best is None or res.fun <= best.fun:
                best = res
            start = best.x
        return best


def _lower_cholesky(a: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a PSD matrix; a zero pivot gives a zero column."""
    a = (a + a.T) / 2.0
    q = a.shape[0]
    low = np.zeros_like(a)
    for k in range(q):
        d = a[k, k] - low[k, :k] @ low[k, :k]
        low[k, k] = np.sqrt(max(d, 0.0))
        if low[k, k] > 1e-12 * max(1.0, np.sqrt(abs(a[k, k]))):
            low[k + 1 :, k] = (a[k + 1 :, k] - low[k + 1 :, :k] @ low[k, :k]) / low[k, k]
    return low
