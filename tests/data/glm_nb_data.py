"""Writes glm_nb.csv, the data of the negative-binomial GLM reference fit (glm_nb.R).

Run once from tests/data/: ``python glm_nb_data.py``. 500 rows, counts with mean
exp(0.5 + 0.5 x - 0.3 z) and variance mu + mu^2 / 0.5 (theta = 0.5, far from 1).
"""

import numpy as np
import pandas as pd

rng = np.random.default_rng(20240611)
n, theta = 500, 0.5
x = rng.standard_normal(n)
z = rng.standard_normal(n)
mu = np.exp(0.5 + 0.5 * x - 0.3 * z)
y = rng.poisson(rng.gamma(theta, mu / theta))
pd.DataFrame({"x": x.round(6), "z": z.round(6), "y": y}).to_csv("glm_nb.csv", index=False)
