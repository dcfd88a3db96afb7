"""Linear predictors of model-based imputation as functions of one imputed column.

A model's linear predictor on a few rows at candidate values of one column
(:class:`RowDesign`), on every row (:func:`linear_predictor`), and as an affine function
``a + c·x`` of one column (:func:`eta_at`; one row per cluster for a level-2 model,
:func:`cluster_eta_at`); the analysis model's factor as a term linear in x
(:func:`outcome_term`). Used by the draws of :mod:`mlimpute.sampler.compatible_draws`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mlimpute.compatible import LinearTerm, affine_coefficients
from mlimpute.models._latent import linear_core, truncnorm_sign
from mlimpute.models.binary import ProbitState
from mlimpute.models.counts import NBState, PoissonState
from mlimpute.models.ordinal import OrderedState
from mlimpute.sampler.design import ModelData, Values
from mlimpute.spec.formula import cmean_column
from mlimpute.spec.grammar import EVALUATION_CONTEXT

if TYPE_CHECKING:  # pragma: no cover
    from mlimpute.sampler.engine import Plan

__all__ = [
    "RowDesign",
    "linear_predictor",
    "eta_at",
    "cluster_eta_at",
    "outcome_term",
]


class RowDesign:
    """A model's linear predictor on a few of its observed rows at candidate values of one
    column (the analysis model's, or a predictor model's).

    A design block whose dynamic columns are all products of numeric columns is computed
    directly (its other columns read from the design); otherwise the block is re-evaluated
    by formulaic on those rows only (from the model's stored specification, so stateful
    transforms keep their fitted state). A value outside a transform's domain (``log`` of a
    negative proposal) gives a non-finite η, which the Metropolis–Hastings step rejects.
    """

    def __init__(self, plan: Plan, d: ModelData, rows: np.ndarray) -> None:
        self.rows = rows
        self.static = plan.static.iloc[rows].reset_index(drop=True)
        self.codes = plan.layout.codes[rows]
        self.pos = np.searchsorted(d.obs_idx, rows)  # the rows among d's observed rows
        self.x_cols = self._columns(d.X)
        # a random part that depends on no imputed column is read from the design once
        self.z_cols = self._columns(d.Z) if d.Z is not None and d.Z.dynamic else None
        self.z_static = None
        if d.Z is not None and not d.Z.dynamic:
            self.z_static = d.Z.obs[self.pos]
        # further random-effect terms (several grouping factors): (term, columns or None,
        # static Z or None, cluster codes) on the rows
        self.extra = []
        for t in getattr(d, "extra_terms", ()) or ():
            codes = t.codes_obs[self.pos]
            if t.Z.dynamic:
                self.extra.append((t, self._columns(t.Z), None, codes))
            else:
                self.extra.append((t, None, t.Z.obs[self.pos], codes))

    @staticmethod
    def _columns(block):
        if block.spec is None:  # an intercept only
            return None
        names = list(block.spec.column_names)
        return [names.index(c) for c in block.names]

    def frame(self, values: Values, static: pd.DataFrame) -> pd.DataFrame:
        """The rows' data at the chain's current values."""
        frame = self.static.copy(deep=False)
        for name in values:
            if name in frame:
                v = values.frame_value(name)
                frame[name] = v.iloc[self.rows].to_numpy() if hasattr(v, "iloc") else v[self.rows]
            col = cmean_column(name)
            if col in frame:
                frame[col] = values.factor(col, static)[self.rows]
        return frame

    def _matrix(self, block, cols, frame: pd.DataFrame) -> np.ndarray:
        # a random part of several blocks has no formulaic spec (cols None) unless it has
        # transformed columns: its products of numeric columns (a random slope on x) are
        # recomputed here too, never replaced by an intercept
        if not block.slow:  # products of numeric columns: no formulaic call
            X = block.obs[self.pos]
            for col, factors in block.fast:
                v = frame[factors[0]].to_numpy(dtype=np.float64)
                for f in factors[1:]:
                    v = v * frame[f].to_numpy(dtype=np.float64)
                X[:, col] = v
            return X
        if cols is None:  # an intercept only
            return np.ones((len(frame), 1))
        with np.errstate(all="ignore"):
            mm = block.spec.get_model_matrix(frame, context=EVALUATION_CONTEXT)
        return np.asarray(mm, dtype=np.float64)[:, cols]

    def eta(self, d: ModelData, state, frame: pd.DataFrame) -> np.ndarray:
        """``X β + Z b_j`` on the rows for the data in ``frame`` (with several grouping
        factors ``+ Σ_k Z_k b_k,j``: every term's random effects)."""
        X = self._matrix(d.X, self.x_cols, frame)
        if _latent(state):
            state = state.core
        out = X @ state.beta
        extra = getattr(state, "extra", None)
        b0 = state.primary.b if extra is not None else state.b
        if d.Z is not None:
            Z = (
                self.z_static
                if self.z_static is not None
                else self._matrix(d.Z, self.z_cols, frame)
            )
            out = out + np.einsum("nq,nq->n", Z, np.take(b0, self.codes, axis=0))
        for (t, cols, z_static, codes), ts in zip(self.extra, extra or (), strict=True):
            Z = z_static if z_static is not None else self._matrix(t.Z, cols, frame)
            out = out + np.einsum("nq,nq->n", Z, np.take(ts.b, codes, axis=0))
        return out


def _probit(state) -> bool:
    """A probit analysis model (its state carries the latent normal model's)."""
    return isinstance(state, ProbitState)


def _latent(state) -> bool:
    """A latent (probit or ordered probit) model's state, or a count model's (its core
    is the normal model of the log-rate)."""
    return isinstance(state, (ProbitState, OrderedState, PoissonState, NBState))


def linear_predictor(model, state, d: ModelData, n: int) -> np.ndarray:
    """The linear predictor of every row (sorted order), random effects included (on the
    latent scale for a probit model)."""
    if _latent(state):
        model, state = linear_core(d), state.core
    out = np.empty(n)
    out[d.obs_idx] = model.predict(state, d, "obs")
    if d.n_mis:
        out[d.mis_idx] = model.predict(state, d, "mis")
    return out


def outcome_term(rng, sa, y_values, a, c, x_now, active) -> LinearTerm:
    """The analysis model's factor as a term linear in x: ``N(y; a + c x, σ²)``; for a
    probit outcome ``N(y*; a + c x, 1)`` with the latent ``y*`` drawn from its truncated
    normal given the current x (Albert & Chib 1993: alternating the two leaves
    ``N(x; μ, σ²) Φ((2y − 1)(a + c x))`` invariant)."""
    if not _probit(sa):
        return LinearTerm(y_values, a, c, sa.sigma2, active)
    ystar = np.zeros_like(a)
    ystar[active] = truncnorm_sign(rng, (a + c * x_now)[active], y_values[active] > 0.5)
    return LinearTerm(ystar, a, c, 1.0, active)


def eta_at(model, state, d, values: Values, static, x: str, n: int):
    """``a`` and ``c`` of ``d``'s linear predictor as an affine function of column x."""
    current = values[x]

    def eta(v: np.ndarray) -> np.ndarray:
        values[x] = v
        values.touch(x)
        d.refresh(values, static)
        return linear_predictor(model, state, d, n)

    try:
        return affine_coefficients(eta, n)
    finally:
        values[x] = current
        values.touch(x)


def cluster_eta_at(model, state, d, cview, static, w: str):
    """``a`` and ``c`` of a level-2 model's linear predictor (one row per cluster) as an
    affine function of the level-2 column w."""
    values = cview.values
    current = values[w]

    def eta(v: np.ndarray) -> np.ndarray:
        values[w] = np.full(values.layout.n, v[0])
        values.touch(w)
        d.refresh(cview, static)
        return model.predict(state, d, "obs")

    try:
        a = eta(np.zeros(1))
        return a, eta(np.ones(1)) - a
    finally:
        values[w] = current
        values.touch(w)
