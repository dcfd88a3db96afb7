"""Write the data sets of lme4_multiterm.json (run once; lme4_multiterm.R fits them).

    python tests/data/lme4_multiterm_data.py && Rscript tests/data/lme4_multiterm.R

* ``lme4_multiterm_nested.csv``: 30 schools x 4 classes x 10 pupils (1,200 rows), class
  numbered 1-4 within its school (``classno``, so the class factor is ``school:classno``)
  and with unique ids (``class``); variances school 0.5, class 0.3, a class-level random
  slope of ``x`` (variance 0.1, correlation 0.3 with the class intercept), residual 1.
* ``lme4_multiterm_crossed.csv``: 2,000 pupils in 100 schools crossed with 50
  neighbourhoods (each pupil's school and neighbourhood drawn independently), both
  variances 0.3, residual 1.
"""

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent


def nested(rng: np.random.Generator) -> pd.DataFrame:
    n_school, n_class, n_pupil = 30, 4, 10
    school = np.repeat(np.arange(1, n_school + 1), n_class * n_pupil)
    classno = np.tile(np.repeat(np.arange(1, n_class + 1), n_pupil), n_school)
    cls = (school - 1) * n_class + classno - 1  # 0..119
    u_s = rng.normal(0.0, np.sqrt(0.5), n_school)
    cov = np.array([[0.3, 0.3 * np.sqrt(0.3 * 0.1)], [0.3 * np.sqrt(0.3 * 0.1), 0.1]])
    v_c = rng.multivariate_normal([0.0, 0.0], cov, n_school * n_class)
    x = rng.normal(0.0, 1.0, school.size) + 0.3 * rng.normal(size=n_school * n_class)[cls]
    w = rng.normal(0.0, 1.0, n_school * n_class)[cls]  # a class-level variable
    y = (
        1.0
        + 0.5 * x
        + 0.25 * w
        + u_s[school - 1]
        + v_c[cls, 0]
        + v_c[cls, 1] * x
        + rng.normal(0.0, 1.0, school.size)
    )
    return pd.DataFrame(
        {
            "school": school,
            "classno": classno,
            "class": [f"s{s:02d}c{c}" for s, c in zip(school, classno, strict=True)],
            "x": np.round(x, 6),
            "w": np.round(w, 6),
            "y": np.round(y, 6),
        }
    )


def crossed(rng: np.random.Generator) -> pd.DataFrame:
    n = 2000
    school = rng.integers(1, 101, n)
    hood = rng.integers(1, 51, n)
    u_s = rng.normal(0.0, np.sqrt(0.3), 100)
    u_h = rng.normal(0.0, np.sqrt(0.3), 50)
    x = rng.normal(0.0, 1.0, n)
    y = 2.0 + 0.4 * x + u_s[school - 1] + u_h[hood - 1] + rng.normal(0.0, 1.0, n)
    return pd.DataFrame(
        {"school": school, "neighbourhood": hood, "x": np.round(x, 6), "y": np.round(y, 6)}
    )


if __name__ == "__main__":
    rng = np.random.default_rng(20261204)
    nested(rng).to_csv(HERE / "lme4_multiterm_nested.csv", index=False)
    crossed(rng).to_csv(HERE / "lme4_multiterm_crossed.csv", index=False)
