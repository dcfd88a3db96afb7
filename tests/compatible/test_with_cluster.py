"""``model=`` together with ``cluster=``: the analysis model decides the columns it names
(and the auxiliaries); every other incomplete column gets its default chained model,
conditional on all the other columns, visited after the model-based draws."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mlimpute
from mlimpute.compatible.designs import design_a
from mlimpute.errors import SpecificationError

MODEL = "y ~ x + z + (1 + x | g)"


@pytest.fixture(scope="module")
def data():
    r = np.random.default_rng(1)
    d = design_a(r, 30, 10)
    n = 300
    return pd.DataFrame(
        {
            "y": d.y_obs,
            "x": d.x_obs,
            "z": d.z,
            "g": d.cluster,
            "o": np.where(r.random(n) < 0.2, np.nan, d.x + r.standard_normal(n)),
            "c": pd.Series(np.where(r.random(n) < 0.5, "a", "b"), dtype=object).where(
                r.random(n) > 0.1
            ),
            "l2": np.repeat(np.where(r.random(30) < 0.2, np.nan, r.standard_normal(30)), 10),
        }
    )


def test_columns_outside_the_model_get_defaults(data):
    imp = data.mi.impute(model=MODEL, cluster="g", m=2, iterations=3, rng=1)
    spec = imp.spec
    assert spec.formulas["x"] == "~ z + (1 | g)"  # the model's factorisation is unchanged
    methods = {v.name: (v.method, v.level) for v in spec.variables}
    assert methods == {
        "y": ("2l.norm", 1),
        "x": ("2l.norm", 1),
        "o": ("2l.norm", 1),
        "c": ("2l.bin", 1),
        "l2": ("2lonly.norm", 2),
    }
    assert "y" in spec.formulas["o"] and "x" in spec.formulas["o"]  # conditional on all
    for k in (1, 2):
        c = imp.complete(k)
        assert not c.isna().any().any()
        assert c.groupby("g").l2.nunique().max() == 1
        obs = data.o.notna()
        assert np.array_equal(c.o[obs], data.o[obs])


def test_bit_identical_across_executors_continuation_and_files(data, tmp_path):
    kw = dict(model=MODEL, cluster="g", m=2, rng=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = data.mi.impute(iterations=4, **kw)
        b = data.mi.impute(iterations=4, n_jobs=2, **kw)
        short = data.mi.impute(iterations=2, **kw)
        c = short.iterate(2)
        path = str(tmp_path / "mc.nc")
        short.to_netcdf(path)
        back = mlimpute.open(path)
        assert back.spec == short.spec
        d = back.iterate(2)
    for k in (1, 2):
        for other in (b, c, d):
            pd.testing.assert_frame_equal(a.complete(k), other.complete(k))


def test_cluster_must_be_the_models_grouping_factor(data):
    with pytest.raises(SpecificationError, match="cluster='z' differs from the grouping"):
        data.mi.impute(model=MODEL, cluster="z", m=1, iterations=2, rng=1)
    with pytest.raises(SpecificationError, match=r"\['o', 'c', 'l2'\].*cluster="):
        data.mi.impute(model=MODEL, m=1, iterations=2, rng=1)
