"""A parsed formula: :class:`ParsedFormula` and its random-effect blocks.

:func:`~mlimpute.spec.formula.parse_formula` builds it; it tells the columns a formula
uses (``_required`` reads them with formulaic, keeping dotted names whole) and writes
itself back as formula text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from mlimpute.errors import FormulaError, UnsupportedError
from mlimpute.spec.formula_columns import (
    _factor_name,
    cmean_column,
    factor_columns,
    ranef_column,
    required_columns,
    split_cmean_column,
)

__all__ = ["RandomBlock", "ParsedFormula"]


_ANSI = re.compile(r"\x1b\[[0-9;]*m|[⧛⧚]")


_LMEAN_COLUMN = re.compile(r"`lmean\(([^`]*)\)`")


@dataclass(frozen=True)
class RandomBlock:
    """Random-effect terms sharing one covariance block.

    Attributes
    ----------
    terms : str
        Right-hand side for formulaic, e.g. ``"1 + gender"`` or ``"0 + x"``.
    correlated : bool
        ``False`` for ``||`` (diagonal covariance within the block).
    """

    terms: str
    correlated: bool = True


@dataclass(frozen=True)
class ParsedFormula:
    """A formula parsed into fixed part, random part and cluster-mean terms.

    Attributes
    ----------
    text : str
        The formula as the user wrote it.
    response : str or None
        Left-hand side, if the formula had one.
    fixed : str
        Fixed-effects right-hand side in formulaic syntax.
    group : str or None
        The grouping factor of the random part when there is exactly one and it is one
        column (``None``: single-level formula, or several grouping factors, see
        ``random_terms``).
    random : tuple of RandomBlock
        Random-effect blocks, all grouped by ``group`` (empty when ``group`` is None).
    cmeans : tuple of str
        Variables whose cluster means appear in the fixed part.
    ranefs : tuple of str
        Variables whose random effects (``ranef(x)``) appear in the fixed part.
    factor_means : tuple of (str, str)
        ``(variable, factor)`` of every ``cmean(x, factor)`` in the fixed part: the mean
        of ``x`` over the rows of each cluster of the grouping factor ``factor`` (a
        column, or ``a:b``), e.g. the school means ``cmean(x, school)`` with three
        levels; ``cmean(x)`` (in ``cmeans``) is the mean over the innermost cluster.
    random_terms : tuple of (RandomBlock, str)
        Every random block with its grouping factor, in formula order, nested factors
        expanded (``(1 | school/class)`` is ``(1 | school) + (1 | school:class)``); a
        factor ``a:b`` is every combination of columns ``a`` and ``b``
        (:func:`factor_columns`). Filled for every multilevel formula, also with one
        grouping factor.
    """

    text: str
    response: str | None
    fixed: str
    group: str | None = None
    random: tuple[RandomBlock, ...] = ()
    cmeans: tuple[str, ...] = ()
    ranefs: tuple[str, ...] = ()
    random_terms: tuple[tuple[RandomBlock, str], ...] = ()
    factor_means: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        # a formula built by hand with only ``group``/``random`` (the one-factor fields)
        if self.random and not self.random_terms and self.group is not None:
            terms = tuple((b, _factor_name((self.group,))) for b in self.random)
            object.__setattr__(self, "random_terms", terms)

    @property
    def is_multilevel(self) -> bool:
        return bool(self.random_terms)

    @property
    def groups(self) -> tuple[str, ...]:
        """The distinct grouping factors of ``random_terms``, in formula order."""
        return tuple(dict.fromkeys(g for _, g in self.random_terms))

    @property
    def several_groups(self) -> bool:
        """Whether the random part is not one block set over one column (``group`` is None
        although the formula is multilevel)."""
        return self.is_multilevel and self.group is None

    def require_one_group(self, what: str) -> None:
        """Raise :class:`~mlimpute.errors.UnsupportedError` naming the grouping factors
        when the formula has several (or one made of several columns): ``what`` names the
        feature that handles one grouping factor only."""
        if self.several_groups:
            raise UnsupportedError(
                f"{what} supports one grouping factor; the formula {self.text!r} has the "
                f"grouping factors {list(self.groups)}"
            )

    @property
    def lmeans(self) -> tuple[str, ...]:
        """Variables whose latent cluster means ``lmean(x)`` appear in the fixed part (the
        column :func:`lmean_column` of each is among the predictors).

        Examples
        --------
        >>> from mlimpute.spec.formula import parse_formula
        >>> parse_formula("y ~ x + lmean(x) + (1 | g)").lmeans
        ('x',)
        """
        return tuple(dict.fromkeys(m.group(1) for m in _LMEAN_COLUMN.finditer(self.fixed)))

    @property
    def predictors(self) -> frozenset[str]:
        """Data columns used on the right-hand side (fixed, random and cmean terms)."""
        names = set(_required(self.fixed, self.text)) - {cmean_column(v) for v in self.cmeans}
        names -= {cmean_column(v, g) for v, g in self.factor_means}
        names -= {ranef_column(v) for v in self.ranefs}
        names |= set(self.cmeans) | set(self.ranefs) | {v for v, _ in self.factor_means}
        for block, _ in self.random_terms:
            names |= _required(block.terms, self.text)
        return frozenset(names)

    @property
    def variables(self) -> frozenset[str]:
        """Every data column the formula refers to: response, predictors and group."""
        extra = {n for n in (self.response, self.group) if n is not None}
        extra |= {c for g in self.groups for c in factor_columns(g)}
        extra |= {c for _, g in self.factor_means for c in factor_columns(g)}
        return self.predictors | extra

    @property
    def mean_factors(self) -> tuple[str, ...]:
        """The grouping factors of ``cmean(x, factor)`` terms, in formula order."""
        return tuple(dict.fromkeys(g for _, g in self.factor_means))

    def require_no_factor_means(self, what: str) -> None:
        """Raise :class:`~mlimpute.errors.UnsupportedError` naming the term when the
        formula has ``cmean(x, factor)``: ``what`` names the feature that handles
        innermost-cluster means ``cmean(x)`` only."""
        if self.factor_means:
            v, g = self.factor_means[0]
            raise UnsupportedError(
                f"{what} supports cmean(x) (the mean over the innermost cluster) only; the "
                f"formula {self.text!r} has cmean({v}, {g})"
            )

    def with_response(self, response: str) -> ParsedFormula:
        """Return a copy whose response is ``response`` (a dict key names it)."""
        if self.response is not None and self.response != response:
            raise FormulaError(
                f"formula for {response!r} has the response {self.response!r} on its left-hand "
                f"side: {self.text!r}"
            )
        return replace(self, response=response)

    def drop_random(self) -> ParsedFormula:
        """The single-level formula with the same fixed part."""
        return replace(self, group=None, random=(), random_terms=())

    def __str__(self) -> str:
        lhs = f"{_quote(self.response)} " if self.response else ""
        parts = [] if self.fixed.strip() in {"", "1"} else [_uncmean(self.fixed)]
        if self.fixed.strip() == "1" or not parts:
            parts.insert(0, "1")
        for block, g in self.random_terms:
            bar = "|" if block.correlated else "||"
            parts.append(f"({block.terms} {bar} {_factor_text(g, _quote)})")
        return f"{lhs}~ " + " + ".join(parts)


#: Plain names the grammar does not read as a column: the namespaces of the allowed
#: functions (``np.log``, ``contr.sum``).
_NOT_PLAIN = frozenset({"np", "numpy", "contr"})


def _plain(name: str, dotted: bool = False) -> bool:
    """Whether ``name`` written without backquotes reads back as the column ``name`` where
    mlimpute writes column names: terms, the response, the argument of ``cmean()``,
    ``lmean()`` or ``ranef()`` and grouping factors. That is an ASCII identifier other
    than ``np``, ``numpy`` and ``contr`` and not beginning with ``__`` (a Python keyword
    such as ``class`` is read as a column there; only inside other calls it needs
    backquotes, and mlimpute writes no column there). With ``dotted``, also such
    identifiers joined by dots (``x.y``)."""
    parts = name.split(".") if dotted else [name]
    return all(
        re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", p) is not None
        and not p.startswith("__")
        and p not in _NOT_PLAIN
        for p in parts
    )


def _quote(name: str) -> str:
    """A column name as a formula token: backquoted unless it reads back as the same
    column without (:func:`_plain`)."""
    return name if _plain(name) else f"`{name}`"


def _factor_text(factor: str, quote) -> str:
    """A grouping factor as formula text: its columns quoted, joined by ``:``."""
    return ":".join(quote(c) for c in factor_columns(factor))


def _uncmean(text: str, quote=_quote) -> str:
    """Design columns ``cmean(...)``/``ranef(...)`` of a fixed part written back as calls."""

    def call(m: re.Match) -> str:
        split = split_cmean_column(f"cmean({m.group(2)})") if m.group(1) == "cmean" else None
        if split is not None and split[1] is not None:
            return f"cmean({quote(split[0])}, {_factor_text(split[1], quote)})"
        return f"{m.group(1)}({quote(m.group(2))})"

    return re.sub(r"`(cmean|lmean|ranef)\(([^`]*)\)`", call, text)


def _required(rhs: str, text: str) -> frozenset[str]:
    """Columns ``rhs`` needs (``text``: the whole formula). Read from the formula's tokens
    by :func:`~mlimpute.spec.formula_columns.required_columns` (functions, contrasts and
    keywords are not columns; dotted names such as ``x.y`` are kept whole)."""
    return required_columns(rhs)


def _syntax_message(text: str, detail: str, pos: int | None = None) -> str:
    detail = _ANSI.sub("", detail).strip().splitlines()[0] if detail else "syntax error"
    msg = f"{detail} in formula {text!r}"
    if pos is not None:
        msg += f"\n    {text}\n    {' ' * pos}^"
    return msg
