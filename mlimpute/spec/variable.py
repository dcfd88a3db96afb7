"""How one variable is imputed: its response checked, its model chosen (given or the
default for its kind, level and formula) with its options, and its formula fitted to the
model's level (:func:`variable_spec`, for :func:`mlimpute.spec.build.build_spec`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlimpute.codec import categories
from mlimpute.errors import DataError, DataTypeError, SpecificationError, UnsupportedError
from mlimpute.models import default_for, get_model, validate_options
from mlimpute.spec import defaults as _defaults
from mlimpute.spec.checks import check_level2, holding
from mlimpute.spec.factors import _Columns
from mlimpute.spec.formula import ParsedFormula
from mlimpute.spec.imputation_spec import VariableSpec

__all__ = ["COUNT_METHODS", "variable_spec"]

#: models whose imputations are non-negative integers already
COUNT_METHODS = frozenset(
    f"{prefix}{family}"
    for prefix in ("", "2l.", "2lonly.")
    for family in ("poisson", "nb", "zip", "zinb")
)


def variable_spec(
    cols: _Columns,
    name: str,
    f: ParsedFormula,
    given: tuple[str, dict[str, Any]] | None,
    heteroscedastic: bool | list[str],
    events: list[str],
) -> VariableSpec:
    """How ``name`` is imputed: its response checked, its model chosen (``given`` or the
    default) with its options, its formula fitted to the model's level."""
    kind = _check_response(cols, name, events)
    default = _default_method(cols, name, f, heteroscedastic, given is not None)
    meth, options = given if given is not None else (default, {})
    if heteroscedastic is True and given is not None and meth != "2l.norm.het":
        events.append(
            f"{name}: imputed with {meth!r} as method= says; heteroscedastic=True applies to "
            "the variables without a method"
        )
    info = get_model(meth)
    if kind not in info.kinds:
        raise DataTypeError(
            f"column {name!r} is {kind} (dtype {cols.df[name].dtype}); method {meth!r} imputes "
            f"{'/'.join(info.kinds)} variables"
        )
    validate_options(name, meth, options)
    f, level = _fit_level(cols, name, f, meth, events)
    _check_predictors(cols, name, f)
    dtype = cols.df[name].dtype
    if kind == "numeric" and pd.api.types.is_integer_dtype(dtype) and "pmm" not in meth:
        limits = np.iinfo(getattr(dtype, "numpy_dtype", dtype))
        if meth not in COUNT_METHODS:
            events.append(
                f"{name}: integer column imputed with {meth!r}: imputations are "
                f"rounded and clipped to [{limits.min}, {limits.max}]; method 'pmm' or "
                "'2l.pmm' imputes observed values only"
            )
        elif limits.max < 2**31 - 1:  # counts come back as non-negative integers
            events.append(
                f"{name}: count column of dtype {dtype} imputed with {meth!r}: imputed "
                f"counts above {limits.max} are clipped to {limits.max}, the dtype's "
                "largest value; a wider integer dtype (int64) keeps them"
            )
    return VariableSpec(name, f, meth, level, tuple(options.items()))


def _check_response(cols: _Columns, name: str, events: list[str]) -> str:
    """An imputable response: some observed values, a modelled dtype, two distinct values.
    Returns its kind."""
    df = cols.df
    if cols.missing[name] == len(df):
        raise DataError(f"column {name!r} has no observed value; it cannot be imputed")
    kind = cols.kinds[name]
    if kind == "other":
        raise DataTypeError(
            f"column {name!r} has dtype {holding(df[name])}, which "
            "cannot be imputed (numeric, bool, categorical and string "
            "columns can)"
        )
    cats = categories(df[name])
    col = df[name]
    if cats is None and isinstance(col.dtype, np.dtype) and col.dtype.kind in "iuf":
        v = col.to_numpy()
        # two distinct values without hashing the column (1,000,000 rows: 1 ms, not 30);
        # fmin/fmax pass over the missing values (some value is observed)
        lo, hi = (
            (np.fmin.reduce(v), np.fmax.reduce(v)) if v.dtype.kind == "f" else (v.min(), v.max())
        )
        seen = np.array([lo]) if lo == hi else np.array([lo, hi])
    else:
        seen = pd.unique(col.dropna())
    if len(seen) < 2:
        what = "value" if kind == "numeric" else "category"
        only = seen[0].item() if hasattr(seen[0], "item") else seen[0]
        raise DataError(
            f"{name!r} has a single observed {what} ({only!r}); there is nothing "
            "to model: fill it in or leave the column out"
        )
    if kind != "numeric" and cats is not None and len(seen) < len(cats):
        unseen = [c for c in cats if c not in set(seen)]
        events.append(f"{name}: categories {unseen} have no observed value; they are never imputed")
    return kind


def _default_method(
    cols: _Columns, name: str, f: ParsedFormula, heteroscedastic: bool | list[str], given: bool
) -> str:
    """The registry's default (:func:`mlimpute.models.default_for`) for the variable's
    kind, level and formula: heteroscedastic where asked, predictive mean matching for
    integer codes and counts."""
    kind = cols.kinds[name]
    multilevel = f.is_multilevel
    level = 2 if cols.levels[name] >= 2 and not multilevel else 1
    default = default_for(kind, level, multilevel)
    het = heteroscedastic is True or (
        not isinstance(heteroscedastic, bool) and name in heteroscedastic
    )
    named = not isinstance(heteroscedastic, bool) and name in heteroscedastic
    if named and given:
        raise SpecificationError(
            f"heteroscedastic= names {name!r} and method= gives it a model too; give one of "
            f"them (method={{{name!r}: '2l.norm.het'}} is the heteroscedastic model)"
        )
    if het and not given:
        het_model = default_for(kind, level, multilevel, "heteroscedastic")
        if het_model is None:
            raise SpecificationError(
                f"heteroscedastic imputation of {name!r} needs a numeric variable with a "
                f"random part; its default model is {default!r}"
            )
        return het_model
    if kind == "numeric" and _defaults.pmm_by_default(cols.df[name]):  # observed values only
        return default_for(kind, level, multilevel, "codes")
    return default


def _fit_level(
    cols: _Columns, name: str, f: ParsedFormula, meth: str, events: list[str]
) -> tuple[ParsedFormula, int]:
    """The formula as the model uses it, and the variable's level: level-2 models on
    cluster rows, multilevel models need a random part, single-level ones drop it."""
    info = get_model(meth)
    if cols.factors:
        return _fit_level_factors(cols, name, f, meth, events)
    if info.level == 2:
        return check_level2(
            cols.df, name, f, meth, cols.cluster, cols.codes, cols.labels, cols.levels
        ), 2
    fitted = _random_part(name, f, meth, cols.cluster, events)
    return (fitted, cols.levels[name]) if fitted is not f else (f, 1)


def _random_part(
    name: str, f: ParsedFormula, meth: str, cluster: str, events: list[str]
) -> ParsedFormula:
    """``f`` for a level-1 model: a multilevel method needs a random part (an error
    naming ``cluster``), a single-level one drops it (said in ``events``; a new formula
    is returned)."""
    info = get_model(meth)
    if info.multilevel and not f.is_multilevel:
        raise SpecificationError(
            f"method {meth!r} for {name!r} needs a random part such as '(1 | {cluster})' "
            f"in its formula {f.text!r}"
        )
    if not info.multilevel and f.is_multilevel:
        events.append(f"{name}: method {meth!r} is single-level; random part ignored")
        return f.drop_random()
    return f


def _fit_level_factors(
    cols: _Columns, name: str, f: ParsedFormula, meth: str, events: list[str]
) -> tuple[ParsedFormula, int]:
    """:func:`_fit_level` with several grouping factors. Level-1 variables: models with
    random terms over several factors (one of them the innermost level). With nested
    levels (``cluster=[school, class]``), a class-level variable is imputed on one row per
    class, with a random intercept for school if its formula has one; a school-level
    variable on one row per school."""
    info = get_model(meth)
    lvl = cols.levels[name]
    outer = cols.hierarchy[0] if cols.hierarchy else None
    if lvl < 2 and info.level == 2:  # DataError naming the clusters it varies within
        check_level2(
            cols.df, name, f, meth, cols.cluster, cols.codes, cols.labels, cols.levels, 2, outer
        )
        lvl = 2  # constant within its clusters, observed too sparsely to be found so
    if lvl == 3 and (info.level == 2 or not f.is_multilevel):
        return check_level2(
            cols.df, name, f, meth, outer, cols.outer_codes, cols.outer_labels, cols.levels, 3
        ), 3
    to_class_rows = f.is_multilevel and outer is not None and f.groups == (outer,)
    if lvl >= 2 and f.is_multilevel and not to_class_rows and cols.cluster not in f.groups:
        where = f"over {outer!r} only" if outer is not None else "only with a level-1 model"
        raise UnsupportedError(
            f"{name!r} is constant within {cols.cluster!r}: it is imputed on one row per "
            f"cluster, with random effects {where}; the grouping factors "
            f"{list(f.groups)} of {f.text!r} (crossed factors) are supported for level-1 "
            "variables only"
        )
    if lvl >= 2 and (info.level == 2 or to_class_rows or not f.is_multilevel):
        if to_class_rows and not info.multilevel:
            raise SpecificationError(
                f"method {meth!r} for {name!r} is single-level; its formula {f.text!r} has a "
                f"random part over {outer!r}"
            )
        if info.multilevel and not f.is_multilevel:
            raise SpecificationError(
                f"method {meth!r} for {name!r} needs a random part such as '(1 | {outer})' "
                f"in its formula {f.text!r}"
            )
        f = check_level2(
            cols.df, name, f, meth, cols.cluster, cols.codes, cols.labels, cols.levels, 2, outer
        )
        return f, 2
    fitted = _random_part(name, f, meth, cols.cluster, events)
    if fitted is not f:
        return fitted, 1
    if f.is_multilevel and cols.cluster not in f.groups:
        raise UnsupportedError(
            f"the formula for {name!r} ({f.text!r}) has random terms over {list(f.groups)} "
            f"but none over the innermost grouping factor {cols.cluster!r} (three-level and "
            f"cross-classified models: add (1 | {cols.cluster}))"
        )
    if f.several_groups:
        hierarchy = set(cols.hierarchy)
        crossed = [g for g in f.groups if g not in hierarchy and g != cols.cluster]
        if crossed and lvl >= 2:
            raise UnsupportedError(
                f"crossed grouping factors {crossed} are supported for level-1 variables "
                f"only; {name!r} is constant within {cols.cluster!r}"
            )
    return f, 1


def _check_predictors(cols: _Columns, name: str, f: ParsedFormula) -> None:
    """Predictors of a modelled dtype; ``cmean()`` of numeric columns, with a cluster."""
    for p in f.predictors:
        if cols.kinds[p] == "other":
            raise DataTypeError(
                f"predictor {p!r} of {name!r} has unsupported dtype "
                f"{holding(cols.df[p])}; numeric, bool, categorical and "
                "string columns can be predictors"
            )
    for c in f.cmeans:
        if cols.kinds[c] not in ("numeric", "binary"):
            raise DataTypeError(
                f"cmean({c}) in the formula for {name!r}: {c!r} is "
                f"{cols.kinds[c]}; cluster means need a numeric or binary column"
            )
        if cols.cluster is None:
            raise SpecificationError(
                f"cmean({c}) in the formula for {name!r} needs a "
                "cluster: pass cluster=... or use a random part"
            )
    known = [] if cols.cluster is None else [cols.cluster, *cols.factors]
    for c, g in f.factor_means:
        if cols.kinds[c] not in ("numeric", "binary"):
            raise DataTypeError(
                f"cmean({c}, {g}) in the formula for {name!r}: {c!r} is "
                f"{cols.kinds[c]}; cluster means need a numeric or binary column"
            )
        if g not in known:
            raise SpecificationError(
                f"cmean({c}, {g}) in the formula for {name!r}: {g!r} is not a grouping "
                f"factor of this imputation (its grouping factors: {known}); name the levels "
                "with cluster=[outer, inner] or add a random term over it"
            )
