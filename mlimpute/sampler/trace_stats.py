"""The mean and standard deviation of one visit's draws, traced at every iteration by
the chained and the model-based chains."""

from __future__ import annotations

import numpy as np

__all__ = ["mean_sd", "mean_sd_rows"]


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


def mean_sd_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`mean_sd` of every row of ``x`` (C, n): a reduction along the rows of a
    C-ordered array sums each row as the one-row call does (numpy's pairwise summation
    over the same n values), so the figures are identical.

    Examples
    --------
    >>> x = np.array([[1.0, 2.0, 4.0], [0.5, 0.5, 3.0]])
    >>> means, sds = mean_sd_rows(x)
    >>> all((means[c], sds[c]) == mean_sd(x[c]) for c in range(2))
    True
    """
    C, n = x.shape
    if n == 0:
        return np.full(C, np.nan), np.zeros(C)
    x = np.ascontiguousarray(x)
    mean = np.add.reduce(x, axis=1) / n
    if n == 1:
        return mean, np.zeros(C)
    d = x - mean[:, None]
    return mean, np.sqrt(np.add.reduce(d * d, axis=1) / (n - 1))
