"""
Observed and imputed distributions
==================================

The density plot compares the observed values (thick blue) with the imputed values of
each imputation (thin red), as mice's ``densityplot`` does. In experiment 2 boys are
more often missing than girls (missing at random given gender), so the imputed
distributions may differ from the observed one — that is expected, not a fault.
"""

import mlimpute  # noqa: F401
from mlimpute.datasets import classroom

df = classroom(2, rng=1).incomplete
imp = df.mi.impute(cluster="class", m=5, rng=1)
fig = imp.plot.density()
