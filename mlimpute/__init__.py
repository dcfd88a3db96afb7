"""mlimpute: multilevel multiple imputation for Python.

Importing the package registers the ``.mi`` DataFrame accessor::

    import mlimpute
    imp = df.mi.impute({"grade": "~ skill + (1 | class)"}, m=20, rng=1)
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import accessor as _accessor  # noqa: E402,F401  (registers df.mi)
from . import datasets, diagnostics, io, specfile  # noqa: E402  # noqa: E402
from .analysis import from_completed  # noqa: E402
from .errors import (  # noqa: E402
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
from .formula import parse_formula  # noqa: E402
from .impute import impute  # noqa: E402
from .imputed import MultiplyImputed  # noqa: E402
from .io import open  # noqa: E402,A004
from .models import available_models  # noqa: E402
from .pattern import MissingPattern, missing_pattern  # noqa: E402
from .results import PooledResult  # noqa: E402
from .specfile import StudySpec, read_spec  # noqa: E402

__all__ = [
    "__version__",
    "impute",
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
