"""The collapsed Metropolis-Hastings step on a correlated 2x2 Ψ in numpy, in the operation
order of the compiled kernel :mod:`mlimpute.models.kernels.mh`.

Each function takes the arguments of the kernel of the same name and gives its results
bit for bit: the per-cluster terms are computed vectorised over the clusters (element by
element, as the kernel does), the sums over clusters run in the kernel's order, and every
logarithm, exponential and square root of a scalar is the C library's (:mod:`math`). The
scalars are numpy floats, so that a division by zero gives inf or NaN as in the kernel.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["LN2", "log_target_2x2", "mh_2x2", "mh_2x2_chains", "sum_log"]

#: log 2 (``math.log(2.0)``), the weight of the binary exponents in :func:`sum_log`
LN2 = 0.6931471805599453

#: the number of consecutive mantissas multiplied together in :func:`sum_log`
GROUP = 64

_f = np.float64


def _log(x) -> float:
    """The C library's ``log(x)`` of a scalar, NaN below 0 and -inf at ±0."""
    x = float(x)
    if x > 0.0:
        return math.log(x)
    return -math.inf if x == 0.0 else math.nan


def _exp(x) -> float:
    """The C library's ``exp(x)`` of a scalar, inf where it overflows."""
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def sum_log(d) -> float:
    """The sum of the logarithms of the positive numbers ``d`` as the kernel's
    ``_sum_log`` sums them: NaN if any is not finite or not positive; else the mantissas
    of ``np.frexp`` are padded with 1.0 to whole groups of :data:`GROUP`, each group's
    product is taken one factor after the other (a reduction along the first axis of a
    C-ordered (GROUP, groups) array), the products' logarithms are added group after group
    from 0.0, and the integer sum of the exponents times :data:`LN2` is added last."""
    d = np.asarray(d, dtype=np.float64)
    if not ((d > 0.0).all() and (d < np.inf).all()):
        return math.nan
    m, e = np.frexp(d)
    n_groups = -(-d.shape[0] // GROUP)
    cols = np.ones(n_groups * GROUP)
    cols[: d.shape[0]] = m
    prods = np.multiply.reduce(cols.reshape(n_groups, GROUP).T.copy(), axis=0)
    acc = 0.0
    for prod in prods.tolist():
        acc += math.log(prod)
    return acc + int(e.sum(dtype=np.int64)) * LN2


def _sequential_sum(v: np.ndarray) -> float:
    """``s = 0.0; s += v[i]`` over a vector, in order."""
    if v.shape[0] == 0:
        return 0.0
    return float(np.cumsum(v)[-1]) + 0.0  # + 0.0: a sum of only -0.0 is +0.0 from 0.0


def log_target_2x2(l11, l21, l22, zc, buf, inv0, inv1, nu) -> float:
    """The kernel's ``_log_target_2x2``: the target at the Cholesky factor (l11, l21,
    l22), with ``zc`` (6, J) the clusters' Z'Z/σ² entries 11, 22, 12 and c1², c1c2, c2²;
    the per-cluster determinants and quadratic forms are computed over all clusters at
    once and written into ``buf`` (2, J) as the kernel writes them, the quadratic forms
    summed one after the other, the log-determinants by :func:`sum_log`."""
    l11, l21, l22 = _f(l11), _f(l21), _f(l22)
    J = zc.shape[1]
    with np.errstate(all="ignore"):
        s11, s12, s22 = l11 * l11, l11 * l21, l21 * l21 + l22 * l22
        det = s11 * s22 - s12 * s12
        a11, a22, a12 = s22 / det, s11 / det, s12 / det
        p11 = zc[0] + a11
        p22 = zc[1] + a22
        p12 = zc[2] - a12
        det_p = p11 * p22 - p12 * p12
        buf[0] = det_p
        buf[1] = (p22 * zc[3] - 2 * p12 * zc[4] + p11 * zc[5]) / det_p
        quad = _sequential_sum(buf[1])
        logdet_p = sum_log(buf[0])
        log_lik = -0.5 * (J * _log(det) + logdet_p - quad)
        g11, g22 = _log(l11), _log(l22)
        log_prior = -(nu + 4) * (g11 + g22) - (nu + 2) / 2 * (
            _log(nu * s22 / det + inv0) + _log(nu * s11 / det + inv1)
        )
        return float(log_lik + log_prior + 3 * g11 + 2 * g22)


def mh_2x2(gen, psi, alpha, ZtZ_s, cc, scale, nu, n_steps, step) -> None:
    """The kernel's ``_mh_2x2`` on one correlated 2x2 Ψ: the proposals' normals, then
    their uniforms, are drawn first, each proposal is accepted or rejected on the target
    of :func:`log_target_2x2`, then α | Ψ is drawn from its two gammas; psi and alpha
    updated in place, the generator left where the kernel leaves it."""
    z = gen.standard_normal((n_steps, 3)) * step
    u = [_log(x) for x in gen.random(n_steps).tolist()]
    with np.errstate(all="ignore"):
        inv0, inv1 = 1 / (scale[0] * scale[0]), 1 / (scale[1] * scale[1])
        J = cc.shape[0]
        zc = np.empty((6, J))
        buf = np.empty((2, J))
        c1, c2 = cc[:, 0], cc[:, 1]
        zc[0], zc[1], zc[2] = ZtZ_s[:, 0, 0], ZtZ_s[:, 1, 1], ZtZ_s[:, 0, 1]
        zc[3], zc[4], zc[5] = c1 * c1, c1 * c2, c2 * c2
        l11 = np.sqrt(_f(psi[0, 0]))
        l21 = psi[1, 0] / l11
        l22 = np.sqrt(_f(psi[1, 1] - l21 * l21))
        cur = log_target_2x2(l11, l21, l22, zc, buf, inv0, inv1, nu)
        step = _f(step)
        for i, (z0, z1, z2) in enumerate(z.tolist()):
            n11, n22 = l11 * _exp(z0), l22 * _exp(z1)
            d = z2 * l22
            n21 = l21 + d
            sn, sl, dd = step * n22, step * l22, d * d
            log_q = _log(l22 / n22) - dd / (2 * (sn * sn)) + dd / (2 * (sl * sl))
            new = log_target_2x2(n11, n21, n22, zc, buf, inv0, inv1, nu)
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
            alpha[k] = (-1.0 if alpha[k] < 0 else 1.0) / np.sqrt(_f(a))


def _logs(x: np.ndarray) -> np.ndarray:
    """:func:`_log` of every element (the C library's logarithms)."""
    return np.array([_log(v) for v in np.ravel(x).tolist()]).reshape(np.shape(x))


def _exps(x: np.ndarray) -> np.ndarray:
    """:func:`_exp` of every element (the C library's exponentials)."""
    return np.array([_exp(v) for v in np.ravel(x).tolist()]).reshape(np.shape(x))


def _sum_logs(D: np.ndarray) -> np.ndarray:
    """:func:`sum_log` of every row of ``D`` (C, J), the rows side by side."""
    C, J = D.shape
    ok = ((D > 0.0) & (D < np.inf)).all(axis=1)
    m, e = np.frexp(D)
    n_groups = -(-J // GROUP)
    cols = np.ones((C, n_groups * GROUP))
    cols[:, :J] = m
    prods = np.multiply.reduce(cols.reshape(C, n_groups, GROUP).transpose(0, 2, 1).copy(), axis=1)
    exps = e.sum(axis=1, dtype=np.int64).tolist()
    out = np.full(C, np.nan)
    for c, row in enumerate(prods.tolist()):
        if ok[c]:
            acc = 0.0
            for prod in row:
                acc += math.log(prod)
            out[c] = acc + int(exps[c]) * LN2
    return out


def _log_target_chains(l11, l21, l22, zc, inv0, inv1, nu) -> np.ndarray:
    """:func:`log_target_2x2` of C chains side by side: the Cholesky factors' entries
    (C,), ``zc`` (C, 6, J), ``inv0`` and ``inv1`` (C,)."""
    J = zc.shape[2]
    with np.errstate(all="ignore"):
        s11, s12, s22 = l11 * l11, l11 * l21, l21 * l21 + l22 * l22
        det = s11 * s22 - s12 * s12
        a11, a22, a12 = s22 / det, s11 / det, s12 / det
        p11 = zc[:, 0] + a11[:, None]
        p22 = zc[:, 1] + a22[:, None]
        p12 = zc[:, 2] - a12[:, None]
        det_p = p11 * p22 - p12 * p12
        qd = (p22 * zc[:, 3] - 2 * p12 * zc[:, 4] + p11 * zc[:, 5]) / det_p
        quad = np.cumsum(qd, axis=1)[:, -1] + 0.0 if J else np.zeros(l11.shape[0])
        log_lik = -0.5 * (J * _logs(det) + _sum_logs(det_p) - quad)
        g11, g22 = _logs(l11), _logs(l22)
        log_prior = -(nu + 4) * (g11 + g22) - (nu + 2) / 2 * (
            _logs(nu * s22 / det + inv0) + _logs(nu * s11 / det + inv1)
        )
        return log_lik + log_prior + 3 * g11 + 2 * g22


def mh_2x2_chains(gens, psi, alpha, ZtZ_s, cc, scale, nu, n_steps, step) -> None:
    """:func:`mh_2x2` for C chains side by side (``psi`` (C, 2, 2), ``alpha`` (C, 2),
    ``ZtZ_s`` (C, J, 2, 2), ``cc`` (C, J, 2), ``scale`` (C, 2)), each drawing from its
    own generator in the kernel's order; the same numbers as chain by chain."""
    C = len(gens)
    z = np.stack([g.standard_normal((n_steps, 3)) for g in gens]) * step  # (C, steps, 3)
    u = _logs(np.stack([g.random(n_steps) for g in gens]))
    with np.errstate(all="ignore"):
        inv0 = 1 / (scale[:, 0] * scale[:, 0])
        inv1 = 1 / (scale[:, 1] * scale[:, 1])
        c1, c2 = cc[:, :, 0], cc[:, :, 1]
        zc = np.stack(
            [ZtZ_s[:, :, 0, 0], ZtZ_s[:, :, 1, 1], ZtZ_s[:, :, 0, 1], c1 * c1, c1 * c2, c2 * c2],
            axis=1,
        )
        l11 = np.sqrt(psi[:, 0, 0])
        l21 = psi[:, 1, 0] / l11
        l22 = np.sqrt(psi[:, 1, 1] - l21 * l21)
        cur = _log_target_chains(l11, l21, l22, zc, inv0, inv1, nu)
        e0, e1 = _exps(z[:, :, 0]), _exps(z[:, :, 1])
        step = _f(step)
        for i in range(n_steps):
            n11, n22 = l11 * e0[:, i], l22 * e1[:, i]
            d = z[:, i, 2] * l22
            n21 = l21 + d
            sn, sl, dd = step * n22, step * l22, d * d
            log_q = _logs(l22 / n22) - dd / (2 * (sn * sn)) + dd / (2 * (sl * sl))
            new = _log_target_chains(n11, n21, n22, zc, inv0, inv1, nu)
            take = u[:, i] < new - cur + log_q
            l11, l21 = np.where(take, n11, l11), np.where(take, n21, l21)
            l22, cur = np.where(take, n22, l22), np.where(take, new, cur)
        psi[:, 0, 0] = l11 * l11
        psi[:, 0, 1] = psi[:, 1, 0] = l11 * l21
        psi[:, 1, 1] = l21 * l21 + l22 * l22
        det = psi[:, 0, 0] * psi[:, 1, 1] - psi[:, 0, 1] * psi[:, 1, 0]
        inv_d = (psi[:, 1, 1] / det, psi[:, 0, 0] / det)
        shape = (nu + 2) / 2
        for c in range(C):
            for k in range(2):
                rate = nu * inv_d[k][c] + 1 / (scale[c, k] * scale[c, k])
                a = rate / gens[c].gamma(shape, 1.0)
                alpha[c, k] = (-1.0 if alpha[c, k] < 0 else 1.0) / np.sqrt(_f(a))
