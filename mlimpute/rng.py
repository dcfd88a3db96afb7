"""Seeding: one ``rng`` argument, one independent stream per chain.

``rng`` may be an int seed, a :class:`numpy.random.SeedSequence`, a
:class:`numpy.random.Generator` or None (fresh entropy). A SeedSequence is what
simulation studies hand out (``SeedSequence(seed).spawn(R)``, one child per replication),
so it is accepted as it is rather than forcing a detour through a Generator.
"""

from __future__ import annotations

import numpy as np

from mlimpute.errors import SpecificationError

__all__ = ["as_generator", "chain_seeds"]

RngLike = int | np.random.SeedSequence | np.random.Generator | None


def _is_seed(rng) -> bool:
    return isinstance(rng, (int, np.integer)) and not isinstance(rng, bool)


def _bad(rng) -> SpecificationError:
    return SpecificationError(
        "rng must be an int seed, a numpy.random.SeedSequence or a numpy.random.Generator, "
        f"got {rng!r}"
    )


def as_generator(rng: RngLike) -> np.random.Generator:
    """A Generator from an int seed, a SeedSequence, a Generator (returned as is) or None.

    Examples
    --------
    >>> a = as_generator(np.random.SeedSequence(1)).random()
    >>> a == as_generator(1).random()
    True
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or _is_seed(rng) or isinstance(rng, np.random.SeedSequence):
        if _is_seed(rng) and rng < 0:
            raise SpecificationError(f"rng seed must be non-negative, got {rng}")
        return np.random.default_rng(rng)
    raise _bad(rng)


def chain_seeds(rng: RngLike, m: int) -> tuple[list[np.random.SeedSequence], int | None]:
    """Spawn ``m`` chain seeds; return them and the root entropy that reproduces them.

    With ``rng=None`` fresh entropy is drawn and returned, so a run can always be repeated
    with ``rng=<returned entropy>``. With a Generator or a SeedSequence the chains are
    spawned from its SeedSequence (so two runs with the same object get different,
    independent chains, as numpy's ``spawn`` promises) and the second value is ``None``.

    Chain ``k`` always gets the ``k``-th child of one root ``SeedSequence``, so a result
    depends only on the seed, never on the executor or the order chains run in.

    Examples
    --------
    >>> seeds, root = chain_seeds(1, 3)
    >>> [s.spawn_key for s in seeds], root
    ([(0,), (1,), (2,)], 1)
    >>> seeds, root = chain_seeds(np.random.SeedSequence([2005, 3]), 2)
    >>> [s.spawn_key for s in seeds], root
    ([(0,), (1,)], None)
    """
    if isinstance(rng, np.random.Generator):
        seq = rng.bit_generator.seed_seq
        if not isinstance(seq, np.random.SeedSequence):
            raise SpecificationError("rng's bit generator has no SeedSequence to spawn from")
        return seq.spawn(m), None
    if isinstance(rng, np.random.SeedSequence):
        return rng.spawn(m), None
    if rng is None:
        root = np.random.SeedSequence()
        return root.spawn(m), int(root.entropy)
    if _is_seed(rng):
        if rng < 0:
            raise SpecificationError(f"rng seed must be non-negative, got {rng}")
        return np.random.SeedSequence(int(rng)).spawn(m), int(rng)
    raise _bad(rng)
