"""Every example in the package's docstrings runs and prints what it shows.

The standard asks for a short runnable example in every public docstring; running them
here keeps them true (module splits once left examples calling names the new module
did not import).
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import warnings

import matplotlib
import pytest

import mlimpute

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(mlimpute.__path__, prefix="mlimpute.")
    if not m.name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    monkeypatch.setenv("MLIMPUTE_NUMBA", "0")  # numba not loaded for the examples (same numbers)
    module = importlib.import_module(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short example runs may warn about R-hat
        result = doctest.testmod(
            module,
            optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
            verbose=False,
            report=True,
        )
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
