"""The conditional models of model-based imputation's factorisation.

The formula of an incomplete level-1 predictor's model (:func:`predictor_formula`), of a
level-2 one's (:func:`level2_formula`, one row per cluster), the method of each kind of
predictor and of the analysis model's outcome (:func:`outcome_method`);
:func:`~mlimpute.spec.model.build_model_spec` assembles them.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from mlimpute.errors import UnsupportedError
from mlimpute.spec.formula import ParsedFormula, _quote, parse_formula
from mlimpute.spec.model_counts import COUNT_FAMILIES
from mlimpute.spec.model_terms import random_intercepts

_METHOD = "2l.norm"
_METHOD2 = "2lonly.norm"
#: the model of an incomplete level-1 predictor by its kind (categorical ones: latent probit)
_PREDICTOR_METHODS = {
    "numeric": _METHOD,
    "binary": "2l.bin",
    "ordinal": "2l.ordinal",
    "nominal": "2l.nominal",
}


def _rhs(
    later: Sequence[str],
    complete: Sequence[str],
    means: Sequence[str],
    factor: str | None = None,
) -> str:
    """``later + complete + cmean(m) for m in means`` (``cmean(m, factor)`` over another
    grouping factor; ``1`` when empty)."""
    terms = [_quote(c) for c in [*later, *complete]]
    over = "" if factor is None else ", " + ":".join(_quote(f) for f in factor.split(":"))
    terms += [f"cmean({_quote(c)}{over})" for c in means]
    return " + ".join(terms) or "1"


def _with_factor_means(rhs: str, factor_means: Sequence[tuple[str, str]]) -> str:
    """``rhs + cmean(c, factor)`` for each ``(c, factor)`` of ``factor_means``."""
    extra = [_rhs([], [], [c], f) for c, f in factor_means]
    return " + ".join([*([] if rhs == "1" and extra else [rhs]), *extra])


def predictor_formula(
    name: str,
    later: Sequence[str],
    complete: Sequence[str],
    cluster: str | Sequence[str],
    means: Sequence[str] = (),
    factor_means: Sequence[tuple[str, str]] = (),
) -> ParsedFormula:
    """The model of one incomplete predictor: ``x ~ later + complete + cmean(means) +
    (1 | cluster)`` (several grouping factors, as a list: a random intercept for each).
    ``means`` are the complete columns whose cluster means ``cmean(c)`` the analysis model
    has: complete predictors of the analysis model too, and ``factor_means`` the
    ``(column, factor)`` pairs of its ``cmean(column, factor)`` terms of complete columns.

    Examples
    --------
    >>> str(predictor_formula("x", ["w"], ["z", "a"], "g"))
    'x ~ w + z + a + (1 | g)'
    >>> str(predictor_formula("x", [], ["z"], "g", means=["z"]))
    'x ~ z + cmean(z) + (1 | g)'
    >>> str(predictor_formula("x", [], ["z"], ["school", "class"]))
    'x ~ z + (1 | school) + (1 | class)'
    >>> str(predictor_formula("x", [], ["z"], ["school", "class"], [], [("z", "school")]))
    'x ~ z + cmean(z, school) + (1 | school) + (1 | class)'
    """
    rhs = _with_factor_means(_rhs(later, complete, means), factor_means)
    if not isinstance(cluster, str):  # several grouping factors (factor text as given)
        return parse_formula(f"{_quote(name)} ~ {rhs} + {random_intercepts(cluster)}")
    return parse_formula(f"{_quote(name)} ~ {rhs} + (1 | {_quote(cluster)})")


def level2_formula(
    name: str,
    later: Sequence[str],
    complete: Sequence[str],
    outer: str | None = None,
    means: Sequence[str] = (),
    factor_means: Sequence[tuple[str, str]] = (),
    school_means: tuple[str, Sequence[str]] | None = None,
) -> ParsedFormula:
    """The model of one incomplete level-2 predictor, on one row per cluster:
    ``w ~ later + complete + cmean(means)`` (level-2 columns only: ``means`` are the
    complete level-1 columns whose cluster means it takes); with an enclosing level
    ``outer`` (three levels), ``w ~ later + complete + cmean(means) + (1 | outer)``.
    A school-level predictor's model (one row per school) takes the school means of
    complete lower-level columns: ``school_means=(factor, columns)`` adds
    ``cmean(c, factor)`` for each. ``factor_means``: the analysis model's
    ``cmean(c, factor)`` terms of complete columns, ``(c, factor)`` pairs (constant within
    each cluster of a nested design: class-level columns).

    Examples
    --------
    >>> str(level2_formula("w", [], ["z"]))
    'w ~ z'
    >>> str(level2_formula("w", [], ["v"], means=["z"]))
    'w ~ v + cmean(z)'
    >>> str(level2_formula("w", [], ["z"], "school"))
    'w ~ z + (1 | school)'
    >>> str(level2_formula("s", [], ["t"], school_means=("school", ["x", "v"])))
    's ~ t + cmean(x, school) + cmean(v, school)'
    """
    rhs = _with_factor_means(_rhs(later, complete, means), factor_means)
    if school_means is not None and school_means[1]:
        factor, columns = school_means
        extra = _rhs([], [], columns, factor)
        rhs = extra if rhs == "1" else f"{rhs} + {extra}"
    if outer is not None:
        return parse_formula(f"{_quote(name)} ~ {rhs} + (1 | {outer})")
    return parse_formula(f"{_quote(name)} ~ {rhs}")


def outcome_method(values: pd.Series, name: str, family: str | None = None) -> str:
    """The analysis model's family: ``2l.norm`` for a numeric outcome, ``2l.bin`` (probit,
    through a latent normal with variance 1) for a binary one; with a count ``family``
    (:data:`COUNT_FAMILIES`) ``2l.poisson`` or ``2l.nb``.

    Raises
    ------
    UnsupportedError
        For an ordinal or nominal outcome, naming it.

    Examples
    --------
    >>> outcome_method(pd.Series([0.0, 1.0, 1.0]), "y")
    '2l.bin'
    >>> outcome_method(pd.Series([0.0, 3.0, 1.0]), "y", "poisson")
    '2l.poisson'
    """
    from mlimpute.codec import column_kind

    if family in COUNT_FAMILIES:
        return COUNT_FAMILIES[family]
    kind = column_kind(values)
    if kind == "numeric":
        return _METHOD
    if kind == "binary":
        return "2l.bin"
    raise UnsupportedError(
        f"the outcome {name!r} is {kind}: model-based imputation supports a normal (numeric) "
        "or a binary (probit) outcome so far"
    )
