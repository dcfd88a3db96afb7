"""Runs given a SeedSequence (or a Generator) record the seed and spawn key that repeat
them, so their specification file reruns bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

import mlimpute
from mlimpute.specfile import loads_spec, read_spec

F = {"grade": "~ skill + (1 | class)"}


@pytest.fixture(scope="module")
def df():
    return mlimpute.datasets.classroom(1, n_classes=10, class_size=8, rng=1).incomplete


def child():
    return np.random.SeedSequence(7).spawn(3)[2]


@pytest.mark.parametrize(
    ("rng", "seed", "key"),
    [
        (lambda: np.random.SeedSequence(7), 7, ()),
        (child, 7, (2,)),
        (lambda: np.random.SeedSequence(7).spawn(2)[1].spawn(4)[3], 7, (1, 3)),
        (lambda: np.random.SeedSequence([2005, 3]), 2005 + (3 << 32), ()),
        (lambda: np.random.default_rng(7), 7, ()),
    ],
    ids=["SeedSequence(7)", "spawned", "spawned-twice", "entropy-list", "Generator"],
)
def test_the_toml_of_a_seedsequence_run_reruns_bit_for_bit(df, tmp_path, rng, seed, key):
    imp = df.mi.impute(F, m=3, iterations=3, rng=rng())
    assert (imp.spec.seed, imp.spec.spawn_key) == (seed, key)
    path = tmp_path / "spec.toml"
    path.write_text(imp.spec.to_toml())
    text = path.read_text()
    assert "No seed" not in text and ("spawn_key" in text) == bool(key)
    study = read_spec(path)
    assert (study.seed, study.spawn_key) == (seed, key)
    again = study.impute(df)
    assert again.dataset.identical(imp.dataset)  # bit for bit, traces included
    assert df.mi.impute(F, m=3, iterations=3, rng=imp.spec.rng).dataset.identical(imp.dataset)


def test_seedsequence_7_is_rng_7(df):
    a = df.mi.impute(F, m=2, iterations=2, rng=np.random.SeedSequence(7))
    b = df.mi.impute(F, m=2, iterations=2, rng=7)
    assert a.dataset.identical(b.dataset) and a.spec.to_toml() == b.spec.to_toml()


def test_the_spawn_key_survives_saving(df, tmp_path):
    imp = df.mi.impute(F, m=2, iterations=2, rng=child())
    imp.to_netcdf(tmp_path / "imp.nc")
    back = mlimpute.open(tmp_path / "imp.nc")
    assert (back.spec.seed, back.spec.spawn_key) == (7, (2,))
    assert loads_spec(back.spec.to_toml()).impute(df).dataset.identical(imp.dataset)


def test_model_based_runs_record_the_spawn_key(df):
    imp = df.mi.impute(model="grade ~ skill + (1 | class)", m=2, iterations=2, rng=child())
    text = imp.spec.to_toml()
    assert "[model]" in text and "spawn_key = [\n    2,\n]" in text
    assert loads_spec(text).impute(df).dataset.identical(imp.dataset)


def test_a_sequence_that_already_spawned_records_no_seed(df):
    seq = np.random.SeedSequence(7)
    seq.spawn(1)  # the chains are children 1..m: no seed and spawn key stand for them
    imp = df.mi.impute(F, m=2, iterations=2, rng=seq)
    assert imp.spec.seed is None and imp.spec.spawn_key == ()
    assert "No seed: every run of this file draws fresh entropy" in imp.spec.to_toml()


def test_files_without_spawn_key_read_as_before(df):
    text = "[imputation]\nm = 2\niterations = 2\nseed = 7\n[imputation.formulas]\n"
    study = loads_spec(text + 'grade = "~ skill + (1 | class)"\n')
    assert (study.seed, study.spawn_key, study.rng) == (7, (), 7)


def test_a_seed_beyond_128_bits_is_not_recorded(df):
    """No specification file holds it (a seed is below 2**128), so none is recorded."""
    imp = df.mi.impute(F, m=2, iterations=2, rng=2**130)
    assert imp.spec.seed is None and "No seed" in imp.spec.to_toml()
    assert loads_spec(imp.spec.to_toml()).seed is None
