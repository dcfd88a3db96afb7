from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import mlimpute  # noqa: F401  (registers df.mi)
from mlimpute.sampler.design import Layout, build_model_data
from mlimpute.spec.formula import parse_formula

# One BLAS thread per test process: `pytest -n 2` runs a worker per core, and a
# multi-threaded BLAS in each oversubscribes the cores (a linear-algebra test ran 4 times
# slower on a busy 2-core machine). The variables reach libraries loaded later and
# subprocesses (the command line, notebooks, process pools); threadpool_limits the ones
# already loaded (numpy's OpenBLAS is loaded before this file by a plugin).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
threadpool_limits(1)


def model_data(df, formula: str, response: str, observed=None):
    """ModelData for ``response ~ formula`` on a complete frame (rows sorted by cluster)."""
    f = parse_formula(formula, response)
    layout = Layout.from_frame(df, f.group)
    static = df.iloc[layout.order].reset_index(drop=True)
    obs = np.ones(len(df), bool) if observed is None else np.asarray(observed)[layout.order]
    return build_model_data(f, static, obs, layout, set())


def run_steps(model, data, n_steps: int, seed: int = 1, burn: int = 200):
    """Parameter draws (n_steps, k) of ``model`` on fixed data."""
    rng = np.random.default_rng(seed)
    state = model.init(rng, data)
    for _ in range(burn):
        state = model.step(rng, state, data)
    out = np.empty((n_steps, len(model.param_names(data))))
    for i in range(n_steps):
        state = model.step(rng, state, data)
        out[i] = model.param_vector(state, data)
    return out


def batch_se(draws: np.ndarray, n_batches: int = 40) -> np.ndarray:
    """Monte Carlo standard error of the mean of each column by batch means."""
    n = draws.shape[0] // n_batches * n_batches
    means = draws[:n].reshape(n_batches, -1, draws.shape[1]).mean(axis=1)
    return means.std(axis=0, ddof=1) / np.sqrt(n_batches)


@pytest.fixture(autouse=True)
def _quiet_mlimpute_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mlimpute.MlimputeWarning)
        yield
