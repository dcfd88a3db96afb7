"""The tokenizer of the formula grammar (:mod:`mlimpute.spec.grammar`).

``_tokenize`` splits a formula into numbers, names, backquoted names, strings and
operators (an unknown character raises :class:`~mlimpute.errors.FormulaError` with a
caret under it, :func:`caret_message`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlimpute.errors import FormulaError

__all__ = ["caret_message"]


_TOKEN = re.compile(
    r"""(?P<ws>\s+)
    |(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    |(?P<name>[A-Za-z_.][A-Za-z0-9_.]*)
    |(?P<backquoted>`[^`]*`)
    |(?P<string>'[^'\\\n]*'|"[^"\\\n]*")
    |(?P<op>\*\*|\|\||//|<=|>=|==|!=|:=|[~+\-*/:^()|,=\[\]<>%])""",
    re.X,
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
        if m.lastgroup != "ws":
            tokens.append(_Token(m.lastgroup, m.group(), pos))
        pos = m.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens
