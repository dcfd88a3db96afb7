"""Tests of the ``.mi`` accessor's descriptive methods: thin delegation, nothing kept."""

from __future__ import annotations

import importlib
import inspect
import pydoc
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import mlimpute  # registers .mi
from mlimpute.accessor import MIAccessor
from mlimpute.datasets import classroom
from mlimpute.describe import describe
from mlimpute.errors import SpecificationError
from mlimpute.pattern import MissingPattern, missing_pattern


@pytest.fixture
def df() -> pd.DataFrame:
    return classroom(2, rng=1).incomplete


def test_accessor_is_registered_and_holds_only_the_frame(df):
    acc = df.mi
    assert isinstance(acc, MIAccessor)
    assert vars(acc).keys() == {"_df"} and acc._df is df


def test_pattern_delegates_to_missing_pattern(df):
    pat = df.mi.pattern()
    assert isinstance(pat, MissingPattern)
    pd.testing.assert_frame_equal(pat.table, missing_pattern(df).table)
    assert pat.n_missing.to_dict() == {
        "class": 0,
        "skill": 0,
        "gender": 0,
        "grade": int(df["grade"].isna().sum()),
        "relation": int(df["relation"].isna().sum()),
    }


def test_describe_delegates(df):
    pd.testing.assert_frame_equal(df.mi.describe(cluster="class"), describe(df, "class"))
    pd.testing.assert_frame_equal(df.mi.describe(), describe(df))
    with pytest.raises(SpecificationError, match="'school'"):
        df.mi.describe(cluster="school")


def test_accessor_methods_do_not_modify_the_frame(df):
    df["cat"] = pd.Categorical(np.where(df["gender"] == 1, "f", "m"))
    before = df.copy(deep=True)
    df.mi.describe(cluster="class")
    df.mi.pattern()
    pd.testing.assert_frame_equal(df, before)


# -- help where users look: real signatures and the full documentation -------------------


def _params(func, drop: int) -> list[tuple[str, object, object]]:
    """(name, kind, default) of ``func``'s parameters after the first ``drop``."""
    params = list(inspect.signature(func).parameters.values())[drop:]
    return [(p.name, p.kind, p.default) for p in params]


def _assert_documented(doc: str, func) -> None:
    """Every parameter of ``func`` but the first has its entry in ``doc`` (if it has any)."""
    if "Parameters" not in (func.__doc__ or ""):
        return
    for name, kind, _ in _params(func, 1):
        if kind is inspect.Parameter.VAR_KEYWORD:
            continue
        assert f"\n{name} :" in doc or f", {name}" in doc or f"\n{name}," in doc, name


@pytest.mark.parametrize(
    "method, target",
    [
        ("impute", "mlimpute.impute:impute"),
        ("describe", "mlimpute.describe:describe"),
        ("pattern", "mlimpute.pattern:missing_pattern"),
    ],
)
def test_accessor_methods_have_the_signature_and_docs_of_what_they_call(method, target):
    module, name = target.split(":")
    func = getattr(importlib.import_module(module), name)
    bound = getattr(pd.DataFrame().mi, method)
    assert _params(bound, 0) == _params(func, 1)  # everything but the DataFrame
    doc = inspect.getdoc(bound)
    assert "Parameters" in doc or not _params(func, 1)
    _assert_documented(doc, func)
    assert "\ndf :" not in doc  # the accessor supplies the DataFrame
    # no Parameters section left empty (df.mi.pattern() takes no argument)
    assert not re.search(r"Parameters\n-+\n\s*\n\s*[A-Z][a-z]+\n-+\n", doc)
    assert ("Parameters" in doc) == bool(_params(func, 1))


@pytest.mark.parametrize(
    "method, target",
    [
        ("fit", "mlimpute.analysis:fit"),
        ("apply", "mlimpute.analysis:apply"),
        ("to_csv", "mlimpute.io.flat:to_csv"),
        ("to_parquet", "mlimpute.io.flat:to_parquet"),
        ("to_stata", "mlimpute.io.flat:to_stata"),
    ],
)
def test_result_methods_have_the_signature_and_docs_of_what_they_call(method, target):
    from mlimpute.result.imputed import MultiplyImputed

    module, name = target.split(":")
    func = getattr(importlib.import_module(module), name)
    unbound = getattr(MultiplyImputed, method)
    assert _params(unbound, 1) == _params(func, 1)  # everything but self / imp
    doc = inspect.getdoc(unbound)
    assert "\nimp :" not in doc
    assert ("Parameters" in doc) == ("Parameters" in func.__doc__)
    assert inspect.cleandoc(func.__doc__).split("\n\n")[1].split("\n")[0] in doc
    _assert_documented(doc, func)


def test_help_lists_the_public_names_only():
    assert all(not n.startswith("_") or n == "__version__" for n in mlimpute.__all__)
    assert dir(mlimpute) == sorted(mlimpute.__all__)
    text = pydoc.render_doc(mlimpute, renderer=pydoc.plaintext)
    for section in ("CLASSES", "FUNCTIONS"):
        body = text.split(section)[1].split("\nDATA")[0]
        assert "_Package" not in body and "_LAZY" not in body
    assert "impute(df" in text and "MultiplyImputed" in text


def test_import_loads_no_heavy_dependency():
    # quick imports: statistics, plotting, files and dask are loaded when used (not timed
    # here: timings on a shared machine are noise; the module list is what makes it quick)
    heavy = [
        "matplotlib",
        "statsmodels",
        "dask",
        "h5netcdf",
        "zarr",
        "xarray",
        "formulaic",
        "scipy.stats",
    ]
    code = (
        "import sys, pandas, mlimpute; pandas.DataFrame().mi; "
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
