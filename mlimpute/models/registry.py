"""The registry of conditional models and the default table.

Every model is registered by name with :func:`register`, which also declares the variables
it is the default for (``default_for=``, one slot per (kind, level, multilevel, variant),
each claimed by one model only). :func:`get_model` finds a model by name (listing the
names that exist when it does not), :func:`default_for` the default model of a variable,
and :func:`validate_options` checks a model's keyword options against its factory's
signature when the specification is built. The protocols the registered models follow are
in :mod:`mlimpute.models.base`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

from mlimpute.errors import SpecificationError
from mlimpute.models.base import ConditionalModel

__all__ = [
    "ModelInfo",
    "DefaultSlot",
    "DefaultView",
    "register",
    "get_model",
    "available_models",
    "default_for",
    "default_table",
    "model_options",
    "validate_options",
    "register_multi_term",
    "multi_term_model",
]


# -- the registry ----------------------------------------------------------------------------
class DefaultSlot(NamedTuple):
    """Which variables a model is the default for.

    Attributes
    ----------
    kind : str
        ``"numeric"``, ``"binary"``, ``"ordinal"`` or ``"nominal"``
        (:func:`mlimpute.codec.column_kind`).
    level : int
        1 (row-level variable) or 2 (constant within clusters, modelled on cluster rows).
    multilevel : bool
        Whether the variable's formula has a random part.
    variant : str
        ``""`` for the plain default; ``"codes"`` for numeric columns holding integer codes
        (:func:`mlimpute.spec.defaults.integer_codes`), ``"heteroscedastic"`` for
        ``heteroscedastic=``.
    """

    kind: str
    level: int
    multilevel: bool
    variant: str = ""


VARIANTS = ("", "codes", "heteroscedastic")


@dataclass(frozen=True)
class ModelInfo:
    """Registry entry: how to build a model and what it accepts.

    Attributes
    ----------
    name : str
        The ``method=`` name (mice's names where one exists).
    factory : callable
        ``factory(**options) -> ConditionalModel``; its keyword parameters are the model's
        options (:func:`model_options`).
    multilevel : bool
        Whether the model uses the formula's random part.
    level : int
        1 for row-level variables, 2 for cluster-level ones.
    kinds : tuple of str
        Response kinds it imputes: ``"numeric"``, ``"binary"``, ``"ordinal"``, ``"nominal"``.
    description : str
    default_for : tuple of DefaultSlot
        The variables this model is the default for.
    aliases : tuple of str
    """

    name: str
    factory: Callable[..., ConditionalModel]
    multilevel: bool
    level: int
    kinds: tuple[str, ...]
    description: str
    default_for: tuple[DefaultSlot, ...] = field(default=())
    aliases: tuple[str, ...] = field(default=())


_REGISTRY: dict[str, ModelInfo] = {}
_DEFAULTS: dict[DefaultSlot, str] = {}
_MULTI_TERM: dict[str, Callable[..., ConditionalModel]] = {}

C = TypeVar("C", bound=type)


def register(
    name: str,
    *,
    multilevel: bool,
    level: int = 1,
    kinds: tuple[str, ...] = ("numeric",),
    aliases: tuple[str, ...] = (),
    default_for: Iterable[tuple] = (),
) -> Callable[[C], C]:
    """Class decorator adding a conditional model to the registry under ``name``.

    Parameters
    ----------
    name : str
        The ``method=`` name.
    multilevel : bool
        Whether the model needs a random part in its formula.
    level : int
        1 for row-level variables, 2 for models fitted on one row per cluster.
    kinds : tuple of str
        Response kinds it can impute.
    aliases : tuple of str
        Other names for ``method=``.
    default_for : iterable of tuple
        :class:`DefaultSlot` tuples ``(kind, level, multilevel[, variant])``: the variables
        this model is the default for. Each slot has one model; a second claim fails.

    Returns
    -------
    callable
        The decorator; it also sets the class attribute ``info`` (its :class:`ModelInfo`).

    Examples
    --------
    >>> from mlimpute.models.norm import Norm
    >>> Norm.info.name, Norm.info.default_for[0]
    ('norm', DefaultSlot(kind='numeric', level=1, multilevel=False, variant=''))
    """
    slots = tuple(DefaultSlot(*s) for s in default_for)
    for s in slots:
        if s.variant not in VARIANTS:
            raise ValueError(f"{name}: unknown default variant {s.variant!r}; one of {VARIANTS}")

    def deco(cls: C) -> C:
        doc = (cls.__doc__ or "").strip().splitlines()
        info = ModelInfo(
            name, cls, multilevel, level, tuple(kinds), doc[0] if doc else "", slots, tuple(aliases)
        )
        for key in (name, *aliases):
            if key in _REGISTRY:
                raise ValueError(f"model name {key!r} registered twice")
        for s in slots:
            if s in _DEFAULTS:
                raise ValueError(f"{name}: {s} is already the default slot of {_DEFAULTS[s]!r}")
        for key in (name, *aliases):
            _REGISTRY[key] = info
        for s in slots:
            _DEFAULTS[s] = name
        cls.info = info
        return cls

    return deco


def register_multi_term(name: str) -> Callable[[C], C]:
    """Class decorator: the class is model ``name``'s version for several random-effect
    terms (formulas with several grouping factors, e.g. ``(1 | school) + (1 | class)``).

    The class takes the same options as ``name``'s factory and sets ``multi_term = True``;
    with one grouping factor ``name`` itself runs.

    Parameters
    ----------
    name : str
        A registered model name (not an alias).

    Returns
    -------
    callable
        The decorator.

    Examples
    --------
    >>> multi_term_model("2l.norm").__name__
    'MultiTermNorm'
    """

    def deco(cls: C) -> C:
        if not getattr(cls, "multi_term", False):
            raise ValueError(f"{cls.__name__} must set multi_term = True")
        if name in _MULTI_TERM:
            raise ValueError(f"{name!r} has a several-terms version already")
        _MULTI_TERM[name] = cls
        return cls

    return deco


def multi_term_model(name: str) -> Callable[..., ConditionalModel] | None:
    """The factory of model ``name`` (or an alias) for several random-effect terms, or
    None where it has none.

    Examples
    --------
    >>> multi_term_model("2l.pan") is multi_term_model("2l.norm"), multi_term_model("norm")
    (True, None)
    """
    info = _REGISTRY.get(name)
    return _MULTI_TERM.get(info.name if info is not None else name)


def get_model(name: str) -> ModelInfo:
    """Look a model up by name; unknown names fail listing the names that exist.

    Examples
    --------
    >>> get_model("2l.pan").name
    '2l.norm'
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise SpecificationError(
            f"unknown imputation method {name!r}; available: {', '.join(available_models())}"
        ) from None


def available_models() -> list[str]:
    """Names of all registered models (aliases included), sorted.

    Examples
    --------
    >>> "2l.norm" in available_models()
    True
    """
    return sorted(_REGISTRY)


def default_for(kind: str, level: int, multilevel: bool, variant: str = "") -> str | None:
    """The default model for a variable, as declared by :func:`register`.

    Parameters
    ----------
    kind : str
        ``"numeric"``, ``"binary"``, ``"ordinal"`` or ``"nominal"``.
    level : int
        1 or 2.
    multilevel : bool
        Whether the variable's formula has a random part.
    variant : str
        ``"codes"`` or ``"heteroscedastic"`` (see :class:`DefaultSlot`); a variant nobody
        claims falls back to the plain default for ``"codes"`` and gives None otherwise.

    Returns
    -------
    str or None
        None where no model is the default (e.g. ``kind="other"``).

    Examples
    --------
    >>> default_for("binary", 1, True), default_for("numeric", 2, False, "codes")
    ('2l.bin', '2lonly.pmm')
    """
    name = _DEFAULTS.get(DefaultSlot(kind, level, multilevel, variant))
    if name is None and variant == "codes":
        name = _DEFAULTS.get(DefaultSlot(kind, level, multilevel))
    return name


def default_table() -> dict[DefaultSlot, str]:
    """Every declared default: ``{DefaultSlot: model name}`` (a copy).

    Examples
    --------
    >>> default_table()[DefaultSlot("ordinal", 1, True)]
    '2l.ordinal'
    """
    return dict(_DEFAULTS)


class DefaultView(Mapping):
    """A read-only, live view of the default table under other keys.

    ``key_of(slot)`` maps a :class:`DefaultSlot` to this view's key (or None to leave the
    slot out); later registrations show up.
    """

    def __init__(self, key_of: Callable[[DefaultSlot], Hashable | None]) -> None:
        self._key_of = key_of

    def _items(self) -> dict:
        out = {}
        for slot, name in _DEFAULTS.items():
            key = self._key_of(slot)
            if key is not None:
                out[key] = name
        return out

    def __getitem__(self, key: Hashable) -> str:
        return self._items()[key]

    def __iter__(self) -> Iterator:
        return iter(self._items())

    def __len__(self) -> int:
        return len(self._items())

    def __repr__(self) -> str:
        return repr(self._items())


# -- options ---------------------------------------------------------------------------------
def model_options(name: str) -> dict[str, Any]:
    """The keyword options of model ``name`` and their defaults (from its factory).

    Examples
    --------
    >>> model_options("2l.norm")["prior"]
    'half-t'
    """
    sig = inspect.signature(get_model(name).factory)
    return {
        p.name: p.default
        for p in sig.parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def validate_options(variable: str, name: str, options: Mapping[str, Any]) -> ConditionalModel:
    """Build model ``name`` with ``options``; a bad option is a SpecificationError.

    Parameters
    ----------
    variable : str
        The imputed column (for the message).
    name : str
        A registered model name.
    options : mapping
        Keyword options for the model's factory.

    Returns
    -------
    ConditionalModel
        The model built (a check that the options are valid).

    Raises
    ------
    SpecificationError
        Unknown option (naming the variable, the model and its options) or a value the
        factory refuses.

    Examples
    --------
    >>> validate_options("grade", "2l.norm", {"prior": "iw"}).prior
    'iw'
    """
    info = get_model(name)
    known = model_options(name)
    unknown = [k for k in options if k not in known]
    if unknown:
        valid = ", ".join(f"{k}={v!r}" for k, v in known.items()) or "none"
        raise SpecificationError(
            f"method {name!r} for {variable!r} has no option {unknown[0]!r}; its options "
            f"(with defaults) are: {valid}"
        )
    try:
        return info.factory(**options)
    except (TypeError, ValueError) as exc:
        raise SpecificationError(f"method {name!r} for {variable!r}: {exc}") from None
