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
