"""Random effects of clusters not seen in training, redrawn at every sweep over new rows.

A training iteration draws every cluster's random effects afresh from their conditional
given the parameters and the cluster's observed rows of the variable (N(0, Ψ) for a
cluster with none). :func:`impute_new` keeps the parameters fixed; a cluster not seen in
training has no effects in the chain's state, and drawing them once and holding them over
the sweeps over the new rows makes the Gibbs run condition on that one draw: where the
variables feed on each other's cluster means (``y ~ s``, ``s ~ cmean(y)``) the loop
amplifies it, and the new cluster's imputations spread about twice as widely as the
training run would make them. :func:`redraw_new` redraws them as a training iteration
would, given the fixed parameters:

* for a normal model of the variable itself (``2l.norm``, ``2l.norm.het``, ``2l.pmm``)
  from ``N(P_j⁻¹ Z_j'(y_j − X_jβ)/σ²_j, P_j⁻¹)``, ``P_j = Z_j'Z_j/σ²_j + Ψ⁻¹``, over the
  new cluster's observed rows (none: N(0, Ψ)); for the heteroscedastic model then
  ``σ²_j ~ Scaled-Inv-χ²(ν + n_j, (ν s² + SSR_j)/(ν + n_j))`` given the effects;
* for the other models (probit, logit, ordinal, nominal, counts, transformed) from
  N(0, Ψ) (and σ²_j from its prior): their observed rows in a new cluster do not update
  the effects.

With several grouping factors (:func:`mlimpute.newdata.factors.redraw_terms`) a normal
model's terms are drawn term by term, each from its conditional given the observed rows
and the other terms' current effects (:func:`draw_effects`); the other models' terms from
their own N(0, Ψ_k).

Seen clusters keep the chain's effects.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from mlimpute.models.ml_norm import MultilevelNorm, MultilevelNormState
from mlimpute.newdata.states import map_nested

__all__ = ["NewRows", "draw_effects", "psi_root", "reads_response", "redraw_new", "redraw_sigma2"]


@dataclass
class NewRows:
    """The observed rows of a variable in new clusters: designs, response and the row's
    cluster (a row of the state's effects)."""

    X: np.ndarray  # (n, p)
    Z: np.ndarray  # (n, q)
    y: np.ndarray  # (n,)
    codes: np.ndarray  # (n,) cluster of each row, among the state's clusters


def psi_root(psi: np.ndarray) -> np.ndarray:
    """A square root L of Ψ (L L' = Ψ), also for a singular Ψ."""
    w, V = np.linalg.eigh(np.atleast_2d(psi))
    return V * np.sqrt(np.clip(w, 0.0, None))


def reads_response(model: Any) -> bool:
    """Whether ``model``'s state is a multilevel normal model of the variable's own values
    (so that the new clusters' observed rows give the effects' conditional)."""
    from mlimpute.models.ml_multi import MultiTermNorm
    from mlimpute.models.pmm import MultilevelPMM

    normal = (MultilevelNorm, MultiTermNorm)
    if isinstance(model, normal):
        return True
    return isinstance(model, MultilevelPMM) and isinstance(model.core, normal)


def redraw_new(
    state: Any, new: np.ndarray, rng: np.random.Generator, rows: NewRows | None = None
) -> Any:
    """``state`` with the effects (and per-cluster residual variances) of the clusters
    ``new`` (rows of ``state.b``) redrawn given the fixed parameters: from their
    conditional given ``rows`` (observed rows of a normal model's variable in those
    clusters), else from N(0, Ψ) and the variances' prior. Walks the dataclass fields as
    :func:`~mlimpute.newdata.states.map_nested` does (``rows`` apply to the top state
    only); no random numbers when ``new`` is empty.

    Examples
    --------
    >>> import numpy as np
    >>> from mlimpute.models.ml_norm import MultilevelNormState
    >>> st = MultilevelNormState(np.zeros(1), np.zeros((3, 1)), 1.0, np.eye(1),
    ...                          np.ones(1), np.ones(1))
    >>> rows = NewRows(np.ones((50, 1)), np.ones((50, 1)), np.full(50, 2.0), np.full(50, 2))
    >>> out = redraw_new(st, np.array([1, 2]), np.random.default_rng(0), rows)
    >>> float(out.b[0, 0]), bool(abs(out.b[2, 0] - 100 / 51) < 0.5)  # seen kept; 2 near its rows
    (0.0, True)
    """
    new = np.asarray(new, dtype=np.intp)
    if isinstance(state, MultilevelNormState):
        return state if new.size == 0 else _redraw_norm(state, new, rng, rows)
    return map_nested(state, lambda value: redraw_new(value, new, rng))


def draw_effects(
    b: np.ndarray,
    psi: np.ndarray,
    new: np.ndarray,
    rng: np.random.Generator,
    Z: np.ndarray | None = None,
    r: np.ndarray | None = None,
    codes: np.ndarray | None = None,
    w: np.ndarray | None = None,
) -> np.ndarray:
    """``b`` with its rows ``new`` drawn from ``N(P_j⁻¹ Z_j'W_j r_j, P_j⁻¹)``,
    ``P_j = Z_j'W_j Z_j + Ψ⁻¹``, over the rows (``Z``, residuals ``r``, cluster ``codes``,
    precisions ``w``) in cluster j; N(0, Ψ) for a cluster without rows (or without
    ``Z``). ``q`` standard normals per cluster in ``new``, whatever the rows."""
    k, q = new.size, b.shape[1]
    L = psi_root(psi)
    u = rng.standard_normal((k, q))
    if Z is not None and len(r):
        # b_j = L u_j: u_j | rows ~ N(M⁻¹h, M⁻¹), M = L'Z_j'W_j Z_j L + I (Ψ⁻¹ = L⁻ᵀL⁻¹;
        # written on u so that a singular Ψ needs no inverse)
        where = np.full(b.shape[0], -1, dtype=np.intp)
        where[new] = np.arange(k)
        pos = where[codes]
        keep = pos >= 0
        pos = pos[keep]
        ZL = np.asarray(Z, dtype=np.float64)[keep] @ L
        rw = (r * w)[keep]
        M = np.broadcast_to(np.eye(q), (k, q, q)).copy()
        np.add.at(M, pos, ZL[:, :, None] * ZL[:, None, :] * w[keep][:, None, None])
        h = np.zeros((k, q))
        np.add.at(h, pos, ZL * rw[:, None])
        C = np.linalg.cholesky(M)
        mean = np.linalg.solve(M, h[:, :, None])[:, :, 0]
        dev = np.linalg.solve(np.swapaxes(C, 1, 2), u[:, :, None])[:, :, 0]
        u = mean + dev  # C⁻ᵀε has covariance (C Cᵀ)⁻¹ = M⁻¹
    out = b.copy()
    out[new] = u @ L.T
    return out


def redraw_sigma2(
    st: MultilevelNormState,
    new: np.ndarray,
    rng: np.random.Generator,
    e: np.ndarray | None = None,
    codes: np.ndarray | None = None,
) -> np.ndarray:
    """The per-cluster residual variances of the heteroscedastic model with those of the
    clusters ``new`` drawn from ``Scaled-Inv-χ²(ν + n_j, (ν s² + SSR_j)/(ν + n_j))`` over
    the residuals ``e`` of their rows (``codes``: each row's cluster); the prior without
    rows."""
    s2_scale, nu = st.sigma_hyper
    k = new.size
    ssr, n_j = np.zeros(k), np.zeros(k)
    if e is not None and len(e):
        where = np.full(np.size(st.sigma2), -1, dtype=np.intp)
        where[new] = np.arange(k)
        pos = where[codes]
        keep = pos >= 0
        np.add.at(ssr, pos[keep], e[keep] ** 2)
        np.add.at(n_j, pos[keep], 1.0)
    sig = np.asarray(st.sigma2, dtype=np.float64).copy()
    sig[new] = np.maximum((nu * s2_scale + ssr) / rng.chisquare(nu + n_j), st.sigma2_floor)
    return sig


def _redraw_norm(
    st: MultilevelNormState, new: np.ndarray, rng: np.random.Generator, rows: NewRows | None
) -> MultilevelNormState:
    het = np.ndim(st.sigma2) > 0
    if rows is not None and rows.y.size:
        Z = np.asarray(rows.Z, dtype=np.float64)
        r = rows.y - np.asarray(rows.X, dtype=np.float64) @ st.beta
        s2 = np.take(st.sigma2, rows.codes) if het else np.full(r.size, float(st.sigma2))
        b = draw_effects(st.b, st.psi, new, rng, Z, r, rows.codes, 1.0 / s2)
    else:
        Z = r = None
        b = draw_effects(st.b, st.psi, new, rng)
    changes: dict[str, Any] = {"b": b}
    if het:
        e = codes = None
        if Z is not None:
            e = r - np.einsum("nq,nq->n", Z, b[rows.codes])
            codes = rows.codes
        changes["sigma2"] = redraw_sigma2(st, new, rng, e, codes)
    return replace(st, **changes)
