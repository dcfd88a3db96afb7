"""Study specification files (TOML): what to impute, how, and what to write and analyse.

A specification file records a whole run, so that ``mlimpute run spec.toml`` repeats it::

    mlimpute_version = "0.1.0"        # the version that wrote the file (informational)

    [data]
    path = "classroom.csv"            # relative to this file's directory
    columns = ["class", "grade"]      # optional: the columns to use

    [imputation]
    cluster = "class"
    m = 20
    iterations = 20
    seed = 2005                       # rng=seed reproduces the run bit for bit
    visit = ["relation", "grade"]

    [imputation.formulas]
    relation = "~ gender + grade + cmean(grade) + (1 | class)"
    grade = "~ gender + relation + cmean(relation) + (1 | class)"

    [imputation.methods]              # optional; default from the formula
    grade = "2l.norm"                 # or with options: { method = "2l.norm", prior = "iw" }

    [imputation.options]              # optional: further keyword arguments of impute()

    [output]                          # paths inside this file's directory; false: skip
    imputations = "imputations.nc"    # .nc (netCDF) or .zarr
    completed = "completed_{i}.csv"   # .csv/.parquet/.dta; {i}: one file per imputation
    pooled = "pooled.csv"             # the pooled table of [analysis]

    [analysis]
    formula = "grade ~ gender + relation + (1 | class)"
    reml = true
    tests = ["gender = 0"]

Model-based (analysis-model-compatible) imputation replaces ``[imputation]`` by a
``[model]`` table: the analysis model drives the imputation (``impute(df, model=...)``)
and, without an ``[analysis]`` table, is the analysis that is pooled::

    [model]
    formula = "grade ~ skill * gender + relation + (1 + gender | class)"
    auxiliary = ["absences"]          # optional: columns that inform the imputations only
    m = 20
    iterations = 20
    seed = 2005
    [model.options]                   # optional: further keyword arguments of impute()

Paths (``data.path`` and ``[output]``) must stay inside the file's directory, and
``output.completed`` takes only the placeholder ``{i}``; see :func:`run`.

:func:`spec_to_toml` writes the specification of a finished run (explicit formulas,
methods, visit order and seed); :func:`read_spec` reads and validates a file, naming the key
at fault in every error; :meth:`StudySpec.impute` and :func:`run` execute it.

This module holds :func:`run`; the specification itself (:class:`StudySpec`) lives in
:mod:`mlimpute.specfile.study` (formulas written by :func:`formula_text`, from
:mod:`mlimpute.spec.formula`), reading and validating in
:mod:`mlimpute.specfile.read`, writing and the ``mlimpute init`` template in
:mod:`mlimpute.specfile.write`; all are importable from here.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlimpute.errors import MlimputeWarning, SpecificationError
from mlimpute.spec.formula import formula_text
from mlimpute.specfile.read import NAME_MAX, loads_spec, path_problem, read_spec
from mlimpute.specfile.study import AnalysisSpec, OutputSpec, StudySpec
from mlimpute.specfile.write import _version, default_formulas, init_spec, spec_to_toml

if TYPE_CHECKING:
    from mlimpute.analysis.results import PooledResult
    from mlimpute.result.imputed import MultiplyImputed

__all__ = [
    "AnalysisSpec",
    "OutputSpec",
    "StudySpec",
    "RunResult",
    "read_spec",
    "loads_spec",
    "spec_to_toml",
    "formula_text",
    "default_formulas",
    "init_spec",
    "run",
]


# ------------------------------------------------------------------------------------------
# running a study
# ------------------------------------------------------------------------------------------
@dataclass
class RunResult:
    """What :func:`run` produced.

    Attributes
    ----------
    imputed : MultiplyImputed
    pooled : PooledResult or None
        The pooled analysis, if the study has one.
    tests : dict
        ``{hypothesis: TestResult}``.
    written : list of Path
        Files written.
    """

    imputed: MultiplyImputed
    pooled: PooledResult | None = None
    tests: dict[str, Any] = field(default_factory=dict)
    written: list[Path] = field(default_factory=list)


def run(
    study: StudySpec | str | os.PathLike,
    df: pd.DataFrame | None = None,
    *,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    out_dir: str | os.PathLike | None = None,
    allow_outside: bool = False,
) -> RunResult:
    """Run a study: read the data, impute, write the outputs, fit and pool the analysis.

    Parameters
    ----------
    study : StudySpec or path
        A specification or the path of a TOML file.
    df : DataFrame, optional
        The data (default: the study's data file).
    progress : bool
        Show a progress bar, if :func:`mlimpute.impute` has that option.
    log : callable, optional
        Called with a line of text at each step (``print`` in the command line).
    out_dir : path, optional
        Write the outputs under this directory instead of the specification's directory
        (``mlimpute run --out DIR``); relative output paths resolve against it and must
        stay inside it.
    allow_outside : bool
        Allow data and output paths outside their directory (``mlimpute run
        --allow-outside``). Only for specifications you wrote or checked.

    Notes
    -----
    A specification file is not trusted: it may come from someone else. Its relative
    paths resolve against its own directory (:attr:`StudySpec.base_dir`; the current
    directory for a study without one), or against ``out_dir`` for the outputs, and a
    path that leaves that directory -- through ``..``, as an absolute path or through a
    symbolic link pointing out -- is refused with a :class:`SpecificationError` naming the
    key and the path, unless ``allow_outside=True``. All paths are checked before the
    imputation starts. ``output.completed`` takes only the placeholder ``{i}`` (or a
    zero-padded ``{i:02d}``); imputation files replace only an earlier mlimpute file of
    the same kind (:func:`mlimpute.io.to_netcdf`).

    Raises
    ------
    SpecificationError
        If a data or output path leaves its directory (see Notes).

    Examples
    --------
    >>> import mlimpute
    >>> df = mlimpute.datasets.classroom(1, rng=1).incomplete
    >>> analysis = AnalysisSpec("grade ~ skill + (1 | class)", tests=("skill = 0",))
    >>> study = StudySpec({"grade": "~ skill + (1 | class)"}, m=3, iterations=5, seed=1,
    ...                   analysis=analysis)
    >>> out = run(study, df)
    >>> out.pooled.summary().index.tolist(), out.written
    (['Intercept', 'skill'], [])
    """
    from mlimpute.io import save, write_completed
    from mlimpute.io.flat import completed_paths

    say = log or (lambda _: None)
    spec_file = None
    if not isinstance(study, StudySpec):
        spec_file = Path(os.fspath(study))
        study = read_spec(study)
    if study.version is not None and study.version != _version():
        warnings.warn(
            f"the specification was written by mlimpute {study.version}; this is "
            f"{_version()}: the imputations may differ from that run",
            MlimputeWarning,
            stacklevel=2,
        )
    base = study.base_dir if study.base_dir is not None else Path.cwd()
    out_base = Path(os.fspath(out_dir)) if out_dir is not None else base
    out = study.output

    def place(key: str, value: str, root: Path) -> Path:
        problem = path_problem(os.fspath(value), NAME_MAX)  # NUL and the like, first
        if problem:
            raise SpecificationError(f"{key}: {problem}")
        path = _confine(key, value, root, allow_outside)
        problem = path_problem(os.fspath(path), _name_max(path.parent))
        if problem:
            raise SpecificationError(f"{key}: {problem}")
        return path

    # every path is checked before the imputation starts
    if study.data is not None:  # before anything resolves it
        problem = path_problem(os.fspath(study.data), NAME_MAX)
        if problem:
            raise SpecificationError(f"data.path: {problem}")
    targets: dict[str, Path] = {}
    if out.imputations is not None:
        targets["imputations"] = place("output.imputations", out.imputations, out_base)
    files = [("output.imputations", targets["imputations"])] if targets else []
    if out.completed is not None:
        targets["completed"] = place("output.completed", out.completed, out_base)
        for p in completed_paths(out.completed, study.m):
            files.append(("output.completed", place("output.completed", os.fspath(p), out_base)))
    analysis = study.pooled_analysis  # a [model] study pools its analysis model
    if out.pooled is not None and analysis is not None:
        targets["pooled"] = place("output.pooled", out.pooled, out_base)
        files.append(("output.pooled", targets["pooled"]))
    _distinct(files, study, base, spec_file)
    if df is None:
        if study.data is None:
            raise SpecificationError("data.path: the specification names no data file")
        place("data.path", study.data, base)
        df = study.read_data()
        say(f"read {study.data} ({len(df)} rows, {df.shape[1]} columns)")
    imp = study.impute(df, progress=progress)
    say(repr(imp))
    result = RunResult(imp)
    if "imputations" in targets:
        path = targets["imputations"]
        path.parent.mkdir(parents=True, exist_ok=True)
        save(imp, path)
        result.written.append(path)
    if "completed" in targets:
        path = targets["completed"]
        path.parent.mkdir(parents=True, exist_ok=True)
        result.written += write_completed(imp, path)
    if analysis is not None:
        a = analysis
        kw: dict[str, Any] = {"reml": a.reml}
        if a.family is not None:
            kw["family"] = a.family
        result.pooled = imp.fit(a.formula, **kw)
        for h in a.tests:
            result.tests[h] = result.pooled.test(h)
        if "pooled" in targets:
            path = targets["pooled"]
            path.parent.mkdir(parents=True, exist_ok=True)
            result.pooled.summary().to_csv(path)
            result.written.append(path)
    return result


def _name_max(folder: Path) -> int:
    """The longest file name the file system of ``folder`` (or of its nearest existing
    ancestor) allows, in bytes; :data:`~mlimpute.specfile.read.NAME_MAX` if unknown."""
    for d in (folder, *folder.parents):
        if d.is_dir():
            try:
                return int(os.pathconf(d, "PC_NAME_MAX"))
            except (OSError, ValueError, AttributeError):  # no pathconf (Windows), no answer
                return NAME_MAX
    return NAME_MAX


def _confine(key: str, value: str, root: Path, allow_outside: bool) -> Path:
    """``value`` resolved against ``root``; refused if it leads out of ``root`` (see :func:`run`).

    Judged on where the path really leads: ``..``, an absolute path, ``~`` and symbolic
    links (followed as far as they exist) all count; an absolute path inside ``root`` is
    accepted.
    """
    p = Path(os.path.expanduser(os.fspath(value)))
    path = p if p.is_absolute() else root / p
    if allow_outside:
        return path
    real_root = root.resolve()
    real = path.resolve()
    if not real.is_relative_to(real_root):
        remedy = (
            "put the data file in the specification's directory"
            if key == "data.path"
            else "pass --out DIR to write the outputs under DIR (Python: run(..., out_dir=...))"
        )
        raise SpecificationError(
            f"{key}: {value!r} leads outside {str(root)!r} (to {str(real)!r}); a "
            f"specification reads and writes only inside its own directory: {remedy}, or "
            "pass --allow-outside (Python: allow_outside=True) if you trust this file"
        )
    return path


def _distinct(
    files: list[tuple[str, Path]], study: StudySpec, base: Path, spec_file: Path | None
) -> None:
    """Outputs never overwrite the data file, the specification file or one another."""
    protected: dict[Path, str] = {}
    if study.data is not None:
        data = Path(os.path.expanduser(study.data))
        protected[(data if data.is_absolute() else base / data).resolve()] = (
            "the data file (data.path)"
        )
    if spec_file is not None:
        protected[spec_file.resolve()] = "the specification file itself"
    seen: dict[Path, str] = {}
    for key, path in files:
        real = path.resolve()
        hit = next((q for q in protected if real == q or same_file(path, q)), None)
        if hit is not None:
            raise SpecificationError(
                f"{key}: {str(path)!r} is {protected[hit]}; an output never replaces it"
            )
        if real in seen and not (key == seen[real] == "output.completed"):
            raise SpecificationError(f"{key} and {seen[real]} name the same file {str(path)!r}")
        seen[real] = key


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` are one file: the same path once symbolic links and ``..``
    are resolved, or, when both exist, the same file on disk (hard links included)."""
    pa, pb = Path(os.fspath(a)), Path(os.fspath(b))
    if pa.resolve() == pb.resolve():
        return True
    try:
        return os.path.samefile(pa, pb)
    except (OSError, ValueError):  # one of them does not exist (yet)
        return False
