"""The functions a formula may call, with the arguments each takes.

:data:`SIGNATURES` (keyword arguments and what their values may be),
:data:`ALLOWED_FUNCTIONS` and the contrasts of ``C()`` (:data:`CONTRASTS`): the tables
the formula grammar (:mod:`mlimpute.spec.grammar`) checks calls against and the
evaluation namespace (:mod:`mlimpute.spec.grammar_context`) is built from.
"""

from __future__ import annotations

__all__ = ["ALLOWED_FUNCTIONS", "CONTRASTS", "POSITIONAL_NAMES", "SIGNATURES"]


_NUMERIC = ("log", "log2", "log10", "log1p", "exp", "sqrt", "abs")

#: Keyword arguments of each allowed function and what their values may be.
#: Argument kinds: ``expr`` an arithmetic expression of columns, ``column``/``name`` one
#: column name, ``factor`` a grouping factor (a column name or ``a:b``, the second,
#: optional argument of ``cmean(x, school)``), ``int``/``number``/``bool`` a literal,
#: ``numbers`` a list of numbers,
#: ``literals`` a list of strings or numbers, ``contrast`` a contrast (see
#: :data:`CONTRASTS`).
SIGNATURES: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "I": (("expr",), {}),
    "C": (("column", "contrast"), {"contrasts": "contrast", "levels": "literals"}),
    **{f: (("expr",), {}) for f in _NUMERIC},
    **{f"np.{f}": (("expr",), {}) for f in _NUMERIC},
    "center": (("expr",), {}),
    "scale": (("expr",), {"center": "bool", "scale": "bool", "ddof": "number"}),
    "poly": (("expr", "int"), {"degree": "int", "raw": "bool"}),
    "bs": (
        ("expr",),
        {
            "df": "int",
            "degree": "int",
            "knots": "numbers",
            "include_intercept": "bool",
            "lower_bound": "number",
            "upper_bound": "number",
        },
    ),
    "cmean": (("name", "factor"), {}),
    "lmean": (("name",), {}),
    "ranef": (("name",), {}),
}

#: The keyword arguments that positional arguments also fill (``poly(x, 2)`` is
#: ``poly(x, degree=2)``): naming one of them again by keyword is refused.
POSITIONAL_NAMES: dict[str, tuple[str | None, ...]] = {
    "C": (None, "contrasts"),
    "poly": (None, "degree"),
}

#: Functions a formula may call (the ``np.`` spellings of the numeric ones included).
ALLOWED_FUNCTIONS: tuple[str, ...] = tuple(SIGNATURES)

#: Contrasts ``C()`` accepts as its second argument (or ``contrasts=``): bare
#: (``C(school, Sum)``, ``C(school, Treatment)``: the defaults) or called with literal
#: arguments, by position in the order listed or by keyword, each optional, as formulaic
#: takes them: ``C(school, contr.treatment("b"))``, ``C(school, Treatment(reference=1))``,
#: ``C(school, Helmert(reverse=False))``.
CONTRASTS: dict[str, dict[str, str]] = {
    "contr.treatment": {"base": "literal"},
    "contr.SAS": {"base": "literal"},
    "contr.sum": {},
    "contr.helmert": {"reverse": "bool", "scale": "bool"},
    "contr.poly": {"scores": "numbers"},
    "contr.diff": {"backward": "bool"},
    "Treatment": {"reference": "literal"},
    "Sum": {},
    "Helmert": {"reverse": "bool", "scale": "bool"},
    "Poly": {"scores": "numbers"},
    "Diff": {"backward": "bool"},
}


def _np_names() -> list[str]:
    return [f for f in ALLOWED_FUNCTIONS if f.startswith("np.")]


def _allowed_hint() -> str:
    return "; allowed functions: " + ", ".join(ALLOWED_FUNCTIONS)
