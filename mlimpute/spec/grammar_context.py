"""The namespace formulaic evaluates formulas in (:data:`EVALUATION_CONTEXT`).

Besides the data, a formula reaches only the allowed functions, ``np`` and ``contr``
holding only the allowed members, and a refusing stand-in (``_Refused``) for every
Python builtin and every other formulaic transform.

A backquoted column named like a Python keyword (```class```, ```lambda```) inside a
call: formulaic renames backquoted names that are not identifiers before Python reads
the call, but passes keywords through unchanged, which Python cannot read.
:func:`_rename_keywords` makes formulaic rename them like every other such name (it
replaces formulaic's ``sanitize_variable_name`` once, when this module is imported).
"""

from __future__ import annotations

import builtins
import keyword
from types import MappingProxyType, SimpleNamespace

import numpy as np
from formulaic.transforms import (
    TRANSFORMS,
    C,
    ContrastsRegistry,
    basis_spline,
    center,
    identity,
    poly,
    scale,
)
from formulaic.transforms.contrasts import TreatmentContrasts
from formulaic.transforms.patsy_compat import PATSY_COMPAT_TRANSFORMS
from formulaic.utils import code as _formulaic_code

from mlimpute.errors import FormulaError
from mlimpute.spec.grammar_functions import _NUMERIC, CONTRASTS

__all__ = ["EVALUATION_CONTEXT"]


class _Refused:
    """Stands in for every name a formula may not reach (Python builtins, formulaic's
    other transforms): calling it or reading an attribute raises FormulaError."""

    __slots__ = ("_name",)

    def __init__(self, name: str):
        object.__setattr__(self, "_name", name)

    def __call__(self, *args, **kwargs):
        raise FormulaError(f"{self._name!r} may not be called in a formula")

    def __getattr__(self, attr):
        raise FormulaError(
            f"{object.__getattribute__(self, '_name')!r} is not available in a formula"
        )

    def __repr__(self) -> str:
        return f"<not available in formulas: {self._name}>"


class _Treatment(TreatmentContrasts):
    """``Treatment`` in a formula: formulaic's treatment contrast under patsy's name and
    argument, ``Treatment("b")`` or ``Treatment(reference="b")``. Being a contrast class,
    it also works bare, ``C(x, Treatment)`` (the first level as reference), as ``Sum``
    does; formulaic's own ``Treatment`` is a function, which it cannot use bare."""

    def __init__(self, reference=TreatmentContrasts.base):
        super().__init__(base=reference)


def _context() -> MappingProxyType:
    ctx: dict[str, object] = {}
    for name in {*dir(builtins), "__builtins__", *TRANSFORMS, *PATSY_COMPAT_TRANSFORMS}:
        ctx[name] = _Refused(name)
    numeric = {f: getattr(np, f) for f in _NUMERIC}
    ctx.update(numeric)
    ctx["np"] = SimpleNamespace(**numeric)
    ctx.update(I=identity, C=C, center=center, scale=scale, poly=poly, bs=basis_spline)
    ctx["contr"] = SimpleNamespace(
        **{
            c.split(".")[1]: getattr(ContrastsRegistry, c.split(".")[1])
            for c in CONTRASTS
            if c.startswith("contr.")
        }
    )
    ctx.update({c: PATSY_COMPAT_TRANSFORMS[c] for c in CONTRASTS if "." not in c})
    ctx["Treatment"] = _Treatment
    return MappingProxyType(ctx)


#: The namespace (besides the data) in which formulaic evaluates every formula: the
#: allowed functions, ``np`` and ``contr`` holding only the allowed members, and a
#: refusing stand-in for every Python builtin and every other formulaic transform.
EVALUATION_CONTEXT: MappingProxyType = _context()


def _rename_keywords() -> None:
    """Make formulaic rename a backquoted Python keyword as it renames other backquoted
    names that are not identifiers (```class``` to ``class_``, its value the column's),
    instead of passing it to Python unchanged. Other names go to formulaic's own rule."""
    original = getattr(_formulaic_code, "sanitize_variable_name", None)
    if original is None or getattr(original, "_mlimpute", False):
        return  # a formulaic without it: backquoted keywords stay unreadable, nothing else

    def sanitize_variable_name(name, env, *, reserved_names, template="{}"):
        if not keyword.iskeyword(name):
            return original(name, env, reserved_names=reserved_names, template=template)
        new_name, k = template.format(f"{name}_"), 0
        while new_name in env or new_name in reserved_names:
            k += 1
            new_name = template.format(f"{name}_{k}")
        if name in env:
            env[new_name] = env[name]
        return new_name

    sanitize_variable_name._mlimpute = True
    _formulaic_code.sanitize_variable_name = sanitize_variable_name


_rename_keywords()
