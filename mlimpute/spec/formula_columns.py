"""The names of the design columns that formula terms stand for, and of grouping factors.

``cmean(x)`` and ``cmean(x, school)`` are filled with cluster means (:func:`cmean_column`,
:func:`split_cmean_column`), ``lmean(x)`` with the drawn latent cluster means
(:func:`lmean_column`), ``ranef(x)`` with another model's random effects
(:func:`ranef_column`); a grouping factor ``a:b`` names the columns ``a`` and ``b``
(:func:`factor_columns`).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import lru_cache

from mlimpute.spec.grammar_functions import CONTRASTS
from mlimpute.spec.grammar_tokens import _tokenize

__all__ = [
    "required_columns",
    "calls_of",
    "CallTerm",
    "cmean_column",
    "split_cmean_column",
    "lmean_column",
    "ranef_column",
    "factor_columns",
]


def cmean_column(variable: str, factor: str | None = None) -> str:
    """Name of the design column holding the cluster mean of ``variable``: over the
    innermost cluster (``cmean(x)``), or over the clusters of the grouping factor
    ``factor`` (``cmean(x, school)``, written as :attr:`ParsedFormula.factor_means` has it).

    Examples
    --------
    >>> cmean_column("x"), cmean_column("x", "school")
    ('cmean(x)', 'cmean(x, school)')
    """
    return f"cmean({variable})" if factor is None else f"cmean({variable}, {factor})"


def split_cmean_column(name: str) -> tuple[str, str | None] | None:
    """Inverse of :func:`cmean_column`: ``(variable, factor)`` (factor None for the
    innermost cluster), or None if ``name`` is not a cluster-mean column.

    Examples
    --------
    >>> split_cmean_column("cmean(x, school)"), split_cmean_column("cmean(x)")
    (('x', 'school'), ('x', None))
    """
    if not (name.startswith("cmean(") and name.endswith(")")):
        return None
    inner = name[6:-1]
    var, sep, factor = inner.partition(", ")
    return (var, factor) if sep else (inner, None)


def lmean_column(variable: str) -> str:
    """Name of the column holding the latent cluster mean of ``variable``.

    In a model-based imputation's analysis model ``lmean(x)`` is the random intercept of
    x's own model (its latent cluster mean); every completed data set carries its drawn
    values in this column, and an analysis formula's ``lmean(x)`` refers to it.

    Examples
    --------
    >>> lmean_column("x")
    'lmean(x)'
    """
    return f"lmean({variable})"


def ranef_column(variable: str, effect: str | None = None) -> str:
    """Name of the design column holding ``variable``'s model's current random effects.

    ``ranef(x)`` in a formula stands for all of x's random effects; with several, the
    design has one column per effect, ``ranef(x)[Intercept]``, ``ranef(x)[gender]``...
    """
    return f"ranef({variable})" if effect is None else f"ranef({variable})[{effect}]"


def factor_columns(factor: str) -> tuple[str, ...]:
    """The data columns of a grouping factor of :attr:`ParsedFormula.random_terms`.

    ``"class"`` is one column; ``"school:class"`` every combination of the two columns
    (the classes numbered within schools). A column whose name holds ``:`` or a backquote
    is written in backquotes in a factor.

    Examples
    --------
    >>> factor_columns("school:class"), factor_columns("`a:b`"), factor_columns("class")
    (('school', 'class'), ('a:b',), ('class',))
    """
    return tuple(p.strip().strip("`") for p in _split_outside_ticks(factor, ":"))


def _split_outside_ticks(text: str, sep: str) -> list[str]:
    """``text`` split at every ``sep`` outside backquotes."""
    parts = re.findall(rf"(?:`[^`]*`|[^`{re.escape(sep)}])+", text)
    return parts or [text]


def _factor_name(columns: tuple[str, ...]) -> str:
    """Inverse of :func:`factor_columns`."""
    return ":".join(f"`{c}`" if (":" in c or "`" in c) else c for c in columns)


@lru_cache(maxsize=1024)
def required_columns(rhs: str) -> frozenset[str]:
    """The data columns a right-hand side (a fixed part or a random block's terms, already
    checked against the grammar) refers to.

    Read from the formula's tokens, as the grammar reads them: a name followed by ``(`` is
    a function (``log1p``, ``scale``, ``np.log``...), a contrast in the contrast position
    of ``C()`` (``contr.sum``, ``Treatment``) is a contrast, a name before ``=`` inside a
    call is a keyword, ``True``/``False`` inside a call are literals; every other name is
    a column, dotted names such as ``x.y`` whole, backquoted names without their quotes.
    Columns inside the stateful transforms (``scale(k)``, ``poly(k, 2)``) are columns like
    any other. Cached: the result is a frozenset.

    Examples
    --------
    >>> sorted(required_columns("x.y + log1p(z) + C(g, contr.sum) + poly(k, 2) + `a b`"))
    ['a b', 'g', 'k', 'x.y', 'z']
    >>> sorted(required_columns("C + C(g, levels=[1, 2]) + scale(k, center=True)"))
    ['C', 'g', 'k']
    """
    tokens = _tokenize(rhs)
    names: set[str] = set()
    # one entry per open parenthesis: [function called or None, argument number, keyword]
    stack: list[list] = []
    for i, tok in enumerate(tokens[:-1]):
        nxt = tokens[i + 1]
        if tok.kind == "backquoted":
            names.add(tok.value[1:-1])
        elif tok.kind == "op" and tok.value == "(":
            prev = tokens[i - 1] if i else None
            called = prev.value if prev is not None and prev.kind == "name" else None
            stack.append([called, 0, None])
        elif tok.kind == "op" and tok.value == ")" and stack:
            stack.pop()
        elif tok.kind == "op" and tok.value == "," and stack:
            stack[-1][1] += 1
            stack[-1][2] = None
        elif tok.kind == "name":
            if nxt.kind == "op" and nxt.value == "(":
                continue  # a function (or a contrast called with arguments)
            call = next((frame for frame in reversed(stack) if frame[0] is not None), None)
            if call is not None and nxt.kind == "op" and nxt.value == "=":
                stack[-1][2] = tok.value  # a keyword argument
                continue
            if call is not None and tok.value in ("True", "False"):
                continue
            if (
                stack
                and stack[-1][0] == "C"
                and (stack[-1][1] >= 1 or stack[-1][2] == "contrasts")
                and tok.value in CONTRASTS
            ):
                continue  # the contrast of C(g, contr.sum)
            names.add(tok.value)
    return frozenset(names)


@dataclass(frozen=True)
class CallTerm:
    """One call of an allowed function in a formula, as written.

    Attributes
    ----------
    function : str
        ``"C"``, ``"bs"``...
    text : str
        The call as written, e.g. ``"C(gender, Treatment('b'))"``.
    columns : frozenset of str
        The data columns inside the call (:func:`required_columns`).
    arguments : tuple of str
        The positional arguments as written (backquoted names as written).
    keywords : tuple of (str, str)
        The keyword arguments as written.
    """

    function: str
    text: str
    columns: frozenset
    arguments: tuple = ()
    keywords: tuple = ()

    def literal(self, name: str, position: int | None = None):
        """The literal value of the keyword argument ``name`` (or of the positional
        argument ``position``), or None when it is not given or not a literal."""
        kw = dict(self.keywords)
        if name in kw:
            text = kw[name]
        elif position is not None and position < len(self.arguments):
            text = self.arguments[position]
        else:
            return None
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return None


def calls_of(text: str, functions: tuple[str, ...]) -> list[CallTerm]:
    """Every call of one of ``functions`` in a formula (or a part of one) already checked
    against the grammar, outermost first, with its arguments as written.

    Examples
    --------
    >>> found = calls_of("y ~ bs(x, df=4) + C(g)", ("bs", "C"))
    >>> [(c.function, c.text, sorted(c.columns)) for c in found]
    [('bs', 'bs(x, df=4)', ['x']), ('C', 'C(g)', ['g'])]
    >>> calls_of("~ C(g, Treatment('b'))", ("C", "Treatment"))[1].literal("reference", 0)
    'b'
    """
    tokens = _tokenize(text)
    out = []
    for i, tok in enumerate(tokens[:-1]):
        nxt = tokens[i + 1]
        if tok.kind != "name" or tok.value not in functions or nxt.value != "(" or nxt.kind != "op":
            continue
        depth, k, start = 0, i + 1, i + 2
        arguments: list[str] = []
        keywords: list[tuple[str, str]] = []
        while k < len(tokens) - 1:
            t = tokens[k]
            if t.kind == "op" and t.value in ("(", "["):
                depth += 1
            elif t.kind == "op" and t.value in (")", "]"):
                depth -= 1
            if depth == 0 or (depth == 1 and t.kind == "op" and t.value == ","):
                part = text[tokens[start].pos : t.pos].strip()
                if part:
                    key, eq, value = part.partition("=")
                    if eq and re.fullmatch(r"[A-Za-z_]\w*", key.strip()) and value[:1] != "=":
                        keywords.append((key.strip(), value.strip()))
                    else:
                        arguments.append(part)
                start = k + 1
            if depth == 0:
                break
            k += 1
        call = text[tok.pos : tokens[k].pos + 1]
        out.append(
            CallTerm(tok.value, call, required_columns(call), tuple(arguments), tuple(keywords))
        )
    return out
