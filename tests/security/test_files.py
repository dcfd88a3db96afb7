"""Files mlimpute writes and reads: confined paths, safe saves, exact round trips.

Spec files, imputation files and data files are untrusted input; the Python caller is
trusted. Each test reproduces a defect found in a security review (see the test names).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlimpute import io
from mlimpute.cli import main
from mlimpute.errors import DataError, DataTypeError, MlimputeWarning, SpecificationError
from mlimpute.io import atomic
from mlimpute.result.imputed import MultiplyImputed
from mlimpute.specfile import OutputSpec, StudySpec, read_spec, run

BIG = 2**53 + 3  # 9007199254740995: not a float64


def small(names=("g", "x", "y"), n=24, seed=1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g, x, y = names
    df = pd.DataFrame({g: np.repeat(np.arange(4), n // 4), x: rng.normal(size=n)})
    df[y] = df[x] + rng.normal(size=n)
    df.loc[df.index[::5], y] = np.nan
    return df


def impute(df, y="y", x="x", g="g"):
    return df.mi.impute({y: f"~ `{x}` + (1 | `{g}`)"}, m=2, iterations=2, rng=1)


@pytest.fixture(scope="module")
def imp():
    return impute(small())


@pytest.fixture(scope="module")
def other():
    """A second, different result: to tell an old file from a new one."""
    return impute(small(seed=2))


def same(a: MultiplyImputed, b: MultiplyImputed) -> bool:
    return a.dataset.identical(b.dataset) and a.data.equals(b.data)


# ------------------------------------------------------------------------------------------
# 1. paths of a specification file stay in its directory
# ------------------------------------------------------------------------------------------
SPEC = """[data]
path = "{data}"
[imputation]
m = 2
iterations = 2
seed = 1
[imputation.formulas]
y = "~ x + (1 | g)"
[output]
imputations = {imputations}
completed = {completed}
pooled = false
"""


def study_dir(tmp_path, data="d.csv", imputations="false", completed="false"):
    spec = tmp_path / "a" / "b" / "s.toml"
    spec.parent.mkdir(parents=True)
    small().to_csv(spec.parent / "d.csv", index=False)
    spec.write_text(SPEC.format(data=data, imputations=imputations, completed=completed))
    return spec


@pytest.mark.parametrize(
    ("key", "kw"),
    [
        ("output.completed", {"completed": '"../../victim.csv"'}),
        ("output.completed", {"completed": '"../../victim_{i}.csv"'}),
        ("output.imputations", {"imputations": '"../x/../../victim.nc"'}),
        ("output.imputations", {"imputations": '"{victim}"'}),  # absolute, outside
        ("data.path", {"data": "../../victim.csv"}),
    ],
)
def test_spec_paths_leaving_the_directory_are_refused(tmp_path, key, kw):
    victim = tmp_path / "victim.csv"
    victim.write_text("precious\n")
    kw = {k: v.replace("{victim}", str(tmp_path / "victim.nc")) for k, v in kw.items()}
    spec = study_dir(tmp_path, **kw)
    with pytest.raises(SpecificationError, match=key.replace(".", r"\.")) as info:
        run(spec)
    assert "victim" in str(info.value)  # names the path
    assert victim.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "victim.csv"]
    # the command line: status 2, one line naming the key
    assert main(["run", str(spec), "--quiet", "--no-progress"]) == 2
    assert victim.read_text() == "precious\n"


def test_spec_path_through_a_symlink_pointing_out_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    spec = study_dir(tmp_path, completed='"link/c.csv"')
    (spec.parent / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(SpecificationError, match=r"output\.completed: 'link/c\.csv'"):
        run(spec)
    assert list(outside.iterdir()) == []


def test_inside_paths_out_dir_and_allow_outside(tmp_path, capsys):
    spec = study_dir(tmp_path, completed='"./c_{i}.csv"', imputations='"imp.nc"')
    assert [p.name for p in run(spec).written] == ["imp.nc", "c_1.csv", "c_2.csv"]
    # absolute but inside: accepted
    spec.write_text(spec.read_text().replace('"imp.nc"', f'"{spec.parent / "abs.nc"}"'))
    assert run(spec).written[0] == spec.parent / "abs.nc"
    # --out DIR: outputs under DIR (still confined to it), data from the spec's directory
    out = tmp_path / "elsewhere"
    assert main(["run", str(spec), "--out", str(out), "--quiet", "--no-progress"]) == 2
    assert "output.imputations" in capsys.readouterr().err  # the absolute path is not in DIR
    spec.write_text(spec.read_text().replace(f'"{spec.parent / "abs.nc"}"', '"imp.nc"'))
    assert main(["run", str(spec), "--out", str(out), "--quiet", "--no-progress"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["c_1.csv", "c_2.csv", "imp.nc"]
    # --allow-outside: the user vouches for the file
    spec.write_text(spec.read_text().replace('"imp.nc"', '"../../mine.nc"'))
    assert main(["run", str(spec), "--quiet", "--no-progress"]) == 2
    assert main(["run", str(spec), "--allow-outside", "--quiet", "--no-progress"]) == 0
    assert (tmp_path / "mine.nc").is_file()
    assert run(spec, allow_outside=True).written[0] == spec.parent / "../../mine.nc"


@pytest.mark.parametrize(
    ("output", "match"),
    [
        ('completed = "d.csv"', r"output\.completed: .* is the data file"),
        ('pooled = "d.csv"', r"output\.pooled: .* is the data file"),
        ('pooled = "s.toml"', r"output\.pooled: .* is the specification file itself"),
        ('completed = "x.csv"\npooled = "./x.csv"', "output.pooled and output.completed name"),
    ],
)
def test_outputs_never_replace_the_data_the_spec_or_each_other(tmp_path, output, match):
    spec = study_dir(tmp_path)
    text = spec.read_text().replace("pooled = false\n", "")
    text = text.replace("completed = false", output)
    spec.write_text(text + '[analysis]\nformula = "y ~ x + (1 | g)"\n')
    data = (spec.parent / "d.csv").read_bytes()
    with pytest.raises(SpecificationError, match=match):
        run(spec)
    assert (spec.parent / "d.csv").read_bytes() == data and spec.read_text() == text + (
        '[analysis]\nformula = "y ~ x + (1 | g)"\n'
    )


@pytest.mark.parametrize("method", ["to_csv", "to_parquet"])
def test_a_failed_flat_write_keeps_the_old_file(tmp_path, monkeypatch, imp, other, method):
    path = tmp_path / ("c.csv.gz" if method == "to_csv" else "c.parquet")
    getattr(io, method)(imp, path)
    before = path.read_bytes()
    original = getattr(pd.DataFrame, method)

    def half(self, target, *args, **kwargs):
        # same suffixes: same compression and format (a short random name, see atomic.py)
        assert str(target).endswith("".join(path.suffixes)) and ".mlimpute-" in str(target)
        original(self.iloc[: len(self) // 2], target, *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, method, half)
    with pytest.raises(OSError):
        getattr(io, method)(other, path)
    monkeypatch.undo()
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [path.name]
    if method == "to_csv":
        assert pd.read_csv(path).shape[0] == 2 * len(imp.data)  # still gzip, complete


@pytest.mark.parametrize(
    "template",
    [
        "c{i:>999999999}.csv",
        "{0.__class__}.csv",
        "c{i!r}.csv",
        "c{}.csv",
        "c{i.real}.csv",
        "c}.csv",
    ],
)
def test_output_templates_take_only_i(tmp_path, imp, template):
    spec = study_dir(tmp_path, completed=json.dumps(template))
    with pytest.raises(SpecificationError, match=r"output\.completed: .*placeholder"):
        read_spec(spec)
    with pytest.raises(SpecificationError, match="placeholder"):
        io.to_csv(imp, tmp_path / template)
    with pytest.raises(SpecificationError, match="placeholder"):
        run(
            StudySpec(imp.spec.formulas, m=2, iterations=2, output=OutputSpec(completed=template)),
            imp.data,
        )
    assert [p.name for p in io.to_csv(imp, tmp_path / "c{i:03d}.csv")] == ["c001.csv", "c002.csv"]


def test_braces_outside_output_completed_are_refused(tmp_path):
    spec = study_dir(tmp_path, imputations='"imp{i}.nc"')
    with pytest.raises(SpecificationError, match=r"output\.imputations: .*brace"):
        read_spec(spec)


# ------------------------------------------------------------------------------------------
# 2 and 7. saves are atomic: a failed save leaves the old file and no temporary
# ------------------------------------------------------------------------------------------
def _failing(monkeypatch, method: str, exc: BaseException) -> None:
    """The data group's write raises after the root group has been written."""
    original = getattr(xr.Dataset, method)

    def write(self, *args, **kwargs):
        if kwargs.get("group") == "data":
            raise exc
        return original(self, *args, **kwargs)

    monkeypatch.setattr(xr.Dataset, method, write)


@pytest.mark.parametrize(
    "exc",
    [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt(), RuntimeError("boom")],
    ids=["ENOSPC", "KeyboardInterrupt", "RuntimeError"],
)
@pytest.mark.parametrize(("fmt", "method"), [("nc", "to_netcdf"), ("zarr", "to_zarr")])
def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch, imp, other, exc, fmt, method):
    path = tmp_path / f"imp.{fmt}"
    io.save(imp, path)
    _failing(monkeypatch, method, exc)
    with pytest.raises(type(exc)):
        io.save(other, path)
    monkeypatch.undo()
    assert same(io.open(path), imp)  # the old content, intact
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left
    io.save(other, path)  # and a later save replaces it
    assert same(io.open(path), other)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


@pytest.mark.parametrize(
    "exc",
    [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()],
    ids=["ENOSPC", "KeyboardInterrupt"],
)
def test_netcdf_write_failing_halfway_keeps_the_old_file(tmp_path, monkeypatch, imp, other, exc):
    """The bytes reach the disk through _write_bytes: half of them, then a full disk.

    (A real full disk inside HDF5 crashed the process; the file is now built in memory.)
    """
    path = tmp_path / "imp.nc"
    io.to_netcdf(imp, path)
    seen = []

    def half_then_fail(tmp, content):
        seen.append(tmp)
        with open(tmp, "xb") as f:
            f.write(bytes(content[: len(content) // 2]))
        raise exc

    monkeypatch.setattr(io, "_write_bytes", half_then_fail)
    with pytest.raises(type(exc)):
        io.to_netcdf(other, path)
    assert seen and seen[0].parent == tmp_path and seen[0].name.startswith(".mlimpute-")
    assert [p.name for p in tmp_path.iterdir()] == ["imp.nc"]  # the half file is gone
    assert same(io.open(path), imp)


def test_zarr_swap_without_atomic_exchange(tmp_path, monkeypatch, imp, other):
    path = tmp_path / "imp.zarr"
    io.to_zarr(imp, path)
    monkeypatch.setattr(atomic, "exchange", lambda a, b: False)
    io.to_zarr(other, path)
    assert same(io.open(path), other)
    assert [p.name for p in tmp_path.iterdir()] == ["imp.zarr"]
    # the second rename fails: the old store is renamed back
    real_rename, calls = os.rename, []

    def rename(a, b):
        calls.append(b)
        if str(b) == str(path) and len(calls) == 2:  # old aside, then the new one in: fails
            raise OSError(errno.EXDEV, "cross-device link")
        return real_rename(a, b)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError):
        io.to_zarr(imp, path)
    monkeypatch.undo()
    assert same(io.open(path), other)
    assert [p.name for p in tmp_path.iterdir()] == ["imp.zarr"]


# ------------------------------------------------------------------------------------------
# 3. saving never empties or replaces something that is not an mlimpute file
# ------------------------------------------------------------------------------------------
def test_saving_into_a_users_directory_is_refused(tmp_path, imp):
    results = tmp_path / "results"
    results.mkdir()
    (results / "thesis.tex").write_text("years of work")
    for save in (
        lambda: io.save(imp, results),
        lambda: imp.to_zarr(results),
        lambda: io.to_netcdf(imp, results),
    ):
        with pytest.raises(DataError, match="results"):
            save()
    assert [p.name for p in results.iterdir()] == ["thesis.tex"]
    assert (results / "thesis.tex").read_text() == "years of work"


def test_saving_over_foreign_files_is_refused(tmp_path, imp, other):
    foreign_nc = tmp_path / "theirs.nc"
    xr.Dataset({"v": ("x", [1.0, 2.0])}).to_netcdf(foreign_nc, engine="h5netcdf")
    text = tmp_path / "notes.nc"
    text.write_text("not a netCDF file")
    zarr_nc = tmp_path / "imp.zarr"
    io.to_zarr(imp, zarr_nc)
    before = {p: p.read_bytes() for p in (foreign_nc, text)}
    for path in (foreign_nc, text):
        with pytest.raises(DataError, match=path.name):
            io.to_netcdf(other, path)
        with pytest.raises(DataError, match=path.name):
            io.to_zarr(other, path)
        assert path.read_bytes() == before[path]
    with pytest.raises(DataError, match="imp.zarr"):
        io.to_netcdf(other, zarr_nc)  # a store of the other kind
    link = tmp_path / "link.nc"
    link.symlink_to(foreign_nc)
    with pytest.raises(DataError, match="symbolic link"):
        io.to_netcdf(other, link)
    assert same(io.open(zarr_nc), imp)


def test_overwriting_an_mlimpute_file_and_an_empty_directory_is_allowed(tmp_path, imp, other):
    for name in ("a.nc", "a.zarr"):
        io.save(imp, tmp_path / name)
        io.save(other, tmp_path / name)
        assert same(io.open(tmp_path / name), other)
    empty = tmp_path / "empty"
    empty.mkdir()
    io.save(imp, empty)
    assert same(io.open(empty), imp)


# ------------------------------------------------------------------------------------------
# 4. column names never collide with the file layout or the long format
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["nc", "zarr"])
def test_an_imputed_column_named_data(tmp_path, imp, fmt):
    named = impute(small(("g", "x", "data")), y="data")
    path = tmp_path / f"imp.{fmt}"
    io.save(imp, path)
    io.save(named, path)  # over a good file: it used to destroy it
    back = io.open(path)
    assert same(back, named) and back.complete(2).equals(named.complete(2))


def test_long_format_never_overwrites_a_column_named_imputation():
    df = small(("g", "imputation", "y"))
    res = impute(df, x="imputation")
    with pytest.raises(DataError, match="'imputation'.*imputation_column"):
        res.complete("long")
    long = res.complete("long", imputation_column=".imp")
    assert long.columns.tolist() == [".imp", "g", "imputation", "y"]
    assert long["imputation"].tolist() == df["imputation"].tolist() * 2
    assert long[".imp"].tolist() == [1] * len(df) + [2] * len(df)


@pytest.mark.parametrize(
    "name", ["mean", "sd", "iteration", "variable", "imputation", "x:row", "x:params"]
)
def test_imputing_a_column_named_like_the_results_own_variables_is_refused(name):
    """The result Dataset names traces and dimensions so; refused before any chain runs
    (before: the imputations of 'mean' were silently replaced by its trace, or xarray
    failed after all chains had run). Such columns, not imputed, round-trip: see below."""
    df = small(("g", "x", name))
    with pytest.raises(SpecificationError, match=f"cannot impute a column named '{name}'"):
        impute(df, y=name)


NAMES = [
    "data",
    "row",
    "mean",
    "sd",
    "iteration",
    "variable",
    "chain",
    "imputation",
    "columns%",
    "column%",
    "index%0",
    "v%41",
    "x%mask",
    "c%0",
    "c%1",
    "mlimpute",
    "",
    " ",
    "a b",
    "a/b",
    "/",
    ".",
    "..",
    "1abc",
    "é",
    "日本",
    "__x",
    "x:row",
    0,
    1,
    -7,
    2**70,
    1.5,
    True,
    None,
    "1",
    "zarr.json",
    ".zattrs",
    "A",
    "a",
    "Data",
    "aux",
    "con.txt",
    "a.",
    "x" * 300,
]
names = st.lists(
    st.one_of(
        st.sampled_from(NAMES),
        st.integers(),
        st.text(st.characters(blacklist_categories=("Cs",)), max_size=8),
    ),
    min_size=1,
    max_size=5,
)


def _with_names(imp, extra) -> MultiplyImputed:
    data = imp.data.copy()
    for k, name in enumerate(extra):
        data.insert(
            len(data.columns), name, np.arange(len(data)) * (k + 0.5), allow_duplicates=True
        )
    return MultiplyImputed(imp.dataset, data, imp.spec, imp.events)


def _same_frame(back: pd.DataFrame, data: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(back, data, check_column_type=True)
    assert [repr(c) for c in back.columns] == [repr(c) for c in data.columns]
    assert [type(c) for c in back.columns] == [type(c) for c in data.columns]


@pytest.mark.parametrize("fmt", ["nc", "zarr"])
def test_tricky_column_names_round_trip(tmp_path, imp, fmt):
    """All the awkward names at once (layout names, repeats, case, types), full save."""
    res = _with_names(imp, NAMES)
    io.save(res, tmp_path / f"x.{fmt}")
    back = io.open(tmp_path / f"x.{fmt}")
    _same_frame(back.data, res.data)
    assert same(back, res)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(extra=names)
def test_every_column_name_round_trips(tmp_path_factory, imp, extra):
    """Any names (repeated too, mixed types) beside the imputed ones, in both formats.

    Only the group of the observed data is written (it alone holds column names), to keep
    each example fast; the test above does full saves.
    """
    from mlimpute.io.arrays import _decode_data, _encode_data

    data = _with_names(imp, extra).data
    d = tmp_path_factory.mktemp("names")
    for zarr in (False, True):
        try:
            enc = _encode_data(data, zarr)
        except DataTypeError as exc:  # refused up front, by name: only huge ints
            assert any(isinstance(n, int) and abs(n) >= 2**63 for n in extra), exc
            return
        for v in enc.variables.values():
            v.encoding = {"_FillValue": None}
        if zarr:
            enc.to_zarr(d / "x.zarr", mode="w", group="data", consolidated=False)
            back = xr.open_zarr(
                d / "x.zarr", group="data", decode_cf=False, consolidated=False
            ).load()
        else:
            enc.to_netcdf(d / "x.nc", mode="w", engine="h5netcdf", group="data")
            back = xr.open_dataset(
                d / "x.nc", group="data", decode_cf=False, engine="h5netcdf"
            ).load()
        _same_frame(_decode_data(back), data)


def test_column_names_that_cannot_be_saved_are_refused_by_name(tmp_path, imp):
    data = imp.data.copy()
    data[pd.Timestamp("2020-01-01")] = 1.0
    res = MultiplyImputed(imp.dataset, data, imp.spec)
    with pytest.raises(DataTypeError, match="Timestamp"):
        io.to_netcdf(res, tmp_path / "x.nc")
    multi = imp.data.copy()
    multi.columns = pd.MultiIndex.from_tuples([("a", c) for c in multi.columns])
    with pytest.raises(DataTypeError, match="MultiIndex"):
        io.to_zarr(MultiplyImputed(imp.dataset, multi, imp.spec), tmp_path / "x.zarr")
    assert not (tmp_path / "x.nc").exists() and not (tmp_path / "x.zarr").exists()


# ------------------------------------------------------------------------------------------
# 5. integers exactly
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ints():
    df = small()
    df["big"] = pd.array([BIG + k if k % 3 else None for k in range(len(df))], dtype="Int64")
    df["i64"] = np.arange(len(df), dtype=np.int64) + (2**62 + 1)
    with warnings.catch_warnings():  # rounded imputations of an integer column: intended
        warnings.simplefilter("ignore", MlimputeWarning)
        res = df.mi.impute({"y": "~ x + (1 | g)", "big": "~ x"}, m=2, iterations=2, rng=1)
    return df, res


def test_observed_integers_are_exact_in_complete(ints):
    df, res = ints
    obs = df["big"].notna()
    for i in (0, 1, 2):
        out = res.complete(i)
        assert out["big"].dtype == "Int64" and out["i64"].dtype == np.int64
        assert out["big"][obs].tolist() == df["big"][obs].tolist()  # e.g. 9007199254740995
        assert out["i64"].tolist() == df["i64"].tolist()
    long = res.complete("long")
    assert long["big"][np.tile(obs, 2)].tolist() == df["big"][obs].tolist() * 2


def test_integers_are_exact_through_every_file(tmp_path, ints):
    df, res = ints
    for fmt in ("nc", "zarr"):
        back = io.open(io.save(res, tmp_path / f"i.{fmt}") or tmp_path / f"i.{fmt}")
        assert back.data["big"].equals(df["big"]) and back.data["i64"].equals(df["i64"])
        pd.testing.assert_frame_equal(back.complete(1), res.complete(1))
    obs = df["big"].notna().to_numpy()
    [p] = io.to_csv(res, tmp_path / "c_{i}.csv")[:1]
    csv = pd.read_csv(p, dtype={"big": "Int64"})
    assert csv["big"].tolist() == res.complete(1)["big"].tolist()
    assert csv["big"][obs].tolist() == df["big"][obs].tolist()  # the observed, exactly
    assert csv["i64"].tolist() == df["i64"].tolist()
    [p] = io.to_parquet(res, tmp_path / "long.parquet")
    back = pd.read_parquet(p)
    pd.testing.assert_frame_equal(back, res.complete("long"))
    assert back["big"][np.tile(obs, 2)].tolist() == df["big"][obs].tolist() * 2


def test_imputed_integers_are_clipped_without_overflow():
    from mlimpute.codec import decode

    out = decode(np.array([1e30, -1e30]), pd.Series([1], dtype="Int64"))
    assert out[0] > 2**62 and out[1] == -(2**63)  # was: 2**63 wrapped to -2**63


# ------------------------------------------------------------------------------------------
# 6. damaged metadata: a DataError naming the file and what is wrong
# ------------------------------------------------------------------------------------------
def _h5_edit(path, group, key, value):
    import h5py

    with h5py.File(path, "a") as f:
        obj = f[group] if group else f
        if value is None:
            del obj.attrs[key]
        else:
            obj.attrs[key] = value


DAMAGE = [
    ("", "mlimpute_spec", "{not json", "'mlimpute_spec' is not valid JSON"),
    ("", "mlimpute_spec", None, "'mlimpute_spec' is missing"),
    ("", "mlimpute_spec", "[1, 2]", "'mlimpute_spec' holds a JSON list"),
    ("", "mlimpute_spec", '{"variables": [{"name": 3}]}', "'mlimpute_spec' does not describe"),
    ("", "mlimpute_format", "abc", "'mlimpute_format' is 'abc'"),
    ("", "mlimpute_dataset", None, "'mlimpute_dataset' is missing"),
    ("", "mlimpute_dataset", '{"order": ["nope"], "coords": []}', "names a variable"),
    ("data", "mlimpute_data", '{"index": {}}', "'mlimpute_data' does not describe"),
    ("data", "mlimpute_frame_attrs", "[", "'mlimpute_frame_attrs' is not valid JSON"),
    ("y", "mlimpute", '{"dims": []}', "variable 'y'"),
    ("data/y", "mlimpute", '{"name": "y", "kind": "weird"}', "column variable 'y'"),
    ("data/x", "mlimpute", None, "'mlimpute' is missing"),
]


@pytest.mark.parametrize(("group", "key", "value", "match"), DAMAGE)
def test_damaged_netcdf_metadata_is_a_data_error(tmp_path, imp, group, key, value, match):
    path = tmp_path / "imp.nc"
    io.to_netcdf(imp, path)
    _h5_edit(path, group, key, value)
    with pytest.raises(DataError, match="imp.nc") as info:
        io.open(path)
    assert match in str(info.value)


def test_damaged_zarr_metadata_is_a_data_error(tmp_path, imp):
    path = tmp_path / "imp.zarr"
    io.to_zarr(imp, path)
    meta = path / "zarr.json"
    doc = json.loads(meta.read_text())
    doc["attributes"]["mlimpute_events"] = '{"a": 1}'
    meta.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"imp\.zarr.*'mlimpute_events' holds a JSON dict"):
        io.open(path)
    doc["attributes"]["mlimpute_events"] = "[]"
    doc["attributes"]["mlimpute_spec"] = 17
    meta.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"imp\.zarr.*'mlimpute_spec' is a int"):
        io.open(path)
    shutil.rmtree(path / "data")
    with pytest.raises(DataError, match="imp.zarr"):
        io.open(path)


def test_a_zarr_store_asking_for_the_pickle_codec_is_refused(tmp_path):
    """Opening an untrusted store never unpickles (zarr 2 would run the payload)."""
    store = tmp_path / "evil.zarr"
    (store / "v").mkdir(parents=True)
    (store / ".zgroup").write_text(json.dumps({"zarr_format": 2}))
    (store / ".zattrs").write_text(json.dumps({"mlimpute_format": 1}))
    (store / "v" / ".zarray").write_text(
        json.dumps(
            {
                "zarr_format": 2,
                "shape": [1],
                "chunks": [1],
                "dtype": "|O",
                "compressor": None,
                "fill_value": None,
                "filters": [{"id": "pickle"}],
                "order": "C",
            }
        )
    )
    (store / "v" / "0").write_bytes(b"not read")
    with pytest.raises(DataError, match=r"evil\.zarr.*codec 'pickle'"):
        io.open(store)


# ------------------------------------------------------------------------------------------
# 8. edited or damaged values: the row indices, the checksums, the declared sizes
# ------------------------------------------------------------------------------------------
def _h5_values(path, name, edit):
    import h5py

    with h5py.File(path, "a") as f:
        f[name][...] = edit(f[name][...])


ROW_EDITS = [  # y is missing in rows 0, 5, 10, 15, 20 of the 24
    ("negative", lambda a: -a - 1, "row -1, outside"),
    ("repeated", np.zeros_like, "not strictly increasing"),
    ("out of range", lambda a: a + 10**6, "row 1000000, outside the data's 24 rows"),
    ("observed", lambda a: a + 1, "lists row 1, where 'y' is observed"),
]


@pytest.mark.parametrize(("label", "edit", "match"), ROW_EDITS, ids=[e[0] for e in ROW_EDITS])
@pytest.mark.parametrize("record", [True, False], ids=["checksums", "no checksums"])
def test_edited_row_indices_are_refused(tmp_path, imp, label, edit, match, record):
    """Edited row indices used to open; complete() then replaced observed values, left
    missing ones or failed with a raw IndexError. Refused, with or without the checksums."""
    path = tmp_path / "imp.nc"
    io.to_netcdf(imp, path)
    _h5_values(path, "y:row", edit)
    if not record:
        _h5_edit(path, "", "mlimpute_checksums", None)
    with pytest.raises(DataError, match=r"imp\.nc") as info:
        io.open(path)
    message = str(info.value)
    if record:
        assert "'y'" in message
    else:
        assert "row index of the imputed variable 'y' ('y:row')" in message and match in message


def test_a_missing_cell_without_imputed_values_is_refused(tmp_path, imp):
    """Observed data edited to miss a cell the file holds no imputed value for."""
    path = tmp_path / "imp.nc"
    io.to_netcdf(imp, path)
    _h5_values(path, "data/y", lambda a: np.where(np.arange(a.size) == 1, np.nan, a))
    _h5_edit(path, "", "mlimpute_checksums", None)
    with pytest.raises(DataError, match=r"'y' \('y:row'\) lacks row 1, where 'y' is missing"):
        io.open(path)


def test_a_row_index_of_floats_is_refused(imp):
    from mlimpute.io.checks import check_imputed_rows

    ds = imp.dataset.assign_coords({"y:row": imp.dataset["y:row"].astype(float)})
    with pytest.raises(DataError, match="'y'.*float64 values, not integer"):
        check_imputed_rows(ds, imp.data, ["y"])


def test_a_zarr_store_missing_a_chunk_is_refused(tmp_path, imp):
    """zarr fills a missing chunk silently: the observed column came back all NaN."""
    path = tmp_path / "imp.zarr"
    io.to_zarr(imp, path)
    chunks = [c for c in (path / "data" / "x" / "c").rglob("*") if c.is_file()]
    assert chunks
    for c in chunks:
        c.unlink()
    with pytest.raises(DataError, match=r"imp\.zarr.*column 'x' of the observed data.*checksum"):
        io.open(path)


@pytest.mark.parametrize(
    ("name", "edit", "match"),
    [
        ("data/x", lambda a: a + 1e-12, "column 'x' of the observed data"),
        ("data/g", lambda a: a[::-1], "column 'g' of the observed data"),
        ("y", lambda a: a + 1.0, "variable 'y' of the imputations"),
        ("chains/float64", lambda a: a * 2, "'float64' of the chains"),
    ],
)
def test_edited_values_are_refused_by_checksum(tmp_path, imp, name, edit, match):
    path = tmp_path / "imp.nc"
    io.to_netcdf(imp, path)
    _h5_values(path, name, edit)
    with pytest.raises(DataError, match=r"imp\.nc") as info:
        io.open(path)
    assert match in str(info.value) and "checksum does not match" in str(info.value)


def test_an_edited_specification_is_refused_by_checksum(tmp_path, imp):
    """An edit that still decodes (here: the seed) is caught by the attributes' checksum."""
    path = tmp_path / "imp.nc"
    io.to_netcdf(imp, path)
    spec = json.loads(xr.open_dataset(path, engine="h5netcdf").attrs["mlimpute_spec"])
    spec["seed"] = 12345
    _h5_edit(path, "", "mlimpute_spec", json.dumps(spec))
    with pytest.raises(DataError, match="mlimpute attributes of the root"):
        io.open(path)


@pytest.mark.parametrize("fmt", ["netcdf", "zarr"])
def test_a_file_without_checksums_opens_with_a_warning(tmp_path, imp, fmt):
    """Files saved before the checksums: opened, with a warning that nothing was verified."""
    path = tmp_path / ("imp.nc" if fmt == "netcdf" else "imp.zarr")
    io.save(imp, path)
    if fmt == "netcdf":
        _h5_edit(path, "", "mlimpute_checksums", None)
    else:
        doc = json.loads((path / "zarr.json").read_text())
        del doc["attributes"]["mlimpute_checksums"]
        (path / "zarr.json").write_text(json.dumps(doc))
    with pytest.warns(MlimputeWarning, match="records no checksums"):
        back = io.open(path)
    assert same(imp, back)


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize(
    ("group", "key"),
    [
        ("", "mlimpute_spec"),
        ("", "mlimpute_events"),
        ("", "mlimpute_dataset"),
        ("", "mlimpute_checksums"),
        ("data", "mlimpute_data"),
        ("data", "mlimpute_frame_attrs"),
        ("chains", "mlimpute_chains"),
        ("y", "mlimpute"),
    ],
)
def test_deeply_nested_json_is_a_data_error(tmp_path, imp, group, key):
    """Was a raw RecursionError from the JSON parser."""
    path = tmp_path / "imp.nc"
    io.to_netcdf(imp, path)
    _h5_edit(path, group, key, DEEP)
    with pytest.raises(DataError, match=rf"imp\.nc.*'{key}'.* nested 100000 levels deep"):
        io.open(path)


def test_attributes_too_deep_to_open_are_not_saved(tmp_path, imp):
    """What the reader would refuse is never written: deep DataFrame.attrs are dropped."""
    deep: list = []
    for _ in range(300):
        deep = [deep]
    data = imp.data.copy()
    data.attrs = {"deep": deep}
    with pytest.warns(MlimputeWarning, match="nested more than 200 levels"):
        io.to_netcdf(MultiplyImputed(imp.dataset, data, imp.spec), tmp_path / "imp.nc")
    assert io.open(tmp_path / "imp.nc").data.attrs == {}


def test_deeply_nested_zarr_metadata_is_a_data_error(tmp_path, imp):
    path = tmp_path / "imp.zarr"
    io.to_zarr(imp, path)
    (path / "data" / "x" / "zarr.json").write_text(DEEP)
    with pytest.raises(DataError, match=r"imp\.zarr.*zarr\.json.*nested 100000 levels deep"):
        io.open(path)
    with pytest.raises(DataError, match="it exists and is a directory that is not"):
        (path / "zarr.json").write_text(DEEP)
        io.to_zarr(imp, path)


def _h5_replace(path, name, shape, **kwargs):
    import h5py

    with h5py.File(path, "a") as f:
        dtype = f[name].dtype
        del f[name]
        f.create_dataset(name, shape=shape, dtype=dtype, **kwargs)


def test_an_absurd_declared_row_count_is_refused_before_loading(tmp_path, imp):
    """A 50 kB file declaring a column of 10**12 rows: was a raw MemoryError (7.3 TiB)."""
    path = tmp_path / "imp.nc"
    io.to_netcdf(imp, path)
    _h5_replace(path, "data/x", (10**12,), chunks=(4096,), compression="gzip")
    with pytest.raises(DataError, match=r"imp\.nc.*'x' of the observed data declares shape"):
        io.open(path)


def test_declared_sizes_beyond_the_stored_bytes_or_the_memory_are_refused(
    tmp_path, imp, monkeypatch
):
    path = tmp_path / "imp.nc"
    io.to_netcdf(imp, path)
    _h5_replace(path, "y", (2, 10**8))  # uncompressed, 1.6 GB declared, nothing stored
    with pytest.raises(DataError, match=r"'y' of the imputations declares shape.*stores only 0"):
        io.open(path)
    from mlimpute import _heap

    io.to_netcdf(imp, path)
    monkeypatch.setattr(_heap, "available_memory", lambda: 1000)
    with pytest.raises(DataError, match=r"more than the 0.001 MB of memory available"):
        io.open(path)
