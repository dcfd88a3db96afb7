"""Walking a model state: apply a function to every model state nested in a state's fields.

The states of the latent (probit, count, zero-inflated) and multi-term models hold the
states of their cores as fields, or tuples of them; the new-data paths rebuild the random
effects wherever such a state sits. Also the specification every new-data path gives its
result (:func:`completion_spec`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, is_dataclass, replace
from typing import Any

__all__ = ["completion_spec", "map_nested"]


def map_nested(state: Any, fn: Callable[[Any], Any]) -> Any:
    """``state`` with ``fn`` applied to each dataclass in its fields (and to each member of
    a tuple of dataclasses), in field order; ``state`` itself if nothing changes.

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Inner:
    ...     v: int
    >>> @dataclass(frozen=True)
    ... class Outer:
    ...     core: Inner
    ...     parts: tuple
    ...     n: int
    >>> map_nested(Outer(Inner(1), (Inner(2),), 3), lambda s: Inner(s.v * 10))
    Outer(core=Inner(v=10), parts=(Inner(v=20),), n=3)
    """
    if not is_dataclass(state) or isinstance(state, type):
        return state
    changes = {}
    for f in fields(state):
        value = getattr(state, f.name)
        if is_dataclass(value):
            changes[f.name] = fn(value)
        elif isinstance(value, tuple) and value and all(is_dataclass(x) for x in value):
            changes[f.name] = tuple(fn(x) for x in value)
    return replace(state, **changes) if changes else state


def completion_spec(spec, n_sweeps: int, seed, spawn_key):
    """The specification of an ``impute_new()`` result: the training run's, marked as a
    completion of new rows (``completion=True``), with the sweeps over the new rows as
    iterations and the seed of ``impute_new()``; its ``to_toml()`` refuses (no file
    repeats it)."""
    return replace(spec, iterations=n_sweeps, seed=seed, spawn_key=spawn_key, completion=True)
