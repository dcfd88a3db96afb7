"""
Trace plots: have the chains mixed?
===================================

Each imputation is a Markov chain. The trace plot draws, per iteration, the mean and the
standard deviation of the imputed values of each variable, one line per chain. Chains
that have mixed overlap and show no trend after the first few iterations.
"""

import mlimpute
from mlimpute.datasets import classroom

df = classroom(2, rng=1).incomplete
imp = df.mi.impute(
    {
        "relation": "~ gender + grade + skill + cmean(grade) + (1 | class)",
        "grade": "~ gender + relation + skill + cmean(relation) + (1 | class)",
    },
    m=5,
    iterations=20,
    rng=1,
)
fig = imp.plot.trace()

# %%
# R-hat of the chain mean and SD of each variable, over the second half of the
# iterations, with the limit above which the convergence check warns:
table = mlimpute.diagnostics.rhat_table(imp, params=False)
print(table.round(3).to_string(index=False))
