"""Rubin's rules and multi-parameter tests for multiply imputed analyses.

Every function here is a pure function of arrays whose leading axis runs over the
``m`` imputations: estimates ``(m, k)``, their covariance matrices ``(m, k, k)``, or
``m`` test statistics. Nothing here fits a model; :mod:`mlimpute.analysis.fitters.mixedlm`
does that.

Scalar inference (:func:`pool`, :func:`pool_scalar`) follows Rubin (1987) with the
small-sample degrees of freedom of Barnard & Rubin (1999), as R's mice ``pool()`` does.
Tests of ``k`` parameters at once are D1 (Li, Raghunathan & Rubin 1991, with the
denominator df of Reiter 2007 when the complete-data df is finite), D2 (Li, Meng,
Raghunathan & Rubin 1991) and D3 (Meng & Rubin 1992); their conventions are those of
R's mitml ``testModels()``. Variance components are pooled by averaging, as mitml does.

Rubin's rules and the variance components live in :mod:`mlimpute.pooling.rubin`, the
multi-parameter tests in :mod:`mlimpute.pooling.multiparam`; this module is their public face.

References
----------
.. [1] Rubin, D. B. (1987). *Multiple Imputation for Nonresponse in Surveys*. Wiley.
.. [2] Barnard, J. & Rubin, D. B. (1999). Small-sample degrees of freedom with multiple
   imputation. *Biometrika* 86(4), 948-955.
.. [3] Li, K. H., Raghunathan, T. E. & Rubin, D. B. (1991). Large-sample significance
   levels from multiply imputed data using moment-based statistics and an F reference
   distribution. *JASA* 86(416), 1065-1073.
.. [4] Li, K. H., Meng, X.-L., Raghunathan, T. E. & Rubin, D. B. (1991). Significance
   levels from repeated p-values with multiply-imputed data. *Statistica Sinica* 1, 65-92.
.. [5] Meng, X.-L. & Rubin, D. B. (1992). Performing likelihood ratio tests with
   multiply-imputed data sets. *Biometrika* 79(1), 103-111.
.. [6] Reiter, J. P. (2007). Small-sample degrees of freedom for multi-component
   significance tests with multiple imputation for missing data. *Biometrika* 94(2),
   502-508.
"""

from __future__ import annotations

from mlimpute.pooling.multiparam import TestResult, d1, d2, d3, wald_statistics
from mlimpute.pooling.rubin import (
    PooledEstimates,
    barnard_rubin_df,
    pool,
    pool_scalar,
    pool_variance_components,
)

__all__ = [
    "PooledEstimates",
    "TestResult",
    "barnard_rubin_df",
    "d1",
    "d2",
    "d3",
    "pool",
    "pool_scalar",
    "pool_variance_components",
    "wald_statistics",
]
