"""The recursive-descent parser of the formula grammar (:mod:`mlimpute.spec.grammar`).

``_Parser`` reads the tokens of a formula and accepts only what the grammar allows
(the module docstring of :mod:`mlimpute.spec.grammar` lists it); it raises
:class:`~mlimpute.errors.FormulaError` at the first token that is not allowed, with a
caret under it.

Arithmetic of numbers alone inside a call (``I(2**10)``) is worked out here, in floats:
Python would do it with unbounded integers when formulaic evaluates the call, so a
formula could otherwise ask for a number with billions of digits. The limits are
:data:`MAX_DEPTH`, :data:`MAX_EXPONENT`, :data:`MAX_TERM_POWER` and :data:`MAX_INT`.
Products of terms expand (``a*b*c`` is seven terms, a product of n factors 2**n - 1), so
the number of terms a formula's fixed part expands to is bounded by :data:`MAX_TERMS`
while it is read: formulaic's expansion of a 20-factor product takes 16 s, of 30 hours.
"""

from __future__ import annotations

import keyword
import math
import operator
import re

import numpy as np

from mlimpute.errors import FormulaError
from mlimpute.spec.grammar_functions import (
    _NUMERIC,
    ALLOWED_FUNCTIONS,
    CONTRASTS,
    POSITIONAL_NAMES,
    SIGNATURES,
)
from mlimpute.spec.grammar_tokens import _Token, _tokenize, caret_message

#: How deep parentheses, calls and signs may be nested in a formula.
MAX_DEPTH = 50
#: The largest absolute value of the exponent of ``**`` inside a call.
MAX_EXPONENT = 1000
#: The largest power of formula terms, ``(a + b + c)**3``.
MAX_TERM_POWER = 3
#: The largest whole-number argument of a function (``poly(x, 3)``, ``bs(x, df=5)``).
MAX_INT = 100
#: The most terms a formula's part may expand to (a product of ten factors: 1,023).
MAX_TERMS = 1024

_OPS_FORMULA = ("*", "/", ":")
_NOT_A_TERM = ("+", "-", "*", "/", ":", "**", "^", "|", "||", ")", "~")
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


class _Parser:
    """Recursive descent over the tokens; raises FormulaError at the first bad token."""

    def __init__(self, text: str, shown: str | None = None):
        self.text = text
        self.shown = shown
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0
        self.terms = 0  # what the part read last expands to (:meth:`count`)
        self.calls: list[str] = []
        #: powers with a negative exponent inside calls and their bases, as written
        #: (``("i**-1", "i")`` in ``I(i**-1)``): numpy refuses them for integer columns
        self.negative_powers: list[tuple[str, str]] = []

    # -- helpers --------------------------------------------------------------------------
    def peek(self, k: int = 0) -> _Token:
        return self.tokens[min(self.i + k, len(self.tokens) - 1)]

    def at(self, *ops: str) -> bool:
        tok = self.peek()
        return tok.kind == "op" and tok.value in ops

    def take(self, *ops: str) -> _Token | None:
        if self.at(*ops):
            tok = self.peek()
            self.i += 1
            return tok
        return None

    def fail(self, tok: _Token, detail: str) -> FormulaError:
        msg = caret_message(self.text, detail, tok.pos)
        if self.shown is not None and self.shown != self.text:
            msg += f"\n(part of formula {self.shown!r})"
        return FormulaError(msg)

    def unexpected(self, tok: _Token, wanted: str) -> FormulaError:
        if tok.kind == "end":
            return self.fail(tok, f"formula ends where {wanted} was expected")
        return self.fail(tok, f"unexpected {_describe(tok)}; expected {wanted}")

    def expect(self, op: str, wanted: str | None = None) -> _Token:
        tok = self.take(op)
        if tok is None:
            raise self.unexpected(self.peek(), wanted or repr(op))
        return tok

    def end(self) -> None:
        tok = self.peek()
        if tok.kind != "end":
            if tok.kind == "op" and tok.value == ")":
                raise self.fail(tok, "unmatched ')'")
            if tok.kind == "op" and tok.value in ("|", "||"):
                raise self.fail(tok, "a random term must be written '(terms | group)'")
            raise self.unexpected(tok, "an operator or the end of the formula")

    def enter(self, tok: _Token) -> None:
        """One level deeper at ``tok`` (a parenthesis, call or sign); refuse beyond
        :data:`MAX_DEPTH` before Python's own recursion limit is near."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(
                tok,
                f"parentheses, calls and signs are nested more than {MAX_DEPTH} deep here",
            )

    def leave(self) -> None:
        self.depth -= 1

    def close(self, opening: _Token) -> None:
        """Expect the ')' matching ``opening``."""
        if self.peek().kind == "end":
            raise self.fail(opening, "unmatched '('")
        self.expect(")", "')' or an operator")

    # -- the formula ----------------------------------------------------------------------
    def formula(self) -> None:
        tildes = [t for t in self.tokens if t.kind == "op" and t.value == "~"]
        if not tildes:
            raise self.fail(self.tokens[0], "missing '~'")
        if len(tildes) > 1:
            raise self.fail(tildes[1], "expected exactly one '~'")
        if not self.at("~"):
            self.column("the response (a column name) or '~'")
            if not self.at("~"):
                raise self.fail(self.peek(), "the left-hand side must be one column name")
        self.expect("~")
        self.fsum(random_ok=True)
        self.end()

    def rhs(self) -> None:
        self.fsum(random_ok=False)
        self.end()

    def fsum(self, random_ok: bool) -> None:
        self.take("+", "-")
        self.fprod(random_ok)
        total = self.terms
        while op := self.take("+", "-"):
            self.fprod(random_ok)
            total = self.count(op, total + self.terms)
        self.terms = total

    def count(self, op: _Token, terms: int) -> int:
        """``terms`` (what the formula has expanded to so far), refused above
        :data:`MAX_TERMS` with the caret under ``op``."""
        if terms > MAX_TERMS:
            raise self.fail(
                op,
                f"the terms here expand to more than {MAX_TERMS} terms (a product of n "
                "factors has 2**n - 1); write the interactions you need",
            )
        return terms

    def fprod(self, random_ok: bool) -> None:
        random = self.fpow(random_ok)
        terms = self.terms
        while self.at(*_OPS_FORMULA):
            op = self.take(*_OPS_FORMULA)
            if random:
                raise self.fail(
                    op,
                    "a random term '(terms | group)' cannot be combined with "
                    "other terms; add it with '+'",
                )
            random = self.fpow(False)
            if random:
                raise self.fail(
                    op,
                    "a random term '(terms | group)' cannot be combined with "
                    "other terms; add it with '+'",
                )
            b = self.terms  # a*b: a + b + a:b; a/b: a + a:b; a:b: their products
            both = terms * b
            terms = self.count(op, both + (terms + b if op.value == "*" else 0))
            if op.value == "/":
                terms = self.count(op, terms + both)
        self.terms = terms

    def fpow(self, random_ok: bool) -> bool:
        random = self.fatom(random_ok)
        op = self.take("**", "^")
        if op is not None:
            if random:
                raise self.fail(op, "a random term '(terms | group)' cannot be raised to a power")
            tok = self.peek()
            if tok.kind != "number" or not tok.value.isdigit():
                raise self.unexpected(tok, f"a whole number after {op.value!r}")
            if not 1 <= int(tok.value) <= MAX_TERM_POWER:
                raise self.fail(
                    tok,
                    f"the power of formula terms must be a whole number from 1 to "
                    f"{MAX_TERM_POWER} (interactions up to that order), got {tok.value}",
                )
            # (a + b + ...)**k: the interactions of up to k of the t terms
            t = self.terms
            self.terms = self.count(op, sum(math.comb(t, j) for j in range(1, int(tok.value) + 1)))
            self.i += 1
        return random

    def fatom(self, random_ok: bool) -> bool:
        tok = self.peek()
        if tok.kind == "end" or (tok.kind == "op" and tok.value in _NOT_A_TERM):
            raise self.fail(tok, "empty term")
        if self.take("("):
            self.enter(tok)
            if random_ok and self.at("|", "||"):
                raise self.fail(self.peek(), "no terms before '|'")
            self.fsum(False)
            bar = self.take("|", "||")
            if bar is not None:
                if not random_ok:
                    raise self.fail(
                        bar,
                        "a random term '(terms | group)' must be added to the "
                        "fixed part on its own",
                    )
                group = self.peek()
                if group.kind == "op" and group.value == ")":
                    raise self.fail(group, "grouping factor '' must be a column name, a:b or a/b")
                self.grouping_factor()
                if not self.at(")"):
                    if self.peek().kind == "end":
                        raise self.fail(tok, "unmatched '('")
                    k = self.i
                    while self.tokens[k].kind != "end" and self.tokens[k].value != ")":
                        k += 1
                    span = self.text[group.pos : self.tokens[k].pos].strip()
                    raise self.fail(
                        group, f"grouping factor {span!r} must be a column name, a:b or a/b"
                    )
                self.i += 1
                self.leave()
                self.terms = 0  # a random term: no fixed terms
                return True
            self.close(tok)
            self.leave()
            return False  # self.terms: those of the sum inside
        self.terms = 1
        if tok.kind == "number":
            self.i += 1
            return False
        if tok.kind == "name" and self.peek(1).kind == "op" and self.peek(1).value == "(":
            self.call()
            self.terms = 1  # a call is one term, whatever is inside
            return False
        self.column("a column name, a number, '(' or a function call")
        return False

    def grouping_factor(self) -> None:
        """``g``, ``a:b`` (the combination of two columns) or ``a/b`` (``a`` and ``a:b``)."""
        self.column("the grouping factor (a column name)")
        while self.at(":", "/") and self.peek(1).kind in ("name", "backquoted"):
            self.i += 1
            self.column("a column name in the grouping factor")

    # -- names ----------------------------------------------------------------------------
    def column(self, wanted: str, *, python: bool = False) -> None:
        tok = self.peek()
        if tok.kind == "backquoted":
            if tok.value == "``":
                raise self.fail(tok, "empty column name ``")
            self.i += 1
            return
        if tok.kind != "name":
            if tok.kind == "string":
                raise self.fail(
                    tok,
                    "string literals are only allowed as levels or contrast "
                    "arguments of C(); write a column name in backquotes",
                )
            raise self.unexpected(tok, wanted)
        self.check_name(tok, python=python)
        self.i += 1

    def check_name(self, tok: _Token, *, python: bool) -> None:
        name = tok.value
        parts = name.split(".")
        if not re.search(r"[A-Za-z_]", name):
            raise self.fail(tok, f"{name!r} is not a column name")
        if any(p.startswith("__") for p in parts):
            raise self.fail(
                tok,
                f"{name!r}: names beginning with '__' are not allowed in a "
                "formula (write a column name in backquotes)",
            )
        if python and keyword.iskeyword(name):
            raise self.fail(
                tok,
                f"the Python keyword {name!r} is not allowed in a formula "
                "(write a column of that name in backquotes)",
            )
        if parts[0] in ("np", "numpy", "contr"):
            raise self.fail(
                tok,
                f"{name!r}: attribute access is not allowed in a formula; "
                f"only the functions {', '.join(_np_names())} may be called",
            )
        if python and "." in name:
            raise self.fail(
                tok, f"inside a function call, write the column {name!r} in backquotes: `{name}`"
            )

    # -- calls ----------------------------------------------------------------------------
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


def _describe(tok: _Token) -> str:
    if tok.kind == "op":
        if tok.value == ":=":
            return "':=' (assignment is not allowed in a formula)"
        if tok.value in ("[", "]"):
            return f"{tok.value!r} (subscripts are not allowed in a formula)"
        return repr(tok.value)
    if tok.kind == "string":
        return f"string {tok.value} (strings are only allowed as levels or contrasts in C())"
    return f"{tok.kind} {tok.value!r}"


def _np_names() -> list[str]:
    return [f for f in ALLOWED_FUNCTIONS if f.startswith("np.")]


def _allowed_hint() -> str:
    return "; allowed functions: " + ", ".join(ALLOWED_FUNCTIONS)
