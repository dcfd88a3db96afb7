"""
Strip plot of the imputed values
================================

The strip plot shows at ``x = 0`` the observed values and at ``x = 1..m`` the completed
data sets: their observed values in blue and their imputed values in red (mice's
``stripplot``). Imputed values far outside the observed range would show here.
"""

import mlimpute  # noqa: F401
from mlimpute.datasets import classroom

df = classroom(2, rng=1).incomplete
imp = df.mi.impute(cluster="class", m=5, rng=1)
fig = imp.plot.strip("grade")
