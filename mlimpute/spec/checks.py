"""Checks of the data against a specification: finite values, categories, random parts,
level-2 variables, the size of default models and the ``ranef()`` references.

Each check raises an mlimpute error naming the column, term or cluster at fault; all run
in :func:`mlimpute.spec.build.build_spec`, before any chain starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mlimpute.codec import categories
from mlimpute.errors import (
    DataError,
    DataTypeError,
    FormulaError,
    SpecificationError,
    UnsupportedError,
)
from mlimpute.models import get_model
from mlimpute.spec.defaults import varying_clusters
from mlimpute.spec.formula import ParsedFormula
from mlimpute.spec.formula_columns import calls_of, cmean_column
from mlimpute.spec.grammar import validate_formula

if TYPE_CHECKING:
    from mlimpute.spec.build import VariableSpec

__all__ = [
    "check_finite_values",
    "check_ranefs",
    "check_categories",
    "holding",
    "check_random_parts",
    "check_default_size",
    "check_level2",
    "check_formula_columns",
    "check_terms_on_data",
    "check_cluster_means",
]

#: the name formulaic gives the intercept column of every design
INTERCEPT = "Intercept"

#: functions replaced by design columns before formulaic evaluates a formula: a column of
#: the same name does not hide them
_NOT_EVALUATED = frozenset({"cmean", "lmean", "ranef"})

#: contrasts of ``C()`` with a reference level, and the argument naming it
_REFERENCE = {"Treatment": "reference", "contr.treatment": "base", "contr.SAS": "base"}

#: contrasts of ``C()`` with scores, one per level
_SCORES = ("Poly", "contr.poly")


def check_finite_values(df: pd.DataFrame, parsed: dict[str, ParsedFormula]) -> None:
    """No ±inf in a numeric column a formula uses (infinite values are not missing)."""
    used = set().union(*(f.variables for f in parsed.values())) if parsed else set()
    for c in used:
        dtype = df[c].dtype
        if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
            vals = df[c].to_numpy(dtype=np.float64, na_value=np.nan)
            if np.isinf(vals).any():
                raise DataError(
                    f"column {c!r} has ±inf values (e.g. at index "
                    f"{df.index[np.isinf(vals)][:3].tolist()}); infinite values are not "
                    "treated as missing: replace them with NaN to impute them"
                )


def check_ranefs(specs: list[VariableSpec], cluster: str | None) -> None:
    """``ranef(x)`` only in level-2 formulas, of an x imputed with a multilevel model."""
    for s_ in specs:
        for x in s_.formula.ranefs:
            target = next((v for v in specs if v.name == x), None)
            if target is None or not get_model(target.method).multilevel:
                raise SpecificationError(
                    f"ranef({x}) in the formula for {s_.name!r} needs a multilevel formula for "
                    f"{x!r} (e.g. {{'{x}': '~ ... + (1 | {cluster})'}})"
                )
            if s_.level != 2:
                raise SpecificationError(
                    f"ranef({x}) is only meaningful in a level-2 variable's formula, not in "
                    f"{s_.name!r}'s"
                )


def check_categories(name: str, kind: str, cats: list, max_categories: int) -> None:
    if len(cats) <= max_categories:
        return
    model = (
        "the multinomial probit model has one latent equation per category but one, "
        "each with its own coefficients and random effects, so time grows with the "
        "categories and rare categories are poorly identified"
        if kind == "nominal"
        else "the ordered probit model has one threshold per category but one, and the "
        "thresholds of rare categories are poorly identified and mix slowly"
    )
    raise SpecificationError(
        f"{name!r} has {len(cats)} categories, more than max_categories={max_categories}: "
        f"{model}. Merge rare categories, leave the column out (exclude=[{name!r}]), or "
        f"raise the cap (max_categories={len(cats)})"
    )


def holding(s: pd.Series) -> str:
    """The dtype, and for object columns the types of the values they hold."""
    if s.dtype != object:
        return str(s.dtype)
    types = sorted({type(v).__name__ for v in s.dropna().iloc[:1000]})
    return f"object (holding {', '.join(types[:4])} values)" if types else "object"


def check_random_parts(parsed: dict[str, ParsedFormula]) -> None:
    """Every random part needs at least one term: ``(0 | g)`` asks for no random effect."""
    from formulaic import Formula

    for name, f in parsed.items():
        for block, group in f.random_terms:
            if len(Formula(block.terms)) == 0:
                bar = "|" if block.correlated else "||"
                raise FormulaError(
                    f"the random part ({block.terms} {bar} {group}) in the formula for "
                    f"{name!r} has no term: {f.text!r}. Write (1 | {group}) for a random "
                    f"intercept, (0 + x | {group}) for a random slope only, or drop the "
                    "random part for a single-level model"
                )


def check_default_size(df, name, columns, levels, kinds, n_cats, cluster, codes) -> None:
    """Refuse a default model with at least as many fixed effects as observed rows, before
    any design is built (with wide data building them is what takes the time)."""
    within, between = 1, 0  # intercept; columns varying within clusters / constant within
    level2 = levels[name] == 2
    for c in columns:
        if c == name:
            continue
        width = max(n_cats.get(c, 2) - 1, 1)
        if levels[c] == 2 or level2:
            between += width
        else:
            within += width
        if cluster is not None and levels[c] == 1 and kinds[c] in ("numeric", "binary"):
            between += 1  # its cluster mean
    observed = df[name].notna().to_numpy()
    n_obs = int(observed.sum())
    if cluster is not None:
        # on the observed rows, cluster-constant columns span at most (clusters - 1)
        # dimensions besides the intercept: the estimate stays a bound on the design's rank
        n_clusters = np.unique(codes[observed]).size
        between = min(between, max(n_clusters - 1, 0))
        if level2:
            n_obs = n_clusters
    p = within + between
    # (no observed value, or a single one, has its own error below)
    if n_obs <= p and df[name].nunique() > 1:  # DataError, as the design's own check
        raise DataError(
            f"the default model for {name!r} would have about {p} fixed effects "
            f"({len(columns) - 1} predictor columns"
            + (" and their cluster means" if cluster is not None else "")
            + f") for {n_obs} observed {'cluster' if level2 else 'row'}(s): it is saturated. "
            "Choose the predictors of the default models with include=[...] or "
            "exclude=[...], or give this variable's formula yourself"
        )


def check_level2(
    df, name, f, meth, cluster, codes, labels, levels, level=2, above=None
) -> ParsedFormula:
    """A level-2 model: constant within clusters, level-2 predictors, no random part.

    With three levels, ``level=3`` checks a model on the level-3 rows (``cluster``,
    ``codes`` and ``labels`` of the level-3 factor), and ``above`` names the level-3
    factor over which a level-2 model may have random effects."""
    if cluster is None:
        raise SpecificationError(
            f"method {meth!r} for {name!r} models cluster rows: pass cluster=... or give "
            "another variable a random part naming the cluster"
        )
    bad = varying_clusters(codes, df[name])
    if bad.size:
        shown = [labels[k].item() if hasattr(labels[k], "item") else labels[k] for k in bad[:10]]
        raise DataError(
            f"{name!r} is imputed as a level-2 variable ({meth!r}) but its observed values "
            f"vary within {bad.size} cluster(s) of {cluster!r}: {shown}"
        )
    if f.is_multilevel and (above is None or f.groups != (above,)):
        if above is not None:
            raise UnsupportedError(
                f"level-{level} variable {name!r} (imputed on one row per {cluster}) can have "
                f"random effects over {above!r} only: {f.text!r}"
            )
        raise SpecificationError(
            f"level-{level} variable {name!r} cannot have random effects over its own "
            f"clusters: {f.text!r}"
        )
    means = {v for v, _ in f.factor_means}  # cmean(x, school): a mean too
    for p in f.predictors - set(f.cmeans) - set(f.ranefs) - means:
        if levels.get(p, 1) < level and p != cluster:
            raise SpecificationError(
                f"predictor {p!r} of level-{level} variable {name!r} varies within clusters "
                f"of {cluster!r}; use cmean({p}) (its cluster mean) instead"
            )
    return f


def check_formula_columns(parsed: dict[str, ParsedFormula], defaults: frozenset = frozenset()):
    """Column names a formula cannot tell apart from something else: a column named
    ``Intercept`` (the name of the intercept in every design: formulaic merges the two),
    and a column named like a function or contrast a formula calls (``log`` next to
    ``log(x)``, ``C`` next to ``C(g)``): formulaic looks names up in the data first, so
    the call would reach the column.

    Parameters
    ----------
    parsed : dict of str to ParsedFormula
        Every formula of the imputation (and the analysis model, by its outcome).
    defaults : frozenset of str
        The variables whose formulas are default formulas (the message says how to leave
        a column out of them).

    Raises
    ------
    FormulaError
        Naming the column and the formula, asking to rename the column.
    """
    used: dict[str, str] = {}  # column -> a formula using it
    called: dict[str, str] = {}  # name a call reaches first -> the call
    for name, f in parsed.items():
        for c in sorted(f.variables):
            used.setdefault(c, name)
        for fn in validate_formula(f.text).calls:
            if fn not in _NOT_EVALUATED:
                called.setdefault(fn.split(".")[0], fn)
    if INTERCEPT in used:
        name = used[INTERCEPT]
        hint = (
            f", or leave it out of the default models (exclude=[{INTERCEPT!r}])"
            if name in defaults
            else ""
        )
        raise FormulaError(
            f"the formula for {name!r} ({parsed[name].text!r}) uses the column "
            f"{INTERCEPT!r}, the name every model gives its intercept: the column cannot be "
            f"told apart from the intercept. Rename the column (df.rename(columns="
            f"{{{INTERCEPT!r}: 'intercept_x'}})){hint}"
        )
    for c in sorted(set(used) & set(called)):
        name = used[c]
        raise FormulaError(
            f"the column {c!r} (used in the formula for {name!r}, {parsed[name].text!r}) "
            f"has the name of the function {called[c]!r} that a formula calls: in a formula "
            f"the column would hide the function. Rename the column (df.rename(columns="
            f"{{{c!r}: '{c}_'}})) and use the new name"
        )


def check_terms_on_data(df: pd.DataFrame, parsed: dict[str, ParsedFormula]) -> None:
    """``C()`` whose levels or reference level do not match the column, and ``bs()`` of an
    incomplete column, refused before any design is built.

    * ``C(x, levels=[...])``: the levels are distinct, and every observed value of ``x``
      is among them (formulaic would turn the others into missing values);
    * ``C(x, Treatment(ref))``, ``contr.treatment(ref)``, ``contr.SAS(ref)`` (also with
      ``reference=``/``base=``): the reference is among the levels (the given ones, or
      else the column's categories or observed values);
    * ``C(x, Poly(scores))``, ``contr.poly(scores)``: one score per level;
    * ``x**-k`` inside a call with ``x`` an integer or boolean column: refused (numpy
      does not raise integers to negative powers);
    * ``bs(x)``: ``x`` is complete (the spline's boundary knots come from the values the
      design is built on; an imputed value outside them has no basis).

    Raises
    ------
    FormulaError
        Naming the term, the formula and the values at fault.
    DataTypeError
        For a negative power of an integer column.
    UnsupportedError
        For ``bs()`` of an incomplete column.
    """
    for name, f in parsed.items():
        _check_negative_powers(df, name, f)
        for call in calls_of(f.text, ("C", "bs")):
            where = f"{call.text} in the formula for {name!r} ({f.text!r})"
            if call.function == "bs":
                incomplete = sorted(c for c in call.columns if c in df and df[c].isna().any())
                if incomplete:
                    raise UnsupportedError(
                        f"{where}: {incomplete[0]!r} has missing values. A spline's boundary "
                        "knots are fixed from the values the design is built on, and imputed "
                        "values outside them have no basis; use bs() of a complete column, "
                        f"or poly({incomplete[0]}, 3) for a smooth term of an incomplete one"
                    )
                continue
            column = call.arguments[0].strip("`") if call.arguments else None
            if column not in df:
                continue
            _check_levels(df[column], column, call, where)


def _check_negative_powers(df: pd.DataFrame, name: str, f: ParsedFormula) -> None:
    """``I(i**-1)`` of an integer column: numpy does not raise integers to negative
    powers (its error would surface from inside formulaic)."""
    for power, base in validate_formula(f.text).negative_powers:
        column = base.strip("()` ")
        if column not in df or base.strip("() ") not in (column, f"`{column}`"):
            continue  # not a single column (an expression: its values are not read here)
        dtype = df[column].dtype
        if pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            raise DataTypeError(
                f"{power} in the formula for {name!r} ({f.text!r}): {column!r} holds "
                f"integers ({dtype}), which numpy does not raise to negative powers; write "
                f"the exponent as a decimal number ({base}**-1.0) or the term as a division "
                f"(I(1 / {base}))"
            )


def _check_levels(col: pd.Series, column: str, call, where: str) -> None:
    """:func:`check_terms_on_data` for one ``C()`` call."""
    seen = list(pd.unique(col.dropna()))
    levels = call.literal("levels")
    if levels is not None:
        dup = [v for k, v in enumerate(levels) if v in levels[:k]]
        if dup:
            raise FormulaError(f"{where}: the level {dup[0]!r} is given twice in levels=")
        outside = [_plain(v) for v in seen if v not in levels]
        if outside:
            raise FormulaError(
                f"{where}: the observed value(s) {sorted(outside, key=str)[:10]} of "
                f"{column!r} are not among the given levels {levels} (would become missing); "
                "list every value, written as in the data (numbers unquoted for a numeric "
                "column)"
            )
    text = dict(call.keywords).get("contrasts") or (
        call.arguments[1] if len(call.arguments) > 1 else None
    )
    if text is None:
        return
    known = levels if levels is not None else (categories(col) or seen)
    for scores_call in calls_of(text, _SCORES):
        scores = scores_call.literal("scores", 0)
        if scores_call.text == text.strip() and scores is not None:
            if len(scores) != len(known):
                raise FormulaError(
                    f"{where}: {len(scores)} scores for the {len(known)} levels of "
                    f"{column!r}; give one score per level"
                )
    for ref_call in calls_of(text, tuple(_REFERENCE)):
        if ref_call.text != text.strip():
            continue
        ref = ref_call.literal(_REFERENCE[ref_call.function], 0)
        if ref is None:
            continue
        if ref not in list(known):
            shown = sorted((_plain(v) for v in known), key=str)[:10]
            raise FormulaError(
                f"{where}: the reference level {ref!r} is not a level of {column!r} "
                f"(levels: {shown}); write it as in the data (numbers unquoted for a "
                "numeric column)"
            )


def _plain(v):
    """A numpy scalar as the Python value (for messages)."""
    return v.item() if hasattr(v, "item") else v


def check_cluster_means(df: pd.DataFrame, parsed: ParsedFormula) -> None:
    """``cmean(x)`` in an analysis formula (``model=``, ``imp.fit()``) of a numeric or
    boolean column: the mean of each cluster's values (a ``True`` counts as 1).

    Raises
    ------
    DataTypeError
        Naming the term, the formula and the column's dtype.
    """
    means = [(c, cmean_column(c)) for c in parsed.cmeans]
    means += [(c, cmean_column(c, g)) for c, g in parsed.factor_means]
    for c, term in means:
        if c in df and not pd.api.types.is_numeric_dtype(df[c].dtype):
            raise DataTypeError(
                f"{term} in {parsed.text!r}: {c!r} is {holding(df[c])}; a cluster mean needs "
                "a numeric or boolean column (code a two-category column as 0/1 first)"
            )
