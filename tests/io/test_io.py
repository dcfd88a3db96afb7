"""Saving and opening imputations, completed data out, data files in (mlimpute.io)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import mlimpute
from mlimpute import io
from mlimpute.errors import DataError, DataTypeError, UnsupportedError

FORMATS = {"netcdf": (io.to_netcdf, "imp.nc"), "zarr": (io.to_zarr, "imp.zarr")}
ODD = "z w/odd %name é"  # slash, percent, blank, non-ASCII
HOLES = ["i64", "boo", "s", "ss", "o", "mixed", "cat_empty"]


def frame(index: pd.Index | None = None, n: int = 48) -> pd.DataFrame:
    """Two incomplete numeric columns to impute, every other dtype alongside (with holes)."""
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(6), n // 6)
    x = rng.normal(size=n)
    y = x + rng.normal(size=6)[g] + rng.normal(size=n)
    y[rng.random(n) < 0.3] = np.nan
    z = (x + rng.normal(size=n)).astype(np.float32)
    z[rng.random(n) < 0.2] = np.nan
    hole = rng.random(n) < 0.2
    df = pd.DataFrame(
        {
            "my class": g,
            "x": x,
            "y": y,
            ODD: z,
            "cat": pd.Categorical(
                rng.choice(["lo", "hi", "mid"], n), ["lo", "mid", "hi"], ordered=True
            ),
            "cat_int": pd.Categorical(rng.choice([3, 1, 2], n)),
            "b": rng.random(n) < 0.5,
            "i64": pd.array(np.where(hole, None, rng.integers(0, 9, n)), dtype="Int64"),
            "boo": pd.array(np.where(hole, None, rng.random(n) < 0.5), dtype="boolean"),
            "u8": rng.integers(0, 200, n).astype(np.uint8),
            "t": pd.date_range("2020-01-01", periods=n, freq="h"),
            "ttz": pd.date_range("2020-03-28", periods=n, freq="h", tz="Europe/Amsterdam"),
            "s": pd.Series(np.where(hole, None, rng.choice(["a", "bé", ""], n))),
            "ss": pd.Series(np.where(hole, None, rng.choice(["a", "b"], n)), dtype="string"),
            "o": pd.Series(
                [
                    None
                    if k % 7 == 0
                    else np.nan
                    if k % 11 == 0
                    else pd.NA
                    if k % 13 == 0
                    else f"o{k}"
                    for k in range(n)
                ],
                dtype=object,
            ),
            "mixed": pd.Series(
                [k if k % 3 else f"s{k}" if k % 2 else None for k in range(n)], dtype=object
            ),
            "td": pd.to_timedelta(np.arange(n), unit="s"),
            "per": pd.period_range("2020-01", periods=n, freq="M"),
            "cat_empty": pd.Categorical([np.nan] * n, categories=[]),
        }
    )
    if index is not None:
        df.index = index
    df.columns.name = "variables"
    df.attrs = {"source": "test"}
    return df


def imputed(df: pd.DataFrame) -> mlimpute.MultiplyImputed:
    """Impute y and the oddly named column; keep the full frame (with holes) as the data."""
    formulas = {"y": "~ x + (1 | `my class`)", ODD: "~ x + y + cmean(y) + (1 | `my class`)"}
    imp = mlimpute.impute(df.drop(columns=HOLES), formulas, m=3, iterations=4, rng=5)
    # the other columns' holes are not imputed (categorical imputation arrives later): attach
    # them to the result so that their encoding round-trips too
    return mlimpute.MultiplyImputed(imp.dataset, df.copy(), imp.spec, ["an event"])


@pytest.fixture(scope="module")
def imp() -> mlimpute.MultiplyImputed:
    return imputed(frame())


def assert_same(a: mlimpute.MultiplyImputed, b: mlimpute.MultiplyImputed) -> None:
    xr.testing.assert_identical(a.dataset, b.dataset)
    assert list(a.dataset.data_vars) == list(b.dataset.data_vars)
    for k in a.dataset.variables:
        assert a.dataset[k].dtype == b.dataset[k].dtype, k
    pd.testing.assert_frame_equal(a.data, b.data, check_freq=False)
    assert a.data.attrs == b.data.attrs
    assert [type(v) for v in a.data["o"]] == [type(v) for v in b.data["o"]]
    assert a.spec == b.spec
    assert a.events == b.events
    for i in range(a.m + 1):
        pd.testing.assert_frame_equal(a.complete(i), b.complete(i), check_freq=False)
    pd.testing.assert_frame_equal(a.complete("long"), b.complete("long"), check_freq=False)
    xr.testing.assert_identical(a.traces, b.traces)


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_every_dtype(imp, tmp_path, fmt):
    write, name = FORMATS[fmt]
    before = imp.data.copy()
    write(imp, tmp_path / name)
    back = io.open(tmp_path / name)
    assert_same(imp, back)
    pd.testing.assert_frame_equal(imp.data, before)  # the user's data untouched
    assert back.spec.seed == 5 and back.spec.formulas == imp.spec.formulas
    assert back.variables == ["y", ODD]


INDEXES = {
    "multi": pd.MultiIndex.from_arrays(
        [
            np.repeat(["a b", "c"], 24),
            np.arange(48) % 7,
            pd.date_range("2021", periods=48, tz="UTC"),
        ],
        names=["s", None, 3],
    ),
    "nonunique": pd.Index(np.arange(48) % 5, name="k"),
    "str": pd.Index([f"r{k}" for k in range(48)]),
    "object": pd.Index([f"r{k}" for k in range(48)], dtype=object),
    "datetime": pd.date_range("2020", periods=48, freq="D", name="date"),
    "range": pd.RangeIndex(10, 106, 2, name="rid"),
    "categorical": pd.CategoricalIndex(np.repeat(["x", "y", "z"], 16)),
}


@pytest.mark.parametrize(("fmt", "index"), [("zarr", "multi"), *(("netcdf", k) for k in INDEXES)])
def test_round_trip_index(imp, tmp_path, fmt, index):
    write, name = FORMATS[fmt]
    # imputed cells are addressed by row position, so any index fits the same dataset
    data = imp.data.set_axis(INDEXES[index])
    imp = mlimpute.MultiplyImputed(imp.dataset, data, imp.spec, imp.events)
    write(imp, tmp_path / name)
    back = io.open(tmp_path / name)
    assert_same(imp, back)
    pd.testing.assert_index_equal(back.data.index, imp.data.index, exact=True, check_freq=False)
    if index == "datetime":
        assert back.data.index.freq == data.index.freq


def test_netcdf_readable_by_xarray(imp, tmp_path):
    io.to_netcdf(imp, tmp_path / "imp.nc")
    with xr.open_dataset(tmp_path / "imp.nc", engine="h5netcdf") as ds:
        assert ds.attrs["mlimpute_format"] == io.FORMAT_VERSION
        assert ds.attrs["mlimpute_version"] == mlimpute.__version__
        np.testing.assert_array_equal(ds["y"].values, imp.dataset["y"].values)
    with xr.open_dataset(tmp_path / "imp.nc", engine="h5netcdf", group="data") as ds:
        np.testing.assert_array_equal(ds["x"].values, imp.data["x"].to_numpy())


def test_save_dispatches_and_overwrites(imp, small, tmp_path):
    io.save(small, tmp_path / "a.zarr")
    io.save(imp, tmp_path / "a.zarr")  # overwrites a different result
    io.save(small, tmp_path / "a.nc")
    io.save(imp, tmp_path / "a.nc")
    for p in ("a.zarr", "a.nc"):
        xr.testing.assert_identical(io.open(tmp_path / p).dataset, imp.dataset)
    assert (tmp_path / "a.zarr").is_dir() and (tmp_path / "a.nc").is_file()


def test_newer_format_is_a_clear_error(imp, tmp_path, monkeypatch):
    monkeypatch.setattr(io, "FORMAT_VERSION", io.FORMAT_VERSION + 1)
    io.to_netcdf(imp, tmp_path / "new.nc")
    monkeypatch.undo()
    with pytest.raises(DataError, match="newer|upgrade mlimpute"):
        io.open(tmp_path / "new.nc")


def test_open_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.nc"):
        io.open(tmp_path / "nope.nc")
    xr.Dataset({"a": ("x", [1.0])}).to_netcdf(tmp_path / "plain.nc", engine="h5netcdf")
    with pytest.raises(DataError, match="not an mlimpute imputation file"):
        io.open(tmp_path / "plain.nc")
    (tmp_path / "text.nc").write_text("hello")
    with pytest.raises(DataError, match="not a readable"):
        io.open(tmp_path / "text.nc")


def test_unsupported_column_dtype_names_the_column(imp, tmp_path):
    data = imp.data.assign(obj=[{"a": 1}] * len(imp.data))
    bad = mlimpute.MultiplyImputed(imp.dataset, data, imp.spec)
    with pytest.raises(DataTypeError, match="column 'obj'"):
        io.to_netcdf(bad, tmp_path / "bad.nc")
    pa = pytest.importorskip("pyarrow")
    data = imp.data.assign(arrow=pd.array(range(len(imp.data)), dtype=pd.ArrowDtype(pa.int64())))
    with pytest.raises(DataTypeError, match="column 'arrow'"):
        io.to_netcdf(mlimpute.MultiplyImputed(imp.dataset, data, imp.spec), tmp_path / "b.nc")


def test_a_string_with_nul_is_refused_by_netcdf_not_zarr(imp, tmp_path):
    """h5py raised a raw ValueError ("VLEN strings do not support embedded NULLs")."""
    note = np.where(np.arange(len(imp.data)) % 2, "c", "a\x00b").astype(object)
    bad = mlimpute.MultiplyImputed(imp.dataset, imp.data.assign(note=note), imp.spec)
    with pytest.raises(DataError, match=r"column 'note' .*NUL.*imp\.to_zarr"):
        io.to_netcdf(bad, tmp_path / "bad.nc")
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporary left
    io.to_zarr(bad, tmp_path / "ok.zarr")
    assert io.open(tmp_path / "ok.zarr").data["note"].tolist() == note.tolist()


# -- completed data -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small():
    df = mlimpute.datasets.classroom(1, n_classes=6, class_size=5, rng=1).incomplete
    return mlimpute.impute(df, {"grade": "~ skill + (1 | class)"}, m=2, iterations=3, rng=2)


@pytest.mark.parametrize(("how", "suffix"), [("to_netcdf", ".nc"), ("to_zarr", ".zarr")])
def test_a_250_character_name_can_be_saved(small, tmp_path, how, suffix):
    """The temporary sibling's name was the target's plus a prefix: ENAMETOOLONG."""
    path = tmp_path / ("a" * (250 - len(suffix)) + suffix)
    getattr(small, how)(path)
    back = io.open(path)
    pd.testing.assert_frame_equal(back.complete(2), small.complete(2))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_250_character_name_for_completed_data(small, tmp_path):
    names = {"b" * 246 + ".csv": io.to_csv, "c" * 243 + ".csv.gz": io.to_csv}
    names["d" * 242 + ".parquet"] = io.to_parquet
    for name, write in names.items():
        [p] = write(small, tmp_path / name)
        back = pd.read_csv(p) if ".csv" in name else pd.read_parquet(p)
        assert p.name == name and len(back) == 2 * len(small.data)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)


def test_csv_per_imputation_and_long(small, tmp_path):
    files = io.to_csv(small, tmp_path / "c_{i:02d}.csv")
    assert [p.name for p in files] == ["c_01.csv", "c_02.csv"]
    for i, p in enumerate(files, 1):
        back = pd.read_csv(p)
        pd.testing.assert_frame_equal(back, small.complete(i), check_dtype=False)
    [long] = io.to_csv(small, tmp_path / "long.csv", include=True)
    back = pd.read_csv(long)
    assert list(back.columns) == ["imputation", *small.data.columns]
    assert back["imputation"].tolist() == list(np.repeat([0, 1, 2], len(small.data)))
    np.testing.assert_allclose(
        back["grade"].to_numpy(), small.complete("long", include=True)["grade"].to_numpy()
    )


def test_csv_writes_a_non_default_index(small, tmp_path):
    data = small.data.set_axis(pd.Index([f"c{k}" for k in range(len(small.data))], name="id"))
    imp = mlimpute.MultiplyImputed(small.dataset, data, small.spec)
    [p] = io.to_csv(imp, tmp_path / "x_{i}.csv")[:1]
    assert pd.read_csv(p, index_col="id").index.tolist() == data.index.tolist()


def test_parquet_and_stata(small, tmp_path):
    [p] = io.to_parquet(small, tmp_path / "long.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(p), small.complete("long"))
    data = small.data.rename(columns={"class": "klass"})  # 'class' is reserved in Stata
    small = mlimpute.MultiplyImputed(small.dataset, data, small.spec)
    files = io.write_completed(small, tmp_path / "d{i}.dta")
    assert len(files) == 2
    back = pd.read_stata(files[1])
    np.testing.assert_allclose(back["grade"], small.complete(2)["grade"])
    with pytest.raises(DataError, match="must end in"):
        io.write_completed(small, tmp_path / "x.xlsx")


# -- reading data --------------------------------------------------------------------------
def test_read_data_by_suffix(tmp_path):
    df = pd.DataFrame({"g": [1, 1, 2], "x": [0.5, None, 2.0]})
    df.to_csv(tmp_path / "d.csv", index=False)
    df.to_csv(tmp_path / "d.tsv", index=False, sep="\t")
    df.to_parquet(tmp_path / "d.parquet")
    df.to_stata(tmp_path / "d.dta", write_index=False)
    for name in ("d.csv", "d.tsv", "d.parquet", "d.dta"):
        back = io.read_data(tmp_path / name)
        np.testing.assert_allclose(back["x"], df["x"])
    with pytest.raises(FileNotFoundError, match="none.csv"):
        io.read_data(tmp_path / "none.csv")
    with pytest.raises(DataError, match="unknown file type '.xyz'"):
        io.read_data(tmp_path / "d.xyz")


def test_read_spss_without_pyreadstat_is_clear(tmp_path, monkeypatch):
    (tmp_path / "d.sav").write_bytes(b"")

    def no_pyreadstat(*args, **kwargs):
        raise ImportError("Missing optional dependency 'pyreadstat'.")

    monkeypatch.setattr(pd, "read_spss", no_pyreadstat)
    with pytest.raises(UnsupportedError, match="pip install pyreadstat"):
        io.read_data(tmp_path / "d.sav")
