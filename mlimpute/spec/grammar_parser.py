"""The recursive-descent parser of the formula grammar (:mod:`mlimpute.spec.grammar`).

``_Parser`` reads the tokens of a formula and accepts only what the grammar allows
(the module docstring of :mod:`mlimpute.spec.grammar` lists it); it raises
:class:`~mlimpute.errors.FormulaError` at the first token that is not allowed, with a
caret under it.

What stands inside a call's parentheses is read by ``_Calls``
(:mod:`mlimpute.spec.grammar_calls`, which also works out arithmetic of numbers alone, in
floats); this module reads the formula's terms. Products of terms expand (``a*b*c`` is
seven terms, a product of n factors 2**n - 1), so the number of terms a formula's part
expands to is bounded by :data:`MAX_TERMS` while it is read: formulaic's expansion of a
20-factor product takes 16 s, of 30 hours. The other limits are :data:`MAX_DEPTH`
(nesting) and :data:`MAX_TERM_POWER`.
"""

from __future__ import annotations

import keyword
import math
import re

from mlimpute.errors import FormulaError
from mlimpute.spec.grammar_calls import _Calls
from mlimpute.spec.grammar_functions import _np_names
from mlimpute.spec.grammar_tokens import _Token, _tokenize, caret_message

#: How deep parentheses, calls and signs may be nested in a formula.
MAX_DEPTH = 50
#: The largest power of formula terms, ``(a + b + c)**3``.
MAX_TERM_POWER = 3
#: The most terms a formula's part may expand to (a product of ten factors: 1,023).
MAX_TERMS = 1024

_OPS_FORMULA = ("*", "/", ":")
_NOT_A_TERM = ("+", "-", "*", "/", ":", "**", "^", "|", "||", ")", "~")


class _Parser(_Calls):
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
