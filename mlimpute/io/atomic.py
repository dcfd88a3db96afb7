"""Writing files and stores safely: through a temporary sibling moved into place.

A failed write (an error, a full disk, Ctrl-C) leaves an existing file or store as it was
and removes the temporary. Used by :mod:`mlimpute.io` (netCDF files, zarr stores) and
:mod:`mlimpute.io.flat` (CSV, parquet, Stata).

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> from mlimpute.io.atomic import atomic_write
>>> target = Path(tempfile.mkdtemp()) / "out.txt"
>>> atomic_write(target, lambda tmp: tmp.write_text("done"), directory=False)
>>> target.read_text()
'done'
"""

from __future__ import annotations

import builtins
import contextlib
import ctypes
import os
import secrets
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "write_bytes", "swap_in", "exchange", "fsync_dir", "temporary_name"]


def write_bytes(path: Path, content: Any) -> None:
    """Write ``content`` to a new file ``path`` and flush it to disk."""
    with builtins.open(path, "xb") as f:
        f.write(content)
        f.flush()
        os.fsync(f.fileno())


def atomic_write(
    target: Path, write: Callable[[Path], object], *, directory: bool, keep_suffix: bool = False
) -> None:
    """``write(tmp)`` into a temporary sibling of ``target``, then move it into place.

    Any failure (including KeyboardInterrupt) removes the temporary and leaves ``target``
    as it was. The temporary has a short random name (``.mlimpute-<random>.tmp``), so
    that any name the file system accepts for ``target`` can be written (up to 255
    bytes: a name built from ``target``'s would be longer). With ``keep_suffix`` it ends
    in ``target``'s last suffixes instead of ``.tmp`` (writers that choose compression by
    suffix, e.g. ``.csv.gz``, then do the same).
    """
    tmp = target.parent / temporary_name(target, keep_suffix)
    try:
        write(tmp)
        if directory:
            swap_in(tmp, target)
        else:
            os.replace(tmp, target)
        fsync_dir(target.parent)  # make the rename itself durable
    except BaseException:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise


def temporary_name(target: Path, keep_suffix: bool = False, end: str = ".tmp") -> str:
    """A short, random, hidden name for a temporary sibling of ``target``.

    Examples
    --------
    >>> name = temporary_name(Path("x" * 250 + ".csv.gz"), keep_suffix=True)
    >>> name.startswith(".mlimpute-"), name.endswith(".csv.gz"), len(name)
    (True, True, 33)
    """
    if keep_suffix:
        end = "".join(target.suffixes[-2:])
        if len(end) > _SUFFIX_MAX:
            end = target.suffix if len(target.suffix) <= _SUFFIX_MAX else ""
    return f".mlimpute-{secrets.token_hex(8)}{end}"


_SUFFIX_MAX = 16  # longer "suffixes" are parts of a name with dots, not a file type


def fsync_dir(folder: Path) -> None:
    """Flush a directory entry to disk (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def swap_in(new: Path, target: Path) -> None:
    """Move directory ``new`` to ``target``, replacing an existing ``target`` directory.

    On Linux, ``renameat2(RENAME_EXCHANGE)`` swaps the two in one atomic step, so
    ``target`` always names a complete store. Elsewhere (or on file systems without it)
    the old store is renamed aside and the new one renamed in: between these two renames
    (two system calls) ``target`` does not exist; if the second fails the old store is
    renamed back. The old store is deleted only once the new one is in place.
    """
    if not target.exists():
        os.rename(new, target)
        return
    if exchange(new, target):
        shutil.rmtree(new, ignore_errors=True)  # ``new`` now holds the old store
        return
    aside = target.parent / temporary_name(target, end=".old")
    os.rename(target, aside)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(aside, target)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths with Linux ``renameat2``; ``False`` if unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    renameat2.restype = ctypes.c_int
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0
