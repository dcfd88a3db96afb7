"""Issue 5: a two-level binary outcome imputed and analysed with a multilevel probit."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.special import ndtr

import mlimpute


def binary_data(seed, J=50, n=20):
    """Latent random-intercept variance 1; 30 % of y missing at random given complete x."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(J), n)
    x = rng.normal(size=J * n)
    ystar = -0.2 + 0.7 * x + rng.normal(0, 1, J)[g] + rng.normal(size=J * n)
    full = pd.DataFrame({"g": g, "x": x, "y": (ystar > 0).astype(float)})
    df = full.copy()
    df.loc[rng.random(J * n) < ndtr(-0.55 + 0.8 * x), "y"] = np.nan
    return full, df


def _fit(obj, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return obj.fit("y ~ x + (1 | g)", family="binomial", link="probit", **kw)


@pytest.mark.parametrize("seed", [1, 2])
def test_multilevel_probit_recovers_complete_data_fit(seed):
    """Fixed effects within 2 SE, random-intercept variance within 30 % (issue 5).

    Single-level imputation ignores the clusters: the variance of its completed data
    shrinks visibly (the imputed 30 % carry no cluster effect). Tolerances: the issue's;
    on 3 seeds the multilevel fixed effects were within 1.44 SE and the variance within
    −6 to −13 % of the complete-data values.
    """
    full, df = binary_data(seed)
    assert 0.25 < df["y"].isna().mean() < 0.35
    cd = _fit(mlimpute.from_completed([full, full]))
    ml = df.mi.impute({"y": "~ x + (1 | g)"}, m=10, iterations=20, rng=seed)
    sl = df.mi.impute({"y": "~ x"}, m=10, iterations=20, rng=seed)
    res_ml, res_sl = _fit(ml), _fit(sl)
    cd_s, ml_s = cd.summary(), res_ml.summary()
    assert (abs(ml_s["estimate"] - cd_s["estimate"]) < 2 * ml_s["se"]).all()
    var = "var(Intercept|g)"
    v_cd = cd.variance_components().loc[var, "estimate"]
    v_ml = res_ml.variance_components().loc[var, "estimate"]
    v_sl = res_sl.variance_components().loc[var, "estimate"]
    assert abs(v_ml / v_cd - 1) < 0.30
    assert v_sl < 0.75 * v_cd and v_sl < v_ml


@pytest.mark.slow
def test_binary_replications_bias_and_coverage(tmp_path):
    """100 replications: bias and coverage, written to docs/ (opt-in: -m slow)."""
    from pathlib import Path

    rows = []
    for rep in range(100):
        full, df = binary_data(1000 + rep)
        cd = _fit(mlimpute.from_completed([full, full]))
        for method, formula in (("multilevel", "~ x + (1 | g)"), ("single-level", "~ x")):
            imp = df.mi.impute({"y": formula}, m=10, iterations=20, rng=rep)
            res = _fit(imp)
            s = res.summary()
            v = res.variance_components().loc["var(Intercept|g)", "estimate"]
            rows.append(
                {
                    "rep": rep,
                    "method": method,
                    "b0": s.loc["Intercept", "estimate"],
                    "b1": s.loc["x", "estimate"],
                    "cover_b0": s.loc["Intercept", "ci_low"]
                    <= -0.2
                    <= s.loc["Intercept", "ci_high"],
                    "cover_b1": s.loc["x", "ci_low"] <= 0.7 <= s.loc["x", "ci_high"],
                    "var": v,
                    "var_cd": cd.variance_components().loc["var(Intercept|g)", "estimate"],
                }
            )
    out = pd.DataFrame(rows)
    table = out.groupby("method").agg(
        b0=("b0", "mean"),
        b1=("b1", "mean"),
        coverage_b0=("cover_b0", "mean"),
        coverage_b1=("cover_b1", "mean"),
        var=("var", "mean"),
        var_complete=("var_cd", "mean"),
    )
    docs = Path(__file__).resolve().parents[1] / "docs"
    docs.mkdir(exist_ok=True)
    (docs / "binary_simulation.md").write_text(
        "# Multilevel binary imputation: 100 replications\n\n"
        "Made by `python -m pytest -m slow tests/test_binary_acceptance.py` "
        f"(mlimpute {mlimpute.__version__}).\n\n"
        "J = 50 clusters of 20, latent probit y* = -0.2 + 0.7 x + u + e, var(u) = 1, "
        "30 % of y missing at random given x; m = 10, 20 iterations; analysis: ML "
        "multilevel probit (adaptive quadrature). True values: b0 = -0.2, b1 = 0.7; `var` "
        "is the pooled random-intercept variance, `var_complete` the mean complete-data "
        "estimate.\n\n```\n" + table.round(3).to_string() + "\n```\n"
    )
    ml = table.loc["multilevel"]
    assert abs(ml["b1"] - 0.7) < 0.07 and 0.9 <= ml["coverage_b1"] <= 0.99
