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
"""

from __future__ import annotations

import inspect
import os
import re
import sys
import textwrap
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from .errors import FormulaError, MlimputeError, MlimputeWarning, SpecificationError
from .formula import ParsedFormula, parse_formula

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

if TYPE_CHECKING:
    from .imputed import MultiplyImputed
    from .results import PooledResult
    from .spec import ImputationSpec

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

_INT64_MAX = 2**63 - 1
_IDENT = re.compile(r"[A-Za-z_.][\w.]*")
# impute() arguments a specification sets through its own keys, never through options
_RESERVED = {"df", "formulas", "m", "iterations", "rng", "method", "visit", "cluster",
             "progress"}


@dataclass(frozen=True)
class AnalysisSpec:
    """The analysis run on every completed data set and pooled (``imp.fit``).

    Attributes
    ----------
    formula : str
        lme4-style analysis formula with a response.
    reml : bool
        REML (default) or ML for mixed models.
    tests : tuple of str
        Hypotheses tested on the pooled result (D1), e.g. ``("gender = 0",)``.
    family : str, optional
        GLM family for single-level formulas (``"binomial"``...).
    """

    formula: str
    reml: bool = True
    tests: tuple[str, ...] = ()
    family: str | None = None


@dataclass(frozen=True)
class OutputSpec:
    """Files a run writes; paths relative to the specification file, ``None``: not written.

    Attributes
    ----------
    imputations : str, optional
        The imputation file: ``*.nc`` (netCDF) or ``*.zarr``.
    completed : str, optional
        Completed data, ``*.csv``, ``*.parquet`` or ``*.dta``; a ``{i}`` in the name writes
        one file per imputation, otherwise one long file with an ``imputation`` column.
    pooled : str, optional
        CSV of the pooled table of the analysis.
    """

    imputations: str | None = None
    completed: str | None = None
    pooled: str | None = None


@dataclass(frozen=True)
class StudySpec:
    """A complete, runnable study: data, imputation model, outputs and analysis.

    Attributes
    ----------
    formulas : dict
        ``{variable: "~ ..."}`` in visit order (``None``: let :func:`mlimpute.impute` choose).
    methods : dict
        Model per variable (empty: chosen from the formulas).
    cluster : str, optional
    m, iterations : int
    seed : int, optional
        Root seed (``rng=seed``); with it a run is reproduced bit for bit.
    visit : tuple of str, optional
    data : str, optional
        Data file, relative to :attr:`base_dir`.
    columns : tuple of str, optional
        The columns of the data file to use (all by default).
    output : OutputSpec
    analysis : AnalysisSpec, optional
    options : dict
        Further keyword arguments of :func:`mlimpute.impute` (e.g. ``n_jobs``).
    version : str, optional
        The mlimpute version that wrote the file.
    base_dir : pathlib.Path, optional
        Directory relative paths are resolved against (the file's directory).

    Examples
    --------
    >>> s = StudySpec({"grade": "~ skill + (1 | class)"}, m=3, seed=1)
    >>> print(s.to_toml().split("[imputation]")[1].strip())
    m = 3
    iterations = 20
    seed = 1
    <BLANKLINE>
    [imputation.formulas]
    grade = "~ skill + (1 | class)"
    """

    formulas: Mapping[str, str] | None
    methods: Mapping[str, str] = field(default_factory=dict)
    cluster: str | None = None
    m: int = 5
    iterations: int = 20
    seed: int | None = None
    visit: tuple[str, ...] | None = None
    data: str | None = None
    columns: tuple[str, ...] | None = None
    output: OutputSpec = field(default_factory=OutputSpec)
    analysis: AnalysisSpec | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    version: str | None = None
    base_dir: Path | None = field(default=None, compare=False, repr=False)

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_imputation_spec(
        cls,
        spec: ImputationSpec,
        *,
        data: str | os.PathLike | None = None,
        columns: Sequence[str] | None = None,
        output: OutputSpec | Mapping[str, str | None] | None = None,
        analysis: AnalysisSpec | Mapping[str, Any] | str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> StudySpec:
        """The study that reproduces a run: explicit formulas, methods, visit order, seed.

        ``analysis`` may be an :class:`AnalysisSpec`, a dict of its fields or a formula.
        """
        from . import __version__

        if isinstance(output, Mapping):
            output = OutputSpec(**output)
        if isinstance(analysis, str):
            analysis = AnalysisSpec(analysis)
        elif isinstance(analysis, Mapping):
            analysis = AnalysisSpec(**{k: tuple(v) if k == "tests" else v
                                       for k, v in analysis.items()})
        return cls(
            formulas={v.name: formula_text(v.formula) for v in spec.variables},
            methods=dict(spec.methods), cluster=spec.cluster,
            m=spec.m, iterations=spec.iterations, seed=spec.seed, visit=tuple(spec.visit),
            data=os.fspath(data) if data is not None else None,
            columns=tuple(columns) if columns is not None else None,
            output=output or OutputSpec(), analysis=analysis, options=dict(options or {}),
            version=__version__,
        )

    # -- paths and data -------------------------------------------------------------------
    def resolve(self, path: str | os.PathLike) -> Path:
        """``path`` relative to :attr:`base_dir` (the specification file's directory)."""
        p = Path(os.fspath(path)).expanduser()
        return p if p.is_absolute() or self.base_dir is None else self.base_dir / p

    def read_data(self) -> pd.DataFrame:
        """Read :attr:`data` (by suffix, see :func:`mlimpute.io.read_data`)."""
        from .io import read_data

        if self.data is None:
            raise SpecificationError("data.path: the specification names no data file")
        df = read_data(self.resolve(self.data))
        if self.columns is not None:
            unknown = [c for c in self.columns if c not in df.columns]
            if unknown:
                raise SpecificationError(f"data.columns: {unknown} not in {self.data!r}; its "
                                         f"columns are {list(df.columns)}")
            df = df[list(self.columns)]
        return df

    # -- running --------------------------------------------------------------------------
    def impute_kwargs(self, **extra) -> dict[str, Any]:
        """Keyword arguments of :func:`mlimpute.impute` for this study."""
        from .impute import impute

        params = inspect.signature(impute).parameters
        kw: dict[str, Any] = {"m": self.m, "iterations": self.iterations, "rng": self.seed}
        if self.methods:
            kw["method"] = dict(self.methods)
        if self.visit is not None:
            kw["visit"] = list(self.visit)
        if self.cluster is not None and "cluster" in params:
            kw["cluster"] = self.cluster
        kw.update(self.options)
        kw.update({k: v for k, v in extra.items() if k in params})
        return kw

    def impute(self, df: pd.DataFrame | None = None, **extra) -> MultiplyImputed:
        """Impute ``df`` (default: :meth:`read_data`) as specified.

        ``extra`` keyword arguments that :func:`mlimpute.impute` accepts (``progress``...)
        are passed on; others are ignored.

        Examples
        --------
        >>> import mlimpute
        >>> df = mlimpute.datasets.classroom(1, rng=1).incomplete
        >>> imp = df.mi.impute({"grade": "~ skill + (1 | class)"}, m=2, iterations=4, rng=3)
        >>> study = loads_spec(spec_to_toml(imp.spec))
        >>> again = study.impute(df)
        >>> bool((again.dataset["grade"] == imp.dataset["grade"]).all())
        True
        """
        from .impute import impute

        if df is None:
            df = self.read_data()
        formulas = dict(self.formulas) if self.formulas is not None else None
        imp = impute(df, formulas, **self.impute_kwargs(**extra))
        if (self.cluster is not None and imp.spec.cluster is not None
                and imp.spec.cluster != self.cluster):
            raise SpecificationError(
                f"imputation.cluster is {self.cluster!r} but the formulas group by "
                f"{imp.spec.cluster!r}"
            )
        return imp

    # -- writing --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The TOML document as a dict (``None`` values left out)."""
        doc: dict[str, Any] = {}
        if self.version is not None:
            doc["mlimpute_version"] = self.version
        data = _drop_none({"path": self.data,
                           "columns": list(self.columns) if self.columns else None})
        if data:
            doc["data"] = data
        imp = _drop_none({
            "cluster": self.cluster, "m": self.m, "iterations": self.iterations,
            "seed": (self.seed if self.seed is None or self.seed <= _INT64_MAX
                     else str(self.seed)),
            "visit": list(self.visit) if self.visit is not None else None,
        })
        if self.formulas is not None:
            imp["formulas"] = dict(self.formulas)
        if self.methods:
            imp["methods"] = dict(self.methods)
        if self.options:
            imp["options"] = dict(self.options)
        doc["imputation"] = imp
        out = _drop_none(vars(self.output))
        if out:
            doc["output"] = out
        if self.analysis is not None:
            a = self.analysis
            doc["analysis"] = _drop_none({"formula": a.formula, "reml": a.reml,
                                          "family": a.family,
                                          "tests": list(a.tests) if a.tests else None})
        return doc

    def to_toml(self, header: str | None = None) -> str:
        """The specification as TOML text, preceded by ``header`` as comment lines."""
        import tomli_w

        lines = []
        if header is None:
            header = ("mlimpute specification: run it with `mlimpute run <this file>`.\n"
                      "Paths are relative to this file's directory.")
        if self.seed is None:
            header += ("\nNo seed: this run used a Generator or fresh entropy and cannot be "
                       "reproduced exactly.")
        for h in header.splitlines():
            lines += [f"# {w}" for w in textwrap.wrap(h, 86, break_on_hyphens=False)] or ["#"]
        return "\n".join(lines) + "\n\n" + tomli_w.dumps(self.to_dict())

    def write(self, path: str | os.PathLike, header: str | None = None) -> Path:
        """Write :meth:`to_toml` to ``path``; returns it."""
        p = Path(os.fspath(path))
        p.write_text(self.to_toml(header), encoding="utf-8")
        return p


def _drop_none(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


# ------------------------------------------------------------------------------------------
# reading and validating
# ------------------------------------------------------------------------------------------
class _Checker:
    """Validates one TOML document; every message names the file and the key at fault."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, message: str) -> SpecificationError:
        return SpecificationError(f"{self.source}: {key}: {message}")

    def table(self, doc: Mapping, key: str, allowed: Sequence[str],
              required: bool = False) -> dict:
        name = key.rsplit(".", 1)[-1]
        value = doc.get(name)
        if value is None:
            if required:
                raise self.fail(key, "missing (a [" + key + "] table is required)")
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(key, f"must be a table ([{key}]), got {_show(value)}")
        unknown = [k for k in value if k not in allowed]
        if unknown:
            raise self.fail(f"{key}.{unknown[0]}", f"unknown key; [{key}] accepts "
                            f"{', '.join(allowed)}")
        return dict(value)

    def string(self, d: Mapping, key: str, full: str, *, optional: bool = True) -> str | None:
        value = d.get(key)
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(full, f"must be a non-empty string, got {_show(value)}")
        return value

    def strings(self, d: Mapping, key: str, full: str) -> tuple[str, ...] | None:
        value = d.get(key)
        if value is None:
            return None
        if isinstance(value, str) or not isinstance(value, list) or not all(
                isinstance(v, str) for v in value):
            raise self.fail(full, f"must be a list of strings, got {_show(value)}")
        return tuple(value)

    def positive(self, d: Mapping, key: str, full: str, default: int) -> int:
        value = d.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.fail(full, f"must be an integer ≥ 1, got {_show(value)}")
        return value

    def mapping(self, d: Mapping, key: str, full: str) -> dict[str, str] | None:
        value = d.get(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise self.fail(full, f"must be a table of strings ([{full}]), got {_show(value)}")
        for k, v in value.items():
            if not isinstance(v, str):
                raise self.fail(f"{full}.{_key(k)}", f"must be a string, got {_show(v)}")
        return dict(value)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 60 else text[:57] + "..."


def _key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else f'"{name}"'


def loads_spec(text: str, base_dir: str | os.PathLike | None = None, *,
               source: str = "<specification>", stem: str | None = None) -> StudySpec:
    """Parse and validate a TOML specification.

    Parameters
    ----------
    text : str
        The TOML document.
    base_dir : path-like, optional
        Directory relative paths are resolved against.
    source : str
        Name used in error messages.
    stem : str, optional
        With a stem, outputs the file does not mention get defaults: ``<stem>.nc``,
        ``<stem>-completed.csv`` and (with an analysis) ``<stem>-pooled.csv``. Set
        ``false`` in ``[output]`` to skip one.

    Raises
    ------
    SpecificationError
        On invalid TOML or content; the message names the key at fault.
    FormulaError
        On a formula with a syntax error (the message names the key).

    Examples
    --------
    >>> s = loads_spec('''
    ... [imputation]
    ... m = 3
    ... [imputation.formulas]
    ... grade = "~ skill + (1 | class)"
    ... ''')
    >>> s.m, s.formulas
    (3, {'grade': '~ skill + (1 | class)'})
    >>> loads_spec("[imputation]\\nm = 0")
    Traceback (most recent call last):
    ...
    mlimpute.errors.SpecificationError: <specification>: imputation.m: must be an integer ≥ 1, got 0
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecificationError(f"{source}: invalid TOML: {exc}") from None
    c = _Checker(source)
    top = ("mlimpute_version", "data", "imputation", "output", "analysis")
    unknown = [k for k in doc if k not in top]
    if unknown:
        raise c.fail(unknown[0], f"unknown key; a specification has {', '.join(top)}")
    version = doc.get("mlimpute_version")
    if version is not None and not isinstance(version, str):
        raise c.fail("mlimpute_version", f"must be a string, got {_show(version)}")

    data = c.table(doc, "data", ("path", "columns"))
    imp = c.table(doc, "imputation", ("formulas", "methods", "cluster", "m", "iterations",
                                      "seed", "visit", "options"), required=True)
    output = c.table(doc, "output", ("imputations", "completed", "pooled"))
    analysis = c.table(doc, "analysis", ("formula", "reml", "tests", "family"))

    formulas = c.mapping(imp, "formulas", "imputation.formulas")
    for name, text_ in (formulas or {}).items():
        try:
            parse_formula(text_, name)
        except MlimputeError as exc:
            raise FormulaError(f"{source}: imputation.formulas.{_key(name)}: {exc}") from None
    methods = c.mapping(imp, "methods", "imputation.methods") or {}
    for name in methods:
        if formulas is not None and name not in formulas:
            raise c.fail(f"imputation.methods.{_key(name)}",
                         "a method for a variable without a formula in [imputation.formulas]")
    visit = c.strings(imp, "visit", "imputation.visit")
    seed = imp.get("seed")
    if isinstance(seed, str) and seed.isdigit():
        seed = int(seed)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise c.fail("imputation.seed", f"must be an integer ≥ 0, got {_show(seed)}")
    options = imp.get("options", {})
    if not isinstance(options, Mapping):
        raise c.fail("imputation.options", f"must be a table, got {_show(options)}")
    _check_options(c, options)

    outputs: dict[str, str | None] = {}
    defaults = {"imputations": f"{stem}.nc", "completed": f"{stem}-completed.csv",
                "pooled": f"{stem}-pooled.csv" if analysis else None} if stem else {}
    for key in ("imputations", "completed", "pooled"):
        value = output.get(key, defaults.get(key))
        if value is False:
            value = None
        elif value is not None and (not isinstance(value, str) or not value.strip()):
            raise c.fail(f"output.{key}", f"must be a path or false, got {_show(value)}")
        outputs[key] = value
    _check_suffix(c, "output.imputations", outputs["imputations"], (".nc", ".nc4", ".zarr",
                                                                   ".h5"))
    _check_suffix(c, "output.completed", outputs["completed"], (".csv", ".parquet", ".pq",
                                                               ".dta"))

    spec_analysis = None
    if analysis:
        reml = analysis.get("reml", True)
        if not isinstance(reml, bool):
            raise c.fail("analysis.reml", f"must be true or false, got {_show(reml)}")
        spec_analysis = AnalysisSpec(
            formula=c.string(analysis, "formula", "analysis.formula", optional=False),
            reml=reml, tests=c.strings(analysis, "tests", "analysis.tests") or (),
            family=c.string(analysis, "family", "analysis.family"),
        )
    return StudySpec(
        formulas=formulas, methods=methods,
        cluster=c.string(imp, "cluster", "imputation.cluster"),
        m=c.positive(imp, "m", "imputation.m", 5),
        iterations=c.positive(imp, "iterations", "imputation.iterations", 20),
        seed=seed, visit=visit,
        data=c.string(data, "path", "data.path"),
        columns=c.strings(data, "columns", "data.columns"),
        output=OutputSpec(**outputs), analysis=spec_analysis, options=dict(options),
        version=version, base_dir=Path(base_dir) if base_dir is not None else None,
    )


def _check_suffix(c: _Checker, key: str, value: str | None, allowed: tuple[str, ...]) -> None:
    if value is not None and Path(value).suffix.lower() not in allowed:
        raise c.fail(key, f"{value!r} must end in one of {', '.join(allowed)}")


def _check_options(c: _Checker, options: Mapping) -> None:
    from .impute import impute

    params = inspect.signature(impute).parameters
    allowed = [p for p, v in params.items()
               if p not in _RESERVED and v.kind is inspect.Parameter.KEYWORD_ONLY]
    for key in options:
        if key in _RESERVED:
            raise c.fail(f"imputation.options.{_key(key)}",
                         f"set {key!r} with its own key in [imputation]")
        if key not in allowed:
            raise c.fail(f"imputation.options.{_key(key)}",
                         "not an option of mlimpute.impute"
                         + (f"; options: {', '.join(allowed)}" if allowed else ""))


def read_spec(path: str | os.PathLike) -> StudySpec:
    """Read and validate a TOML specification file.

    Relative paths in it are resolved against the file's directory; outputs it does not
    mention get defaults named after the file (see :func:`loads_spec`).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    SpecificationError
        On invalid TOML or content, naming the key at fault.
    """
    p = Path(os.fspath(path))
    if not p.is_file():
        raise FileNotFoundError(f"specification file not found: {str(p)!r}")
    text = p.read_text(encoding="utf-8")
    return loads_spec(text, p.parent, source=str(p), stem=p.stem)


def spec_to_toml(spec: ImputationSpec, **extras) -> str:
    """TOML text of what was run: explicit formulas, methods, visit order and seed.

    Running it again on the same data with the same mlimpute version reproduces the
    imputations bit for bit.

    Parameters
    ----------
    spec : ImputationSpec
        Usually ``imp.spec``.
    **extras
        ``data``, ``columns``, ``output``, ``analysis``, ``options``: see
        :meth:`StudySpec.from_imputation_spec`.

    Examples
    --------
    >>> import mlimpute
    >>> df = mlimpute.datasets.classroom(1, rng=1).incomplete
    >>> imp = df.mi.impute({"grade": "~ skill + (1 | class)"}, m=2, iterations=4, rng=3)
    >>> print(spec_to_toml(imp.spec, data="classroom.csv"))  # doctest: +ELLIPSIS
    # mlimpute specification of a finished run: ...
    <BLANKLINE>
    mlimpute_version = "..."
    <BLANKLINE>
    [data]
    path = "classroom.csv"
    <BLANKLINE>
    [imputation]
    cluster = "class"
    m = 2
    iterations = 4
    seed = 3
    visit = [
        "grade",
    ]
    <BLANKLINE>
    [imputation.formulas]
    grade = "~ skill + (1 | class)"
    <BLANKLINE>
    [imputation.methods]
    grade = "2l.norm"
    <BLANKLINE>
    """
    return StudySpec.from_imputation_spec(spec, **extras).to_toml(
        "mlimpute specification of a finished run: `mlimpute run <this file>` repeats it\n"
        "(same data and mlimpute version: the same imputations, bit for bit).\n"
        "Paths are relative to this file's directory.")


# ------------------------------------------------------------------------------------------
# formulas as text
# ------------------------------------------------------------------------------------------
def _term(name: str) -> str:
    return name if _IDENT.fullmatch(name) else f"`{name}`"


def formula_text(formula: ParsedFormula) -> str:
    """``"~ ..."``: a parsed formula as used, written so that it parses back to the same.

    Unlike ``str(formula)``, column names that are not identifiers are backquoted in
    ``cmean()`` and in the grouping factor.

    Examples
    --------
    >>> formula_text(parse_formula("~ x + cmean(`a b`) + (1 | `my class`)", "y"))
    '~ x + cmean(`a b`) + (1 | `my class`)'
    """
    fixed = re.sub(r"`cmean\(([^`]*)\)`", lambda mt: f"cmean({_term(mt.group(1))})",
                   formula.fixed).strip()
    parts = [fixed] if fixed not in {"", "1"} else ["1"]
    for block in formula.random:
        bar = "|" if block.correlated else "||"
        parts.append(f"({block.terms} {bar} {_term(formula.group)})")
    return "~ " + " + ".join(parts)


# ------------------------------------------------------------------------------------------
# defaults for `mlimpute init`
# ------------------------------------------------------------------------------------------

def _is_number(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype)


def _default_spec(df: pd.DataFrame, cluster: str | None):
    """The specification ``impute(df, cluster=cluster)`` would run (warnings silenced)."""
    import warnings

    from .errors import MlimputeWarning
    from .spec import build_spec

    if cluster is not None and cluster not in df.columns:
        raise SpecificationError(f"cluster column {cluster!r} is not in the data; columns: "
                                 f"{list(df.columns)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MlimputeWarning)
        return build_spec(df, None, cluster=cluster)


def default_formulas(df: pd.DataFrame, cluster: str | None = None) -> dict[str, str]:
    """The default imputation formulas for ``df``: those ``impute(cluster=...)`` uses.

    See :mod:`mlimpute.defaults`: every incomplete variable from all other analysis
    variables; with a cluster, level-1 models get a random intercept and the cluster means
    of their level-1 predictors, level-2 variables a model on one row per cluster.

    Examples
    --------
    >>> import mlimpute
    >>> df = mlimpute.datasets.classroom(2, rng=1).incomplete
    >>> default_formulas(df, "class")["grade"]
    '~ skill + gender + cmean(gender) + relation + cmean(relation) + (1 | class)'
    """
    return _default_spec(df, cluster).formulas


def init_spec(df: pd.DataFrame, *, cluster: str | None = None,
              data: str | os.PathLike | None = None, m: int = 20, iterations: int = 20,
              seed: int | None = None) -> str:
    """TOML text of a default specification for ``df`` (``mlimpute init``), to be reviewed.

    The formulas and models are the defaults of ``impute(cluster=...)``, written out.

    Examples
    --------
    >>> import mlimpute
    >>> df = mlimpute.datasets.classroom(1, rng=1).incomplete
    >>> text = init_spec(df, cluster="class", data="classroom.csv", seed=1)
    >>> loads_spec(text).formulas
    {'grade': '~ skill + (1 | class)'}
    """
    spec = _default_spec(df, cluster)
    formulas = spec.formulas
    missing = df.isna().sum()
    skipped = [c for c in df.columns if missing[c] > 0 and c not in formulas and c != cluster]
    columns = [c for c in df.columns if c not in skipped] if skipped else None
    study = StudySpec(formulas=formulas, methods=spec.methods, cluster=cluster, m=m,
                      iterations=iterations, seed=seed,
                      data=os.fspath(data) if data is not None else None,
                      columns=tuple(columns) if columns else None, version=_version())
    header = [
        "mlimpute specification written by `mlimpute init`.",
        "REVIEW THE FORMULAS BELOW before running `mlimpute run <this file>`: every",
        "incomplete column is imputed from all other columns"
        + (f", level-1 variables with a random intercept per {cluster!r} and the cluster "
           "means of their level-1 predictors, level-2 variables on one row per cluster."
           if cluster else "."),
        "Paths are relative to this file's directory. Add an [analysis] table",
        '(formula = "y ~ x + (1 | g)", tests = ["x = 0"]) to pool an analysis.',
    ]
    header += [f"Note: {e}" for e in spec.events]
    if skipped:
        header.append(f"Left out (incomplete, not imputable): {skipped}; data.columns lists "
                      "the columns used.")
    if not formulas:
        header.append("No incomplete column: nothing to impute.")
    if seed is None:
        header.append("Set imputation.seed to make the run reproducible.")
    return study.to_toml("\n".join(header))


def _version() -> str:
    from . import __version__

    return __version__


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


def run(study: StudySpec | str | os.PathLike, df: pd.DataFrame | None = None, *,
        progress: bool = False, log: Callable[[str], None] | None = None) -> RunResult:
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
        warnings.warn(f"the specification was written by mlimpute {study.version}; this is "
                      f"{_version()}: the imputations may differ from that run",
                      MlimputeWarning, stacklevel=2)
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
