"""The arrays of an imputation file (:mod:`mlimpute.io`): names, ``imp.dataset``, the data.

Encoding and decoding of variable names that are not portable netCDF/zarr names, of the
arrays of :attr:`MultiplyImputed.dataset` and of every column (and the index) of the
observed DataFrame; the module docstring of :mod:`mlimpute.io` describes the encoding.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import warnings
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd
import xarray as xr

from mlimpute.errors import DataError, DataTypeError, MlimputeWarning
from mlimpute.io.checks import MAX_DEPTH, json_depth, loads
from mlimpute.io.stored_spec import _dumps, _freeze, _plain, _revive

_NC_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+\-()\[\] ]*(?<! )")
# zarr names are file names: lower case only (two names differing in case would be one
# directory on macOS and Windows), no trailing dot (Windows drops it)
_ZARR_SAFE = re.compile(r"[a-z0-9][a-z0-9_.+\-()\[\]]*(?<!\.)")
_ZARR_KEEP = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.-()[]+")
_ZARR_MAX = 200  # leaves room for the suffixes of auxiliary variables (``%categories%mask``)
_ROW = "row"
_META = "mlimpute"
# names the layout itself uses at the root: the group of the observed data
_RESERVED = frozenset({"data"})
# file names a zarr store or Windows reserves (zarr.json inside a group, device names)
_ZARR_RESERVED = frozenset(
    {"zarr.json", "con", "prn", "aux", "nul"}
    | {f"{d}{k}" for d in ("com", "lpt") for k in range(10)}
)
# column names that survive JSON exactly (numpy scalars come back as Python scalars)
_NAME_TYPES = (str, int, float, bool, np.integer, np.floating, np.bool_, type(None))


def _name(name: str, zarr: bool) -> str:
    """A portable file name for ``name``: unchanged when safe, else ``v%`` + percent-code.

    Safe names contain no ``%``, encoded names all start with ``v%``: the map is injective.
    Names the layout uses (the group ``data``) are encoded too, so they cannot collide.
    In zarr every character but lower-case letters, digits and ``_.-()[]+`` is encoded
    (upper-case letters too, with upper-case hex digits), so that two names never map to
    the same directory on a case-insensitive file system either; a trailing dot is
    encoded, and a name longer than a file name may be is shortened and given a SHA-256
    digest of the name.
    """
    if not zarr:
        if _NC_SAFE.fullmatch(name) and name not in _RESERVED:
            return name
        return "v%" + quote(name, safe="_.-()[]+: ")
    if (
        _ZARR_SAFE.fullmatch(name)
        and len(name) <= _ZARR_MAX
        and name not in _RESERVED
        and name.split(".", 1)[0] not in _ZARR_RESERVED
        and name not in _ZARR_RESERVED
    ):
        return name
    body = "".join(
        c if c in _ZARR_KEEP else "".join(f"%{b:02X}" for b in c.encode("utf-8")) for c in name
    )
    if body.endswith("."):
        body = body[:-1] + "%2E"
    if len(body) > _ZARR_MAX:  # a file name has at most 255 bytes: shorten, add a digest
        # "%%" never occurs inside a body (each % is followed by two hex digits)
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()
        body = body[:120] + "%%" + digest[:40]
    return "v%" + body


def _json_attr(attrs: Any, key: str, kind: type, *, default: str | None = None) -> Any:
    """The JSON attribute ``key`` of ``attrs``, checked to be a ``kind``; DataError if not."""
    if key not in attrs:
        if default is None:
            raise DataError(f"attribute {key!r} is missing")
        text = default
    else:
        text = attrs[key]
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if not isinstance(text, str):
        raise DataError(f"attribute {key!r} is a {type(text).__name__}, not JSON text")
    try:
        value = loads(text, f"attribute {key!r}")
    except DataError:
        raise
    except ValueError as exc:
        raise DataError(f"attribute {key!r} is not valid JSON ({exc})") from None
    if not isinstance(value, kind):
        raise DataError(
            f"attribute {key!r} holds a JSON {type(value).__name__}, not a {kind.__name__}"
        )
    return value


def _encode_array(values: np.ndarray, where: str) -> np.ndarray:
    kind = values.dtype.kind
    if kind == "b":
        return values.astype(np.int8)
    if kind in "Mm":
        return values.view(np.int64)
    if kind == "U":
        return values.astype(object)
    if kind == "O":
        flat = values.ravel()
        if not all(isinstance(x, str) for x in flat):
            bad = next(type(x).__name__ for x in flat if not isinstance(x, str))
            raise DataTypeError(f"{where} holds {bad} objects; only strings can be saved")
        return values
    if kind in "iuf":
        return values
    raise DataTypeError(f"{where} has dtype {values.dtype}, which cannot be saved")


def _decode_array(values: np.ndarray, dtype: str) -> np.ndarray:
    dt = np.dtype(dtype)
    if dt.kind in "Mm":
        return np.asarray(values).astype(np.int64).view(dt)
    if dt.kind == "O":
        out = np.empty(values.shape, dtype=object)
        out[...] = [str(x) for x in np.asarray(values).ravel()] if values.size else []
        return out
    return np.asarray(values).astype(dt)


def _encode_dataset(ds: xr.Dataset, zarr: bool) -> xr.Dataset:
    out = xr.Dataset()
    names = {}
    for key, var in ds.variables.items():
        where = f"variable {key!r} of the imputation dataset"
        enc = _name(str(key), zarr)
        meta = {"name": key, "dims": list(var.dims), "dtype": var.dtype.str, "attrs": var.attrs}
        new = xr.Variable(
            [_name(str(d), zarr) for d in var.dims],
            _encode_array(var.to_numpy(), where),
            attrs={_META: _dumps(meta, where)},
        )
        names[key] = enc
        out[enc] = new
    coords = [names[k] for k in ds.coords]
    out = out.set_coords([c for c in coords if c not in out.dims])
    out.attrs["mlimpute_dataset"] = _dumps(
        {"order": list(ds.data_vars), "coords": list(ds.coords), "attrs": ds.attrs},
        "the attributes of the imputation dataset",
    )
    return out


def _decode_dataset(enc: xr.Dataset) -> xr.Dataset:
    info = _revive(_json_attr(enc.attrs, "mlimpute_dataset", dict))
    variables = {}
    for key, var in enc.variables.items():
        where = f"variable {key!r}"
        try:
            meta = _revive(_json_attr(var.attrs, _META, dict))
            variables[_freeze(meta["name"])] = xr.Variable(
                meta["dims"], _decode_array(var.values, meta["dtype"]), attrs=meta["attrs"]
            )
        except DataError as exc:
            raise DataError(f"{where}: {exc}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(
                f"{where}: its attribute {_META!r} is wrong ({type(exc).__name__}: {exc})"
            ) from None
    try:
        coords = {_freeze(k): variables[_freeze(k)] for k in info["coords"]}
        data_vars = {_freeze(k): variables[_freeze(k)] for k in info["order"]}
    except (KeyError, TypeError) as exc:
        raise DataError(
            f"attribute 'mlimpute_dataset' names a variable the file does not hold "
            f"({type(exc).__name__}: {exc})"
        ) from None
    return xr.Dataset(data_vars, coords=coords, attrs=info.get("attrs", {}))


_NA_VALUES = {1: None, 2: np.nan, 3: pd.NA, 4: pd.NaT}


def _na_code(x: Any) -> int:
    if x is None:
        return 1
    if x is pd.NA:
        return 3
    if x is pd.NaT:
        return 4
    if isinstance(x, float) and math.isnan(x):
        return 2
    return 0


class _Store:
    """Collects the variables of the ``data`` group; names are unique by construction."""

    def __init__(self, zarr: bool):
        self.zarr = zarr
        self.variables: dict[str, xr.Variable] = {}

    def add(self, name: str, dim: str, values: np.ndarray, meta: dict | None = None) -> None:
        attrs = {_META: json.dumps(_plain(meta))} if meta is not None else {}
        self.variables[name] = xr.Variable((dim,), values, attrs=attrs)


def _encode_column(values: pd.Series, var: str, dim: str, store: _Store, where: str) -> dict:
    """Write one column (or index level) as ``var`` (+ ``var%...``); return its meta."""
    dtype = values.dtype
    arr = values.array
    if isinstance(dtype, pd.CategoricalDtype):
        cats = pd.Series(dtype.categories)
        sub = _encode_column(
            cats, f"{var}%categories", f"{var}%categories", store, f"the categories of {where}"
        )
        store.add(var, dim, np.asarray(values.cat.codes))
        return {"kind": "category", "ordered": bool(dtype.ordered), "categories": sub}
    if isinstance(dtype, pd.DatetimeTZDtype):
        store.add(var, dim, np.asarray(arr.asi8))
        return {"kind": "datetimetz", "dtype": str(dtype)}
    if isinstance(dtype, pd.PeriodDtype):
        store.add(var, dim, np.asarray(arr.asi8))
        return {"kind": "period", "dtype": str(dtype)}
    if isinstance(arr, (pd.arrays.IntegerArray, pd.arrays.FloatingArray, pd.arrays.BooleanArray)):
        mask = np.asarray(values.isna())
        fill = False if isinstance(arr, pd.arrays.BooleanArray) else 0
        raw = arr.to_numpy(dtype=dtype.numpy_dtype, na_value=fill)
        store.add(var, dim, _encode_array(raw, where))
        store.add(f"{var}%mask", dim, mask.astype(np.int8))
        return {"kind": "masked", "dtype": str(dtype)}
    if isinstance(dtype, pd.StringDtype):
        mask = np.asarray(values.isna())
        raw = np.asarray(values.to_numpy(dtype=object, na_value=""), dtype=object)
        store.add(var, dim, raw)
        store.add(f"{var}%mask", dim, mask.astype(np.int8))
        na = "nan" if dtype.na_value is not pd.NA else "NA"
        return {"kind": "string", "storage": dtype.storage, "na": na}
    if isinstance(dtype, np.dtype) and dtype.kind == "O":
        obj = np.asarray(values, dtype=object)
        codes = np.fromiter((_na_code(x) for x in obj), dtype=np.int8, count=len(obj))
        present = obj[codes == 0]
        as_json = not all(isinstance(x, str) for x in present)
        if as_json:
            ok = (bool, int, float, str, np.bool_, np.integer, np.floating)
            bad = [type(x).__name__ for x in present if not isinstance(x, ok)]
            if bad:
                raise DataTypeError(
                    f"{where} (dtype object) holds {bad[0]} values, which cannot be saved; "
                    "convert the column (e.g. .astype(str) or .astype('category')) first"
                )
            text = [
                json.dumps(_plain(x)) if c == 0 else "" for x, c in zip(obj, codes, strict=True)
            ]
        else:
            text = [x if c == 0 else "" for x, c in zip(obj, codes, strict=True)]
        store.add(var, dim, np.asarray(text, dtype=object))
        store.add(f"{var}%na", dim, codes)
        return {"kind": "object", "json": as_json}
    if isinstance(dtype, np.dtype) and dtype.kind in "biufMm":
        store.add(var, dim, _encode_array(np.asarray(values), where))
        return {"kind": "numpy", "dtype": dtype.str}
    raise DataTypeError(
        f"{where} has dtype {dtype}, which mlimpute cannot save yet; convert it first "
        "(e.g. to a numpy, nullable, string, categorical or datetime dtype)"
    )


def _decode_column(meta: dict, var: str, get: Callable[[str], np.ndarray]):
    kind = meta["kind"]
    raw = get(var)
    if kind == "numpy":
        return _decode_array(raw, meta["dtype"])
    if kind == "category":
        cats = _decode_column(meta["categories"], f"{var}%categories", get)
        dtype = pd.CategoricalDtype(pd.Index(cats, dtype=cats.dtype), meta["ordered"])
        return pd.Categorical.from_codes(np.asarray(raw).astype(np.int64), dtype=dtype)
    if kind == "datetimetz":
        dtype = pd.api.types.pandas_dtype(meta["dtype"])
        naive = np.asarray(raw).astype(np.int64).view(f"M8[{dtype.unit}]")
        return pd.DatetimeIndex(naive).tz_localize("UTC").tz_convert(dtype.tz).array
    if kind == "period":
        dtype = pd.api.types.pandas_dtype(meta["dtype"])
        return pd.arrays.PeriodArray(np.asarray(raw).astype(np.int64), dtype=dtype)
    if kind == "masked":
        dtype = pd.api.types.pandas_dtype(meta["dtype"])
        values = np.asarray(raw).astype(dtype.numpy_dtype)
        mask = np.asarray(get(f"{var}%mask")).astype(bool)
        return dtype.construct_array_type()(values, mask)
    if kind == "string":
        mask = np.asarray(get(f"{var}%mask")).astype(bool)
        values = np.asarray([str(x) for x in np.asarray(raw).ravel()], dtype=object)
        na = np.nan if meta["na"] == "nan" else pd.NA
        try:
            dtype = pd.StringDtype(meta["storage"], na_value=na)
        except TypeError:  # pandas < 2.3: no na_value
            dtype = pd.StringDtype(meta["storage"])
        values[mask] = None
        return pd.array(values, dtype=dtype)
    if kind == "object":
        codes = np.asarray(get(f"{var}%na")).astype(np.int8)
        text = [str(x) for x in np.asarray(raw).ravel()]
        out = np.empty(len(text), dtype=object)
        for i, (t, c) in enumerate(zip(text, codes, strict=True)):
            if c and int(c) not in _NA_VALUES:
                raise DataError(f"row {i} has the unknown missing-value code {int(c)}")
            if not c and meta["json"] and t.lstrip()[:1] in ("[", "{"):
                raise DataError(f"row {i} holds a JSON array or object, not a single value")
            out[i] = _NA_VALUES[int(c)] if c else (json.loads(t) if meta["json"] else t)
        return out
    raise DataError(f"unknown column encoding {kind!r} in the imputation file")


def _encode_index(index: pd.Index, store: _Store) -> dict:
    if isinstance(index, pd.RangeIndex):
        return {
            "type": "range",
            "start": index.start,
            "stop": index.stop,
            "step": index.step,
            "name": index.name,
        }
    levels = []
    for k in range(index.nlevels):
        level = index.get_level_values(k)
        levels.append(
            _encode_column(
                pd.Series(level, copy=False),
                f"index%{k}",
                _ROW,
                store,
                f"index level {k} ({level.name!r})",
            )
        )
    freq = getattr(index, "freqstr", None) if index.nlevels == 1 else None
    return {
        "type": "multi" if isinstance(index, pd.MultiIndex) else "index",
        "names": list(index.names),
        "levels": levels,
        "freq": freq,
    }


def _decode_index(meta: dict, get) -> pd.Index:
    if meta["type"] == "range":
        return pd.RangeIndex(meta["start"], meta["stop"], meta["step"], name=meta["name"])
    names = [_freeze(n) for n in meta["names"]]
    arrays = [_decode_column(m, f"index%{k}", get) for k, m in enumerate(meta["levels"])]
    if meta["type"] == "multi":
        return pd.MultiIndex.from_arrays(arrays, names=names)
    index = pd.Index(arrays[0], dtype=arrays[0].dtype, name=names[0])
    if meta.get("freq"):
        index = type(index)(index, freq=meta["freq"])
    return index


def _encode_data(df: pd.DataFrame, zarr: bool) -> xr.Dataset:
    store = _Store(zarr)
    columns = []
    if isinstance(df.columns, pd.MultiIndex):
        raise DataTypeError(
            "the data have MultiIndex columns, which cannot be saved; flatten them first "
            "(e.g. df.columns = ['_'.join(map(str, c)) for c in df.columns])"
        )
    for k, name in enumerate(df.columns):
        if not isinstance(name, _NAME_TYPES):
            raise DataTypeError(
                f"column {name!r} has a name of type {type(name).__name__}, which cannot be "
                "saved; column names must be strings, numbers, booleans or None"
            )
        # a string name gets its portable form; other names, and a name that repeats
        # (two columns "a", or 1 and "1"), a positional one: c%<k> (never a name's form)
        var = _name(name, zarr) if isinstance(name, str) else f"c%{k}"
        if var in store.variables:
            var = f"c%{k}"
        meta = _encode_column(df.iloc[:, k], var, _ROW, store, f"column {name!r}")
        store.variables[var].attrs[_META] = _dumps({"name": name, **meta}, f"column {name!r}")
        columns.append(var)
    index = _encode_index(df.index, store)
    try:
        frame_attrs = json.dumps(_plain(df.attrs))
        if json_depth(frame_attrs) > MAX_DEPTH:
            raise TypeError(f"nested more than {MAX_DEPTH} levels deep")
    except (TypeError, RecursionError) as exc:
        warnings.warn(
            f"DataFrame.attrs are not JSON-serialisable ({exc}) and were not saved",
            MlimputeWarning,
            stacklevel=4,
        )
        frame_attrs = "{}"
    ds = xr.Dataset({k: v for k, v in store.variables.items()})
    ds["columns%"] = xr.Variable(("column%",), np.asarray(columns, dtype=object))
    ds.attrs["mlimpute_data"] = _dumps(
        {
            "index": index,
            "columns_dtype": str(df.columns.dtype),
            "columns_name": df.columns.name,
            "n_rows": len(df),
        },
        "the index",
    )
    ds.attrs["mlimpute_frame_attrs"] = frame_attrs
    return ds


def _decode_data(ds: xr.Dataset) -> pd.DataFrame:
    info = _json_attr(ds.attrs, "mlimpute_data", dict)

    def get(name: str) -> np.ndarray:
        if name not in ds.variables:
            raise DataError(f"the data group has no variable {name!r}")
        return ds[name].values

    arrays, names = {}, []
    for k, var in enumerate(str(x) for x in get("columns%")):
        where = f"column variable {var!r} of the data group"
        try:
            get(var)
            meta = _json_attr(ds[var].attrs, _META, dict)
            values = _decode_column(meta, var, get)
            name = meta["name"]
        except DataError as exc:
            raise DataError(f"{where}: {exc}") from None
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise DataError(
                f"{where}: its attribute {_META!r} is wrong ({type(exc).__name__}: {exc})"
            ) from None
        if len(values) != info.get("n_rows", len(values)):
            raise DataError(f"{where} has {len(values)} rows, not {info['n_rows']}")
        # a Series keeps object dtype (pandas 3 would infer str from a bare object array)
        arrays[k] = pd.Series(values, dtype=values.dtype, copy=False)
        names.append(name)
    out = pd.DataFrame(arrays)
    try:
        out.index = _decode_index(info["index"], get)
        out.columns = pd.Index(
            names,
            dtype=pd.api.types.pandas_dtype(info["columns_dtype"]),
            name=info["columns_name"],
        )
    except DataError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise DataError(
            f"attribute 'mlimpute_data' does not describe the data ({type(exc).__name__}: {exc})"
        ) from None
    out.attrs = _revive(_json_attr(ds.attrs, "mlimpute_frame_attrs", dict, default="{}"))
    return out
