"""The switch between the compiled kernels and the numpy code (mlimpute._numba)."""

import importlib

import pytest

from mlimpute import _numba


def test_kernels_are_off_unless_switched_on(monkeypatch):
    monkeypatch.delenv("MLIMPUTE_NUMBA", raising=False)
    assert not _numba.enabled()  # installing numba alone changes nothing
    monkeypatch.setenv("MLIMPUTE_NUMBA", "yes")
    assert not _numba.enabled()


def test_environment_variable_turns_the_kernels_off(monkeypatch):
    monkeypatch.setenv("MLIMPUTE_NUMBA", "0")
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
