"""Tests of mlimpute.io.flat: the long completed-data files and their imputation column."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

import mlimpute  # noqa: F401  (registers .mi)
from mlimpute.datasets import classroom
from mlimpute.errors import DataError


@pytest.fixture(scope="module")
def with_imputation_column():
    d = classroom(1, rng=1).incomplete.assign(imputation=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return d.mi.impute({"grade": "~ skill + (1 | class)"}, m=2, iterations=3, rng=1)


@pytest.mark.parametrize("writer", ["to_csv", "to_parquet"])
def test_long_file_takes_imputation_column(with_imputation_column, writer, tmp_path):
    imp = with_imputation_column
    suffix = ".csv" if writer == "to_csv" else ".parquet"
    with pytest.raises(DataError, match="imputation_column"):
        getattr(imp, writer)(tmp_path / f"a{suffix}")
    [path] = getattr(imp, writer)(tmp_path / f"b{suffix}", imputation_column=".imp")
    back = pd.read_csv(path) if writer == "to_csv" else pd.read_parquet(path)
    assert list(back.columns) == [".imp", *imp.data.columns]
    assert (back["imputation"] == 7).all()  # the data's own column, kept
    assert back[".imp"].tolist() == imp.complete("long", imputation_column=".imp")[".imp"].tolist()
