"""mlimpute: multilevel multiple imputation for Python.

Importing the package registers the ``.mi`` DataFrame accessor::

    import mlimpute
    imp = df.mi.impute({"grade": "~ skill + (1 | class)"}, m=20, rng=1)

The public names below are loaded on first use, so ``import mlimpute`` stays quick (the
statistics, plotting and file back-ends are imported when a function needs them).

Examples
--------
>>> import mlimpute
>>> df = mlimpute.datasets.classroom(1, rng=1).incomplete
>>> imp = df.mi.impute({"grade": "~ skill + (1 | class)"}, m=2, iterations=5, rng=1)
>>> isinstance(imp, mlimpute.MultiplyImputed)
True
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from mlimpute import accessor as _accessor  # noqa: F401  (registers df.mi; imports pandas only)
from mlimpute import datasets
from mlimpute._version import __version__
from mlimpute.errors import (
    CompatibilityWarning,
    ConvergenceWarning,
    DataError,
    DataTypeError,
    FormulaError,
    MlimputeError,
    MlimputeWarning,
    SpecificationError,
    UnsupportedError,
)

# public name -> (module, attribute or None for the module itself), imported on first use
_LAZY: dict[str, tuple[str, str | None]] = {
    "impute": (".impute", "impute"),
    "ampute": (".ampute", "ampute"),
    "sensitivity": (".sensitivity", "sensitivity"),
    "SensitivityResult": (".sensitivity", "SensitivityResult"),
    "open": (".io", "open"),
    "io": (".io", None),
    "specfile": (".specfile", None),
    "read_spec": (".specfile", "read_spec"),
    "StudySpec": (".specfile", "StudySpec"),
    "from_completed": (".analysis", "from_completed"),
    "missing_pattern": (".pattern", "missing_pattern"),
    "MissingPattern": (".pattern", "MissingPattern"),
    "PooledResult": (".analysis.results", "PooledResult"),
    "diagnostics": (".diagnostics", None),
    "MultiplyImputed": (".result.imputed", "MultiplyImputed"),
    "parse_formula": (".spec.formula", "parse_formula"),
    "available_models": (".models", "available_models"),
}

if TYPE_CHECKING:  # for type checkers and IDEs; at run time these come from __getattr__
    from mlimpute import diagnostics, io, specfile
    from mlimpute.ampute import ampute
    from mlimpute.analysis import from_completed
    from mlimpute.analysis.results import PooledResult
    from mlimpute.impute import impute
    from mlimpute.io import open  # noqa: A004
    from mlimpute.models import available_models
    from mlimpute.pattern import MissingPattern, missing_pattern
    from mlimpute.result.imputed import MultiplyImputed
    from mlimpute.sensitivity import SensitivityResult, sensitivity
    from mlimpute.spec.formula import parse_formula
    from mlimpute.specfile import StudySpec, read_spec

__all__ = [
    "__version__",
    "impute",
    "ampute",
    "sensitivity",
    "SensitivityResult",
    "open",
    "io",
    "specfile",
    "read_spec",
    "StudySpec",
    "from_completed",
    "missing_pattern",
    "MissingPattern",
    "PooledResult",
    "diagnostics",
    "MultiplyImputed",
    "parse_formula",
    "available_models",
    "datasets",
    "MlimputeError",
    "FormulaError",
    "SpecificationError",
    "DataError",
    "DataTypeError",
    "UnsupportedError",
    "MlimputeWarning",
    "ConvergenceWarning",
    "CompatibilityWarning",
]


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'mlimpute' has no attribute {name!r}") from None
    mod = importlib.import_module(module, __name__)
    value = mod if attr is None else getattr(mod, attr)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


class _Package(types.ModuleType):
    """Keeps ``mlimpute.impute`` (``ampute``, ``sensitivity``) the function when the
    submodule is imported.

    (The import system sets a package attribute for every submodule it loads.)
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("impute", "ampute", "sensitivity") and isinstance(value, types.ModuleType):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
