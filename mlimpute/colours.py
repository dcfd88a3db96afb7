"""Colours of every mlimpute plot: observed values blue, imputed (missing) values red.

The colours of R mice's ``mdc()``, shared by ``imp.plot`` (:mod:`mlimpute.result.plot`)
and :meth:`mlimpute.MissingPattern.plot`; the module imports nothing.

Examples
--------
>>> from mlimpute.colours import IMPUTED_COLOUR, OBSERVED_COLOUR
>>> OBSERVED_COLOUR, IMPUTED_COLOUR
('#006CC2B3', '#B61A51B3')
"""

from __future__ import annotations

__all__ = ["OBSERVED_COLOUR", "IMPUTED_COLOUR"]

#: mice's ``mdc(1)``: observed values, blue at 70 % opacity.
OBSERVED_COLOUR = "#006CC2B3"
#: mice's ``mdc(2)``: imputed (missing) values, red at 70 % opacity.
IMPUTED_COLOUR = "#B61A51B3"
