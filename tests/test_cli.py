"""The ``mlimpute`` command line, run as a subprocess (and in-process for the error matrix)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import xarray as xr

import mlimpute
from mlimpute.cli import main
from mlimpute.io import open as open_imputations
from mlimpute.specfile import read_spec


def cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "mlimpute.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


@pytest.fixture(scope="module")
def csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "classes.csv"
    df = mlimpute.datasets.classroom(2, n_classes=8, class_size=6, rng=2).incomplete
    df.to_csv(path, index=False)
    return path


def test_demo_writes_nothing_without_out(tmp_path):
    p = cli("demo", "-m", "2", "--iterations", "2", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "Nothing written" in p.stdout and not any(tmp_path.iterdir())
    assert "classroom example of Jacobusse (2005)" in p.stdout


def test_demo_writes_a_spec_that_run_repeats(tmp_path):
    out = tmp_path / "demo"
    p = cli("demo", "--out", out, "-m", "2", "--iterations", "3")
    assert p.returncode == 0, p.stderr
    assert "Multiply imputed analysis" in p.stdout and "skill" in p.stdout
    names = {f.name for f in out.iterdir()}
    assert {
        "classroom.csv",
        "spec.toml",
        "imputations.nc",
        "completed_1.csv",
        "completed_2.csv",
        "pooled.csv",
    } <= names
    first = open_imputations(out / "imputations.nc")
    shutil.move(out / "imputations.nc", tmp_path / "first.nc")
    p = cli("run", out / "spec.toml")
    assert p.returncode == 0, p.stderr
    assert f"wrote {out / 'imputations.nc'}" in p.stdout and "Multiply imputed" in p.stdout
    again = open_imputations(out / "imputations.nc")
    xr.testing.assert_identical(first.dataset, again.dataset)  # bit for bit
    pooled = pd.read_csv(out / "pooled.csv", index_col=0)
    assert pooled.index.tolist() == ["Intercept", "skill"]


def test_init_then_run(csv, capsys):
    p = cli(
        "init",
        csv,
        "--cluster",
        "class",
        "-m",
        "2",
        "--iterations",
        "3",
        "--seed",
        "9",
        cwd=csv.parent,
    )
    assert p.returncode == 0, p.stderr
    assert "REVIEW THE FORMULAS" in p.stdout
    spec = csv.parent / "spec.toml"
    spec.write_text(
        p.stdout + '\n[analysis]\nformula = "grade ~ gender + (1 | class)"\n'
        'tests = ["gender = 0"]\n'
    )
    study = read_spec(spec)
    assert study.formulas["grade"] == (
        "~ skill + gender + cmean(gender) + relation + cmean(relation) + (1 | class)"
    )
    assert main(["run", str(spec), "--quiet"]) == 0  # `run` is run as a subprocess above
    out = capsys.readouterr().out
    assert "Test 'gender = 0' (D1): F =" in out and "wrote" not in out
    assert (csv.parent / "spec.nc").is_file() and (csv.parent / "spec-completed.csv").is_file()
    long = pd.read_csv(csv.parent / "spec-completed.csv")
    assert long["imputation"].unique().tolist() == [1, 2] and not long.isna().any().any()


def test_init_to_a_file_makes_the_data_path_relative(csv, tmp_path):
    assert main(["init", str(csv), "-o", str(tmp_path / "s.toml"), "--seed", "1"]) == 0
    study = read_spec(tmp_path / "s.toml")
    assert study.resolve(study.data).resolve() == csv.resolve()
    assert study.seed == 1 and study.cluster is None


def test_init_model_then_run(csv, tmp_path, capsys):
    df = pd.read_csv(csv).assign(aux=lambda f: f["skill"] * 2 + f.index % 3)
    data = tmp_path / "d.csv"
    df.to_csv(data, index=False)
    spec = tmp_path / "m.toml"
    model = "grade ~ skill + relation + (1 | class)"
    args = ["init", str(data), "--model", model, "--auxiliary", "aux", "-m", "2"]
    assert main([*args, "--iterations", "2", "--seed", "4", "-o", str(spec)]) == 0
    assert "review the model" in capsys.readouterr().err
    study = read_spec(spec)
    assert (study.model, study.auxiliary, study.seed) == (model, ("aux",), 4)
    assert study.formulas is None and study.columns is None  # nothing left out
    assert main(["run", str(spec), "--quiet", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "relation" in out and "Formula:          " + model in out  # the model, pooled
    assert (tmp_path / "m.nc").is_file()


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--model", "grade ~ nope + (1 | class)"], "unknown column"),
        (["--model", "grade ~ skill ~ gender"], "exactly one '~'"),
        (["--auxiliary", "skill"], "auxiliary columns need an analysis model"),
        (["--model", "grade ~ skill + (1 | class)", "--auxiliary", "nope"], "'nope'"),
    ],
)
def test_init_model_errors(csv, capsys, args, match):
    assert main(["init", str(csv), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mlimpute: error: ") and match in err and "Traceback" not in err


def test_describe_and_pattern(csv):
    p = cli("describe", csv, "--cluster", "class")
    assert p.returncode == 0, p.stderr
    assert "icc" in p.stdout and "2l.norm" in p.stdout
    p = cli("pattern", csv)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("MissingPattern:") and "relation" in p.stdout


def test_user_error_is_one_line_exit_2(tmp_path):
    p = cli("describe", tmp_path / "missing.csv")
    assert p.returncode == 2
    assert p.stderr.strip() == f"mlimpute: error: data file not found: '{tmp_path}/missing.csv'"


def test_verbose_shows_the_traceback(tmp_path, capsys):
    (tmp_path / "bad.toml").write_text("[imputation\n")
    assert main(["run", str(tmp_path / "bad.toml"), "--verbose"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "mlimpute: error:" in err and "invalid TOML" in err


@pytest.mark.parametrize(
    ("args", "toml", "match"),
    [
        (["run", "{d}/nope.toml"], None, "specification file not found"),
        (["run", "{d}/s.toml"], "[imputation\n", "invalid TOML"),
        (["run", "{d}/s.toml"], "[imputation]\nm = 0\n", "imputation.m: must be an integer"),
        (
            ["run", "{d}/s.toml"],
            '[data]\npath = "{csv}"\n[imputation.formulas]\ngrade = "~ nope"\n',
            "unknown column(s) ['nope']",
        ),
        (
            ["run", "{d}/s.toml"],
            '[data]\npath = "{csv}"\n[imputation.formulas]\ngrade = "~ x +"\n',
            "imputation.formulas.grade",
        ),
        (["run", "{d}/s.toml"], '[data]\npath = "x.csv"\n[imputation]\n', "data file not found"),
        (["describe", "{csv}", "--cluster", "klass"], None, "column 'klass' is not in"),
        (["init", "{csv}", "--cluster", "klass"], None, "column 'klass' is not in"),
        (["pattern", "{d}/d.xyz"], None, "unknown file type '.xyz'"),
    ],
)
def test_user_errors(csv, tmp_path, capsys, args, toml, match):
    local = tmp_path / csv.name  # a specification reads only inside its own directory
    shutil.copy(csv, local)
    fill = {"d": tmp_path, "csv": local}
    if toml is not None:
        (tmp_path / "s.toml").write_text(toml.format(**fill))
    (tmp_path / "d.xyz").write_text("")
    assert main([a.format(**fill) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mlimpute: error: ") and match in err and "Traceback" not in err


# ------------------------------------------------------------------------------------------
# no user file is replaced; hostile specification files give one line, never a traceback
# ------------------------------------------------------------------------------------------
def _state(folder):
    """Every file under ``folder`` with its bytes and modification time."""
    return {
        p.relative_to(folder): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _one_error_line(err: str, match: str) -> None:
    """One ``mlimpute: error:`` line; a formula's error adds the formula and a caret under
    the token at fault."""
    lines = err.strip().splitlines()
    context = lines[1:] if "formulas." in match else []
    if context:
        assert len(context) == 2 and set(context[1].strip()) == {"^"}, err
    assert len(lines) == 1 + len(context) and lines[0].startswith("mlimpute: error: "), err
    assert match in lines[0] and "Traceback" not in err


@pytest.mark.parametrize("how", ["same", "dot", "symlink", "hardlink"])
@pytest.mark.parametrize("force", [False, True])
def test_init_never_writes_over_the_data_file(csv, tmp_path, capsys, how, force):
    data = tmp_path / "data.csv"
    shutil.copy(csv, data)
    output = {
        "same": str(data),
        "dot": f"{tmp_path}/./data.csv",
        "symlink": str(tmp_path / "link.csv"),
        "hardlink": str(tmp_path / "hard.csv"),
    }[how]
    if how == "symlink":
        os.symlink(data, output)
    elif how == "hardlink":
        os.link(data, output)
    before = _state(tmp_path)
    args = ["init", str(data), "--cluster", "class", "-o", output] + ["--force"] * force
    assert main(args) == 2
    _one_error_line(capsys.readouterr().err, "is the data file")
    assert _state(tmp_path) == before


def test_init_replaces_an_existing_file_only_with_force(csv, tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text("# my own notes\n")
    before = _state(tmp_path)
    assert main(["init", str(csv), "--cluster", "class", "-o", str(spec)]) == 2
    _one_error_line(capsys.readouterr().err, "exists; pass --force to replace it")
    assert _state(tmp_path) == before
    assert main(["init", str(csv), "--cluster", "class", "-o", str(spec), "--force"]) == 0
    assert read_spec(spec).cluster == "class"


def test_demo_refuses_to_replace_files_in_out(tmp_path, capsys):
    (tmp_path / "classroom.csv").write_text("MY PRECIOUS DATA\n")
    (tmp_path / "spec.toml").write_text("# my own spec\n")
    (tmp_path / "pooled.csv").write_text("mine\n")
    (tmp_path / "completed_2.csv").write_text("mine too\n")
    before = _state(tmp_path)
    assert main(["demo", "-m", "2", "--iterations", "2", "--out", str(tmp_path)]) == 2
    _one_error_line(
        capsys.readouterr().err,
        "already holds classroom.csv, spec.toml, completed_2.csv, pooled.csv; the demo "
        "replaces no file",
    )
    assert _state(tmp_path) == before  # nothing replaced, nothing added


def test_demo_force_checks_before_writing(tmp_path, capsys):
    (tmp_path / "classroom.csv").write_text("MY DATA\n")
    (tmp_path / "imputations.nc").write_text("not an imputation file\n")
    before = _state(tmp_path)
    args = ["demo", "-m", "2", "--iterations", "2", "--out", str(tmp_path), "--force"]
    assert main(args) == 2  # the foreign imputations.nc is refused before anything is written
    _one_error_line(capsys.readouterr().err, "not an mlimpute imputation file")
    assert _state(tmp_path) == before
    (tmp_path / "imputations.nc").unlink()
    os.symlink(tmp_path / "elsewhere.csv", tmp_path / "pooled.csv")
    before = _state(tmp_path)
    assert main(args) == 2
    _one_error_line(capsys.readouterr().err, "is a symbolic link; --force replaces only files")
    assert _state(tmp_path) == before and not (tmp_path / "elsewhere.csv").exists()
    (tmp_path / "pooled.csv").unlink()
    assert main(args) == 0  # --force replaces the user's classroom.csv, as asked
    assert (tmp_path / "classroom.csv").read_text().startswith("class,")
    assert (tmp_path / "imputations.nc").is_file() and (tmp_path / "completed_2.csv").is_file()


def test_demo_out_an_existing_file(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("notes\n")
    before = _state(tmp_path)
    assert main(["demo", "-m", "2", "--iterations", "2", "--out", str(notes)]) == 2
    _one_error_line(capsys.readouterr().err, f"--out: '{notes}' exists and is not a directory")
    assert _state(tmp_path) == before


_HEAD = '[data]\npath = "d.csv"\n[imputation]\nm = 2\niterations = 2\n'
_FORMULA = '[imputation.formulas]\ngrade = "~ skill + (1 | class)"\n'


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"\xff\xfegarbage", "s.toml: not a text file in UTF-8 (byte 0xff at offset 0)"),
        (("x = " + "[" * 100_000 + "]" * 100_000).encode(), "nested more than 20 deep"),
        (
            f'{_HEAD}seed = "{"9" * 5000}"\n{_FORMULA}'.encode(),
            "imputation.seed: must be an integer ≥ 0 and below 2**128",
        ),
        (
            f"{_HEAD}seed = {'9' * 5000}\n{_FORMULA}".encode(),
            "invalid TOML: a value cannot be read",
        ),
        (
            f"{_HEAD}{_FORMULA.replace('skill', '(' * 3000 + 'skill' + ')' * 3000)}".encode(),
            "imputation.formulas.grade: ",
        ),
        (
            f'{_HEAD}{_FORMULA}[output]\ncompleted = "{"a" * 300}.csv"\n'.encode(),
            "output.completed: the name 'aaaa",
        ),
        (
            f'{_HEAD}{_FORMULA}[output]\ncompleted = "a\\u0000b.csv"\n'.encode(),
            "output.completed: 'a\\x00b.csv' holds the control character '\\x00'",
        ),
        (
            f'{_HEAD}{_FORMULA}[output]\ncompleted = "c_{{i:09d}}_{"a" * 240}.csv"\n'.encode(),
            "output.completed: the name 'c_000000001_aaa",  # 254 bytes, 256 once {i} is 1
        ),
    ],
    ids=[
        "not-utf8",
        "deep-toml",
        "seed-digits",
        "int-digits",
        "deep-formula",
        "long-name",
        "nul",
        "long-expanded-name",
    ],
)
def test_hostile_spec_files_give_one_line(csv, tmp_path, capsys, content, match):
    shutil.copy(csv, tmp_path / "d.csv")
    spec = tmp_path / "s.toml"
    spec.write_bytes(content)
    before = _state(tmp_path)
    assert main(["run", str(spec), "--quiet", "--no-progress"]) == 2
    _one_error_line(capsys.readouterr().err, match)
    assert _state(tmp_path) == before  # checked before anything was imputed or written
