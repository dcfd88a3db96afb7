"""The profiled deviance of a model with several random-effect terms, and its minimisation.

:class:`_MultiProfiled` is the engine of
:func:`mlimpute.analysis.fitters.multiterm.fit_multiterm` (the model, the two ways of
eliminating the random effects and the optimiser are described there).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import linalg, sparse

from mlimpute.errors import DataError, UnsupportedError

if TYPE_CHECKING:
    from mlimpute.analysis.fitters.multiterm import Term


#: Most random effects outside the first eliminated term that a crossed design factorises
#: densely (see :mod:`mlimpute.analysis.fitters.multiterm`).
DENSE_LIMIT = 3000
#: Relative steps of the central differences of Newton's method: Hessian and gradient.
HESS_STEP = 1e-4
GRAD_STEP = 1e-6


def _segment_sum(codes: np.ndarray, n_groups: int, a: np.ndarray) -> np.ndarray:
    """Sums of the rows of ``a`` (n, ...) per group: (n_groups, ...)."""
    n = codes.size
    ind = sparse.csr_matrix((np.ones(n), (codes, np.arange(n))), shape=(n_groups, n))
    flat = a.reshape(n, -1)
    return np.asarray(ind @ flat).reshape((n_groups,) + a.shape[1:])


def _nested_in(a: Term, b: Term) -> bool:
    """Every group of ``a`` lies in one group of ``b``."""
    pairs = a.codes * np.int64(b.n_groups) + b.codes
    return np.unique(pairs).size == a.n_groups


def _inv_logdet(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(log|M|, M^{-1})`` of a stack of symmetric positive definite matrices."""
    q = m.shape[-1]
    if q == 1:
        return np.log(m[..., 0, 0]), 1.0 / m
    if q == 2:
        a, b, d = m[..., 0, 0], m[..., 0, 1], m[..., 1, 1]
        det = a * d - b * b
        inv = np.stack([np.stack([d, -b], -1), np.stack([-b, a], -1)], -2)
        return np.log(det), inv / det[..., None, None]
    return np.linalg.slogdet(m)[1], np.linalg.inv(m)


class _MultiProfiled:
    """lme4's profiled deviance of a model with several random-effect terms.

    ``theta`` holds term by term (formula order) the free lower entries of ``Lambda_k``
    (row-major). :meth:`parts` gives ``log|Lambda'Z'Z Lambda + I|`` and ``S = W'V^{-1}W``
    for a batch of ``theta``; everything else derives from them.
    """

    def __init__(self, y, X, terms: Sequence[Term], reml: bool, structure: str | None = None):
        n, p = X.shape
        self.n, self.p, self.reml = n, p, reml
        self.nu = n - p if reml else n
        self.terms = list(terms)
        self.sizes = [t.q for t in terms]
        self.tri = [np.nonzero(np.tril(t.mask)) for t in terms]
        counts = [r.size for r, _ in self.tri]
        bounds = np.cumsum([0, *counts])
        self.slices = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        self.K = int(bounds[-1])
        self.mask = _block_diag([t.mask for t in terms]).astype(bool)
        self.rows, self.cols = np.nonzero(np.tril(self.mask))
        self.diag = self.rows == self.cols
        self.bounds = [(0.0, None) if d else (None, None) for d in self.diag]
        W = np.column_stack([y, X])
        self.wtw = W.T @ W
        order = sorted(range(len(terms)), key=lambda k: -terms[k].n_groups)
        chain = all(
            _nested_in(terms[a], terms[b]) for a, b in zip(order[:-1], order[1:], strict=True)
        )
        if structure is None:
            structure = "nested" if chain else "crossed"
        if structure == "nested" and not chain:
            raise DataError("the grouping factors are not nested in one another.")
        self.structure = structure
        if structure == "nested":
            self._setup_nested(order, W)
        else:
            self._setup_crossed(W)
        self.evaluations = 0

    # -- set-up -----------------------------------------------------------------------
    def _setup_nested(self, order: list[int], W: np.ndarray) -> None:
        """Cross products per group of each level, groups sorted by their parent."""
        terms = self.terms
        self.levels = order
        L = len(order)
        codes = [None] * L
        codes[L - 1] = terms[order[-1]].codes
        self.parent_starts: list[np.ndarray] = [None] * (L - 1)
        for lev in range(L - 2, -1, -1):
            t = terms[order[lev]]
            parent = np.empty(t.n_groups, dtype=np.int64)
            parent[t.codes] = codes[lev + 1]
            perm = np.argsort(parent, kind="stable")
            relabel = np.empty(t.n_groups, dtype=np.int64)
            relabel[perm] = np.arange(t.n_groups)
            codes[lev] = relabel[t.codes]
            self.parent_starts[lev] = np.flatnonzero(np.r_[True, np.diff(parent[perm]) != 0])
        self.G = []
        for lev in range(L):
            t = terms[order[lev]]
            cols = np.column_stack([terms[k].Z for k in order[lev:]] + [W])
            self.G.append(_segment_sum(codes[lev], t.n_groups, t.Z[:, :, None] * cols[:, None, :]))

    def _setup_crossed(self, W: np.ndarray) -> None:
        """Sparse cross products: the first term's blocks, the rest as sparse matrices."""
        terms = self.terms
        first = int(np.argmax([t.n_groups * t.q for t in terms]))
        self.first = first
        self.rest = [k for k in range(len(terms)) if k != first]
        q_rest = sum(terms[k].n_groups * terms[k].q for k in self.rest)
        if q_rest > DENSE_LIMIT:
            raise UnsupportedError(
                f"crossed random effects with {q_rest} random effects outside the largest "
                f"term ({terms[first].name or 'the first'}): at most {DENSE_LIMIT} are "
                "supported (a dense factorisation); use fewer groups in the smaller "
                "grouping factors."
            )
        t0 = terms[first]
        self.G0 = _segment_sum(
            t0.codes, t0.n_groups, t0.Z[:, :, None] * np.column_stack([t0.Z, W])[:, None, :]
        )
        # the cross products of the first term with each other term, one (q0, q_k) block
        # per pair of groups that share rows; the sparse matrices below keep a fixed
        # pattern (whole blocks) so that an evaluation only rewrites their values
        self.pair_blocks = []
        rows, cols, off = [], [], 0
        for k in self.rest:
            t = terms[k]
            pair, uniq = pd.factorize(t0.codes * np.int64(t.n_groups) + t.codes)
            blocks = _segment_sum(pair, len(uniq), t0.Z[:, :, None] * t.Z[:, None, :])
            self.pair_blocks.append(blocks)
            g0, h = np.divmod(np.asarray(uniq, dtype=np.int64), t.n_groups)
            a, c = np.meshgrid(np.arange(t0.q), np.arange(t.q), indexing="ij")
            rows.append((g0[:, None, None] * t0.q + a).ravel())
            cols.append((off + h[:, None, None] * t.q + c).ravel())
            off += t.n_groups * t.q
        self.Cth, self.c_perm = _pattern(
            np.concatenate(rows), np.concatenate(cols), (t0.n_groups * t0.q, q_rest)
        )
        rows, cols, off = [], [], 0
        for k in self.rest:
            t = terms[k]
            g = np.arange(t.n_groups)[:, None, None]
            a, c = np.meshgrid(np.arange(t.q), np.arange(t.q), indexing="ij")
            rows.append((off + g * t.q + a).ravel())
            cols.append((off + g * t.q + c).ravel())
            off += t.n_groups * t.q
        self.lr, self.lr_perm = _pattern(
            np.concatenate(rows), np.concatenate(cols), (q_rest, q_rest)
        )
        J0 = t0.n_groups
        self.binv = sparse.bsr_matrix(
            (np.zeros((J0, t0.q, t0.q)), np.arange(J0), np.arange(J0 + 1)),
            shape=(J0 * t0.q,) * 2,
        )
        zr = sparse.hstack([_sparse_design(terms[k]) for k in self.rest]).tocsr()
        self.Arr = (zr.T @ zr).toarray()
        self.ZrW = np.asarray(zr.T @ W)
        self.q_rest = q_rest

    # -- the deviance -----------------------------------------------------------------
    def lams(self, thetas: np.ndarray) -> list[np.ndarray]:
        """Per term ``Lambda_k`` of a batch of ``theta``: ``(b, q_k, q_k)`` each."""
        th = np.atleast_2d(np.asarray(thetas, dtype=float))
        out = []
        for (r, c), sl, q in zip(self.tri, self.slices, self.sizes, strict=True):
            lam = np.zeros((th.shape[0], q, q))
            lam[:, r, c] = th[:, sl]
            out.append(lam)
        return out

    def parts(self, thetas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(log|Lambda'Z'Z Lambda + I|, S)`` for each row of ``thetas``: ``(b,)``,
        ``(b, 1 + p, 1 + p)``; ``log|.|`` is NaN where a factorisation fails."""
        lams = self.lams(thetas)
        self.evaluations += lams[0].shape[0]
        if self.structure == "nested":
            return self._parts_nested(lams)
        out = [self._parts_crossed([lam[i] for lam in lams]) for i in range(lams[0].shape[0])]
        return np.array([o[0] for o in out]), np.array([o[1] for o in out])

    def _parts_nested(self, lams: list[np.ndarray]):
        b = lams[0].shape[0]
        logdet = np.zeros(b)
        U = None
        L = len(self.levels)
        for lev, k in enumerate(self.levels):
            q = self.sizes[k]
            G = self.G[lev][None]  # (1, J, q, c)
            pieces, pos = [], 0
            for m in self.levels[lev:]:
                qm = self.sizes[m]
                pieces.append(G[..., pos : pos + qm] @ lams[m][:, None])
                pos += qm
            pieces.append(np.broadcast_to(G[..., pos:], (b,) + G.shape[1:3] + (G.shape[3] - pos,)))
            A = np.swapaxes(lams[k], -1, -2)[:, None] @ np.concatenate(pieces, axis=-1)
            if U is not None:
                A = A - U[:, :, :q, :]
            D = A[..., :q].copy()
            D[..., range(q), range(q)] += 1.0
            F = A[..., q:]
            with np.errstate(divide="ignore", invalid="ignore"):
                ld, Dinv = _inv_logdet(D)
            logdet += ld.sum(axis=1)
            C = np.swapaxes(F, -1, -2) @ (Dinv @ F)
            if U is not None:
                C = C + U[:, :, q:, q:]
            if lev < L - 1:
                U = np.add.reduceat(C, self.parent_starts[lev], axis=1)
            else:
                S = self.wtw - C.sum(axis=1)
        return logdet, S

    def _parts_crossed(self, lams: list[np.ndarray]):
        terms = self.terms
        t0 = terms[self.first]
        q0 = t0.q
        l0 = lams[self.first]
        G0 = self.G0
        A = l0.T @ G0[..., :q0] @ l0
        A[:, range(q0), range(q0)] += 1.0
        F0 = l0.T @ G0[..., q0:]  # (J0, q0, 1 + p)
        with np.errstate(divide="ignore", invalid="ignore"):
            ld0, Dinv = _inv_logdet(A)
        H0 = Dinv @ F0
        lr = self.lr
        lr.data[:] = np.concatenate(
            [np.tile(lams[k].ravel(), terms[k].n_groups) for k in self.rest]
        )[self.lr_perm]
        Cth = self.Cth  # (J0 q0, q_rest): Lambda_0' Z_0'Z_r Lambda_r
        Cth.data[:] = np.concatenate(
            [(l0.T @ b @ lams[k]).ravel() for k, b in zip(self.rest, self.pair_blocks, strict=True)]
        )[self.c_perm]
        J0 = t0.n_groups
        binv = self.binv
        binv.data[:] = Dinv
        T = binv @ Cth
        if all(terms[k].q == 1 for k in self.rest):  # Lambda_r diagonal: scale rows, columns
            lv = lr.diagonal()
            M = lv[:, None] * self.Arr * lv[None, :]
            wr = lv[:, None] * self.ZrW
        else:
            M = np.asarray(lr.T @ (lr.T @ self.Arr).T).T  # Lambda_r' A_rr Lambda_r
            wr = np.asarray(lr.T @ self.ZrW)
        if T.shape[0] * T.shape[1] <= 4_000_000:  # Cth' T with a dense T: no sparse fill
            M = M - np.asarray(Cth.T @ T.toarray())
        else:
            M = M - (Cth.T @ T.tocsr()).toarray()
        M[np.diag_indices_from(M)] += 1.0
        Wr = wr - Cth.T @ H0.reshape(J0 * q0, -1)
        try:
            R = np.linalg.cholesky((M + M.T) / 2.0)
        except np.linalg.LinAlgError:
            return np.nan, np.full(self.wtw.shape, np.nan)
        sol = linalg.solve_triangular(R, Wr, lower=True)
        S = self.wtw - np.einsum("jqa,jqc->ac", F0, H0) - sol.T @ sol
        logdet = ld0.sum() + 2.0 * np.log(np.diagonal(R)).sum()
        return logdet, S

    def evaluate(self, thetas: np.ndarray) -> np.ndarray:
        """Profiled deviance at each row of ``thetas`` (``inf`` where undefined)."""
        logdet, S = self.parts(thetas)
        return self._deviance(logdet, S)

    def _deviance(self, logdet: np.ndarray, S: np.ndarray) -> np.ndarray:
        b = logdet.shape[0]
        dev = np.full(b, np.inf)
        for i in range(b):
            est = self._profile(S[i])
            if est is None or not np.isfinite(logdet[i]):
                continue
            _, pwrss, logdet_x = est
            nu = self.nu
            d = logdet[i] + nu * (1.0 + np.log(2.0 * np.pi * pwrss / nu))
            dev[i] = d + logdet_x if self.reml else d
        return dev

    def _profile(self, S: np.ndarray):
        """``(beta, pwrss, log|S_XX|)`` of one ``S``; None where undefined."""
        if not np.all(np.isfinite(S)):
            return None
        sxx = S[1:, 1:]
        try:
            r = np.linalg.cholesky(sxx)
        except np.linalg.LinAlgError:
            return None
        beta = np.linalg.solve(sxx, S[1:, 0])
        pwrss = S[0, 0] - beta @ S[1:, 0]
        if not pwrss > 0:
            return None
        return beta, pwrss, 2.0 * np.log(np.diagonal(r)).sum()

    def deviance(self, theta: np.ndarray) -> float:
        return float(self.evaluate(np.asarray(theta, dtype=float)[None])[0])

    # -- estimates --------------------------------------------------------------------
    def lam_global(self, theta: np.ndarray) -> np.ndarray:
        """Block-diagonal ``Lambda`` of all terms, ``(Q, Q)``."""
        return _block_diag([lam[0] for lam in self.lams(theta)])

    def estimates(self, theta: np.ndarray):
        """``(beta, Tau, sigma2, cov_fe, deviance)`` at ``theta`` (``Tau`` block diagonal)."""
        logdet, S = self.parts(np.asarray(theta, dtype=float)[None])
        est = self._profile(S[0])
        if est is None:
            raise DataError("the fixed effects are not estimable at the optimum.")
        beta, pwrss, _ = est
        sigma2 = float(pwrss / self.nu)
        lam = self.lam_global(theta)
        dev = float(self._deviance(logdet, S)[0])
        return beta, sigma2 * lam @ lam.T, sigma2, sigma2 * np.linalg.inv(S[0, 1:, 1:]), dev

    def _unprofiled(self, x: np.ndarray) -> np.ndarray:
        """Deviance with ``sigma2`` not profiled out, at rows ``x = (theta, log sigma2)``."""
        x = np.atleast_2d(np.asarray(x, dtype=float))
        s = x[:, -1]
        logdet, S = self.parts(x[:, :-1])
        out = np.full(x.shape[0], np.inf)
        for i in range(x.shape[0]):
            est = self._profile(S[i])
            if est is None:
                continue
            _, pwrss, logdet_x = est
            d = logdet[i] + self.nu * (np.log(2.0 * np.pi) + s[i]) + pwrss * np.exp(-s[i])
            out[i] = d + logdet_x if self.reml else d
        return out

    def vc_covariance(self, theta: np.ndarray, sigma2: float) -> np.ndarray:
        """Sampling covariance of ``(free lower entries of Tau, sigma2)``, as
        :meth:`mlimpute.analysis.fitters.profiled._Profiled.vc_covariance`: the inverse of
        half the Hessian of the unprofiled deviance in ``(theta, log sigma2)`` (central
        differences, step 1e-4 relative), carried to the variance scale by the delta
        method. All NaN when that Hessian is not positive definite."""
        th = np.asarray(theta, dtype=float)
        x0 = np.r_[th, np.log(sigma2)]
        hess = _difference_derivatives(self._unprofiled, x0)[2]
        d = x0.size
        nan = np.full((d, d), np.nan)
        if hess is None:
            return nan
        try:
            np.linalg.cholesky(hess)
        except np.linalg.LinAlgError:
            return nan
        cov_x = 2.0 * np.linalg.inv(hess)
        lam = self.lam_global(th)
        q = lam.shape[0]
        jac = np.zeros((d, d))
        for k, (r, c) in enumerate(zip(self.rows, self.cols, strict=True)):
            e = np.zeros((q, q))
            e[r, c] = 1.0
            dtau = sigma2 * (e @ lam.T + lam @ e.T)
            jac[:-1, k] = dtau[self.rows, self.cols]
        jac[:-1, -1] = (sigma2 * lam @ lam.T)[self.rows, self.cols]
        jac[-1, -1] = sigma2
        return jac @ cov_x @ jac.T

    # -- minimisation -----------------------------------------------------------------
    def canonical(self, theta: np.ndarray) -> np.ndarray:
        """The same ``Lambda Lambda'`` with a non-negative diagonal (column sign flips)."""
        theta = np.asarray(theta, dtype=float).copy()
        for k in np.flatnonzero(self.diag & (theta < 0)):
            theta[self.cols == self.cols[k]] *= -1.0
        return theta

    def minimise(self, theta0: np.ndarray) -> tuple[np.ndarray, bool, str]:
        """Newton's method from ``theta0``; ``(theta, converged, how)``.

        The first iteration evaluates the deviance on one batch of ``2 K^2 + 2 K + 1``
        points around ``theta`` (:func:`_difference_derivatives`: central-difference
        gradient and Hessian) and replaces the Hessian's eigenvalues by their absolute
        values (with a floor) so that the step descends; later iterations update that
        Hessian by BFGS from central-difference gradients (``2K + 1`` points each), and
        a fresh difference Hessian replaces it when a step fails. Steps are halved until
        the deviance decreases enough (Armijo); below the deviance's resolution (a
        predicted decrease under 1e-9 of it) full steps are taken while the deviance
        does not rise beyond rounding. It stops when the step is below 1e-9 (relative)
        or the predicted decrease below 1e-15 of the deviance.

        ``theta`` is left unbounded, as in
        :meth:`mlimpute.analysis.fitters.profiled._Profiled.minimise_newton`: the
        deviance is even in each column of ``Lambda_k``, so ``theta_kk = 0`` is a
        stationary point that a bound at zero would trap the iterations in (a random
        slope whose variance is positive would end at zero); a variance at zero is an
        interior minimum of the form ``c theta_kk^2``. Diagonal entries of the start below
        0.05 are raised to it. The result is made canonical (a non-negative diagonal).
        Where a coordinate step of 1e-3 (relative) still lowers the deviance, Newton's
        method restarts from there (at most twice); ``converged`` is False when it
        still does.
        """
        x = np.asarray(theta0, dtype=float).copy()
        x[self.diag] = np.where(np.abs(x[self.diag]) >= 0.05, x[self.diag], 0.05)
        converged = False
        f = np.inf
        for _attempt in range(3):
            x, f, converged = self._newton(x)
            x = self.canonical(x)
            better = self._descent(x, f)
            if better is None:
                break
            x, converged = better, False
        return x, converged and bool(np.isfinite(f)), "Newton"

    def _newton(self, x: np.ndarray) -> tuple[np.ndarray, float, bool]:
        f, g, hess = _difference_derivatives(self.evaluate, x)
        if hess is None or not np.isfinite(f):
            return x, f, False
        B, fresh = _positive(hess), True
        for _ in range(200):
            step = -np.linalg.solve(B, g)
            slope = -float(g @ step)  # predicted decrease (x 2), > 0
            scale = max(1.0, abs(f))
            if slope < 1e-15 * scale:
                return x, f, True
            # below the deviance's resolution, a full step that does not increase it
            # beyond rounding is taken (the gradient still resolves the optimum)
            rounding = slope < 1e-9 * scale
            t, accepted = 1.0, False
            while t >= 1e-10:
                x_new = x + t * step
                f_new = self.deviance(x_new)
                if f_new <= f - 1e-4 * t * slope or (rounding and f_new <= f + 1e-14 * scale):
                    accepted = True
                    f_new, g_new = self._value_gradient(x_new)
                    break
                if rounding:
                    break
                t *= 0.5
            if not accepted:
                if fresh:  # a difference Hessian and still no descent: done
                    small = np.max(np.abs(step) / np.maximum(1.0, np.abs(x))) < 1e-6
                    return x, f, bool(rounding or small)
                f, g, hess = _difference_derivatives(self.evaluate, x)
                if hess is None:
                    return x, f, False
                B, fresh = _positive(hess), True
                continue
            s_, y_ = x_new - x, g_new - g
            sy = float(s_ @ y_)
            if sy > 1e-12 * float(np.linalg.norm(s_) * np.linalg.norm(y_)):  # BFGS update
                bs = B @ s_
                B = B - np.outer(bs, bs) / float(s_ @ bs) + np.outer(y_, y_) / sy
            fresh = False
            small = np.max(np.abs(x_new - x) / np.maximum(1.0, np.abs(x))) < 1e-9
            x, f, g = x_new, f_new, g_new
            if small:
                return x, f, True
        return x, f, False

    def _value_gradient(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """The deviance and its central-difference gradient (step 1e-6, relative), one
        batch of ``2K + 1`` points."""
        hg = GRAD_STEP * np.maximum(1.0, np.abs(x))
        eye = np.eye(x.size) * hg[:, None]
        f = self.evaluate(np.vstack([x, x + eye, x - eye]))
        d = x.size
        return float(f[0]), (f[1 : 1 + d] - f[1 + d :]) / (2.0 * hg)

    def _descent(self, theta: np.ndarray, dev: float) -> np.ndarray | None:
        """A point 1e-3 (relative) along one coordinate with a lower deviance, or None."""
        k = theta.size
        h = 1e-3 * np.maximum(1.0, np.abs(theta))
        probes = np.vstack([theta + h[:, None] * np.eye(k), theta - h[:, None] * np.eye(k)])
        vals = self.evaluate(probes)
        best = int(np.argmin(vals))
        if vals[best] < dev - 1e-10 * max(1.0, abs(dev)):
            return probes[best]
        return None


def _positive(hess: np.ndarray) -> np.ndarray:
    """``hess`` with its eigenvalues replaced by their absolute values (floored at 1e-8
    of the largest): a positive definite matrix whose Newton step descends."""
    w, v = np.linalg.eigh((hess + hess.T) / 2.0)
    top = max(np.abs(w).max(), 1e-12)
    return (v * np.maximum(np.abs(w), 1e-8 * top)) @ v.T


def _difference_derivatives(func, x0: np.ndarray):
    """Value, central-difference gradient and Hessian of ``func`` (a batch function) at
    ``x0``, from one batch of ``2 d^2 + 2 d + 1`` points: the Hessian with step 1e-4
    (relative), the gradient with step 1e-6 (its truncation error, ``h^2/6`` times the
    third derivative, is what limits where Newton's method stops; the rounding error of a
    deviance of order 1e4 is then still below 1e-5 in the gradient). The Hessian is None
    when some value is not finite."""
    d = x0.size
    h = HESS_STEP * np.maximum(1.0, np.abs(x0))
    hg = GRAD_STEP * np.maximum(1.0, np.abs(x0))
    eye = np.eye(d) * h[:, None]
    eye_g = np.eye(d) * hg[:, None]
    i, j = np.triu_indices(d, 1)
    pts = [x0[None], x0 + eye, x0 - eye]
    for si, sj in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
        pts.append(x0 + si * eye[i] + sj * eye[j])
    pts += [x0 + eye_g, x0 - eye_g]
    f = func(np.vstack(pts))
    f0, fp, fm = f[0], f[1 : 1 + d], f[1 + d : 1 + 2 * d]
    npair = i.size
    fg = f[1 + 2 * d + 4 * npair :]
    grad = (fg[:d] - fg[d:]) / (2.0 * hg)
    if not np.all(np.isfinite(f)):
        return f0, grad, None
    fpp, fpm, fmp, fmm = f[1 + 2 * d : 1 + 2 * d + 4 * npair].reshape(4, npair)
    hess = np.diag((fp - 2.0 * f0 + fm) / h**2)
    off = (fpp - fpm - fmp + fmm) / (4.0 * h[i] * h[j])
    hess[i, j] = off
    hess[j, i] = off
    return f0, grad, hess


def _block_diag(mats: Sequence[np.ndarray]) -> np.ndarray:
    q = sum(m.shape[0] for m in mats)
    out = np.zeros((q, q), dtype=np.result_type(*mats))
    o = 0
    for m in mats:
        out[o : o + m.shape[0], o : o + m.shape[0]] = m
        o += m.shape[0]
    return out


def _pattern(rows: np.ndarray, cols: np.ndarray, shape) -> tuple[sparse.csr_matrix, np.ndarray]:
    """A CSR matrix with entries at ``(rows, cols)`` (distinct) and the permutation that
    puts values listed in that order into its ``data``."""
    m = sparse.csr_matrix((np.arange(1.0, rows.size + 1.0), (rows, cols)), shape=shape)
    m.sort_indices()
    perm = m.data.astype(np.int64) - 1
    return m, perm


def _sparse_design(t: Term) -> sparse.csr_matrix:
    """The term's ``(n, J q)`` random-effect design as a sparse matrix."""
    n, q = t.Z.shape
    rows = np.repeat(np.arange(n), q)
    cols = (t.codes[:, None] * q + np.arange(q)[None, :]).ravel()
    return sparse.csr_matrix((t.Z.ravel(), (rows, cols)), shape=(n, t.n_groups * q))
