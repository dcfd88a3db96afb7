"""Formulaic's design of one right-hand side, built once on the template fill, and the
rank check that drops constant or collinear columns."""

from __future__ import annotations

import weakref

import numpy as np
import pandas as pd
from formulaic import model_matrix
from formulaic.errors import FormulaicError
from formulaic.parser.types.factor import Factor
from scipy import linalg as sla

from mlimpute.errors import FormulaError
from mlimpute.sampler.block import check_finite
from mlimpute.spec.formula import ParsedFormula
from mlimpute.spec.grammar import EVALUATION_CONTEXT, validate_rhs
from mlimpute.spec.longsum import balanced_sum

__all__ = ["rows", "ones_column"]


def _materialise(rhs: str, frame: pd.DataFrame, parsed: ParsedFormula, dynamic: set[str]):
    if rhs.strip() == "1":  # an intercept only (the usual random part): what formulaic gives
        return ["Intercept"], np.ones((len(frame), 1)), [], [], None
    validate_rhs(rhs, parsed.text)  # also a ParsedFormula built by hand or read from a file
    try:
        # the used columns are complete here: a NaN can only come from a transform, which
        # check_finite names (formulaic's na_action="raise" would not name the column)
        with np.errstate(all="ignore"):
            mm = model_matrix(
                balanced_sum(rhs), frame, na_action="ignore", context=EVALUATION_CONTEXT
            )
    except FormulaicError as exc:
        raise FormulaError(f"cannot build the design of {parsed.text!r}: {exc}") from None
    spec = mm.model_spec
    names = list(mm.columns)
    X = np.asarray(mm, dtype=np.float64)  # converted once: checked, then returned
    del mm
    check_finite(
        X,
        names,
        [spec],
        parsed.text,
        "on the data (imputed cells at their starting values)",
    )
    fast, slow = [], []
    for term, _scoped, columns in spec.structure:
        idx = [spec.column_indices[c] for c in columns]
        facs = term.factors
        deps = {str(v) for v in spec.term_variables.get(term, ())} & dynamic
        if not deps:
            continue
        numeric = all(
            f.eval_method == Factor.EvalMethod.LOOKUP
            and spec.encoder_state.get(f.expr, ("numerical",))[0].value == "numerical"
            for f in facs
        )
        if numeric and len(idx) == 1:
            fast.append((idx[0], tuple(f.expr for f in facs)))
        else:
            slow.extend(idx)
    return names, X, fast, slow, spec


def rows(X: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The rows ``idx`` of ``X`` as a new Fortran-ordered array, gathered column by column
    (no C-ordered intermediate copy).

    Examples
    --------
    >>> r = rows(np.arange(6.0).reshape(3, 2), np.array([2, 0]))
    >>> r.tolist(), r.flags.f_contiguous
    ([[4.0, 5.0], [0.0, 1.0]], True)
    """
    out = np.empty((idx.size, X.shape[1]), order="F")
    for j in range(X.shape[1]):
        # indices are in range; mode="clip" spares the buffered copy mode="raise" makes
        np.take(X[:, j], idx, out=out[:, j], mode="clip")
    return out


_ones_buffer: weakref.ref | None = None


def ones_column(k: int, n: int = 0) -> np.ndarray:
    """A (k, 1) column of ones: a read-only view of one buffer that every design of the
    process shares (the random intercept of each variable, its observed and missing rows).
    A new buffer, when one is needed, has ``max(k, n)`` rows (``n``: all rows of the data,
    so that every later design fits in it).

    Examples
    --------
    >>> a, b = ones_column(3), ones_column(2)
    >>> a.shape, a.flags.f_contiguous, a.flags.writeable, np.shares_memory(a, b)
    ((3, 1), True, False, True)
    """
    global _ones_buffer
    base = _ones_buffer() if _ones_buffer is not None else None
    if base is None or base.size < k:
        base = np.ones(max(k, n))
        base.flags.writeable = False
        _ones_buffer = weakref.ref(base)
    return base[:k, None]


def _independent_columns(X: np.ndarray, tol: float = 1e-7) -> tuple[list[int], list[int]]:
    """Columns to keep and to drop, in formula order.

    Unpivoted QR of the unit-norm columns: ``|R_kk|`` is the part of column k orthogonal to
    the columns before it, so a column that adds nothing to the earlier ones (a constant next
    to the intercept, a collinear predictor) is dropped and the earlier one kept.
    """
    p = X.shape[1]
    if X.shape[0] == 0:
        return list(range(p)), []
    norms = np.sqrt((X**2).sum(0))
    Xs = X / np.where(norms > 0, norms, 1.0)
    # Xs is a new array of finite values (designs are checked): factorised in place
    R = sla.qr(Xs, mode="r", overwrite_a=True, check_finite=False)[0]
    d = np.zeros(p)
    k = min(R.shape)
    d[:k] = np.abs(np.diag(R)[:k])
    keep_mask = (d > tol) & (norms > 0)
    return np.flatnonzero(keep_mask).tolist(), np.flatnonzero(~keep_mask).tolist()
