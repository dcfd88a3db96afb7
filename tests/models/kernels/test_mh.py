"""The compiled collapsed Metropolis-Hastings step on a correlated 2x2 Ψ
(mlimpute.models.kernels.mh) against the numpy step (mlimpute.models.ml_norm_psi)."""

import numpy as np
import pytest

pytest.importorskip("numba")

from mlimpute.models.kernels.mh import _mh_2x2 as compiled_mh_2x2  # noqa: E402
from mlimpute.models.ml_norm_psi import _mh_2x2  # noqa: E402


def test_mh_2x2_agrees_with_the_numpy_step():
    rng = np.random.default_rng(3)
    # the proposals, then α | Ψ: the same Ψ to round-off, α's signs kept
    J = 12
    Zc = rng.standard_normal((J, 5, 2))
    ZtZ_s = np.einsum("jnq,jnr->jqr", Zc, Zc)
    cc = rng.standard_normal((J, 2))
    psi = np.array([[1.0, 0.3], [0.3, 0.5]])
    scale = np.array([1.5, 0.8])
    got_psi, alpha = psi.copy(), np.array([0.7, -1.2])
    compiled_mh_2x2(np.random.default_rng(1), got_psi, alpha, ZtZ_s, cc, scale, 2.0, 20, 0.6)
    ref = _mh_2x2(np.random.default_rng(1), psi, ZtZ_s, cc, scale, 2.0, 20, 0.6)
    np.testing.assert_allclose(got_psi, ref, rtol=1e-12)
    assert alpha[0] > 0 > alpha[1]
