"""Checks of an imputation file (:mod:`mlimpute.io`): what opening one verifies.

A file may come from someone else, damaged or edited. Before anything is loaded,
:func:`check_declared_sizes` compares the sizes its arrays declare with the row count it
records, with the bytes it really stores (uncompressed netCDF arrays) and with the memory
available. JSON attributes are parsed by :func:`loads`, which refuses nesting deeper than
:data:`MAX_DEPTH` levels. After loading, :func:`verify_checksums` compares every array
(and the attributes mlimpute wrote) with the SHA-256 checksums recorded when the file was
saved (:func:`checksums`), and :func:`check_imputed_rows` checks the row index of every
imputed variable against the observed data. Every problem is a
:class:`~mlimpute.errors.DataError` naming the variable or column at fault.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from mlimpute import _heap
from mlimpute.errors import DataError
from mlimpute.schema import row_dim

__all__ = [
    "MAX_DEPTH",
    "CHECKSUMS",
    "json_depth",
    "loads",
    "checksums",
    "verify_checksums",
    "check_imputed_rows",
    "Declared",
    "check_declared_sizes",
    "refuse_nul",
]

#: Deepest nesting of a JSON attribute mlimpute writes or reads (what it writes is at most
#: about 15 levels deep; Python's parser fails with a RecursionError near 1,000).
MAX_DEPTH = 200

#: Root attribute holding the checksums of the file's arrays and attributes.
CHECKSUMS = "mlimpute_checksums"

_GROUP_LABEL = {"": "the imputations", "data": "the observed data", "chains": "the chains"}


# ------------------------------------------------------------------------------------------
# JSON with a bounded depth
# ------------------------------------------------------------------------------------------
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)


def json_depth(text: str) -> int:
    """How deeply the arrays and objects of JSON ``text`` nest (brackets in strings aside).

    One pass over the text, without recursion.

    Examples
    --------
    >>> json_depth('{"a": [1, [2]], "b": "[[["}'), json_depth("3")
    (3, 0)
    """
    body = np.frombuffer(_STRING.sub('""', text).encode("utf-8", "surrogatepass"), np.uint8)
    opens = (body == ord("[")) | (body == ord("{"))
    closes = (body == ord("]")) | (body == ord("}"))
    steps = opens[opens | closes]
    if not steps.size:
        return 0
    return int(np.cumsum(steps.astype(np.int64) * 2 - 1).max())


def loads(text: str, what: str) -> Any:
    """``json.loads(text)``, refusing nesting deeper than :data:`MAX_DEPTH` first.

    Raises
    ------
    DataError
        If ``text`` nests deeper; ``what`` names it in the message.
    ValueError
        If ``text`` is not valid JSON.
    """
    depth = json_depth(text)
    if depth > MAX_DEPTH:
        raise DataError(
            f"{what} is JSON nested {depth} levels deep, more than the {MAX_DEPTH} mlimpute reads"
        )
    return json.loads(text)


# ------------------------------------------------------------------------------------------
# checksums
# ------------------------------------------------------------------------------------------
def _array_digest(values: Any, h: Any) -> None:
    a = np.asarray(values)
    if not a.size:  # no values (an empty array of strings may come back as float64)
        h.update(f"empty{a.shape}".encode())
        return
    if a.dtype.kind in "OUST":  # strings: their lengths in characters, then their text
        items = a.ravel().tolist()
        if any(type(x) is not str for x in items):
            items = [
                x.decode("utf-8", "surrogateescape") if isinstance(x, bytes) else str(x)
                for x in items
            ]
        h.update(f"str{a.shape}".encode())
        h.update(np.fromiter(map(len, items), np.int64, len(items)).tobytes())
        h.update("".join(items).encode("utf-8", "surrogatepass"))
        return
    dtype = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
    h.update(f"{dtype.str}{a.shape}".encode())
    h.update(np.ascontiguousarray(a, dtype=dtype).reshape(-1).view(np.uint8))


def _attr_text(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    return json.dumps(value, sort_keys=True, default=str)


def _variable_digest(var: xr.Variable) -> str:
    h = hashlib.sha256()
    h.update(_attr_text(var.attrs.get("mlimpute", "")).encode("utf-8", "surrogatepass"))
    _array_digest(var.values, h)
    return h.hexdigest()


def _attrs_digest(attrs: dict) -> str:
    h = hashlib.sha256()
    for key in sorted(k for k in attrs if k.startswith("mlimpute") and k != CHECKSUMS):
        h.update(f"{key}={_attr_text(attrs[key])}\n".encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def _group_digests(ds: xr.Dataset) -> dict[str, str]:
    out = {str(k): _variable_digest(v) for k, v in ds.variables.items()}
    out["%attrs"] = _attrs_digest(ds.attrs)  # "%attrs" is never a variable's name
    return out


def checksums(groups: dict[str, xr.Dataset]) -> str:
    """The root attribute :data:`CHECKSUMS` for the groups of a file (``""``: the root).

    Per group and variable the SHA-256 of its ``mlimpute`` attribute and its values as
    stored (strings as UTF-8), and per group of its ``mlimpute*`` attributes (but this one).
    One pass over the data.
    """
    doc = {"algorithm": "sha256", "groups": {g: _group_digests(ds) for g, ds in groups.items()}}
    return json.dumps(doc, sort_keys=True)


def _describe(group: str, key: str, ds: xr.Dataset | None) -> str:
    if key == "%attrs":
        where = "the root" if not group else f"the group {group!r}"
        return f"the mlimpute attributes of {where}"
    name = None
    if ds is not None and key in ds.variables:
        try:
            name = json.loads(ds[key].attrs.get("mlimpute", "{}")).get("name")
        except (ValueError, AttributeError, RecursionError):
            name = None
    if group == "data" and name is not None:
        return f"column {name!r} of the observed data (stored as {key!r})"
    if group == "" and name is not None:
        return f"variable {name!r} of the imputations (stored as {key!r})"
    return f"{key!r} of {_GROUP_LABEL.get(group, repr(group))}"


def verify_checksums(root_attrs: dict, groups: dict[str, xr.Dataset | None]) -> bool:
    """Compare the loaded groups with the checksums the file records.

    Returns
    -------
    bool
        False if the file records none (saved by an mlimpute before 0.1.0's checksums):
        nothing was verified.

    Raises
    ------
    DataError
        Naming the first variable (or attributes) whose checksum differs, a variable the
        file lacks or one it holds in addition.
    """
    if CHECKSUMS not in root_attrs:
        return False
    text = root_attrs[CHECKSUMS]
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    try:
        doc = loads(text, f"attribute {CHECKSUMS!r}") if isinstance(text, str) else None
        ok = isinstance(doc, dict) and doc.get("algorithm") == "sha256"
        recorded = doc["groups"] if ok else None
    except DataError:
        raise
    except (ValueError, KeyError, TypeError):
        recorded = None
    if not isinstance(recorded, dict) or not all(isinstance(v, dict) for v in recorded.values()):
        raise DataError(f"attribute {CHECKSUMS!r} is not a readable record of checksums")
    for group in sorted(set(recorded) | {g for g, ds in groups.items() if ds is not None}):
        ds = groups.get(group)
        if ds is None:
            raise DataError(
                f"{_GROUP_LABEL.get(group, repr(group))} (group {group!r}) is missing, but "
                "was saved with the file"
            )
        if group not in recorded:
            raise DataError(f"the group {group!r} was not saved with the file")
        want = recorded[group]
        got_keys = {str(k) for k in ds.variables} | {"%attrs"}
        for key in sorted(set(want) - got_keys):
            raise DataError(f"{_describe(group, key, None)} is missing, but was saved with it")
        for key in sorted(got_keys - set(want)):
            raise DataError(f"{_describe(group, key, ds)} was not saved with the file")
        for key in [k for k in ds.variables] + ["%attrs"]:
            got = _attrs_digest(ds.attrs) if key == "%attrs" else _variable_digest(ds[key])
            if got != want[str(key)]:
                raise DataError(
                    f"{_describe(group, str(key), ds)} differs from what was saved (its SHA-256 "
                    "checksum does not match): the file was damaged or edited since, e.g. "
                    "copied incompletely"
                )
    return True


# ------------------------------------------------------------------------------------------
# the row index of every imputed variable
# ------------------------------------------------------------------------------------------
def check_imputed_rows(dataset: xr.Dataset, data: pd.DataFrame, names: Iterable[str]) -> None:
    """Check each imputed variable's row index (``"<name>:row"``) against the data.

    As :func:`mlimpute.result.assemble.assemble` writes it: integers, strictly increasing,
    within ``[0, n_rows)``, exactly the rows where the variable is missing in the observed
    data (so :meth:`MultiplyImputed.complete` fills every missing cell and no other); and
    no imputed values of a variable the specification does not list.

    Raises
    ------
    DataError
        Naming the variable.
    """
    n = len(data)
    names = list(names)
    expected = {row_dim(name) for name in names}
    for dim in dataset.dims:
        if isinstance(dim, str) and dim.endswith(":row") and dim not in expected:
            raise DataError(
                f"the imputations hold a row index {dim!r} of a variable that the stored "
                "specification does not list"
            )
    for name in names:
        dim = row_dim(name)
        if name not in data.columns:
            raise DataError(f"the imputed variable {name!r} is not a column of the observed data")
        if name not in dataset.data_vars or dim not in dataset.coords:
            raise DataError(
                f"the imputed values of {name!r} or their row index {dim!r} are missing"
            )
        if dataset[name].dims != ("imputation", dim):
            raise DataError(
                f"the imputed values of {name!r} have dimensions {dataset[name].dims}, not "
                f"('imputation', {dim!r})"
            )
        pos = np.asarray(dataset[dim].values)
        what = f"the row index of the imputed variable {name!r} ({dim!r})"
        if pos.ndim != 1 or pos.dtype.kind not in "iu":
            raise DataError(f"{what} holds {pos.dtype} values, not integer row positions")
        if pos.size and (pos.min() < 0 or pos.max() >= n):
            bad = pos[(pos < 0) | (pos >= n)][0]
            raise DataError(f"{what} holds row {bad}, outside the data's {n} rows (0..{n - 1})")
        pos = pos.astype(np.intp)
        if pos.size > 1 and not np.all(pos[1:] > pos[:-1]):
            k = int(np.flatnonzero(pos[1:] <= pos[:-1])[0])
            raise DataError(
                f"{what} is not strictly increasing (row {pos[k + 1]} after row {pos[k]}): "
                "a repeated or reordered row"
            )
        missing = np.asarray(data[name].isna(), dtype=bool)
        observed = ~missing[pos]
        if observed.any():
            raise DataError(
                f"{what} lists row {pos[observed][0]}, where {name!r} is observed: its imputed "
                "value would replace an observed one"
            )
        if pos.size != int(missing.sum()):
            row = int(np.flatnonzero(missing & ~np.isin(np.arange(n), pos))[0])
            raise DataError(
                f"{what} lacks row {row}, where {name!r} is missing: the completed data would "
                f"keep {int(missing.sum()) - pos.size} missing value(s)"
            )


# ------------------------------------------------------------------------------------------
# declared sizes, before anything is loaded
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Declared:
    """One array as a file's metadata declare it (nothing of it read)."""

    group: str  # "" (root), "data", "chains"
    name: str
    shape: tuple[int, ...]
    itemsize: int
    #: bytes the file stores for it, where they must equal the declared size (an
    #: uncompressed netCDF array of fixed-size values); None where unknown
    stored: int | None = None

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=object)) * max(self.itemsize, 1)


def _gb(nbytes: float) -> str:
    return f"{nbytes / 1e9:.3g} GB" if nbytes >= 1e8 else f"{nbytes / 1e6:.3g} MB"


def _n_rows(data_attrs: dict) -> int | None:
    text = data_attrs.get("mlimpute_data")
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if not isinstance(text, str):
        return None
    try:
        n = loads(text, "attribute 'mlimpute_data' of the group 'data'").get("n_rows")
    except (ValueError, AttributeError):
        return None  # reported when the data are decoded
    return n if isinstance(n, int) and not isinstance(n, bool) else None


def check_declared_sizes(arrays: list[Declared], data_attrs: dict) -> None:
    """Refuse a file whose declared array sizes are inconsistent or cannot be loaded.

    Every array of the group ``data`` (but the categories and the list of columns) has one
    value per row of the observed data, as its attribute ``mlimpute_data`` records; an
    uncompressed array stores all its bytes; all arrays together fit in the available
    memory (:func:`mlimpute._heap.available_memory`).

    Raises
    ------
    DataError
        Naming the array at fault (or the largest one).
    """
    n_rows = _n_rows(data_attrs)
    for a in arrays:
        where = f"{a.name!r} of {_GROUP_LABEL.get(a.group, repr(a.group))}"
        if (
            n_rows is not None
            and a.group == "data"
            and "%categories" not in a.name
            and a.name not in ("columns%", "column%")
            and a.shape != (n_rows,)
        ):
            raise DataError(
                f"{where} declares shape {a.shape}, but the observed data have {n_rows} rows "
                "(attribute 'mlimpute_data'): the file was damaged or edited"
            )
        if a.stored is not None and a.stored < a.nbytes:
            raise DataError(
                f"{where} declares shape {a.shape} ({_gb(a.nbytes)}), but the file stores "
                f"only {a.stored} bytes of it: the file was damaged or edited"
            )
    need = sum(a.nbytes for a in arrays)
    avail = _heap.available_memory()
    if avail is not None and need > avail:
        big = max(arrays, key=lambda a: a.nbytes)
        raise DataError(
            f"its arrays declare {_gb(need)} of values, more than the {_gb(avail)} of memory "
            f"available (the largest: {big.name!r} of "
            f"{_GROUP_LABEL.get(big.group, repr(big.group))}, shape {big.shape})"
        )


# ------------------------------------------------------------------------------------------
# strings netCDF cannot hold
# ------------------------------------------------------------------------------------------
def refuse_nul(groups: dict[str, xr.Dataset]) -> None:
    """Refuse, before writing netCDF, a string holding NUL (``"\\x00"``): HDF5's strings
    end at the first NUL, so netCDF cannot store it (zarr can).

    Raises
    ------
    DataError
        Naming the column (or variable) and the row.
    """
    for group, ds in groups.items():
        for key, var in ds.variables.items():
            values = var.values
            if values.dtype.kind not in "OU":
                continue
            flat = values.ravel()
            try:
                hit = "\x00" in "".join(flat)
            except TypeError:
                hit = any(isinstance(x, str) and "\x00" in x for x in flat)
            if not hit:
                continue
            row = next(k for k, x in enumerate(flat) if isinstance(x, str) and "\x00" in x)
            raise DataError(
                f"cannot save to netCDF: {_describe(group, str(key), ds)} holds a string with "
                f"a NUL character ('\\x00', at position {row}), which netCDF cannot store; "
                "save to zarr instead (imp.to_zarr), or remove the character first"
            )
