"""Levels of variables and the default imputation model.

With ``df.mi.impute(cluster="class")`` and no formula for a variable, mlimpute imputes it
from all other analysis variables: a level-1 variable with a random intercept and the
cluster means of its level-1 predictors (without them the within- and between-cluster
regressions are forced to be equal, which biases within-cluster slopes: Enders, Mistler &
Keller 2016; Grund, Lüdtke & Robitzsch 2018), a level-2 variable on the cluster rows from
the other level-2 variables and the cluster means of the level-1 variables. The model
follows the variable's kind (:data:`DEFAULT_MODELS`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .codec import column_kind
from .formula import _quote

__all__ = ["DEFAULT_MODELS", "default_method", "varying_clusters", "is_level2",
           "analysis_columns", "default_formula"]

#: Default model by ``(kind, level)``; level 0 = no cluster structure.
DEFAULT_MODELS: dict[tuple[str, int], str] = {
    ("numeric", 0): "norm",
    ("binary", 0): "bin",
    ("ordinal", 0): "ordinal",
    ("nominal", 0): "nominal",
    ("numeric", 1): "2l.norm",
    ("binary", 1): "2l.bin",
    ("ordinal", 1): "2l.ordinal",
    ("nominal", 1): "2l.nominal",
    ("numeric", 2): "2lonly.norm",
    ("binary", 2): "2lonly.bin",
    ("ordinal", 2): "2lonly.ordinal",
    ("nominal", 2): "2lonly.nominal",
}


def default_method(kind: str, level: int) -> str | None:
    """The default model name for a variable of ``kind`` at ``level`` (0: no clusters)."""
    return DEFAULT_MODELS.get((kind, level))


def varying_clusters(codes: np.ndarray, values: pd.Series) -> np.ndarray:
    """Codes of the clusters in which the observed values of ``values`` are not constant."""
    vcodes, _ = pd.factorize(values, use_na_sentinel=True)
    keep = vcodes >= 0
    g, v = codes[keep], vcodes[keep]
    if g.size == 0:
        return np.zeros(0, dtype=np.intp)
    J = int(codes.max()) + 1
    lo = np.full(J, np.iinfo(np.int64).max)
    hi = np.full(J, -1)
    np.minimum.at(lo, g, v)
    np.maximum.at(hi, g, v)
    return np.flatnonzero((hi >= 0) & (hi != lo))


def is_level2(codes: np.ndarray, values: pd.Series) -> bool:
    """Level 2: observed values constant within every cluster, and some cluster has two."""
    observed = values.notna().to_numpy()
    if not observed.any():
        return False
    if np.bincount(codes[observed]).max() < 2:
        return False
    return varying_clusters(codes, values).size == 0


def analysis_columns(df: pd.DataFrame, cluster: str | None, include: Sequence[str] | None,
                     exclude: Sequence[str] | None) -> tuple[list[str], list[str]]:
    """Columns the defaults use, and the ones left out automatically (with reasons)."""
    cols = list(include) if include is not None else list(df.columns)
    cols = [c for c in cols if c not in set(exclude or ()) and c != cluster]
    left_out = []
    keep = []
    for c in cols:
        s = df[c]
        kind = column_kind(s)
        if kind == "other":
            left_out.append(f"{c!r} (dtype {s.dtype} cannot be modelled)")
        elif (kind in ("nominal", "numeric") and len(df) > 2 and s.notna().all()
              and s.nunique() == len(df)
              and not pd.api.types.is_float_dtype(s.dtype)):
            left_out.append(f"{c!r} (looks like an identifier: unique in every row)")
        else:
            keep.append(c)
    return keep, left_out


def default_formula(name: str, columns: Sequence[str], levels: dict[str, int],
                    kinds: dict[str, str], cluster: str | None) -> str:
    """The default formula for ``name`` given the analysis columns and their levels.

    Examples
    --------
    >>> default_formula("grade", ["grade", "skill", "iq"], {"grade": 1, "skill": 2, "iq": 1},
    ...                 {"grade": "numeric", "skill": "numeric", "iq": "numeric"}, "class")
    '~ skill + iq + cmean(iq) + (1 | class)'
    """
    others = [c for c in columns if c != name]
    terms = []
    if cluster is None:
        terms = [_quote(c) for c in others]
        return "~ " + (" + ".join(terms) if terms else "1")
    lvl = levels[name]
    for c in others:
        level1 = levels[c] == 1
        numeric = kinds[c] in ("numeric", "binary")
        if lvl == 2:
            if not level1:
                terms.append(_quote(c))
            elif numeric:
                terms.append(f"cmean({_quote(c)})")
        else:
            terms.append(_quote(c))
            if level1 and numeric:
                terms.append(f"cmean({_quote(c)})")
    rhs = " + ".join(terms) if terms else "1"
    if lvl == 1:
        rhs += f" + (1 | {_quote(cluster)})"
    return "~ " + rhs
