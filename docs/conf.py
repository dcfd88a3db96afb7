"""Sphinx configuration of the mlimpute documentation.

Build: ``pip install -e ".[docs]" && sphinx-build -W -b html docs docs/_build/html``;
the examples of the API pages: ``sphinx-build -W -b doctest docs docs/_build/doctest``.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "examples"))  # the examples' shared helpers

import mlimpute  # noqa: E402

# The notebooks of the repository's notebooks/ folder, shown with the outputs they were
# committed with (the test suite executes them; the site does not run them again).
TUTORIALS = DOCS / "tutorials"
TUTORIALS.mkdir(exist_ok=True)
for _notebook in sorted((DOCS.parent / "notebooks").glob("*.ipynb")):
    _target = TUTORIALS / _notebook.name
    if not _target.exists() or _target.read_bytes() != _notebook.read_bytes():
        _target.write_bytes(_notebook.read_bytes())

project = "mlimpute"
author = "the mlimpute developers"
copyright = "2026, the mlimpute developers"
version = release = mlimpute.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_nb",  # markdown pages (myst-parser) and the notebooks with their stored outputs
    "sphinx_gallery.gen_gallery",
    "sphinx_copybutton",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
nb_execution_mode = "off"
nb_merge_streams = True
root_doc = "index"
exclude_patterns = [
    "_build",
    "examples/README.txt",
    "examples/*.py",
    "gallery/*.ipynb",
    "gallery/*.py",
    "gallery/*.zip",
    "gallery/*.json",
]
suppress_warnings = [
    "myst.header",  # the simulation tables start at ### inside a ## section
    # numpydoc renames a docstring's References; lists of sources that the text names by
    # author and year (not by [1]_) are then "not referenced", which is fine
    "ref.citation",
]

myst_enable_extensions = ["colon_fence", "deflist", "dollarmath"]
myst_heading_anchors = 3

# -- API pages -----------------------------------------------------------------------
autodoc_typehints = "none"  # the numpydoc Parameters sections carry the types
autodoc_member_order = "bysource"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()

# The examples in the docstrings run with `sphinx-build -b doctest` (as tests/test_docstrings.py
# runs them with the standard library's doctest). The standard library runs an example in a
# copy of its module's namespace; each API page does the same with a hidden
# `.. testsetup:: *` block calling `_module_namespace("mlimpute.x", ...)` for the modules it
# documents.
doctest_global_setup = """
import importlib, os, tempfile, warnings
import numpy as np
import pandas as pd
import matplotlib
matplotlib.use("Agg")
warnings.simplefilter("ignore")
os.chdir(tempfile.mkdtemp(prefix="mlimpute-doctest-"))


def _module_namespace(*names):
    for name in names:
        module = importlib.import_module(name)
        globals().update({k: v for k, v in vars(module).items() if not k.startswith("__")})
"""
doctest_default_flags = (
    __import__("doctest").ELLIPSIS
    | __import__("doctest").NORMALIZE_WHITESPACE
    | __import__("doctest").DONT_ACCEPT_TRUE_FOR_1
)
doctest_test_doctest_blocks = "default"

intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable", None),
    "pandas": ("https://pandas.pydata.org/docs", None),
    "xarray": ("https://docs.xarray.dev/en/stable", None),
    "matplotlib": ("https://matplotlib.org/stable", None),
}
# Offline builds (CI has no network): the inventories are optional.
if os.environ.get("MLIMPUTE_DOCS_OFFLINE", "1") == "1":
    intersphinx_mapping = {}

# -- gallery ---------------------------------------------------------------------------
warnings.filterwarnings("ignore", category=UserWarning, message="Matplotlib is currently using agg")
sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "gallery",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "reset_modules": ("matplotlib",),
    "show_memory": False,
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "min_reported_time": 1,
}

# -- HTML ------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"mlimpute {release}"
html_static_path: list[str] = []
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_context = {"default_mode": "light"}
html_show_sourcelink = False
