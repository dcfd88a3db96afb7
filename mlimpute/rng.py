"""Seeding: one ``rng`` argument (SPEC 7), one independent stream per chain."""

from __future__ import annotations

import numpy as np

from .errors import SpecificationError

__all__ = ["as_generator", "chain_seeds"]


def as_generator(rng: int | np.random.Generator | None) -> np.random.Generator:
    """A Generator from an int seed, a Generator (returned as is) or None (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, (int, np.integer)) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    raise SpecificationError(f"rng must be an int seed or a numpy.random.Generator, got {rng!r}")


def chain_seeds(
    rng: int | np.random.Generator | None, m: int
) -> tuple[list[np.random.SeedSequence], int | None]:
    """Spawn ``m`` chain seeds; return them and the root entropy that reproduces them.

    With ``rng=None`` fresh entropy is drawn and returned, so a run can always be repeated
    with ``rng=<returned entropy>``; with a Generator the second value is ``None``.

    Chain ``k`` always gets the ``k``-th child of one root ``SeedSequence``, so a result
    depends only on the seed, never on the executor or the order chains run in.

    Examples
    --------
    >>> seeds, root = chain_seeds(1, 3)
    >>> [s.spawn_key for s in seeds], root
    ([(0,), (1,), (2,)], 1)
    """
    if isinstance(rng, np.random.Generator):
        seq = rng.bit_generator.seed_seq
        if not isinstance(seq, np.random.SeedSequence):
            raise SpecificationError("rng's bit generator has no SeedSequence to spawn from")
        return seq.spawn(m), None
    if rng is None:
        root = np.random.SeedSequence()
        return root.spawn(m), int(root.entropy)
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        if rng < 0:
            raise SpecificationError(f"rng seed must be non-negative, got {rng}")
        return np.random.SeedSequence(int(rng)).spawn(m), int(rng)
    raise SpecificationError(f"rng must be an int seed or a numpy.random.Generator, got {rng!r}")
