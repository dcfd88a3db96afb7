"""Flat files (:mod:`mlimpute.io`): completed data to CSV, parquet and Stata; reading data.

:func:`to_csv`, :func:`to_parquet`, :func:`to_stata` and :func:`write_completed` write
the completed data sets (one file each, or one long file); :func:`read_data` reads a data
file with the pandas reader its suffix names.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from mlimpute.errors import DataError, SpecificationError, UnsupportedError
from mlimpute.result.imputed import MultiplyImputed

# the only placeholder of a completed-data path: {i}, optionally zero-padded ({i:02d})
_PATTERN = re.compile(r"\{i(?::(0?[1-9]?d?))?\}")


def check_template(text: str, what: str = "path") -> bool:
    """Check a completed-data path; ``True`` if it holds ``{i}`` (one file per imputation).

    The only placeholder is ``{i}``, optionally with a width (``{i:3d}``) or zero padding
    (``{i:02d}``, up to 9 digits); any other brace (``{0}``, ``{i!r}``, ``{i:>99}``,
    ``{x.attr}``) is refused, so a path never runs arbitrary formatting.

    Raises
    ------
    SpecificationError
        Naming ``what`` and the path.

    Examples
    --------
    >>> check_template("c_{i:02d}.csv"), check_template("long.csv")
    (True, False)
    """
    rest = _PATTERN.sub("", text)
    if "{" in rest or "}" in rest:
        raise SpecificationError(
            f"{what}: {text!r} holds a placeholder other than {{i}}; the only "
            "placeholders are {i} and a zero-padded {i:02d} (width up to 9)"
        )
    return rest != text


def completed_paths(path: str | os.PathLike, m: int, include: bool = False) -> list[Path]:
    """The files :func:`to_csv` and friends write for ``path`` and ``m`` imputations.

    Examples
    --------
    >>> [p.name for p in completed_paths("c_{i:02d}.csv", 2)]
    ['c_01.csv', 'c_02.csv']
    """
    text = os.fspath(path)
    if not check_template(text):
        return [Path(text)]
    first = 0 if include else 1
    return [
        Path(_PATTERN.sub(lambda mt, i=i: format(i, mt.group(1) or ""), text))
        for i in range(first, m + 1)
    ]


def _completed(
    imp: MultiplyImputed, path, include: bool, imputation_column: str = "imputation"
) -> Iterator[tuple[Path, pd.DataFrame]]:
    text = os.fspath(path)
    if check_template(text):
        first = 0 if include else 1
        paths = completed_paths(text, imp.m, include)
        for i, p in zip(range(first, imp.m + 1), paths, strict=True):
            yield p, imp.complete(i)
    else:
        yield (
            Path(text),
            imp.complete("long", include=include, imputation_column=imputation_column),
        )


def _replace(path: Path, write) -> None:
    """Write through a temporary sibling renamed into place: a failed write (an error, a
    full disk, Ctrl-C) leaves an existing file as it was."""
    from mlimpute.io.atomic import atomic_write

    atomic_write(path, write, directory=False, keep_suffix=True)


def _auto_index(imp: MultiplyImputed, index: bool | None) -> bool:
    """Write the index unless the data have pandas' default ``0..n-1`` index."""
    if index is not None:
        return index
    idx = imp.data.index
    return not (
        isinstance(idx, pd.RangeIndex) and idx.start == 0 and idx.step == 1 and idx.name is None
    )


def to_csv(
    imp: MultiplyImputed,
    path: str | os.PathLike,
    *,
    include: bool = False,
    index: bool | None = None,
    imputation_column: str = "imputation",
    **kwargs: Any,
) -> list[Path]:
    """Write completed data to CSV.

    Each file is written to a temporary sibling and renamed into place when complete, so
    a failed write leaves an existing file as it was (also for parquet and Stata).

    Parameters
    ----------
    imp : MultiplyImputed
    path : str or path-like
        With ``{i}`` in the name (e.g. ``"completed_{i}.csv"`` or ``"c{i:02d}.csv"``): one
        file per imputation, numbered from 1 (no other placeholder is accepted, see
        :func:`check_template`). Without: one long file whose first column
        ``imputation`` numbers the data sets (``imp.complete("long")``).
    include : bool
        Also write the incomplete data as imputation 0 (mice's long format).
    imputation_column : str, default "imputation"
        The name of the long file's first column (``".imp"`` as in mice); needed when
        the data have a column ``imputation``, which is never overwritten (a
        :class:`~mlimpute.errors.DataError` says so). Not used with ``{i}``.
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
    for p, df in _completed(imp, path, include, imputation_column):
        _replace(p, lambda tmp, df=df: df.to_csv(tmp, index=_auto_index(imp, index), **kwargs))
        written.append(p)
    return written


def to_parquet(
    imp: MultiplyImputed,
    path: str | os.PathLike,
    *,
    include: bool = False,
    imputation_column: str = "imputation",
    **kwargs: Any,
) -> list[Path]:
    """Write completed data to parquet (one file per imputation with ``{i}``, else long).

    dtypes and the index are kept (pyarrow). See :func:`to_csv` for ``path``,
    ``include`` and ``imputation_column``; ``**kwargs`` go to :meth:`pandas.DataFrame.to_parquet`.

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
    for p, df in _completed(imp, path, include, imputation_column):
        _replace(p, lambda tmp, df=df: df.to_parquet(tmp, **kwargs))
        written.append(p)
    return written


def to_stata(
    imp: MultiplyImputed,
    path: str | os.PathLike,
    *,
    include: bool = False,
    imputation_column: str = "imputation",
    **kwargs: Any,
) -> list[Path]:
    """Write completed data to Stata ``.dta`` (one file per imputation with ``{i}``, else long).

    Column names must be valid Stata names (``imputation_column`` too, see
    :func:`to_csv`); ``**kwargs`` go to
    :meth:`pandas.DataFrame.to_stata` (default ``write_index=False``).
    """
    kwargs.setdefault("write_index", False)
    written = []
    for p, df in _completed(imp, path, include, imputation_column):
        _replace(p, lambda tmp, df=df: df.to_stata(tmp, **kwargs))
        written.append(p)
    return written


_WRITERS = {".csv": to_csv, ".parquet": to_parquet, ".pq": to_parquet, ".dta": to_stata}


def write_completed(
    imp: MultiplyImputed, path: str | os.PathLike, *, include: bool = False
) -> list[Path]:
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
        raise DataError(
            f"cannot write completed data to {os.fspath(path)!r}: the name must "
            f"end in one of {sorted(_WRITERS)}"
        )
    return _WRITERS[suffix](imp, path, include=include)


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


def read_data(path: str | os.PathLike, **kwargs: Any) -> pd.DataFrame:
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
        raise DataError(
            f"cannot read {str(p)!r}: unknown file type {suffix!r}; mlimpute "
            f"reads {', '.join(sorted(_READERS))}"
        )
    if not p.is_file():
        raise FileNotFoundError(f"data file not found: {str(p)!r}")
    reader, defaults = _READERS[suffix]
    try:
        return getattr(pd, reader)(p, **{**defaults, **kwargs})
    except ImportError as exc:
        extra = "pyreadstat" if reader == "read_spss" else "pyarrow"
        raise UnsupportedError(
            f"reading {suffix} files needs the optional package {extra} "
            f"(pip install {extra}): {exc}"
        ) from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"cannot read {str(p)!r}: {exc}") from exc
