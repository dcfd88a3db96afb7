"""BLAS pinned to one thread, cheaply.

``threadpoolctl.threadpool_limits(...)`` scans every loaded shared library at each call
(1-4 ms); the samplers pin BLAS around every run, so one :class:`ThreadpoolController` is
made on first use and reused. It is made after numpy's and scipy's BLAS are loaded (the
callers, mlimpute.sampler.engine and mlimpute.sampler.executors, import the models,
which import scipy's linear algebra), so it controls both.
"""

from __future__ import annotations

from typing import Any

from threadpoolctl import ThreadpoolController

__all__ = ["one_blas_thread"]

_controller: Any = None


def one_blas_thread():
    """A context manager (and limiter) holding every BLAS library at one thread.

    Returns
    -------
    threadpoolctl limiter
        Use as ``with one_blas_thread(): ...``; the previous limits are restored on exit.
    """
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")
