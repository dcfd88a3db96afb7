from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import mlimpute  # noqa: F401  (registers df.mi)
from mlimpute.models.segments import Segments
from mlimpute.models.testing import ArrayBlock, ArrayModelData
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

# The numpy twins of the multilevel normal model's compiled step unless a test asks for
# the kernels (MLIMPUTE_NUMBA=1) or for the default rule (tests/test_numba_switch.py):
# once a test process has loaded numba the default would run the kernels in every later
# test, compiling their other variants in whichever test comes first (about 20 s cold).
# The numbers are the same either way (tests/models/ordered,
# tests/models/test_ml_norm_compiled.py).
os.environ.setdefault("MLIMPUTE_NUMBA", "0")


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


def assert_same_chains(ref, got, names) -> None:
    """Two lists of chain results with the same numbers bit for bit: every variable's
    imputations and parameter traces, the trace means and SDs, where each chain's
    generator stopped."""
    assert len(ref) == len(got)
    for a, b in zip(ref, got, strict=True):
        for n in names:
            assert np.array_equal(a.imputed[n], b.imputed[n])
            assert np.array_equal(a.params[n], b.params[n])
        assert np.array_equal(a.mean, b.mean) and np.array_equal(a.sd, b.sd)
        assert a.final.rng == b.final.rng


def array_model_data(X, y, names, codes=None, n_clusters=1, Z=None, variable="y"):
    """Model data from arrays: every row observed, a random intercept when ``Z`` is given
    (rows sorted by cluster ``codes``)."""
    n = len(y)
    codes = np.zeros(n, np.intp) if codes is None else codes
    empty = np.zeros((0, X.shape[1]))
    return ArrayModelData(
        variable,
        np.asarray(y, dtype=float),
        np.arange(n),
        np.zeros(0, np.intp),
        ArrayBlock(names, np.asfortranarray(X), empty),
        None if Z is None else ArrayBlock(["Intercept"], np.asfortranarray(Z), np.zeros((0, 1))),
        Segments.from_codes(codes, n_clusters),
        np.zeros(0, np.intp),
        n_clusters,
        None if Z is None else "g",
        () if Z is None else ((0,),),
        () if Z is None else (True,),
    )


@pytest.fixture(scope="module")
def client():
    """A dask client on a local cluster of two single-threaded worker processes."""
    distributed = pytest.importorskip("distributed")
    try:
        cluster = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=40,
        )
    except (OSError, TimeoutError) as exc:  # no sockets / too slow to start here
        pytest.skip(f"cannot start a dask LocalCluster: {exc}")
    with cluster, distributed.Client(cluster, timeout="30s") as c:
        yield c


@pytest.fixture(autouse=True)
def _quiet_mlimpute_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mlimpute.MlimputeWarning)
        yield


@pytest.fixture
def stream(monkeypatch):
    """Designs read in chunks from the first row (the rule is for large data)."""
    import mlimpute.sampler.streamed as streamed_module

    monkeypatch.setattr(streamed_module, "STREAM_MIN_ROWS", 0)
