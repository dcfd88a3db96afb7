"""Free memory given back after each stage of a large run (mlimpute/_heap.py)."""

from __future__ import annotations

import platform
import warnings

import mlimpute  # noqa: F401  (registers the accessor)
from mlimpute import _heap
from mlimpute.datasets import IMPUTATION_FORMULAS, classroom


def test_a_large_run_trims_after_each_stage(monkeypatch):
    calls = []
    monkeypatch.setattr(_heap, "_trim", lambda: lambda pad: calls.append(pad))
    df = classroom(2, n_classes=30, class_size=20, rng=1).incomplete
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df.mi.impute(IMPUTATION_FORMULAS[2], m=2, iterations=1, rng=1)
        assert calls == []  # a small run: nothing
        monkeypatch.setattr(_heap, "TRIM_ROWS", 1)
        df.mi.impute(IMPUTATION_FORMULAS[2], m=2, iterations=1, rng=1, batch=1)
    # the start, the plan, each chain, each chain's values in the result
    assert calls == [0] * (1 + 1 + 2 + 2)


def test_without_glibc_nothing_happens(monkeypatch):
    monkeypatch.setattr(_heap, "_trim", lambda: None)
    _heap.release_free_memory(10**9)  # no error


def test_glibc_trim_is_found_where_there_is_one():
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert _heap._trim() is not None
        _heap.release_free_memory(10**9)
