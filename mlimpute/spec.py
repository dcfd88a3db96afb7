"""The imputation specification: validated once, at the boundary.

:func:`build_spec` checks a DataFrame against the user's formulas and options and returns a
frozen :class:`ImputationSpec`; everything after it (design, engine) trusts its input.
Errors name the column, formula token or cluster at fault.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .errors import (
    DataError,
    DataTypeError,
    MlimputeWarning,
    SpecificationError,
    UnsupportedError,
)
from .codec import column_kind
from .formula import ParsedFormula, parse_formula
from .models import get_model

__all__ = ["ImputationSpec", "VariableSpec", "build_spec", "column_kind", "DEFAULT_METHODS"]

#: Default model per kind of variable: (multilevel formula, single-level formula).
DEFAULT_METHODS = {
    "numeric": ("2l.norm", "norm"),
    "binary": ("2l.bin", "bin"),
    "ordinal": ("2l.ordinal", "ordinal"),
    "nominal": ("2l.nominal", "nominal"),
}


@dataclass(frozen=True)
class VariableSpec:
    """How one incomplete variable is imputed."""

    name: str
    formula: ParsedFormula
    method: str

    def __str__(self) -> str:
        return f"{self.name}: {self.formula} [{self.method}]"


@dataclass(frozen=True)
class ImputationSpec:
    """A validated imputation specification.

    Attributes
    ----------
    variables : tuple of VariableSpec
        In visit order.
    cluster : str or None
        The grouping factor shared by the multilevel models.
    m, iterations : int
    seed : int or None
        Root entropy that reproduces the run (``rng=seed``), when known.
    events : tuple of str
        Non-fatal decisions taken while validating (unused formulas...).
    """

    variables: tuple[VariableSpec, ...]
    cluster: str | None
    m: int
    iterations: int
    seed: int | None = None
    events: tuple[str, ...] = field(default=())

    @property
    def formulas(self) -> dict[str, str]:
        """``{variable: formula}`` in the syntax a user writes."""
        return {v.name: "~ " + str(v.formula).split("~", 1)[1].strip() for v in self.variables}

    @property
    def methods(self) -> dict[str, str]:
        return {v.name: v.method for v in self.variables}

    @property
    def visit(self) -> list[str]:
        return [v.name for v in self.variables]

    def to_toml(self, **extras) -> str:
        """TOML of what was run; see :func:`mlimpute.specfile.spec_to_toml`."""
        from .specfile import spec_to_toml

        return spec_to_toml(self, **extras)

    def __repr__(self) -> str:
        lines = [f"ImputationSpec(m={self.m}, iterations={self.iterations}, "
                 f"cluster={self.cluster!r}, seed={self.seed})"]
        lines += [f"  {v}" for v in self.variables]
        return "\n".join(lines)


def _check_frame(df: pd.DataFrame) -> None:
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"expected a pandas DataFrame, got {type(df).__name__}")
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise DataError(f"the DataFrame is empty (shape {df.shape})")
    dup = df.columns[df.columns.duplicated()].unique().tolist()
    if dup:
        raise DataError(f"duplicated column names: {dup}; rename them before imputing")
    bad = [c for c in df.columns if not isinstance(c, str)]
    if bad:
        raise DataError(f"column names must be strings, got {bad[:5]}")


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise SpecificationError(f"{name} must be an integer ≥ 1, got {value!r}")
    return int(value)


def _parse_all(formulas) -> dict[str, ParsedFormula]:
    if isinstance(formulas, str):
        formulas = [formulas]
    if isinstance(formulas, Mapping):
        items = []
        for key, text in formulas.items():
            if not isinstance(key, str):
                raise SpecificationError(f"formula keys must be column names, got {key!r}")
            items.append(parse_formula(text, key))
    elif isinstance(formulas, Sequence):
        items = [parse_formula(t) for t in formulas]
        for f in items:
            if f.response is None:
                raise SpecificationError(
                    f"formula {f.text!r} has no response; write 'y ~ ...' or use a dict"
                )
    else:
        raise SpecificationError(
            "formulas must be a dict {column: formula} or a list of 'y ~ ...' strings, "
            f"got {type(formulas).__name__}"
        )
    out: dict[str, ParsedFormula] = {}
    for f in items:
        if f.response in out:
            raise SpecificationError(f"two formulas for {f.response!r}")
        out[f.response] = f
    return out


def build_spec(
    df: pd.DataFrame,
    formulas,
    *,
    m: int = 5,
    iterations: int = 20,
    method: Mapping[str, str] | None = None,
    visit: Sequence[str] | None = None,
    seed: int | None = None,
) -> ImputationSpec:
    """Validate formulas and options against ``df``; return an :class:`ImputationSpec`.

    Examples
    --------
    >>> from mlimpute.datasets import classroom
    >>> df = classroom(1, rng=1).incomplete
    >>> build_spec(df, {"grade": "~ skill + (1 | class)"}).methods
    {'grade': '2l.norm'}
    """
    _check_frame(df)
    m = _positive_int(m, "m")
    iterations = _positive_int(iterations, "iterations")
    parsed = _parse_all(formulas if formulas is not None else {})
    method = dict(method or {})
    events: list[str] = []

    columns = set(df.columns)
    for name, f in parsed.items():
        unknown = sorted(f.variables - columns)
        if unknown:
            raise SpecificationError(
                f"formula for {name!r} refers to unknown column(s) {unknown}: {f.text!r}"
            )
    for name in method:
        if name not in parsed:
            raise SpecificationError(f"method given for {name!r}, which has no formula")

    groups = {f.group for f in parsed.values() if f.group is not None}
    if len(groups) > 1:
        raise UnsupportedError(
            f"the formulas use different grouping factors {sorted(groups)}; only two-level "
            "models with one grouping factor are supported (three-level models are not "
            "supported yet)"
        )
    cluster = groups.pop() if groups else None
    if cluster is not None and df[cluster].isna().any():
        rows = df.index[df[cluster].isna()][:5].tolist()
        raise DataError(
            f"cluster column {cluster!r} has {int(df[cluster].isna().sum())} missing value(s) "
            f"(e.g. at index {rows}); drop or fill those rows first"
        )

    missing = df.isna().sum()
    incomplete = [c for c in df.columns if missing[c] > 0]
    no_formula = [c for c in incomplete if c not in parsed]
    if no_formula:
        raise SpecificationError(
            f"incomplete column(s) {no_formula} have no imputation formula; give each a "
            "formula, or select the columns to impute (df[cols].mi.impute(...))"
        )

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

    specs = []
    for name, f in parsed.items():
        if missing[name] == 0:
            events.append(f"{name}: has no missing values; its formula is not used")
            continue
        if missing[name] == len(df):
            raise DataError(f"column {name!r} has no observed value; it cannot be imputed")
        kind = column_kind(df[name])
        if kind == "other":
            raise DataTypeError(f"column {name!r} has dtype {df[name].dtype}, which cannot be "
                                "imputed (numeric, bool and categorical columns can)")
        meth = method.get(name, DEFAULT_METHODS[kind][0 if f.is_multilevel else 1])
        info = get_model(meth)
        if kind not in info.kinds:
            raise DataTypeError(
                f"column {name!r} is {kind} (dtype {df[name].dtype}); method {meth!r} imputes "
                f"{'/'.join(info.kinds)} variables"
            )
        if info.multilevel and not f.is_multilevel:
            raise SpecificationError(
                f"method {meth!r} for {name!r} needs a random part such as '(1 | cluster)' in "
                f"its formula {f.text!r}"
            )
        if not info.multilevel and f.is_multilevel:
            events.append(f"{name}: method {meth!r} is single-level; random part ignored")
            f = f.drop_random()
        for p in f.predictors:
            if column_kind(df[p]) == "other":
                raise DataTypeError(f"predictor {p!r} of {name!r} has unsupported dtype "
                                    f"{df[p].dtype}")
        for c in f.cmeans:
            if column_kind(df[c]) not in ("numeric", "binary"):
                raise DataTypeError(
                    f"cmean({c}) in the formula for {name!r}: {c!r} is "
                    f"{column_kind(df[c])}; cluster means need a numeric or binary column"
                )
        specs.append(VariableSpec(name, f, meth))

    if visit is not None:
        visit = list(visit)
        names = [s.name for s in specs]
        if sorted(visit) != sorted(names):
            raise SpecificationError(
                f"visit must list each imputed variable once: expected {names}, got {visit}"
            )
        specs = [next(s for s in specs if s.name == v) for v in visit]
    if not specs:
        warnings.warn("nothing to impute: no variable with a formula has missing values; "
                      "the m completed data sets are copies of the data", MlimputeWarning,
                      stacklevel=3)
    return ImputationSpec(tuple(specs), cluster, m, iterations, seed, tuple(events))
