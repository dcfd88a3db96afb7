"""Chains stepped together (mlimpute.sampler.batched) give bit-identical results.

The anchor is the chain-by-chain run (``run_chain``): whatever the block size, executor or
route (``impute`` vs ``iterate``), every imputation, trace, final state and generator state
must be equal to it bit for bit (``np.array_equal``, no tolerance).
"""

import warnings

import numpy as np
import pytest

from mlimpute.datasets import classroom
from mlimpute.errors import SpecificationError
from mlimpute.impute import impute
from mlimpute.rng import chain_seeds
from mlimpute.sampler import batched
from mlimpute.sampler.batched import _stepped, can_batch, run_block
from mlimpute.sampler.engine import build_plan, run_chain
from mlimpute.spec.build import build_spec

M = 5


def _plan(exp, iterations=4, m=M):
    d = classroom(exp, rng=1)
    spec = build_spec(d.incomplete, d.imputation, m=m, iterations=iterations)
    return d, build_plan(d.incomplete.copy(), spec)


def _same(a, b, names):
    assert np.array_equal(a.mean, b.mean) and np.array_equal(a.sd, b.sd)
    for n in names:
        assert np.array_equal(a.imputed[n], b.imputed[n])
        assert np.array_equal(a.params[n], b.params[n])
        sa, sb = a.final.states[n], b.final.states[n]
        for f in ("beta", "b", "psi", "alpha", "beta_mean", "b_mean"):
            assert np.array_equal(getattr(sa, f), getattr(sb, f)), f
        assert sa.sigma2 == sb.sigma2
    assert a.final.rng == b.final.rng and a.final.iterations == b.final.iterations


# 2: two variables, cmean() predictors refreshed; 3: a random slope, correlated 2x2 block
@pytest.mark.parametrize("exp", [1, 2, 3])
def test_stepped_block_is_bit_identical_to_chain_by_chain(exp):
    _, plan = _plan(exp)
    seeds, _ = chain_seeds(1, M)
    block = [(k, s, None, None) for k, s in enumerate(seeds)]
    ref = [run_chain(plan, k, s) for k, s in enumerate(seeds)]
    got = _stepped(plan, block, 0, plan.spec.iterations)  # no fallback: the batched code
    for a, b in zip(ref, got, strict=True):
        _same(a, b, plan.names)


@pytest.mark.parametrize("exp", [2, 3])
@pytest.mark.parametrize("size", [1, 3, M, "auto"])
def test_any_batch_size_gives_the_same_chains(size, exp):
    _, plan = _plan(exp)
    assert can_batch(plan)
    seeds, _ = chain_seeds(7, M)
    block = [(k, s, None, None) for k, s in enumerate(seeds)]
    ref = [run_chain(plan, k, s) for k, s in enumerate(seeds)]
    for a, b in zip(ref, run_block(plan, block, size), strict=True):
        _same(a, b, plan.names)


@pytest.mark.parametrize("exp", [1, 3])
def test_continued_chains_are_stepped_together_bit_identically(exp):
    _, plan = _plan(exp, iterations=3)
    seeds, _ = chain_seeds(3, M)
    first = [run_chain(plan, k, s) for k, s in enumerate(seeds)]
    pairs = list(enumerate(zip(seeds, first, strict=True)))
    ref = [run_chain(plan, k, s, r.final, 2) for k, (s, r) in pairs]
    block = [(k, s, r.final, 2) for k, (s, r) in pairs]
    for a, b in zip(ref, _stepped(plan, block, 3, 2), strict=True):
        _same(a, b, plan.names)


def _impute(d, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return impute(d.incomplete, d.imputation, m=4, iterations=3, rng=11, **kw)


@pytest.mark.parametrize("exp", [2, 3])
@pytest.mark.parametrize("kw", [{"batch": 3}, {"batch": "auto", "n_jobs": 2}])
def test_impute_is_identical_whatever_the_batch_and_executor(kw, exp):
    d = classroom(exp, rng=1)
    one = _impute(d, batch=1)
    other = _impute(d, **kw)
    for v in d.imputation:
        assert np.array_equal(one.dataset[v].values, other.dataset[v].values)
    assert one.dataset.equals(other.dataset)


@pytest.mark.parametrize("exp", [1, 3])
def test_iterate_after_batched_run_equals_one_longer_run(exp):
    d = classroom(exp, rng=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        long = impute(d.incomplete, d.imputation, m=4, iterations=5, rng=2, batch=1)
        short = impute(d.incomplete, d.imputation, m=4, iterations=3, rng=2, batch=4)
        cont = short.iterate(2)
    assert np.array_equal(long.dataset["grade"].values, cont.dataset["grade"].values)


def test_other_models_run_chain_by_chain(monkeypatch):
    d = classroom(3, rng=1)  # a random slope without an intercept, q = 1: not covered
    spec = build_spec(d.incomplete, {"grade": "~ skill + (0 + gender | class)"}, m=3)
    plan = build_plan(d.incomplete.copy(), spec)
    assert not can_batch(plan)
    monkeypatch.setattr(batched, "_stepped", lambda *a: pytest.fail("stepped together"))
    seeds, _ = chain_seeds(1, 3)
    got = run_block(plan, [(k, s, None, None) for k, s in enumerate(seeds)], 3)
    for k, s in enumerate(seeds):
        assert np.array_equal(got[k].imputed["grade"], run_chain(plan, k, s).imputed["grade"])


def test_auto_batches_small_plans_only(monkeypatch):
    _, plan = _plan(1)
    assert batched.batch_size(plan, "auto", M) == M
    assert batched.batch_size(plan, 2, M) == 2
    monkeypatch.setattr(batched, "AUTO_MAX_ROWS", plan.layout.n - 1)
    assert batched.batch_size(plan, "auto", M) == 1


def test_auto_batches_random_slopes_up_to_their_own_limit(monkeypatch):
    _, plan = _plan(3)
    monkeypatch.setattr(batched, "AUTO_MAX_ROWS", plan.layout.n - 1)
    assert batched.batch_size(plan, "auto", M) == M  # random slopes: the larger limit
    monkeypatch.setattr(batched, "AUTO_MAX_ROWS_SLOPES", plan.layout.n - 1)
    assert batched.batch_size(plan, "auto", M) == 1


@pytest.mark.parametrize("bad", [0, -2, 1.5, "all", True])
def test_bad_batch_is_refused_naming_it(bad):
    d = classroom(1, rng=1)
    with pytest.raises(SpecificationError, match="batch"):
        impute(d.incomplete, d.imputation, m=2, iterations=2, rng=1, batch=bad)


def test_serial_run_with_progress_is_batched_and_reports(monkeypatch):
    from mlimpute.sampler.executors import map_chains

    _, plan = _plan(1)
    seeds, _ = chain_seeds(5, M)
    calls = []
    real = batched._stepped
    monkeypatch.setattr(batched, "_stepped", lambda *a: calls.append(1) or real(*a))
    done = []
    got = map_chains(plan, seeds, progress=done.append, batch=2)
    assert done == [1, 2, 3, 4, 5] and len(calls) == 2  # blocks of 2, 2 and one chain
    for k, s in enumerate(seeds):
        _same(run_chain(plan, k, s), got[k], plan.names)


@pytest.mark.parametrize("method", ["norm", "pmm", "2l.pmm"])
def test_mixed_plans_step_the_other_models_chain_by_chain(method):
    """A random-intercept 2l.norm variable stacked, the other model's own calls per chain:
    still bit-identical."""
    d = classroom(2, rng=1)
    formulas = dict(d.imputation)
    if not method.startswith("2l"):
        formulas["relation"] = "~ gender + grade + skill + cmean(grade)"
    spec = build_spec(d.incomplete, formulas, m=3, iterations=3, method={"relation": method})
    plan = build_plan(d.incomplete.copy(), spec)
    assert can_batch(plan) and type(plan.models["relation"]).__name__ != "MultilevelNorm"
    seeds, _ = chain_seeds(4, 3)
    got = _stepped(plan, [(k, s, None, None) for k, s in enumerate(seeds)], 0, 3)
    for k, s in enumerate(seeds):
        ref = run_chain(plan, k, s)
        assert np.array_equal(ref.mean, got[k].mean)
        for n in plan.names:
            assert np.array_equal(ref.imputed[n], got[k].imputed[n])
            assert np.array_equal(ref.params[n], got[k].params[n])
        assert ref.final.rng == got[k].final.rng


@pytest.mark.parametrize(
    "random",
    [
        "(1 + gender || class)",  # uncorrelated: no MH step, a scalar Ψ_ξ block per column
        "(1 + gender + skill | class)",  # q = 3: the general MH update, chain by chain
    ],
)
def test_other_random_slope_structures_are_bit_identical(random):
    d = classroom(3, rng=1)
    formulas = {"grade": f"~ skill * gender + relation + {random}"}
    spec = build_spec(d.incomplete, formulas, m=3, iterations=3)
    plan = build_plan(d.incomplete.copy(), spec)
    assert can_batch(plan)
    seeds, _ = chain_seeds(6, 3)
    got = _stepped(plan, [(k, s, None, None) for k, s in enumerate(seeds)], 0, 3)
    for k, s in enumerate(seeds):
        _same(run_chain(plan, k, s), got[k], plan.names)


def test_random_slopes_with_imputed_predictors_are_bit_identical():
    """Two random-slope variables, each a predictor of the other (designs refreshed per
    chain, with cmean() terms)."""
    d = classroom(2, rng=1)
    formulas = {
        "grade": "~ gender + relation + skill + cmean(relation) + (1 + gender | class)",
        "relation": "~ gender + grade + skill + cmean(grade) + (1 + skill | class)",
    }
    spec = build_spec(d.incomplete, formulas, m=3, iterations=3)
    plan = build_plan(d.incomplete.copy(), spec)
    seeds, _ = chain_seeds(8, 3)
    got = _stepped(plan, [(k, s, None, None) for k, s in enumerate(seeds)], 0, 3)
    for k, s in enumerate(seeds):
        _same(run_chain(plan, k, s), got[k], plan.names)


def test_stacked_2x2_kernel_equals_the_one_chain_kernel():
    """mh_2x2_stacked on C chains gives each chain _mh_2x2's Ψ bit for bit, over varied
    scales (clusters' precisions from 1e-3 to 1e3, correlations up to ±0.9)."""
    from mlimpute.models.ml_norm import _mh_2x2, mh_2x2_stacked

    gen = np.random.default_rng(0)
    C, J, n, step = 40, 17, 20, 0.6
    sd = np.exp(gen.uniform(-3, 3, (C, 2)))
    rho = gen.uniform(-0.9, 0.9, C)
    psi = np.empty((C, 2, 2))
    psi[:, 0, 0], psi[:, 1, 1] = sd[:, 0] ** 2, sd[:, 1] ** 2
    psi[:, 0, 1] = psi[:, 1, 0] = rho * sd[:, 0] * sd[:, 1]
    Zc = gen.normal(size=(C, J, 5, 2)) * np.exp(gen.uniform(-3, 3, (C, 1, 1, 1)))
    ZtZ_s = np.einsum("cjnq,cjnr->cjqr", Zc, Zc)
    c = gen.normal(size=(C, J, 2)) * 3
    scale = np.exp(gen.uniform(-2, 2, (C, 2)))
    seeds = gen.integers(0, 2**32, C)
    one = [
        _mh_2x2(np.random.default_rng(s), psi[k], ZtZ_s[k], c[k], scale[k], 2.0, n, step)
        for k, s in enumerate(seeds)
    ]
    zs, us = [], []
    for s in seeds:
        r = np.random.default_rng(s)
        zs.append(r.standard_normal((n, 3)) * step)
        us.append(np.log(r.random(n)))
    got = mh_2x2_stacked(psi, ZtZ_s, c, scale, 2.0, step, np.stack(zs), np.stack(us))
    moved = 0
    for k in range(C):
        assert np.array_equal(one[k], got[k]), k
        moved += not np.array_equal(one[k], psi[k])
    assert moved > C // 2  # proposals were accepted: the test compares moved states


@pytest.mark.slow  # a dask cluster: about 7 s on the shared machine
def test_random_slope_chains_on_dask_equal_chain_by_chain(client):
    from mlimpute.sampler.executors import map_chains

    _, plan = _plan(3, iterations=3)
    seeds, _ = chain_seeds(9, M)
    got = map_chains(plan, seeds, client=client, batch="auto")
    for k, s in enumerate(seeds):
        _same(run_chain(plan, k, s), got[k], plan.names)


def _teachers(seed=2, J=30, n=10):
    """Teacher skill (level 2) missing for a third of the classes, grade (level 1) for a
    fifth of the children."""
    import pandas as pd

    g = np.random.default_rng(seed)
    age = g.normal(45, 10, J)
    skill = 0.07 * (age - 45) + g.normal(size=J)
    c = np.repeat(np.arange(J), n)
    grade = 10 + skill[c] + g.normal(size=J)[c] + g.normal(0, 2, J * n)
    df = pd.DataFrame({"class": c, "age": age[c], "skill": skill[c], "grade": grade})
    df.loc[(g.random(J) < 0.35)[c], "skill"] = np.nan
    df.loc[g.random(J * n) < 0.2, "grade"] = np.nan
    return df


@pytest.mark.parametrize(
    "kw",
    [
        {},  # a level-2 variable beside a stacked level-1 one
        {"delta": {"grade": -0.5, "skill": 0.3}},
        {"delta_cluster_sd": {"grade": 0.4}},
        {"ranef": True},  # the level-2 model reads the stacked variable's random effects
    ],
)
def test_level2_variables_and_shifts_in_a_stepped_block_are_bit_identical(kw):
    df, kw = _teachers(), dict(kw)
    skill = "~ age + cmean(grade)" + (" + ranef(grade)" if kw.pop("ranef", False) else "")
    formulas = {"grade": "~ skill + age + (1 | class)", "skill": skill}
    spec = build_spec(df, formulas, m=3, iterations=3, **kw)
    plan = build_plan(df.copy(), spec)
    assert can_batch(plan) and {v.level for v in spec.variables} == {1, 2}
    seeds, _ = chain_seeds(2, 3)
    got = _stepped(plan, [(k, s, None, None) for k, s in enumerate(seeds)], 0, 3)
    for k, s in enumerate(seeds):
        _same(run_chain(plan, k, s), got[k], ["grade"])
        ref = run_chain(plan, k, s)
        assert np.array_equal(ref.imputed["skill"], got[k].imputed["skill"])
        assert np.array_equal(ref.params["skill"], got[k].params["skill"])


def test_shifted_impute_is_identical_whatever_the_batch():
    df = _teachers(5)
    formulas = {"grade": "~ skill + age + (1 | class)", "skill": "~ age + cmean(grade)"}
    kw = dict(m=4, iterations=3, rng=3, delta={"grade": 1.0}, delta_cluster_sd={"grade": 0.5})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = impute(df, formulas, batch=1, **kw)
        together = impute(df, formulas, batch=4, **kw)
    assert one.dataset.equals(together.dataset)
