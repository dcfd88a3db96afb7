"""
Per-imputation estimates and the pooled interval
================================================

``res.per_imputation`` holds each completed data set's estimates; Rubin's rules
combine them with the within-imputation variance into the pooled estimate and interval.
The spread of the dots is the between-imputation variance that missing data add.
"""

import matplotlib.pyplot as plt
import numpy as np

import mlimpute  # noqa: F401
from mlimpute.datasets import classroom

df = classroom(2, rng=1).incomplete
imp = df.mi.impute(cluster="class", m=10, rng=1)
res = imp.fit("grade ~ skill + gender + relation + (1 | class)")
summary = res.summary()
per = res.per_imputation
print(summary.round(3))

terms = [t for t in summary.index if t != "Intercept"]
fig, ax = plt.subplots(figsize=(6, 3))
for k, term in enumerate(terms):
    values = np.asarray(per[term], dtype=float)
    ax.scatter(values, np.full(values.shape, k) + 0.15, s=12, color="tab:red", alpha=0.7)
    ax.plot([summary.loc[term, "ci_low"], summary.loc[term, "ci_high"]], [k, k], color="black")
    ax.plot(summary.loc[term, "estimate"], k, "o", color="black")
ax.set_yticks(range(len(terms)), terms)
ax.axvline(0, color="grey", linewidth=0.5)
ax.set_xlabel("estimate (black: pooled with 95 % interval; red: per imputation)")
fig.tight_layout()
