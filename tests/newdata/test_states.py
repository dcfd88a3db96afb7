"""map_nested: the walk over a model state's nested states."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from mlimpute.newdata.states import map_nested


@dataclass(frozen=True)
class _Core:
    b: int


@dataclass(frozen=True)
class _Latent:
    core: _Core
    parts: tuple
    empty: tuple
    rate: float


def test_applies_to_fields_and_tuples_in_order_and_leaves_the_rest():
    seen = []

    def fn(s):
        seen.append(s.b)
        return _Core(s.b + 1)

    out = map_nested(_Latent(_Core(1), (_Core(2), _Core(3)), (), 0.5), fn)
    assert out == _Latent(_Core(2), (_Core(3), _Core(4)), (), 0.5)
    assert seen == [1, 2, 3]  # field order, then tuple order: random draws stay in order


def test_states_without_nested_states_are_returned_as_they_are():
    plain = _Core(1)
    assert map_nested(plain, lambda s: 1 / 0) is plain
    assert map_nested(3, lambda s: 1 / 0) == 3


def _run(path):
    """A finished run of ``path`` (chained, model-based, several grouping factors) and new
    rows for it."""
    import numpy as np
    import pandas as pd

    import mlimpute

    r = np.random.default_rng(2)
    S, C, P = 8, 2, 6
    school = np.repeat(np.arange(S), C * P)
    cls = np.tile(np.repeat(np.arange(C), P), S)
    x = r.normal(size=school.size)
    y = x + r.normal(0, 0.7, S)[school] + r.normal(size=x.size)
    df = pd.DataFrame({"school": school, "class": cls, "x": x, "y": y})
    df.loc[r.random(x.size) < 0.3, "y"] = np.nan
    if path == "chained":
        f = {"y": "~ x + (1 | school)"}
        imp = mlimpute.impute(df, f, cluster="school", m=2, iterations=3, rng=1)
    elif path == "model":
        imp = mlimpute.impute(df, model="y ~ x + (1 | school)", m=2, iterations=3, rng=1)
    else:
        f = {"y": "~ x + (1 | school) + (1 | school:class)"}
        imp = mlimpute.impute(df, f, cluster=["school", "class"], m=2, iterations=3, rng=1)
    new = pd.DataFrame({"school": [0, 0, 99], "class": [1, 0, 0], "x": 0.2, "y": np.nan})
    return imp, new


@pytest.mark.parametrize("path", ["chained", "model", "factors"])
def test_a_completion_of_new_rows_is_marked_and_writes_no_specification_file(path, tmp_path):
    import mlimpute
    from mlimpute.errors import SpecificationError
    from mlimpute.specfile.study import StudySpec

    imp, new = _run(path)
    out = imp.impute_new(new, rng=4, sweeps=2)
    assert out.spec.completion and not imp.spec.completion
    assert (out.spec.iterations, out.spec.seed) == (2, 4)
    assert "completion of new rows" in repr(out.spec)
    for write in (out.spec.to_toml, lambda: StudySpec.from_imputation_spec(out.spec)):
        with pytest.raises(SpecificationError, match="Save the training result's spec"):
            write()
    imp.spec.to_toml()  # the training run's file: written as before
    out.to_netcdf(tmp_path / "out.nc")  # saved results keep the mark
    again = mlimpute.open(tmp_path / "out.nc")
    assert again.spec.completion
    with pytest.raises(SpecificationError, match="completion of new rows"):
        again.spec.to_toml()
