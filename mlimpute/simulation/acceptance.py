"""Acceptance checks of the simulation study (:mod:`mlimpute.simulation`).

The last experiment of Jacobusse (2005), one data set imputed ``m`` times (:class:`SingleDataSet`,
:func:`single_data_set`), and the acceptance targets of the study checked against a
summary (:func:`acceptance`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlimpute.analysis import from_completed
from mlimpute.datasets import ANALYSIS_FORMULAS, IMPUTATION_FORMULAS
from mlimpute.impute import impute
from mlimpute.simulation.design import LABELS, SEED_FIGURE_FORMULA, replication_seeds
from mlimpute.simulation.study import StudyConfig, replication_data
from mlimpute.spec.formula import parse_formula


@dataclass(frozen=True)
class SingleDataSet:
    """One data set imputed ``m`` times: per-imputation and complete-data estimates.

    Attributes
    ----------
    experiment : int
    formula : str
        The analysis model.
    per_imputation : pandas.DataFrame
        ``m`` rows (imputation 1..m): fixed effects and variance components
        (``var(...)``, ``cov(...)``, ``var(Residual)``) of each completed data set.
    complete : pandas.Series
        The same quantities on the data before deletion.
    complete_cases : pandas.Series
        The same quantities on the complete cases (what the observed data alone say).
    summary : pandas.DataFrame
        The pooled fixed effects (:meth:`PooledResult.summary`).
    variance_components : pandas.DataFrame
        The pooled variance components.
    truth : dict
        Data-generating values.
    """

    experiment: int
    formula: str
    per_imputation: pd.DataFrame
    complete: pd.Series
    complete_cases: pd.Series
    summary: pd.DataFrame
    variance_components: pd.DataFrame
    truth: dict


def _vc_per_imputation(res) -> pd.DataFrame:
    names = [n for n in res.variance_components().index if not str(n).startswith("ICC")]
    effects = [n[4:].split("|")[0] for n in names if n.startswith("var(") and "|" in n]
    rows = []
    for f in res.fits:
        row = {}
        for n in names:
            if n == "var(Residual)":
                row[n] = f.scale
            else:
                a, _, b = n[n.index("(") + 1 : n.index("|")].partition(",")
                i, j = effects.index(a), effects.index(b or a)
                row[n] = f.cov_re[i, j]
        rows.append(row)
    return pd.DataFrame(rows, index=pd.RangeIndex(1, len(rows) + 1, name="imputation"))


def single_data_set(
    experiment: int = 3,
    *,
    replication: int = 0,
    config: StudyConfig | None = None,
    formula: str | None = None,
) -> SingleDataSet:
    """Jacobusse's (2005) last figure: one data set imputed ``m`` times (multilevel imputation).

    The data and imputations are those of ``replication`` of the study with ``config``
    (values deleted as ``config.missingness`` says, as :func:`run_replication` does);
    the analysis model is :data:`SEED_FIGURE_FORMULA` for experiment 3 (so that the
    intercept-slope covariance D01 is estimated, as in Jacobusse (2005)) and the true model
    otherwise. The expected value of each per-imputation estimate is the complete-data
    estimate, not the data-generating value.

    Parameters
    ----------
    experiment : {1, 2, 3}, default 3
    replication : int, default 0
    config : StudyConfig, optional
        ``m``, ``iterations``, ``seed``, sizes, missingness and engine (default: the
        study's).
    formula : str, optional
        Analysis model instead of the default.

    Returns
    -------
    SingleDataSet

    Examples
    --------
    >>> from mlimpute.simulation import StudyConfig, single_data_set
    >>> s = single_data_set(3, config=StudyConfig(m={3: 3}, iterations=5))
    >>> s.per_imputation.shape[0], "cov(Intercept,gender|class)" in s.complete.index
    (3, True)
    """
    config = config or StudyConfig()
    if formula is None:
        formula = SEED_FIGURE_FORMULA if experiment == 3 else ANALYSIS_FORMULAS[experiment]
    seeds = replication_seeds(experiment, replication, config.seed)
    data = replication_data(experiment, config, seeds)  # as the study deletes, ampute too
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imp = impute(
            data.incomplete,
            IMPUTATION_FORMULAS[experiment],
            m=config.m_for(experiment),
            iterations=config.iterations,
            rng=np.random.default_rng(seeds["multilevel"]),
        )
        res = imp.fit(formula, engine=config.engine)
        used = sorted(parse_formula(formula).variables)
        fits = [
            from_completed([d] * 2).fit(formula, engine=config.engine)
            for d in (data.complete, data.incomplete.dropna(subset=used))
        ]
    per = pd.concat([res.per_imputation, _vc_per_imputation(res)], axis=1)
    complete, cc = (
        pd.concat([f.summary()["estimate"], f.variance_components()["estimate"]]).reindex(
            per.columns
        )
        for f in fits
    )
    return SingleDataSet(
        experiment,
        formula,
        per,
        complete,
        cc,
        res.summary(),
        res.variance_components(),
        dict(data.truth),
    )


def acceptance(summary: pd.DataFrame, single: SingleDataSet | None = None) -> pd.DataFrame:
    """The acceptance targets of the simulation study checked against a summary.

    Parameters
    ----------
    summary : pandas.DataFrame
        From :func:`summarise`.
    single : SingleDataSet, optional
        Experiment 3's single data set (:func:`single_data_set`).

    Returns
    -------
    pandas.DataFrame
        One row per check: ``experiment``, ``check``, ``parameter``, ``value`` (as
        text), ``target`` and ``passed``.

    Notes
    -----
    * multilevel imputation: |relative bias| < 5 % for each fixed effect, < 10 % for D0,
      D1 and S; 95 % CI coverage of each fixed effect in [0.92, 0.98];
    * single-level imputation: D0 more than 40 % too low (Jacobusse's finding);
    * experiment 2: the complete-case means of ``grade`` and ``relation`` are biased
      and the multilevel-imputed ones are not. Bias is measured against the same
      replication's complete-data mean (an unbiased estimate of the true mean, with the
      data's sampling error removed) and called a bias when it is more than 3 Monte
      Carlo SEs from 0;
    * experiment 3: on one data set imputed ``m`` times, the pooled CI of B3 covers the
      complete-data estimate and the complete-data D0, D1 and D01 lie within the middle
      90 % of the ``m`` per-imputation estimates; over all replications, the share of
      pooled CIs of B3 that cover the complete-data estimate.
    """
    rows = []

    def add(e, check, param, value, target, passed):
        rows.append(
            {
                "experiment": e,
                "check": check,
                "parameter": param,
                "value": value,
                "target": target,
                "passed": bool(passed),
            }
        )

    ml = summary[summary["method"] == "multilevel"]
    for _, r in ml.iterrows():
        name = f"{r['label']} {r['parameter']}".strip() if r["label"] else r["parameter"]
        if r["kind"] == "fixed":
            add(
                r["experiment"],
                "multilevel: relative bias",
                name,
                f"{100 * r['rel_bias']:+.1f} %",
                "within ±5 %",
                abs(r["rel_bias"]) < 0.05,
            )
            add(
                r["experiment"],
                "multilevel: 95 % CI coverage",
                name,
                f"{r['coverage']:.3f}",
                "0.92-0.98",
                0.92 <= r["coverage"] <= 0.98,
            )
        elif r["kind"] == "variance":
            add(
                r["experiment"],
                "multilevel: relative bias",
                name,
                f"{100 * r['rel_bias']:+.1f} %",
                "within ±10 %",
                abs(r["rel_bias"]) < 0.10,
            )
    sl = summary[
        (summary["method"] == "single_level") & (summary["parameter"] == "var(Intercept|class)")
    ]
    for _, r in sl.iterrows():
        add(
            r["experiment"],
            "single-level: D0 too low",
            "D0 var(Intercept|class)",
            f"{100 * r['rel_bias']:+.1f} %",
            "below -40 %",
            r["rel_bias"] < -0.40,
        )
    means = summary[
        (summary["kind"] == "mean") & summary["method"].isin(["complete_cases", "multilevel"])
    ]
    for _, r in means.iterrows():
        t = float(np.divide(r["diff_complete"], r["mcse_diff"]))
        text = (
            f"{r['diff_complete']:+.3f} vs complete data ({t:+.1f} MCSE); {r['bias']:+.3f} vs true"
        )
        if r["method"] == "complete_cases":
            add(
                r["experiment"],
                "complete cases: mean biased",
                r["parameter"],
                text,
                "|bias| > 3 MCSE",
                abs(t) > 3,
            )
        else:
            add(
                r["experiment"],
                "multilevel: mean unbiased",
                r["parameter"],
                text,
                "|bias| < 3 MCSE",
                abs(t) < 3,
            )
    b3 = summary[(summary["method"] == "multilevel") & (summary["parameter"] == "skill:gender")]
    for _, r in b3.iterrows():
        add(
            r["experiment"],
            "multilevel: pooled CI covers complete-data B3 (all reps)",
            "B3 skill:gender",
            f"{r['cover_complete']:.3f}",
            "(reported)",
            True,
        )
    if single is not None:
        e = single.experiment
        if "skill:gender" in single.summary.index:
            s = single.summary.loc["skill:gender"]
            c = single.complete["skill:gender"]
            add(
                e,
                f"one data set, m = {len(single.per_imputation)}: pooled CI covers "
                "complete-data B3",
                "B3 skill:gender",
                f"{c:.3f} in [{s['ci_low']:.3f}, {s['ci_high']:.3f}]",
                "covered",
                s["ci_low"] <= c <= s["ci_high"],
            )
        for name in ("var(Intercept|class)", "var(gender|class)", "cov(Intercept,gender|class)"):
            if name not in single.per_imputation:
                continue
            v = single.per_imputation[name]
            lo, hi = np.quantile(v, [0.05, 0.95])
            c = single.complete[name]
            add(
                e,
                "one data set: complete-data value among the per-imputation estimates",
                f"{LABELS[name]} {name}",
                f"{c:.3f} in [{lo:.3f}, {hi:.3f}] (mean {v.mean():.3f}, "
                f"{int((v < c).sum())}/{v.size} below)",
                "within 5-95 %",
                lo <= c <= hi,
            )
    return pd.DataFrame(
        rows, columns=["experiment", "check", "parameter", "value", "target", "passed"]
    )
