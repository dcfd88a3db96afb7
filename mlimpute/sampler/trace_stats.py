"""The mean and standard deviation of one visit's draws, traced at every iteration by
the chained and the model-based chains."""

from __future__ import annotations

import numpy as np

__all__ = ["mean_sd"]


def mean_sd(x: np.ndarray) -> tuple[float, float]:
    """``x.mean()`` and ``x.std(ddof=1)`` (NaN and 0 for too few values), computed as numpy
    computes them but without its dispatch, which costs more than the sums here.

    Examples
    --------
    >>> m, s = mean_sd(np.array([1.0, 2.0, 4.0]))
    >>> bool(m == np.mean([1.0, 2.0, 4.0])), bool(s == np.std([1.0, 2.0, 4.0], ddof=1))
    (True, True)
    """
    n = x.size
    if n == 0:
        return np.nan, 0.0
    mean = np.add.reduce(x) / n
    if n == 1:
        return mean, 0.0
    d = x - mean
    np.multiply(d, d, out=d)
    return mean, np.sqrt(np.add.reduce(d) / (n - 1))
