"""Record one fixed imputation run, so a test can check that later code gives the same draws.

Run from the repository root: ``python tests/data/make_reference_run.py``. It writes
``tests/data/reference_run.npz``: the imputed values of every variable of a run that uses
every kind of model the defaults pick (2l.norm with a random slope, 2l.bin, 2l.ordinal,
2l.nominal, 2l.pmm for integer codes, 2lonly.norm for a level-2 variable).
"""

from pathlib import Path

import numpy as np
import pandas as pd

import mlimpute  # noqa: F401  (registers df.mi)
from mlimpute.datasets import classroom


def reference_frame() -> pd.DataFrame:
    """The classroom example's experiment 3 with four more incomplete columns."""
    df = classroom(3, rng=11).incomplete.copy()
    gen = np.random.default_rng(20261204)
    n = len(df)
    cls = pd.factorize(df["class"])[0]
    u = gen.standard_normal(cls.max() + 1)
    df["passed"] = (df["skill"] + u[cls] + gen.standard_normal(n) > 0).astype("float64")
    score = df["skill"] + 0.5 * u[cls] + gen.standard_normal(n)
    df["level"] = pd.Categorical(
        pd.cut(score, [-np.inf, -0.5, 0.5, np.inf], labels=["low", "mid", "high"]), ordered=True
    )
    df["club"] = pd.Categorical(gen.choice(["art", "music", "sport"], size=n))
    # a continuous level-2 variable (whole numbers with many values would be counts: pmm)
    size = gen.integers(15, 35, size=cls.max() + 1) / 10.0
    df["size"] = size[cls]
    den = gen.integers(1, 5, size=cls.max() + 1).astype("float64")
    df["den"] = den[cls]
    df["books"] = gen.integers(1, 6, size=n).astype("float64")
    df.loc[gen.random(n) < 0.2, "books"] = np.nan
    for col, frac in [("passed", 0.2), ("level", 0.2), ("club", 0.15)]:
        df.loc[gen.random(n) < frac, col] = np.nan
    missing_classes = gen.choice(cls.max() + 1, size=5, replace=False)
    df.loc[np.isin(cls, missing_classes), "size"] = np.nan
    df.loc[np.isin(cls, gen.choice(cls.max() + 1, size=4, replace=False)), "den"] = np.nan
    return df


def reference_runs():
    """The defaults on the frame above, and experiment 3's random-slope formulas."""
    df = reference_frame()
    yield df.mi.impute(cluster="class", m=3, iterations=6, rng=2005, progress=False)
    c = classroom(3, rng=11)
    yield c.incomplete.mi.impute(c.imputation, m=3, iterations=6, rng=7, progress=False)


def imputed_values(imp) -> dict:
    """Every imputed column of every completed data set, as exact text."""
    return {
        f"{v.name}|{v.method}": np.stack(
            [
                np.asarray(imp.complete(i + 1)[v.name].astype("object").astype(str))
                for i in range(imp.m)
            ]
        ).astype(str)
        for v in imp.spec.variables
    }


if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore")
    out = {}
    for k, imp in enumerate(reference_runs()):
        out.update({f"run{k}|{key}": value for key, value in imputed_values(imp).items()})
    path = Path(__file__).with_name("reference_run.npz")
    np.savez_compressed(path, **out)
    print(path, sorted(out))
