"""The import layering of the package (``[tool.importlinter]`` in pyproject.toml) holds.

``lint-imports`` checks two contracts: every stage imports only the stages below it
(imports inside functions count), and no package has an import circle between its
modules. The other tests break a copy of the package on purpose and check that each
contract then fails, naming the import at fault.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter")

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"

_RUN = (
    "import sys; from importlinter.cli import lint_imports; "
    "sys.exit(lint_imports(config_filename=sys.argv[1], no_cache=True, no_logo=True))"
)


def lint_imports(package_parent: Path, config: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` on the ``mlimpute`` found first on ``package_parent``."""
    env = dict(os.environ, PYTHONPATH=str(package_parent))
    return subprocess.run(
        [sys.executable, "-c", _RUN, str(config)],
        cwd=package_parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_layering_contracts_hold():
    out = lint_imports(ROOT, PYPROJECT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 kept, 0 broken" in out.stdout


@pytest.fixture
def broken_copy(tmp_path):
    """A copy of the package (and its pyproject.toml); returns a function that adds one
    import to one of its modules and runs ``lint-imports`` on the copy."""
    shutil.copytree(
        ROOT / "mlimpute", tmp_path / "mlimpute", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(PYPROJECT, tmp_path / "pyproject.toml")

    def add_import(module: str, line: str) -> subprocess.CompletedProcess:
        path = tmp_path / (module.replace(".", "/") + ".py")
        if not path.exists():
            path = tmp_path / module.replace(".", "/") / "__init__.py"
        path.write_text(path.read_text() + "\n" + line + "\n")
        return lint_imports(tmp_path, tmp_path / "pyproject.toml")

    return add_import


def test_the_copy_itself_passes(broken_copy):
    out = broken_copy("mlimpute.pooling.rubin", "# nothing added")
    assert out.returncode == 0, out.stdout + out.stderr  # the copy is checked, not ROOT


def test_an_upward_import_inside_a_function_is_caught(broken_copy):
    out = broken_copy(
        "mlimpute.pooling.rubin",
        "def _upward():\n    from mlimpute.analysis import fit\n    return fit",
    )
    assert out.returncode != 0
    assert "Stages import only the stages below them BROKEN" in out.stdout
    assert "mlimpute.pooling.rubin -> mlimpute.analysis" in out.stdout


def test_a_lower_layer_importing_the_result_is_caught(broken_copy):
    out = broken_copy("mlimpute.diagnostics.kernels", "import mlimpute.result.imputed")
    assert out.returncode != 0
    assert "mlimpute.diagnostics.kernels -> mlimpute.result.imputed" in out.stdout


def test_a_circle_inside_a_package_is_caught(broken_copy):
    # io.arrays imports io.stored_spec; the reverse import closes a circle that the
    # layers contract cannot see (both modules are in one layer)
    out = broken_copy("mlimpute.io.stored_spec", "import mlimpute.io.arrays")
    assert out.returncode != 0
    assert "No import circles between the modules of any package BROKEN" in out.stdout
    assert ".stored_spec -> .arrays" in out.stdout


def test_a_new_top_level_module_must_be_given_a_layer(broken_copy, tmp_path):
    (tmp_path / "mlimpute" / "newstage.py").write_text('"""A stage in no layer."""\n')
    out = broken_copy("mlimpute.pooling.rubin", "# nothing added")
    assert out.returncode != 0
    assert "newstage" in out.stdout + out.stderr
