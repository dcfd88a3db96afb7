"""Linear hypotheses, parsed to ``L`` and ``c``.

For :meth:`mlimpute.analysis.results.PooledResult.test`.

:func:`parse_hypotheses` reads equations as written in R's ``car::linearHypothesis`` /
mitml's ``testConstraints`` (see :mod:`mlimpute.analysis.results`) into the matrix ``L`` and the
vector ``c`` of ``L beta = c``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from mlimpute.errors import FormulaError

_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_COEF_TERM = re.compile(rf"^({_NUMBER})\s*\*\s*(.+)$")
_TERM_COEF = re.compile(rf"^(.+?)\s*\*\s*({_NUMBER})$")


def _split_signed(text: str) -> list[tuple[float, str]]:
    """Split a linear combination at top-level ``+``/``-`` into (sign, chunk) pairs."""
    out: list[tuple[float, str]] = []
    depth, tick, sign, start = 0, False, 1.0, 0
    for i, ch in enumerate(text):
        if ch == "`":
            tick = not tick
        if tick:
            continue
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif depth == 0 and ch in "+-":
            prev = text[:i].rstrip()
            if prev and (prev[-1] in "eE" and re.search(r"\d[eE]$", prev)):
                continue  # exponent of a number such as 1e-3
            if prev and prev[-1] == "*":
                continue  # sign of a coefficient after '*'
            out.append((sign, text[start:i]))
            sign, start = (1.0 if ch == "+" else -1.0), i + 1
    out.append((sign, text[start:]))
    return [(s, c.strip()) for s, c in out if c.strip() or s < 0]


def _split_top(text: str, sep: str) -> list[str]:
    """Split ``text`` at ``sep`` outside parentheses, brackets and backquotes."""
    parts, depth, tick, start = [], 0, False, 0
    for i, ch in enumerate(text):
        if ch == "`":
            tick = not tick
        elif not tick and ch in "([":
            depth += 1
        elif not tick and ch in ")]":
            depth -= 1
        elif not tick and depth == 0 and ch == sep:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _side(text: str, names: Sequence[str], full: str) -> tuple[np.ndarray, float]:
    """Coefficients on ``names`` and the constant of one side of an equation."""
    lookup = {n: j for j, n in enumerate(names)}
    lookup.setdefault("(Intercept)", lookup.get("Intercept", -1))
    coef, const = np.zeros(len(names)), 0.0
    chunks = _split_signed(text)
    if not chunks:
        raise FormulaError(f"empty side of an equation in the hypothesis {full!r}")
    for sign, chunk in chunks:
        if not chunk:
            raise FormulaError(f"dangling sign in the hypothesis {full!r}")
        if re.fullmatch(_NUMBER, chunk):
            const += sign * float(chunk)
            continue
        factor, term = 1.0, _unquote(chunk)
        if term not in lookup:
            if (hit := _COEF_TERM.match(chunk)) is not None:
                factor, term = float(hit.group(1)), _unquote(hit.group(2))
            elif (hit := _TERM_COEF.match(chunk)) is not None:
                term, factor = _unquote(hit.group(1)), float(hit.group(2))
        j = lookup.get(term, -1)
        if j < 0:
            raise FormulaError(
                f"{term!r} in the hypothesis {full!r} is not a term of the model; terms: "
                f"{list(names)}"
            )
        coef[j] += sign * factor
    return coef, const


def _unquote(term: str) -> str:
    term = term.strip()
    return term[1:-1] if len(term) > 1 and term[0] == term[-1] == "`" else term


def parse_hypotheses(
    text: str, names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...] | None]:
    """Parse linear hypotheses such as ``"gender = 0, skill:gender = 0"``.

    Parameters
    ----------
    text : str
        Equations joined by commas (see the module docstring).
    names : sequence of str
        The model's term names.

    Returns
    -------
    L : ndarray, shape (r, p)
    rhs : ndarray, shape (r,)
        The hypothesis is ``L @ beta = rhs``.
    dropped : tuple of str or None
        When every equation is ``c * term = 0`` with distinct terms, those terms (the
        reduced model drops them; needed by likelihood-based tests), else ``None``.

    Raises
    ------
    FormulaError
        On an unknown term, an equation without a term, or linearly dependent equations.

    Examples
    --------
    >>> L, rhs, dropped = parse_hypotheses("b = 0, a - 2*b = 1", ["Intercept", "a", "b"])
    >>> L.tolist(), rhs.tolist(), dropped
    ([[0.0, 0.0, 1.0], [0.0, 1.0, -2.0]], [0.0, 1.0], None)
    """
    if not isinstance(text, str) or not text.strip():
        raise FormulaError(f"a hypothesis must be a non-empty string, got {text!r}")
    rows, rhs = [], []
    for eq in _split_top(text, ","):
        sides = _split_top(eq, "=")
        if len(sides) > 2 or not eq.strip():
            raise FormulaError(f"{eq.strip()!r} in {text!r} is not an equation 'lhs = rhs'")
        left, c_left = _side(sides[0], names, text)
        right, c_right = _side(sides[1], names, text) if len(sides) == 2 else (0.0, 0.0)
        row = left - right
        if not np.any(row):
            raise FormulaError(f"the equation {eq.strip()!r} in {text!r} involves no term")
        rows.append(row)
        rhs.append(c_right - c_left)
    L = np.array(rows)
    if np.linalg.matrix_rank(L) < L.shape[0]:
        raise FormulaError(f"the equations of {text!r} are linearly dependent")
    rhs_arr = np.array(rhs)
    single = (np.count_nonzero(L, axis=1) == 1) & (rhs_arr == 0)
    dropped = None
    if single.all():
        cols = [int(np.flatnonzero(row)[0]) for row in L]
        dropped = tuple(names[j] for j in cols)
    return L, rhs_arr, dropped
