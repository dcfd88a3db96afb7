"""One contract test over every registered model."""

from __future__ import annotations

import numpy as np
import pytest

from mlimpute.datasets import classroom
from mlimpute.errors import SpecificationError
from mlimpute.models import available_models, get_model
from tests.conftest import model_data

MODELS = sorted({get_model(n).name for n in available_models()})


def _response(kind, grade):
    """A response of the model's first kind, derived from the continuous grade."""
    if kind == "numeric":
        return grade
    if kind == "binary":
        return (grade > np.median(grade)).astype(float)
    return np.digitize(grade, np.quantile(grade, [0.25, 0.5, 0.75])).astype(float)


@pytest.mark.parametrize("name", MODELS)
def test_contract(name):
    info = get_model(name)
    d = classroom(3, rng=2, n_classes=10, class_size=8)
    observed = d.incomplete["grade"].notna().to_numpy()
    df = d.complete.assign(y=_response(info.kinds[0], d.complete["grade"].to_numpy()))
    formula = "~ skill + gender + (1 + gender | class)" if info.multilevel else "~ skill"
    data = model_data(df, formula, "y", observed)
    model = info.factory()
    draws = []
    for _ in range(2):
        rng = np.random.default_rng(7)
        state = model.step(rng, model.init(rng, data), data)
        y = model.draw_missing(rng, state, data)
        draws.append(y)
        params = model.param_vector(state, data)
        assert params.shape == (len(model.param_names(data)),)
        assert np.all(np.isfinite(params))
        assert y.shape == (data.n_mis,) and np.all(np.isfinite(y))
        if info.kinds[0] != "numeric" or name.endswith("pmm"):
            assert set(np.unique(y)) <= set(np.unique(data.y_obs))  # observed values only
    np.testing.assert_array_equal(draws[0], draws[1])  # same rng → same draws


def test_aliases_and_unknown():
    assert get_model("2l.pan").name == "2l.norm"
    with pytest.raises(SpecificationError, match="available"):
        get_model("2l.magic")
