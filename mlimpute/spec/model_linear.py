"""How the incomplete predictors enter the analysis model of model-based imputation.

:func:`check_linear` reads the terms of the analysis model: an incomplete predictor that
enters every term as a plain column has closed-form draws, one under a transform
(``I(x**2)``, ``log(x)``...) is drawn by Metropolis–Hastings, and ``cmean()`` of an
incomplete predictor is refused. :func:`~mlimpute.spec.model.build_model_spec` orders the
predictors as the model names them (``_position``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from formulaic import Formula
from formulaic.parser.types.factor import Factor

from mlimpute.errors import UnsupportedError
from mlimpute.spec.formula import ParsedFormula, _outside_ticks, lmean_column


def _terms(rhs: str) -> list[tuple[str, list[Factor]]]:
    """The terms of a formulaic right-hand side with their factors."""
    if rhs.strip() in ("", "1", "0"):
        return []
    return [(str(t), list(t.factors)) for t in Formula(rhs)]


def _pattern(name: str) -> re.Pattern:
    return re.compile(rf"(?<![\w.`]){re.escape(name)}(?![\w.`])|`{re.escape(name)}`")


def _mentions(expr: str, name: str) -> bool:
    return _pattern(name).search(expr) is not None


def _position(text: str, name: str) -> int:
    """Where ``name`` first appears in the right-hand side of ``text`` (the model's order)."""
    tildes = _outside_ticks(text, "~")  # not a '~' inside a backquoted name
    rhs = text[tildes[0] + 1 :] if tildes else text
    hit = _pattern(name).search(rhs)
    return hit.start() if hit else len(rhs)


def check_linear(parsed: ParsedFormula, incomplete: Sequence[str]) -> set[str]:
    """How each incomplete predictor enters the analysis model; refuse what is not supported.

    A term is linear in x when x enters it once, as a plain column (``x``, ``x:z``, ``x:w``
    with w incomplete too; formulaic reads ``x:x`` as ``x``): x's missing values then have a
    closed-form full conditional. A transform of x (``I(x**2)``, ``log(x)``, ``exp(x)``,
    ``sqrt(x)``, ``poly(x, 2)``...) makes the term non-linear in x: its missing values are
    drawn by Metropolis–Hastings. The observed cluster mean ``cmean(x)`` of an incomplete
    predictor is not supported.

    Returns
    -------
    set of str
        The incomplete predictors that enter some term non-linearly (drawn by
        Metropolis–Hastings).

    Raises
    ------
    UnsupportedError
        Naming the term.

    Examples
    --------
    >>> from mlimpute.spec.formula import parse_formula
    >>> sorted(check_linear(parse_formula("y ~ x * w + I(w**2) + (1 + x | g)"), ["x", "w"]))
    ['w']
    """
    nonlinear: set[str] = set()
    parts = [("fixed part", parsed.fixed)] + [("random part", b.terms) for b in parsed.random]
    for where, rhs in parts:
        for term, factors in _terms(rhs):
            for x in incomplete:
                other = [
                    f
                    for f in factors
                    if f.expr.strip("`") not in (x, lmean_column(x)) and _mentions(f.expr, x)
                ]
                if any(f.expr.strip("`").startswith(("cmean(", "ranef(")) for f in other):
                    raise UnsupportedError(
                        f"the term {term!r} in the {where} of the analysis model "
                        f"{parsed.text!r} uses the observed cluster mean of the incomplete "
                        f"predictor {x!r}: model-based imputation does not support cmean() "
                        "of an incomplete predictor"
                    )
                if other:
                    nonlinear.add(x)
    return nonlinear


def nonlinear_predictors(parsed: ParsedFormula, names: Sequence[str]) -> set[str]:
    """The imputed columns among ``names`` that enter the analysis model non-linearly.

    Examples
    --------
    >>> from mlimpute.spec.formula import parse_formula
    >>> nonlinear_predictors(parse_formula("y ~ x + I(x**2) + (1 | g)"), ["x", "y"])
    {'x'}
    """
    return check_linear(parsed, [n for n in names if n != parsed.response])
