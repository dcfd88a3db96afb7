"""The README and the documentation sources stay true to the package.

The README keeps the two Quick-start commands (CI reads the second one), its links
resolve, and its example prints what it shows; the documentation's formulas pass the
grammar, the API pages document every public name, the user guide lists exactly its
pages, and the gallery has its examples. The Sphinx build itself runs in CI (``.ci/run``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import mlimpute
from mlimpute.errors import FormulaError
from mlimpute.spec.grammar import validate_formula

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"

INSTALL = "pip install . && mlimpute demo"
TEST = 'pip install -e ".[test]" && python -m pytest -n 2'


def _readme() -> str:
    return README.read_text(encoding="utf-8")


def _doc_sources() -> list[Path]:
    return sorted(
        p
        for p in [*DOCS.rglob("*.md"), *DOCS.rglob("*.rst"), *(DOCS / "examples").glob("*.py")]
        if "_build" not in p.parts and "gallery" not in p.parts
    )


def test_readme_keeps_the_quick_start_commands():
    lines = _readme().splitlines()
    assert INSTALL in lines
    assert TEST in lines
    # .ci/run takes the first line that matches this pattern as the test command
    ci = [
        line
        for line in lines
        if re.match(r'^pip install -e "\.\[test\]" && python -m pytest', line)
    ]
    assert ci[0] == TEST


def test_readme_links_resolve():
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", _readme())
    local = [t for t in targets if "://" not in t]
    assert len(local) > 10
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing


def test_doc_links_resolve():
    """Relative markdown links between the documentation pages point at files."""
    missing = []
    for page in DOCS.rglob("*.md"):
        if "_build" in page.parts:
            continue
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text("utf-8")):
            if "://" in target or target.startswith("mailto:"):
                continue
            if target == "gallery/index" or target.startswith("../gallery/"):
                continue  # written by sphinx-gallery at build time from docs/examples
            if not (page.parent / target).exists():
                missing.append(f"{page.relative_to(DOCS)} -> {target}")
    assert not missing


def _formulas(text: str) -> set[str]:
    found = set()
    for m in re.finditer(r"([\"'`])([^\"'`\n]*~[^\"'`\n]*)\1", text):
        candidate = m.group(2).replace("\\|", "|")  # "|" escaped in markdown tables
        if candidate.rstrip().endswith(";"):
            continue  # Blimp syntax on the "Coming from R" page
        if re.fullmatch(r"\s*[\w.]*\s*~\s*[\w.(].*", candidate) and "{" not in candidate:
            found.add(candidate.strip())
    return found


def test_documented_formulas_pass_the_grammar():
    formulas = set()
    for path in [README, *_doc_sources()]:
        if path.name == "simulation.md":
            continue  # generated tables
        formulas |= _formulas(path.read_text("utf-8"))
    formulas = {f for f in formulas if "..." not in f and "…" not in f}
    assert len(formulas) > 20
    refused = set()
    for text in sorted(formulas):
        try:
            validate_formula(text)
        except FormulaError:
            refused.add(text)
    assert not refused


def test_every_public_name_is_on_an_api_page():
    api = "\n".join(p.read_text("utf-8") for p in (DOCS / "api").glob("*.rst"))
    documented = set(re.findall(r"^\.\. (?:auto\w+|data)::\s+(mlimpute[\w.]*)", api, re.M))
    missing = [name for name in mlimpute.__all__ if f"mlimpute.{name}" not in documented]
    assert not missing
    assert "mlimpute.accessor.MIAccessor" in documented


def _toctree(page: Path) -> list[str]:
    text = page.read_text("utf-8")
    block = re.search(r"```\{toctree\}\n(.*?)```", text, re.S)
    assert block, f"{page} has no toctree"
    return [
        line.strip()
        for line in block.group(1).splitlines()
        if line.strip() and not line.strip().startswith(":")
    ]


def test_user_guide_lists_exactly_its_pages():
    guide = DOCS / "user_guide"
    listed = _toctree(guide / "index.md")
    pages = sorted(p.stem for p in guide.glob("*.md") if p.name != "index.md")
    assert sorted(listed) == pages
    for page in pages:  # no placeholder pages: each has a title and real content
        text = (guide / f"{page}.md").read_text("utf-8")
        assert text.startswith("# ") and len(text) > 800, page


def test_site_lists_its_sections():
    listed = _toctree(DOCS / "index.md")
    for entry in listed:
        assert (
            entry == "gallery/index"
            or (DOCS / f"{entry}.md").exists()
            or (DOCS / f"{entry}.rst").exists()
        ), entry


def test_gallery_has_at_least_eight_examples_with_titles():
    examples = sorted((DOCS / "examples").glob("plot_*.py"))
    assert len(examples) >= 8
    for path in examples:
        head = path.read_text("utf-8").split('"""')[1].strip().splitlines()
        assert len(head) >= 2 and set(head[1]) == {"="}, path.name


def test_user_facing_words():
    """The documentation speaks to users: no internal words (DESIGN, SPEC 7, issue numbers,
    sessions), and the 2005 talk is "the classroom example of Jacobusse (2005)"."""
    banned = re.compile(
        r"\bDESIGN\b|\bSPEC \d|(?i:\bsession|\bissues? ?\d|\bseed('s| talk| presentation))"
    )
    hits = []
    for path in [README, ROOT / "CHANGELOG.md", *_doc_sources()]:
        for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
            if banned.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not hits


@pytest.mark.slow
def test_readme_example_prints_what_it_shows(tmp_path, monkeypatch):
    """The README's example runs, and res.summary() prints the table shown below it."""
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)  # the example writes study.nc
    text = _readme()
    [code] = re.findall(r"```python\n(.*?)```", text, re.S)
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)  # noqa: S102
    shown = text.split(">>> res.summary()\n", 1)[1].split("```", 1)[0]
    printed = repr(namespace["res"].summary()) + "\n"  # as the interpreter shows it
    assert [line.rstrip() for line in printed.splitlines()] == [
        line.rstrip() for line in shown.splitlines()
    ]
    assert os.path.exists(tmp_path / "study.nc")


_RUNNER = """
import re, sys, warnings
from pathlib import Path

if __name__ == "__main__":
    warnings.simplefilter("ignore")
    page = Path(sys.argv[1])
    namespace = {"__name__": "__main__"}
    for block in re.findall(r"```python\\n(.*?)```", page.read_text("utf-8"), re.S):
        exec(compile(block, str(page), "exec"), namespace)
"""

_PAGES_WITH_CODE = sorted(
    str(p.relative_to(DOCS))
    for p in [*DOCS.glob("*.md"), *(DOCS / "user_guide").glob("*.md")]
    if "```python" in p.read_text("utf-8")
)


@pytest.mark.slow
@pytest.mark.parametrize("page", _PAGES_WITH_CODE)
def test_documentation_examples_run(page, tmp_path):
    """The Python blocks of each page run in order, as a reader would paste them."""
    import subprocess
    import sys

    runner = tmp_path / "run_page.py"
    runner.write_text(_RUNNER, encoding="utf-8")
    env = {**os.environ, "MPLBACKEND": "Agg"}
    done = subprocess.run(
        [sys.executable, str(runner), str(DOCS / page)],
        cwd=tmp_path,  # pages write their example files here
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def _three_level_data():
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    school = np.repeat(np.arange(8), 12)
    klass = np.repeat(np.arange(24), 4)
    x = rng.normal(size=96)
    y = x + rng.normal(size=8)[school] + rng.normal(size=24)[klass] + rng.normal(size=96)
    df = pd.DataFrame({"school": school, "class": klass, "x": x, "y": y})
    df.loc[rng.random(96) < 0.3, "y"] = np.nan
    return df


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("delta_cluster_sd with several factors", "several grouping factors"),
        ("zip with several factors", "no version for several grouping factors"),
        ("fourth level", "fourth level"),
        ("transform with model", "cannot be combined with model="),
        ("lmean in chained formulas", "lmean"),
    ],
)
def test_limits_the_documentation_states_still_hold(case, message):
    """The user guide lists these as not supported yet (three-level page, compatible page,
    variable types). When one is lifted this fails: update the pages, then this list."""
    from mlimpute.errors import UnsupportedError

    df = _three_level_data()
    calls = {
        "delta_cluster_sd with several factors": lambda: df.mi.impute(
            cluster=["school", "class"],
            delta={"y": 1.0},
            delta_cluster_sd={"y": 0.5},
            m=1,
            iterations=1,
            rng=1,
        ),
        "zip with several factors": lambda: df.assign(y=(df["y"].abs() * 3).round()).mi.impute(
            {"y": "~ x + (1 | school) + (1 | class)"},
            method={"y": "2l.zip"},
            m=1,
            iterations=1,
            rng=1,
        ),
        "fourth level": lambda: df.assign(region=df["school"] // 4).mi.impute(
            cluster=["region", "school", "class"], m=1, iterations=1, rng=1
        ),
        "transform with model": lambda: df.assign(y=df["y"].abs() + 1).mi.impute(
            model="y ~ x + (1 | class)", transform={"y": "log"}, m=1, iterations=1, rng=1
        ),
        "lmean in chained formulas": lambda: df.mi.impute(
            {"y": "~ x + lmean(x) + (1 | class)"}, m=1, iterations=1, rng=1
        ),
    }
    with pytest.raises(UnsupportedError, match=message):
        calls[case]()


def test_three_level_specification_file_keeps_the_levels():
    """The saving and three-level pages say a three-level run is written with its levels as
    a list, outermost first, and reruns bit for bit."""
    from mlimpute.specfile import loads_spec

    df = _three_level_data()
    imp = df.mi.impute(cluster=["school", "class"], m=1, iterations=1, rng=1)
    text = imp.spec.to_toml()
    assert "school" in text.split("cluster = [", 1)[1].split("]", 1)[0]
    assert loads_spec(text).impute(df).complete(1).equals(imp.complete(1))
