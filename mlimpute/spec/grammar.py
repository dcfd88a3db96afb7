"""The formula grammar: what a formula may contain, checked before anything evaluates it.

A formula is data, never code. formulaic evaluates the arguments of calls such as
``I(x**2)`` as Python expressions, so every formula is first read by the tokenizer and
recursive-descent parser below, which accept only

* column names: identifiers, dotted names as in data from R (``x.y``) and backquoted
  names with any characters (```my col```);
* numbers, the operators ``+ - * / : ** ^`` and parentheses;
* random parts ``(terms | group)`` and ``(terms || group)``, where ``group`` is a column,
  ``a:b`` (every combination of two columns) or ``a/b`` (nested: ``a`` and ``a:b``);
* calls of the functions in :data:`ALLOWED_FUNCTIONS`, each with its documented
  arguments (see :data:`SIGNATURES`); inside a call, arithmetic (``+ - * / // % **``),
  comparisons (``< <= > >= == !=``) and nested allowed calls.

Nothing in a formula may hang or exhaust memory, so these are refused too:

* parentheses, calls and signs nested more than :data:`MAX_DEPTH` (50) deep;
* a whole number with more than :data:`~mlimpute.spec.grammar_tokens.MAX_DIGITS` (15)
  digits or a leading zero, and a number too large for a float (``1e400``);
* inside a call, an exponent of ``**`` that is not a number from -:data:`MAX_EXPONENT`
  to :data:`MAX_EXPONENT` (1000), or arithmetic of numbers alone giving one
  (``x**2``, ``x**-1``, ``x**(1/3)``; not ``x**z`` or ``2**x``);
* arithmetic of numbers alone that divides by zero or does not give a finite float
  (``I(2**1000 * 2**1000)``): it is worked out while checking, in floats;
* a power of formula terms other than 1 to :data:`MAX_TERM_POWER` (3),
  ``(a + b + c)**2``, and a whole-number argument above :data:`MAX_INT` (100),
  ``poly(x, 3)``.

Anything else (attribute access other than the ``np.`` functions listed, subscripts,
string literals outside ``C()``, lambdas, comprehensions, other keyword arguments,
dunder names, ``:=``, any other call) raises :class:`~mlimpute.errors.FormulaError`
with a caret under the offending token. When formulaic evaluates a formula,
:data:`EVALUATION_CONTEXT` is its only namespace besides the data: the allowed
functions, and refusing stand-ins for every Python builtin.

The tables of allowed functions are in :mod:`mlimpute.spec.grammar_functions`, the
tokenizer in :mod:`mlimpute.spec.grammar_tokens`, the parser in
:mod:`mlimpute.spec.grammar_parser` and the namespace in
:mod:`mlimpute.spec.grammar_context`.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlimpute.errors import FormulaError
from mlimpute.spec.grammar_calls import MAX_EXPONENT, MAX_INT
from mlimpute.spec.grammar_context import EVALUATION_CONTEXT
from mlimpute.spec.grammar_functions import ALLOWED_FUNCTIONS, CONTRASTS, SIGNATURES
from mlimpute.spec.grammar_parser import MAX_DEPTH, MAX_TERM_POWER, _Parser
from mlimpute.spec.grammar_tokens import caret_message

__all__ = [
    "ALLOWED_FUNCTIONS",
    "CONTRASTS",
    "SIGNATURES",
    "EVALUATION_CONTEXT",
    "MAX_DEPTH",
    "MAX_EXPONENT",
    "MAX_INT",
    "MAX_TERM_POWER",
    "Checked",
    "validate_formula",
    "validate_rhs",
    "caret_message",
]


@dataclass(frozen=True)
class Checked:
    """What the validator accepted: the functions the formula calls, in order, and the
    powers with a negative exponent inside calls with their bases
    (``("i**-1", "i")`` in ``I(i**-1)``)."""

    calls: tuple[str, ...]
    negative_powers: tuple[tuple[str, str], ...] = ()


def validate_formula(text: str) -> Checked:
    """Check a whole formula (``"y ~ x + log(z) + (1 | g)"``) against the grammar.

    Nothing is evaluated; :class:`~mlimpute.errors.FormulaError` with a caret under the
    first token that is not allowed.

    Examples
    --------
    >>> validate_formula("y ~ x + np.log(z) + C(s, contr.sum) + (1 | g)").calls
    ('np.log', 'C', 'contr.sum')
    >>> validate_formula("~ x + I(x.__class__)")
    Traceback (most recent call last):
    ...
    mlimpute.errors.FormulaError: 'x.__class__': names beginning with '__' are not allowed ...
    """
    if not isinstance(text, str):
        raise FormulaError(f"a formula must be a string, got {type(text).__name__}")
    p = _Parser(text)
    p.formula()
    return Checked(tuple(p.calls), tuple(p.negative_powers))


def validate_rhs(rhs: str, formula: str | None = None) -> Checked:
    """Check a right-hand side without random parts (a fixed part or a random block's terms).

    ``formula`` is the whole formula it belongs to, quoted in the message.

    Examples
    --------
    >>> validate_rhs("x + I(x**2) + `cmean(x)`").calls
    ('I',)
    """
    if not isinstance(rhs, str):
        raise FormulaError(f"a formula part must be a string, got {type(rhs).__name__}")
    p = _Parser(rhs, formula)
    p.rhs()
    return Checked(tuple(p.calls), tuple(p.negative_powers))
