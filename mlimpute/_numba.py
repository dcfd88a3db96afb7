"""Whether the compiled (numba) kernels run the multilevel normal model's Gibbs step.

The step is written twice, with the same numbers bit for bit: compiled kernels
(:mod:`mlimpute.models.kernels`) and their numpy twins (:mod:`mlimpute.models.ordered`),
which do every sum in the same order. Which one runs changes the speed only, never a
result. numba is an optional dependency: ``pip install "mlimpute[fast]"`` installs it.

The compiled kernels have a price that only longer runs repay: compiling them takes about
15-20 s once per installation (numba keeps them in its on-disk cache), and every new
process that uses them pays about 1 s to import numba and load that cache, against a few
hundredths of a second for a whole imputation of 600 rows. So by default they run where
numba is installed and either is imported already or a run is long enough to repay it
(:func:`prefer`: at least :data:`AUTO_WORK` rows times iterations times chains in one
call). The environment variable ``MLIMPUTE_NUMBA`` overrides that: ``1`` always compiled
(where numba is installed), ``0`` never; unset or ``auto``, the rule above. It is read at
every call, so it can be changed while Python runs.

``import mlimpute`` never imports numba: :func:`prefer` imports it for a long run, and
:func:`enabled` with the switch at ``1``.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import sys
import warnings

__all__ = ["AUTO_WORK", "available", "enabled", "prefer"]

#: rows × iterations × chains of one run from which the compiled kernels are loaded by
#: default (about where the numpy step's time passes the second it costs to load them)
AUTO_WORK = 2_000_000


@functools.lru_cache(maxsize=1)
def available() -> bool:
    """Whether numba is installed and imports (tried once; a numba that fails to import
    is reported by a warning and not used)."""
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


def _mode() -> str:
    got = os.environ.get("MLIMPUTE_NUMBA", "auto").strip().lower()
    return got if got in ("0", "1") else "auto"


def enabled() -> bool:
    """Whether the compiled kernels run now: ``MLIMPUTE_NUMBA=1`` and numba installed;
    by default, numba installed and imported already (by :func:`prefer`, or by anything
    else in this process)."""
    mode = _mode()
    if mode == "0":
        return False
    if mode == "1":
        return available()
    return _loaded() and available()


def _loaded() -> bool:
    """Whether numba is imported in this process."""
    return "numba" in sys.modules


def prefer(work: float) -> None:
    """Load numba for a run of ``work`` rows × iterations × chains where the default rule
    says the compiled kernels repay their loading (numba installed, the switch not ``0``,
    ``work`` at least :data:`AUTO_WORK`); results do not depend on it."""
    if work >= AUTO_WORK and _mode() == "auto":
        available()
