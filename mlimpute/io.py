"""Saving and opening imputations; writing completed data; reading data files.

This module saves and opens imputation files (netCDF or zarr); the encoding lives in
:mod:`mlimpute._io_arrays` and :mod:`mlimpute._io_spec`, the flat exports (CSV, parquet,
Stata) and :func:`read_data` in :mod:`mlimpute._io_flat`; all are importable from here.

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
import os
from pathlib import Path
from typing import Any, Literal

import xarray as xr

from ._io_arrays import _decode_data, _decode_dataset, _encode_data, _encode_dataset
from ._io_flat import read_data, to_csv, to_parquet, to_stata, write_completed
from ._io_spec import _dumps, spec_from_dict, spec_to_dict
from .errors import DataError, DataTypeError
from .imputed import MultiplyImputed

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
        raise DataError(
            f"{str(path)!r} is not a readable mlimpute imputation file "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    return _decode(root, data, repr(str(path)))


def _check_format(attrs: dict, path) -> None:
    if "mlimpute_format" not in attrs:
        raise DataError(
            f"{str(path)!r} is not an mlimpute imputation file (no 'mlimpute_format' attribute)"
        )
    fmt = int(attrs["mlimpute_format"])
    if fmt > FORMAT_VERSION:
        raise DataError(
            f"{str(path)!r} was written by mlimpute {attrs.get('mlimpute_version', '?')} in "
            f"file format {fmt}; this mlimpute reads formats up to {FORMAT_VERSION}: "
            "upgrade mlimpute to open it"
        )


# ------------------------------------------------------------------------------------------
# the whole result
# ------------------------------------------------------------------------------------------
def _encode(imp: MultiplyImputed, zarr: bool) -> tuple[xr.Dataset, xr.Dataset]:
    from . import __version__

    if not isinstance(imp, MultiplyImputed):
        raise DataTypeError(f"expected a MultiplyImputed result, got {type(imp).__name__}")
    root = _encode_dataset(imp.dataset, zarr)
    root.attrs.update(
        {
            "mlimpute_format": FORMAT_VERSION,
            "mlimpute_version": __version__,
            "mlimpute_spec": _dumps(spec_to_dict(imp.spec), "the specification"),
            "mlimpute_events": _dumps(list(imp.events), "the events"),
        }
    )
    data = _encode_data(imp.data, zarr)
    for ds in (root, data):
        for v in ds.variables.values():
            v.encoding = {"_FillValue": None}
    return root, data


def _decode(root: xr.Dataset, data: xr.Dataset, source: str = "the stored specification"
            ) -> MultiplyImputed:
    spec = spec_from_dict(json.loads(root.attrs["mlimpute_spec"]), source)
    events = json.loads(root.attrs.get("mlimpute_events", "[]"))
    return MultiplyImputed(_decode_dataset(root), _decode_data(data), spec, events)


def _is_zarr(path: str | os.PathLike) -> bool:
    p = Path(os.fspath(path))
    return p.suffix == ".zarr" or p.is_dir()


def save(
    imp: MultiplyImputed, path: str | os.PathLike, format: Literal["netcdf", "zarr"] | None = None
) -> None:
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
