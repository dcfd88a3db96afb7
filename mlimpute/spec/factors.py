"""Grouping factors of a specification: the cluster column(s) given by ``cluster=`` or by
the formulas' random parts, their nesting found in the data, and what several factors do
not support yet (:func:`mlimpute.spec.build.build_spec` calls these)."""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mlimpute.codec import column_kind, sorted_codes
from mlimpute.errors import DataError, MlimputeWarning, SpecificationError, UnsupportedError
from mlimpute.spec.defaults import factor_codes, is_level2
from mlimpute.spec.formula import ParsedFormula, factor_columns

#: a grouping factor: column names (any characters but ':' and '`', or in backquotes)
#: joined by ':', none empty
_FACTOR = re.compile(r"(?:`[^`]+`|[^`:]+)(?::(?:`[^`]+`|[^`:]+))*")

if TYPE_CHECKING:
    from mlimpute.spec.build import VariableSpec


@dataclass(frozen=True)
class _Columns:
    """What the validators know of the data's columns once the cluster is resolved."""

    df: pd.DataFrame
    cluster: str | None
    codes: np.ndarray | None  # cluster code per row
    labels: pd.Index | None  # cluster label per code
    kinds: dict[str, str]  # column_kind of every column
    levels: dict[str, int]  # 2: constant within clusters; 3: within the next level up
    missing: pd.Series  # missing values per column
    factors: tuple[str, ...] = ()  # grouping factors besides cluster
    hierarchy: tuple[str, ...] = ()  # nested levels, outermost first, cluster last
    structure: tuple[str, ...] = ()  # nesting found in the data, for repr
    outer_codes: np.ndarray | None = None  # codes of hierarchy[0] (three levels)
    outer_labels: pd.Index | None = None
    crossed: tuple[str, ...] = ()  # factors neither containing the cluster nor nested in it
    #: factors containing the cluster that are not a level (a fourth level: district)
    beyond: tuple[str, ...] = ()

    @property
    def cluster_columns(self) -> set[str]:
        """The data columns of every grouping factor."""
        if self.cluster is None:
            return set()
        return {c for g in (self.cluster, *self.factors) for c in factor_columns(g)}

    @property
    def classify_as(self) -> str | list[str] | None:
        """``cluster`` as :func:`~mlimpute.spec.defaults.classify_columns` takes it."""
        if self.hierarchy:
            cols = [*factor_columns(self.hierarchy[0]), *factor_columns(self.hierarchy[-1])]
            return list(dict.fromkeys(cols))
        if self.cluster is not None and len(factor_columns(self.cluster)) > 1:
            return list(factor_columns(self.cluster))
        return self.cluster


def _resolve_cluster(
    df: pd.DataFrame, parsed: dict[str, ParsedFormula], cluster: str | Sequence[str] | None
) -> _Columns:
    """The grouping factor(s) (from ``cluster=`` and the random parts), complete, and what
    follows from them: cluster codes, column kinds and levels."""
    if isinstance(cluster, (list, tuple)):
        if len(cluster) > 1:
            return _resolve_factors(df, parsed, tuple(cluster))
        cluster = cluster[0]
    factors = {g for f in parsed.values() for g in f.groups} | ({cluster} if cluster else set())
    if len(factors) > 1 or any(f.several_groups for f in parsed.values()):
        return _resolve_factors(df, parsed, None, cluster)
    groups = {f.group for f in parsed.values() if f.group is not None}
    if cluster is not None:
        if cluster not in df.columns:
            raise SpecificationError(f"cluster column {cluster!r} is not in the data")
        groups.add(cluster)
    if len(groups) > 1:
        raise UnsupportedError(
            f"the formulas use different grouping factors {sorted(groups)}; only two-level "
            "models with one grouping factor are supported (three-level models are not "
            "supported yet)"
        )
    cluster = groups.pop() if groups else None
    codes = labels = None
    if cluster is not None:
        if df[cluster].isna().any():
            rows = df.index[df[cluster].isna()][:5].tolist()
            raise DataError(
                f"cluster column {cluster!r} has {int(df[cluster].isna().sum())} missing "
                f"value(s) (e.g. at index {rows}); drop or fill those rows first"
            )
        codes, labels = sorted_codes(df[cluster])
    kinds = {c: column_kind(df[c]) for c in df.columns}
    levels = {
        c: (2 if codes is not None and kinds[c] != "other" and is_level2(codes, df[c]) else 1)
        for c in df.columns
        if c != cluster
    }
    if cluster is not None:  # constant within its own clusters: level 2 if one has two rows
        levels[cluster] = 2 if kinds[cluster] != "other" and len(codes) > len(labels) else 1
        levels = {c: levels[c] for c in df.columns}  # in the columns' order
    return _Columns(df, cluster, codes, labels, kinds, levels, df.isna().sum())


def _complete_factor(df: pd.DataFrame, factor: str) -> None:
    """Every column of a grouping factor is in the data and complete; no column name is
    empty (``":b"``, ``"a:"``)."""
    if not isinstance(factor, str) or not _FACTOR.fullmatch(factor):
        raise SpecificationError(
            f"grouping factor {factor!r}: write a column name, or column names joined by "
            "':' (school:class); a name with ':' in backquotes"
        )
    for c in factor_columns(factor):
        if c not in df.columns:
            raise SpecificationError(f"cluster column {c!r} is not in the data")
        if df[c].isna().any():
            rows = df.index[df[c].isna()][:5].tolist()
            raise DataError(
                f"cluster column {c!r} has {int(df[c].isna().sum())} missing "
                f"value(s) (e.g. at index {rows}); drop or fill those rows first"
            )


def _resolve_factors(
    df: pd.DataFrame,
    parsed: dict[str, ParsedFormula],
    hierarchy: tuple[str, ...] | None,
    cluster: str | None = None,
) -> _Columns:
    """Several grouping factors: ``cluster=[outer, inner]`` (nested levels, outermost
    first) and/or the random terms of the formulas. The primary factor is the innermost
    level (with ``cluster=[...]``) or the factor with the most clusters; nesting is found
    in the data: class ids that repeat across schools make the class factor
    ``school:class``."""
    structure: list[str] = []
    levels_f: tuple[str, ...] = ()
    formula_factors = list(dict.fromkeys(g for f in parsed.values() for g in f.groups))
    for g in [*(hierarchy or ()), *([cluster] if cluster else []), *formula_factors]:
        _complete_factor(df, g)
    if hierarchy is not None:
        if len(hierarchy) > 2:
            raise UnsupportedError(
                f"cluster={list(hierarchy)}: more than three levels (a fourth level) are not "
                "supported yet; give the outermost two levels of the nesting as cluster=..."
            )
        levels_f, line = _nested_levels(df, hierarchy)
        _check_not_crossed(hierarchy, levels_f, formula_factors)
        structure.append(line)
        primary = levels_f[1]
    else:
        candidates = list(dict.fromkeys([*([cluster] if cluster else []), *formula_factors]))
        sizes = {g: factor_codes(df, g)[1].size for g in candidates}
        primary = max(candidates, key=lambda g: sizes[g])
        _check_cluster_kept(cluster, primary, formula_factors, sizes)
        outer = _containing_factor(df, primary, candidates, sizes)
        if outer is not None:  # (1 | school/class): the levels cluster=[school, class] gives
            levels_f, line = _formula_levels(df, outer, primary)
            structure.append(line)
    others = [g for g in dict.fromkeys([*levels_f, *formula_factors]) if g != primary]
    codes, labels = factor_codes(df, primary)
    crossed: list[str] = []
    beyond: list[str] = []
    for g in others:
        if g in levels_f:
            continue
        gc, _ = factor_codes(df, g)
        pairs = pd.DataFrame({"p": codes, "g": gc}).drop_duplicates()
        if len(pairs) == labels.size:
            structure.append(f"{primary} nested in {g} (found in the data)")
            if not levels_f or not _same_clusters(df, g, levels_f[0]):
                beyond.append(g)
        elif len(pairs) == int(gc.max()) + 1:
            structure.append(f"{g} nested in {primary} (found in the data)")
        else:
            crossed.append(g)
            structure.append(
                f"{g} crossed with {primary} (neither is nested in the other; if {g} ids are "
                f"numbered within each {primary}, write (1 | {primary}/{g}))"
            )
    kinds = {c: column_kind(df[c]) for c in df.columns}
    outer_codes = outer_labels = None
    if levels_f:
        outer_codes, outer_labels = factor_codes(df, levels_f[0])
    levels = {}
    for c in df.columns:
        lvl = 1
        if kinds[c] != "other" and is_level2(codes, df[c]):
            lvl = 2
            if outer_codes is not None and is_level2(outer_codes, df[c]):
                lvl = 3
        levels[c] = lvl
    return _Columns(
        df,
        primary,
        codes,
        labels,
        kinds,
        levels,
        df.isna().sum(),
        tuple(others),
        levels_f,
        tuple(structure),
        outer_codes,
        outer_labels,
        tuple(crossed),
        tuple(beyond),
    )


def _same_clusters(df: pd.DataFrame, a: str, b: str) -> bool:
    """Whether grouping factors ``a`` and ``b`` make the same clusters of the rows."""
    ac, al = factor_codes(df, a)
    bc, bl = factor_codes(df, b)
    if al.size != bl.size:
        return False
    return len(pd.DataFrame({"a": ac, "b": bc}).drop_duplicates()) == al.size


def _nested_levels(df: pd.DataFrame, hierarchy: tuple[str, ...]) -> tuple[tuple[str, str], str]:
    """``cluster=[outer, inner]``: the levels' grouping factors (``inner`` becomes
    ``outer:inner`` where its ids repeat across the outer clusters) and the structure
    line saying so."""
    outer, inner = hierarchy
    oc, _ = factor_codes(df, outer)
    ic, _ = factor_codes(df, inner)
    per_inner = pd.Series(oc).groupby(ic).nunique()
    if pd.Series(ic).groupby(oc).nunique().max() <= 1:
        raise SpecificationError(
            f"cluster={list(hierarchy)}: {inner!r} is constant within {outer!r}; list "
            "the levels outermost first (e.g. cluster=['school', 'class'])"
        )
    n_outer = int(oc.max()) + 1
    if per_inner.max() <= 1:
        return (outer, inner), (
            f"{inner} nested in {outer}: every {inner} lies in one {outer} "
            f"({per_inner.size} clusters of {inner!r} in {n_outer} of {outer!r})"
        )
    inner_f = f"{_quote_factor(outer)}:{_quote_factor(inner)}"
    n_inner = factor_codes(df, inner_f)[1].size
    _warn_if_reversed(df, hierarchy, oc, ic)
    return (outer, inner_f), (
        f"{inner} ids repeat across {_plural(outer)}: the {inner} level is {inner_f} "
        f"({n_inner} clusters of {inner_f!r} in {n_outer} of {outer!r})"
    )


def _check_not_crossed(
    hierarchy: tuple[str, ...], levels_f: tuple[str, ...], formula_factors: list[str]
) -> None:
    """``cluster=[outer, inner]`` whose inner ids repeat across the outer clusters (the
    level is ``outer:inner``) while a formula groups by ``inner`` on its own, ``(1 |
    inner)``: an inner id names one cluster across the outer ones, so the two factors are
    crossed, not nested. Refused, saying what to write (sorted by the inner factor first,
    the rows would not keep each outer cluster together)."""
    outer, inner = hierarchy
    if levels_f[1] == inner or inner not in formula_factors:
        return
    raise SpecificationError(
        f"cluster={list(hierarchy)} says {inner!r} is nested in {outer!r}, but the {inner!r} "
        f"ids repeat across the {outer!r} clusters and the formulas group by {inner!r} on "
        f"its own ((1 | {inner})): {outer!r} and {inner!r} are crossed, not nested. For "
        f"crossed factors leave out cluster= and write the random terms (1 | {outer}) + "
        f"(1 | {inner}) + (1 | {levels_f[1]}); if the {inner!r} ids are numbered within "
        f"each {outer!r}, write (1 | {outer}/{inner}) instead of (1 | {inner})"
    )


def _plural(noun: str) -> str:
    """``schools``, ``classes``, ``cities``: a grouping factor's name in the plural."""
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return f"{noun}es"
    if len(noun) > 1 and noun.endswith("y") and noun[-2] not in "aeiou":
        return f"{noun[:-1]}ies"
    return f"{noun}s"


def _containing_factor(
    df: pd.DataFrame, primary: str, candidates: list[str], sizes: dict[str, int]
) -> str | None:
    """The one grouping factor of the formulas with fewer clusters than ``primary`` that
    contains each of its clusters (``school`` beside ``school:class``), found in the data;
    None where there is none, or more than one (four levels are not detected)."""
    codes, labels = factor_codes(df, primary)
    found = []
    for g in candidates:
        if g == primary or sizes[g] >= labels.size:
            continue
        gc, _ = factor_codes(df, g)
        if len(pd.DataFrame({"p": codes, "g": gc}).drop_duplicates()) == labels.size:
            found.append(g)
    return found[0] if len(found) == 1 else None


def _formula_levels(df: pd.DataFrame, outer: str, primary: str) -> tuple[tuple[str, str], str]:
    """The formulas' nested factors (``(1 | school/class)``) as the levels of
    ``cluster=[outer, inner]``, the innermost factor kept as the formulas write it."""
    cols, outer_cols = factor_columns(primary), factor_columns(outer)
    if len(cols) == len(outer_cols) + 1 and cols[:-1] == outer_cols:
        levels_f, line = _nested_levels(df, (outer, cols[-1]))  # school:class
        if levels_f[1] == primary:
            return levels_f, line
    return _nested_levels(df, (outer, primary))


def _warn_if_reversed(
    df: pd.DataFrame, hierarchy: tuple[str, ...], oc: np.ndarray, ic: np.ndarray
) -> None:
    """``cluster=[outer, inner]`` whose inner ids repeat across the outer clusters: the ids
    cannot tell which level is outer (class 1 in every school, or school 1 in every
    class). Warned where a column is constant within each inner id across the outer
    clusters and varies within the outer ones, as a column of the outer level would be
    were the order reversed."""
    outer, inner = hierarchy
    factors = set(factor_columns(outer)) | set(factor_columns(inner))
    suspects = [
        c
        for c in df.columns
        if c not in factors
        and column_kind(df[c]) != "other"
        and is_level2(ic, df[c])
        and not is_level2(oc, df[c])
    ]
    if suspects:
        warnings.warn(
            f"cluster={list(hierarchy)}: the {inner!r} ids repeat across the {outer!r} "
            f"clusters, so the level below {outer!r} is {outer}:{inner}; but "
            f"{suspects[:5]} are constant within each {inner!r} id across {outer!r} "
            f"clusters, as columns of the outer level would be. If {inner!r} is the outer "
            f"level, give cluster=[{inner!r}, {outer!r}]",
            MlimputeWarning,
            stacklevel=2,
        )


def _check_cluster_kept(
    cluster: str | None, primary: str, formula_factors: list[str], sizes: dict[str, int]
) -> None:
    """``cluster=`` names one grouping factor: refused where the formulas' random parts
    group by a factor with more clusters and none of them uses the one given (it would
    play no part: neither the models' clusters nor a level of their random effects)."""
    if cluster is None or cluster == primary or cluster in formula_factors:
        return
    if any(cluster in factor_columns(g) for g in formula_factors):
        return  # a part of a factor the formulas use, e.g. class in (1 | school/class)
    raise SpecificationError(
        f"cluster={cluster!r}, but the formulas' random parts group by {primary!r} "
        f"({sizes[primary]} clusters against {sizes[cluster]} of {cluster!r}) and none "
        f"groups by {cluster!r}: the clusters are the innermost grouping factor. Give "
        f"cluster={primary!r}, or cluster=[{cluster!r}, {primary!r}] (outermost first) for "
        f"three levels, or add a random term such as (1 | {cluster}) to the formulas"
    )


def _quote_factor(column: str) -> str:
    return f"`{column}`" if (":" in column or "`" in column) else column


def _check_several_factors(
    cols: _Columns, specs: list[VariableSpec], kept_sd: tuple[tuple[str, float], ...]
) -> None:
    """What several grouping factors do not support yet, refused naming the feature."""
    factors = [cols.cluster, *cols.factors]
    if kept_sd:
        raise UnsupportedError(
            f"delta_cluster_sd with several grouping factors {factors} is not supported yet"
        )
    _check_crossed_levels(cols, specs)
    for s_ in specs:
        if s_.formula.ranefs:
            raise UnsupportedError(
                f"ranef() in the formula for {s_.name!r} with several grouping factors "
                f"{factors} is not supported yet"
            )


def _check_crossed_levels(cols: _Columns, specs: list[VariableSpec]) -> None:
    """An incomplete variable constant within a crossed factor (an item-level covariate of
    pupils crossed with items) would be imputed row by row, its imputations varying within
    the factor's clusters: refused, naming the variable and the factor. Constant means
    what :func:`~mlimpute.spec.defaults.is_level2` finds, seen in two clusters with two
    observed rows or more (a variable observed once per cluster is not taken as one)."""
    factors = [(g, "crossed") for g in cols.crossed] + [(g, "beyond") for g in cols.beyond]
    for g, how in factors:
        gc, _ = factor_codes(cols.df, g)
        for s_ in specs:
            col = cols.df[s_.name]
            if cols.missing[s_.name] == 0 or cols.kinds[s_.name] == "other":
                continue
            if not is_level2(gc, col):
                continue
            per_cluster = np.bincount(gc[col.notna().to_numpy()])
            if (per_cluster >= 2).sum() < 2:
                continue
            if how == "beyond":
                raise UnsupportedError(
                    f"{s_.name!r} is constant within {g!r}, a grouping factor containing "
                    f"{cols.cluster!r} beyond the levels imputed "
                    f"({', '.join(cols.hierarchy) or cols.cluster}): its imputations would "
                    f"vary within {g!r}; a fourth level is not supported yet. Impute it in a "
                    f"separate run on one row per {g}, or leave it out of the imputation"
                )
            raise UnsupportedError(
                f"{s_.name!r} is constant within {g!r}, a grouping factor crossed with "
                f"{cols.cluster!r}: imputed row by row, its imputations would vary within "
                f"{g!r}; variables constant within a crossed factor are not supported yet. "
                f"Impute it in a separate run on one row per {g} (with its predictors' "
                f"means per {g}), or leave it out of the imputation"
            )
