"""Columns ↔ the float arrays the sampler works on.

Numeric columns are their values; binary, ordinal and nominal columns are category codes
``0..K-1`` (as floats, NaN where missing). Decoding turns codes back into the column's own
dtype — category with the same categories and order, bool, nullable boolean, strings, or
0/1 numbers — so imputed values never come back as floats of a categorical column.
Categories are derived from the column itself, so decoding needs nothing but the data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["column_kind", "categories", "encode", "decode", "template", "sorted_codes"]


def _is_binary_numeric(s: pd.Series) -> bool:
    if not pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
        return False
    if isinstance(s.dtype, np.dtype) and s.dtype.kind in "iuf" and s.size:
        # decided without hashing every value: a value outside [0, 1], else whole numbers
        v = s.to_numpy()
        if v.dtype.kind != "f":
            return bool(0 <= v.min() and v.max() <= 1)
        lo, hi = np.fmin.reduce(v), np.fmax.reduce(v)  # NaN only when no value is observed
        if np.isnan(lo) or not (0 <= lo and hi <= 1):
            return False
        return bool(((v == 0) | (v == 1) | np.isnan(v)).all())
    vals = pd.unique(s.dropna())
    return 0 < len(vals) <= 2 and set(np.asarray(vals, dtype=float)) <= {0.0, 1.0}


def _object_content(s: pd.Series) -> str:
    """What an object column holds: ``"string"``, ``"boolean"``, ``"empty"`` or ``"other"``
    (lists, dicts, numbers mixed with text...), decided without hashing the values (lists
    and dicts cannot be hashed, so ``pd.unique`` would fail on them)."""
    inferred = pd.api.types.infer_dtype(s, skipna=True)
    if inferred in ("string", "boolean", "empty"):
        return inferred
    return "other"


def _is_object_bool(s: pd.Series) -> bool:
    """An object column holding only True/False (and missing values), e.g. read from JSON."""
    if s.dtype is not np.dtype(object):
        return False
    return _object_content(s) == "boolean"


def column_kind(s: pd.Series) -> str:
    """``"numeric"``, ``"binary"``, ``"ordinal"``, ``"nominal"`` or ``"other"``.

    Binary: bool, a two-category categorical, numbers whose observed values are 0/1, or an
    object column of True/False with missing values as None (what JSON and many database
    drivers give; it comes back as an object column of Python bools). Object columns of
    anything but strings or bools (lists, dicts, numbers mixed with text) are ``"other"``.

    Examples
    --------
    >>> column_kind(pd.Series([0, 1, None])), column_kind(pd.Series([1.5, 2.0]))
    ('binary', 'numeric')
    >>> column_kind(pd.Series([True, None, False], dtype=object))
    'binary'
    >>> column_kind(pd.Series([[1, 2], {"a": 1}], dtype=object))
    'other'
    """
    dtype = s.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        if len(dtype.categories) == 2:
            return "binary"
        return "ordinal" if dtype.ordered else "nominal"
    if pd.api.types.is_complex_dtype(dtype):
        return "other"
    if pd.api.types.is_bool_dtype(dtype) or _is_binary_numeric(s) or _is_object_bool(s):
        return "binary"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if pd.api.types.is_string_dtype(dtype) or dtype is np.dtype(object):
        if dtype is np.dtype(object) and _object_content(s) not in ("string", "empty"):
            return "other"  # lists, dicts, mixed types: nothing a model can use
        vals = pd.unique(s.dropna())
        return "binary" if len(vals) == 2 else "nominal"
    return "other"


def categories(s: pd.Series) -> list | None:
    """The categories codes refer to (``None`` for numeric and 0/1 numeric columns)."""
    dtype = s.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return list(dtype.categories)
    if pd.api.types.is_bool_dtype(dtype) or _is_object_bool(s):
        return [False, True]
    if pd.api.types.is_numeric_dtype(dtype):
        return None
    return sorted(pd.unique(s.dropna()).tolist())


def template(s: pd.Series) -> pd.Series:
    """A small Series that :func:`decode` treats exactly like ``s``.

    Categorical and bool columns carry their categories in the dtype (an empty Series
    will do); string and object columns derive them from their values, so the template
    holds each category once.

    Examples
    --------
    >>> t = template(pd.Series(["b", None, "a", "b"], dtype=object))
    >>> categories(t), decode(np.array([1.0, 0.0]), t).tolist()
    (['a', 'b'], ['b', 'a'])
    """
    if isinstance(s.dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(s.dtype):
        return s.iloc[:0]
    cats = categories(s)
    if cats is None:
        return s.iloc[:0]
    return pd.Series(cats, dtype=s.dtype)


def encode(s: pd.Series) -> np.ndarray:
    """Float array: values, or category codes; NaN where missing."""
    cats = categories(s)
    if cats is None:
        return s.to_numpy(dtype=np.float64, na_value=np.nan).copy()
    if isinstance(s.dtype, pd.CategoricalDtype):
        codes = s.cat.codes.to_numpy()
    else:
        codes = pd.Categorical(s, categories=cats).codes
    out = codes.astype(np.float64)
    out[codes < 0] = np.nan
    return out


def decode(codes: np.ndarray, like: pd.Series) -> pd.Series | np.ndarray:
    """Values in the dtype of ``like`` from float ``codes`` (no missing values).

    Integer columns get rounded values.
    """
    dtype = like.dtype
    cats = categories(like)
    if cats is None:
        vals = codes
        if pd.api.types.is_integer_dtype(dtype):  # rounded, and clipped to the dtype's range
            info = np.iinfo(getattr(dtype, "numpy_dtype", dtype))
            # the largest float not above the maximum (float(2**63 - 1) is 2**63: overflow)
            hi = info.max if float(info.max) <= info.max else np.nextafter(float(info.max), 0)
            vals = np.clip(np.round(codes), info.min, hi)
        if isinstance(dtype, pd.api.extensions.ExtensionDtype):
            return pd.array(vals, dtype=dtype)
        return vals.astype(dtype)
    idx = codes.astype(np.intp)
    if isinstance(dtype, pd.CategoricalDtype):
        return pd.Categorical.from_codes(idx, dtype=dtype)
    if pd.api.types.is_bool_dtype(dtype):
        vals = idx.astype(bool)
        return (
            pd.array(vals, dtype=dtype)
            if isinstance(dtype, pd.api.extensions.ExtensionDtype)
            else vals
        )
    arr = np.asarray(cats, dtype=object)[idx]
    return (
        pd.array(arr, dtype=dtype) if isinstance(dtype, pd.api.extensions.ExtensionDtype) else arr
    )


def sorted_codes(s: pd.Series) -> tuple[np.ndarray, np.ndarray | pd.Index]:
    """``pd.factorize(s, sort=True)``: the code of each value (``0..J-1`` in the order of
    the sorted distinct values, -1 where missing) and those values.

    A column of integers spanning a range not much wider than its length (cluster
    numbers) is coded without hashing: each value's rank among the values present, from a
    table over the range (5 ms instead of 15 at 1,000,000 rows).

    Examples
    --------
    >>> codes, labels = sorted_codes(pd.Series([30, 10, 30, 20]))
    >>> codes.tolist(), labels.tolist()
    ([2, 0, 2, 1], [10, 20, 30])
    """
    v = s.to_numpy() if isinstance(s.dtype, np.dtype) else None
    if v is None or v.dtype.kind not in "iu" or v.size == 0 or v.dtype == np.uint64:
        return pd.factorize(s, sort=True)
    lo, hi = int(v.min()), int(v.max())
    if hi - lo >= 4 * v.size + 1024 or hi - lo >= 2**31:
        return pd.factorize(s, sort=True)
    at = np.subtract(v, lo, dtype=np.intp)  # each value's place in the range
    present = np.zeros(hi - lo + 1, dtype=bool)
    present[at] = True
    rank = np.cumsum(present, dtype=np.intp)
    rank -= 1
    labels = (np.flatnonzero(present) + lo).astype(v.dtype)
    return np.take(rank, at), labels
