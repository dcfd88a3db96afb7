"""Saving and opening imputations; writing completed data; reading data files.

This module saves and opens imputation files (netCDF or zarr); the encoding lives in
:mod:`mlimpute.io.arrays` and :mod:`mlimpute.io.stored_spec`, the flat exports (CSV, parquet,
Stata) and :func:`read_data` in :mod:`mlimpute.io.flat`; all are importable from here.

An imputation file holds everything a :class:`~mlimpute.MultiplyImputed` holds, losslessly:

* the **root group** is :attr:`MultiplyImputed.dataset` itself (imputed cells, traces and
  parameter draws), readable by any netCDF/zarr tool (``xr.open_dataset(path)``);
* the group ``data`` holds the observed DataFrame, one variable per column along the
  dimension ``row``, plus the index (``index%0``, ``index%1``... per level);
* global attributes hold the specification (formulas, methods, cluster, m, iterations,
  seed, visit order), the events, the mlimpute version and the file-format version;
* the group ``chains`` (when the result knows them) holds where every chain stopped, so
  that ``open(path).iterate(n)`` goes on exactly as one longer run would
  (:mod:`mlimpute.io.chains` describes it: flat arrays plus a JSON description, no pickle).

Encoding choices (all reversed exactly by :func:`open`):

* names that are not portable netCDF/zarr names (``/``, ``%``, leading ``_``,
  control characters, trailing blanks; in zarr also ``:``, blanks and capitals) are written as
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

Names: in zarr, where every variable is a directory, only lower-case letters, digits and
``_.-()[]+`` stay as they are (names that differ only in case stay apart on macOS and
Windows; ``zarr.json``, Windows device names and over-long names are encoded too); the
name ``data`` of the group is always encoded at the root; column names that are not
strings, and repeated names, are stored under a positional name ``c%<k>``.

Safety: saving writes a temporary sibling and renames it into place (see
:func:`to_netcdf`, :func:`to_zarr`) and replaces only an mlimpute file of the same kind,
recognised by its ``mlimpute_format`` attribute; :func:`open` turns damaged metadata into a
:class:`~mlimpute.errors.DataError` naming the file and what is wrong.

Integrity (:mod:`mlimpute.io.checks`): the root attribute ``mlimpute_checksums`` records
a SHA-256 checksum of every array and of mlimpute's attributes, verified by :func:`open`;
a file without it (saved before it was added; the format version is 1 for both) opens with
a warning. :func:`open` also checks the declared array sizes before loading, bounds the
depth of JSON attributes and checks the row index of every imputed variable.
"""

from __future__ import annotations

import os
from io import BytesIO
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xarray as xr

from mlimpute.errors import DataError, DataTypeError, MlimputeError, MlimputeWarning, warn
from mlimpute.io.arrays import (
    _decode_data,
    _decode_dataset,
    _encode_data,
    _encode_dataset,
    _json_attr,
)
from mlimpute.io.atomic import atomic_write as _atomic_write
from mlimpute.io.atomic import write_bytes as _write_bytes
from mlimpute.io.chains import GROUP as _CHAINS
from mlimpute.io.chains import UnsupportedState, decode_chains, encode_chains
from mlimpute.io.checks import (
    CHECKSUMS,
    Declared,
    check_declared_sizes,
    check_imputed_rows,
    checksums,
    loads,
    refuse_nul,
    verify_checksums,
)
from mlimpute.io.flat import read_data, to_csv, to_parquet, to_stata, write_completed
from mlimpute.io.stored_spec import _dumps, spec_from_dict, spec_to_dict
from mlimpute.result.imputed import MultiplyImputed

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
_MARK = "mlimpute_format"  # root attribute that marks an mlimpute file


# ------------------------------------------------------------------------------------------
# public: save and open
# ------------------------------------------------------------------------------------------
def to_netcdf(imp: MultiplyImputed, path: str | os.PathLike) -> None:
    """Save an imputation result as a netCDF-4 file (engine h5netcdf).

    The file is built in memory, written to a temporary sibling (``.mlimpute-<random>.tmp``
    in the same directory) and renamed over ``path`` only when complete: a failed save (an
    exception, a full disk, Ctrl-C) leaves an existing file as it was and removes the
    temporary. Saving needs memory for one copy of the file.
    An existing ``path`` is replaced only if it is an mlimpute netCDF file.

    Parameters
    ----------
    imp : MultiplyImputed
    path : str or path-like
        Usually ``*.nc``.

    Raises
    ------
    DataError
        If ``path`` exists and is not an mlimpute netCDF file (e.g. a directory, another
        netCDF file or a symbolic link): it is never replaced.

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
    root, data, chains = _encode(imp, zarr=False)
    refuse_nul({"": root, "data": data, **({_CHAINS: chains} if chains is not None else {})})
    target = Path(os.fspath(path))
    _check_target(target, "netcdf")

    # The file is built in memory and written with plain file I/O: when HDF5 itself hits a
    # full disk its file is left in a state in which closing it crashes the process.
    buffer = BytesIO()
    root.to_netcdf(buffer, mode="w", engine="h5netcdf")
    data.to_netcdf(buffer, mode="a", engine="h5netcdf", group="data")
    if chains is not None:
        chains.to_netcdf(buffer, mode="a", engine="h5netcdf", group=_CHAINS)
    _atomic_write(target, lambda tmp: _write_bytes(tmp, buffer.getbuffer()), directory=False)


def to_zarr(imp: MultiplyImputed, path: str | os.PathLike) -> None:
    """Save an imputation result as a zarr directory store.

    zarr 3 writes format 3 stores, without consolidated metadata. The store is written to
    a temporary sibling directory and swapped in only when complete (on Linux in one
    atomic exchange, elsewhere by two renames: old aside, new in); a failed save leaves
    an existing store as it was and removes the temporary.

    Parameters
    ----------
    imp : MultiplyImputed
    path : str or path-like
        Usually ``*.zarr``.

    Raises
    ------
    DataError
        If ``path`` exists and is neither an mlimpute zarr store nor an empty directory
        (e.g. a directory holding other files): it is never emptied.

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
    root, data, chains = _encode(imp, zarr=True)
    target = Path(os.fspath(path))
    _check_target(target, "zarr")

    def write(tmp: Path) -> None:
        root.to_zarr(tmp, mode="w-", consolidated=False)
        data.to_zarr(tmp, mode="w", group="data", consolidated=False)
        if chains is not None:
            chains.to_zarr(tmp, mode="w", group=_CHAINS, consolidated=False)

    _atomic_write(target, write, directory=True)


# ------------------------------------------------------------------------------------------
# safe replacement of an existing file or store
# ------------------------------------------------------------------------------------------
def _store_kind(p: Path) -> str | None:
    """``"netcdf"``/``"zarr"`` for an mlimpute file of that kind, ``"empty"`` for an empty
    directory, ``None`` for anything else (recognised by the root attribute
    ``mlimpute_format``, which every file this module writes carries)."""
    if p.is_dir():
        if not any(p.iterdir()):
            return "empty"
        for meta, key in (("zarr.json", "attributes"), (".zattrs", None)):
            f = p / meta
            if f.is_file():
                try:
                    doc = loads(f.read_text(encoding="utf-8"), str(f))
                    attrs = doc.get(key, {}) if key else doc
                except (OSError, ValueError, AttributeError):  # DataError is a ValueError
                    return None
                return "zarr" if isinstance(attrs, dict) and _MARK in attrs else None
        return None
    try:
        import h5py

        with h5py.File(p, "r") as f:
            return "netcdf" if _MARK in f.attrs else None
    except (OSError, ValueError):
        return None


def _check_target(p: Path, kind: str) -> None:
    """Refuse to replace anything at ``p`` but an mlimpute file of the same kind."""
    if p.is_symlink():
        raise DataError(
            f"refusing to save to {str(p)!r}: it is a symbolic link; save to the file it "
            "points to, or remove the link"
        )
    if not p.exists():
        return
    found = _store_kind(p)
    if found == kind or (found == "empty" and kind == "zarr"):
        return
    what = {
        "netcdf": "an mlimpute netCDF file",
        "zarr": "an mlimpute zarr store",
        "empty": "an empty directory",
    }.get(
        found or "",
        "a directory that is not an mlimpute store"
        if p.is_dir()
        else "a file that is not an mlimpute imputation file",
    )
    raise DataError(
        f"refusing to save a {'zarr store' if kind == 'zarr' else 'netCDF file'} to "
        f"{str(p)!r}: it exists and is {what}; it is left untouched (choose another path "
        "or remove it yourself)"
    )


# ------------------------------------------------------------------------------------------
# opening
# ------------------------------------------------------------------------------------------
def open(path: str | os.PathLike) -> MultiplyImputed:
    """Open an imputation file written by :func:`to_netcdf` or :func:`to_zarr`.

    A directory (or a name ending in ``.zarr``) is read as zarr, anything else as netCDF.
    The file is read completely and closed.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    DataError
        If it is not an mlimpute file, was written by a newer file-format version, or is
        damaged or edited: metadata that do not describe the content, a value or attribute
        whose checksum differs, a row index of imputed cells that does not list exactly
        the missing rows, declared sizes beyond the data or the available memory (the
        message names the file, and the column or variable at fault).

    Warns
    -----
    MlimputeWarning
        If the file records no checksums (saved by an earlier mlimpute): it is opened
        without verifying its values.

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
        declared, data_attrs = _zarr_metadata(p, path)
        kw: dict[str, Any] = {"engine": "zarr", "consolidated": False}
    else:
        declared, data_attrs = _netcdf_metadata(p)
        kw = {"engine": "h5netcdf"}
    if declared is not None:
        try:
            check_declared_sizes(declared, data_attrs)
        except DataError as exc:
            raise DataError(f"{str(path)!r} is damaged: {exc}") from None
    try:
        with xr.open_dataset(p, decode_cf=False, **kw) as ds:
            root = ds.load()
        _check_format(root.attrs, path)
        with xr.open_dataset(p, group="data", decode_cf=False, **kw) as ds:
            data = ds.load()
        chains = None
        if _has_group(p, _CHAINS, zarr="engine" in kw and kw["engine"] == "zarr"):
            with xr.open_dataset(p, group=_CHAINS, decode_cf=False, **kw) as ds:
                chains = ds.load()
    except (OSError, ValueError, KeyError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(
            f"{str(path)!r} is not a readable mlimpute imputation file "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    try:
        imp = _decode(root, data, repr(str(path)))
        if chains is not None:
            imp.chains = decode_chains(chains)
        check_imputed_rows(imp.dataset, imp.data, imp.variables)
        verified = verify_checksums(root.attrs, {"": root, "data": data, _CHAINS: chains})
    except DataError as exc:
        raise DataError(f"{str(path)!r} is damaged: {exc}") from exc
    except (MlimputeError, KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(
            f"{str(path)!r} is damaged: its mlimpute metadata do not describe its content "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    if not verified:
        warn(
            f"{str(path)!r} records no checksums (it was saved by an mlimpute from before "
            "they were added, or they were removed): its values could not be verified",
            MlimputeWarning,
        )
    return imp


_UNSAFE_CODECS = frozenset({"pickle"})  # decoding runs code from the file
_ZARR_META = (".zarray", "zarr.json", ".zmetadata", ".zattrs", ".zgroup")


def _codec_ids(x):
    """Every codec name in zarr metadata (depth bounded by :func:`loads`)."""
    stack = [x]
    while stack:
        x = stack.pop()
        if isinstance(x, dict):
            for k, v in x.items():
                if k in ("id", "name", "object_codec_id") and isinstance(v, str):
                    yield v
                stack.append(v)
        elif isinstance(x, list):
            stack.extend(x)


def _itemsize(dtype: Any) -> int:
    try:
        return max(np.dtype(dtype).itemsize, 1)
    except (TypeError, ValueError):
        return 8  # variable-length strings and the like: one pointer each, at least


def _zarr_metadata(p: Path, path) -> tuple[list[Declared] | None, dict]:
    """Read a zarr store's metadata: refuse a codec that would unpickle its data (zarr 3
    refuses ``pickle`` itself; zarr 2, on Python 3.10, would run it) and JSON nested too
    deeply; return the arrays it declares and the attributes of its group ``data``.
    """
    if not p.is_dir():
        return None, {}
    declared: list[Declared] = []
    data_attrs: dict = {}
    for folder, _, files in os.walk(p):
        rel = Path(folder).relative_to(p).parts
        for name in files:
            if name not in _ZARR_META:
                continue
            f = Path(folder) / name
            try:
                doc = loads(f.read_text(encoding="utf-8"), repr(str(f)))
            except DataError as exc:
                raise DataError(f"{str(path)!r} is damaged: {exc}") from None
            except (OSError, ValueError):
                continue  # the zarr reader reports it
            bad = sorted(set(_codec_ids(doc)) & _UNSAFE_CODECS)
            if bad:
                raise DataError(
                    f"{str(path)!r} is not an mlimpute imputation file: {str(f)!r} names the "
                    f"codec {bad[0]!r}, which would run code from the file; refused"
                )
            if not isinstance(doc, dict):
                continue
            if rel == ("data",) and name in ("zarr.json", ".zattrs"):
                attrs = doc.get("attributes", {}) if name == "zarr.json" else doc
                data_attrs = attrs if isinstance(attrs, dict) else {}
            is_array = name == ".zarray" or doc.get("node_type") == "array"
            shape = doc.get("shape")
            if is_array and rel and isinstance(shape, list):
                if not all(isinstance(k, int) and k >= 0 for k in shape):
                    raise DataError(f"{str(path)!r} is damaged: {str(f)!r} declares shape {shape}")
                dtype = doc.get("dtype" if name == ".zarray" else "data_type")
                group = "/".join(rel[:-1])
                declared.append(Declared(group, rel[-1], tuple(shape), _itemsize(dtype)))
    return declared, data_attrs


_NC_DIMENSION = b"This is a netCDF dimension but not a netCDF variable"


def _netcdf_metadata(p: Path) -> tuple[list[Declared] | None, dict]:
    """The arrays an mlimpute netCDF file declares (HDF5 metadata only, no values) and the
    attributes of its group ``data``; ``(None, {})`` for other files (reported later)."""
    import h5py

    try:
        f = h5py.File(p, "r")
    except (OSError, ValueError):
        return None, {}
    declared: list[Declared] = []

    def visit(name: str, obj: Any) -> None:
        if not isinstance(obj, h5py.Dataset):
            return
        label = obj.attrs.get("NAME") if "NAME" in obj.attrs else None
        if isinstance(label, bytes) and label.startswith(_NC_DIMENSION):
            return  # a dimension without values: never read
        group, _, short = name.rpartition("/")
        stored = None
        fixed = obj.dtype.kind in "biufc" and h5py.check_vlen_dtype(obj.dtype) is None
        if fixed and obj.id.get_create_plist().get_nfilters() == 0:
            stored = obj.id.get_storage_size()
        declared.append(Declared(group, short, tuple(obj.shape), obj.dtype.itemsize, stored))

    with f:
        if _MARK not in f.attrs:
            return None, {}
        f.visititems(visit)
        data_attrs = dict(f["data"].attrs) if isinstance(f.get("data"), h5py.Group) else {}
    return declared, data_attrs


def _check_format(attrs: dict, path) -> None:
    if _MARK not in attrs:
        raise DataError(
            f"{str(path)!r} is not an mlimpute imputation file (no 'mlimpute_format' attribute)"
        )
    try:
        fmt = int(attrs[_MARK])
    except (TypeError, ValueError):
        raise DataError(
            f"{str(path)!r} is damaged: attribute 'mlimpute_format' is "
            f"{attrs[_MARK]!r}, not an integer"
        ) from None
    if fmt > FORMAT_VERSION:
        raise DataError(
            f"{str(path)!r} was written by mlimpute {attrs.get('mlimpute_version', '?')} in "
            f"file format {fmt}; this mlimpute reads formats up to {FORMAT_VERSION}: "
            "upgrade mlimpute to open it"
        )


# ------------------------------------------------------------------------------------------
# the whole result
# ------------------------------------------------------------------------------------------
def _has_group(p: Path, group: str, zarr: bool) -> bool:
    if zarr:
        return (p / group).is_dir()
    import h5py

    with h5py.File(p, "r") as f:
        return group in f


def _encode(imp: MultiplyImputed, zarr: bool) -> tuple[xr.Dataset, xr.Dataset, xr.Dataset | None]:
    from mlimpute._version import __version__

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
    chains = None
    if getattr(imp, "chains", None):
        try:
            chains = encode_chains(imp.chains)
        except UnsupportedState as exc:
            warn(
                f"the chains' states hold {exc}, which an imputation file cannot store; the "
                "file is saved without them, so iterate() on the opened file is refused",
                MlimputeWarning,
            )
    for ds in (root, data) if chains is None else (root, data, chains):
        for v in ds.variables.values():
            v.encoding = {"_FillValue": None}
    groups = {"": root, "data": data, **({_CHAINS: chains} if chains is not None else {})}
    root.attrs[CHECKSUMS] = checksums(groups)
    return root, data, chains


def _decode(
    root: xr.Dataset, data: xr.Dataset, source: str = "the stored specification"
) -> MultiplyImputed:
    spec_doc = _json_attr(root.attrs, "mlimpute_spec", dict)
    events = _json_attr(root.attrs, "mlimpute_events", list, default="[]")
    try:
        spec = spec_from_dict(spec_doc, source)
    except (MlimputeError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise DataError(
            f"attribute 'mlimpute_spec' does not describe a specification "
            f"({type(exc).__name__}: {exc})"
        ) from exc
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
