"""The grammar of a call's arguments inside a formula (:mod:`mlimpute.spec.grammar`):
Python expressions over columns and numbers, keyword arguments, literals and contrasts.

:class:`_Calls` is the part of the formula parser (``_Parser`` in
:mod:`mlimpute.spec.grammar_parser`, whose token helpers it uses) that reads what stands
between a function's parentheses. Arithmetic of numbers alone is worked out here, in
floats (:meth:`_Calls.fold`): Python would do it with unbounded integers when formulaic
evaluates the call, so ``I(10**10**10)`` could otherwise ask for a number with billions of
digits. The limits are :data:`MAX_EXPONENT` and :data:`MAX_INT`.
"""

from __future__ import annotations

import math
import operator
import re

import numpy as np

from mlimpute.spec.grammar_functions import (
    _NUMERIC,
    CONTRASTS,
    POSITIONAL_NAMES,
    SIGNATURES,
    _allowed_hint,
    _np_names,
)
from mlimpute.spec.grammar_tokens import _Token

__all__ = ["MAX_EXPONENT", "MAX_INT"]

#: The largest absolute value of the exponent of ``**`` inside a call.
MAX_EXPONENT = 1000
#: The largest whole-number argument of a function (``poly(x, 3)``, ``bs(x, df=5)``).
MAX_INT = 100

_OPS_PYTHON_MUL = ("*", "/", "//", "%")
_COMPARE = ("<", "<=", ">", ">=", "==", "!=")
_ARITHMETIC = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
    "**": operator.pow,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


class _Calls:
    """The grammar inside a call's parentheses (a mixin of the formula parser: ``peek``,
    ``take``, ``fail``, ``enter``/``leave``, ``column`` and ``check_name`` are its)."""

    def call(self) -> float | None:
        """An allowed call; its value when it is a numeric function of numbers alone."""
        tok = self.peek()
        name = tok.value
        if name not in SIGNATURES:
            if name.split(".")[0] in ("np", "numpy"):
                detail = (
                    f"function {name!r} is not allowed; the numpy functions allowed "
                    f"are {', '.join(_np_names())}"
                )
            else:
                detail = f"function {name!r} is not allowed in a formula{_allowed_hint()}"
            raise self.fail(tok, detail)
        self.i += 1
        self.calls.append(name)
        positional, keywords = SIGNATURES[name]
        first = self.arguments(name, positional, keywords, POSITIONAL_NAMES.get(name, ()))
        if name == "I":
            return first
        if first is None or name.removeprefix("np.") not in _NUMERIC:
            return None
        with np.errstate(all="ignore"):
            value = float(getattr(np, name.removeprefix("np."))(first))
        # a non-finite result is a numpy float: numpy's arithmetic on it never raises
        return value if math.isfinite(value) else None

    def arguments(
        self, name: str, positional, keywords, names=(), required: int = 1
    ) -> float | None:
        """The arguments of a call; the value of the first when it is numbers alone.

        ``names`` are the keywords that the positional arguments fill (None where there
        is none), ``required`` how many positional arguments must be given."""
        opening = self.expect("(")
        self.enter(opening)
        n, seen, first = 0, set(), None
        while True:
            tok = self.peek()
            if n == 0 and not seen and not required and self.at(")"):
                break  # a call without arguments: Treatment()
            if (
                tok.kind == "name"
                and self.peek(1).kind == "op"
                and self.peek(1).value in ("=", ":=")
            ):
                if self.peek(1).value == ":=":
                    raise self.fail(self.peek(1), "':=' is not allowed in a formula")
                if tok.value not in keywords:
                    opts = ", ".join(keywords) if keywords else "none"
                    raise self.fail(
                        tok,
                        f"{name}() has no argument {tok.value!r} here "
                        f"(keyword arguments allowed: {opts})",
                    )
                if tok.value in seen:
                    raise self.fail(tok, f"argument {tok.value!r} given twice")
                if tok.value in names[:n]:
                    raise self.fail(
                        tok, f"argument {tok.value!r} given twice (by position and by keyword)"
                    )
                seen.add(tok.value)
                self.i += 2
                self.value(keywords[tok.value], name)
            else:
                if seen:
                    raise self.fail(tok, f"positional argument after keyword arguments in {name}()")
                if n >= len(positional):
                    if tok.kind == "op" and tok.value == ")" and n > 0:
                        break
                    if n == 0 and not positional:
                        break
                    raise self.fail(tok, f"{name}() takes {len(positional)} positional argument(s)")
                value = self.value(positional[n], name)
                first = value if n == 0 else first
                n += 1
            if self.take(","):
                if self.at(")"):
                    break
                continue
            break
        if n < min(required, len(positional)):
            raise self.unexpected(self.peek(), f"the argument of {name}()")
        if self.peek().kind == "end":
            raise self.fail(opening, "unmatched '('")
        self.expect(")", f"')' closing {name}(")
        self.leave()
        return first

    def value(self, kind: str, fname: str) -> float | None:
        """One argument of ``fname``; an expression's value when it is numbers alone."""
        tok = self.peek()
        if kind == "expr":
            return self.pexpr()
        elif kind in ("column", "name"):  # "name": replaced by a column, never evaluated
            self.column(f"a column name as the argument of {fname}()", python=kind == "column")
        elif kind == "factor":  # cmean(x, a:b): never evaluated either
            self.column(f"a grouping factor (a column name or a:b) in {fname}()")
            while self.take(":"):
                self.column(f"a column name in the grouping factor of {fname}()")
        elif kind == "contrast":
            self.contrast()
        elif kind == "literals":
            self.literal_list(strings=True)
        elif kind == "numbers":
            self.literal_list(strings=False)
        elif kind == "literal":
            self.literal(strings=True)
        elif kind == "bool":
            if tok.kind != "name" or tok.value not in ("True", "False"):
                raise self.unexpected(tok, "True or False")
            self.i += 1
        elif kind in ("int", "number"):
            self.take("-", "+") if kind == "number" else None
            tok = self.peek()
            if tok.kind != "number" or (kind == "int" and not tok.value.isdigit()):
                raise self.unexpected(tok, "a whole number" if kind == "int" else "a number")
            if kind == "int" and int(tok.value) > MAX_INT:
                raise self.fail(
                    tok, f"{fname}() takes whole numbers up to {MAX_INT} here, got {tok.value}"
                )
            self.i += 1
        else:  # pragma: no cover - SIGNATURES only uses the kinds above
            raise AssertionError(kind)
        return None

    def literal(self, *, strings: bool) -> None:
        self.take("-", "+")
        tok = self.peek()
        ok = tok.kind == "number" or (
            strings
            and (tok.kind == "string" or (tok.kind == "name" and tok.value in ("True", "False")))
        )
        if not ok:
            raise self.unexpected(tok, "a string or number literal" if strings else "a number")
        self.i += 1

    def literal_list(self, *, strings: bool) -> None:
        self.expect("[", "a list '[...]' of literals")
        while not self.at("]"):
            self.literal(strings=strings)
            if not self.take(","):
                break
        self.expect("]", "']'")

    def contrast(self) -> None:
        tok = self.peek()
        if tok.kind != "name" or tok.value not in CONTRASTS:
            raise self.unexpected(tok, f"a contrast ({', '.join(CONTRASTS)})")
        self.i += 1
        self.calls.append(tok.value)
        if self.at("("):  # every argument optional, by position or by keyword
            keywords = CONTRASTS[tok.value]
            positional = tuple(keywords.values())
            self.arguments(tok.value, positional, keywords, tuple(keywords), required=0)

    # -- Python expressions inside calls --------------------------------------------------
    # Each returns its value when it is made of numbers alone (else None: it depends on
    # the data, and numpy or pandas work it out in floats, which never hangs).
    def pexpr(self) -> float | None:
        value = self.parith()
        values, ops = [value], []
        while (op := self.take(*_COMPARE)) is not None:
            ops.append(op)
            values.append(self.parith())
        if not ops:
            return value
        if any(v is None for v in values):
            return None
        pairs = zip(ops, values[:-1], values[1:], strict=True)
        return float(all(_ARITHMETIC[o.value](a, b) for o, a, b in pairs))

    def parith(self) -> float | None:
        value = self.pterm()
        while (op := self.take("+", "-")) is not None:
            value = self.fold(op, value, self.pterm())
        return value

    def pterm(self) -> float | None:
        value = self.punary()
        while (op := self.take(*_OPS_PYTHON_MUL)) is not None:
            value = self.fold(op, value, self.punary())
        return value

    def punary(self) -> float | None:
        sign = self.take("+", "-")
        if sign is not None:
            self.enter(sign)
            value = self.punary()
            self.leave()
            return None if value is None else (-value if sign.value == "-" else value)
        base = self.peek()
        value = self.patom()
        op = self.take("**")
        if op is not None:
            self.enter(op)
            start = self.peek()
            exponent = self.punary()
            self.leave()
            written = self.text[start.pos : self.peek().pos]
            if exponent is not None and exponent < 0 and value is None and _whole(written):
                power = self.text[base.pos : self.peek().pos].strip()
                self.negative_powers.append((power, self.text[base.pos : op.pos].strip()))
            if exponent is None or abs(exponent) > MAX_EXPONENT:
                shown = self.text[start.pos : self.peek().pos].strip()
                raise self.fail(
                    start,
                    f"the exponent of '**' must be a number from -{MAX_EXPONENT} to "
                    f"{MAX_EXPONENT} (or arithmetic of numbers alone giving one), "
                    f"not {shown!r}",
                )
            value = self.fold(op, value, exponent)
        elif self.at("^"):
            raise self.fail(self.peek(), "inside a function call write powers with '**'")
        return value

    def patom(self) -> float | None:
        tok = self.peek()
        value = None
        if self.take("("):
            self.enter(tok)
            value = self.pexpr()
            self.close(tok)
            self.leave()
        elif tok.kind == "number":
            self.i += 1
            value = float(tok.value)
        elif tok.kind == "name" and self.peek(1).kind == "op" and self.peek(1).value == "(":
            value = self.call()
        else:
            self.column("a column name, a number, '(' or a function call", python=True)
        after = self.peek()
        if after.kind == "op" and after.value in ("[", "."):
            raise self.fail(after, "subscripts are not allowed in a formula")
        return value

    def fold(self, op: _Token, a: float | None, b: float | None) -> float | None:
        """``a op b`` when both are numbers; refuse what Python could not work out cheaply
        and as a finite float (formulaic evaluates it with Python's own numbers)."""
        if a is None or b is None:
            return None
        try:
            value = _ARITHMETIC[op.value](a, b)
        except ZeroDivisionError:
            raise self.fail(op, f"arithmetic of numbers divides by zero at {op.value!r}") from None
        except OverflowError:
            value = math.inf
        if isinstance(value, complex):
            raise self.fail(op, f"arithmetic of numbers gives a complex number at {op.value!r}")
        if not math.isfinite(value):
            raise self.fail(
                op,
                f"arithmetic of numbers at {op.value!r} gives a number too large for a "
                "float (at most about 1.8e308)",
            )
        return float(value)


def _whole(exponent: str) -> bool:
    """An exponent Python works out as an integer: whole numbers, signs, ``+ - *`` and
    parentheses (``-1``, ``-(2)``; not ``-1.0``, ``-1/2``)."""
    return re.fullmatch(r"[\s\d()+*-]+", exponent) is not None and "**" not in exponent
