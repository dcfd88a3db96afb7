"""The notebooks run from top to bottom (at a tiny size) and are committed with outputs.

Each notebook reads ``MLIMPUTE_NB_SMALL=1`` in its first cell and then uses few
imputations, iterations and replications. They are executed with nbclient on the
``python3`` kernel of this environment (ipykernel). Needs the test extras ``nbclient``,
``nbformat`` and ``ipykernel``; skipped without them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ["quickstart.ipynb", "classroom_experiments.ipynb"]


def _read(name: str):
    return nbformat.read(NOTEBOOKS / name, as_version=4)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs(name, tmp_path, monkeypatch):
    monkeypatch.setenv("MLIMPUTE_NB_SMALL", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = _read(name)
    client = nbclient.NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    errors = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    assert not errors
    images = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if "image/png" in out.get("data", {})
    ]
    assert images, "the notebook should draw figures"


@pytest.mark.parametrize("name", NAMES)
def test_committed_with_outputs(name):
    nb = _read(name)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.get("execution_count") for c in code), "run all cells, then commit"
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    assert not any(out.get("output_type") == "error" for c in code for out in c.outputs)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    size = (NOTEBOOKS / name).stat().st_size
    assert size < 1_500_000, f"{name} is {size} bytes: keep outputs modest (PNG at dpi 80)"
