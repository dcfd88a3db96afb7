"""The grouping factor and what follows from it (mlimpute/spec/factors.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlimpute.codec import sorted_codes
from mlimpute.spec.defaults import is_level2
from mlimpute.spec.factors import _resolve_cluster


@pytest.mark.parametrize(
    "g",
    [[1, 1, 2, 3], [3, 1, 2, 4], ["b", "a", "b", "c"], [0.5, 0.5, -0.0, 0.0], [7, 7, 7, 7]],
)
def test_the_cluster_columns_level_is_is_level2s(g):
    df = pd.DataFrame({"x": [1.0, 2.0, np.nan, 4.0], "g": g, "w": [5, 5, 6, 7]})
    cols = _resolve_cluster(df, {}, "g")
    codes, _ = sorted_codes(df["g"])
    assert cols.levels == {c: 2 if is_level2(codes, df[c]) else 1 for c in df.columns}
    assert list(cols.levels) == list(df.columns)
