"""The specification in an imputation file (:mod:`mlimpute.io`), and JSON-safe values.

:func:`spec_to_dict` and :func:`spec_from_dict` turn an :class:`ImputationSpec` into
JSON-ready builtins and back; the helpers keep tuples, numpy scalars and non-finite
numbers intact through JSON.
"""

from __future__ import annotations

import json
from dataclasses import fields, replace
from typing import Any

import numpy as np

from mlimpute.errors import DataError, DataTypeError, MlimputeError
from mlimpute.io.checks import MAX_DEPTH, json_depth
from mlimpute.spec.build import ImputationSpec, VariableSpec
from mlimpute.spec.formula import ParsedFormula, RandomBlock, formula_text, parse_formula
from mlimpute.spec.grammar import validate_rhs


def _plain(x: Any) -> Any:
    """``x`` as JSON-ready builtins (tuples → lists, numpy scalars → Python)."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return {"__ndarray__": x.tolist(), "dtype": x.dtype.str}
    if isinstance(x, np.generic):
        return x.item()
    return x


def _revive(x: Any) -> Any:
    if isinstance(x, dict):
        if set(x) == {"__ndarray__", "dtype"}:
            return np.asarray(x["__ndarray__"], dtype=x["dtype"])
        return {k: _revive(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_revive(v) for v in x]
    return x


def _freeze(x: Any) -> Any:
    """Lists → tuples, recursively (dataclass fields are tuples)."""
    if isinstance(x, list):
        return tuple(_freeze(v) for v in x)
    return x


def _dumps(x: Any, what: str) -> str:
    """JSON text of ``x``, nested at most :data:`~mlimpute.io.checks.MAX_DEPTH` levels (a
    file opens only then)."""
    try:
        text = json.dumps(_plain(x), allow_nan=True)
    except (TypeError, RecursionError) as exc:
        raise DataTypeError(f"{what} cannot be saved: {exc}") from None
    if json_depth(text) > MAX_DEPTH:
        raise DataTypeError(
            f"{what} cannot be saved: it nests more than {MAX_DEPTH} levels of lists or dicts"
        )
    return text


def spec_to_dict(spec: ImputationSpec) -> dict[str, Any]:
    """The specification as JSON-ready builtins; :func:`spec_from_dict` inverts it.

    Each formula is kept as the user's text, as the text of what was used
    (:func:`mlimpute.spec.formula.formula_text`) and as its parsed fields.

    Examples
    --------
    >>> import mlimpute
    >>> from mlimpute.spec.build import build_spec
    >>> df = mlimpute.datasets.classroom(1, rng=1).incomplete
    >>> spec = build_spec(df, {"grade": "~ skill + (1 | class)"}, m=3, seed=7)
    >>> spec_from_dict(spec_to_dict(spec)) == spec
    True
    """
    out: dict[str, Any] = {}
    for f in fields(spec):
        value = getattr(spec, f.name)
        if f.name == "variables":
            value = [
                {
                    "name": v.name,
                    "formula": formula_text(v.formula),
                    "text": v.formula.text,
                    "parsed": _formula_fields(v.formula),
                    **{
                        g.name: _plain(getattr(v, g.name))
                        for g in fields(v)
                        if g.name not in ("name", "formula")
                    },
                }
                for v in value
            ]
        elif f.name == "model":
            if value is None:
                continue
            value = {
                "name": value.response,
                "formula": formula_text(value),
                "text": value.text,
                "parsed": _formula_fields(value),
            }
        out[f.name] = _plain(value)
    return out


def _formula_fields(formula: ParsedFormula) -> dict[str, Any]:
    out = {f.name: getattr(formula, f.name) for f in fields(formula)}
    out["random"] = [{g.name: getattr(b, g.name) for g in fields(b)} for b in formula.random]
    out["random_terms"] = [
        {**{g.name: getattr(b, g.name) for g in fields(b)}, "group": group}
        for b, group in formula.random_terms
    ]
    return _plain(out)


def _formula_from(v: dict[str, Any], source: str) -> ParsedFormula:
    """Re-parse the user's text (validates it), then restore the fields exactly as used.

    Every stored formula string (the user's text, the formula as used, the stored fixed
    part and random terms) is checked against the formula grammar first; one outside it
    (an edited file) is refused with a :class:`DataError`, never evaluated.
    """
    name = v.get("name")
    parsed = dict(v.get("parsed") or {})
    texts = [v.get("formula"), v.get("text"), parsed.get("text")]
    shown = next((t for t in texts if t is not None), None)
    try:
        for t in texts:
            if t is not None:
                shown = t
                parse_formula(t)
        if "fixed" in parsed:
            shown = parsed["fixed"]
            validate_rhs(shown)
        for b in [*(parsed.get("random") or ()), *(parsed.get("random_terms") or ())]:
            shown = b["terms"] if isinstance(b, dict) else b
            validate_rhs(shown)
        if not parsed:  # only the formula as used: parse it, keep the user's text
            f = parse_formula(v["formula"], name)
            return replace(f, text=v["text"]) if v.get("text") else f
        f = parse_formula(v.get("text") or v["formula"], name)
        if "random" in parsed:
            parsed["random"] = tuple(RandomBlock(**b) for b in parsed["random"])
        if "random_terms" in parsed:
            parsed["random_terms"] = tuple(
                (RandomBlock(b["terms"], b["correlated"]), str(b["group"]))
                for b in parsed["random_terms"]
            )
        elif "random" in parsed:  # stored before formulas had several grouping factors:
            parsed["random_terms"] = ()  # rebuilt from group and random
        known = {g.name for g in fields(ParsedFormula)}
        return replace(f, **{k: _freeze(x) for k, x in parsed.items() if k in known})
    except (MlimputeError, KeyError, TypeError) as exc:
        raise DataError(
            f"{source}: the stored formula of {name!r} ({shown!r}) is refused, it is not a "
            f"valid formula (was the file edited?): {exc}"
        ) from None


def spec_from_dict(d: dict[str, Any], source: str = "the stored specification") -> ImputationSpec:
    """Rebuild an :class:`~mlimpute.spec.build.ImputationSpec` from :func:`spec_to_dict` output.

    Formulas are re-parsed from the user's text with :func:`mlimpute.parse_formula` (which
    validates them), then given the parsed fields stored with them, so the formula is
    exactly the one used (e.g. without the random part a single-level method dropped).
    Keys this version does not know are ignored. A stored formula outside the formula
    grammar is refused with a :class:`~mlimpute.errors.DataError` naming ``source`` (the
    file) and the formula; nothing of it is evaluated.
    """
    known_v = {g.name for g in fields(VariableSpec)}
    variables = []
    for v in d.get("variables", []):
        extra = {
            k: _freeze(x) for k, x in v.items() if k in known_v and k not in ("name", "formula")
        }
        variables.append(VariableSpec(name=v["name"], formula=_formula_from(v, source), **extra))
    known = {g.name for g in fields(ImputationSpec)}
    kwargs = {k: _freeze(x) for k, x in d.items() if k in known and k not in ("variables", "model")}
    if d.get("model"):  # the analysis model of a model-based imputation
        kwargs["model"] = _formula_from(dict(d["model"]), source)
    return ImputationSpec(variables=tuple(variables), **kwargs)
