"""Whether the compiled (numba) kernels are used: numba is an optional dependency.

``pip install "mlimpute[fast]"`` installs numba; the multilevel normal model's Gibbs step
then runs compiled (:mod:`mlimpute.models.ml_norm_compiled`). ``import mlimpute`` does not
import numba, so it stays as fast with numba installed as without: :func:`enabled`
imports it at its first call (the first step of a model the kernels serve), and the
kernels are compiled, or loaded from numba's on-disk cache, at their first use.

The environment variable ``MLIMPUTE_NUMBA=0`` turns the kernels off (read at every call,
so it can be changed while Python runs); the numpy code then runs instead.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import warnings

__all__ = ["available", "enabled"]


@functools.lru_cache(maxsize=1)
def available() -> bool:
    """Whether numba is installed and imports (tried once, at the first compiled step;
    a numba that fails to import is reported by a warning and not used)."""
    if importlib.util.find_spec("numba") is None:
        return False
    try:
        importlib.import_module("numba")
    except Exception as exc:  # noqa: BLE001 - any failure: the numpy code runs instead
        warnings.warn(
            f"numba is installed but does not import ({exc}); the numpy code runs instead",
            RuntimeWarning,
            stacklevel=2,
        )
        return False
    return True


def enabled() -> bool:
    """Whether the compiled kernels are used: numba is installed and the environment
    variable ``MLIMPUTE_NUMBA`` is not ``0``."""
    return os.environ.get("MLIMPUTE_NUMBA", "1").strip() != "0" and available()
