"""Saving and opening imputations; writing completed data; reading data files.

An imputation file holds everything a :class:`~mlimpute.MultiplyImputed` holds, losslessly:

* the **root group** is :attr:`MultiplyImputed.dataset` itself (imputed cells, traces and
  parameter draws), readable by any netCDF/zarr tool (``xr.open_dataset(path)``);
* the group ``data`` holds the observed DataFrame, one variable per column along the
  dimension ``row``, plus the index (``index%0``, ``index%1``... per level);
* global attributes hold the specification (formulas, methods, cluster, m, iterations,
  seed, visit order), the events, the mlimpute version and the file-format version.

Encoding choices (all reversed exactly by :func:`open`):

* names that are not portable netCDF/zarr names (``/``, ``%``, leading ``_``/digits,
  control characters, trailing blanks; in zarr also ``:`` and blanks) are written as
  ``v%`` + their percent-encoding; every variable carries its original name, dimensions,
  dtype and attributes as JSON in its ``mlimpute`` attribute;
* auxiliary variables and dimensions contain ``%`` (``x%mask``, ``x%categories``), which a
  column name never keeps after encoding, so they cannot collide with data;
* bool → int8; datetimes/timedeltas (with or without time zone) and periods → their int64
  values; categoricals → integer codes plus a ``categories`` variable (itself encoded the
  same way) and the order flag; nullable integers/floats/booleans → values plus a
  ``%mask`` variable; strings → variable-length strings plus a mask, keeping the storage
  and the missing-value kind; object columns → strings (or per-cell JSON for mixed
  scalar types) plus a code per cell telling ``None``, ``NaN``, ``pd.NA`` and ``NaT`` apart;
* no ``_FillValue`` is written and files are read with ``decode_cf=False``, so no value is
  masked, rescaled or reinterpreted on the way back.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import numpy as np
import pandas as pd
import xarray as xr

from .errors import DataError, DataTypeError, MlimputeWarning, UnsupportedError
from .formula import ParsedFormula, RandomBlock, parse_formula
from .imputed import MultiplyImputed
from .spec import ImputationSpec, VariableSpec
from .specfile import formula_text

__all__ = [
    "FORMAT_VERSION",
    "to_netcdf",
    "to_zarr",
    "open",
    "to_csv",
    "to_parquet",
    "to_stata",
    "write_completed",
    "save",
    "read_data",
    "spec_to_dict",
    "spec_from_dict",
]

#: Version of the file layout written by :func:`to_netcdf` and :func:`to_zarr`.
FORMAT_VERSION = 1

_NC_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+\-()\[\] ]*(?<! )")
_ZARR_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+\-()\[\]]*")
_ROW = "row"
_META = "mlimpute"


# ------------------------------------------------------------------------------------------
# public: save and open
# ------------------------------------------------------------------------------------------
def to_netcdf(imp: MultiplyImputed, path: str | os.PathLike) -> None:
    """Save an imputation result as a netCDF-4 file (engine h5netcdf); overwrites ``path``.

    Parameters
    ----------
    imp : MultiplyImputed
    path : str or path-like
        Usually ``*.nc``.

    See Also
    --------
    open : read it back; the module docstring describes the layout and the encoding.

    Examples
    --------
    >>> import os, tempfile
    >>> import mlimpute
    >>> from mlimpute.io import open, to_netcdf
    >>> df = mlimpute.datasets.classroom(1, rng=1).incomplete
    >>> imp = df.mi.impute({"grade": "~ skill + (1 | class)"}, m=2, iterations=3, rng=1)
    >>> path = os.path.join(tempfile.mkdtemp(), "imp.nc")
    >>> to_netcdf(imp, path)
    >>> back = open(path)
    >>> back.spec == imp.spec, back.complete(2).equals(imp.complete(2))
    (True, True)
    """
    root, data = _encode(imp, zarr=False)
    root.to_netcdf(path, mode="w", engine="h5netcdf")
    data.to_netcdf(path, mode="a", engine="h5netcdf", group="data")


def to_zarr(imp: MultiplyImputed, path: str | os.PathLike) -> None:
    """Save an imputation result as a zarr directory store; overwrites ``path``.

    zarr 3 writes format 3 stores, without consolidated metadata.

    Parameters
    ----------
    imp : MultiplyImputed
    path : str or path-like
        Usually ``*.zarr``.

    Examples
    --------
    >>> import os, tempfile
    >>> import mlimpute
    >>> from mlimpute.io import open, to_zarr
    >>> df = mlimpute.datasets.classroom(1, rng=1).incomplete
    >>> imp = df.mi.impute({"grade": "~ skill + (1 | class)"}, m=2, iterations=3, rng=1)
    >>> path = os.path.join(tempfile.mkdtemp(), "imp.zarr")
    >>> to_zarr(imp, path)
    >>> open(path).dataset.identical(imp.dataset)
    True
    """
    root, data = _encode(imp, zarr=True)
    root.to_zarr(path, mode="w", consolidated=False)
    data.to_zarr(path, mode="w", group="data", consolidated=False)


def open(path: str | os.PathLike) -> MultiplyImputed:
    """Open an imputation file written by :func:`to_netcdf` or :func:`to_zarr`.

    A directory (or a name ending in ``.zarr``) is read as zarr, anything else as netCDF.
    The file is read completely and closed.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    DataError
        If it is not an mlimpute file, or was written by a newer file-format version.

    Examples
    --------
    >>> import os, tempfile
    >>> import mlimpute
    >>> from mlimpute.io import to_netcdf
    >>> df = mlimpute.datasets.classroom(1, rng=1).incomplete
    >>> imp = df.mi.impute({"grade": "~ skill + (1 | class)"}, m=2, iterations=3, rng=1)
    >>> path = os.path.join(tempfile.mkdtemp(), "imp.nc")
    >>> to_netcdf(imp, path)
    >>> mlimpute.io.open(path).spec.formulas
    {'grade': '~ skill + (1 | class)'}
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"imputation file not found: {str(path)!r}")
    if p.is_dir() or p.suffix == ".zarr":
        kw: dict[str, Any] = {"engine": "zarr", "consolidated": False}
    else:
        kw = {"engine": "h5netcdf"}
    try:
        with xr.open_dataset(p, decode_cf=False, **kw) as ds:
            root = ds.load()
        _check_format(root.attrs, path)
        with xr.open_dataset(p, group="data", decode_cf=False, **kw) as ds:
            data = ds.load()
    except (OSError, ValueError, KeyError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{str(path)!r} is not a readable mlimpute imputation file "
                        f"({type(exc).__name__}: {exc})") from exc
    return _decode(root, data)


def _check_format(attrs: dict, path) -> None:
    if "mlimpute_format" not in attrs:
        raise DataError(f"{str(path)!r} is not an mlimpute imputation file "
                        "(no 'mlimpute_format' attribute)")
    fmt = int(attrs["mlimpute_format"])
    if fmt > FORMAT_VERSION:
        raise DataError(
            f"{str(path)!r} was written by mlimpute {attrs.get('mlimpute_version', '?')} in "
            f"file format {fmt}; this mlimpute reads formats up to {FORMAT_VERSION}: "
            "upgrade mlimpute to open it"
        )


# ------------------------------------------------------------------------------------------
# names
# ------------------------------------------------------------------------------------------
def _name(name: str, zarr: bool) -> str:
    """A portable file name for ``name``: unchanged when safe, else ``v%`` + percent-code.

    Safe names contain no ``%``, encoded names all start with ``v%``: the map is injective.
    """
    safe = _ZARR_SAFE if zarr else _NC_SAFE
    if safe.fullmatch(name):
        return name
    return "v%" + quote(name, safe="_.-()[]+" if zarr else "_.-()[]+: ")


# ------------------------------------------------------------------------------------------
# JSON helpers
# ------------------------------------------------------------------------------------------
def _plain(x: Any) -> Any:
    """``x`` as JSON-ready builtins (tuples → lists, numpy scalars → Python)."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return {"__ndarray__": x.tolist(), "dtype": x.dtype.str}
    if isinstance(x, np.generic):
        return x.item()
    return x


def _revive(x: Any) -> Any:
    if isinstance(x, dict):
        if set(x) == {"__ndarray__", "dtype"}:
            return np.asarray(x["__ndarray__"], dtype=x["dtype"])
        return {k: _revive(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_revive(v) for v in x]
    return x


def _freeze(x: Any) -> Any:
    """Lists → tuples, recursively (dataclass fields are tuples)."""
    if isinstance(x, list):
        return tuple(_freeze(v) for v in x)
    return x


def _dumps(x: Any, what: str) -> str:
    try:
        return json.dumps(_plain(x), allow_nan=True)
    except TypeError as exc:
        raise DataTypeError(f"{what} cannot be saved: {exc}") from None


# ------------------------------------------------------------------------------------------
# the specification
# ------------------------------------------------------------------------------------------
def spec_to_dict(spec: ImputationSpec) -> dict[str, Any]:
    """The specification as JSON-ready builtins; :func:`spec_from_dict` inverts it.

    Each formula is kept as the user's text, as the text of what was used
    (:func:`mlimpute.specfile.formula_text`) and as its parsed fields.

    Examples
    --------
    >>> import mlimpute
    >>> from mlimpute.spec import build_spec
    >>> df = mlimpute.datasets.classroom(1, rng=1).incomplete
    >>> spec = build_spec(df, {"grade": "~ skill + (1 | class)"}, m=3, seed=7)
    >>> spec_from_dict(spec_to_dict(spec)) == spec
    True
    """
    out: dict[str, Any] = {}
    for f in fields(spec):
        value = getattr(spec, f.name)
        if f.name == "variables":
            value = [
                {"name": v.name, "formula": formula_text(v.formula), "text": v.formula.text,
                 "parsed": _formula_fields(v.formula),
                 **{g.name: _plain(getattr(v, g.name)) for g in fields(v)
                    if g.name not in ("name", "formula")}}
                for v in value
            ]
        out[f.name] = _plain(value)
    return out


def _formula_fields(formula: ParsedFormula) -> dict[str, Any]:
    out = {f.name: getattr(formula, f.name) for f in fields(formula)}
    out["random"] = [{g.name: getattr(b, g.name) for g in fields(b)} for b in formula.random]
    return _plain(out)


def _formula_from(v: dict[str, Any]) -> ParsedFormula:
    """Re-parse the user's text (validates it), then restore the fields exactly as used."""
    parsed = dict(v.get("parsed") or {})
    if not parsed:  # only the formula as used: parse it, keep the user's text
        f = parse_formula(v["formula"], v["name"])
        return replace(f, text=v["text"]) if v.get("text") else f
    f = parse_formula(v.get("text") or v["formula"], v["name"])
    if "random" in parsed:
        parsed["random"] = tuple(RandomBlock(**b) for b in parsed["random"])
    known = {g.name for g in fields(ParsedFormula)}
    return replace(f, **{k: _freeze(x) for k, x in parsed.items() if k in known})


def spec_from_dict(d: dict[str, Any]) -> ImputationSpec:
    """Rebuild an :class:`~mlimpute.spec.ImputationSpec` from :func:`spec_to_dict` output.

    Formulas are re-parsed from the user's text with :func:`mlimpute.parse_formula` (which
    validates them), then given the parsed fields stored with them, so the formula is
    exactly the one used (e.g. without the random part a single-level method dropped).
    Keys this version does not know are ignored.
    """
    known_v = {g.name for g in fields(VariableSpec)}
    variables = []
    for v in d.get("variables", []):
        extra = {k: _freeze(x) for k, x in v.items()
                 if k in known_v and k not in ("name", "formula")}
        variables.append(VariableSpec(name=v["name"], formula=_formula_from(v), **extra))
    known = {g.name for g in fields(ImputationSpec)}
    kwargs = {k: _freeze(x) for k, x in d.items() if k in known and k != "variables"}
    return ImputationSpec(variables=tuple(variables), **kwargs)


# ------------------------------------------------------------------------------------------
# arrays of imp.dataset
# ------------------------------------------------------------------------------------------
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
        meta = {"name": key, "dims": list(var.dims), "dtype": var.dtype.str,
                "attrs": var.attrs}
        new = xr.Variable([_name(str(d), zarr) for d in var.dims],
                          _encode_array(var.to_numpy(), where),
                          attrs={_META: _dumps(meta, where)})
        names[key] = enc
        out[enc] = new
    coords = [names[k] for k in ds.coords]
    out = out.set_coords([c for c in coords if c not in out.dims])
    out.attrs["mlimpute_dataset"] = _dumps(
        {"order": list(ds.data_vars), "coords": list(ds.coords), "attrs": ds.attrs},
        "the attributes of the imputation dataset")
    return out


def _decode_dataset(enc: xr.Dataset) -> xr.Dataset:
    info = _revive(json.loads(enc.attrs["mlimpute_dataset"]))
    variables = {}
    for var in enc.variables.values():
        meta = _revive(json.loads(var.attrs[_META]))
        variables[meta["name"]] = xr.Variable(
            meta["dims"], _decode_array(var.values, meta["dtype"]), attrs=meta["attrs"])
    coords = {k: variables[k] for k in info["coords"]}
    data_vars = {k: variables[k] for k in info["order"]}
    return xr.Dataset(data_vars, coords=coords, attrs=info["attrs"])


# ------------------------------------------------------------------------------------------
# columns of the observed data
# ------------------------------------------------------------------------------------------
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
        sub = _encode_column(cats, f"{var}%categories", f"{var}%categories", store,
                             f"the categories of {where}")
        store.add(var, dim, np.asarray(values.cat.codes))
        return {"kind": "category", "ordered": bool(dtype.ordered), "categories": sub}
    if isinstance(dtype, pd.DatetimeTZDtype):
        store.add(var, dim, np.asarray(arr.asi8))
        return {"kind": "datetimetz", "dtype": str(dtype)}
    if isinstance(dtype, pd.PeriodDtype):
        store.add(var, dim, np.asarray(arr.asi8))
        return {"kind": "period", "dtype": str(dtype)}
    if isinstance(arr, (pd.arrays.IntegerArray, pd.arrays.FloatingArray,
                        pd.arrays.BooleanArray)):
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
            text = [json.dumps(_plain(x)) if c == 0 else ""
                    for x, c in zip(obj, codes, strict=True)]
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
            out[i] = _NA_VALUES[int(c)] if c else (json.loads(t) if meta["json"] else t)
        return out
    raise DataError(f"unknown column encoding {kind!r} in the imputation file")


def _encode_index(index: pd.Index, store: _Store) -> dict:
    if isinstance(index, pd.RangeIndex):
        return {"type": "range", "start": index.start, "stop": index.stop,
                "step": index.step, "name": index.name}
    levels = []
    for k in range(index.nlevels):
        level = index.get_level_values(k)
        levels.append(_encode_column(pd.Series(level, copy=False), f"index%{k}", _ROW, store,
                                     f"index level {k} ({level.name!r})"))
    freq = getattr(index, "freqstr", None) if index.nlevels == 1 else None
    return {"type": "multi" if isinstance(index, pd.MultiIndex) else "index",
            "names": list(index.names), "levels": levels, "freq": freq}


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
    for k, name in enumerate(df.columns):
        var = _name(str(name), zarr)
        meta = _encode_column(df.iloc[:, k], var, _ROW, store, f"column {name!r}")
        store.variables[var].attrs[_META] = _dumps({"name": name, **meta}, f"column {name!r}")
        columns.append(var)
    index = _encode_index(df.index, store)
    try:
        frame_attrs = json.dumps(_plain(df.attrs))
    except TypeError:
        warnings.warn("DataFrame.attrs are not JSON-serialisable and were not saved",
                      MlimputeWarning, stacklevel=4)
        frame_attrs = "{}"
    ds = xr.Dataset({k: v for k, v in store.variables.items()})
    ds["columns%"] = xr.Variable(("column%",), np.asarray(columns, dtype=object))
    ds.attrs["mlimpute_data"] = _dumps(
        {"index": index, "columns_dtype": str(df.columns.dtype), "columns_name":
         df.columns.name, "n_rows": len(df)}, "the index")
    ds.attrs["mlimpute_frame_attrs"] = frame_attrs
    return ds


def _decode_data(ds: xr.Dataset) -> pd.DataFrame:
    info = json.loads(ds.attrs["mlimpute_data"])

    def get(name: str) -> np.ndarray:
        return ds[name].values

    arrays, names = {}, []
    for k, var in enumerate(str(x) for x in ds["columns%"].values):
        meta = json.loads(ds[var].attrs[_META])
        values = _decode_column(meta, var, get)
        # a Series keeps object dtype (pandas 3 would infer str from a bare object array)
        arrays[k] = pd.Series(values, dtype=values.dtype, copy=False)
        names.append(meta["name"])
    out = pd.DataFrame(arrays)
    out.index = _decode_index(info["index"], get)
    out.columns = pd.Index(names, dtype=pd.api.types.pandas_dtype(info["columns_dtype"]),
                           name=info["columns_name"])
    out.attrs = _revive(json.loads(ds.attrs.get("mlimpute_frame_attrs", "{}")))
    return out


# ------------------------------------------------------------------------------------------
# the whole result
# ------------------------------------------------------------------------------------------
def _encode(imp: MultiplyImputed, zarr: bool) -> tuple[xr.Dataset, xr.Dataset]:
    from . import __version__

    if not isinstance(imp, MultiplyImputed):
        raise DataTypeError(f"expected a MultiplyImputed result, got {type(imp).__name__}")
    root = _encode_dataset(imp.dataset, zarr)
    root.attrs.update({
        "mlimpute_format": FORMAT_VERSION,
        "mlimpute_version": __version__,
        "mlimpute_spec": _dumps(spec_to_dict(imp.spec), "the specification"),
        "mlimpute_events": _dumps(list(imp.events), "the events"),
    })
    data = _encode_data(imp.data, zarr)
    for ds in (root, data):
        for v in ds.variables.values():
            v.encoding = {"_FillValue": None}
    return root, data


def _decode(root: xr.Dataset, data: xr.Dataset) -> MultiplyImputed:
    spec = spec_from_dict(json.loads(root.attrs["mlimpute_spec"]))
    events = json.loads(root.attrs.get("mlimpute_events", "[]"))
    return MultiplyImputed(_decode_dataset(root), _decode_data(data), spec, events)


# ------------------------------------------------------------------------------------------
# completed data
# ------------------------------------------------------------------------------------------
_PATTERN = re.compile(r"\{i(:[^}]*)?\}")


def _completed(imp: MultiplyImputed, path, include: bool) -> Iterator[tuple[Path, pd.DataFrame]]:
    text = os.fspath(path)
    if _PATTERN.search(text):
        first = 0 if include else 1
        for i in range(first, imp.m + 1):
            yield Path(_PATTERN.sub(lambda mt, i=i: format(i, (mt.group(1) or ":")[1:]), text)), \
                imp.complete(i)
    else:
        yield Path(text), imp.complete("long", include=include)


def _auto_index(imp: MultiplyImputed, index: bool | None) -> bool:
    """Write the index unless the data have pandas' default ``0..n-1`` index."""
    if index is not None:
        return index
    idx = imp.data.index
    return not (isinstance(idx, pd.RangeIndex) and idx.start == 0 and idx.step == 1
                and idx.name is None)


def to_csv(imp: MultiplyImputed, path: str | os.PathLike, *, include: bool = False,
           index: bool | None = None, **kwargs) -> list[Path]:
    """Write completed data to CSV.

    Parameters
    ----------
    imp : MultiplyImputed
    path : str or path-like
        With ``{i}`` in the name (e.g. ``"completed_{i}.csv"`` or ``"c{i:02d}.csv"``): one
        file per imputation, numbered from 1. Without: one long file whose first column
        ``imputation`` numbers the data sets (``imp.complete("long")``).
    include : bool
        Also write the incomplete data as imputation 0 (mice's long format).
    index : bool, optional
        Write the index; by default only when it is not the default ``0..n-1`` range (in the
        long file that is the original row number repeated per imputation).
    **kwargs
        Passed to :meth:`pandas.DataFrame.to_csv`.

    Returns
    -------
    list of Path
        The files written.

    Examples
    --------
    >>> import os, tempfile
    >>> import mlimpute
    >>> df = mlimpute.datasets.classroom(1, rng=1).incomplete
    >>> imp = df.mi.impute({"grade": "~ skill + (1 | class)"}, m=2, iterations=3, rng=1)
    >>> d = tempfile.mkdtemp()
    >>> [p.name for p in to_csv(imp, os.path.join(d, "completed_{i}.csv"))]
    ['completed_1.csv', 'completed_2.csv']
    >>> [p.name for p in to_csv(imp, os.path.join(d, "long.csv"))]
    ['long.csv']
    """
    written = []
    for p, df in _completed(imp, path, include):
        df.to_csv(p, index=_auto_index(imp, index), **kwargs)
        written.append(p)
    return written


def to_parquet(imp: MultiplyImputed, path: str | os.PathLike, *, include: bool = False,
               **kwargs) -> list[Path]:
    """Write completed data to parquet (one file per imputation with ``{i}``, else long).

    dtypes and the index are kept (pyarrow). See :func:`to_csv` for ``path`` and
    ``include``; ``**kwargs`` go to :meth:`pandas.DataFrame.to_parquet`.

    Examples
    --------
    >>> import os, tempfile
    >>> import pandas as pd, mlimpute
    >>> df = mlimpute.datasets.classroom(1, rng=1).incomplete
    >>> imp = df.mi.impute({"grade": "~ skill + (1 | class)"}, m=2, iterations=3, rng=1)
    >>> [p] = to_parquet(imp, os.path.join(tempfile.mkdtemp(), "long.parquet"))
    >>> pd.read_parquet(p).equals(imp.complete("long"))
    True
    """
    written = []
    for p, df in _completed(imp, path, include):
        df.to_parquet(p, **kwargs)
        written.append(p)
    return written


def to_stata(imp: MultiplyImputed, path: str | os.PathLike, *, include: bool = False,
             **kwargs) -> list[Path]:
    """Write completed data to Stata ``.dta`` (one file per imputation with ``{i}``, else long).

    Column names must be valid Stata names; ``**kwargs`` go to
    :meth:`pandas.DataFrame.to_stata` (default ``write_index=False``).
    """
    kwargs.setdefault("write_index", False)
    written = []
    for p, df in _completed(imp, path, include):
        df.to_stata(p, **kwargs)
        written.append(p)
    return written


_WRITERS = {".csv": to_csv, ".parquet": to_parquet, ".pq": to_parquet, ".dta": to_stata}


def write_completed(imp: MultiplyImputed, path: str | os.PathLike, *,
                    include: bool = False) -> list[Path]:
    """Write completed data in the format the suffix names (``.csv``, ``.parquet``, ``.dta``).

    Examples
    --------
    >>> import os, tempfile
    >>> import mlimpute
    >>> df = mlimpute.datasets.classroom(1, rng=1).incomplete
    >>> imp = df.mi.impute({"grade": "~ skill + (1 | class)"}, m=2, iterations=3, rng=1)
    >>> len(write_completed(imp, os.path.join(tempfile.mkdtemp(), "c_{i}.parquet")))
    2
    """
    suffix = Path(os.fspath(path)).suffix.lower()
    if suffix not in _WRITERS:
        raise DataError(f"cannot write completed data to {os.fspath(path)!r}: the name must "
                        f"end in one of {sorted(_WRITERS)}")
    return _WRITERS[suffix](imp, path, include=include)


# ------------------------------------------------------------------------------------------
# reading data files
# ------------------------------------------------------------------------------------------
_READERS: dict[str, tuple[str, dict]] = {
    ".csv": ("read_csv", {}),
    ".tsv": ("read_csv", {"sep": "\t"}),
    ".tab": ("read_csv", {"sep": "\t"}),
    ".parquet": ("read_parquet", {}),
    ".pq": ("read_parquet", {}),
    ".feather": ("read_feather", {}),
    ".dta": ("read_stata", {}),
    ".sav": ("read_spss", {}),
    ".zsav": ("read_spss", {}),
}


def read_data(path: str | os.PathLike, **kwargs) -> pd.DataFrame:
    """Read a data file with pandas, choosing the reader by the file's suffix.

    CSV (``.csv``; ``.tsv``/``.tab`` tab-separated), parquet (``.parquet``, ``.pq``),
    feather, Stata (``.dta``) and SPSS (``.sav``, ``.zsav``; needs the optional package
    ``pyreadstat``). ``**kwargs`` go to the pandas reader.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    DataError
        On an unknown suffix or a file pandas cannot parse.
    UnsupportedError
        If the reader's optional dependency is missing.

    Examples
    --------
    >>> import os, tempfile
    >>> import pandas as pd
    >>> p = os.path.join(tempfile.mkdtemp(), "d.csv")
    >>> pd.DataFrame({"x": [1.0, None]}).to_csv(p, index=False)
    >>> read_data(p)["x"].isna().sum()
    np.int64(1)
    """
    p = Path(os.fspath(path))
    suffix = p.suffix.lower()
    if suffix not in _READERS:
        raise DataError(f"cannot read {str(p)!r}: unknown file type {suffix!r}; mlimpute "
                        f"reads {', '.join(sorted(_READERS))}")
    if not p.is_file():
        raise FileNotFoundError(f"data file not found: {str(p)!r}")
    reader, defaults = _READERS[suffix]
    try:
        return getattr(pd, reader)(p, **{**defaults, **kwargs})
    except ImportError as exc:
        extra = "pyreadstat" if reader == "read_spss" else "pyarrow"
        raise UnsupportedError(f"reading {suffix} files needs the optional package {extra} "
                               f"(pip install {extra}): {exc}") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError,
            ValueError) as exc:
        raise DataError(f"cannot read {str(p)!r}: {exc}") from exc


def _is_zarr(path: str | os.PathLike) -> bool:
    p = Path(os.fspath(path))
    return p.suffix == ".zarr" or p.is_dir()


def save(imp: MultiplyImputed, path: str | os.PathLike,
         format: Literal["netcdf", "zarr"] | None = None) -> None:
    """Save to netCDF or zarr; by default zarr for ``*.zarr`` names and directories.

    Examples
    --------
    >>> import os, tempfile
    >>> import mlimpute
    >>> df = mlimpute.datasets.classroom(1, rng=1).incomplete
    >>> imp = df.mi.impute({"grade": "~ skill + (1 | class)"}, m=2, iterations=3, rng=1)
    >>> d = tempfile.mkdtemp()
    >>> save(imp, os.path.join(d, "imp.zarr")); save(imp, os.path.join(d, "imp.nc"))
    >>> sorted(os.listdir(d))
    ['imp.nc', 'imp.zarr']
    """
    if format is None:
        format = "zarr" if _is_zarr(path) else "netcdf"
    (to_zarr if format == "zarr" else to_netcdf)(imp, path)

