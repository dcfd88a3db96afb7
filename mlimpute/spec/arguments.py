"""The arguments of an imputation, checked for type and form before any data are read.

Each function takes one argument of :func:`mlimpute.impute` (``formulas``, ``method=``,
``include=``/``exclude=``, ``cluster=``, ``heteroscedastic=``, ``m``...) as the user gave it
and returns it in the one form :func:`mlimpute.spec.build.build_spec` works with, or raises
a :class:`~mlimpute.errors.SpecificationError` naming the argument and what it expects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlimpute.errors import DataError, SpecificationError
from mlimpute.spec.formula import ParsedFormula, parse_formula

__all__ = [
    "MAX_CATEGORIES",
    "RESERVED_NAMES",
    "check_cluster_argument",
    "check_delta",
    "check_frame",
    "check_heteroscedastic",
    "check_method",
    "check_names",
    "column_list",
    "describe_value",
    "is_real_number",
    "method_argument",
    "parse_all",
    "positive_int",
]


def check_frame(df: pd.DataFrame) -> None:
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


def positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise SpecificationError(f"{name} must be an integer ≥ 1, got {value!r}")
    return int(value)


#: Names the result uses for its own dimensions and traces (see
#: :class:`mlimpute.MultiplyImputed`): an imputed column cannot have one of them.
RESERVED_NAMES = frozenset({"imputation", "iteration", "variable", "mean", "sd"})
#: Suffixes of the per-variable entries of the result (``"y:row"``, ``"y:params"``...).
_RESERVED_SUFFIXES = (":row", ":params", ":param")

#: Default cap on the categories of an imputed nominal variable (``max_categories=``).
MAX_CATEGORIES = 50


def is_real_number(value) -> bool:
    """Whether ``value`` is a real number: a Python or numpy int or float, not a bool.

    Examples
    --------
    >>> import numpy as np
    >>> is_real_number(0.3), is_real_number(np.float32(0.3)), is_real_number(np.int64(2))
    (True, True, True)
    >>> is_real_number(True), is_real_number(np.bool_(True)), is_real_number("0.3")
    (False, False, False)
    """
    return not isinstance(value, (bool, np.bool_)) and isinstance(
        value, (int, float, np.integer, np.floating)
    )


def describe_value(value) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def column_list(value, name: str) -> list[str] | None:
    """A list of column names from ``value``: None, one name (a lone string, as in
    ``df.drop(columns="x")``) or a list, tuple, array or Index of names."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, (Mapping, set, frozenset)) or not isinstance(
        value, (Sequence, pd.Index, np.ndarray, pd.Series)
    ):
        why = " (a set has no fixed order)" if isinstance(value, (set, frozenset)) else ""
        raise SpecificationError(
            f"{name} must be a column name or a list of column names{why}, "
            f"got {describe_value(value)}"
        )
    out = list(value)
    bad = [v for v in out if not isinstance(v, str)]
    if bad:
        raise SpecificationError(
            f"{name} must list column names (strings), got {bad[:5]} in {describe_value(value)}"
        )
    return out


def check_method(method: object) -> dict[str, tuple[str, dict[str, Any]]]:
    """``method=`` as ``{column: (model name, options)}``; the names and options are
    checked against the registry per variable (:func:`_variable_spec`)."""
    if method is None:
        return {}
    if not isinstance(method, Mapping):
        raise SpecificationError(
            "method must be a dict {column: method name}, e.g. {'grade': 'pmm'}, got "
            f"{describe_value(method)}"
        )
    out = {}
    for k, v in method.items():
        if not isinstance(k, str):
            raise SpecificationError(
                f"method must map column names to method names (strings), got {k!r}: {v!r}"
            )
        out[k] = method_argument(k, v)
    return out


def method_argument(name: str, value: object) -> tuple[str, dict[str, Any]]:
    """One ``method=`` value: ``"2l.norm"``, ``("2l.norm", {"prior": "iw"})`` or
    ``{"method": "2l.norm", "prior": "iw"}``."""
    if isinstance(value, str):
        return value, {}
    if isinstance(value, Mapping):
        options = dict(value)
        meth = options.pop("method", None)
        if isinstance(meth, str) and all(isinstance(o, str) for o in options):
            return meth, options
    elif (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], Mapping)
        and all(isinstance(o, str) for o in value[1])
    ):
        return value[0], dict(value[1])
    raise SpecificationError(
        f"method for {name!r} must be a method name, (name, {{option: value}}) or "
        f"{{'method': name, option: value}}, e.g. ('2l.norm', {{'prior': 'iw'}}); got "
        f"{describe_value(value)}"
    )


def check_heteroscedastic(value) -> bool | list[str]:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    try:
        return column_list(value, "heteroscedastic")
    except SpecificationError:
        raise SpecificationError(
            "heteroscedastic must be True, False, a column name or a list of column names, "
            f"got {describe_value(value)}"
        ) from None


def check_names(names) -> None:
    """Imputed columns must not take the names the result uses for itself: its dimensions
    and traces, and the per-variable entries ``"<name>:row"``, ``"<name>:param(s)"``."""
    for name in names:
        if name in RESERVED_NAMES or str(name).endswith(_RESERVED_SUFFIXES):
            raise SpecificationError(
                f"cannot impute a column named {name!r}: the result uses that name for its "
                f"own traces and dimensions ({', '.join(sorted(RESERVED_NAMES))}, "
                "'<name>:row', '<name>:param(s)'); rename the column first, e.g. "
                f"df.rename(columns={{{name!r}: {str(name).replace(':', '_') + '_'!r}}})"
            )


def parse_all(formulas) -> dict[str, ParsedFormula]:
    if isinstance(formulas, str):
        formulas = [formulas]
    if isinstance(formulas, Mapping):
        items = []
        for key, text in formulas.items():
            if not isinstance(key, str):
                raise SpecificationError(f"formula keys must be column names, got {key!r}")
            if not isinstance(text, str):
                raise SpecificationError(
                    f"the formula for {key!r} must be a string such as '~ x + (1 | g)', got "
                    f"{describe_value(text)}"
                )
            items.append(parse_formula(text, key))
    elif isinstance(formulas, Sequence):
        bad = [t for t in formulas if not isinstance(t, str)]
        if bad:
            raise SpecificationError(
                "formulas must be a dict {column: formula} or a list of 'y ~ ...' strings; "
                f"the list holds {describe_value(bad[0])}"
            )
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


def check_cluster_argument(cluster: object) -> None:
    """``cluster=`` is one column name, or a list of column names, outermost level first
    (``["school", "class"]``: three levels)."""
    if cluster is None or isinstance(cluster, str):
        return
    if isinstance(cluster, (list, tuple)) and cluster and all(isinstance(c, str) for c in cluster):
        if len(set(cluster)) < len(cluster):
            raise SpecificationError(f"cluster names a column twice: {list(cluster)}")
        return
    raise SpecificationError(
        "cluster must be one column name (a string) or a list of column names, outermost "
        f"level first (e.g. ['school', 'class']), got {describe_value(cluster)}"
    )


def check_delta(value, name: str = "delta") -> dict[str, float]:
    """``delta={column: shift}`` as ``{column: float}``: a mapping of column names to
    finite real numbers (the shift of that column's imputed values); None gives ``{}``.
    With ``name="delta_cluster_sd"`` the numbers are standard deviations (≥ 0)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecificationError(
            f"{name} must be a dict of column names and numbers, e.g. {{'grade': 0.5}}, got "
            f"{describe_value(value)}"
        )
    out = {}
    for key, shift in value.items():
        if not isinstance(key, str):
            raise SpecificationError(f"{name} keys must be column names, got {key!r}")
        if not is_real_number(shift):
            raise SpecificationError(
                f"{name} for {key!r} must be a number (the shift of its imputed values), got "
                f"{describe_value(shift)}"
            )
        if not np.isfinite(shift):
            raise SpecificationError(f"{name} for {key!r} must be finite, got {shift!r}")
        if name == "delta_cluster_sd" and shift < 0:
            raise SpecificationError(f"{name} for {key!r} must be ≥ 0, got {shift!r}")
        out[key] = float(shift)
    return out
