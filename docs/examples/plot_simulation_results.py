"""
The classroom simulation study, from its stored results
=======================================================

The three classroom experiments of Jacobusse (2005), repeated 200 times (experiment 3:
1,000 times), take about 40 minutes, so this example does not rerun them: it reads the
tables that ``python -m mlimpute.simulation ... --markdown docs/simulation.md`` stored in
the study page and draws the relative bias of the random-intercept variance D0 and the
coverage of the fixed effects per method. Single-level imputation loses about 65 % of
D0; multilevel imputation keeps it.
"""

import re
from io import StringIO
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd


def study_page() -> Path:
    """docs/simulation.md, whether this runs from docs/examples or docs/gallery."""
    here = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
    for folder in (here, *here.parents):
        if (folder / "simulation.md").exists():
            return folder / "simulation.md"
    raise FileNotFoundError("docs/simulation.md")


def read_tables(path: Path) -> pd.DataFrame:
    """The per-experiment markdown tables between the page's result markers."""
    text = path.read_text(encoding="utf-8")
    body = text.split("<!-- simulation-results:start -->")[1].split(
        "<!-- simulation-results:end -->"
    )[0]
    frames = []
    for number, table in re.findall(r"### Experiment (\d)\n\n((?:\|.*\n)+)", body):
        rows = [line for line in table.splitlines() if not re.match(r"\|\s*-", line)]
        rows = [line.replace("\\|", "/") for line in rows]
        df = pd.read_csv(StringIO("\n".join(rows)), sep="|", skipinitialspace=True)
        df = df.drop(columns=[c for c in df.columns if c.startswith("Unnamed")])
        df.columns = [c.strip() for c in df.columns]
        frames.append(df.assign(experiment=int(number)))
    return pd.concat(frames, ignore_index=True)


results = read_tables(study_page())
results["method"] = results["method"].str.strip()
results["parameter"] = results["parameter"].str.strip()
results["rel_bias"] = results["rel. bias"].str.replace(" %", "").astype(float)

d0 = results[results["parameter"].str.startswith("D0")]
print(d0.pivot(index="method", columns="experiment", values="rel. bias"))

fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
methods = ["complete data", "complete cases", "single-level MI", "multilevel MI", "default MI"]
for e, marker in zip((1, 2, 3), "os^", strict=True):
    rows = d0[d0["experiment"] == e].set_index("method").reindex(methods)
    axes[0].scatter(rows["rel_bias"], range(len(methods)), marker=marker, label=f"experiment {e}")
axes[0].set_yticks(range(len(methods)), methods)
axes[0].axvline(0, color="grey", linewidth=0.5)
axes[0].set_xlabel("relative bias of D0 (%)")
axes[0].invert_yaxis()
axes[0].legend(fontsize="small")

fixed = results[
    results["coverage"].notna() & ~results["parameter"].str.contains("mean(", regex=False)
]
fixed = fixed.assign(coverage=fixed["coverage"].astype(float))
for k, method in enumerate(methods):
    cov = fixed.loc[fixed["method"] == method, "coverage"]
    axes[1].scatter(cov, [k] * len(cov), color="tab:blue", alpha=0.6)
axes[1].axvspan(0.925, 0.975, color="tab:green", alpha=0.15, label="0.95 ± MC error")
axes[1].set_yticks(range(len(methods)), [])
axes[1].invert_yaxis()
axes[1].set_xlabel("coverage of the 95 % intervals (fixed effects)")
axes[1].legend(fontsize="small", loc="lower left")
fig.tight_layout()
