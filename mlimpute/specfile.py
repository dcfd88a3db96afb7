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
    grade = "2l.norm"

    [imputation.options]              # optional: further keyword arguments of impute()

    [output]                          # paths relative to this file; false: do not write
    imputations = "imputations.nc"    # .nc (netCDF) or .zarr
    completed = "completed_{i}.csv"   # .csv/.parquet/.dta; {i}: one file per imputation
    pooled = "pooled.csv"             # the pooled table of [analysis]

    [analysis]
    formula = "grade ~ gender + relation + (1 | class)"
    reml = true
    tests = ["gender = 0"]

:func:`spec_to_toml` writes the specification of a finished run (explicit formulas,
methods, visit order and seed); :func:`read_spec` reads and validates a file, naming the key
at fault in every error; :meth:`StudySpec.impute` and :func:`run` execute it.

This module holds :func:`run`; the specification itself (:class:`StudySpec`,
:func:`formula_text`) lives in :mod:`mlimpute._specfile_study`, reading and validating in
:mod:`mlimpute._specfile_read`, writing and the ``mlimpute init`` template in
:mod:`mlimpute._specfile_write`; all are importable from here.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ._specfile_read import loads_spec, read_spec
from ._specfile_study import AnalysisSpec, OutputSpec, StudySpec, formula_text
from ._specfile_write import _version, default_formulas, init_spec, spec_to_toml
from .errors import MlimputeWarning

if TYPE_CHECKING:
    from .imputed import MultiplyImputed
    from .results import PooledResult

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
    from .io import save, write_completed

    say = log or (lambda _: None)
    if not isinstance(study, StudySpec):
        study = read_spec(study)
    if study.version is not None and study.version != _version():
        warnings.warn(
            f"the specification was written by mlimpute {study.version}; this is "
            f"{_version()}: the imputations may differ from that run",
            MlimputeWarning,
            stacklevel=2,
        )
    if df is None:
        df = study.read_data()
        say(f"read {study.data} ({len(df)} rows, {df.shape[1]} columns)")
    imp = study.impute(df, progress=progress)
    say(repr(imp))
    result = RunResult(imp)
    out = study.output
    if out.imputations is not None:
        path = study.resolve(out.imputations)
        path.parent.mkdir(parents=True, exist_ok=True)
        save(imp, path)
        result.written.append(path)
    if out.completed is not None:
        path = study.resolve(out.completed)
        path.parent.mkdir(parents=True, exist_ok=True)
        result.written += write_completed(imp, path)
    if study.analysis is not None:
        a = study.analysis
        kw: dict[str, Any] = {"reml": a.reml}
        if a.family is not None:
            kw["family"] = a.family
        result.pooled = imp.fit(a.formula, **kw)
        for h in a.tests:
            result.tests[h] = result.pooled.test(h)
        if out.pooled is not None:
            path = study.resolve(out.pooled)
            path.parent.mkdir(parents=True, exist_ok=True)
            result.pooled.summary().to_csv(path)
            result.written.append(path)
    return result
