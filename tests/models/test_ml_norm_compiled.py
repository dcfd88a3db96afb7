"""The compiled (numba) Gibbs step of the multilevel normal model.

* against their numpy twins (:mod:`mlimpute.models.ordered`, ``MLIMPUTE_NUMBA=0``): the
  same numbers bit for bit, whole runs of 50 iterations included; against the general
  numpy step (:meth:`MultilevelNorm.gibbs`, which sums in numpy's own order), the same
  random streams and the same numbers to round-off;
* between routes: with the kernel on, every route of an eligible model (chain by chain,
  blocks of any size, processes, continued runs) runs it, so they agree bit for bit;
* the switch: ``MLIMPUTE_NUMBA=0`` gives the numpy twins, ``import mlimpute`` does not
  import numba.
"""

import subprocess
import sys
import warnings
from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("numba")

from mlimpute import _numba  # noqa: E402
from mlimpute.datasets import classroom  # noqa: E402
from mlimpute.impute import impute  # noqa: E402
from mlimpute.models import ml_norm_compiled as compiled  # noqa: E402
from mlimpute.models.ml_norm import _kernel  # noqa: E402
from mlimpute.rng import chain_seeds  # noqa: E402
from mlimpute.sampler.batched import run_block  # noqa: E402
from mlimpute.sampler.engine import build_plan, run_chain  # noqa: E402
from mlimpute.spec.build import build_spec  # noqa: E402
from tests.conftest import assert_same_chains  # noqa: E402


@pytest.fixture
def numba_on(monkeypatch):
    monkeypatch.setenv("MLIMPUTE_NUMBA", "1")


def _plan(exp, iterations, m=3, formulas=None):
    d = classroom(exp, rng=1)
    spec = build_spec(d.incomplete, formulas or d.imputation, m=m, iterations=iterations)
    return build_plan(d.incomplete.copy(), spec)


def _run(plan, monkeypatch, flag, batch="auto"):
    monkeypatch.setenv("MLIMPUTE_NUMBA", flag)
    seeds, _ = chain_seeds(4, plan.spec.m)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_block(plan, [(k, s, None, None) for k, s in enumerate(seeds)], batch)


def _same(a, b):
    np.testing.assert_array_equal(a, b, strict=True)


@pytest.mark.parametrize(
    ("exp", "formulas"),
    [
        (1, None),  # random intercept
        (3, None),  # correlated 2x2 random part: the collapsed MH step
        (3, {"grade": "~ skill * gender + relation + (1 + gender || class)"}),  # two blocks
        # three scalar blocks: the kernel's loops for any number of random effects
        (3, {"grade": "~ skill * gender + relation + (1 + gender + skill || class)"}),
        (2, None),  # two variables, cmean() terms: designs refreshed per chain
    ],
)
def test_kernel_gives_the_numpy_twins_numbers_bit_for_bit(exp, formulas, monkeypatch):
    plan = _plan(exp, 50, formulas=formulas)
    name = plan.names[-1]
    monkeypatch.setenv("MLIMPUTE_NUMBA", "1")
    assert _kernel(plan.models[name], plan.data[name]) is not None  # the kernel's path
    fast = _run(plan, monkeypatch, "1")
    plain = _run(plan, monkeypatch, "0")
    for a, b in zip(fast, plain, strict=True):
        for n in plan.names:
            _same(a.params[n], b.params[n])
            _same(a.imputed[n], b.imputed[n])
        # the same random numbers: each generator drew as many as in the numpy step
        assert a.final.rng == b.final.rng


def test_one_step_draws_the_numpy_streams(numba_on):
    plan = _plan(3, 1, m=1)
    model, data = plan.models["grade"], plan.data["grade"].for_chain()
    state = model.init(np.random.default_rng(0), data)
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    got = model.step(r1, state, data)  # compiled
    ref = model.gibbs(r2, state, data, data.y_obs)  # numpy
    assert r1.bit_generator.state == r2.bit_generator.state
    for f in ("beta", "b", "psi", "alpha", "beta_mean", "b_mean"):
        np.testing.assert_allclose(getattr(got, f), getattr(ref, f), rtol=1e-12, atol=1e-14)
    assert got.sigma2 == pytest.approx(ref.sigma2, rel=1e-12)
    r1, r2 = np.random.default_rng(6), np.random.default_rng(6)
    y1 = model.draw_missing(r1, got, data)
    np.testing.assert_allclose(
        y1, model.predict(got, data) + r2.standard_normal(y1.size) * np.sqrt(got.sigma2), rtol=1e-13
    )
    assert r1.bit_generator.state == r2.bit_generator.state


@pytest.mark.parametrize("exp", [1, 2, 3])
def test_every_route_runs_the_kernel_bit_identically(exp, numba_on):
    plan = _plan(exp, 4, m=5)
    seeds, _ = chain_seeds(9, 5)
    ref = [run_chain(plan, k, s) for k, s in enumerate(seeds)]
    for size in (1, 3, 5):
        got = run_block(plan, [(k, s, None, None) for k, s in enumerate(seeds)], size)
        for a, b in zip(ref, got, strict=True):
            for n in plan.names:
                assert np.array_equal(a.imputed[n], b.imputed[n])
                assert np.array_equal(a.params[n], b.params[n])
            assert a.final.rng == b.final.rng


@pytest.mark.parametrize("exp", [2, 3])
def test_impute_executors_and_iterate_agree_with_the_kernel(exp, numba_on):
    d = classroom(exp, rng=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = impute(d.incomplete, d.imputation, m=4, iterations=5, rng=2, batch=1)
        two = impute(d.incomplete, d.imputation, m=4, iterations=5, rng=2, n_jobs=2)
        cont = impute(d.incomplete, d.imputation, m=4, iterations=3, rng=2).iterate(2)
    assert one.dataset.equals(two.dataset)
    assert one.dataset.equals(cont.dataset)


def test_switch_off_gives_the_numpy_twins(monkeypatch):
    plan = _plan(1, 1)
    model, data = plan.models["grade"], plan.data["grade"]
    monkeypatch.setenv("MLIMPUTE_NUMBA", "0")
    assert not _numba.enabled() and _kernel(model, data) is compiled
    assert compiled._k().step.__module__ == "mlimpute.models.ordered.step"
    monkeypatch.setenv("MLIMPUTE_NUMBA", "1")
    assert _numba.enabled() and _kernel(model, data) is compiled
    assert compiled._k().step.__module__ == "mlimpute.models.kernels.step"


def test_import_does_not_import_numba():
    code = "import sys, mlimpute; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


def test_uncovered_random_parts_keep_the_numpy_step():
    plan = _plan(3, 1, formulas={"grade": "~ skill + gender + (1 + gender + skill | class)"})
    assert not compiled.usable(plan.models["grade"], plan.data["grade"])  # 3x3 correlated


def test_split_designs_run_the_kernel_chain_by_chain(monkeypatch):
    # many rows per cluster: the numpy step splits the design (not stacked over chains);
    # the kernel needs no split and serves every chain alone
    from mlimpute.models import _ml_norm_static
    from mlimpute.models.ml_norm_batched import eligible

    monkeypatch.setattr(_ml_norm_static, "SPLIT_MIN_CELLS", 0)
    plan = _plan(1, 50)
    model, data = plan.models["grade"], plan.data["grade"]
    assert not eligible(model, data) and compiled.usable(model, data)
    fast = _run(plan, monkeypatch, "1")
    plain = _run(plan, monkeypatch, "0")
    for a, b in zip(fast, plain, strict=True):
        _same(a.params["grade"], b.params["grade"])
        _same(a.imputed["grade"], b.imputed["grade"])
        assert a.final.rng == b.final.rng


def test_data_with_the_kernels_arrays_pickles(numba_on):
    # a pool's workers receive the plan after a serial run filled its cache
    import pickle

    plan = _plan(2, 2)
    seeds, _ = chain_seeds(9, 3)
    ref = [run_chain(plan, k, s) for k, s in enumerate(seeds)]
    again = pickle.loads(pickle.dumps(plan))
    for k, s in enumerate(seeds):
        got = run_chain(again, k, s)
        for n in plan.names:
            assert np.array_equal(ref[k].imputed[n], got.imputed[n])


def test_a_class_level_variable_with_class_means_gives_the_numpy_twins_numbers(monkeypatch):
    # z lives on the class rows and clusters by school; its design holds cmean(x), a class
    # mean that varies within a school: the compiled sums must not treat it as constant
    # within clusters (they did: the conditional mean of beta was off by up to 0.8)
    from tests.test_three_level import three_level

    df = three_level()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec = impute(df, cluster=["school", "class"], m=1, iterations=1, rng=1).spec
    plan = build_plan(df.copy(), spec)
    model, data = plan.models["z"], plan.data["z"]
    monkeypatch.setenv("MLIMPUTE_NUMBA", "0")
    assert "cmean(x)" in data.X.names
    start = model.init(np.random.default_rng(0), data)
    got = {}
    for flag in ("0", "1"):
        monkeypatch.setenv("MLIMPUTE_NUMBA", flag)
        rng = np.random.default_rng(5)
        state = start
        for _ in range(5):
            state = model.step(rng, state, data)
        got[flag] = np.concatenate([state.beta_mean, state.beta, np.ravel(state.b)])
    assert _kernel(model, data) is not None  # the kernels' step ran, compiled and not
    _same(got["1"], got["0"])


@pytest.mark.parametrize("shift", [0.0, 1e6])
def test_residual_sum_of_squares_from_the_sums_or_the_rows(shift, monkeypatch):
    # a random intercept's residual sum of squares comes from the sums (y'y, X'X, the
    # clusters' sums); where those cancel (a response a million away from zero: its
    # sum of squares ~1e12 times the residuals') the kernel sums over the rows instead
    d = classroom(1, rng=1)
    df = d.incomplete.copy()
    df["grade"] = df["grade"] + shift
    spec = build_spec(df, d.imputation, m=2, iterations=30)
    plan = build_plan(df.copy(), spec)
    fast = _run(plan, monkeypatch, "1")
    plain = _run(plan, monkeypatch, "0")
    for a, b in zip(fast, plain, strict=True):
        _same(a.params["grade"], b.params["grade"])
        _same(a.imputed["grade"], b.imputed["grade"])


def test_the_draws_skip_reading_only_columns_of_ones():
    # the intercept and a Z of ones are added without being read (x * 1.0 is x); a
    # column that is 1 on the observed rows only is read
    plan = _plan(2, 2)
    data = plan.data["grade"]
    rows = compiled._MissingRows.of(data)
    assert rows.unit.tolist() == [n == "Intercept" for n in data.X.names]
    assert rows.ones
    assert rows.codes.dtype == np.int32
    d = plan.data["relation"]
    Z = d.Z.mis.copy()
    Z[0, 0] = 2.0  # Z not all ones on the missing rows: read
    assert not compiled._MissingRows(replace(d, Z=replace(d.Z, mis=Z), cache={})).ones


def test_a_chain_alone_takes_the_kernels_prepared_once_with_the_same_numbers(monkeypatch):
    # ChainKernels (arguments bound once a chain) against the model's own calls
    from mlimpute.sampler import engine

    plan = _plan(2, 4, m=2)
    seeds, _ = chain_seeds(3, 2)
    monkeypatch.setenv("MLIMPUTE_NUMBA", "1")
    made = []
    real = compiled.ChainKernels.of

    def counted(*args):
        got = real(*args)
        made.append(got is not None)
        return got

    monkeypatch.setattr(compiled.ChainKernels, "of", counted)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = [run_chain(plan, k, s) for k, s in enumerate(seeds)]
        assert made and all(made)
        monkeypatch.setattr(engine, "_compiled_block", lambda *a: ({}, {}))
        ref = [run_chain(plan, k, s) for k, s in enumerate(seeds)]
    assert_same_chains(ref, got, plan.names)
