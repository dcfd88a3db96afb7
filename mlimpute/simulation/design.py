"""Design of the simulation study (:mod:`mlimpute.simulation`): its constants, seeds and measures.

The methods, seeds and imputation counts of the study, the parameter labels of Jacobusse (2005),
:func:`replication_seeds`, :func:`single_level_formulas` and the cluster-robust pooled
means of experiment 2.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlimpute.pooling import pool_scalar
from mlimpute.spec.formula import cmean_column, parse_formula, ranef_column

#: Every method the study knows, in table order; ``defaults`` only where available.
METHODS = ("complete", "complete_cases", "single_level", "multilevel", "defaults")
#: Root seed of the study (the date of Jacobusse's 2005 presentation).
DEFAULT_SEED = 20050705
#: Imputations per experiment (Jacobusse (2005) imputed experiment 3 25 times).
DEFAULT_M = {1: 5, 2: 5, 3: 25}
#: Population means of the incomplete variables: E[relation] = 0.5 * P(girl) = 0.25 and
#: E[grade] = 10 + E[skill] + P(girl) + 0.8 * E[relation] = 10.7 (see ``classroom``).
TRUE_MEANS = {2: {"grade": 10.7, "relation": 0.25}}
#: The names of the parameters in Jacobusse (2005).
LABELS = {
    "Intercept": "B0",
    "skill": "B1",
    "skill:gender": "B3",
    "var(Intercept|class)": "D0",
    "var(gender|class)": "D1",
    "cov(Intercept,gender|class)": "D01",
    "var(Residual)": "S",
}
#: Analysis model of the single-data-set figure of experiment 3: the true model with a
#: free intercept-slope covariance, so that D01 is estimated as in Jacobusse (2005).
SEED_FIGURE_FORMULA = "grade ~ skill * gender + relation + (1 + gender | class)"
_CLUSTER = "class"
_SPAWN = {"data": 0, "single_level": 1, "multilevel": 2, "defaults": 3}


def single_level_formulas(formulas: Mapping[str, str]) -> dict[str, str]:
    """The single-level counterparts of multilevel imputation formulas.

    Drops the random part and the ``cmean()`` / ``ranef()`` terms, leaving the linear
    regression on the other variables that Jacobusse (2005) calls single-level imputation.

    Parameters
    ----------
    formulas : dict
        ``{variable: "~ ... + (1 | class)"}``.

    Returns
    -------
    dict

    Examples
    --------
    >>> single_level_formulas({"grade": "~ relation + cmean(relation) + (1 | class)"})
    {'grade': '~ relation'}
    """
    out = {}
    for name, text in formulas.items():
        parsed = parse_formula(text)
        drop = {cmean_column(v) for v in parsed.cmeans} | {ranef_column(v) for v in parsed.ranefs}
        terms = [t.strip() for t in parsed.fixed.split("+")]
        keep = [t for t in terms if t and t.strip("`") not in drop and not t.startswith("ranef(")]
        out[name] = "~ " + (" + ".join(keep) if keep else "1")
    return out


def replication_seeds(
    experiment: int, replication: int, seed: int = DEFAULT_SEED
) -> dict[str, np.random.SeedSequence]:
    """Independent seed sequences for the data and each imputation of one replication.

    Parameters
    ----------
    experiment, replication : int
    seed : int, default :data:`DEFAULT_SEED`

    Returns
    -------
    dict
        ``{"data", "single_level", "multilevel", "defaults"}`` to children of
        ``SeedSequence([seed, experiment, replication])``.

    Examples
    --------
    >>> s = replication_seeds(1, 0)
    >>> s["data"].spawn_key, s["multilevel"].spawn_key
    ((0,), (2,))
    """
    root = np.random.SeedSequence([int(seed), int(experiment), int(replication)])
    children = root.spawn(len(_SPAWN))
    return {name: children[k] for name, k in _SPAWN.items()}


def _cluster_mean(y: np.ndarray, groups: np.ndarray) -> tuple[float, float, int]:
    """Mean of ``y`` and its cluster-robust variance; the number of clusters."""
    codes, uniques = pd.factorize(groups)
    n, J = y.size, uniques.size
    mean = float(y.mean())
    s = np.bincount(codes, weights=y - mean, minlength=J)
    var = J / (J - 1.0) * float(np.sum(s * s)) / n**2
    return mean, var, J


def _means(frames: Sequence[pd.DataFrame], variables: Iterable[str]) -> dict[str, dict]:
    """Pooled means of ``variables`` (observed values only) with cluster-robust SEs."""
    out = {}
    for v in variables:
        est, var, n_clusters = [], [], []
        for f in frames:
            y = f[v].to_numpy(dtype=float)
            keep = ~np.isnan(y)
            e, s2, J = _cluster_mean(y[keep], f[_CLUSTER].to_numpy()[keep])
            est.append(e)
            var.append(s2)
            n_clusters.append(J)
        if len(est) == 1:  # one data set: pooled as two identical copies (B = 0)
            est, var = est * 2, var * 2
        row = pool_scalar(est, var, dfcom=min(n_clusters) - 1.0).table(names=[f"mean({v})"])
        out[f"mean({v})"] = _row(row.iloc[0], "mean")
    return out


def _row(s: pd.Series, kind: str) -> dict[str, Any]:
    return {"kind": kind, **{k: float(s[k]) for k in ("estimate", "se", "df", "ci_low", "ci_high")}}
