"""The package as users get it: metadata, the wheel's contents, and a clean install.

The fast tests read ``pyproject.toml``; the slow one (run by ``.ci/run``) builds the sdist
and the wheel with ``python -m build``, checks them with ``twine check``, looks inside the
wheel, installs it into a fresh virtualenv and runs ``mlimpute demo`` there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import mlimpute

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))


def test_version_has_one_source():
    project = _pyproject()["project"]
    assert "version" not in project and "version" in project["dynamic"]
    dynamic = _pyproject()["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "mlimpute._version.__version__"}
    from mlimpute._version import __version__

    assert mlimpute.__version__ == __version__


def test_metadata_for_an_index():
    project = _pyproject()["project"]
    assert project["license"] == "BSD-3-Clause"
    assert project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text("utf-8").startswith("BSD 3-Clause License")
    assert {"Documentation", "Source", "Changelog"} <= set(project["urls"])
    classifiers = project["classifiers"]
    assert "Typing :: Typed" in classifiers
    assert any(c.startswith("Programming Language :: Python :: 3.1") for c in classifiers)
    assert {"test", "docs", "dask"} <= set(project["optional-dependencies"])
    assert (ROOT / "mlimpute" / "py.typed").exists()
    assert f"## {mlimpute.__version__}" in (ROOT / "CHANGELOG.md").read_text("utf-8")


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{args}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    pytest.importorskip("build")
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)])
    return out


@pytest.mark.slow
def test_wheel_and_sdist(dist):
    pytest.importorskip("twine")
    [wheel] = dist.glob("mlimpute-*.whl")
    [sdist] = dist.glob("mlimpute-*.tar.gz")
    assert wheel.name == f"mlimpute-{mlimpute.__version__}-py3-none-any.whl"
    _run([sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)])

    names = zipfile.ZipFile(wheel).namelist()
    assert "mlimpute/py.typed" in names
    assert "mlimpute/_version.py" in names
    top = {n.split("/")[0] for n in names}
    assert top == {"mlimpute", f"mlimpute-{mlimpute.__version__}.dist-info"}, top
    assert not [n for n in names if "tests/" in n or "benchmarks/" in n or "/test_" in n]
    dist_info = f"mlimpute-{mlimpute.__version__}.dist-info"
    assert f"{dist_info}/licenses/LICENSE" in names
    metadata = zipfile.ZipFile(wheel).read(f"{dist_info}/METADATA").decode()
    assert f"Version: {mlimpute.__version__}" in metadata
    assert "License-Expression: BSD-3-Clause" in metadata

    members = tarfile.open(sdist).getnames()
    prefix = f"mlimpute-{mlimpute.__version__}/"
    for path in ("LICENSE", "CHANGELOG.md", "README.md", "mlimpute/py.typed", "docs/conf.py"):
        assert prefix + path in members, path


@pytest.mark.slow
def test_wheel_installs_and_runs_the_demo(dist, tmp_path):
    [wheel] = dist.glob("mlimpute-*.whl")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["MPLBACKEND"] = "Agg"
    _run([str(python), "-m", "pip", "install", "--quiet", str(wheel)], env=env)
    work = tmp_path / "work"
    work.mkdir()
    # the installed package, not this checkout
    where = _run(
        [str(python), "-c", "import mlimpute; print(mlimpute.__file__)"], cwd=work, env=env
    )
    assert str(venv) in where.stdout and str(ROOT / "mlimpute") not in where.stdout
    version = _run([str(bindir / "mlimpute"), "--version"], cwd=work, env=env)
    assert mlimpute.__version__ in version.stdout
    demo = _run([str(bindir / "mlimpute"), "demo"], cwd=work, env=env, timeout=600)
    assert "Multiply imputed analysis" in demo.stdout
    assert "skill" in demo.stdout
    assert not list(work.iterdir()), "the demo writes nothing without --out"
