"""The collapsed Metropolis-Hastings step on a correlated 2x2 Ψ in numpy, in the operation
order of the compiled kernel :mod:`mlimpute.models.kernels.mh`, for C chains side by side.

The per-cluster terms are computed over chains × clusters element by element as the
kernel computes them, the sums over clusters run in the kernel's order, the logarithms
and exponentials are :mod:`~mlimpute.models.ordered.elementary`'s (the kernel's, bit for
bit), and each chain draws from its own generator in the kernel's order: all its
proposals' normals, then their uniforms, then the two gammas of α.
"""

from __future__ import annotations

import math

import numpy as np

from mlimpute.models.kernels.constants import LN2_HI, LN2_LO
from mlimpute.models.ordered.elementary import (
    ex,
    ex_float,
    ln,
    ln_float,
    mantissa_products,
    sum_from_products,
)

__all__ = ["log_target_2x2", "log_target_chains", "mh_2x2", "mh_2x2_chains"]


def log_target_chains(l11, l21, l22, zc, nu, inv0, inv1, extra=None):
    """The kernel's ``_log_target_2x2`` of C chains side by side: the Cholesky factors'
    entries (C,), ``zc`` (C, 6, J) the clusters' Z'Z/σ² entries 11, 22, 12 and c1²,
    c1c2, c2², the prior's ``inv0``, ``inv1`` (C,). With ``extra`` (C,) also its
    logarithms (every logarithm of the call taken in one pass)."""
    C, J = zc.shape[0], zc.shape[2]
    with np.errstate(all="ignore"):
        s11, s12, s22 = l11 * l11, l11 * l21, l21 * l21 + l22 * l22
        det = s11 * s22 - s12 * s12
        a11, a22, a12 = s22 / det, s11 / det, s12 / det
        p11 = zc[:, 0] + a11[:, None]
        p22 = zc[:, 1] + a22[:, None]
        p12 = zc[:, 2] - a12[:, None]
        det_p = p11 * p22 - p12 * p12
        qd = (p22 * zc[:, 3] - 2 * p12 * zc[:, 4] + p11 * zc[:, 5]) / det_p
        quad = np.cumsum(qd, axis=1)[:, -1] + 0.0 if J else np.zeros(C)
        scalars = [det, l11, l22, nu * s22 / det + inv0, nu * s11 / det + inv1]
        if extra is not None:
            scalars.append(extra)
        prods, exps, ok = mantissa_products(det_p)
        G = prods.shape[1]
        logs = ln(np.concatenate([prods, np.stack(scalars, axis=1)], axis=1))
        logdet_p = sum_from_products(logs[:, :G], exps, ok)  # the kernel's _sum_ln
        ldet, g11, g22, lp0, lp1 = (logs[:, G + i] for i in range(5))
        log_lik = -0.5 * (J * ldet + logdet_p - quad)
        log_prior = -(nu + 4) * (g11 + g22) - (nu + 2) / 2 * (lp0 + lp1)
        got = log_lik + log_prior + 3 * g11 + 2 * g22
        return got if extra is None else (got, logs[:, G + 5])


def _zc(ZtZ_s: np.ndarray, cc: np.ndarray) -> np.ndarray:
    """(C, 6, J): the clusters' Z'Z/σ² entries 11, 22, 12 and c1², c1c2, c2²."""
    c1, c2 = cc[:, :, 0], cc[:, :, 1]
    return np.stack(
        [ZtZ_s[:, :, 0, 0], ZtZ_s[:, :, 1, 1], ZtZ_s[:, :, 0, 1], c1 * c1, c1 * c2, c2 * c2],
        axis=1,
    )


def log_target_2x2(l11, l21, l22, zc, buf, inv0, inv1, nu) -> float:
    """The kernel's ``_log_target_2x2`` of one chain (its arguments; ``buf`` (2, J)
    receives the clusters' determinants and quadratic forms, as the kernel writes them)."""
    v = [np.array([float(x)]) for x in (l11, l21, l22, inv0, inv1)]
    with np.errstate(all="ignore"):
        s11, s12, s22 = v[0] * v[0], v[0] * v[1], v[1] * v[1] + v[2] * v[2]
        det = s11 * s22 - s12 * s12
        p11, p22 = zc[0] + s22 / det, zc[1] + s11 / det
        p12 = zc[2] - s12 / det
        buf[0] = p11 * p22 - p12 * p12
        buf[1] = (p22 * zc[3] - 2 * p12 * zc[4] + p11 * zc[5]) / buf[0]
    return float(log_target_chains(*v[:3], zc[None], nu, v[3], v[4])[0])


def _target_one(l11, l21, l22, zc, nu, inv0, inv1):
    """:func:`log_target_chains` of one chain: its scalars in Python and numpy scalars
    (the same operations), its clusters' terms on arrays; ``zc`` (6, J)."""
    J = zc.shape[1]
    s11, s12, s22 = l11 * l11, l11 * l21, l21 * l21 + l22 * l22
    det = s11 * s22 - s12 * s12
    a11, a22, a12 = s22 / det, s11 / det, s12 / det
    p11 = zc[0] + a11
    p22 = zc[1] + a22
    p12 = zc[2] - a12
    det_p = p11 * p22 - p12 * p12
    qd = (p22 * zc[3] - 2 * p12 * zc[4] + p11 * zc[5]) / det_p
    quad = float(np.cumsum(qd)[-1]) + 0.0 if J else 0.0
    prods, exps, ok = mantissa_products(det_p[None, :])
    logdet_p = math.nan
    if ok[0]:
        acc = 0.0
        for prod in prods[0].tolist():
            acc += ln_float(prod)
        E = float(exps[0])
        logdet_p = acc + (E * LN2_HI + E * LN2_LO)
    log_lik = -0.5 * (J * ln_float(det) + logdet_p - quad)
    g11, g22 = ln_float(l11), ln_float(l22)
    log_prior = -(nu + 4) * (g11 + g22) - (nu + 2) / 2 * (
        ln_float(nu * s22 / det + inv0) + ln_float(nu * s11 / det + inv1)
    )
    return log_lik + log_prior + 3 * g11 + 2 * g22


def mh_2x2(gen, psi, alpha, ZtZ_s, cc, scale, nu, n_steps, step) -> None:
    """The kernel's ``_mh_2x2`` on one chain (its arguments; psi and alpha in place), its
    scalars as numpy scalars (the same numbers as :func:`mh_2x2_chains`)."""
    z = gen.standard_normal((n_steps, 3)) * step
    u = [ln_float(v) for v in gen.random(n_steps).tolist()]
    f = np.float64
    with np.errstate(all="ignore"):
        inv0, inv1 = 1 / (f(scale[0]) * f(scale[0])), 1 / (f(scale[1]) * f(scale[1]))
        zc = _zc(ZtZ_s[None], cc[None])[0]
        l11 = np.sqrt(f(psi[0, 0]))
        l21 = f(psi[1, 0]) / l11
        l22 = np.sqrt(f(psi[1, 1]) - l21 * l21)
        cur = _target_one(l11, l21, l22, zc, nu, inv0, inv1)
        e0 = [ex_float(v) for v in z[:, 0].tolist()]
        e1 = [ex_float(v) for v in z[:, 1].tolist()]
        step = f(step)
        for i in range(n_steps):
            n11, n22 = l11 * e0[i], l22 * e1[i]
            d = f(z[i, 2]) * l22
            n21 = l21 + d
            sn, sl, dd = step * n22, step * l22, d * d
            log_q = ln_float(l22 / n22) - dd / (2 * (sn * sn)) + dd / (2 * (sl * sl))
            new = _target_one(n11, n21, n22, zc, nu, inv0, inv1)
            if u[i] < new - cur + log_q:
                l11, l21, l22, cur = n11, n21, n22, new
        psi[0, 0] = l11 * l11
        psi[0, 1] = psi[1, 0] = l11 * l21
        psi[1, 1] = l21 * l21 + l22 * l22
        det = psi[0, 0] * psi[1, 1] - psi[0, 1] * psi[1, 0]
        inv_d = (psi[1, 1] / det, psi[0, 0] / det)
        shape = (nu + 2) / 2
        for k in range(2):
            rate = nu * inv_d[k] + 1 / (f(scale[k]) * f(scale[k]))
            a = rate / gen.gamma(shape, 1.0)
            alpha[k] = (-1.0 if alpha[k] < 0 else 1.0) / np.sqrt(a)


def mh_2x2_chains(gens, psi, alpha, ZtZ_s, cc, scale, nu, n_steps, step) -> None:
    """The kernel's ``_mh_2x2`` for C chains side by side (``psi`` (C, 2, 2), ``alpha``
    (C, 2), ``ZtZ_s`` (C, J, 2, 2), ``cc`` (C, J, 2), ``scale`` (C, 2)): the proposals,
    each accepted or rejected on its chain's target, then α | Ψ; psi and alpha updated in
    place, each generator left where the kernel leaves it."""
    C = len(gens)
    z = np.stack([g.standard_normal((n_steps, 3)) for g in gens]).reshape(C, n_steps, 3) * step
    u = ln(np.stack([g.random(n_steps) for g in gens]).reshape(C, n_steps))
    scale = np.asarray(scale, dtype=np.float64)
    with np.errstate(all="ignore"):
        inv0 = 1 / (scale[:, 0] * scale[:, 0])
        inv1 = 1 / (scale[:, 1] * scale[:, 1])
        zc = _zc(ZtZ_s, cc)
        l11 = np.sqrt(psi[:, 0, 0])
        l21 = psi[:, 1, 0] / l11
        l22 = np.sqrt(psi[:, 1, 1] - l21 * l21)
        cur = log_target_chains(l11, l21, l22, zc, nu, inv0, inv1)
        e0, e1 = ex(z[:, :, 0]), ex(z[:, :, 1])
        for i in range(n_steps):
            n11, n22 = l11 * e0[:, i], l22 * e1[:, i]
            d = z[:, i, 2] * l22
            n21 = l21 + d
            sn, sl, dd = step * n22, step * l22, d * d
            new, ratio = log_target_chains(n11, n21, n22, zc, nu, inv0, inv1, l22 / n22)
            log_q = ratio - dd / (2 * (sn * sn)) + dd / (2 * (sl * sl))
            take = u[:, i] < new - cur + log_q
            l11, l21 = np.where(take, n11, l11), np.where(take, n21, l21)
            l22, cur = np.where(take, n22, l22), np.where(take, new, cur)
        psi[:, 0, 0] = l11 * l11
        psi[:, 0, 1] = psi[:, 1, 0] = l11 * l21
        psi[:, 1, 1] = l21 * l21 + l22 * l22
        det = psi[:, 0, 0] * psi[:, 1, 1] - psi[:, 0, 1] * psi[:, 1, 0]
        inv_d = (psi[:, 1, 1] / det, psi[:, 0, 0] / det)
        shape = (nu + 2) / 2
        rate = [nu * inv_d[k] + 1 / (scale[:, k] * scale[:, k]) for k in range(2)]
        draws = np.array([[g.gamma(shape, 1.0) for _ in range(2)] for g in gens]).reshape(C, 2)
        for k in range(2):
            a = rate[k] / draws[:, k]
            alpha[:, k] = np.where(alpha[:, k] < 0, -1.0, 1.0) / np.sqrt(a)
