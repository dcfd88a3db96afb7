from __future__ import annotations

import numpy as np
import pandas as pd

from mlimpute.models import get_model
from tests.conftest import model_data


def test_norm_posterior_is_exact():
    """Flat prior, p(σ²) ∝ 1/σ²: E[σ²|y] = SSR/(n−p−2), E[β|y] = β̂ (Gelman et al. BDA §14)."""
    rng = np.random.default_rng(3)
    n = 40
    df = pd.DataFrame({"x": rng.normal(size=n)})
    df["y"] = 1 + 2 * df["x"] + rng.normal(size=n)
    data = model_data(df, "~ x", "y")
    model = get_model("norm").factory()
    rng = np.random.default_rng(1)
    draws = np.array([model.param_vector(model.step(rng, None, data), data) for _ in range(20000)])
    X = np.c_[np.ones(n), df["x"]]
    bhat, ssr = np.linalg.lstsq(X, df["y"], rcond=None)[:2]
    # independent draws: SE of a mean = SD/sqrt(20000); 4 SE tolerance
    se = draws.std(0) / np.sqrt(len(draws))
    np.testing.assert_array_less(np.abs(draws[:, :2].mean(0) - bhat), 4 * se[:2])
    assert abs(draws[:, 2].mean() - ssr[0] / (n - 2 - 2)) < 4 * se[2]
