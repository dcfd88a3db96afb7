"""The imputation specification: validated once, at the boundary.

:func:`build_spec` checks a DataFrame against the user's formulas and options and returns a
frozen :class:`ImputationSpec`; everything after it (design, engine) trusts its input.
Errors name the column, formula token or cluster at fault.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlimpute.codec import categories, column_kind
from mlimpute.errors import (
    MlimputeWarning,
    SpecificationError,
    UnsupportedError,
    warn,
)
from mlimpute.spec import defaults as _defaults
from mlimpute.spec.arguments import (
    MAX_CATEGORIES,
    check_cluster_argument,
    check_delta,
    check_frame,
    check_heteroscedastic,
    check_method,
    check_names,
    column_list,
    parse_all,
    positive_int,
)
from mlimpute.spec.checks import (
    check_categories,
    check_default_size,
    check_finite_values,
    check_formula_columns,
    check_random_parts,
    check_ranefs,
    check_terms_on_data,
)
from mlimpute.spec.defaults import (
    analysis_columns,
    default_formula,
)
from mlimpute.spec.factors import _check_several_factors, _Columns, _resolve_cluster
from mlimpute.spec.formula import ParsedFormula, factor_columns, parse_formula
from mlimpute.spec.formula_columns import calls_of
from mlimpute.spec.imputation_spec import ImputationSpec, MethodArgument, VariableSpec
from mlimpute.spec.variable import COUNT_METHODS, variable_spec

__all__ = ["ImputationSpec", "VariableSpec", "build_spec", "column_kind", "MethodArgument"]


def build_spec(
    df: pd.DataFrame,
    formulas: Mapping[str, str] | Sequence[str] | str | None = None,
    *,
    m: int = 5,
    iterations: int = 20,
    method: Mapping[str, MethodArgument] | None = None,
    visit: Sequence[str] | None = None,
    seed: int | None = None,
    cluster: str | Sequence[str] | None = None,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    heteroscedastic: bool | Sequence[str] = False,
    max_categories: int = MAX_CATEGORIES,
    delta: Mapping[str, float] | None = None,
    delta_cluster_sd: Mapping[str, float] | None = None,
) -> ImputationSpec:
    """Validate formulas and options against ``df``; return an :class:`ImputationSpec`.

    Incomplete variables without a formula get the default model (:mod:`mlimpute.spec.defaults`)
    when ``cluster`` is given or no formula at all is; otherwise they are an error.
    ``include``, ``exclude``, ``visit`` and ``heteroscedastic`` take a list of column names
    or one name as a string. ``method`` maps a column to a model name, or to a model with
    options: ``("2l.norm", {"prior": "iw"})`` or ``{"method": "2l.norm", "prior": "iw"}``
    (the options are the keyword arguments of the model, see
    :func:`mlimpute.models.model_options`). The arguments are described in
    :func:`mlimpute.impute`.

    Examples
    --------
    >>> from mlimpute.datasets import classroom
    >>> df = classroom(1, rng=1).incomplete
    >>> build_spec(df, {"grade": "~ skill + (1 | class)"}).methods
    {'grade': '2l.norm'}
    >>> build_spec(df, cluster="class").formulas
    {'grade': '~ skill + (1 | class)'}
    >>> spec = build_spec(df, {"grade": "~ skill + (1 | class)"},
    ...                   method={"grade": ("2l.norm", {"prior": "iw"})})
    >>> spec.method_options
    {'grade': {'prior': 'iw'}}
    """
    check_frame(df)
    m = positive_int(m, "m")
    iterations = positive_int(iterations, "iterations")
    max_categories = positive_int(max_categories, "max_categories")
    check_cluster_argument(cluster)
    include = column_list(include, "include")
    exclude = column_list(exclude, "exclude")
    visit = column_list(visit, "visit")
    heteroscedastic = check_heteroscedastic(heteroscedastic)
    parsed = parse_all(formulas if formulas is not None else {})
    methods = check_method(method)
    shifts = check_delta(delta)
    cluster_sds = check_delta(delta_cluster_sd, "delta_cluster_sd")
    events: list[str] = []

    _check_columns(df, parsed, include, exclude, heteroscedastic)
    check_random_parts(parsed)
    use_defaults = cluster is not None or formulas is None
    if not use_defaults and (include is not None or exclude is not None):
        arg = "include=" if include is not None else "exclude="
        raise SpecificationError(
            f"{arg} chooses the columns of the default models, and formulas without "
            "cluster= build none; give cluster= for default models of the other incomplete "
            "columns, or select the columns to impute (df[cols].mi.impute(...))"
        )
    cols = _resolve_cluster(df, parsed, cluster)
    candidates, no_formula = _incomplete(cols, parsed, use_defaults, include, exclude, events)
    _check_all_categories(cols, [*parsed, *no_formula], max_categories)
    if use_defaults:
        _add_default_formulas(cols, parsed, candidates, no_formula, max_categories, events)
    _check_method_targets(methods, parsed, df)
    check_formula_columns(parsed, frozenset(no_formula) if use_defaults else frozenset())
    check_terms_on_data(df, parsed)
    check_finite_values(df, parsed)

    # variables whose random effects other formulas use must be modelled even if complete
    ranef_targets = set().union(*(f.ranefs for f in parsed.values())) if parsed else set()
    specs = []
    for name, f in parsed.items():
        if cols.missing[name] == 0 and name not in ranef_targets:
            events.append(f"{name}: has no missing values; its formula is not used")
            continue
        specs.append(variable_spec(cols, name, f, methods.get(name), heteroscedastic, events))
    check_ranefs(specs, cols.cluster)
    _check_categorical_terms(cols, specs)
    check_names(s_.name for s_ in specs)
    specs = _visit_order(specs, visit)
    if not specs or all(cols.missing[s_.name] == 0 for s_ in specs):
        nothing = (
            "nothing to impute: no variable with a formula has missing values; "
            "the m completed data sets are copies of the data"
        )
        events.append(nothing)
        warn(nothing, MlimputeWarning)
    kept = _check_delta_targets(shifts, specs, cols)
    kept_sd = _check_delta_targets(cluster_sds, specs, cols, "delta_cluster_sd")
    if kept_sd and cols.cluster is None:
        raise SpecificationError(
            "delta_cluster_sd needs clusters: give cluster= or formulas with a random part"
        )
    if cols.factors:
        _check_several_factors(cols, specs, kept_sd)
    _few_clusters(cols, specs, events)
    return ImputationSpec(
        tuple(specs),
        cols.cluster,
        m,
        iterations,
        seed,
        tuple(events),
        delta=kept,
        delta_cluster_sd=kept_sd,
        factors=cols.factors,
        hierarchy=cols.hierarchy,
        structure=cols.structure,
    )


def _few_clusters(cols: _Columns, specs: list[VariableSpec], events: list[str]) -> None:
    """Said where the clusters cannot inform a random intercept: one cluster (its effect
    is the intercept's), or one row in each (it is the residual's)."""
    if cols.codes is None or not any(s_.formula.is_multilevel for s_ in specs):
        return
    sizes = np.bincount(cols.codes)
    if sizes.size == 1:
        events.append(
            f"one cluster of {cols.cluster!r}: the data cannot separate its random effects "
            "from the fixed ones (their prior decides them); a single-level model may be "
            "what is meant"
        )
    elif sizes.max() == 1:
        events.append(
            f"every cluster of {cols.cluster!r} has one row: the data cannot separate the "
            "random intercept from the residual (their priors decide the split)"
        )


#: models whose ``delta=`` shift is added to the linear predictor of the missing rows (the
#: latent scale of the probit, logit, ordered and multinomial models, the log scale of the
#: count models) rather than to the drawn values
LATENT_DELTA_METHODS = frozenset(
    {
        *("bin", "2l.bin", "2lonly.bin", "logit", "2l.logit", "2lonly.logit"),
        *("ordinal", "2l.ordinal", "2lonly.ordinal"),
        *("nominal", "2l.nominal", "2lonly.nominal"),
        *COUNT_METHODS,
    }
)


def _check_delta_targets(
    shifts: dict[str, float], specs: list[VariableSpec], cols: _Columns, arg: str = "delta"
) -> tuple[tuple[str, float], ...]:
    """``delta=`` names imputed variables with a shift the model supports; the non-zero
    shifts, in visit order."""
    imputed = {s_.name: s_ for s_ in specs}
    for name in shifts:
        if name not in cols.df.columns:
            raise SpecificationError(f"{arg} names unknown column {name!r}")
        if name not in imputed or cols.missing[name] == 0:
            raise SpecificationError(
                f"{arg} names {name!r}, which is not imputed (it has no missing values or "
                "no formula); a shift applies to imputed values only"
            )
        v = imputed[name]
        ranged = str(dict(v.options).get("transform", ""))
        if ranged == "log" or ranged.startswith("bounds"):
            raise UnsupportedError(
                f"{arg} for {name!r} with transform {ranged!r} is not supported yet: the shift "
                "would be added after the back-transform and could leave the range the "
                "transform keeps (positive values, or the bounds); shift the column without "
                "the transform, or transform it yourself and shift on that scale"
            )
        if v.method in LATENT_DELTA_METHODS:
            continue
        if cols.kinds[name] != "numeric":
            raise UnsupportedError(
                f"{arg} for {name!r}: shifts are supported for continuous numeric variables "
                "(added to the values) and the probit, logit, ordinal, nominal and count "
                f"models (added to the linear predictor) only so far ({name!r} is "
                f"{cols.kinds[name]}, imputed with {v.method!r})"
            )
        _check_integer_pmm_shift(name, shifts[name], v.method, cols.df[name].dtype, arg)
    return tuple((s_.name, shifts[s_.name]) for s_ in specs if shifts.get(s_.name, 0.0) != 0.0)


def _check_integer_pmm_shift(name: str, shift: float, method: str, dtype, arg: str) -> None:
    """Refuses a shift that is not a whole number of an integer column imputed by
    predictive mean matching: the donors are integers and the completed column is rounded,
    so the shift would be lost to the rounding (|δ| < 0.5 changes nothing) while the chain
    carried the unrounded values. A whole δ keeps donor + δ an integer."""
    if "pmm" not in method or not pd.api.types.is_integer_dtype(dtype) or not shift:
        return
    if arg == "delta" and float(shift).is_integer():
        return
    if arg == "delta":
        what = f"delta for {name!r} is {shift:g}, not a whole number"
        first = "give whole-number shifts only (such as -2, -1, 1, 2)"
    else:  # the per-cluster shifts are normal draws, never whole numbers
        what = f"delta_cluster_sd for {name!r} draws per-cluster shifts that are not whole numbers"
        first = "leave the per-cluster shifts out"
    continuous = method.replace("pmm", "norm")  # pmm -> norm, 2l.pmm -> 2l.norm, ...
    raise SpecificationError(
        f"{what}, but {name!r} is an integer column (dtype {dtype}) imputed by predictive "
        f"mean matching ({method!r}): its imputed values are observed integers and the "
        "completed column is rounded to integers, so the rounding would undo the shift "
        "(a shift below 0.5 would change nothing) while the other variables' models would see "
        f"the unrounded values. Instead, {first}; or impute it with a continuous model "
        f"whose draws are shifted before the rounding (method={{{name!r}: {continuous!r}}}); "
        f"or make it a float column (df[{name!r}].astype(float))"
    )


# -- the validators, in the order build_spec runs them -------------------------------------
def _check_columns(
    df: pd.DataFrame,
    parsed: dict[str, ParsedFormula],
    include: list[str] | None,
    exclude: list[str] | None,
    heteroscedastic: bool | list[str],
) -> None:
    """Every column a formula or a column-list argument names is in the data."""
    columns = set(df.columns)
    for name, f in parsed.items():
        if f.lmeans:
            raise UnsupportedError(
                f"lmean({f.lmeans[0]}) in the formula for {name!r}: a latent cluster mean "
                "belongs to the analysis model of a model-based imputation "
                "(impute(model=...)); chained formulas use cmean(...), the observed "
                "cluster mean"
            )
        unknown = sorted(f.variables - columns)
        if unknown:
            raise SpecificationError(
                f"formula for {name!r} refers to unknown column(s) {unknown}: {f.text!r}"
            )
    for arg, names in (("include", include), ("exclude", exclude)):
        for name in names or ():
            if name not in columns:
                raise SpecificationError(f"{arg} names unknown column {name!r}")
    if not isinstance(heteroscedastic, bool):
        for name in heteroscedastic:
            if name not in columns:
                raise SpecificationError(f"heteroscedastic names unknown column {name!r}")


def _incomplete(
    cols: _Columns,
    parsed: dict[str, ParsedFormula],
    use_defaults: bool,
    include: list[str] | None,
    exclude: list[str] | None,
    events: list[str],
) -> tuple[list[str], list[str]]:
    """The columns the defaults may use, and the incomplete ones without a formula (an
    error unless the defaults apply)."""
    if use_defaults:
        candidates, left_out = analysis_columns(cols.df, cols.classify_as, include, exclude)
        if left_out:
            events.append("left out of the default models: " + ", ".join(left_out))
    else:
        candidates = list(cols.df.columns)
    candidates = [c for c in candidates if c not in cols.cluster_columns or c == cols.cluster]
    if not use_defaults:  # said, as the defaults say what they leave out
        kept = [c for c in candidates if cols.missing[c] > 0 and c != cols.cluster]
        other = [c for c in kept if cols.kinds[c] == "other" and c not in parsed]
        if other:
            events.append(
                "left incomplete (no model imputes a column of its type): "
                + ", ".join(
                    f"{c} ({cols.df[c].dtype}, {int(cols.missing[c])} missing)" for c in other
                )
            )
    # columns no model can use (lists, dicts...) are imputed only if a formula asks for it
    incomplete = [
        c
        for c in candidates
        if cols.missing[c] > 0 and c != cols.cluster and (c in parsed or cols.kinds[c] != "other")
    ]
    no_formula = [c for c in incomplete if c not in parsed]
    if no_formula and not use_defaults:
        raise SpecificationError(
            f"incomplete column(s) {no_formula} have no imputation formula; give each a "
            "formula, pass cluster=... for default models, or select the columns to impute "
            "(df[cols].mi.impute(...))"
        )
    return candidates, no_formula


def _check_all_categories(cols: _Columns, names: list[str], max_categories: int) -> None:
    """Incomplete categorical variables have at most ``max_categories`` categories."""
    for name in names:
        kind = cols.kinds[name]
        if kind in ("nominal", "ordinal") and cols.missing[name] > 0:
            check_categories(name, kind, categories(cols.df[name]), max_categories)


def _add_default_formulas(
    cols: _Columns,
    parsed: dict[str, ParsedFormula],
    candidates: list[str],
    no_formula: list[str],
    max_categories: int,
    events: list[str],
) -> None:
    """The default formula of every incomplete column without one (into ``parsed``), from
    the analysis columns less those with too many categories."""
    model_cols = [c for c in candidates if c != cols.cluster and c not in cols.cluster_columns]
    n_cats = {
        c: len(categories(cols.df[c]) or ())
        for c in model_cols
        if cols.kinds[c] in ("nominal", "ordinal")
    }
    many = [c for c in model_cols if n_cats.get(c, 0) > max_categories and c not in no_formula]
    if many:  # each would add one dummy column per category to every default model
        events.append(
            "left out of the default models: "
            + ", ".join(
                f"{c!r} ({n_cats[c]} categories, more than max_categories="
                f"{max_categories}: one predictor column per category)"
                for c in many
            )
        )
        model_cols = [c for c in model_cols if c not in set(many)]
    two = {c: min(lvl, 2) for c, lvl in cols.levels.items()}
    for name in no_formula:
        check_default_size(
            cols.df, name, model_cols, two, cols.kinds, n_cats, cols.cluster, cols.codes
        )
        if cols.hierarchy:
            text = _defaults.default_formula_levels(
                name, model_cols, cols.levels, cols.kinds, cols.hierarchy
            )
        elif cols.cluster is not None and len(factor_columns(cols.cluster)) > 1:
            raise UnsupportedError(
                f"default models for {name!r} with the grouping factors "
                f"{[cols.cluster, *cols.factors]}: give its formula, or the nested levels as "
                "cluster=[outer, inner]"
            )
        else:
            text = default_formula(name, model_cols, cols.levels, cols.kinds, cols.cluster)
        parsed[name] = parse_formula(text, name)


def _check_method_targets(
    methods: dict[str, tuple[str, dict[str, Any]]],
    parsed: dict[str, ParsedFormula],
    df: pd.DataFrame,
) -> None:
    """``method=`` names only imputed variables."""
    for name in methods:
        if name not in parsed:
            raise SpecificationError(
                f"method given for {name!r}, which is not imputed (no formula"
                + ("" if name in df.columns else ", and no such column")
                + ")"
            )


def _check_categorical_terms(cols: _Columns, specs: list[VariableSpec]) -> None:
    """``C(x)`` of an imputed numeric ``x`` only where x's model imputes observed values
    (predictive mean matching): any other imputed value would be a category of its own,
    which the design, built once, does not have."""
    methods = {s_.name: s_.method for s_ in specs}
    for s_ in specs:
        for call in calls_of(s_.formula.text, ("C",)):
            column = call.arguments[0].strip("`") if call.arguments else None
            if column not in methods or cols.kinds[column] != "numeric":
                continue
            if "pmm" not in methods[column]:
                raise UnsupportedError(
                    f"{call.text} in the formula for {s_.name!r} ({s_.formula.text!r}): "
                    f"{column!r} is numeric and imputed with {methods[column]!r}, whose "
                    "imputed values are not among its observed values; C() would make each "
                    f"a category of its own. Write {column!r} for a continuous predictor, "
                    f"impute it with predictive mean matching (method={{{column!r}: "
                    "'2l.pmm'}), or convert it to a pandas Categorical before imputing"
                )


def _visit_order(specs: list[VariableSpec], visit: list[str] | None) -> list[VariableSpec]:
    """``visit=`` lists each imputed variable once; the specs in that order."""
    if visit is None:
        return specs
    names = [s_.name for s_ in specs]
    if sorted(visit) != sorted(names):
        raise SpecificationError(
            f"visit must list each imputed variable once: expected {names}, got {visit}"
        )
    return [next(s_ for s_ in specs if s_.name == v) for v in visit]
