"""How every compiled kernel is compiled: :func:`jit`, numba's ``njit`` with its on-disk
cache (``cache=True``), without the GIL (``nogil=True``) and with numpy's error model
(a division by zero gives inf or nan, as numpy's does, instead of raising).

Importing this module imports numba (:mod:`mlimpute.models.kernels`).
"""

from __future__ import annotations

import numba

__all__ = ["jit"]

#: SHA-256 of all the kernel modules' sources (this line blanked): see the package's docstring
SOURCES = "f4728b98a515af35c15d120c40e7fa2c461b43d743002e6638bcf165f0b7b975"

#: the decorator of every kernel
jit = numba.njit(cache=True, nogil=True, error_model="numpy")
