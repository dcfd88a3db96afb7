"""Whether the compiled (numba) kernels are used: numba is an optional dependency.

``pip install "mlimpute[fast]"`` installs numba; with the environment variable
``MLIMPUTE_NUMBA=1`` set, the multilevel normal model's Gibbs step then runs compiled
(:mod:`mlimpute.models.ml_norm_compiled`). The kernels are opt-in because they have a
price that only long runs repay: compiling them takes about 15-20 s once per installation
(numba keeps them in its on-disk cache), and every new process that uses them pays about
1-1.5 s to import numba and load that cache, against 0.02 s for a whole imputation of 600
rows; and their numbers equal the numpy code's to round-off, not bit for bit, so a result
should not depend silently on whether some other package happened to install numba.

``import mlimpute`` never imports numba: :func:`enabled` imports it at its first call with
the switch on (the first step of a model the kernels serve). The variable is read at every
call (a chain run alone reads it once, when it starts), so it can be changed while Python
runs; a process pool's workers follow the calling process.
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
    """Whether the compiled kernels are used: the environment variable ``MLIMPUTE_NUMBA``
    is ``1`` and numba is installed (checked only then)."""
    return os.environ.get("MLIMPUTE_NUMBA", "0").strip() == "1" and available()
