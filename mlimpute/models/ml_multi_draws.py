"""The draws of one further random-effect term of the model with several terms.

Step 2 of :class:`~mlimpute.models.ml_multi.MultiTermNorm`'s Gibbs step: ``b_k`` given
the rest (``_term_step``), jointly with the primary effects b_0 for a term whose clusters
contain the primary ones (``_nested_step``), and the collapsed Metropolis–Hastings moves,
the parameter expansion and Ψ_k they share (``_draw_term``). :class:`TermDraws` is a base
class of :class:`~mlimpute.models.ml_multi.MultiTermNorm` and reads its ``core`` (the
two-level model) and ``scalar_mh``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from mlimpute.models.base import ModelData
from mlimpute.models.linalg import (
    backward_batched,
    chol_batched,
    draw_chol,
    draw_precision_batched,
    forward_batched,
    solve_spd,
)
from mlimpute.models.ml_multi_state import TermState
from mlimpute.models.ml_multi_terms import Term, gsum, scalar_mh
from mlimpute.models.ml_norm import _psi_collapsed_mh

__all__ = ["TermDraws"]


class TermDraws:
    """The draws of one further term (step 2 of the Gibbs step); a base class of
    :class:`~mlimpute.models.ml_multi.MultiTermNorm`."""

    def _term_step(
        self,
        rng: np.random.Generator,
        ts: TermState,
        t: Any,
        ti: Term,
        r: np.ndarray,
        s2: float,
        wr: np.ndarray | None,
    ) -> TermState:
        """``b_k | β, σ², Ψ_k, rest`` (``r`` = y minus everything but term k), then the
        parameter expansion and Ψ_k, as steps (0)–(4) of the two-level model for one term."""
        Z, codes, J = t.Z.obs, t.codes_obs, t.n_clusters
        q = Z.shape[1]
        if wr is None:
            if ti.ZtZ is not None:
                ZtZ_s = ti.ZtZ / s2
            else:
                ZtZ_s = gsum(codes, J, Z[:, :, None] * Z[:, None, :]) / s2
            c = (gsum(codes, J, r) if ti.ones else gsum(codes, J, Z * r[:, None])) / s2
            c = c.reshape(J, q)
        else:
            Zw = Z * wr[:, None]
            ZtZ_s = gsum(codes, J, Zw[:, :, None] * Z[:, None, :])
            c = gsum(codes, J, Zw * r[:, None])
        return self._draw_term(rng, ts, t, ti, ZtZ_s, c, lambda b: (ZtZ_s, c))

    def _nested_step(
        self,
        rng: np.random.Generator,
        ts: TermState,
        t: Any,
        ti: Term,
        r: np.ndarray,
        s2: float,
        wr: np.ndarray | None,
        psi0: np.ndarray,
        data: ModelData,
    ) -> tuple[TermState, np.ndarray]:
        """(b_k, b_0) jointly for a term k whose clusters contain the primary ones.

        ``r`` is y minus Xβ and the terms other than k and 0. Per primary cluster c
        (``P_c = Z_0c'Z_0c/σ² + Ψ_0⁻¹``), integrating b_0,c out leaves for b_k the
        precision ``Z_kc'Z_kc/σ² − S_c'P_c⁻¹S_c`` and linear term
        ``Z_kc'r_c/σ² − S_c'P_c⁻¹Z_0c'r_c/σ²`` (``S_c = Z_0c'Z_kc/σ²``), summed over the
        primary clusters of each cluster of k: the collapsed MH, b_k's draw and its
        conditional mean use these; then ``b_0,c | b_k ~ N(P_c⁻¹Z_0c'(r_c − Z_kc b_k)/σ²,
        P_c⁻¹)``. Given b_k, the two-level step moves b_0 alone, and the split of a
        school's effect between the school and its classes (pinned when clusters are
        large) is drawn afresh at each step.
        """
        from mlimpute.models._ml_norm_static import static

        seg, Z0, Zk = data.seg_obs, data.Z.obs, t.Z.obs
        st = static(data)
        qk, J0 = Zk.shape[1], data.n_clusters
        parent, has = ti.parent, ti.parent >= 0
        if wr is None:
            S00 = (st.ZtZ if st.ZtZ is not None else seg.sum(Z0[:, :, None] * Z0[:, None, :])) / s2
            Z0w, Zkw = Z0 / s2, Zk / s2
        else:
            Z0w, Zkw = Z0 * wr[:, None], Zk * wr[:, None]
            S00 = seg.sum(Z0w[:, :, None] * Z0[:, None, :])
        if st.ones and ti.ones:
            n_c = (seg.counts / s2) if wr is None else seg.sum(wr)
            S0k = Skk = n_c[:, None, None]
            c0 = ck = (seg.sum(r) / s2 if wr is None else seg.sum(wr * r))[:, None]
        else:
            S0k = seg.sum(Z0w[:, :, None] * Zk[:, None, :])  # (J0, q0, qk)
            Skk = seg.sum(Zkw[:, :, None] * Zk[:, None, :])
            c0 = seg.sum(Z0w * r[:, None])
            ck = seg.sum(Zkw * r[:, None])
        P = S00 + np.linalg.inv(psi0)[None]
        L = chol_batched(P)
        W = forward_batched(L, S0k)  # L⁻¹S (J0, q0, qk)
        w = forward_batched(L, c0[:, :, None])[:, :, 0]  # L⁻¹Z_0'r/σ²
        M_c = Skk - np.einsum("jab,jac->jbc", W, W)
        m_c = ck - np.einsum("jab,ja->jb", W, w)
        J, p_has = t.n_clusters, parent[has]
        M = gsum(p_has, J, M_c[has])
        h = gsum(p_has, J, m_c[has]).reshape(J, qk)
        M = (M + np.swapaxes(M, 1, 2)) / 2
        Skk_j = gsum(p_has, J, Skk[has])
        box: dict[str, np.ndarray] = {}

        def given_b0(bk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            """b_0 | b_k, then b_k's likelihood statistics given b_0."""
            off = np.zeros((J0, qk))
            off[has] = bk[p_has]
            box["b0"] = b0 = draw_precision_batched(rng, P, c0 - np.einsum("jab,jb->ja", S0k, off))
            ck_b0 = ck - np.einsum("jab,ja->jb", S0k, b0)
            return Skk_j, gsum(p_has, J, ck_b0[has]).reshape(J, qk)

        ts = self._draw_term(rng, ts, t, ti, M, h, given_b0)
        if "b0" not in box:  # the comparison prior has no expansion step
            given_b0(ts.b)
        return ts, box["b0"]

    def _draw_term(
        self,
        rng: np.random.Generator,
        ts: TermState,
        t: Any,
        ti: Term,
        ZtZ_s: np.ndarray,
        c: np.ndarray,
        conditional: Any,
    ) -> TermState:
        """Given the per-cluster precision ``ZtZ_s`` and linear term ``c`` of b_k's
        likelihood: collapsed MH on correlated blocks of Ψ_k, b_k, then (half-t prior) α_k
        and Ψ_k. ``conditional(b_k)`` gives the statistics of term k's likelihood given
        the other terms' effects (``ZtZ_s, c`` themselves unless b_0 was integrated out):
        the regression of α_k on ``z∘ξ_j`` needs only ``Σ_j (Z_j'Z_j/σ²)∘ξ_jξ_j'`` and
        ``Σ_j ξ_j∘c_j``, no pass over the rows."""
        q = t.Z.obs.shape[1]
        psi, alpha = ts.psi, ts.alpha
        core = self.core
        if core.prior != "iw" and core.mh_steps and ti.mh:
            psi, alpha = _psi_collapsed_mh(
                rng, psi, alpha, ZtZ_s, c, ts.scale, core.nu, t, core.mh_steps, core.mh_step
            )
        if core.prior != "iw" and core.mh_steps and self.scalar_mh:
            # half the proposals: 0.75-0.87 effective draws per step of a school variance
            # of 0-0.5 with 10 proposals, 0.89-1.0 with 20 (at twice the cost)
            n_mh = max(1, core.mh_steps // 2)
            psi, alpha = scalar_mh(
                rng, psi, alpha, ZtZ_s, c, ts.scale, core.nu, t, n_mh, core.mh_step
            )
        if q == 1:
            P = ZtZ_s + 1.0 / psi
            b = draw_precision_batched(rng, P, c)
            b_mean = c / P[:, :, 0]
        else:
            P = ZtZ_s + np.linalg.inv(psi)
            b = draw_precision_batched(rng, P, c)
            L = chol_batched(P)
            b_mean = backward_batched(L, forward_batched(L, c))
        if core.prior == "iw":
            psi = core._psi_iw(rng, b, ts.scale, t)
            return replace(ts, b=b, psi=psi, b_mean=b_mean)
        # parameter expansion: b = α∘ξ, α | ξ a q-dim regression with prior N(0, A²/2)
        G_j, c_j = conditional(b)
        alpha = np.where(np.abs(alpha) > 1e-150, alpha, 1e-150)
        xi = b / alpha
        G = np.einsum("jab,ja,jb->ab", G_j, xi, xi)
        g = np.einsum("ja,ja->a", xi, c_j)
        m_a, La = solve_spd(G + np.diag(2.0 / ts.scale**2), g)
        alpha = draw_chol(rng, La, m_a)
        alpha = np.where(np.abs(alpha) > 1e-150, alpha, 1e-150)
        psi = core._psi_xi(rng, xi, t) * np.outer(alpha, alpha)
        return TermState(xi * alpha, psi, alpha, ts.scale, b_mean)
