"""Seeding: one ``rng`` argument, one independent stream per chain.

``rng`` may be an int seed, a :class:`numpy.random.SeedSequence`, a
:class:`numpy.random.Generator` or None (fresh entropy). A SeedSequence is what
simulation studies hand out (``SeedSequence(seed).spawn(R)``, one child per replication),
so it is accepted as it is rather than forcing a detour through a Generator.
"""

from __future__ import annotations

import numpy as np

from mlimpute.errors import SpecificationError

__all__ = ["as_generator", "chain_seeds", "recorded_seed", "MAX_SEED", "MAX_SPAWN_KEY"]

RngLike = int | np.random.SeedSequence | np.random.Generator | None

#: seeds a run records (and a specification file holds) are ints 0 <= seed < MAX_SEED:
#: 128 bits, what numpy draws as fresh entropy
MAX_SEED = 2**128
#: the longest spawn key a run records (a SeedSequence spawned this many times deep)
MAX_SPAWN_KEY = 32
_INT64_MAX = 2**63 - 1


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
    independent chains, as numpy's ``spawn`` promises); the second value is its entropy
    as an int when ``SeedSequence(entropy, spawn_key=...)`` spawns exactly these chains
    (see :func:`recorded_seed`, which also gives the spawn key), else ``None``.

    Chain ``k`` always gets the ``k``-th child of one root ``SeedSequence``, so a result
    depends only on the seed, never on the executor or the order chains run in.

    Examples
    --------
    >>> seeds, root = chain_seeds(1, 3)
    >>> [s.spawn_key for s in seeds], root
    ([(0,), (1,), (2,)], 1)
    >>> seeds, root = chain_seeds(np.random.SeedSequence([2005, 3]), 2)
    >>> [s.spawn_key for s in seeds], root == 2005 + (3 << 32)
    ([(0,), (1,)], True)
    """
    if isinstance(rng, np.random.Generator):
        seq = rng.bit_generator.seed_seq
        if not isinstance(seq, np.random.SeedSequence):
            raise SpecificationError("rng's bit generator has no SeedSequence to spawn from")
        rng = seq
    if isinstance(rng, np.random.SeedSequence):
        root = _entropy_int(rng)  # before spawn() moves n_children_spawned on
        return rng.spawn(m), root
    if rng is None:
        root = np.random.SeedSequence()
        return root.spawn(m), int(root.entropy)
    if _is_seed(rng):
        if rng < 0:
            raise SpecificationError(f"rng seed must be non-negative, got {rng}")
        return np.random.SeedSequence(int(rng)).spawn(m), int(rng)
    raise _bad(rng)


def recorded_seed(
    seeds: list[np.random.SeedSequence], entropy: int | None
) -> tuple[int | None, tuple[int, ...]]:
    """``(seed, spawn_key)`` a run records, from :func:`chain_seeds`' result.

    The chains are then the children ``0..m-1`` of
    ``SeedSequence(seed, spawn_key=spawn_key)`` (``rng=seed`` when the key is empty);
    ``(None, ())`` if they are not, or if the seed is :data:`MAX_SEED` or more.

    Examples
    --------
    >>> child = np.random.SeedSequence(7).spawn(3)[2]
    >>> recorded_seed(*chain_seeds(child, 2))
    (7, (2,))
    >>> recorded_seed(*chain_seeds(7, 2))
    (7, ())
    """
    if entropy is None or not seeds or entropy >= MAX_SEED:  # beyond any specification file
        return None, ()
    return entropy, tuple(int(k) for k in seeds[0].spawn_key[:-1])


def _entropy_int(seq: np.random.SeedSequence) -> int | None:
    """An int seed ``s`` such that ``SeedSequence(s, spawn_key=seq.spawn_key)`` spawns the
    same children as ``seq`` will next, or None (children already spawned, a pool size other
    than numpy's default, entropy beyond :data:`MAX_SEED`, or a spawn key a specification
    file cannot hold)."""
    if seq.n_children_spawned != 0 or seq.pool_size != np.random.SeedSequence().pool_size:
        return None
    key = tuple(seq.spawn_key)
    if len(key) > MAX_SPAWN_KEY or any(not 0 <= int(k) <= _INT64_MAX for k in key):
        return None
    words = _words(seq.entropy)
    if words is None:
        return None
    seed = sum(w << (32 * i) for i, w in enumerate(words))
    # a child's entropy words are padded with zeros to the pool size: trailing zero words
    # within it make no difference, any others do
    pad = seq.pool_size

    def padded(ws: list[int]) -> list[int]:
        return ws + [0] * (pad - len(ws))

    if seed >= MAX_SEED or padded(_words(seed) or []) != padded(words):
        return None
    first = (*key, 0)  # the check that the first child is the same, by numpy itself
    same = np.random.SeedSequence(seed, spawn_key=first, pool_size=pad).generate_state(4)
    if not np.array_equal(
        same, np.random.SeedSequence(seq.entropy, spawn_key=first, pool_size=pad).generate_state(4)
    ):  # pragma: no cover - the words above are numpy's
        return None
    return seed


def _words(entropy) -> list[int] | None:
    """The 32-bit words numpy makes of a SeedSequence's entropy (least significant first),
    or None for entropy of another kind."""
    if isinstance(entropy, (int, np.integer)) and not isinstance(entropy, bool):
        n = int(entropy)
        if n < 0:
            return None
        words = [n & 0xFFFFFFFF]
        n >>= 32
        while n:
            words.append(n & 0xFFFFFFFF)
            n >>= 32
        return words
    if isinstance(entropy, (list, tuple, np.ndarray)):
        if isinstance(entropy, np.ndarray) and entropy.dtype == np.uint32:
            return [int(w) for w in entropy.ravel()]
        out: list[int] = []
        for e in entropy:
            w = _words(e)
            if w is None:
                return None
            out += w
        return out
    return None
