"""The model contract: check_model over the whole registry, and the default table.

``check_model`` must pass for every registered name (aliases included) and must fail for
models that break the contract (a test that cannot fail is a defect).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mlimpute.errors import SpecificationError
from mlimpute.models import (
    ConditionalModel,
    available_models,
    check_model,
    default_for,
    default_table,
    get_model,
    model_options,
    register,
    validate_options,
)
from mlimpute.models import registry as model_base
from mlimpute.models.norm import Norm, NormState
from mlimpute.models.testing import example_data


@pytest.mark.parametrize("name", available_models())
def test_every_registered_model_keeps_the_contract(name):
    check_model(name)


@pytest.mark.parametrize("name", sorted({get_model(n).name for n in available_models()}))
def test_models_satisfy_the_protocol(name):
    assert isinstance(get_model(name).factory(), ConditionalModel)


def test_check_model_with_options_and_given_data():
    check_model("2l.norm", prior="iw", mh_steps=0)
    check_model("pmm", data=example_data("numeric", multilevel=False, rng=3), donors=2)


# -- check_model catches models that break the contract -----------------------------------
class _MutatesState(Norm):
    def step(self, rng, state, data):
        new = super().step(rng, state, data)
        if state is not None:
            state.beta[0] += 1.0  # modifies the state it was given
        return new


class _UnnamedTrace(Norm):
    def param_names(self, data):
        return super().param_names(data)[:-1]


class _ForeignRng(Norm):
    def draw_missing(self, rng, state, data):
        return super().draw_missing(np.random.default_rng(), state, data)  # not the rng given


@dataclasses.dataclass  # not frozen
class _LooseState:
    inner: NormState


class _LooseStateModel(Norm):
    def init(self, rng, data):
        return _LooseState(self.gibbs(rng, None, data, data.y_obs))

    def step(self, rng, state, data):
        return _LooseState(super().step(rng, state.inner, data))

    def draw_missing(self, rng, state, data):
        return super().draw_missing(rng, state.inner, data)

    def param_vector(self, state, data):
        return super().param_vector(state.inner, data)


class _MutatesData(Norm):
    def step(self, rng, state, data):
        data.y_obs[0] += 1.0
        return super().step(rng, state, data)


class _BadRandomEffects(Norm):
    def random_effect_names(self, data):
        return ["Intercept"]


@pytest.mark.parametrize(
    "cls, message",
    [
        (_MutatesState, "modified the state"),
        (_UnnamedTrace, "param_vector has shape"),
        (_ForeignRng, "same generator"),
        (_LooseStateModel, "not a frozen dataclass"),
        (_MutatesData, "data were modified"),
        (_BadRandomEffects, "random_effects"),
    ],
)
def test_check_model_catches_broken_models(monkeypatch, cls, message):
    info = dataclasses.replace(get_model("norm"), name="broken", factory=cls)
    monkeypatch.setitem(model_base._REGISTRY, "broken", info)
    with pytest.raises(AssertionError, match=message):
        check_model("broken")


# -- the default table ------------------------------------------------------------------------
def test_default_table_declared_once_per_slot():
    expected = {  # (kind, level, multilevel) -> model: what the two old tables held
        ("numeric", 1, False): "norm",
        ("numeric", 1, True): "2l.norm",
        ("numeric", 2, False): "2lonly.norm",
        ("binary", 1, False): "bin",
        ("binary", 1, True): "2l.bin",
        ("binary", 2, False): "2lonly.bin",
        ("ordinal", 1, False): "ordinal",
        ("ordinal", 1, True): "2l.ordinal",
        ("ordinal", 2, False): "2lonly.ordinal",
        ("nominal", 1, False): "nominal",
        ("nominal", 1, True): "2l.nominal",
        ("nominal", 2, False): "2lonly.nominal",
    }
    for slot, name in expected.items():
        assert default_for(*slot) == name
        info = get_model(name)
        assert slot[0] in info.kinds and info.level == slot[1] and info.multilevel == slot[2]
    assert default_for("numeric", 1, True, "codes") == "2l.pmm"
    assert default_for("numeric", 1, True, "heteroscedastic") == "2l.norm.het"
    assert default_for("binary", 1, True, "codes") == "2l.bin"  # falls back to the plain one
    assert default_for("binary", 1, True, "heteroscedastic") is None
    assert default_for("other", 1, True) is None
    assert len(default_table()) == len(expected) + 4  # 3 pmm, 1 heteroscedastic


def test_a_slot_cannot_be_claimed_twice():
    with pytest.raises(ValueError, match="already the default slot of 'norm'"):
        register("norm2", multilevel=False, default_for=[("numeric", 1, False)])(
            type("Norm2", (Norm,), {})
        )
    assert "norm2" not in available_models()
    with pytest.raises(ValueError, match="unknown default variant"):
        register("norm3", multilevel=False, default_for=[("numeric", 1, False, "x")])


def test_defaults_views_follow_the_registry():
    from mlimpute.describe import DEFAULT_MODELS
    from mlimpute.spec.defaults import PMM_MODELS, default_method

    assert DEFAULT_MODELS[("binary", 0)] == "bin" and DEFAULT_MODELS[("nominal", 2)] == (
        "2lonly.nominal"
    )
    assert dict(PMM_MODELS) == {"norm": "pmm", "2l.norm": "2l.pmm", "2lonly.norm": "2lonly.pmm"}
    assert default_method("numeric", 0, codes=True) == "pmm"


# -- options --------------------------------------------------------------------------------
def test_model_options_from_the_factory_signature():
    assert model_options("2l.pmm") == {"donors": 5}
    assert set(model_options("2l.norm")) == {
        "prior",
        "prior_scale",
        "nu",
        "mh_steps",
        "mh_step",
        "transform",
    }
    assert model_options("norm") == {"transform": None}  # mlimpute.models.transforms
    with pytest.raises(SpecificationError, match=r"'y'.*no option 'k'.*donors=5"):
        validate_options("y", "pmm", {"k": 3})
    with pytest.raises(SpecificationError, match=r"'2l.norm' for 'y': prior must be"):
        validate_options("y", "2l.norm", {"prior": "flat"})
