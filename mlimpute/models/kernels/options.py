"""How every compiled kernel is compiled: :func:`jit`, numba's ``njit`` with its on-disk
cache (``cache=True``), without the GIL (``nogil=True``) and with numpy's error model
(a division by zero gives inf or nan, as numpy's does, instead of raising).

Importing this module imports numba (:mod:`mlimpute.models.kernels`).
"""

from __future__ import annotations

import numba

__all__ = ["jit"]

#: the hash of every kernel module's source (tests/models/kernels/test_sources.py)
SOURCES = "f40a68ced3af67772e50ed1c297ff1cf0d47577c5fdea592ccab9b31bce02f64"

#: the decorator of every kernel
jit = numba.njit(cache=True, nogil=True, error_model="numpy")
