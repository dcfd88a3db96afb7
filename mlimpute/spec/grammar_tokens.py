"""The tokenizer of the formula grammar (:mod:`mlimpute.spec.grammar`).

``_tokenize`` splits a formula into numbers, names, backquoted names, strings and
operators (an unknown character raises :class:`~mlimpute.errors.FormulaError` with a
caret under it, :func:`caret_message`). A number must be one Python reads as a finite
float without big-integer arithmetic: whole numbers have at most :data:`MAX_DIGITS`
digits and no leading zero, and ``1e400`` (infinite as a float) is refused.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from mlimpute.errors import FormulaError

__all__ = ["MAX_DIGITS", "caret_message"]

#: The most digits a whole number in a formula may have (a float holds about 15).
MAX_DIGITS = 15


_TOKEN = re.compile(
    r"""(?P<ws>\s+)
    |(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    |(?P<name>[A-Za-z_.][A-Za-z0-9_.]*)
    |(?P<backquoted>`[^`]*`)
    |(?P<string>'[^'\\\n]*'|"[^"\\\n]*")
    |(?P<op>\*\*|\|\||//|<=|>=|==|!=|:=|[~+\-*/:^()|,=\[\]<>%])""",
    re.X | re.ASCII,
)


@dataclass(frozen=True)
class _Token:
    kind: str  # number, name, backquoted, string, op, end
    value: str
    pos: int


def caret_message(text: str, detail: str, pos: int) -> str:
    """``detail``, the formula, and a caret under position ``pos``."""
    line = text.replace("\n", " ").replace("\t", " ")
    return f"{detail} in formula {text!r}\n    {line}\n    {' ' * pos}^"


def _tokenize(text: str) -> list[_Token]:
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            ch = text[pos]
            detail = (
                "unmatched '`'"
                if ch == "`"
                else "unterminated string"
                if ch in "'\""
                else f"unexpected character {ch!r}"
            )
            raise FormulaError(caret_message(text, detail, pos))
        if m.lastgroup == "number":
            _check_number(text, m.group(), pos)
        if m.lastgroup != "ws":
            tokens.append(_Token(m.lastgroup, m.group(), pos))
        pos = m.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


def _check_number(text: str, number: str, pos: int) -> None:
    """Refuse a number Python could only read with big integers, or not at all."""
    if number.isdigit():
        if len(number) > MAX_DIGITS:
            detail = (
                f"the number {number} has more than {MAX_DIGITS} digits; "
                "write a large number as a float such as 1.5e20"
            )
            raise FormulaError(caret_message(text, detail, pos))
        if len(number) > 1 and number.startswith("0") and number.strip("0"):
            detail = f"the number {number} has a leading zero; write {number.lstrip('0')}"
            raise FormulaError(caret_message(text, detail, pos))
    elif math.isinf(float(number)):
        detail = f"the number {number} is too large to be a float (at most about 1.8e308)"
        raise FormulaError(caret_message(text, detail, pos))
