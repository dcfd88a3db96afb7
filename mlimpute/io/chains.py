"""Where each chain stopped, in an imputation file: the group ``chains``.

:meth:`MultiplyImputed.iterate <mlimpute.MultiplyImputed.iterate>` needs, per chain, the
generator state, the last model states and the current imputed values
(:class:`~mlimpute.sampler.engine.ChainState`). They are stored without pickle, so that
opening a file never runs code from it:

* every array (of any chain, state or variable) is appended to one flat variable per dtype
  of the group ``chains`` (``float64``, ``int64``, ``int8`` for booleans...), dimension
  ``n%<dtype>``;
* the group attribute ``mlimpute_chains`` is JSON describing the structure: per chain its
  seed (entropy and spawn key; big integers as decimal strings), the generator state
  (numpy's PCG64 state: two 128-bit integers as decimal strings, plus the buffered 32-bit
  word), the iterations run, the imputed values and the model states. A model state is
  ``{"t": "state", "class": "<module>.<name>", "fields": {...}}``; the class must be a
  dataclass defined in :mod:`mlimpute.models` (an allow-list: anything else is refused),
  nested states, tuples of states (nominal models), ``None``, Python and numpy scalars and
  arrays are described by type, arrays by ``(dtype, shape, offset)`` into the flat variable.

Scalars are stored as one-element arrays of their dtype, so every float comes back with
the same bits (and a numpy scalar stays a numpy scalar).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from typing import Any

import numpy as np
import xarray as xr

from mlimpute.errors import DataError
from mlimpute.io.checks import loads
from mlimpute.sampler.engine import ChainState

__all__ = ["GROUP", "ATTR", "UnsupportedState", "encode_chains", "decode_chains"]

GROUP = "chains"
ATTR = "mlimpute_chains"
_MODELS = "mlimpute.models."
_KINDS = "biuf"  # bool, signed and unsigned integers, floats


class UnsupportedState(TypeError):
    """A chain state holds something this format cannot describe (e.g. the state of a
    model registered from outside mlimpute)."""


class _Buffers:
    def __init__(self) -> None:
        self.parts: dict[str, list[np.ndarray]] = {}
        self.sizes: dict[str, int] = {}

    def add(self, a: np.ndarray) -> dict:
        a = np.asarray(a)
        if a.dtype.kind not in _KINDS or a.dtype.byteorder == ">":
            raise UnsupportedState(f"an array of dtype {a.dtype}")
        store = np.dtype("int8") if a.dtype.kind == "b" else a.dtype
        key = store.name
        flat = np.ascontiguousarray(a, dtype=store).reshape(-1)
        off = self.sizes.get(key, 0)
        self.parts.setdefault(key, []).append(flat)
        self.sizes[key] = off + flat.size
        return {"t": "array", "dtype": a.dtype.name, "shape": list(a.shape), "offset": off}


def _encode(obj: Any, buf: _Buffers) -> Any:
    if obj is None:
        return {"t": "none"}
    if isinstance(obj, np.ndarray):
        return buf.add(obj)
    if isinstance(obj, np.generic):
        return {"t": "npscalar", "a": buf.add(np.asarray(obj))}
    if isinstance(obj, bool):
        return {"t": "bool", "v": obj}
    if isinstance(obj, int):
        return {"t": "int", "v": str(obj)}
    if isinstance(obj, float):
        return {"t": "float", "a": buf.add(np.asarray(obj, dtype=np.float64))}
    if isinstance(obj, str):
        return {"t": "str", "v": obj}
    if isinstance(obj, (tuple, list)):
        return {"t": type(obj).__name__, "items": [_encode(x, buf) for x in obj]}
    if isinstance(obj, dict) and all(isinstance(k, str) for k in obj):
        return {"t": "dict", "items": {k: _encode(v, buf) for k, v in obj.items()}}
    cls = type(obj)
    if dataclasses.is_dataclass(obj) and cls.__module__.startswith(_MODELS):
        return {
            "t": "state",
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "fields": {f.name: _encode(getattr(obj, f.name), buf) for f in dataclasses.fields(obj)},
        }
    raise UnsupportedState(f"an object of type {cls.__module__}.{cls.__qualname__}")


def _state_class(name: str) -> type:
    """The dataclass ``name`` of mlimpute's models (the allow-list), never anything else."""
    module, _, qual = name.rpartition(".")
    if not module.startswith(_MODELS) or not qual.isidentifier():
        raise DataError(f"a chain state names the class {name!r}, which is not a model state")
    try:
        cls = getattr(importlib.import_module(module), qual)
    except (ImportError, AttributeError):
        raise DataError(
            f"a chain state names the class {name!r}, which this mlimpute does not have"
        ) from None
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise DataError(f"a chain state names {name!r}, which is not a model state class")
    return cls


def _decode(doc: Any, arrays: dict[str, np.ndarray]) -> Any:
    t = doc["t"]
    if t == "none":
        return None
    if t == "array":
        dtype = np.dtype(str(doc["dtype"]))
        if dtype.kind not in _KINDS:
            raise DataError(f"a chain state has an array of dtype {dtype}")
        store = np.dtype("int8") if dtype.kind == "b" else dtype
        shape = tuple(int(s) for s in doc["shape"])
        off, size = int(doc["offset"]), int(np.prod(shape, dtype=np.int64))
        flat = arrays[store.name]
        if off < 0 or off + size > flat.size:
            raise DataError("a chain state points outside its stored values")
        return flat[off : off + size].astype(dtype).reshape(shape)
    if t == "npscalar":
        return _decode(doc["a"], arrays)[()]
    if t == "float":
        return float(_decode(doc["a"], arrays))
    if t == "bool":
        return bool(doc["v"])
    if t == "int":
        return int(doc["v"])
    if t == "str":
        return str(doc["v"])
    if t in ("tuple", "list"):
        items = [_decode(x, arrays) for x in doc["items"]]
        return tuple(items) if t == "tuple" else items
    if t == "dict":
        return {str(k): _decode(v, arrays) for k, v in doc["items"].items()}
    if t == "state":
        cls = _state_class(doc["class"])
        names = {f.name for f in dataclasses.fields(cls)}
        fields = doc["fields"]
        if set(fields) - names:
            raise DataError(f"a chain state of {doc['class']} has unknown fields")
        return cls(**{k: _decode(v, arrays) for k, v in fields.items()})
    raise DataError(f"a chain state has an unknown entry type {t!r}")


def _rng_doc(state: dict) -> dict:
    if state.get("bit_generator") != "PCG64":
        raise UnsupportedState(f"a {state.get('bit_generator')} generator")
    return {
        "bit_generator": "PCG64",
        "state": str(state["state"]["state"]),
        "inc": str(state["state"]["inc"]),
        "has_uint32": int(state["has_uint32"]),
        "uinteger": str(state["uinteger"]),
    }


def _rng_state(doc: dict) -> dict:
    if doc.get("bit_generator") != "PCG64":
        raise DataError(f"a chain's generator is {doc.get('bit_generator')!r}, not PCG64")
    return {
        "bit_generator": "PCG64",
        "state": {"state": int(doc["state"]), "inc": int(doc["inc"])},
        "has_uint32": int(doc["has_uint32"]),
        "uinteger": int(doc["uinteger"]),
    }


def _seed_doc(seed: np.random.SeedSequence) -> dict:
    ent = seed.entropy
    if isinstance(ent, (int, np.integer)):
        entropy: Any = str(int(ent))
    else:
        entropy = [str(int(e)) for e in ent]
    return {
        "entropy": entropy,
        "spawn_key": [int(k) for k in seed.spawn_key],
        "pool_size": int(seed.pool_size),
    }


def _seed(doc: dict) -> np.random.SeedSequence:
    ent = doc["entropy"]
    entropy = int(ent) if isinstance(ent, str) else [int(e) for e in ent]
    return np.random.SeedSequence(
        entropy, spawn_key=tuple(int(k) for k in doc["spawn_key"]), pool_size=int(doc["pool_size"])
    )


def encode_chains(chains: list[ChainState]) -> xr.Dataset:
    """The group ``chains`` of a file: flat arrays per dtype, the structure as JSON.

    Raises
    ------
    UnsupportedState
        If a state holds something this format cannot describe.
    """
    buf = _Buffers()
    docs = [
        {
            "seed": _seed_doc(c.seed),
            "rng": _rng_doc(c.rng),
            "iterations": int(c.iterations),
            "imputed": _encode(dict(c.imputed), buf),
            "states": _encode(dict(c.states), buf),
        }
        for c in chains
    ]
    data_vars = {
        key: (f"n%{key}", np.concatenate(parts)) for key, parts in sorted(buf.parts.items())
    }
    return xr.Dataset(data_vars, attrs={ATTR: json.dumps({"version": 1, "chains": docs})})


def decode_chains(ds: xr.Dataset) -> list[ChainState]:
    """The chain states of a file's group ``chains`` (see the module docstring).

    Raises
    ------
    DataError
        If the description is damaged or names a class that is not a model state.
    """
    try:
        doc = loads(ds.attrs[ATTR], f"the attribute {ATTR!r} of the group 'chains'")
    except DataError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"the group 'chains' has no readable {ATTR!r} attribute") from exc
    if not isinstance(doc, dict) or int(doc.get("version", 0)) != 1:
        raise DataError("the group 'chains' was written in an unknown layout")
    arrays = {str(k): np.asarray(v.values).reshape(-1) for k, v in ds.data_vars.items()}
    out = []
    for c in doc["chains"]:
        out.append(
            ChainState(
                _seed(c["seed"]),
                int(c["iterations"]),
                _decode(c["imputed"], arrays),
                _decode(c["states"], arrays),
                _rng_state(c["rng"]),
            )
        )
    return out
