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
from mlimpute.rng import MAX_SEED, MAX_SPAWN_KEY
from mlimpute.spec.formula import ParsedFormula, parse_formula
from mlimpute.specfile.study import AnalysisSpec, OutputSpec, StudySpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


# the keys of a [model] table (model-based imputation)
#: the most imputations a specification file may ask for (each may name a file of its own,
#: and every name is checked before the run: a file is not to make that list unbounded)
MAX_M = 100_000

_MODEL_KEYS = ("formula", "auxiliary", "family", "m", "iterations", "seed", "spawn_key", "options")

# tables and arrays nested deeper than this are refused (a specification needs about 5)
MAX_DEPTH = 20

# the longest file name (one path component, in bytes) most file systems allow; run()
# checks each output against the limit of its own directory
NAME_MAX = 255

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_INT64_MAX = 2**63 - 1

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

    def positive(
        self, d: Mapping, key: str, full: str, default: int, most: int | None = None
    ) -> int:
        value = d.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.fail(full, f"must be an integer ≥ 1, got {_show(value)}")
        if most is not None and value > most:
            raise self.fail(
                full, f"must be at most {most:,} in a specification file, got {value:,}"
            )
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
    except ValueError as exc:  # a number the parser cannot convert (> 4300 digits)
        why = str(exc).split(";")[0]
        raise SpecificationError(f"{source}: invalid TOML: a value cannot be read: {why}") from None
    except RecursionError:  # the parser recurses once per level of nesting
        raise SpecificationError(
            f"{source}: invalid specification: tables or arrays nested more than {MAX_DEPTH} deep"
        ) from None
    c = _Checker(source)
    _check_depth(c, doc)
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
            (
                "formulas",
                "methods",
                "cluster",
                "m",
                "iterations",
                "seed",
                "spawn_key",
                "visit",
                "options",
            ),
            required=True,
        )
        section = "imputation"
    output = c.table(doc, "output", ("imputations", "completed", "pooled"))
    analysis = c.table(doc, "analysis", ("formula", "reml", "tests", "family"))

    formulas = c.mapping(imp, "formulas", "imputation.formulas")
    for name, text_ in (formulas or {}).items():
        _parse(source, f"imputation.formulas.{_key(name)}", text_, name)
    methods = _methods(c, imp)
    for name in methods:
        if formulas is not None and name not in formulas:
            raise c.fail(
                f"imputation.methods.{_key(name)}",
                "a method for a variable without a formula in [imputation.formulas]",
            )
    visit = c.strings(imp, "visit", "imputation.visit")
    seed = _seed(c, imp, section)
    spawn_key = _spawn_key(c, imp, section, seed)
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
        _check_name(c, f"output.{key}", value)
    if data.get("path") is not None:
        _check_placeholders(
            c, "data.path", data["path"] if isinstance(data["path"], str) else None, template=False
        )
        _check_name(c, "data.path", data["path"] if isinstance(data["path"], str) else None)
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
        _parse(source, "analysis.formula", spec_analysis.formula)
    return StudySpec(
        formulas=formulas,
        methods=methods,
        cluster=_cluster(c, imp),
        m=c.positive(imp, "m", f"{section}.m", 5, MAX_M),
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
        spawn_key=spawn_key,
    )


def _parse(source: str, key: str, text: str, name: str | None = None) -> ParsedFormula:
    """A formula of the file, parsed; errors name the file and the key."""
    try:
        return parse_formula(text, name)
    except MlimputeError as exc:
        raise FormulaError(f"{source}: {key}: {exc}") from None
    except RecursionError:  # parentheses nested deeper than the parser can follow
        raise FormulaError(f"{source}: {key}: the formula is nested too deeply") from None


def _check_depth(c: _Checker, doc: Mapping) -> None:
    """Refuse tables and arrays nested deeper than :data:`MAX_DEPTH` (walked without
    recursion, so any depth the TOML parser accepted is measured safely)."""
    stack: list[tuple[Any, str, int]] = [(doc, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise c.fail(where, f"tables or arrays nested more than {MAX_DEPTH} deep")
        if isinstance(value, Mapping):
            stack += [
                (v, f"{where}.{_key(str(k))}" if where else _key(str(k)), depth + 1)
                for k, v in value.items()
            ]
        elif isinstance(value, list):
            stack += [(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]


def _seed(c: _Checker, imp: Mapping, section: str) -> int | None:
    """``seed``: an integer 0 <= seed < 2**128, or its decimal digits as a string (TOML
    integers stop at 2**63 - 1; fresh entropy has 128 bits)."""
    seed = imp.get("seed")
    if seed is None:
        return None
    bound = len(str(MAX_SEED))
    if isinstance(seed, str) and len(seed) <= bound and re.fullmatch("[0-9]+", seed):
        seed = int(seed)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < MAX_SEED:
        raise c.fail(
            f"{section}.seed",
            "must be an integer ≥ 0 and below 2**128 (a seed of at most 128 bits; above "
            f"2**63 - 1 written as a string of digits), got {_show(seed)}",
        )
    return seed


def _spawn_key(c: _Checker, imp: Mapping, section: str, seed: int | None) -> tuple[int, ...]:
    """``spawn_key``: with a seed, the run's rng is ``SeedSequence(seed, spawn_key=...)``."""
    value = imp.get("spawn_key")
    if value is None:
        return ()
    key = f"{section}.spawn_key"
    if (
        not isinstance(value, list)
        or len(value) > MAX_SPAWN_KEY
        or not all(
            isinstance(k, int) and not isinstance(k, bool) and 0 <= k <= _INT64_MAX for k in value
        )
    ):
        raise c.fail(
            key,
            f"must be a list of at most {MAX_SPAWN_KEY} integers ≥ 0 (the spawn key of "
            f"numpy.random.SeedSequence(seed, spawn_key=...)), got {_show(value)}",
        )
    if value and seed is None:
        raise c.fail(key, f"needs a seed ({section}.seed) to go with it")
    return tuple(value)


def _check_name(c: _Checker, key: str, value: str | None) -> None:
    """A path of the file: no control characters, no name longer than :data:`NAME_MAX`."""
    if value is None:
        return
    problem = path_problem(value, NAME_MAX)
    if problem:
        raise c.fail(key, problem)


def path_problem(value: str, name_max: int) -> str | None:
    """Why ``value`` cannot be a path (a control character such as NUL, a name longer than
    ``name_max`` bytes), or None."""
    bad = _CONTROL.search(value)
    if bad:
        return (
            f"{_show(value)} holds the control character {bad.group()!r}; a path may not "
            "contain one"
        )
    for part in Path(value).parts:
        try:
            size = len(os.fsencode(part))
        except UnicodeError:
            return f"{_show(value)} cannot be a file name on this system"
        if size > name_max:
            return (
                f"the name {_show(part)} is {size} bytes long; the file system allows at "
                f"most {name_max}"
            )
    return None


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
    parsed = _parse(source, "model.formula", text)
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
        On invalid TOML or content, naming the key at fault; on a file that is not UTF-8
        text.
    """
    p = Path(os.fspath(path))
    if not p.is_file():
        raise FileNotFoundError(f"specification file not found: {str(p)!r}")
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecificationError(
            f"{p}: not a text file in UTF-8 (byte 0x{raw[exc.start]:02x} at offset "
            f"{exc.start}); a specification file is TOML, which is UTF-8 text"
        ) from None
    return loads_spec(text, p.parent, source=str(p), stem=p.stem)
