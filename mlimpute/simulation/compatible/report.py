"""Summaries of the compatible-imputation study: bias, coverage and width per method.

:func:`load` reads the replication files into one long table; :func:`summarise` gives,
per design, method and parameter, the mean estimate, bias, relative bias (where the true
value is not 0), the coverage of the 95 % intervals with its Monte Carlo standard error
``sqrt(c (1 − c) / R)``, the median interval width (a variance near zero can give one
replication an unbounded interval on the log scale) and the number of replications;
:func:`to_markdown` writes it as tables.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from mlimpute.simulation.compatible.designs import DESIGNS
from mlimpute.simulation.compatible.study import METHODS

__all__ = ["load", "plot", "summarise", "to_markdown"]

_LABELS = {
    "complete": "complete data",
    "model": "model-based",
    "chained": "chained, hand-written",
    "defaults": "chained, defaults",
    "complete_cases": "complete cases",
}


def load(out_dir) -> pd.DataFrame:
    """One row per design, replication, method and parameter (``error`` rows for failures).

    Examples
    --------
    >>> import tempfile
    >>> from mlimpute.simulation.compatible.study import CompatibleConfig, run_study
    >>> cfg = CompatibleConfig(m=2, iterations=2, methods=("complete",))
    >>> with tempfile.TemporaryDirectory() as out:
    ...     _ = run_study(out, designs=["c"], reps=1, config=cfg)
    ...     table = load(out)
    >>> sorted(table["parameter"])[:2]
    ['I(x ** 2)', 'Intercept']
    """
    rows = []
    for path in sorted(Path(out_dir).glob("design*/replication*.json")):
        rec = json.loads(path.read_text())
        for method, res in rec["results"].items():
            base = {"design": rec["design"], "replication": rec["replication"], "method": method}
            if "error" in res:
                rows.append({**base, "parameter": "", "error": res["error"]})
                continue
            for name, p in res["params"].items():
                rows.append(
                    {**base, "parameter": name, **p, "true": rec["truth"][name], "error": ""}
                )
    return pd.DataFrame(rows)


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Bias, relative bias, coverage (with its MC SE), mean CI width per parameter.

    Examples
    --------
    >>> t = pd.DataFrame({"design": "a", "replication": [0, 1], "method": "model",
    ...     "parameter": "x", "kind": "fixed", "estimate": [0.4, 0.6], "se": 0.1,
    ...     "ci_low": [0.2, 0.55], "ci_high": [0.6, 0.8], "true": 0.5, "error": ""})
    >>> summarise(t)[["bias", "coverage"]].round(3).to_numpy().tolist()
    [[0.0, 0.5]]
    """
    ok = table[table["error"] == ""].copy()
    ok["covered"] = (ok["ci_low"] <= ok["true"]) & (ok["true"] <= ok["ci_high"])
    ok["width"] = ok["ci_high"] - ok["ci_low"]
    g = ok.groupby(["design", "method", "parameter"], sort=False)
    out = g.agg(
        kind=("kind", "first"),
        true=("true", "first"),
        mean=("estimate", "mean"),
        sd=("estimate", "std"),
        coverage=("covered", "mean"),
        width=("width", "median"),
        reps=("estimate", "size"),
    )
    out["bias"] = out["mean"] - out["true"]
    out["rel_bias"] = np.where(out["true"] != 0, out["bias"] / out["true"].abs(), np.nan)
    out["coverage_mcse"] = np.sqrt(out["coverage"] * (1 - out["coverage"]) / out["reps"])
    failed = table[table["error"] != ""].groupby(["design", "method"]).size()
    out["failed"] = [int(failed.get((d, m), 0)) for d, m, _ in out.index]
    return out


def to_markdown(summary: pd.DataFrame, table: pd.DataFrame | None = None) -> str:
    """The summary as one markdown table per design (methods in study order).

    Examples
    --------
    >>> t = pd.DataFrame({"design": "a", "replication": [0, 1], "method": "model",
    ...     "parameter": "x", "kind": "fixed", "estimate": [0.4, 0.6], "se": 0.1,
    ...     "ci_low": [0.2, 0.55], "ci_high": [0.6, 0.8], "true": 0.5, "error": ""})
    >>> print(to_markdown(summarise(t)).splitlines()[0])
    ### Design (a): random slope on an incomplete predictor
    """
    parts = []
    for d in sorted(summary.index.get_level_values("design").unique()):
        parts.append(f"### Design ({d}): {DESIGNS[d].title}\n")
        parts.append(
            "| parameter | true | method | mean | bias | rel. bias | coverage (± MC SE) "
            "| median CI width | reps |"
        )
        parts.append("|---|---|---|---|---|---|---|---|---|")
        sub = summary.loc[d]
        for param in DESIGNS[d].truth:
            for method in METHODS:
                if (method, param) not in sub.index:
                    continue
                r = sub.loc[(method, param)]
                rel = "" if np.isnan(r["rel_bias"]) else f"{100 * r['rel_bias']:+.1f} %"
                parts.append(
                    f"| `{param}` | {r['true']:g} | {_LABELS[method]} | {r['mean']:.3f} | "
                    f"{r['bias']:+.3f} | {rel} | {r['coverage']:.3f} ± "
                    f"{r['coverage_mcse']:.3f} | {r['width']:.3f} | {int(r['reps'])} |"
                )
        parts.append("")
        if table is not None:
            failed = table[(table["design"] == d) & (table["error"] != "")]
            for method, rows in failed.groupby("method", sort=False):
                parts.append(
                    f"{_LABELS[method]}: {len(rows)} replication(s) failed, e.g. "
                    f"`{rows['error'].iloc[0][:200]}`"
                )
            parts.append("")
    return "\n".join(parts)


def plot(table: pd.DataFrame, design: str, ncols: int = 4):
    """Per-replication estimates of every parameter of ``design``, one box per method,
    the true value as a line.

    Returns a :class:`matplotlib.figure.Figure` (made without pyplot).

    Examples
    --------
    >>> t = pd.DataFrame({"design": "a", "replication": [0, 1], "method": "model",
    ...     "parameter": "x", "kind": "fixed", "estimate": [0.4, 0.6], "se": 0.1,
    ...     "ci_low": [0.2, 0.55], "ci_high": [0.6, 0.8], "true": 0.5, "error": ""})
    >>> len(plot(t, "a").axes)
    1
    """
    from matplotlib.figure import Figure

    ok = table[(table["design"] == design) & (table["error"] == "")]
    params = [p for p in DESIGNS[design].truth if p in set(ok["parameter"])]
    nrows = -(-len(params) // ncols)
    width = min(ncols, len(params))
    fig = Figure(figsize=(3.0 * width, 2.6 * nrows + 0.4), layout="constrained")
    axes = fig.subplots(nrows, width, squeeze=False).ravel()
    for ax in axes[len(params) :]:
        ax.set_visible(False)
    for ax, param in zip(axes, params, strict=False):
        sub = ok[ok["parameter"] == param]
        methods = [m for m in METHODS if m in set(sub["method"])]
        ax.boxplot(
            [sub.loc[sub["method"] == m, "estimate"] for m in methods],
            showfliers=False,
            widths=0.6,
        )
        ax.set_xticks(range(1, len(methods) + 1), [_TICKS[m] for m in methods], fontsize=7)
        ax.axhline(DESIGNS[design].truth[param], color="crimson", lw=1)
        ax.set_title(param, fontsize=9)
    fig.suptitle(f"Design ({design}): {DESIGNS[design].title}", fontsize=10)
    return fig


_TICKS = {
    "complete": "complete\ndata",
    "model": "model-\nbased",
    "chained": "chained\n(hand)",
    "defaults": "chained\n(defaults)",
    "complete_cases": "complete\ncases",
}
