"""How every compiled kernel is compiled: :func:`jit`, numba's ``njit`` with its on-disk
cache (``cache=True``), without the GIL (``nogil=True``) and with numpy's error model
(a division by zero gives inf or nan, as numpy's does, instead of raising).

Importing this module imports numba (:mod:`mlimpute.models.kernels`).
"""

from __future__ import annotations

import numba

__all__ = ["jit"]

#: SHA-256 of all the kernel modules' sources (this line blanked): see the package's docstring
SOURCES = "e7c15ed93913fec74e7049c4c8d97476a48d1b07862883f07c34f61d83a0c7e9"

#: the decorator of every kernel
jit = numba.njit(cache=True, nogil=True, error_model="numpy")
