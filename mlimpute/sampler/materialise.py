"""Formulaic's design of one right-hand side, built once on the template fill, and the
rank check that drops constant or collinear columns."""

from __future__ import annotations

import warnings

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

__all__ = [
    "rows",
    "ones_rows",
    "full_rank_by_gram",
    "gram_full_rank",
    "column_factors",
]


#: rows formulaic evaluates a formula on first, from :data:`_HEAD_MIN_ROWS` rows (below,
#: its fixed cost of about 1.4 ms dominates); a design of plain numeric columns is then
#: read from the data directly (:func:`_direct_columns`)
_HEAD_ROWS = 64
_HEAD_MIN_ROWS = 100_000


def _materialise(rhs: str, frame: pd.DataFrame, parsed: ParsedFormula, dynamic: set[str]):
    """Formulaic's design of ``rhs`` on ``frame``: the column names, the columns (a list of
    float64 arrays, checked finite), the fast and slow refresh plans and formulaic's spec.

    On a large frame formulaic first evaluates the formula on its first rows: where every
    column is the intercept or a plain numeric column (no transform, category or
    interaction), the design is those columns of ``frame`` (the same numbers), and
    formulaic is not run over every row.
    """
    if rhs.strip() == "1":  # an intercept only (the usual random part): what formulaic gives
        return ["Intercept"], [np.broadcast_to(1.0, (len(frame),))], [], [], None
    validate_rhs(rhs, parsed.text)  # also a ParsedFormula built by hand or read from a file
    X = None
    if len(frame) >= _HEAD_MIN_ROWS:
        head = _model_matrix(rhs, frame.iloc[:_HEAD_ROWS], parsed, quiet=True)
        if head is not None:
            spec, names = head.model_spec, list(head.columns)
            X = _direct_columns(spec, frame)
    if X is None:
        mm = _model_matrix(rhs, frame, parsed)
        spec, names = mm.model_spec, list(mm.columns)
        # column by column (formulaic's frame holds them in blocks of their own): no 2-D copy
        X = [mm.iloc[:, j].to_numpy(dtype=np.float64) for j in range(len(names))]
        del mm
    if not all(np.isfinite(c).all() for c in X):
        check_finite(
            np.column_stack(X),
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


def _model_matrix(rhs: str, frame: pd.DataFrame, parsed: ParsedFormula, quiet: bool = False):
    """formulaic's model matrix of ``rhs`` on ``frame``; with ``quiet`` (a trial on the first
    rows) None where it fails, and without its warnings."""
    try:
        # the used columns are complete here: a NaN can only come from a transform, which
        # check_finite names (formulaic's na_action="raise" would not name the column)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            if quiet:
                warnings.simplefilter("ignore")
            return model_matrix(
                balanced_sum(rhs), frame, na_action="ignore", context=EVALUATION_CONTEXT
            )
    except FormulaicError as exc:
        if quiet:
            return None
        raise FormulaError(f"cannot build the design of {parsed.text!r}: {exc}") from None
    except Exception:
        if quiet:  # whatever fails on the first rows is decided on all of them
            return None
        raise


def column_factors(spec, frame: pd.DataFrame) -> list[tuple[str, ...]] | None:
    """The numeric columns of ``frame`` each column of the design ``spec`` multiplies,
    when every one is the intercept (``()``), one numeric column of ``frame`` (numbers or
    bools, numerically encoded) or an interaction of such columns; else None (a
    transform, a category, a column named like another).

    Examples
    --------
    >>> from formulaic import model_matrix
    >>> frame = pd.DataFrame({"x": [1.0, 2.0], "z": [0, 1], "g": ["a", "b"]})
    >>> column_factors(model_matrix("x * z", frame).model_spec, frame)
    [(), ('x',), ('z',), ('x', 'z')]
    >>> column_factors(model_matrix("x + g", frame).model_spec, frame) is None
    True
    """
    names = spec.column_names
    if (
        not frame.columns.is_unique
        or len(spec.structure) != len(names)
        or sorted(spec.column_indices.values()) != list(range(len(names)))
    ):
        return None
    out: list[tuple[str, ...]] = [()] * len(names)
    for term, _scoped, columns in spec.structure:
        if len(columns) != 1:
            return None
        j = spec.column_indices[columns[0]]
        if [(f.eval_method, f.expr) for f in term.factors] == [(Factor.EvalMethod.LITERAL, "1")]:
            continue
        for f in term.factors:
            kind = spec.encoder_state.get(f.expr, ("?",))[0]
            if (
                f.eval_method != Factor.EvalMethod.LOOKUP
                or getattr(kind, "value", kind) != "numerical"
                or f.expr not in frame.columns
                or not isinstance(frame[f.expr].dtype, np.dtype)
                or frame[f.expr].dtype.kind not in "biuf"
            ):
                return None
        out[j] = tuple(f.expr for f in term.factors)
    return out


def _direct_columns(spec, frame: pd.DataFrame) -> list[np.ndarray] | None:
    """The design of ``spec`` read from ``frame`` where each of its columns is the
    intercept or one numeric column of ``frame`` (:func:`column_factors`, no
    interaction): the numbers formulaic gives (it converts them to float64 the same way);
    else None."""
    factors = column_factors(spec, frame)
    if factors is None or any(len(f) > 1 for f in factors):
        return None
    return [
        frame[f[0]].to_numpy(dtype=np.float64)
        if f
        else np.broadcast_to(1.0, (len(frame),))  # the intercept, gathered into the blocks
        for f in factors
    ]


def rows(X: np.ndarray | list[np.ndarray], idx: np.ndarray) -> np.ndarray:
    """The rows ``idx`` of ``X`` (a 2-D array or a list of its columns) as a new
    Fortran-ordered array, gathered column by column (no C-ordered intermediate copy).

    Examples
    --------
    >>> r = rows(np.arange(6.0).reshape(3, 2), np.array([2, 0]))
    >>> r.tolist(), r.flags.f_contiguous
    ([[4.0, 5.0], [0.0, 1.0]], True)
    >>> rows([np.array([0.0, 2.0, 4.0]), np.array([1.0, 3.0, 5.0])], np.array([2, 0])).tolist()
    [[4.0, 5.0], [0.0, 1.0]]
    """
    cols = X if isinstance(X, list) else [X[:, j] for j in range(X.shape[1])]
    out = np.empty((idx.size, len(cols)), order="F")
    for j, col in enumerate(cols):
        # indices are in range; mode="clip" spares the buffered copy mode="raise" makes
        np.take(col, idx, out=out[:, j], mode="clip")
    return out


def ones_rows(k: int) -> np.ndarray:
    """A (k, 1) read-only column of ones that holds no row memory (one value broadcast):
    the random intercept of a design, its observed and missing rows. Its readers take
    products and sums of it, which give the numbers a stored column of ones gives.

    Examples
    --------
    >>> z = ones_rows(4)
    >>> z.shape, z.strides, z.flags.writeable, z.sum()
    ((4, 1), (0, 0), False, np.float64(4.0))
    """
    return np.broadcast_to(np.ones(1), (k, 1))


def _independent_columns(X: np.ndarray, tol: float = 1e-7) -> tuple[list[int], list[int]]:
    """Columns to keep and to drop, in formula order.

    Unpivoted QR of the unit-norm columns: ``|R_kk|`` is the part of column k orthogonal to
    the columns before it, so a column that adds nothing to the earlier ones (a constant next
    to the intercept, a collinear predictor) is dropped and the earlier one kept. The QR is
    skipped where the cross-products show every column far from the span of the others
    (:func:`full_rank_by_gram`): the QR would keep them all.
    """
    p = X.shape[1]
    if X.shape[0] == 0 or full_rank_by_gram(X):
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


#: the smallest eigenvalue of the scaled cross-products above which every column is kept
GRAM_FULL_RANK = 1e-6


def full_rank_by_gram(X: np.ndarray) -> bool:
    """Whether the columns of ``X`` are so far from collinear that the rank check keeps all
    of them, decided from the p x p cross-products instead of a QR of the n x p rows.

    With ``Xs`` the columns scaled to unit norm, every ``|R_kk|`` of its QR is at least the
    smallest singular value of ``Xs``, whose square is the smallest eigenvalue of ``Xs'Xs``.
    The computed ``Xs'Xs`` is off by at most about ``n u`` per entry (u the unit roundoff;
    Higham 2002, section 3.1), which the threshold allows for four times over; the computed
    ``R`` is the exact one of ``Xs`` moved by ``O(n p u)`` per column (Householder QR,
    Higham 2002, theorem 19.4), below 1e-6 for any design that fits in memory. So an
    eigenvalue above :data:`GRAM_FULL_RANK` puts every computed ``|R_kk|`` near 1e-3 or
    above, four orders above the check's tolerance 1e-7: the QR would keep every column.
    Anything else is left to the QR (nearly collinear or constant columns, a zero column,
    values whose squares overflow). Nothing numeric in the draws depends on it.

    Parameters
    ----------
    X : ndarray, shape (n, p)
        A design's observed rows (finite values).

    Returns
    -------
    bool
        True: every column is kept. False: undecided.

    Examples
    --------
    >>> x = np.arange(6.0)
    >>> full_rank_by_gram(np.column_stack([np.ones(6), x]))
    True
    >>> full_rank_by_gram(np.column_stack([np.ones(6), x, 2 * x + 1]))
    False
    """
    with np.errstate(all="ignore"):  # overflow: not finite, left to the QR
        G = X.T @ X
    return gram_full_rank(G, X.shape[0])


def gram_full_rank(G: np.ndarray, n: int) -> bool:
    """:func:`full_rank_by_gram` given the cross-products ``G = X'X`` of ``n`` rows
    (overwritten), however they were summed (in chunks of rows: the same bound).

    Examples
    --------
    >>> gram_full_rank(np.array([[4.0, 6.0], [6.0, 14.0]]), 4)
    True
    """
    p = G.shape[0]
    d = np.diag(G).copy()
    if not (np.isfinite(G).all() and (d > 0).all()):
        return False
    s = 1.0 / np.sqrt(d)
    G *= s[:, None]
    G *= s[None, :]
    lam = np.linalg.eigvalsh(G)[0]
    u = np.finfo(np.float64).eps
    return bool(lam > GRAM_FULL_RANK + 4 * (n + p) * p * u)
