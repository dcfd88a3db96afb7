"""The switch between the compiled kernels and the numpy code (mlimpute._numba)."""

import importlib

import pytest

from mlimpute import _numba


def test_by_default_the_kernels_run_where_numba_is_loaded(monkeypatch):
    monkeypatch.delenv("MLIMPUTE_NUMBA", raising=False)
    monkeypatch.setattr(_numba, "_loaded", lambda: False)
    assert not _numba.enabled()  # numba installed but not loaded: the numpy twins
    monkeypatch.setattr(_numba, "_loaded", lambda: True)
    assert _numba.enabled() == _numba.available()
    monkeypatch.setenv("MLIMPUTE_NUMBA", "yes")  # anything but 0 and 1 is the default rule
    assert _numba.enabled() == _numba.available()


def test_a_long_run_loads_numba_and_a_short_one_does_not(monkeypatch):
    monkeypatch.delenv("MLIMPUTE_NUMBA", raising=False)
    asked = []
    monkeypatch.setattr(_numba, "available", lambda: asked.append(1) or True)
    _numba.prefer(_numba.AUTO_WORK - 1)
    assert not asked
    _numba.prefer(_numba.AUTO_WORK)
    assert asked == [1]
    monkeypatch.setenv("MLIMPUTE_NUMBA", "0")
    _numba.prefer(10 * _numba.AUTO_WORK)
    assert asked == [1]


def test_environment_variable_turns_the_kernels_off(monkeypatch):
    monkeypatch.setenv("MLIMPUTE_NUMBA", "0")
    _numba.prefer(10 * _numba.AUTO_WORK)
    assert not _numba.enabled()
    monkeypatch.setenv("MLIMPUTE_NUMBA", " 0 ")
    assert not _numba.enabled()
    monkeypatch.setenv("MLIMPUTE_NUMBA", "1")
    assert _numba.enabled() == _numba.available()


def test_a_numba_that_does_not_import_is_reported_and_not_used(monkeypatch):
    real = importlib.import_module

    def broken(name, *args):
        if name == "numba":
            raise ImportError("numba needs another numpy")
        return real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(importlib, "import_module", broken)
    _numba.available.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="does not import"):
            assert not _numba.available()
        monkeypatch.setenv("MLIMPUTE_NUMBA", "1")
        assert not _numba.enabled()
    finally:
        _numba.available.cache_clear()


def test_a_long_run_loads_numba_only_where_the_kernels_serve_a_variable():
    pytest.importorskip("numba")
    import os
    import subprocess
    import sys

    code = """
import sys, warnings
import mlimpute._numba as nb
import mlimpute.sampler.streamed as sm
from mlimpute.datasets import classroom
warnings.simplefilter("ignore")
df = classroom(1, rng=1).incomplete
f = {"grade": "~ skill + (1 | class)"}
nb.AUTO_WORK = 10_000  # a long run, for these data
sm.STREAM_MIN_ROWS = 0  # read in chunks: no kernel serves it
df.mi.impute(f, m=2, iterations=20, rng=1)
print("numba" in sys.modules)
sm.STREAM_MIN_ROWS = 10**9
df.mi.impute(f, m=2, iterations=20, rng=1)
print("numba" in sys.modules)
"""
    env = {k: v for k, v in os.environ.items() if k != "MLIMPUTE_NUMBA"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.split() == ["False", "True"], out.stderr
