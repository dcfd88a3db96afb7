"""
R-hat against its limit, for every trace
========================================

The convergence check compares each trace's rank-normalised split R-hat with a limit of
its own: the value that converged chains of this length exceed with probability 0.05,
allowing for the trace's autocorrelation and for the number of traces checked. Traces
above their limit would raise a ``ConvergenceWarning``. Here: the random-slope
experiment 3 (a random slope of ``gender`` and a cross-level interaction).
"""

import matplotlib.pyplot as plt
import numpy as np

import mlimpute
from mlimpute.datasets import classroom

data = classroom(3, rng=1)
imp = data.incomplete.mi.impute(data.imputation, m=6, iterations=30, rng=1)
table = mlimpute.diagnostics.rhat_table(imp)
print(table.round(3).to_string(index=False))

fig, ax = plt.subplots(figsize=(6, 0.3 * len(table) + 1))
y = np.arange(len(table))
ax.scatter(table["rhat"], y, color="tab:blue", label="R-hat", zorder=3)
ax.scatter(
    np.minimum(table["limit"], 2.0), y, marker="|", s=200, color="tab:red", label="limit (cut at 2)"
)
ax.set_yticks(y, table["variable"] + ": " + table["trace"])
ax.set_xlim(0.9, 2.05)
ax.axvline(1.0, color="grey", linewidth=0.5)
ax.invert_yaxis()
ax.legend(loc="lower right")
ax.set_xlabel("split R-hat (second half of the iterations)")
fig.tight_layout()
