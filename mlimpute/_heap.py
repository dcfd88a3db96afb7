"""Giving the memory a large run has freed back to the operating system.

numpy takes large arrays from the C library's allocator. glibc's allocator serves
allocations below a threshold from its heap, and raises that threshold each time a larger
block is freed (up to 32 MB); memory freed inside the heap stays with the process until
``malloc_trim`` returns its free pages. A run on a million rows frees tens of megabytes
between its stages (the plan's template columns, each chain's working columns); without
a trim the process keeps them, and the next stage takes new pages on top.
:func:`release_free_memory` trims after those stages. Elsewhere (other C libraries,
macOS, Windows) it does nothing.
"""

from __future__ import annotations

import ctypes
import functools
import os

__all__ = ["TRIM_ROWS", "release_free_memory", "available_memory"]

#: rows from which a run trims the heap between its stages (below, there is little to
#: give back and a trim costs more than it saves)
TRIM_ROWS = 100_000


@functools.cache
def _trim():
    """glibc's ``malloc_trim`` (among the symbols the process has loaded), or None."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, TypeError, AttributeError):
        return None


def release_free_memory(rows: int) -> None:
    """Return the heap's free pages to the operating system after a stage of a run on
    ``rows`` rows (from :data:`TRIM_ROWS` rows; glibc only).

    Examples
    --------
    >>> release_free_memory(10)  # a small run: nothing to do
    """
    if rows < TRIM_ROWS:
        return
    trim = _trim()
    if trim is not None:
        trim(0)


def available_memory() -> int | None:
    """Bytes this process may still allocate: MemAvailable of /proc/meminfo (or the free
    pages where there is none), capped by a cgroup v2 memory limit; None if unknown.

    Used to refuse, before any work, what cannot fit: an imputation run
    (:mod:`mlimpute.impute`) and the arrays an imputation file declares (:mod:`mlimpute.io`).
    """
    avail = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            return None
    try:
        with open("/sys/fs/cgroup/memory.max") as fh:
            limit = fh.read().strip()
        if limit != "max":
            with open("/sys/fs/cgroup/memory.current") as fh:
                used = int(fh.read().strip())
            avail = min(avail, max(int(limit) - used, 0))
    except (OSError, ValueError):
        pass
    return avail
