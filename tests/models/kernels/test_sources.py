"""The ``SOURCES`` line of the compiled kernels' modules (:mod:`mlimpute.models.kernels`).

numba's on-disk cache of a kernel is invalidated by a change of the kernel's own file
only, not of another module's kernels it calls; so every kernel module carries the hash
of all the kernel modules' sources (each with its ``SOURCES`` line blanked), and an edit
of any of them is followed by rewriting that line in every one:

    python tests/models/kernels/test_sources.py --update

Run without ``--update``, this file prints the hash and the stale modules.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

KERNELS = Path(__file__).resolve().parents[3] / "mlimpute" / "models" / "kernels"
LINE = re.compile(r'^SOURCES = "([0-9a-f]*)"$', re.MULTILINE)
UPDATE = "python tests/models/kernels/test_sources.py --update"


def modules() -> list[Path]:
    """Every module of the kernels package, in a fixed order."""
    return sorted(KERNELS.glob("*.py"))


def blanked(text: str) -> str:
    """The source with its one ``SOURCES`` line blanked (an error without exactly one)."""
    got = LINE.findall(text)
    if len(got) != 1:
        raise ValueError(f"{len(got)} SOURCES lines, expected one")
    return LINE.sub('SOURCES = ""', text)


def digest(paths: list[Path]) -> str:
    """SHA-256 of the modules' names and blanked sources, in order."""
    h = hashlib.sha256()
    for path in paths:
        h.update(path.name.encode() + b"\0")
        h.update(blanked(path.read_text(encoding="utf-8")).encode() + b"\0")
    return h.hexdigest()


def stale(paths: list[Path], value: str) -> list[str]:
    """The modules whose ``SOURCES`` line is not ``value``."""
    return [p.name for p in paths if LINE.findall(p.read_text(encoding="utf-8")) != [value]]


def update(paths: list[Path]) -> list[str]:
    """Rewrite every stale ``SOURCES`` line with the current hash; the modules rewritten."""
    value = digest(paths)
    done = stale(paths, value)
    for path in paths:
        if path.name in done:
            text = path.read_text(encoding="utf-8")
            path.write_text(LINE.sub(f'SOURCES = "{value}"', text), encoding="utf-8")
    return done


def test_every_kernel_module_carries_the_current_sources_hash():
    paths = modules()
    assert len(paths) >= 9
    value = digest(paths)
    bad = stale(paths, value)
    assert not bad, f"stale SOURCES line in {', '.join(bad)}: run `{UPDATE}`"


def test_an_edit_of_any_module_changes_the_hash(tmp_path):
    copies = []
    for path in modules():
        copy = tmp_path / path.name
        copy.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
        copies.append(copy)
    before = digest(copies)
    assert not stale(copies, before)
    for copy in copies:
        text = copy.read_text(encoding="utf-8")
        copy.write_text(text + "# edited\n", encoding="utf-8")
        assert digest(copies) != before  # stale everywhere until updated
        assert stale(copies, digest(copies)) == [c.name for c in copies]
        copy.write_text(text, encoding="utf-8")
    # rewriting the lines themselves leaves the hash alone
    assert update(copies) == []
    copies[0].write_text(
        LINE.sub('SOURCES = "' + "f" * 64 + '"', copies[0].read_text(encoding="utf-8")),
        encoding="utf-8",
    )
    assert digest(copies) == before
    assert update(copies) == [copies[0].name]
    assert not stale(copies, before)


def test_the_rewritten_lines_recompile_a_kernel_whose_callee_changed(tmp_path):
    # numba's cache itself, on two tiny modules: the caller's cached code keeps an edited
    # callee of another module until the caller's file changes, as the update makes it
    pytest.importorskip("numba")
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    jit = 'import numba\n\nSOURCES = ""\n\n\n@numba.njit(cache=True)\n'
    (pkg / "__init__.py").write_text('SOURCES = ""\n', encoding="utf-8")
    (pkg / "callee.py").write_text(jit + "def g(x):\n    return x + 1.0\n", encoding="utf-8")
    (pkg / "caller.py").write_text(
        "from pkg.callee import g\n" + jit + "def f(x):\n    return g(x) * 2.0\n",
        encoding="utf-8",
    )
    paths = sorted(pkg.glob("*.py"))
    update(paths)

    def run() -> str:
        code = "from pkg.caller import f; print(f(1.0))"
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    assert run() == "4.0"
    callee = pkg / "callee.py"
    callee.write_text(callee.read_text(encoding="utf-8").replace("1.0", "100.0"), encoding="utf-8")
    # stale: the caller's cache does not see its callee's file (numba's documented limit;
    # should a numba see it, the SOURCES lines are no longer needed)
    assert run() == "4.0", "numba now notices a callee's file: SOURCES lines not needed"
    assert update(paths) == [p.name for p in paths]
    assert run() == "202.0"


if __name__ == "__main__":
    paths = modules()
    if sys.argv[1:] == ["--update"]:
        done = update(paths)
        print(f"SOURCES = {digest(paths)}: rewrote {', '.join(done) or 'nothing'}")
    else:
        value = digest(paths)
        print(f"SOURCES = {value}; stale: {', '.join(stale(paths, value)) or 'none'}")
