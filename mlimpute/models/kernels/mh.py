"""Step (0) of the compiled Gibbs step: the collapsed Metropolis-Hastings proposals on a
correlated 2x2 Ψ, then α | Ψ.

Importing this module imports numba (:mod:`mlimpute.models.kernels`).
"""

from __future__ import annotations

import numpy as np

from mlimpute.models.kernels.elementary import _ex, _ln, _sum_ln
from mlimpute.models.kernels.options import jit

__all__ = []

#: SHA-256 of all the kernel modules' sources (this line blanked): see the package's docstring
SOURCES = "e7c15ed93913fec74e7049c4c8d97476a48d1b07862883f07c34f61d83a0c7e9"


@jit
def _log_target_2x2(l11, l21, l22, zc, buf, inv0, inv1, nu):  # pragma: no cover
    """``_mh_2x2``'s target at the Cholesky factor (l11, l21, l22); ``zc`` (6, J) holds
    the clusters' Z'Z/σ² entries 11, 22, 12 and c1², c1c2, c2²; ``buf`` (2, J) scratch.

    The clusters' quadratic forms are summed one after the other from 0.0, and the
    log-determinants of their precisions by
    :func:`~mlimpute.models.kernels.elementary._sum_ln` (NaN, and so a rejected proposal,
    where a determinant is not positive); every logarithm and exponential here is
    :mod:`~mlimpute.models.kernels.elementary`'s."""
    J = zc.shape[1]
    s11, s12, s22 = l11 * l11, l11 * l21, l21 * l21 + l22 * l22
    det = s11 * s22 - s12 * s12
    a11, a22, a12 = s22 / det, s11 / det, s12 / det
    dp = buf[0]
    qd = buf[1]
    for j in range(J):  # no sums here: the compiler vectorises this loop
        p11 = zc[0, j] + a11
        p22 = zc[1, j] + a22
        p12 = zc[2, j] - a12
        det_p = p11 * p22 - p12 * p12
        dp[j] = det_p
        qd[j] = (p22 * zc[3, j] - 2 * p12 * zc[4, j] + p11 * zc[5, j]) / det_p
    quad = 0.0
    for j in range(J):
        quad += qd[j]
    logdet_p = _sum_ln(dp)
    log_lik = -0.5 * (J * _ln(det) + logdet_p - quad)
    g11, g22 = _ln(l11), _ln(l22)
    log_prior = -(nu + 4) * (g11 + g22) - (nu + 2) / 2 * (
        _ln(nu * s22 / det + inv0) + _ln(nu * s11 / det + inv1)
    )
    return log_lik + log_prior + 3 * g11 + 2 * g22


@jit
def _mh_2x2(gen, psi, alpha, ZtZ_s, cc, scale, nu, n_steps, step):  # pragma: no cover
    """``_psi_collapsed_mh`` on one correlated 2x2 Ψ: the proposals, then α | Ψ; psi and
    alpha updated in place."""
    z = np.empty((n_steps, 3))
    for i in range(n_steps):
        for k in range(3):
            z[i, k] = gen.standard_normal() * step
    u = np.empty(n_steps)
    for i in range(n_steps):
        u[i] = _ln(gen.random())
    inv0, inv1 = 1 / (scale[0] * scale[0]), 1 / (scale[1] * scale[1])
    J = cc.shape[0]
    zc = np.empty((6, J))
    buf = np.empty((2, J))
    for j in range(J):
        c1, c2 = cc[j, 0], cc[j, 1]
        zc[0, j], zc[1, j], zc[2, j] = ZtZ_s[j, 0, 0], ZtZ_s[j, 1, 1], ZtZ_s[j, 0, 1]
        zc[3, j], zc[4, j], zc[5, j] = c1 * c1, c1 * c2, c2 * c2
    l11 = np.sqrt(psi[0, 0])
    l21 = psi[1, 0] / l11
    l22 = np.sqrt(psi[1, 1] - l21 * l21)
    cur = _log_target_2x2(l11, l21, l22, zc, buf, inv0, inv1, nu)
    for i in range(n_steps):
        n11, n22 = l11 * _ex(z[i, 0]), l22 * _ex(z[i, 1])
        d = z[i, 2] * l22
        n21 = l21 + d
        sn, sl, dd = step * n22, step * l22, d * d
        log_q = _ln(l22 / n22) - dd / (2 * (sn * sn)) + dd / (2 * (sl * sl))
        new = _log_target_2x2(n11, n21, n22, zc, buf, inv0, inv1, nu)
        if u[i] < new - cur + log_q:
            l11, l21, l22, cur = n11, n21, n22, new
    psi[0, 0] = l11 * l11
    psi[0, 1] = psi[1, 0] = l11 * l21
    psi[1, 1] = l21 * l21 + l22 * l22
    det = psi[0, 0] * psi[1, 1] - psi[0, 1] * psi[1, 0]
    inv_d = (psi[1, 1] / det, psi[0, 0] / det)
    shape = (nu + 2) / 2
    for k in range(2):
        rate = nu * inv_d[k] + 1 / (scale[k] * scale[k])
        a = rate / gen.gamma(shape, 1.0)
        alpha[k] = (-1.0 if alpha[k] < 0 else 1.0) / np.sqrt(a)
