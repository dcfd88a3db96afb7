"""Checks of the models' numeric options (``method={"y": ("2l.norm", {...})}``).

A model's constructor calls them; :func:`mlimpute.models.registry.validate_options` turns
the ``ValueError`` into a :class:`~mlimpute.errors.SpecificationError` naming the
variable and the model, before any chain starts.
"""

from __future__ import annotations

import math
import numbers

__all__ = ["positive", "whole"]


def positive(name: str, value: object) -> float:
    """``value`` as a float, refused unless a finite number above 0.

    Examples
    --------
    >>> positive("prior_scale", 0.5)
    0.5
    >>> positive("prior_scale", 0)
    Traceback (most recent call last):
    ...
    ValueError: prior_scale must be a finite number above 0, got 0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a finite number above 0, got {value!r}")
    x = float(value)
    if not (math.isfinite(x) and x > 0):
        raise ValueError(f"{name} must be a finite number above 0, got {value!r}")
    return x


def whole(name: str, value: object, minimum: int = 1) -> int:
    """``value`` as an int, refused unless a whole number of at least ``minimum``.

    Examples
    --------
    >>> whole("donors", 3)
    3
    >>> whole("donors", 2.7)
    Traceback (most recent call last):
    ...
    ValueError: donors must be a whole number of at least 1, got 2.7
    """
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok or int(value) < minimum:
        raise ValueError(f"{name} must be a whole number of at least {minimum}, got {value!r}")
    return int(value)
