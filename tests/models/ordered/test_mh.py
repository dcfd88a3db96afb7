"""The numpy Metropolis-Hastings step on a correlated 2x2 Ψ in the kernel's order
(mlimpute.models.ordered.mh) against the compiled kernel (mlimpute.models.kernels.mh),
bit for bit."""

from __future__ import annotations

import math

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from mlimpute.models.kernels import mh as km  # noqa: E402
from mlimpute.models.ordered import mh as om  # noqa: E402

CLUSTERS = (1, 5, 63, 64, 65, 300)


def same(a, b, msg=""):
    np.testing.assert_array_equal(a, b, err_msg=msg, strict=True)


def spread(rng, J, lo=-200.0, hi=200.0):
    """J positive numbers whose decimal exponents are uniform on [lo, hi]."""
    return rng.uniform(0.1, 1.0, J) * 10.0 ** rng.uniform(lo, hi, J)


def problem(rng, J, spread_dets=True):
    """A random 2x2 MH problem: clusters' Z'Z/σ², their c, Ψ, the scales, α."""
    Zc = rng.standard_normal((J, 6, 2))
    ZtZ_s = np.einsum("jnq,jnr->jqr", Zc, Zc)
    cc = rng.standard_normal((J, 2))
    r = rng.uniform(-0.9, 0.9)
    v = np.exp(rng.uniform(-2, 2, 2))
    psi = np.array([[v[0], r * np.sqrt(v[0] * v[1])], [r * np.sqrt(v[0] * v[1]), v[1]]])
    if spread_dets:  # precisions' determinants from about 1e-200 to 1e200
        f = 10.0 ** rng.uniform(-100, 100, J)
        ZtZ_s *= f[:, None, None]
        cc *= np.sqrt(f)[:, None]
        psi *= 10.0 ** rng.choice([0.0, 100.0])
    scale = np.exp(rng.uniform(-1, 1, 2))
    alpha = rng.choice([-1.0, 1.0], 2) * rng.uniform(0.2, 2, 2)
    return ZtZ_s, cc, psi, scale, alpha


def check_mh(seed, ZtZ_s, cc, psi, scale, alpha, nu=2.0, n_steps=20, step=0.6):
    pk, po = psi.copy(), psi.copy()
    ak, ao = alpha.copy(), alpha.copy()
    gk, go = np.random.default_rng(seed), np.random.default_rng(seed)
    km._mh_2x2(gk, pk, ak, ZtZ_s, cc, scale, nu, n_steps, step)
    om.mh_2x2(go, po, ao, ZtZ_s, cc, scale, nu, n_steps, step)
    same(po, pk, f"psi, seed {seed}")
    same(ao, ak, f"alpha, seed {seed}")
    assert go.bit_generator.state == gk.bit_generator.state
    # the chains' version, with this chain alone
    pc, ac, gc = psi.copy()[None], alpha.copy()[None], np.random.default_rng(seed)
    om.mh_2x2_chains([gc], pc, ac, ZtZ_s[None], cc[None], scale[None], nu, n_steps, step)
    same(pc[0], pk, f"psi of the chains' version, seed {seed}")
    same(ac[0], ak, f"alpha of the chains' version, seed {seed}")
    assert gc.bit_generator.state == gk.bit_generator.state
    return pk


@pytest.mark.parametrize("J", CLUSTERS)
def test_chains_side_by_side_are_each_the_kernels(J):
    rng = np.random.default_rng(300 + J)
    probs = [problem(rng, J, spread_dets=c % 2 == 1) for c in range(5)]
    ZtZ_s, cc, psi, scale, alpha = (np.stack(x) for x in zip(*probs, strict=True))
    psi[3] = [[1.0, 2.0], [2.0, 1.0]]  # one chain's Ψ not positive definite
    ZtZ_s[4, 0] = -np.eye(2) * 10.0  # one chain's current target NaN
    gens = [np.random.default_rng(s) for s in range(5)]
    pc, ac = psi.copy(), alpha.copy()
    om.mh_2x2_chains(gens, pc, ac, ZtZ_s, cc, scale, 2.0, 20, 0.6)
    for c in range(5):
        pk, ak, gk = psi[c].copy(), alpha[c].copy(), np.random.default_rng(c)
        km._mh_2x2(gk, pk, ak, ZtZ_s[c], cc[c], scale[c], 2.0, 20, 0.6)
        same(pc[c], pk, f"psi, chain {c}")
        same(ac[c], ak, f"alpha, chain {c}")
        assert gens[c].bit_generator.state == gk.bit_generator.state


@pytest.mark.parametrize("J", CLUSTERS)
def test_mh_2x2_is_the_kernels(J):
    rng = np.random.default_rng(100 + J)
    for seed in range(12):
        args = problem(rng, J, spread_dets=seed % 2 == 1)
        n_steps, step = (20, 0.6) if seed % 3 else (int(rng.integers(0, 60)), 2.5)
        nu = float(rng.choice([2.0, 3.5, 10.0]))
        check_mh(seed, *args, nu=nu, n_steps=n_steps, step=step)


def test_the_target_is_the_kernels_and_numpys_logs_would_not_be():
    rng = np.random.default_rng(5)
    ZtZ_s, cc, psi, scale, _ = problem(rng, 300, spread_dets=False)
    zc = np.empty((6, 300))
    zc[0], zc[1], zc[2] = ZtZ_s[:, 0, 0], ZtZ_s[:, 1, 1], ZtZ_s[:, 0, 1]
    zc[3], zc[4], zc[5] = cc[:, 0] ** 2, cc[:, 0] * cc[:, 1], cc[:, 1] ** 2
    inv0, inv1 = 1 / scale[0] ** 2, 1 / scale[1] ** 2
    points = [tuple(rng.uniform([0.3, -1, 0.3], [2, 1, 2])) for _ in range(30)]
    bk, bo = np.empty((2, 300)), np.empty((2, 300))
    kernel = [km._log_target_2x2(*x, zc, bk, inv0, inv1, 2.0) for x in points]
    mirror = [om.log_target_2x2(*x, zc, bo, inv0, inv1, 2.0) for x in points]
    same(np.array(mirror), np.array(kernel))
    same(bo, bk)
    # the log-determinants summed as numpy sums its own logarithms miss the kernel's
    from mlimpute.models.kernels.elementary import _sum_ln

    assert float(np.sum(np.log(bk[0]))) != _sum_ln(bk[0])


def test_proposals_with_a_determinant_not_positive_are_rejected_alike(monkeypatch):
    rng = np.random.default_rng(7)
    calls = []
    target = om.log_target_chains

    def counted(*args):
        got = target(*args)
        calls.extend((got[0] if isinstance(got, tuple) else got).tolist())
        return got

    monkeypatch.setattr(om, "log_target_chains", counted)
    for J in CLUSTERS:
        for seed in range(6):
            ZtZ_s, cc, psi, scale, alpha = problem(rng, J, spread_dets=False)
            psi = np.array([[1.0, 0.2], [0.2, 1.0]])
            # one cluster's Z'Z/σ² negative: its precision's determinant changes sign
            # with the proposal (about where Ψ⁻¹'s diagonal is 1)
            ZtZ_s[J // 2] = -np.eye(2) * 1.0
            calls.clear()
            check_mh(seed, ZtZ_s, cc, psi, scale, alpha, n_steps=40, step=0.8)
            nan = sum(math.isnan(c) for c in calls[1:])
            assert 0 < nan < len(calls) - 1 or J == 1, (J, seed, nan)


def test_a_current_state_whose_target_is_nan_stays_alike():
    rng = np.random.default_rng(8)
    for J in CLUSTERS:
        ZtZ_s, cc, psi, scale, alpha = problem(rng, J, spread_dets=False)
        # a precision determinant not positive at the current Ψ
        bad = ZtZ_s.copy()
        bad[0] = -np.eye(2) * 10.0
        check_mh(1, bad, cc, psi, scale, alpha)
        # a Ψ that is not positive definite: l22 is NaN, nothing is accepted
        out = check_mh(2, ZtZ_s, cc, np.array([[1.0, 2.0], [2.0, 1.0]]), scale, alpha)
        assert np.isnan(out[1, 1]) and not np.isnan(out[0]).any()
        # a zero Ψ: divisions by zero give inf and NaN in both
        check_mh(3, ZtZ_s, cc, np.zeros((2, 2)), scale, alpha)
