"""Continuing chains (``imp.iterate``) and adding imputations (``imp.extend``) give exactly
the results of one longer or larger run with the same ``rng``, whatever the executor."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import mlimpute
from mlimpute.errors import SpecificationError


def _data() -> pd.DataFrame:
    r = np.random.default_rng(7)
    J, n = 15, 8
    g = np.repeat(np.arange(J), n)
    u = r.normal(size=J)[g]
    x = r.normal(size=J * n)
    w2 = (r.normal(size=J) + 1.0)[g]  # a level-2 variable
    y = x + u + 0.5 * w2 + r.normal(size=J * n)
    s = y + r.normal(size=J * n)
    df = pd.DataFrame(
        {
            "g": g,
            "x": x,
            "y": y,
            "b": (s > 0).astype(float),
            "o": pd.Categorical(
                np.where(s > 1, "hi", np.where(s < -1, "lo", "mid")),
                categories=["lo", "mid", "hi"],
                ordered=True,
            ),
            "p": np.round(s + x, 1),
            "c": pd.Categorical(np.where(x > 0.5, "u", np.where(x < -0.5, "v", "w"))),
            "w": w2,
        }
    )
    for col, step in [("y", 5), ("b", 6), ("o", 7), ("p", 4), ("c", 9)]:
        df.loc[df.index[(np.arange(len(df)) % step) == 1], col] = np.nan
    df.loc[df["g"].isin([2, 9]), "w"] = np.nan  # whole clusters
    return df


FORMULAS = {
    "y": "~ x + b + w + (1 | g)",
    "b": "~ x + y + (1 | g)",
    "o": "~ x + y + (1 | g)",
    "p": "~ x + y + (1 | g)",
    "c": "~ x + (1 | g)",
    "w": "~ cmean(y) + cmean(x)",
}
METHOD = {
    "y": "2l.norm",
    "b": "2l.bin",
    "o": "2l.ordinal",
    "p": "2l.pmm",
    "c": "2l.nominal",
    "w": "2lonly.norm",
}


def _run(df, **kw):
    kw.setdefault("rng", 11)
    return mlimpute.impute(df, FORMULAS, method=METHOD, cluster="g", **kw)


def _assert_same(a: mlimpute.MultiplyImputed, b: mlimpute.MultiplyImputed) -> None:
    xr.testing.assert_identical(a.dataset, b.dataset)
    assert a.spec == b.spec
    assert a.events == b.events
    for i in range(1, a.m + 1):
        pd.testing.assert_frame_equal(a.complete(i), b.complete(i))


@pytest.fixture(scope="module")
def df():
    return _data()


@pytest.fixture(scope="module")
def short(df):
    return _run(df, m=3, iterations=6)


def test_the_run_uses_every_model_kind(short):
    assert {v.name: v.method for v in short.spec.variables} == METHOD
    assert [v.level for v in short.spec.variables] == [1, 1, 1, 1, 1, 2]


@pytest.mark.parametrize("n_jobs", [None, 2])
def test_iterate_equals_the_longer_run(df, short, n_jobs):
    longer = _run(df, m=3, iterations=10)
    _assert_same(short.iterate(4, n_jobs=n_jobs), longer)
    assert short.dataset.sizes["iteration"] == 6  # the shorter result is left as it was


def test_iterate_twice_and_from_the_same_result_again(df, short):
    longer = _run(df, m=3, iterations=10)
    _assert_same(short.iterate(1).iterate(3), longer)
    _assert_same(short.iterate(4), longer)  # the stored chain states were not consumed


@pytest.mark.parametrize("n_jobs", [None, 2])
def test_extend_equals_the_larger_run(df, short, n_jobs):
    larger = _run(df, m=5, iterations=6)
    _assert_same(short.extend(2, n_jobs=n_jobs), larger)


def test_extend_then_iterate(df, short):
    _assert_same(short.extend(1).iterate(2), _run(df, m=4, iterations=8))


def test_extend_with_a_seed_sequence_and_no_seed(df):
    seq = np.random.SeedSequence(2005)
    a = _run(df, m=2, iterations=3, rng=np.random.SeedSequence(2005)).extend(1)
    _assert_same(a, _run(df, m=3, iterations=3, rng=seq))
    fresh = _run(df, m=2, iterations=3, rng=None)
    _assert_same(fresh.extend(1), _run(df, m=3, iterations=3, rng=fresh.spec.seed))


@pytest.mark.parametrize("n_jobs", [None, 2])
def test_model_based_run_iterates_and_extends(n_jobs):
    r = np.random.default_rng(0)
    d = pd.DataFrame({"g": np.repeat(range(12), 6), "x": r.normal(size=72)})
    d["z"] = r.normal(size=72)
    d["y"] = d.x + d.z + r.normal(size=72)
    d.loc[::4, "x"] = np.nan
    d.loc[1::5, "y"] = np.nan
    d.loc[2::7, "z"] = np.nan

    def run(**kw):
        return mlimpute.impute(d, model="y ~ x + z + (1 + x | g)", rng=3, **kw)

    short = run(m=3, iterations=4)
    _assert_same(short.iterate(3, n_jobs=n_jobs), run(m=3, iterations=7))
    _assert_same(short.extend(2, n_jobs=n_jobs), run(m=5, iterations=4))


def test_bad_arguments_and_missing_chain_states(short):
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(SpecificationError, match="n must be a positive int"):
            short.iterate(bad)
        with pytest.raises(SpecificationError, match="k must be a positive int"):
            short.extend(bad)
    with pytest.raises(SpecificationError, match="n_jobs or client"):
        short.iterate(1, n_jobs=2, client=object())
    bare = mlimpute.MultiplyImputed(short.dataset, short.data, short.spec, short.events)
    with pytest.raises(SpecificationError, match="does not hold"):
        bare.iterate(1)
    with pytest.raises(SpecificationError, match="does not hold"):
        bare.extend(1)


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_an_opened_file_iterates_like_the_longer_run(df, short, tmp_path, suffix):
    path = tmp_path / f"study{suffix}"
    short.to_zarr(path) if suffix == ".zarr" else short.to_netcdf(path)
    back = mlimpute.open(path)
    assert len(back.chains) == short.m
    _assert_same(back.iterate(4), _run(df, m=3, iterations=10))
    _assert_same(back.extend(1), _run(df, m=4, iterations=6))


def test_a_model_based_file_iterates(tmp_path):
    r = np.random.default_rng(1)
    d = pd.DataFrame({"g": np.repeat(range(10), 6), "x": r.normal(size=60)})
    d["y"] = d.x + r.normal(size=60)
    d.loc[::4, "x"] = np.nan

    def run(**kw):
        return mlimpute.impute(d, model="y ~ x + (1 | g)", m=2, rng=5, **kw)

    run(iterations=3).to_netcdf(tmp_path / "m.nc")
    _assert_same(mlimpute.open(tmp_path / "m.nc").iterate(2), run(iterations=5))


def test_stored_states_name_only_model_state_classes(short):
    import json

    from mlimpute.errors import DataError
    from mlimpute.io.chains import ATTR, decode_chains, encode_chains

    ds = encode_chains(short.chains)
    assert all(v.dtype.kind in "biuf" for v in ds.data_vars.values())  # no objects
    doc = json.loads(ds.attrs[ATTR])
    assert doc["chains"][0]["states"]["items"]["y"]["class"] == (
        "mlimpute.models.ml_norm.MultilevelNormState"
    )
    for bad in ("os.system", "mlimpute.models.registry.register", "subprocess.Popen"):
        doc["chains"][0]["states"]["items"]["y"]["class"] = bad
        tampered = ds.copy()
        tampered.attrs[ATTR] = json.dumps(doc)
        with pytest.raises(DataError, match="class|model state"):
            decode_chains(tampered)


def test_a_file_without_chain_states_refuses_to_iterate(short, tmp_path):
    bare = mlimpute.MultiplyImputed(short.dataset, short.data, short.spec, short.events)
    bare.to_netcdf(tmp_path / "bare.nc")
    back = mlimpute.open(tmp_path / "bare.nc")
    assert back.chains is None
    with pytest.raises(SpecificationError, match="saved without chain states"):
        back.iterate(2)


def test_new_data_are_completed_alike_whatever_the_route():
    # the final states of a continued run are those of the longer run, so new rows are
    # completed bit-identically from either (and from either after extend())
    from mlimpute.datasets import classroom

    df = classroom(1, rng=1).incomplete
    f = {"grade": "~ skill + (1 | class)"}
    new = df.iloc[:5].assign(grade=np.nan)
    new.iloc[2:, 0] = 77  # a class not seen in training
    a = mlimpute.impute(df, f, m=2, iterations=3, rng=1).iterate(2).extend(1)
    b = mlimpute.impute(df, f, m=3, iterations=5, rng=1)
    assert a.impute_new(new, rng=4).dataset.identical(b.impute_new(new, rng=4).dataset)


def test_unsorted_rows_iterate_and_extend_like_the_longer_and_larger_run(df):
    # rows not sorted by cluster: the chain states read the result's rows in the
    # sampler's order (result.assemble.CellViews with a permutation)
    shuffled = df.iloc[np.random.default_rng(3).permutation(len(df))]
    shuffled.index = pd.Index(np.arange(len(df)) * 2 + 5)
    short = _run(shuffled, m=2, iterations=3)
    _assert_same(short.iterate(2), _run(shuffled, m=2, iterations=5))
    _assert_same(short.extend(1), _run(shuffled, m=3, iterations=3))


@pytest.mark.parametrize("what", ["iterate", "extend"])
def test_chains_stopped_at_different_iterations_are_refused(short, what):
    """Such a result (an edited file) is no run's: neither continued nor extended."""
    from dataclasses import replace

    chains = list(short.chains)
    chains[0] = replace(chains[0], iterations=chains[0].iterations + 5)
    odd = mlimpute.MultiplyImputed(
        short.dataset, short.data, short.spec, short.events, chains=chains
    )
    with pytest.raises(SpecificationError, match=rf"{what}\(\) needs every chain stopped"):
        getattr(odd, what)(1)
