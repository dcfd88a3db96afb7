"""Markdown output of the simulation study (:mod:`mlimpute.simulation`).

The tables (:func:`to_markdown`), the provenance paragraph (:func:`provenance`) and
writing them between the results markers of a document (:func:`write_markdown`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlimpute.simulation.results import load_records, stored_config

_METHOD_TITLES = {
    "complete": "complete data",
    "complete_cases": "complete cases",
    "single_level": "single-level MI",
    "multilevel": "multilevel MI",
    "defaults": "default MI",
}
_MARKERS = ("<!-- simulation-results:start -->", "<!-- simulation-results:end -->")


def _fmt(v: Any, spec: str) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return ""
    if spec == "%":
        return f"{100 * v:+.1f} %"
    return format(v, spec)


def _md_table(df: pd.DataFrame, formats: Mapping[str, str]) -> str:
    cols = list(formats)
    lines = [
        "| " + " | ".join(cols) + " |",
        "|" + "|".join("---" if formats[c] == "s" else "---:" for c in cols) + "|",
    ]
    for _, r in df.iterrows():
        cells = [str(r[c]) if formats[c] == "s" else _fmt(r[c], formats[c]) for c in cols]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def to_markdown(
    summary: pd.DataFrame,
    *,
    checks: pd.DataFrame | None = None,
    times: pd.DataFrame | None = None,
    heading: str = "###",
) -> str:
    """Markdown tables of a study: one per experiment, the checks and the timings.

    Parameters
    ----------
    summary : pandas.DataFrame
        From :func:`summarise`.
    checks : pandas.DataFrame, optional
        From :func:`acceptance`.
    times : pandas.DataFrame, optional
        From :func:`timings`.
    heading : str, default "###"
        Markdown heading level of the sections.

    Returns
    -------
    str
    """
    parts = []
    fmts = {
        "method": "s",
        "parameter": "s",
        "n": "d",
        "true": ".3f",
        "mean": ".3f",
        "bias": "+.3f",
        "rel. bias": "%",
        "vs complete": "+.3f",
        "emp. SD": ".3f",
        "RMSE": ".3f",
        "mean SE": ".3f",
        "coverage": ".3f",
        "CI width": ".3f",
        "s/imputation": ".2f",
    }
    for e, block in summary.groupby("experiment", sort=True):
        t = block.assign(
            method=block["method"].map(_METHOD_TITLES),
            parameter=[
                f"{lab} `{p}`" if lab else f"`{p}`"
                for lab, p in zip(block["label"], block["parameter"], strict=True)
            ],
        ).rename(
            columns={
                "rel_bias": "rel. bias",
                "diff_complete": "vs complete",
                "emp_sd": "emp. SD",
                "rmse": "RMSE",
                "mean_se": "mean SE",
                "ci_width": "CI width",
                "impute_s": "s/imputation",
            }
        )
        t["n"] = t["n"].astype(int)
        parts.append(f"{heading} Experiment {e}\n\n{_md_table(t, fmts)}")
        fails = block.drop_duplicates("method")
        fails = fails[fails["failed"] > 0]
        if len(fails):
            parts.append(
                "Failed replications: "
                + ", ".join(
                    f"{_METHOD_TITLES[m]} {n}"
                    for m, n in zip(fails["method"], fails["failed"], strict=True)
                )
            )
    if checks is not None and len(checks):
        c = checks.assign(passed=checks["passed"].map({True: "yes", False: "**no**"}))
        c["experiment"] = c["experiment"].astype(str)
        parts.append(
            f"{heading} Acceptance checks\n\n"
            + _md_table(
                c,
                {
                    "experiment": "s",
                    "check": "s",
                    "parameter": "s",
                    "value": "s",
                    "target": "s",
                    "passed": "s",
                },
            )
        )
    diag = summary.drop_duplicates(["experiment", "method"])
    diag = diag[~diag["method"].isin(["complete", "complete_cases"])]
    if len(diag):
        d = diag.assign(
            experiment=diag["experiment"].astype(str), method=diag["method"].map(_METHOD_TITLES)
        )
        parts.append(
            f"{heading} Diagnostics\n\n"
            + _md_table(
                d.rename(
                    columns={
                        "conv_warn": "runs with R-hat warning",
                        "singular": "singular fits per replication",
                    }
                ),
                {
                    "experiment": "s",
                    "method": "s",
                    "n": "d",
                    "runs with R-hat warning": ".2f",
                    "singular fits per replication": ".2f",
                    "failed": "d",
                },
            )
        )
    if times is not None and len(times):
        tt = times.reset_index()
        tt["experiment"] = tt["experiment"].astype(str)
        tt["n"] = tt["n"].astype(int)
        parts.append(
            f"{heading} Seconds per replication (one process)\n\n"
            + _md_table(
                tt,
                {
                    "experiment": "s",
                    "method": "s",
                    "n": "d",
                    "impute_s": ".3f",
                    "fit_s": ".3f",
                    "total_s": ".3f",
                },
            )
        )
    return "\n\n".join(parts) + "\n"


def write_markdown(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` into a markdown file between the results markers.

    If ``path`` holds the markers ``<!-- simulation-results:start -->`` and
    ``<!-- simulation-results:end -->``, only the text between them is replaced (so a
    hand-written document keeps its prose); otherwise the file is (over)written with the
    markers and ``text``.

    Parameters
    ----------
    path : path
    text : str
        E.g. from :func:`to_markdown`.

    Returns
    -------
    pathlib.Path
    """
    path = Path(path)
    start, end = _MARKERS
    block = f"{start}\n{text.rstrip()}\n{end}"
    old = path.read_text() if path.exists() else ""
    if start in old and end in old:
        head, rest = old.split(start, 1)
        new = head + block + rest.split(end, 1)[1]
    else:
        new = block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new)
    return path


def provenance(out_dir: str | os.PathLike, records: pd.DataFrame | None = None) -> str:
    """One paragraph saying what the tables of ``out_dir`` rest on.

    Replications per experiment, imputations, iterations, seed, mlimpute version(s) and
    the runs logged in ``<out_dir>/runs.jsonl`` (wall time, processes, machine).

    Parameters
    ----------
    out_dir : path
    records : pandas.DataFrame, optional
        The table of :func:`load_records` (read from ``out_dir`` when omitted).

    Returns
    -------
    str
    """
    rec = load_records(out_dir) if records is None else records
    parts = []
    for e in sorted(rec["experiment"].unique()):
        st = stored_config(out_dir, int(e))
        n = rec.loc[rec["experiment"] == e, "replication"].nunique()
        parts.append(f"experiment {e}: {n} replications, m = {st.m_for(int(e))}")
    st = stored_config(out_dir, int(rec["experiment"].min()))
    text = (
        f"**Results of {'; '.join(parts)}; {st.iterations} iterations, seed {st.seed}, "
        f"engine `{st.engine}`.**"
    )
    log = Path(out_dir) / "runs.jsonl"
    if log.exists():
        runs = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        if runs:
            done = sum(r["done"] for r in runs)
            secs = sum(r["seconds"] for r in runs)
            last = runs[-1]
            text += (
                f" Run in {len(runs)} part(s): {done} replications in {secs:.0f} s "
                f"wall time ({secs / 60:.1f} min) with {last['jobs']} process(es); last "
                f"run {last['date']}, mlimpute {last['version']}, {last['machine']}."
            )
    return text
