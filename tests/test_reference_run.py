"""The same rng gives the same imputations as the recorded run, draw for draw.

``tests/data/reference_run.npz`` was written by ``tests/data/make_reference_run.py`` before
the package was reorganised; any change that alters a draw (a reordered random call, a
different algorithm) fails here and must say so, and re-record the file, on purpose.

The file records the numpy code (``MLIMPUTE_NUMBA=0``). With numba installed the multilevel
normal model's step can run compiled (``mlimpute.models.kernels``), which gives the same
numbers bit for bit: the second test checks the recorded values there.
"""

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parent / "data"


def _script():
    spec = importlib.util.spec_from_file_location(
        "make_reference_run", DATA / "make_reference_run.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _now():
    script = _script()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        now = {}
        for k, imp in enumerate(script.reference_runs()):
            now.update({f"run{k}|{key}": v for key, v in script.imputed_values(imp).items()})
    return now


def test_imputations_are_those_recorded(monkeypatch):
    monkeypatch.setenv("MLIMPUTE_NUMBA", "0")  # the recorded run is the numpy code's
    recorded = np.load(DATA / "reference_run.npz")
    now = _now()
    assert sorted(now) == sorted(recorded.files)
    for key in recorded.files:
        np.testing.assert_array_equal(now[key], recorded[key], err_msg=key)


def test_compiled_step_gives_the_recorded_imputations(monkeypatch):
    pytest.importorskip("numba")
    monkeypatch.setenv("MLIMPUTE_NUMBA", "1")
    recorded = np.load(DATA / "reference_run.npz")
    now = _now()
    assert sorted(now) == sorted(recorded.files)
    for key in recorded.files:
        np.testing.assert_array_equal(now[key], recorded[key], err_msg=key)
