"""
Model checks: posterior-predictive p-values and over-imputation
===============================================================

``imp.check()`` draws replicated data from the final model states and compares each
class's observed mean and within-class SD with their replicated distribution
(p-values near 0 or 1 flag a class the model does not reproduce), and imputes a share of
the observed cells as if missing to see how often their 90 % interval covers the value.
Here a multilevel and a single-level model of the same data: the single-level model
misses several class means.
"""

import matplotlib.pyplot as plt

import mlimpute  # noqa: F401
from mlimpute.datasets import classroom

df = classroom(1, rng=1).incomplete
multilevel = df.mi.impute({"grade": "~ skill + (1 | class)"}, m=5, iterations=20, rng=1)
single = df.mi.impute({"grade": "~ skill"}, m=5, iterations=20, rng=1)

fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), sharey=True)
runs = [("multilevel", multilevel), ("single-level", single)]
for ax, (name, imp) in zip(axes, runs, strict=True):
    table = imp.check(rng=1, cluster="class")
    means = table[(table["check"] == "mean") & (table["cluster"] != "all")]
    extreme = ((means["p_value"] < 0.025) | (means["p_value"] > 0.975)).sum()
    ax.hist(means["p_value"], bins=10, range=(0, 1), color="tab:blue", alpha=0.8)
    ax.axvline(0.025, color="tab:red", linestyle="--")
    ax.axvline(0.975, color="tab:red", linestyle="--")
    ax.set_title(f"{name}: {extreme} of {len(means)} classes outside", fontsize="medium")
    ax.set_xlabel("p-value of the class mean of grade")
    print(name)
    print(table[table["cluster"] == "all"].round(3).to_string(index=False))
axes[0].set_ylabel("classes")
fig.tight_layout()

# %%
# The built-in figure of the multilevel model's check:
fig = multilevel.plot.check(rng=1)
