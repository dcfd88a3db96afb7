"""Model-based imputation whose analysis model has several random-effect terms.

``impute(df, model="y ~ x + (1 + x | class) + (1 | school)")``: nested levels (pupils in
classes in schools, ``(1 | school/class)`` or ``(1 | school) + (1 | class)`` with class ids
unique) and crossed factors (``(1 | school) + (1 | neighbourhood)``). The innermost factor
(the one with the most clusters) is the *primary* one: rows are sorted by it, as for the
chained three-level models (:mod:`mlimpute.spec.factors` resolves the factors and finds the
nesting in the data). The factorisation is that of one grouping factor
(:mod:`mlimpute.spec.model`), with these models:

* an incomplete level-1 predictor (varying within the primary clusters):
  ``x ~ later + complete + (1 | f_1) + … + (1 | f_K)``, a random intercept for **every**
  grouping factor of the analysis model (as the chained three-level defaults);
* an incomplete predictor constant within the primary clusters of a nested design (a
  class-level variable): on one row per class,
  ``w ~ later + complete class-level columns + cmean(complete level-1 columns) +
  (1 | school)`` (a class-level variable varies over schools);
* an incomplete predictor constant within the enclosing level (a school-level variable):
  on one row per school, ``s ~ later + complete school-level columns +
  cmean(c, school)`` for each complete numeric or boolean level-1 and class-level c;
* refused so far (:class:`~mlimpute.errors.UnsupportedError` naming the column and the
  feature): an incomplete predictor constant within the primary clusters of a crossed
  design, ``lmean()`` with several terms, and ``cluster=`` defaults for columns outside
  the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlimpute.errors import SpecificationError, UnsupportedError
from mlimpute.spec.defaults import factor_codes, is_level2
from mlimpute.spec.formula import ParsedFormula, factor_columns

__all__ = ["ModelTerms", "model_terms", "random_intercepts"]


@dataclass(frozen=True)
class ModelTerms:
    """The grouping factors of an analysis model with several random-effect terms.

    Attributes
    ----------
    cluster : str
        The primary (innermost) factor: rows are sorted by it.
    factors : tuple of str
        The other factors (``ImputationSpec.factors``).
    hierarchy : tuple of str
        ``(outer, cluster)`` when the design is two nested levels above the rows (every
        primary cluster in one cluster of ``outer``), else empty.
    structure : tuple of str
        The nesting found in the data, for ``repr(imp.spec)``.
    codes : ndarray
        Primary cluster code of every row.
    groups : tuple of str
        Every grouping factor in the order of the analysis model.
    """

    cluster: str
    factors: tuple[str, ...]
    hierarchy: tuple[str, ...]
    structure: tuple[str, ...]
    codes: np.ndarray
    groups: tuple[str, ...]

    @property
    def outer(self) -> str | None:
        """The enclosing level of a nested design (None for a crossed one)."""
        return self.hierarchy[0] if self.hierarchy else None


def model_terms(
    df: pd.DataFrame, parsed: ParsedFormula, cluster: str | Sequence[str] | None
) -> ModelTerms:
    """Resolve the grouping factors of an analysis model with several terms.

    Raises
    ------
    SpecificationError
        A factor column is missing from the data or incomplete, or ``cluster=`` names a
        column that is not a grouping factor of the model.
    UnsupportedError
        More than one enclosing level (a fourth level), or a factor nested within the
        primary one.

    Examples
    --------
    >>> from mlimpute.spec.formula import parse_formula
    >>> df = pd.DataFrame({"s": [1, 1, 1, 1, 2, 2, 2, 2], "c": [1, 1, 2, 2, 3, 3, 4, 4]})
    >>> t = model_terms(df, parse_formula("y ~ 1 + (1 | s) + (1 | c)"), None)
    >>> t.cluster, t.factors, t.hierarchy
    ('c', ('s',), ('s', 'c'))
    """
    from mlimpute.spec.factors import _resolve_cluster

    text = parsed.text
    groups = parsed.groups
    known = {c for g in groups for c in factor_columns(g)}
    if cluster is not None:
        given = [cluster] if isinstance(cluster, str) else list(cluster)
        odd = [c for c in given if c not in known]
        if odd:
            raise SpecificationError(
                f"cluster={cluster!r} names {odd}, not a grouping factor of the analysis "
                f"model {text!r} (its grouping factors: {list(groups)}): with model= the "
                "clusters are the model's grouping factors"
            )
    for c in sorted(known):
        if c not in df.columns:
            raise SpecificationError(
                f"the analysis model {text!r} refers to unknown column(s) [{c!r}]"
            )
        if df[c].isna().any():
            raise SpecificationError(
                f"cluster column {c!r} has {int(df[c].isna().sum())} missing value(s); drop "
                "or fill those rows first"
            )
    cols = _resolve_cluster(df[sorted(known)], {"(analysis model)": parsed}, None)
    primary = cols.cluster
    codes, _ = factor_codes(df, primary)
    enclosing, crossed = [], []
    for g in cols.factors:
        gc, _ = factor_codes(df, g)
        pairs = pd.DataFrame({"p": codes, "g": gc}).drop_duplicates()
        if len(pairs) == int(codes.max()) + 1:
            enclosing.append(g)
        elif len(pairs) == int(gc.max()) + 1:
            raise UnsupportedError(
                f"the grouping factor {g!r} of the analysis model {text!r} is nested within "
                f"{primary!r} although it has fewer clusters: model-based imputation "
                "supports nested levels and crossed factors"
            )
        else:
            crossed.append(g)
    if len(enclosing) > 1:
        raise UnsupportedError(
            f"the analysis model {text!r} has {len(enclosing) + 1} nested levels above the "
            f"rows ({[*enclosing, primary]}): model-based imputation supports three levels "
            "(one enclosing level) and crossed pairs so far"
        )
    hierarchy = (enclosing[0], primary) if enclosing and not crossed else ()
    return ModelTerms(primary, tuple(cols.factors), hierarchy, cols.structure, codes, groups)


def random_intercepts(groups: Sequence[str]) -> str:
    """``(1 | f_1) + … + (1 | f_K)`` for the grouping factors ``groups``.

    Examples
    --------
    >>> random_intercepts(["school", "school:class"])
    '(1 | school) + (1 | school:class)'
    """
    return " + ".join(f"(1 | {g})" for g in groups)


def check_level2_terms(terms: ModelTerms, df: pd.DataFrame, name: str, text: str) -> bool:
    """What an incomplete predictor constant within the primary clusters supports with
    several terms: a nested design, where it is drawn on one row per class (its model
    with a random intercept for the enclosing level) or, constant within the enclosing
    level too, on one row per school.

    Returns
    -------
    bool
        Whether it is constant within the enclosing level (a school-level variable).

    Raises
    ------
    UnsupportedError
        In a crossed design, naming the column and the feature.

    Examples
    --------
    >>> from mlimpute.spec.formula import parse_formula
    >>> df = pd.DataFrame({"s": [1, 1, 1, 1, 2, 2, 2, 2], "c": [1, 1, 2, 2, 3, 3, 4, 4],
    ...                    "v": [0.0, 0.0, 1.0, 1.0, 2.0, 2.0, None, None],
    ...                    "t": [5.0, 5.0, 5.0, 5.0, None, None, None, None]})
    >>> terms = model_terms(df, parse_formula("y ~ v + t + (1 | s) + (1 | c)"), None)
    >>> check_level2_terms(terms, df, "v", "..."), check_level2_terms(terms, df, "t", "...")
    (False, True)
    """
    if terms.outer is None:
        raise UnsupportedError(
            f"the incomplete predictor {name!r} is constant within {terms.cluster!r} in the "
            f"crossed design of the analysis model {text!r} (grouping factors "
            f"{list(terms.groups)}): model-based imputation with crossed factors supports "
            "incomplete level-1 predictors (varying within every cluster) so far"
        )
    oc, _ = factor_codes(df, terms.outer)
    return is_level2(oc, df[name])


def level3_columns(terms: ModelTerms, df: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """The columns among ``columns`` constant within the enclosing level (the complete
    predictors of a school-level variable's model).

    Examples
    --------
    >>> from mlimpute.spec.formula import parse_formula
    >>> df = pd.DataFrame({"s": [1, 1, 1, 1, 2, 2, 2, 2], "c": [1, 1, 2, 2, 3, 3, 4, 4],
    ...                    "v": [0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0],
    ...                    "t": [5.0, 5.0, 5.0, 5.0, 6.0, 6.0, 6.0, 6.0]})
    >>> terms = model_terms(df, parse_formula("y ~ v + t + (1 | s) + (1 | c)"), None)
    >>> level3_columns(terms, df, ["v", "t"])
    ['t']
    """
    oc, _ = factor_codes(df, terms.outer)
    return [c for c in columns if is_level2(oc, df[c]) or df[c].nunique() == 1]


def complete_factor_means(
    parsed: ParsedFormula, terms: ModelTerms | None, missing: pd.Series, what: str
) -> tuple[list[str], list[tuple[str, str]]]:
    """The ``cmean(x, factor)`` terms of the analysis model, for several grouping factors
    and a complete ``x``: fixed derived columns (computed once, ``sampler/plan.py``), a
    complete predictor of every incomplete predictor's model as ``cmean(z)`` of a complete
    ``z`` is.

    Returns
    -------
    tuple
        The columns whose mean is over the primary factor (``cmean(x, cls)`` is
        ``cmean(x)``) and the ``(x, factor)`` pairs over another grouping factor.

    Raises
    ------
    UnsupportedError
        With one grouping factor, or for an incomplete ``x`` (its row-by-row draws cannot
        update a mean over another factor), naming the term (``what``: the feature).
    SpecificationError
        For a factor that is none of the analysis model's grouping factors.

    Examples
    --------
    >>> from mlimpute.spec.formula import parse_formula
    >>> df = pd.DataFrame({"s": [1, 1, 1, 1, 2, 2, 2, 2], "c": [1, 1, 2, 2, 3, 3, 4, 4],
    ...                    "x": [0.0, 1.0, 1.0, 2.0, 2.0, 2.0, 3.0, 5.0]})
    >>> f = parse_formula("y ~ x + cmean(x, s) + (1 | s) + (1 | c)")
    >>> complete_factor_means(f, model_terms(df, f, None), df.isna().sum(), "...")
    ([], [('x', 's')])
    """
    if not parsed.factor_means:
        return [], []
    if terms is None:  # one grouping factor: cmean(x) is its mean
        parsed.require_no_factor_means(what)
    names = (terms.cluster, *terms.factors)
    for x, f in parsed.factor_means:
        if f not in names:
            raise SpecificationError(
                f"cmean({x}, {f}) in the analysis model {parsed.text!r}: {f!r} is not one of "
                f"its grouping factors {list(names)}"
            )
        if missing.get(x, 0) > 0:
            raise UnsupportedError(
                f"{what} supports cmean(x) (the mean over the innermost cluster) only; the "
                f"formula {parsed.text!r} has cmean({x}, {f}): cmean(x, factor) of a complete "
                f"x only ({x!r} has {int(missing[x])} missing value(s), whose row-by-row "
                "draws cannot update a mean over another factor)"
            )
    primary = [x for x, f in parsed.factor_means if f == terms.cluster]
    return primary, [(x, f) for x, f in parsed.factor_means if f != terms.cluster]
