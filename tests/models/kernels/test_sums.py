"""The compiled design sums (mlimpute.models.kernels.sums): a random intercept's sums
from the columns no imputation changes against the plain sums."""

import numpy as np
import pytest

pytest.importorskip("numba")

from mlimpute.datasets import classroom  # noqa: E402
from mlimpute.models import ml_norm_compiled as compiled  # noqa: E402
from mlimpute.models.kernels.sums import design_sums, intercept_sums  # noqa: E402
from mlimpute.sampler.engine import build_plan  # noqa: E402
from mlimpute.spec.build import build_spec  # noqa: E402


def test_intercept_sums_agree_with_the_plain_sums():
    # a random intercept with a changing design: only the changing columns are summed
    # again, cluster-constant ones per cluster; the same sums to round-off (each ~1e-16
    # relative, tolerance 1e-13), also with a cluster that has no observed rows
    from numba.typed import List

    d = classroom(2, rng=1)
    df = d.incomplete.copy()
    df.loc[df["class"] == df["class"].iloc[0], "relation"] = np.nan
    plan = build_plan(df, build_spec(df, d.imputation, m=1, iterations=1))
    rng = np.random.default_rng(8)
    for name in plan.names:
        data = plan.data[name]
        fx = compiled._Fixed.of(data)
        assert fx.split is not None
        designs = []
        for _ in range(3):
            X = data.X.obs.copy(order="F")
            for col, factors in data.X.fast:  # new values, cluster means constant
                if factors[0].startswith("cmean("):
                    X[:, col] = rng.normal(size=fx.J)[fx.codes]
                else:
                    X[:, col] = rng.normal(5.0, 3.0, X.shape[0])
            designs.append(compiled._read_only(X.T))
        XTs = List(designs)
        ref = design_sums(XTs, fx.y, fx.codes, fx.ZT, fx.J)
        got = intercept_sums(XTs, fx.y, *fx.split)
        for a, b in zip(got, ref, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13 * np.abs(b).max())
    first = compiled._Fixed.of(plan.data["relation"]).split[4]
    assert (first == -1).sum() == 1  # the cluster without observed rows
