"""Seeding (mlimpute/rng.py): accepted rng types, reproducibility, errors."""

import numpy as np
import pytest

import mlimpute  # noqa: F401  (registers the accessor)
from mlimpute.datasets import classroom
from mlimpute.errors import SpecificationError
from mlimpute.rng import as_generator, chain_seeds


def _keys(seeds):
    return [(s.entropy, s.spawn_key) for s in seeds]


def test_int_seedsequence_and_generator_spawn_the_same_chains():
    by_int, root = chain_seeds(7, 4)
    by_seq, root_seq = chain_seeds(np.random.SeedSequence(7), 4)
    by_gen, root_gen = chain_seeds(np.random.default_rng(7), 4)
    assert root == root_seq == root_gen == 7  # the seed a fresh SeedSequence(7) stands for
    assert _keys(by_int) == _keys(by_seq) == _keys(by_gen)


def test_spawning_twice_from_one_sequence_gives_new_chains():
    seq = np.random.SeedSequence(3)
    first, root = chain_seeds(seq, 2)
    second, again = chain_seeds(seq, 2)
    assert not set(_keys(first)) & set(_keys(second))
    assert root == 3 and again is None  # children 2, 3 of SeedSequence(3): no seed stands for them


def test_none_returns_entropy_that_reproduces_the_run():
    seeds, root = chain_seeds(None, 3)
    assert _keys(seeds) == _keys(chain_seeds(root, 3)[0])


def test_impute_accepts_a_seedsequence():
    d = classroom(1, rng=1)
    a = d.incomplete.mi.impute(d.imputation, m=2, iterations=3, rng=np.random.SeedSequence(5))
    b = d.incomplete.mi.impute(d.imputation, m=2, iterations=3, rng=5)
    np.testing.assert_array_equal(a.dataset["grade"].values, b.dataset["grade"].values)


@pytest.mark.parametrize("bad", [-1, 1.5, "1", True, np.random.RandomState(1)])
def test_bad_rng_is_named(bad):
    with pytest.raises(SpecificationError, match="rng"):
        chain_seeds(bad, 2)
    with pytest.raises(SpecificationError, match="rng"):
        as_generator(bad)


def test_as_generator_passes_generators_through():
    g = np.random.default_rng(1)
    assert as_generator(g) is g
    assert as_generator(np.random.SeedSequence(1)).random() == np.random.default_rng(1).random()
