"""Reading and validating specification files (:mod:`mlimpute.specfile`).

:func:`read_spec` and :func:`loads_spec` parse TOML and check every key, naming the key
at fault in every error, into a :class:`StudySpec`.
"""

from __future__ import annotations

import inspect
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlimpute.errors import FormulaError, MlimputeError, SpecificationError
from mlimpute.spec.formula import parse_formula
from mlimpute.specfile.study import AnalysisSpec, OutputSpec, StudySpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


# the keys of a [model] table (model-based imputation)
_MODEL_KEYS = ("formula", "auxiliary", "family", "m", "iterations", "seed", "options")

# impute() arguments a specification sets through its own keys, never through options
_RESERVED = {"df", "formulas", "m", "iterations", "rng", "method", "visit", "cluster", "progress"}


class _Checker:
    """Validates one TOML document; every message names the file and the key at fault."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, message: str) -> SpecificationError:
        return SpecificationError(f"{self.source}: {key}: {message}")

    def table(self, doc: Mapping, key: str, allowed: Sequence[str], required: bool = False) -> dict:
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
            raise self.fail(
                f"{key}.{unknown[0]}", f"unknown key; [{key}] accepts {', '.join(allowed)}"
            )
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
        if (
            isinstance(value, str)
            or not isinstance(value, list)
            or not all(isinstance(v, str) for v in value)
        ):
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


def _methods(c: _Checker, imp: Mapping) -> dict[str, Any]:
    """``[imputation.methods]``: a model name per variable, or a table
    ``{ method = "2l.norm", prior = "iw" }`` for a model with options (checked when the
    specification is built)."""
    value = imp.get("methods")
    if value is None:
        return {}
    full = "imputation.methods"
    if not isinstance(value, Mapping):
        raise c.fail(full, f"must be a table of method names ([{full}]), got {_show(value)}")
    for k, v in value.items():
        if isinstance(v, Mapping) and isinstance(v.get("method"), str):
            continue
        if not isinstance(v, str):
            raise c.fail(
                f"{full}.{_key(k)}",
                "must be a method name or a table "
                f'{{ method = "2l.norm", option = value }}, got {_show(v)}',
            )
    return dict(value)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 60 else text[:57] + "..."


def _key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else f'"{name}"'


def loads_spec(
    text: str,
    base_dir: str | os.PathLike | None = None,
    *,
    source: str = "<specification>",
    stem: str | None = None,
) -> StudySpec:
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
    top = ("mlimpute_version", "data", "imputation", "model", "output", "analysis")
    unknown = [k for k in doc if k not in top]
    if unknown:
        raise c.fail(unknown[0], f"unknown key; a specification has {', '.join(top)}")
    version = doc.get("mlimpute_version")
    if version is not None and not isinstance(version, str):
        raise c.fail("mlimpute_version", f"must be a string, got {_show(version)}")

    data = c.table(doc, "data", ("path", "columns"))
    if "model" in doc:
        if "imputation" in doc:
            raise c.fail(
                "model",
                "a specification has either an [imputation] table (chained equations) or a "
                "[model] table (model-based imputation from the analysis model), not both",
            )
        model = c.table(doc, "model", _MODEL_KEYS)
        imp = {k: v for k, v in model.items() if k not in ("formula", "auxiliary", "family")}
        section = "model"
    else:
        model = None
        imp = c.table(
            doc,
            "imputation",
            ("formulas", "methods", "cluster", "m", "iterations", "seed", "visit", "options"),
            required=True,
        )
        section = "imputation"
    output = c.table(doc, "output", ("imputations", "completed", "pooled"))
    analysis = c.table(doc, "analysis", ("formula", "reml", "tests", "family"))

    formulas = c.mapping(imp, "formulas", "imputation.formulas")
    for name, text_ in (formulas or {}).items():
        try:
            parse_formula(text_, name)
        except MlimputeError as exc:
            raise FormulaError(f"{source}: imputation.formulas.{_key(name)}: {exc}") from None
    methods = _methods(c, imp)
    for name in methods:
        if formulas is not None and name not in formulas:
            raise c.fail(
                f"imputation.methods.{_key(name)}",
                "a method for a variable without a formula in [imputation.formulas]",
            )
    visit = c.strings(imp, "visit", "imputation.visit")
    seed = imp.get("seed")
    if isinstance(seed, str) and seed.isdigit():
        seed = int(seed)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise c.fail(f"{section}.seed", f"must be an integer ≥ 0, got {_show(seed)}")
    options = imp.get("options", {})
    if not isinstance(options, Mapping):
        raise c.fail(f"{section}.options", f"must be a table, got {_show(options)}")
    _check_options(c, options, section)
    model_text, auxiliary = _model(c, model, source) if model is not None else (None, ())

    outputs: dict[str, str | None] = {}
    defaults = (
        {
            "imputations": f"{stem}.nc",
            "completed": f"{stem}-completed.csv",
            "pooled": f"{stem}-pooled.csv" if analysis or model is not None else None,
        }
        if stem
        else {}
    )
    for key in ("imputations", "completed", "pooled"):
        value = output.get(key, defaults.get(key))
        if value is False:
            value = None
        elif value is not None and (not isinstance(value, str) or not value.strip()):
            raise c.fail(f"output.{key}", f"must be a path or false, got {_show(value)}")
        outputs[key] = value
    for key, value in outputs.items():
        _check_placeholders(c, f"output.{key}", value, template=key == "completed")
    if data.get("path") is not None:
        _check_placeholders(
            c, "data.path", data["path"] if isinstance(data["path"], str) else None, template=False
        )
    _check_suffix(c, "output.imputations", outputs["imputations"], (".nc", ".nc4", ".zarr", ".h5"))
    _check_suffix(c, "output.completed", outputs["completed"], (".csv", ".parquet", ".pq", ".dta"))

    spec_analysis = None
    if analysis:
        reml = analysis.get("reml", True)
        if not isinstance(reml, bool):
            raise c.fail("analysis.reml", f"must be true or false, got {_show(reml)}")
        spec_analysis = AnalysisSpec(
            formula=c.string(analysis, "formula", "analysis.formula", optional=False),
            reml=reml,
            tests=c.strings(analysis, "tests", "analysis.tests") or (),
            family=c.string(analysis, "family", "analysis.family"),
        )
        try:
            parse_formula(spec_analysis.formula)
        except MlimputeError as exc:
            raise FormulaError(f"{source}: analysis.formula: {exc}") from None
    return StudySpec(
        formulas=formulas,
        methods=methods,
        cluster=_cluster(c, imp),
        m=c.positive(imp, "m", f"{section}.m", 5),
        iterations=c.positive(imp, "iterations", f"{section}.iterations", 20),
        seed=seed,
        visit=visit,
        data=c.string(data, "path", "data.path"),
        columns=c.strings(data, "columns", "data.columns"),
        output=OutputSpec(**outputs),
        analysis=spec_analysis,
        options=dict(options),
        version=version,
        base_dir=Path(base_dir) if base_dir is not None else None,
        model=model_text,
        auxiliary=auxiliary,
        family=c.string(model, "family", "model.family") if model is not None else None,
    )


def _cluster(c: _Checker, imp: Mapping) -> str | tuple[str, ...] | None:
    """``imputation.cluster``: a column name, or the nested levels outermost first
    (``["school", "class"]``, at most two)."""
    value = imp.get("cluster")
    if isinstance(value, list):
        levels = c.strings(imp, "cluster", "imputation.cluster")
        if not levels or not all(v.strip() for v in levels):
            raise c.fail("imputation.cluster", f"must name the levels, got {_show(value)}")
        if len(levels) > 2:
            raise c.fail(
                "imputation.cluster",
                f"has {len(levels)} levels; more than three levels (a fourth level) are not "
                "supported yet",
            )
        return levels[0] if len(levels) == 1 else levels
    return c.string(imp, "cluster", "imputation.cluster")


def _model(c: _Checker, model: Mapping, source: str) -> tuple[str, tuple[str, ...]]:
    """``[model]``: the analysis model (parsed by the formula grammar: a model without an
    outcome or with a token the grammar does not allow is refused here, naming the key;
    what the sampler supports is checked against the data by ``impute``) and the
    auxiliary columns."""
    text = c.string(model, "formula", "model.formula", optional=False)
    try:
        parsed = parse_formula(text)
    except MlimputeError as exc:
        raise FormulaError(f"{source}: model.formula: {exc}") from None
    if parsed.response is None:
        raise c.fail("model.formula", f"the analysis model {text!r} needs an outcome: 'y ~ ...'")
    auxiliary = c.strings(model, "auxiliary", "model.auxiliary") or ()
    for a in auxiliary:
        if a in parsed.variables or a == parsed.response:
            raise c.fail("model.auxiliary", f"{a!r} is already in the analysis model {text!r}")
    if len(set(auxiliary)) < len(auxiliary):
        raise c.fail("model.auxiliary", f"lists a column twice: {list(auxiliary)}")
    return text, auxiliary


def _check_suffix(c: _Checker, key: str, value: str | None, allowed: tuple[str, ...]) -> None:
    if value is not None and Path(value).suffix.lower() not in allowed:
        raise c.fail(key, f"{value!r} must end in one of {', '.join(allowed)}")


def _check_placeholders(c: _Checker, key: str, value: str | None, template: bool) -> None:
    """Only ``output.completed`` takes a placeholder, ``{i}``; braces elsewhere are refused."""
    from mlimpute.io.flat import check_template

    if value is None:
        return
    if not template:
        if "{" in value or "}" in value:
            raise c.fail(
                key, f"{value!r} holds a brace; only output.completed takes a placeholder ({{i}})"
            )
        return
    try:
        check_template(value, key)
    except SpecificationError as exc:
        raise SpecificationError(f"{c.source}: {exc}") from None


def _check_options(c: _Checker, options: Mapping, section: str = "imputation") -> None:
    from mlimpute.impute import impute

    params = inspect.signature(impute).parameters
    allowed = [
        p
        for p, v in params.items()
        if p not in _RESERVED and v.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    for key in options:
        full = f"{section}.options.{_key(key)}"
        if key in ("model", "auxiliary"):
            raise c.fail(
                full,
                "model-based imputation has a table of its own: [model] with formula = "
                '"y ~ ..." and auxiliary = [...] (instead of [imputation])'
                if section == "imputation"
                else f"set it with model.{'formula' if key == 'model' else key}",
            )
        if key in _RESERVED:
            if section == "model" and key in ("formulas", "method", "visit", "cluster"):
                raise c.fail(
                    full,
                    "not with model-based imputation: the analysis model decides every "
                    "imputation model",
                )
            raise c.fail(full, f"set {key!r} with its own key in [{section}]")
        if key not in allowed:
            raise c.fail(
                f"{section}.options.{_key(key)}",
                "not an option of mlimpute.impute"
                + (f"; options: {', '.join(allowed)}" if allowed else ""),
            )


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
