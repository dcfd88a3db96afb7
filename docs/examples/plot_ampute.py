"""
Amputation: MCAR, MAR and MNAR
==============================

``mlimpute.ampute`` deletes values of complete data by a logistic missingness model
whose intercept is solved so that the expected share of missing rows equals the target.
Under MCAR the share does not depend on anything; under MAR on ``skill`` it rises with
``skill``; under MNAR on ``grade`` itself it rises with the (deleted) grade.
"""

import matplotlib.pyplot as plt
import pandas as pd

import mlimpute
from mlimpute.datasets import classroom

full = classroom(2, rng=1).complete
settings = {
    "MCAR": {"mechanism": "MCAR"},
    "MAR on skill": {"mechanism": "MAR", "depends_on": ["skill"]},
    "MNAR on grade": {"mechanism": "MNAR"},
}
fig, ax = plt.subplots(figsize=(6, 3.5))
for name, kwargs in settings.items():
    df = mlimpute.ampute(full, "class", {"grade": 0.4}, strength=2.0, rng=5, **kwargs)
    missing = df["grade"].isna()
    bins = pd.qcut(full["grade"], 5)
    share = missing.groupby(bins, observed=True).mean()
    ax.plot(range(1, 6), share.to_numpy(), marker="o", label=f"{name} ({missing.mean():.0%})")
ax.set_xticks(range(1, 6), ["lowest", "2", "3", "4", "highest"])
ax.set_xlabel("fifth of the complete-data grade")
ax.set_ylabel("share of grade deleted")
ax.legend()
fig.tight_layout()
