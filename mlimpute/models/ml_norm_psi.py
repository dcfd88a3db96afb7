"""The kernels that move the random-effect covariance Ψ of the multilevel normal model.

* :func:`_log_marginal`: log p(y | β, σ², Ψ) with the random effects integrated out, from
  per-cluster statistics;
* :func:`_log_hw_prior`, :func:`_log_hw_prior_2x2`: the Huang–Wand (2013) prior density of
  a covariance block;
* :func:`_psi_collapsed_mh`: the collapsed random-walk Metropolis–Hastings proposals on
  each correlated block of Ψ, then the expansion scales α | Ψ (step 0 of
  :class:`~mlimpute.models.ml_norm.MultilevelNorm`);
* :func:`_mh_2x2` and :func:`mh_2x2_stacked`: the same proposals for one correlated 2×2 Ψ,
  written out in scalars for one chain and vectorised over a block of chains (bit-for-bit
  the same numbers);
* :func:`psi_xi_posterior`: the inverse-Wishart conditional of the expanded covariance.

The names are also importable from :mod:`mlimpute.models.ml_norm`.
"""

from __future__ import annotations

import numpy as np

from mlimpute.models.base import ModelData
from mlimpute.models.linalg import chol_batched, forward_batched, inv_gamma

__all__ = ["mh_2x2_stacked", "psi_xi_posterior"]


def _log_marginal(psi: np.ndarray, ZtZ_s: np.ndarray, c: np.ndarray) -> float:
    """log p(y | β, σ², Ψ) up to terms free of Ψ, from per-cluster statistics.

    With ``P_j = Z_j'Z_j/σ² + Ψ⁻¹`` and ``c_j = Z_j'(y_j − X_jβ)/σ²`` (determinant lemma and
    Woodbury): ``−½ Σ_j [log|Ψ| + log|P_j| − c_j'P_j⁻¹c_j]``; clusters without rows add 0.
    """
    q = psi.shape[0]
    if q == 2:  # closed form: the common random-slope case, ~10 vector operations
        det_psi = psi[0, 0] * psi[1, 1] - psi[0, 1] ** 2
        p11 = ZtZ_s[:, 0, 0] + psi[1, 1] / det_psi
        p22 = ZtZ_s[:, 1, 1] + psi[0, 0] / det_psi
        p12 = ZtZ_s[:, 0, 1] - psi[0, 1] / det_psi
        det_p = p11 * p22 - p12**2
        quad = (p22 * c[:, 0] ** 2 - 2 * p12 * c[:, 0] * c[:, 1] + p11 * c[:, 1] ** 2) / det_p
        return -0.5 * (c.shape[0] * np.log(det_psi) + np.log(det_p).sum() - quad.sum())
    L = chol_batched(ZtZ_s + np.linalg.inv(psi))
    logdet_p = 2 * np.log(L[:, np.arange(q), np.arange(q)]).sum()
    w = forward_batched(L, c)
    return -0.5 * (L.shape[0] * np.linalg.slogdet(psi)[1] + logdet_p - np.sum(w * w))


def _log_hw_prior(sub: np.ndarray, L: np.ndarray, scale: np.ndarray, nu: float) -> float:
    """log Huang–Wand density of a k×k block (a integrated out; Huang & Wand 2013, eq. 2).

    ``p(Ψ) ∝ |Ψ|^(−(ν+2k)/2) Π_i (ν(Ψ⁻¹)_ii + 1/A_i²)^(−(ν+k)/2)``.
    """
    k = sub.shape[0]
    inv_diag = np.diag(np.linalg.inv(sub))
    return (
        -(nu + 2 * k) * np.log(np.diag(L)).sum()
        - (nu + k) / 2 * np.log(nu * inv_diag + 1 / scale**2).sum()
    )


def _psi_collapsed_mh(
    rng: np.random.Generator,
    psi: np.ndarray,
    alpha: np.ndarray,
    ZtZ_s: np.ndarray,
    c: np.ndarray,
    scale: np.ndarray,
    nu: float,
    data: ModelData,
    n_steps: int,
    step: float = 0.15,
) -> tuple[np.ndarray, np.ndarray]:
    """Collapsed random-walk MH on each correlated covariance block of Ψ, then α | Ψ.

    Target: ``p(Ψ | β, σ², y)`` with the random effects b *and* the expansion scales α
    integrated out, under the Huang–Wand prior. Proposals move (log L_ii, L_ij) of the
    block's Cholesky factor by N(0, step²) (off-diagonals scaled by the row's L_ii, with a
    Hastings correction); the Jacobian of Ψ = LL' in those coordinates is
    ``Π_i L_ii^(k − i + 1)`` (i from 0). Each proposal costs O(J·q³) and no pass over the
    rows: it moves the variances and correlations that Gibbs steps given b move slowly
    when clusters carry little information about their random effects. Afterwards α is
    drawn from its exact conditional ``α_i² = 1/a_i``,
    ``a_i ~ IG((ν + k)/2, ν(Ψ⁻¹)_ii + 1/A_i²)`` (independent of b and y given Ψ), as the
    partially collapsed Gibbs sampler requires (van Dyk & Park 2008).
    """
    alpha = alpha.copy()
    if psi.shape[0] == 2 and data.random_correlated == (True,):
        psi = _mh_2x2(rng, psi, ZtZ_s, c, scale, nu, n_steps, step)
        a = inv_gamma(rng, (nu + 2) / 2, nu * np.diag(np.linalg.inv(psi)) + 1 / scale**2)
        return psi, np.where(alpha < 0, -1.0, 1.0) / np.sqrt(a)
    for cols, correlated in zip(data.random_blocks, data.random_correlated, strict=True):
        # scalar blocks mix well through the α-step alone (lag-1 autocorrelation ≈ 0.1)
        if not correlated or len(cols) < 2:
            continue
        for g in [list(cols)]:
            g = np.array(g)
            k = len(g)
            jac_pow = k - np.arange(k) + 1
            low = np.tril_indices(k, -1)

            def log_target(
                ps: np.ndarray, Lg: np.ndarray, g: np.ndarray = g, jac_pow: np.ndarray = jac_pow
            ) -> float:
                return (
                    _log_marginal(ps, ZtZ_s, c)
                    + _log_hw_prior(ps[np.ix_(g, g)], Lg, scale[g], nu)
                    + (jac_pow * np.log(np.diag(Lg))).sum()
                )

            Lg = np.linalg.cholesky(psi[np.ix_(g, g)])
            cur = log_target(psi, Lg)
            for _ in range(n_steps):
                prop = Lg.copy()
                prop[np.diag_indices(k)] *= np.exp(step * rng.standard_normal(k))
                log_q = 0.0
                if k > 1:
                    sd = step * np.diag(Lg)[low[0]]  # off-diagonal step ∝ the row's L_ii
                    d = sd * rng.standard_normal(len(low[0]))
                    prop[low] += d
                    sd_rev = step * np.diag(prop)[low[0]]
                    log_q = np.sum(
                        np.log(sd / sd_rev) - d**2 / (2 * sd_rev**2) + d**2 / (2 * sd**2)
                    )
                new_psi = psi.copy()
                new_psi[np.ix_(g, g)] = prop @ prop.T
                new = log_target(new_psi, prop)
                if np.log(rng.random()) < new - cur + log_q:
                    psi, Lg, cur = new_psi, prop, new
            a = inv_gamma(
                rng,
                (nu + k) / 2,
                nu * np.diag(np.linalg.inv(psi[np.ix_(g, g)])) + 1 / scale[g] ** 2,
            )
            alpha[g] = np.where(alpha[g] < 0, -1.0, 1.0) / np.sqrt(a)
    return psi, alpha


def psi_xi_posterior(nu: float, J: int, S: np.ndarray) -> tuple[float, np.ndarray]:
    """Degrees of freedom and scale of ``Ψ_ξ | ξ ~ IW(ν + k − 1 + J, 2ν·I + S)`` for a
    k×k block with ``S = Σ_j ξ_j ξ_j'`` (k×k, or stacked (C, k, k) for a block of chains:
    the same element-wise arithmetic)."""
    k = S.shape[-1]
    return nu + k - 1 + J, 2 * nu * np.eye(k) + S


def _mh_2x2(
    rng: np.random.Generator,
    psi: np.ndarray,
    ZtZ_s: np.ndarray,
    c: np.ndarray,
    scale: np.ndarray,
    nu: float,
    n_steps: int,
    step: float,
) -> np.ndarray:
    """:func:`_psi_collapsed_mh` for one correlated 2×2 Ψ, written out in scalars.

    Same target, proposal and Jacobian (exponents 3 and 2 for L_11, L_22); the random
    numbers are drawn up front so the loop body is plain arithmetic.
    :func:`mh_2x2_stacked` does the same operations for a block of chains (squares are
    products: numpy's scalar ``** 2`` calls ``pow``, which rounds differently from the
    array square about once in a thousand).
    """
    z11, z22, z12 = ZtZ_s[:, 0, 0], ZtZ_s[:, 1, 1], ZtZ_s[:, 0, 1]
    c1, c2 = c[:, 0], c[:, 1]
    c11, c22, c12 = c1 * c1, c2 * c2, c1 * c2
    J = c.shape[0]
    A2 = scale**2
    inv0, inv1 = 1 / A2[0], 1 / A2[1]

    def log_target(l11: float, l21: float, l22: float) -> float:
        s11, s12, s22 = l11 * l11, l11 * l21, l21 * l21 + l22 * l22
        det = s11 * s22 - s12 * s12
        p11, p22, p12 = z11 + s22 / det, z22 + s11 / det, z12 - s12 / det
        det_p = p11 * p22 - p12 * p12
        quad = (p22 * c11 - 2 * p12 * c12 + p11 * c22) / det_p
        log_lik = -0.5 * (J * np.log(det) + np.log(det_p).sum() - quad.sum())
        g11, g22 = np.log(l11), np.log(l22)
        log_prior = _log_hw_prior_2x2(g11, g22, s11, s22, det, inv0, inv1, nu)
        return log_lik + log_prior + 3 * g11 + 2 * g22

    L = np.linalg.cholesky(psi)
    l11, l21, l22 = L[0, 0], L[1, 0], L[1, 1]
    cur = log_target(l11, l21, l22)
    z = rng.standard_normal((n_steps, 3)) * step
    u = np.log(rng.random(n_steps))
    for i in range(n_steps):
        n11, n22 = l11 * np.exp(z[i, 0]), l22 * np.exp(z[i, 1])
        d = z[i, 2] * l22  # off-diagonal step ∝ the row's L_22
        n21 = l21 + d
        sn, sl, dd = step * n22, step * l22, d * d
        log_q = np.log(l22 / n22) - dd / (2 * (sn * sn)) + dd / (2 * (sl * sl))
        new = log_target(n11, n21, n22)
        if u[i] < new - cur + log_q:
            l11, l21, l22, cur = n11, n21, n22, new
    return np.array([[l11 * l11, l11 * l21], [l11 * l21, l21 * l21 + l22 * l22]])


def _log_hw_prior_2x2(
    log_l11: np.ndarray,
    log_l22: np.ndarray,
    s11: np.ndarray,
    s22: np.ndarray,
    det: np.ndarray,
    inv0: np.ndarray,
    inv1: np.ndarray,
    nu: float,
) -> np.ndarray:
    """:func:`_log_hw_prior` of a 2×2 Ψ = LL' (``log_l11``, ``log_l22`` the logs of L's
    diagonal, ``s11 = Ψ_11``, ``s22 = Ψ_22``, ``det = |Ψ|``, ``inv0``, ``inv1`` one over
    the squared scales), element-wise: for one chain's scalars and for a block's arrays
    alike."""
    return -(nu + 4) * (log_l11 + log_l22) - (nu + 2) / 2 * (
        np.log(nu * s22 / det + inv0) + np.log(nu * s11 / det + inv1)
    )


def mh_2x2_stacked(
    psi: np.ndarray,
    ZtZ_s: np.ndarray,
    c: np.ndarray,
    scale: np.ndarray,
    nu: float,
    step: float,
    z: np.ndarray,
    u: np.ndarray,
) -> np.ndarray:
    """The collapsed MH proposals on a correlated 2×2 Ψ for a stack of C chains.

    :func:`_mh_2x2`'s operations, in the same order, vectorised over chains (same target,
    proposal and Jacobian as :func:`_psi_collapsed_mh`): ``psi`` (C, 2, 2), ``ZtZ_s``
    (C, J, 2, 2), ``c`` (C, J, 2), ``scale`` (C, 2); ``z`` (C, n_steps, 3) are the
    proposal normals times ``step`` and ``u`` (C, n_steps) the logs of the uniforms, each
    chain's drawn as :func:`_mh_2x2` draws them. Every operation is element-wise or a sum
    along a chain's own row, so each chain's result is bit-for-bit :func:`_mh_2x2`'s
    (``tests/sampler/test_batched.py``). Returns the new Ψ (C, 2, 2).
    """
    z11, z22, z12 = ZtZ_s[:, :, 0, 0], ZtZ_s[:, :, 1, 1], ZtZ_s[:, :, 0, 1]
    c1, c2 = c[:, :, 0], c[:, :, 1]
    c11, c22, c12 = c1 * c1, c2 * c2, c1 * c2
    J = c.shape[1]
    A2 = scale**2
    inv0, inv1 = 1 / A2[:, 0], 1 / A2[:, 1]
    ez = np.exp(z[:, :, :2])  # element-wise: each value as the one-chain kernel's exp

    def log_target(l11: np.ndarray, l21: np.ndarray, l22: np.ndarray) -> np.ndarray:
        s11, s12, s22 = l11 * l11, l11 * l21, l21 * l21 + l22 * l22
        det = s11 * s22 - s12 * s12
        p11 = z11 + (s22 / det)[:, None]
        p22 = z22 + (s11 / det)[:, None]
        p12 = z12 - (s12 / det)[:, None]
        det_p = p11 * p22 - p12 * p12
        quad = (p22 * c11 - 2 * p12 * c12 + p11 * c22) / det_p
        log_lik = -0.5 * (J * np.log(det) + np.log(det_p).sum(axis=1) - quad.sum(axis=1))
        g11, g22 = np.log(l11), np.log(l22)
        log_prior = _log_hw_prior_2x2(g11, g22, s11, s22, det, inv0, inv1, nu)
        return log_lik + log_prior + 3 * g11 + 2 * g22

    L = np.linalg.cholesky(psi)
    l11, l21, l22 = L[:, 0, 0].copy(), L[:, 1, 0].copy(), L[:, 1, 1].copy()
    cur = log_target(l11, l21, l22)
    for i in range(z.shape[1]):
        n11, n22 = l11 * ez[:, i, 0], l22 * ez[:, i, 1]
        d = z[:, i, 2] * l22  # off-diagonal step ∝ the row's L_22
        n21 = l21 + d
        sn, sl, dd = step * n22, step * l22, d * d
        log_q = np.log(l22 / n22) - dd / (2 * (sn * sn)) + dd / (2 * (sl * sl))
        new = log_target(n11, n21, n22)
        ok = u[:, i] < new - cur + log_q
        l11, l21, l22, cur = (
            np.where(ok, n11, l11),
            np.where(ok, n21, l21),
            np.where(ok, n22, l22),
            np.where(ok, new, cur),
        )
    out = np.empty(psi.shape)
    out[:, 0, 0] = l11 * l11
    out[:, 0, 1] = out[:, 1, 0] = l11 * l21
    out[:, 1, 1] = l21 * l21 + l22 * l22
    return out
