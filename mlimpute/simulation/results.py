"""Results of the simulation study (:mod:`mlimpute.simulation`): records and summaries.

Reading the replication files (:func:`load_records`, :func:`stored_config`) and the
performance measures of every method (:func:`summarise`, :func:`timings`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from mlimpute.errors import SpecificationError
from mlimpute.simulation.design import LABELS, METHODS, TRUE_MEANS
from mlimpute.simulation.study import StudyConfig, available_methods


def load_records(out_dir: str | os.PathLike) -> pd.DataFrame:
    """All replication results as one long table.

    Parameters
    ----------
    out_dir : path

    Returns
    -------
    pandas.DataFrame
        One row per experiment, replication, method and parameter, with ``kind``,
        ``estimate``, ``se``, ``ci_low``, ``ci_high``, ``true`` (NaN if unknown),
        ``complete`` (the same replication's complete-data estimate), ``impute_s``,
        ``fit_s``, ``singular``, ``convergence_warning`` and ``error`` (a method that failed
        has one row with parameter ``""``).
    """
    rows = []
    for path in sorted(Path(out_dir).glob("experiment*/replication*.json")):
        rec = json.loads(path.read_text())
        e = rec["experiment"]
        truth = dict(rec["truth"])
        truth.update({f"mean({v})": t for v, t in TRUE_MEANS.get(e, {}).items()})
        complete = rec["results"].get("complete", {}).get("params", {})
        for method, res in rec["results"].items():
            base = {
                "experiment": e,
                "replication": rec["replication"],
                "method": method,
                "impute_s": res["seconds"]["impute"],
                "fit_s": res["seconds"]["fit"],
                "singular": res.get("singular", 0),
                "convergence_warning": res.get("convergence_warning", False),
                "error": res.get("error"),
            }
            if "error" in res:
                rows.append({**base, "parameter": ""})
                continue
            for name, p in res["params"].items():
                rows.append(
                    {
                        **base,
                        "parameter": name,
                        "kind": p["kind"],
                        "estimate": p["estimate"],
                        "se": p.get("se", np.nan),
                        "ci_low": p.get("ci_low", np.nan),
                        "ci_high": p.get("ci_high", np.nan),
                        "true": truth.get(name, np.nan),
                        "complete": complete.get(name, {}).get("estimate", np.nan),
                    }
                )
    cols = [
        "experiment",
        "replication",
        "method",
        "parameter",
        "kind",
        "estimate",
        "se",
        "ci_low",
        "ci_high",
        "true",
        "complete",
        "impute_s",
        "fit_s",
        "singular",
        "convergence_warning",
        "error",
    ]
    return pd.DataFrame(rows, columns=cols)


def _order(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["_m"] = df["method"].map({m: k for k, m in enumerate(METHODS)})
    kinds = {"fixed": 0, "variance": 1, "mean": 2}
    df["_k"] = df["kind"].map(kinds)
    df = df.sort_values(["experiment", "_m", "_k"], kind="stable")
    return df.drop(columns=["_m", "_k"]).reset_index(drop=True)


def summarise(out_dir: str | os.PathLike | pd.DataFrame) -> pd.DataFrame:
    """Performance of every method for every parameter with a known true value.

    Parameters
    ----------
    out_dir : path or DataFrame
        A results directory, or the table of :func:`load_records`.

    Returns
    -------
    pandas.DataFrame
        One row per experiment, method and parameter: ``label`` (the name in Jacobusse (2005)),
        ``kind``, ``n`` (replications), ``true``, ``mean``, ``bias``, ``rel_bias``
        (``bias / true``), ``diff_complete`` (mean of estimate minus the same
        replication's complete-data estimate), ``emp_sd``, ``rmse``, ``mcse_bias``
        (``emp_sd / sqrt(n)``), ``mcse_diff`` (Monte Carlo SE of ``diff_complete``, much
        smaller: the data's own sampling error cancels), ``std_bias`` (``bias / emp_sd``),
        and for fixed effects and means ``mean_se``, ``coverage`` (of the true value by the
        95 % CI), ``cover_complete`` (of the complete-data estimate), ``ci_width``;
        ``impute_s`` (mean seconds per imputation run), ``conv_warn`` (share of imputation
        runs with a convergence warning), ``singular`` (mean number of boundary fits per
        replication) and ``failed`` (replications in which the method raised).
    """
    rec = out_dir if isinstance(out_dir, pd.DataFrame) else load_records(out_dir)
    if rec.empty:
        return pd.DataFrame()
    failed = rec[rec["error"].notna()].groupby(["experiment", "method"]).size().rename("failed")
    ok = rec[rec["error"].isna() & rec["true"].notna()].copy()
    ok["err"] = ok["estimate"] - ok["true"]
    ok["diff"] = ok["estimate"] - ok["complete"]
    ok["cov"] = ((ok["ci_low"] <= ok["true"]) & (ok["true"] <= ok["ci_high"])).astype(float)
    ok["covc"] = ((ok["ci_low"] <= ok["complete"]) & (ok["complete"] <= ok["ci_high"])).astype(
        float
    )
    ok["width"] = ok["ci_high"] - ok["ci_low"]
    has_ci = ok["ci_low"].notna()
    ok.loc[~has_ci, ["cov", "covc"]] = np.nan
    g = ok.groupby(["experiment", "method", "parameter"], sort=False)
    out = pd.DataFrame(
        {
            "kind": g["kind"].first(),
            "n": g["estimate"].count(),
            "true": g["true"].first(),
            "mean": g["estimate"].mean(),
            "bias": g["err"].mean(),
            "diff_complete": g["diff"].mean(),
            "emp_sd": g["estimate"].std(ddof=1),
            "rmse": np.sqrt(g["err"].apply(lambda e: float(np.mean(e**2)))),
            "mean_se": g["se"].mean(),
            "coverage": g["cov"].mean(),
            "cover_complete": g["covc"].mean(),
            "ci_width": g["width"].mean(),
            "sd_diff": g["diff"].std(ddof=1),
            "impute_s": g["impute_s"].mean(),
            "conv_warn": g["convergence_warning"].mean(),
            "singular": g["singular"].mean(),
        }
    ).reset_index()
    out["rel_bias"] = out["bias"] / out["true"].where(out["true"] != 0)
    out["mcse_bias"] = out["emp_sd"] / np.sqrt(out["n"])
    out["mcse_diff"] = out.pop("sd_diff") / np.sqrt(out["n"])
    out["std_bias"] = out["bias"] / out["emp_sd"]
    out["label"] = out["parameter"].map(LABELS).fillna("")
    out = out.merge(failed.reset_index(), on=["experiment", "method"], how="left")
    out["failed"] = out["failed"].fillna(0).astype(int)
    out.loc[out["method"].isin(["complete", "complete_cases"]), "conv_warn"] = np.nan
    cols = [
        "experiment",
        "method",
        "parameter",
        "label",
        "kind",
        "n",
        "true",
        "mean",
        "bias",
        "rel_bias",
        "diff_complete",
        "emp_sd",
        "rmse",
        "mcse_bias",
        "mcse_diff",
        "std_bias",
        "mean_se",
        "coverage",
        "cover_complete",
        "ci_width",
        "impute_s",
        "conv_warn",
        "singular",
        "failed",
    ]
    return _order(out[cols])


def timings(out_dir: str | os.PathLike | pd.DataFrame) -> pd.DataFrame:
    """Mean seconds per replication by experiment and method (imputation and analysis).

    Parameters
    ----------
    out_dir : path or DataFrame
        A results directory, or the table of :func:`load_records`.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``experiment, method``: ``n``, ``impute_s``, ``fit_s``, ``total_s``.
        The rows ``method == "all"`` sum the methods: the CPU seconds of one replication.
    """
    rec = out_dir if isinstance(out_dir, pd.DataFrame) else load_records(out_dir)
    per = rec.drop_duplicates(["experiment", "replication", "method"])
    g = per.groupby(["experiment", "method"])
    t = pd.DataFrame({"n": g.size(), "impute_s": g["impute_s"].mean(), "fit_s": g["fit_s"].mean()})
    t["total_s"] = t[["impute_s", "fit_s"]].fillna(0).sum(axis=1)
    allm = t.groupby(level="experiment")[["impute_s", "fit_s", "total_s"]].sum()
    allm["n"] = t.groupby(level="experiment")["n"].max()
    allm.index = pd.MultiIndex.from_arrays(
        [allm.index, ["all"] * len(allm)], names=["experiment", "method"]
    )
    t = pd.concat([t, allm[t.columns]]).reset_index()
    t["_m"] = t["method"].map({m: k for k, m in enumerate((*METHODS, "all"))})
    return (
        t.sort_values(["experiment", "_m"]).drop(columns="_m").set_index(["experiment", "method"])
    )


def stored_config(out_dir: str | os.PathLike, experiment: int) -> StudyConfig:
    """The :class:`StudyConfig` with which ``experiment``'s results in ``out_dir`` were made.

    Parameters
    ----------
    out_dir : path
    experiment : int

    Returns
    -------
    StudyConfig

    Raises
    ------
    SpecificationError
        If ``out_dir`` has no results of ``experiment``.
    """
    first = next(
        iter(sorted(Path(out_dir).glob(f"experiment{experiment}/replication*.json"))), None
    )
    if first is None:
        raise SpecificationError(f"no results of experiment {experiment} in {out_dir}")
    st = json.loads(first.read_text())["settings"]
    return StudyConfig(
        m={experiment: st["m"]},
        iterations=st["iterations"],
        n_classes=st["n_classes"],
        class_size=st["class_size"],
        seed=st["seed"],
        engine=st["engine"],
        methods=tuple(m for m in st["methods"] if m in available_methods()),
        missingness=st.get("missingness", "classroom"),
    )
