"""One exception hierarchy for mlimpute.

Every error raised on bad user input derives from :class:`MlimputeError` and from the
matching builtin (``ValueError`` or ``TypeError``), so ``except ValueError`` keeps working.
Messages name the column, formula token or cluster at fault.
"""

from __future__ import annotations

import os
import sys
import warnings

__all__ = [
    "MlimputeError",
    "FormulaError",
    "SpecificationError",
    "DataError",
    "DataTypeError",
    "PoolingError",
    "LatentBoundaryError",
    "UnsupportedError",
    "ChainError",
    "MlimputeWarning",
    "ConvergenceWarning",
    "CompatibilityWarning",
    "warn",
]


class MlimputeError(Exception):
    """Base class of every error mlimpute raises on purpose."""


class FormulaError(MlimputeError, ValueError):
    """A formula is not valid lme4-style syntax; the message shows the token and formula."""


class SpecificationError(MlimputeError, ValueError):
    """The imputation specification does not fit the data (unknown column, no model...)."""


class DataError(MlimputeError, ValueError):
    """The data cannot be imputed as given (all missing, inf, missing cluster ids...)."""


class DataTypeError(MlimputeError, TypeError):
    """A column's dtype does not suit the model chosen for it."""


class UnsupportedError(MlimputeError, NotImplementedError):
    """A valid request that mlimpute does not support yet (e.g. three-level models)."""


class PoolingError(MlimputeError, ValueError):
    """Estimates cannot be pooled (m < 2 where a between-imputation variance is needed...)."""


class LatentBoundaryError(PoolingError):
    """The maximum-likelihood latent covariate fit (``fit(latent="ml")``) of a completed data
    set is at the boundary of its parameter space (x's latent cluster means hardly vary:
    the latent variance near zero), where it has no standard errors; carries the data set
    (1-based) as ``imputation``."""

    def __init__(self, message: str, imputation: int | None = None):
        super().__init__(message)
        self.imputation = imputation

    def __reduce__(self):  # picklable across process pools
        return (type(self), (self.args[0], self.imputation))


class ChainError(MlimputeError, RuntimeError):
    """An error inside one chain; carries the chain number and its seed."""

    def __init__(self, message: str, chain: int, seed_entropy: object = None):
        super().__init__(message)
        self.chain = chain
        self.seed_entropy = seed_entropy

    def __reduce__(self):  # picklable across process pools
        return (type(self), (self.args[0], self.chain, self.seed_entropy))


class MlimputeWarning(UserWarning):
    """Non-fatal problems worth the user's attention."""


class ConvergenceWarning(MlimputeWarning):
    """Some chains have not mixed (R-hat above the threshold)."""


class CompatibilityWarning(MlimputeWarning):
    """The analysis has a term (random slope, interaction, non-linear term) of an
    incomplete variable that the imputation models did not include: its estimate is biased
    (random-slope variances and interactions typically toward zero)."""


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def warn(message: str, category: type[Warning] = MlimputeWarning) -> None:
    """Emit a warning attributed to the user's line (the first frame outside mlimpute)."""
    frame = sys._getframe(1)
    level = 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)
