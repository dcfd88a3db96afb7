"""How one variable is imputed: its model and its level (mlimpute/spec/variable.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlimpute.errors import DataError
from mlimpute.spec.build import build_spec


def _three_levels(S=8, C=3, P=5, seed=4):
    r = np.random.default_rng(seed)
    school = np.repeat(np.arange(S), C * P)
    klass = np.tile(np.repeat(np.arange(1, C + 1), P), S)
    k = school * C + klass - 1
    n = len(school)
    df = pd.DataFrame(
        {"school": school, "class": klass, "x": r.normal(size=n), "size": r.normal(size=S * C)[k]}
    )
    df["y"] = df.x + df["size"] + r.normal(size=n)
    df.loc[r.random(n) < 0.3, "y"] = np.nan
    df.loc[np.isin(k, [2, 9]), "size"] = np.nan
    return df, k


@pytest.mark.parametrize("cluster", ["class", ["school", "class"]])
def test_a_cluster_rows_method_for_a_varying_column_names_the_clusters(cluster):
    """Two levels and three alike: DataError naming the cluster(s) it varies within
    (variable_types.md), not a SpecificationError naming none."""
    df, k = _three_levels()
    if cluster == "class":
        df["class"] = k
    df.loc[0, "size"] += 0.1  # school 0, class 1
    named = r"0" if cluster == "class" else r"\(0, 1\)"
    with pytest.raises(DataError, match=rf"'size'.*'2lonly.norm'.*vary within 1 cluster.*{named}"):
        build_spec(df, cluster=cluster, method={"size": "2lonly.norm"})


def test_a_cluster_rows_method_for_a_sparsely_observed_class_variable_is_accepted():
    """Observed once per class: constant within its classes as far as the data tell, so
    a class-rows method is used as with two levels (no refusal)."""
    df, k = _three_levels()
    once = ~pd.Series(k).duplicated().to_numpy()
    df.loc[~once, "size"] = np.nan
    spec = build_spec(
        df,
        {"size": "~ cmean(x) + cmean(y)"},
        cluster=["school", "class"],
        method={"size": "2lonly.norm"},
    )
    assert spec.variables_by_name["size"].level == 2
