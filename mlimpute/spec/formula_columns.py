"""The names of the design columns that formula terms stand for, and of grouping factors.

``cmean(x)`` and ``cmean(x, school)`` are filled with cluster means (:func:`cmean_column`,
:func:`split_cmean_column`), ``lmean(x)`` with the drawn latent cluster means
(:func:`lmean_column`), ``ranef(x)`` with another model's random effects
(:func:`ranef_column`); a grouping factor ``a:b`` names the columns ``a`` and ``b``
(:func:`factor_columns`).
"""

from __future__ import annotations

import re

__all__ = [
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
