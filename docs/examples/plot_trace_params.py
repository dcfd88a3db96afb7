"""
Trace plots of the model parameters
===================================

``params=True`` adds one panel per parameter of each model: fixed effects, the
random-intercept variance and the residual variance. Variance components mix more
slowly than the means of the imputed values, so they are the first place to look when
the convergence check warns.
"""

import mlimpute  # noqa: F401  (registers df.mi)
from mlimpute.datasets import classroom

df = classroom(1, rng=1).incomplete
imp = df.mi.impute({"grade": "~ skill + (1 | class)"}, m=4, iterations=30, rng=2)
fig = imp.plot.trace(params=True)
