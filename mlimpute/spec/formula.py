"""lme4-style formulas: parse once, without data.

A formula such as ``"grade ~ gender + relation*skill + cmean(relation) + (1 + gender | class)"``
is split into

* the **fixed part** (``gender + relation*skill + `cmean(relation)```), handed to formulaic
  for materialisation; ``cmean(x)`` becomes a backquoted column name that the design layer
  fills with the cluster mean of ``x``;
* the **random part**: one or more blocks of random-effect terms, each correlated (``|``)
  or uncorrelated (``||``), each with its grouping factor: a column ``g``, the combination
  ``a:b`` of two columns, or nested ``a/b`` (short for ``(… | a) + (… | a:b)``);
* the ``cmean`` variables.

Parsing never sees data; :mod:`mlimpute.sampler.design` materialises the parsed formula.
A formula is data, never code: :mod:`mlimpute.spec.grammar` checks every formula
against mlimpute's grammar before formulaic sees it. The parsed formula is
:class:`~mlimpute.spec.formula_parsed.ParsedFormula`; the names of the design columns of
``cmean()``, ``lmean()`` and ``ranef()`` are in :mod:`mlimpute.spec.formula_columns`.
"""

from __future__ import annotations

import re

from mlimpute.errors import FormulaError
from mlimpute.spec.formula_columns import (
    _factor_name,
    _split_outside_ticks,
    cmean_column,
    factor_columns,
    lmean_column,
    ranef_column,
    split_cmean_column,
)
from mlimpute.spec.formula_parsed import (
    ParsedFormula,
    RandomBlock,
    _factor_text,
    _plain,
    _quote,  # noqa: F401  (re-exported: other modules reach it here)
    _required,  # noqa: F401  (re-exported: other modules reach it here)
    _syntax_message,
    _uncmean,
)
from mlimpute.spec.grammar import ALLOWED_FUNCTIONS, validate_formula
from mlimpute.spec.longsum import balanced_sum

__all__ = [
    "RandomBlock",
    "ParsedFormula",
    "parse_formula",
    "formula_text",
    "cmean_column",
    "split_cmean_column",
    "lmean_column",
    "ranef_column",
    "factor_columns",
    "ALLOWED_FUNCTIONS",
]

_COL = r"(?:`[^`]+`|[A-Za-z_.][\w.]*)"
_CMEAN = re.compile(rf"\bcmean\(\s*({_COL})\s*(?:,\s*({_COL}(?:\s*:\s*{_COL})*)\s*)?\)")
_LMEAN = re.compile(r"(?<!`)\blmean\(\s*(`[^`]+`|[A-Za-z_.][\w.]*)\s*\)")
_RANEF = re.compile(r"\branef\(\s*(`[^`]+`|[A-Za-z_.][\w.]*)\s*\)")
_NAME = re.compile(r"^(`[^`]+`|[A-Za-z_.][\w.]*)$")


def _split_top(text: str, offset: int, full: str) -> list[tuple[str, str, int]]:
    """Split ``text`` at top-level ``+``/``-`` into (sign, chunk, position) triples."""
    depth, start, sign, out = 0, 0, "+", []
    in_tick = False
    for i, ch in enumerate(text):
        if ch == "`":
            in_tick = not in_tick
        if in_tick:
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise FormulaError(_syntax_message(full, "unmatched ')'", offset + i))
        elif depth == 0 and ch in "+-":
            # a leading sign or an operator; keep numeric exponents like 1e-5 intact
            if i > 0 and text[i - 1] in "eE" and text[i - 2 : i - 1].isdigit():
                continue
            out.append((sign, text[start:i], offset + start))
            sign, start = ch, i + 1
    if in_tick:
        raise FormulaError(_syntax_message(full, "unmatched '`'", offset + text.rfind("`")))
    if depth > 0:
        raise FormulaError(_syntax_message(full, "unmatched '('", offset + text.rfind("(")))
    out.append((sign, text[start:], offset + start))
    return out


def _outside_ticks(text: str, char: str) -> list[int]:
    """The positions of ``char`` in ``text`` outside backquoted names."""
    out, in_tick = [], False
    for i, ch in enumerate(text):
        if ch == "`":
            in_tick = not in_tick
        elif ch == char and not in_tick:
            out.append(i)
    return out


def _bar(chunk: str) -> tuple[int, int] | None:
    """Position and width of a top-level ``|``/``||`` inside a parenthesised chunk."""
    depth, in_tick = 0, False
    for i, ch in enumerate(chunk):
        if ch == "`":
            in_tick = not in_tick
        if in_tick:
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 1:
            return (i, 2) if chunk[i + 1 : i + 2] == "|" else (i, 1)
    return None


def parse_formula(text: str, response: str | None = None) -> ParsedFormula:
    """Parse an lme4-style formula into fixed part, random part and ``cmean`` terms.

    Parameters
    ----------
    text : str
        ``"~ x + (1 + x | g)"`` or ``"y ~ x + (1 | g)"``. Random parts: ``(1|g)``,
        ``(1 + x|g)``, ``(0 + x|g)`` and ``(1 + x||g)`` (uncorrelated). ``cmean(x)`` is the
        cluster mean of ``x``, recomputed from the current completed data at every visit;
        ``ranef(x)`` (in a level-2 variable's formula) the current random effects of x's model.

        Formulas are data, never code: before anything else the formula is checked
        against mlimpute's grammar. Allowed are column names (``x``, dotted ``x.y``,
        backquoted ```any name```), numbers, ``+ - * / : ** ^``, parentheses, random
        parts, and calls of ``I``, ``C``, ``log``, ``log2``, ``log10``, ``log1p``,
        ``exp``, ``sqrt``, ``abs`` (also spelled ``np.log``, ``np.exp``...),
        ``center``, ``scale``, ``poly``, ``bs``, ``cmean`` and ``ranef``, with their
        documented arguments (``C(x, contr.sum)``, ``C(x, levels=["b", "a"])``,
        ``poly(x, 2)``, ``bs(x, df=4)``...). Inside a call, write a dotted column name
        in backquotes: ``log(`x.y`)``.
    response : str, optional
        The response, when the formula is the value of a ``{response: formula}`` dict.

    Returns
    -------
    ParsedFormula

    Raises
    ------
    FormulaError
        On a syntax error or anything outside the grammar (another function, attribute
        access, subscripts, strings outside ``C()``...); the message shows the formula
        with a caret under the offending token.

    Notes
    -----
    The steps, in order (the first failing one raises): the text is a non-empty string;
    it is inside the grammar (:func:`mlimpute.spec.grammar.validate_formula`); it has one
    ``~`` with a column name or nothing on the left; the right-hand side splits at
    top-level ``+``/``-`` into fixed terms and random terms ``(terms | group)``, nested
    grouping factors ``a/b`` expanded to ``a`` and ``a:b``; ``cmean(x)`` and ``ranef(x)``
    become design columns; formulaic parses every part; ``cmean``/``ranef`` appear in the fixed part
    only; the response is set and is not among its own predictors.

    Examples
    --------
    >>> f = parse_formula("~ gender + cmean(relation) + (1 + gender | class)", "grade")
    >>> f.response, f.group, f.random[0].terms, f.cmeans
    ('grade', 'class', '1 + gender', ('relation',))
    >>> f = parse_formula("y ~ x + (1 | school/class)")
    >>> f.group, f.groups, f.random
    (None, ('school', 'school:class'), ())
    >>> parse_formula("~ x + I(x.__class__)")
    Traceback (most recent call last):
    ...
    mlimpute.errors.FormulaError: 'x.__class__': names beginning with '__' are not allowed ...
    """
    _check_text(text)
    validate_formula(text)  # before anything else: nothing outside the grammar goes on
    lhs, rhs, offset = _split_sides(text)
    fixed, blocks, groups = _split_terms(text, rhs, offset)
    terms = tuple(zip(blocks, groups, strict=True))
    group = _one_grouping_factor(groups)
    fixed_text, cmeans, ranefs, factor_means = _cluster_terms(fixed)
    _check_formulaic_syntax(text, [fixed_text] + [b.terms for b in blocks])
    _check_random_parts(text, blocks)
    one = tuple(blocks) if group is not None else ()
    parsed = ParsedFormula(text, lhs, fixed_text, group, one, cmeans, ranefs, terms, factor_means)
    return _with_response(parsed, response)


# --------------------------------------------------------------------------------------
# the steps of parse_formula, in order


def _check_text(text: object) -> None:
    """A formula is a non-empty string."""
    if not isinstance(text, str) or not text.strip():
        raise FormulaError(f"a formula must be a non-empty string, got {text!r}")


def _split_sides(text: str) -> tuple[str | None, str, int]:
    """Left-hand side (a column name or None), right-hand side, and the position of the
    right-hand side in ``text``: exactly one ``~``."""
    tildes = _outside_ticks(text, "~")
    if len(tildes) != 1:
        raise FormulaError(
            _syntax_message(text, "expected exactly one '~'" if tildes else "missing '~'")
        )
    lhs, rhs = text[: tildes[0]], text[tildes[0] + 1 :]
    lhs = lhs.strip()
    if lhs and not _NAME.match(lhs):
        raise FormulaError(_syntax_message(text, f"left-hand side {lhs!r} is not a column name", 0))
    return lhs.strip("`") or None, rhs, len(text) - len(rhs)


def _split_terms(
    text: str, rhs: str, offset: int
) -> tuple[list[str], list[RandomBlock], list[str]]:
    """The right-hand side split at top-level ``+``/``-``: fixed terms (with their signs),
    random blocks ``(terms | group)`` and the grouping factor of each block (a nested
    ``(terms | a/b)`` gives two blocks, over ``a`` and ``a:b``)."""
    fixed: list[str] = []
    blocks: list[RandomBlock] = []
    groups: list[str] = []
    for k, (sign, chunk, pos) in enumerate(_split_top(rhs, offset, text)):
        stripped = chunk.strip()
        if not stripped:
            if k > 0 or not rhs.strip():  # only a leading sign may leave an empty chunk
                raise FormulaError(_syntax_message(text, "empty term", pos + len(chunk)))
            continue
        bar = _bar(stripped) if stripped.startswith("(") and stripped.endswith(")") else None
        bars = _outside_ticks(chunk, "|")
        if bars and bar is None:
            where = pos + bars[0]
            raise FormulaError(
                _syntax_message(text, "a random term must be written '(terms | group)'", where)
            )
        if bar is None:
            fixed.append(f"{sign} {stripped}" if fixed or sign == "-" else stripped)
            continue
        block, factors = _random_block(text, sign, chunk, stripped, pos, bar)
        blocks.extend([block] * len(factors))
        groups.extend(factors)
    return fixed, blocks, groups


def _random_block(
    text: str, sign: str, chunk: str, stripped: str, pos: int, bar: tuple[int, int]
) -> tuple[RandomBlock, list[str]]:
    """One random term ``(terms | group)`` (``||``: uncorrelated) and its grouping factors:
    one, or for nested ``a/b/c`` the factors ``a``, ``a:b``, ``a:b:c``."""
    if sign == "-":
        raise FormulaError(_syntax_message(text, "a random term cannot be subtracted", pos))
    i, width = bar
    terms, group = stripped[1:i].strip(), stripped[i + width : -1].strip()
    if not terms:
        raise FormulaError(_syntax_message(text, "no terms before '|'", pos))
    nested = _split_outside_ticks(group, "/")
    parts = [[c.strip() for c in _split_outside_ticks(n, ":")] for n in nested]
    bare = re.sub(r"`[^`]*`", "", group)
    n_columns = bare.count("/") + bare.count(":") + 1  # an empty part is never a name
    columns = [c for cols in parts for c in cols]
    if not group or len(columns) != n_columns or not all(_NAME.match(c) for c in columns):
        raise FormulaError(
            _syntax_message(
                text,
                f"grouping factor {group!r} must be a column name, a:b or a/b",
                pos + chunk.index(group) if group else pos,
            )
        )
    factors, above = [], ()
    for cols in parts:
        above = (*above, *(c.strip("`") for c in cols))
        factors.append(_factor_name(above))
    return RandomBlock(terms, correlated=(width == 1)), factors


def _one_grouping_factor(groups: list[str]) -> str | None:
    """``group``: the grouping factor of every random block when there is exactly one and
    it is one column; otherwise None (the blocks are in ``random_terms`` only)."""
    if len(set(groups)) != 1:
        return None
    cols = factor_columns(groups[0])
    return cols[0] if len(cols) == 1 else None


def _mean_factor(m: re.Match) -> str | None:
    """The grouping factor of a ``cmean(x, factor)`` match (None for ``cmean(x)``)."""
    if m.group(2) is None:
        return None
    return _factor_name(tuple(c.strip().strip("`") for c in _split_outside_ticks(m.group(2), ":")))


def _cluster_terms(
    fixed: list[str],
) -> tuple[str, tuple[str, ...], tuple[str, ...], tuple[tuple[str, str], ...]]:
    """The fixed part with ``cmean(x)``, ``cmean(x, factor)`` and ``ranef(x)`` written as
    design columns (:func:`cmean_column`, :func:`ranef_column`), and the variables of each
    (with their factors), in order."""
    fixed_text = " ".join(fixed) if fixed else "1"
    found = [(m.group(1).strip("`"), _mean_factor(m)) for m in _CMEAN.finditer(fixed_text)]
    cmeans = tuple(dict.fromkeys(v for v, g in found if g is None))
    factor_means = tuple(dict.fromkeys((v, g) for v, g in found if g is not None))
    fixed_text = _CMEAN.sub(
        lambda m: f"`{cmean_column(m.group(1).strip('`'), _mean_factor(m))}`", fixed_text
    )
    # lmean(x): a column of the completed data (the drawn latent cluster means)
    fixed_text = _LMEAN.sub(lambda m: f"`{lmean_column(m.group(1).strip('`'))}`", fixed_text)
    ranefs = tuple(dict.fromkeys(m.group(1).strip("`") for m in _RANEF.finditer(fixed_text)))
    fixed_text = _RANEF.sub(lambda m: f"`{ranef_column(m.group(1).strip('`'))}`", fixed_text)
    return fixed_text, cmeans, ranefs, factor_means


def _check_formulaic_syntax(text: str, parts: list[str]) -> None:
    """Every right-hand side (fixed part, each random block) is one formulaic parses."""
    from formulaic import Formula  # imported when first needed: a quick `import mlimpute`
    from formulaic.errors import FormulaicError

    for rhs_part in parts:
        try:
            Formula(balanced_sum(rhs_part))
        except FormulaicError as exc:
            raise FormulaError(_syntax_message(text, str(exc))) from None


def _check_random_parts(text: str, blocks: list[RandomBlock]) -> None:
    """``cmean()``, ``lmean()`` and ``ranef()`` belong to the fixed part only."""
    for block in blocks:
        for fn in ("cmean(", "lmean(", "ranef("):
            if fn in block.terms:
                raise FormulaError(
                    _syntax_message(
                        text, f"{fn[:-1]}() is not allowed in a random part", text.find(fn)
                    )
                )


def _with_response(parsed: ParsedFormula, response: str | None) -> ParsedFormula:
    """The formula with its response set (a dict key must agree with a written left-hand
    side) and not used as its own predictor."""
    if response is not None:
        parsed = parsed.with_response(response)
    if parsed.response is not None and parsed.response in parsed.predictors:
        raise FormulaError(
            f"formula {parsed.text!r} uses its response {parsed.response!r} as a predictor"
        )
    return parsed


# --------------------------------------------------------------------------------------
# formulas as text


def _term(name: str) -> str:
    """A column name as written in ``cmean()`` and grouping factors: dotted names plain."""
    return name if _plain(name, dotted=True) else f"`{name}`"


def formula_text(formula: ParsedFormula) -> str:
    """``"~ ..."``: a parsed formula as used, written so that it parses back to the same.

    Unlike ``str(formula)``, column names that are not identifiers are backquoted in
    ``cmean()`` and in the grouping factors. Nested factors are written expanded:
    ``(1 | school/class)`` as ``(1 | school) + (1 | school:class)``.

    Examples
    --------
    >>> from mlimpute.spec.formula import parse_formula
    >>> from mlimpute.spec.formula import formula_text
    >>> formula_text(parse_formula("~ x + cmean(`a b`) + (1 | `my class`)", "y"))
    '~ x + cmean(`a b`) + (1 | `my class`)'
    >>> formula_text(parse_formula("~ x + (1 + x | school/class)", "y"))
    '~ x + (1 + x | school) + (1 + x | school:class)'
    """
    fixed = re.sub(
        r"`(cmean|lmean)\(([^`]*)\)`",
        lambda mt: _uncmean(mt.group(0), _term),
        formula.fixed,
    ).strip()
    parts = [fixed] if fixed not in {"", "1"} else ["1"]
    for block, g in formula.random_terms:
        bar = "|" if block.correlated else "||"
        parts.append(f"({block.terms} {bar} {_factor_text(g, _term)})")
    return "~ " + " + ".join(parts)
