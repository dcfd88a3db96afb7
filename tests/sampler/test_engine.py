"""The engine reads models through their contract: plan-time checks, random effects,
options."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mlimpute
from mlimpute.errors import ChainError, SpecificationError
from mlimpute.models.base import DesignBlock
from mlimpute.models.base import ModelData as ModelDataProtocol
from mlimpute.sampler.engine import build_plan
from mlimpute.spec.build import build_spec


def _nominal_clusters(seed=1, J=60, n=15):
    """A nominal x whose category b is chosen more often in clusters with a high u_j, and a
    level-2 s = 0.8 u_j + N(0, 0.5²): x's random effects for b predict s."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(J)
    g = np.repeat(np.arange(J), n)
    wb = -0.3 + u[g] + rng.standard_normal(J * n)  # utility of b (a is the reference)
    wc = -0.3 + rng.standard_normal(J * n)  # utility of c: no cluster effect
    k = np.where(np.maximum(wb, wc) > 0, np.where(wb > wc, 1, 2), 0)
    df = pd.DataFrame(
        {
            "g": g,
            "x": pd.Categorical(np.array(["a", "b", "c"])[k]),
            "s": (0.8 * u + 0.5 * rng.standard_normal(J))[g],
        }
    )
    df.loc[rng.random(J * n) < 0.2, "x"] = np.nan
    df.loc[(rng.random(J) < 0.4)[g], "s"] = np.nan
    return df


def test_ranef_of_a_nominal_variable_uses_its_random_effects():
    """ranef(x) of a 2l.nominal x: one column per category's random intercept, named after
    the category; the level-2 coefficient on b's recovers the dependence.

    Before, the engine found no ``state.b`` and used zeros: the coefficient ran off to
    ±1e2..1e4. Here it is about 0.47 in both chains (0.8 attenuated by the noise of the
    drawn b_j); with 36 observed clusters its posterior SD is about 0.15, and the mean of
    20 draws is closer still, so (0.2, 1.2) holds with a wide margin and fails for zeros.
    """
    df = _nominal_clusters()
    imp = df.mi.impute({"x": "~ 1 + (1 | g)", "s": "~ ranef(x)"}, m=2, iterations=30, rng=3)
    params = imp.dataset["s:params"]
    names = list(params["s:param"].values)
    assert names == ["Intercept", "ranef(x)[b:Intercept]", "ranef(x)[c:Intercept]", "var(Residual)"]
    late = params.sel(iteration=slice(11, None)).mean("iteration")
    coef_b = late.sel({"s:param": "ranef(x)[b:Intercept]"}).values
    assert np.all((coef_b > 0.2) & (coef_b < 1.2)), coef_b
    # x's random effects explain s: less than var(s) ≈ 0.89 is left (0.5-0.55 here)
    assert np.all(late.sel({"s:param": "var(Residual)"}).values < 0.75)


def test_ranef_columns_named_by_the_model():
    df = _nominal_clusters(J=12, n=8)
    plan = build_plan(df, build_spec(df, {"x": "~ 1 + (1 | g)", "s": "~ ranef(x)"}))
    assert plan.data["s"].X.names == ["Intercept", "ranef(x)[b:Intercept]", "ranef(x)[c:Intercept]"]
    assert plan.data["x"].categories == ("a", "b", "c")
    # the sampler's data and block types are what the models' protocols describe
    assert isinstance(plan.data["x"], ModelDataProtocol)
    assert isinstance(plan.data["x"].X, DesignBlock)


def test_model_check_is_a_specification_error_at_plan_time():
    """An ordinal response without an intercept is refused when the plan is built, naming
    the variable, not as a ChainError from inside chain 1."""
    base = _nominal_clusters(J=12, n=8)
    df = pd.DataFrame(
        {
            "g": base["g"],
            "z": np.arange(len(base)) % 3,
            "o": pd.Categorical(
                np.array(["lo", "mid", "hi"])[np.arange(len(base)) * 7 % 3],
                ["lo", "mid", "hi"],
                ordered=True,
            ),
        }
    )
    df.loc[::5, "o"] = np.nan
    spec = build_spec(df, {"o": "~ 0 + z + (1 | g)"})
    assert spec.methods == {"o": "2l.ordinal"}
    with pytest.raises(SpecificationError, match=r"'o'.*needs an intercept"):
        build_plan(df, spec)
    assert not issubclass(ChainError, SpecificationError)
    with pytest.raises(SpecificationError, match=r"'o'.*needs an intercept"):
        df.mi.impute({"o": "~ 0 + z + (1 | g)"}, m=2, iterations=2, rng=1)


def test_options_reach_the_model():
    df = mlimpute.datasets.classroom(1, rng=1, n_classes=10, class_size=6).incomplete
    f = {"grade": "~ skill + (1 | class)"}
    spec = build_spec(df, f, method={"grade": ("2l.norm", {"prior": "iw", "nu": 4})})
    plan = build_plan(df, spec)
    assert plan.models["grade"].prior == "iw" and plan.models["grade"].nu == 4.0
    a = df.mi.impute(f, method={"grade": ("2l.norm", {"prior": "iw"})}, m=2, iterations=3, rng=1)
    b = df.mi.impute(f, m=2, iterations=3, rng=1)
    assert not np.array_equal(a.dataset["grade"].values, b.dataset["grade"].values)


def test_plan_rows_are_the_observed_and_missing_positions():
    df = mlimpute.datasets.classroom(2, rng=3).incomplete
    spec = build_spec(df, mlimpute.datasets.IMPUTATION_FORMULAS[2], m=2, iterations=2)
    plan = build_plan(df, spec)
    for name in plan.names:
        missing = np.isnan(plan.start[name])
        assert np.array_equal(plan.missing_rows(name), np.flatnonzero(missing))
        assert np.array_equal(plan.observed_rows(name), np.flatnonzero(~missing))
        assert plan.missing_rows(name) is plan.data[name].mis_idx  # held once
    plan.rows.clear()  # computed where the plan holds none
    name = plan.names[0]
    assert np.array_equal(plan.missing_rows(name), plan.data[name].mis_idx)
    assert np.array_equal(plan.observed_rows(name), plan.data[name].obs_idx)
