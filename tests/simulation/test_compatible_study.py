"""The compatible-imputation study: its data generators, resumable runner and summary."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlimpute.errors import SpecificationError
from mlimpute.simulation.compatible.designs import DESIGNS
from mlimpute.simulation.compatible.report import load, summarise, to_markdown
from mlimpute.simulation.compatible.study import CompatibleConfig, run_replication, run_study


def _pooled(design: str, draws: int = 40):
    """``draws`` data sets of a design stacked (cluster ids made unique)."""
    rng = np.random.default_rng(5)
    complete, incomplete = [], []
    for k in range(draws):
        c, i = DESIGNS[design].generate(rng)
        complete.append(c.assign(g=c["g"] + 1000 * k))
        incomplete.append(i.assign(g=i["g"] + 1000 * k))
    return pd.concat(complete), pd.concat(incomplete)


# target missing shares; the achieved share over 40 data sets of 1,000 rows has a binomial
# MC SE below 0.0025 (cluster-level z: 4,000 clusters, SE 0.0063), so 0.02 is > 3 SE
_SHARES = {"a": {"x": 0.25, "y": 0.15}, "b": {"x": 0.20, "z": 0.20}, "c": {"x": 0.30}}


@pytest.mark.parametrize("design", ["a", "b", "c", "d"])
def test_generators_hit_their_missing_shares_and_keep_observed_values(design):
    complete, incomplete = _pooled(design)
    for col in complete.columns:
        seen = incomplete[col].notna()
        np.testing.assert_array_equal(incomplete.loc[seen, col], complete.loc[seen, col])
    for col, share in _SHARES.get(design, {"x": 0.20}).items():
        assert abs(incomplete[col].isna().mean() - share) < 0.02, col
    assert set(incomplete.columns) >= {"y", "x", "g"}


def test_design_d_has_the_icc_and_the_contextual_effect_it_claims():
    complete, _ = _pooled("d", 60)
    # ICC of x: between-cluster variance of the means minus sampling variance / total;
    # 12,000 clusters of 5 give an SE near 0.01 for the ICC, so 0.04 is 4 SE
    means = complete.groupby("g")["x"].mean()
    within = complete.groupby("g")["x"].var().mean()
    between = means.var() - within / 5
    assert abs(between / (between + within) - 0.2) < 0.04
    # the cluster-mean regression is attenuated: the observed mean's reliability is
    # 0.2 / (0.2 + 0.8 / 5) = 0.56, so cmean's contextual effect is far below 0.3
    x_c = complete["x"] - complete.groupby("g")["x"].transform("mean")
    m = complete.groupby("g")["x"].transform("mean")
    X = np.column_stack([np.ones(len(m)), x_c, m])
    beta = np.linalg.lstsq(X, complete["y"], rcond=None)[0]
    assert abs(beta[1] - 0.5) < 0.03  # within-cluster slope unbiased
    assert beta[2] - beta[1] < 0.2  # contextual effect of the observed mean attenuated


def test_run_is_resumable_and_refuses_other_settings(tmp_path):
    cfg = CompatibleConfig(m=2, iterations=2, methods=("complete", "complete_cases"))
    first = run_study(tmp_path, designs=["c"], reps=2, config=cfg)
    again = run_study(tmp_path, designs=["c"], reps=3, config=cfg)
    assert (first["done"], again["done"], again["skipped"]) == (2, 1, 2)
    with pytest.raises(SpecificationError, match="settings"):
        run_study(tmp_path, designs=["c"], reps=1, config=CompatibleConfig(m=3, iterations=2))
    table = load(tmp_path)
    assert set(table["method"]) == {"complete", "complete_cases"}
    summary = summarise(table)
    assert (summary["reps"] == 3).all()
    assert "Design (c)" in to_markdown(summary, table)


def test_replication_is_reproducible_and_records_failures():
    cfg = CompatibleConfig(m=2, iterations=2, methods=("model", "chained"))
    one = run_replication("a", 1, cfg)
    two = run_replication("a", 1, cfg)
    for method in cfg.methods:
        assert "error" not in one["results"][method], one["results"][method]
        assert json.dumps(one["results"][method]["params"]) == json.dumps(
            two["results"][method]["params"]
        )
    with pytest.raises(SpecificationError, match="design"):
        run_replication("e", 0, cfg)
