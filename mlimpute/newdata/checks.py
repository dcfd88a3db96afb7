"""The checks of new rows against the training data of a result, before anything is
imputed: the columns and their dtypes (:func:`check_columns`), values of numeric columns
the run imputed as categories (0/1 of a binary model), cluster-level values that would
contradict their cluster, and the encoding of a new column like the training one
(:func:`encode_like`). Every refusal names the column and the values or cluster.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlimpute.codec import categories
from mlimpute.errors import DataError, DataTypeError, SpecificationError
from mlimpute.models.registry import get_model
from mlimpute.sampler.engine import _cluster_values

__all__ = ["check_columns", "cluster_label", "encode_like"]


def _numeric(dtype) -> bool:
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def _stringlike(s: pd.Series) -> bool:
    """Text held as ``str``/``string`` or as an object column of strings."""
    if isinstance(s.dtype, pd.StringDtype):
        return True
    return s.dtype == object and pd.api.types.infer_dtype(s, skipna=True) in ("string", "empty")


def check_columns(train: pd.DataFrame, new: pd.DataFrame, spec=None) -> pd.DataFrame:
    """A copy of ``new`` with the columns of ``train``, in compatible dtypes; a column that
    is missing throughout (``new["c"] = np.nan``) takes the training column's dtype.

    With the run's ``spec``, also the values the models cannot hold are refused: values
    other than 0 and 1 of a numeric column imputed with a binary model
    (:func:`_check_coded_values`), and values of a cluster-level variable that contradict
    its cluster's (:func:`_check_cluster_values`)."""
    absent = [c for c in train.columns if c not in new.columns]
    if absent:
        raise DataError(f"new_df lacks the column(s) {absent} of the training data")
    extra = [c for c in new.columns if c not in train.columns]
    if extra:
        raise DataError(
            f"new_df has column(s) {extra} that the training data do not have; drop them"
        )
    out = new.copy()
    for c in train.columns:
        a, b = train[c].dtype, new[c].dtype
        if a == b or (_numeric(a) and _numeric(b)):
            continue
        if _stringlike(train[c]) and _stringlike(new[c]):  # str and object columns of text
            out[c] = new[c].astype(a)
            continue
        if isinstance(a, pd.CategoricalDtype) and isinstance(b, pd.CategoricalDtype):
            present = new[c].dropna()
            unseen = present[~present.isin(a.categories)]
            if unseen.size:
                bad = sorted(map(str, pd.unique(unseen)))[:5]
                raise DataError(
                    f"column {c!r} of new_df holds value(s) {bad} not among the training "
                    "data's categories; the models know only those"
                )
            out[c] = new[c].astype(a)  # other categories or order: the training ones
            continue
        if len(new) and new[c].isna().all():
            try:
                out[c] = pd.Series([None] * len(new), index=new.index, dtype=a)
                continue
            except (TypeError, ValueError):
                pass
        raise DataTypeError(
            f"column {c!r} is {b} in new_df but {a} in the training data; convert it with "
            f"new_df[{c!r}].astype(imp.data[{c!r}].dtype)"
        )
    if spec is not None:
        _check_coded_values(train, out, spec)
        _check_cluster_values(train, out, spec)
    return out


def _coded_numeric(train: pd.DataFrame, spec) -> list[str]:
    """The numeric columns the run imputed as categories: 0/1 columns of a binary model
    (their codes are their values, so the codec has no categories to check them against).
    A numeric column cannot take an ordinal or nominal model (``build_spec`` refuses it)."""
    out = []
    for v in spec.variables:
        if v.name not in train.columns or categories(train[v.name]) is not None:
            continue  # string, bool and categorical columns: checked by their categories
        try:
            kinds = get_model(v.method).kinds
        except SpecificationError:
            continue
        if "numeric" not in kinds:
            out.append(v.name)
    return out


def _check_coded_values(train: pd.DataFrame, new: pd.DataFrame, spec) -> None:
    """Refuse values other than 0 and 1 in a numeric column the run modelled as binary
    (``2l.bin``, ``logit``...): its model knows the two categories 0 and 1 only, and a
    2.0 or 0.5 would enter the other variables' models as a value no chain can hold."""
    for c in _coded_numeric(train, spec):
        x = new[c].to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isnan(x) & (x != 0.0) & (x != 1.0)
        if bad.any():
            vals = sorted({float(v) for v in x[bad]})[:5]
            raise DataError(
                f"column {c!r} of new_df holds value(s) {vals} not among the training "
                f"data's categories 0 and 1: the run imputed {c!r} with a binary model, "
                "which knows only those"
            )


def _check_cluster_values(train: pd.DataFrame, new: pd.DataFrame, spec) -> None:
    """Refuse an observed value of a cluster-level (level-2 or level-3) variable in a new
    row that contradicts its cluster: another value than the training data give for the
    cluster, a value for a seen cluster whose value the chains imputed (each chain holds
    its own), or different values in new rows of one cluster. The models would read the
    row's own value for that row and the cluster's for its other rows."""
    if spec.cluster is None or not len(new):
        return
    for v in spec.variables:
        if v.level < 2 or v.name not in train.columns:
            continue
        if v.level == 2:
            group = spec.cluster
        elif len(spec.hierarchy) >= 2:
            group = spec.hierarchy[0]
        else:
            continue
        cols = [c for c in str(group).split(":") if c in train.columns]
        if not cols:
            continue
        name = v.name
        nv = encode_like(new[name].reset_index(drop=True), train[name], name)
        obs = ~np.isnan(nv)
        if not obs.any():
            continue
        tv = encode_like(train[name].reset_index(drop=True), train[name], name)
        keys = pd.concat([train[cols], new[cols]], ignore_index=True)
        key = keys.groupby(cols, sort=False, dropna=False).ngroup().to_numpy()
        n_t = len(train)
        kt, kn = key[:n_t], key[n_t:]
        K = int(key.max()) + 1
        seen = np.zeros(K, dtype=bool)
        seen[kt] = True
        given = _cluster_values(tv, kt, K)  # the training data's value of each cluster
        what = f"{name!r} is a cluster-level variable (one value per {group!r})"
        with np.errstate(invalid="ignore"):
            differ = obs & seen[kn] & ~np.isnan(given[kn])
            differ &= ~np.isclose(nv, given[kn], rtol=1e-9, atol=0.0)
        if differ.any():
            i = int(np.flatnonzero(differ)[0])
            raise DataError(
                f"{what}: new_df gives {_given(new, name, cols, i)}, whose "
                f"value in the training data is {_shown(given[kn[i]], train[name])!r}; "
                "give the training value or leave the cell missing"
            )
        imputed = obs & seen[kn] & np.isnan(given[kn])
        if imputed.any():
            i = int(np.flatnonzero(imputed)[0])
            raise DataError(
                f"{what}: new_df gives {_given(new, name, cols, i)}, whose "
                "value is missing in the training data and was imputed by each chain; leave "
                "the cell missing (each chain's value is used), or impute the training data "
                "with the value"
            )
        lo = np.full(K, np.inf)
        hi = np.full(K, -np.inf)
        np.minimum.at(lo, kn[obs], nv[obs])
        np.maximum.at(hi, kn[obs], nv[obs])
        clash = obs & ~np.isclose(lo[kn], hi[kn], rtol=1e-9, atol=0.0)
        if clash.any():
            i = int(np.flatnonzero(clash)[0])
            raise DataError(
                f"{what}: new_df gives different values for cluster "
                f"{cluster_label(new, cols, i)!r} in different rows; give one value per cluster"
            )


def _shown(code: float, like: pd.Series):
    """A training value as the column holds it (a category, not its code)."""
    cats = categories(like)
    return _plain(code if cats is None else cats[int(code)])


def _given(new: pd.DataFrame, name: str, cols: list[str], i: int) -> str:
    """``"10.0 for cluster 3"``: the value of ``name`` in row ``i`` and the row's cluster."""
    return f"{_plain(new[name].iloc[i])!r} for cluster {cluster_label(new, cols, i)!r}"


def cluster_label(new: pd.DataFrame, cols: list[str], i: int):
    """The cluster label of row ``i`` of ``new`` (a tuple with several columns)."""
    row = [_plain(new[c].iloc[i]) for c in cols]
    return row[0] if len(row) == 1 else tuple(row)


def _plain(x):
    """A numpy scalar as the Python value it holds (``3``, not ``np.int64(3)``)."""
    return x.item() if isinstance(x, np.generic) else x


def encode_like(s: pd.Series, like: pd.Series, column: str) -> np.ndarray:
    """Values (or codes in the training data's categories) of ``s``; NaN where missing."""
    cats = categories(like)
    if cats is None:
        return s.to_numpy(dtype=np.float64, na_value=np.nan).copy()
    values = s.astype(object).to_numpy()
    present = s.notna().to_numpy()
    codes = np.full(len(s), -1, dtype=np.intp)
    codes[present] = pd.Index(cats, dtype=object).get_indexer(values[present])
    unseen = (codes < 0) & present
    if unseen.any():
        bad = sorted(map(str, pd.unique(s[unseen])))[:5]
        raise DataError(
            f"column {column!r} of new_df holds value(s) {bad} not seen in the training data; "
            "the models know only the training categories"
        )
    out = codes.astype(np.float64)
    out[codes < 0] = np.nan
    return out
