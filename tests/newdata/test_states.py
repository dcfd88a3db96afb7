"""map_nested: the walk over a model state's nested states."""

from __future__ import annotations

from dataclasses import dataclass

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
