"""The contract test of a conditional model, and small data sets to run it on.

:func:`check_model` runs a registered model through what the sampler does with it and
checks every promise of :class:`~mlimpute.models.base.ConditionalModel`; the test suite
runs it over the whole registry. :func:`example_data` builds the data it uses: a small
two-level data set as a model sees it (:class:`ArrayModelData`, the plain-array
implementation of :class:`~mlimpute.models.base.ModelData`), without the sampler.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlimpute.models.base import ConditionalModel, ModelData
from mlimpute.models.registry import get_model
from mlimpute.models.segments import Segments

__all__ = ["ArrayBlock", "ArrayModelData", "example_data", "check_model"]


@dataclass(frozen=True)
class ArrayBlock:
    """A design block of fixed columns (:class:`~mlimpute.models.base.DesignBlock`)."""

    names: list[str]
    obs: np.ndarray
    mis: np.ndarray
    fast: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)
    slow: list[int] = field(default_factory=list)

    @property
    def dynamic(self) -> bool:
        """Never: the columns are fixed arrays."""
        return False

    def cluster_constant(self, codes: np.ndarray) -> np.ndarray:
        """Which columns are constant within clusters on the observed rows."""
        same = codes[1:] == codes[:-1]
        return np.all(self.obs[1:][same] == self.obs[:-1][same], axis=0)


@dataclass(frozen=True)
class ArrayModelData:
    """:class:`~mlimpute.models.base.ModelData` from plain arrays (rows sorted by cluster)."""

    variable: str
    y_obs: np.ndarray
    obs_idx: np.ndarray
    mis_idx: np.ndarray
    X: ArrayBlock
    Z: ArrayBlock | None
    seg_obs: Segments
    codes_mis: np.ndarray
    n_clusters: int
    group: str | None = None
    random_blocks: tuple[tuple[int, ...], ...] = ()
    random_correlated: tuple[bool, ...] = ()
    categories: tuple[Any, ...] | None = None
    cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    extra_terms: tuple = ()  # ExtraTerm: random terms over further grouping factors
    integer: bool = False  # an integer response column (rounded on output)

    @property
    def n_obs(self) -> int:
        return self.y_obs.shape[0]

    @property
    def n_mis(self) -> int:
        return self.mis_idx.shape[0]


def example_data(
    kind: str = "numeric",
    multilevel: bool = True,
    level: int = 1,
    rng: int = 0,
    n_clusters: int = 12,
    cluster_size: int = 8,
) -> ArrayModelData:
    """A small data set as a model sees it, with a quarter of the response missing.

    Level 1: ``n_clusters`` clusters of ``cluster_size`` rows, predictors an intercept, a
    normal ``x`` and a binary ``g``; ``y = 1 + 0.5x + 0.3g + b_0j + b_1j g + e``, with
    random intercepts and ``g`` slopes (one correlated block) when ``multilevel``. Level 2:
    one row per cluster and no random part. ``kind`` discretises y: ``binary`` at its
    median, ``ordinal``/``nominal`` into four categories ``a``–``d`` at its quartiles,
    ``count`` makes it ``Poisson(exp(y/2))`` (a numeric response).

    Examples
    --------
    >>> d = example_data("ordinal", multilevel=False)
    >>> d.n_obs + d.n_mis, d.categories, d.Z is None
    (96, ('a', 'b', 'c', 'd'), True)
    """
    gen = np.random.default_rng(rng)
    J = n_clusters
    n = J * cluster_size if level == 1 else J
    codes = np.repeat(np.arange(J), cluster_size) if level == 1 else np.zeros(n, np.intp)
    x = gen.standard_normal(n)
    g = (gen.random(n) < 0.5).astype(float)
    b = gen.standard_normal((J, 2)) * [0.8, 0.4] if level == 1 else np.zeros((J, 2))
    idx = codes if level == 1 else np.arange(n)
    y = 1 + 0.5 * x + 0.3 * g + b[idx, 0] + b[idx, 1] * g + gen.standard_normal(n)
    categories = None
    if kind == "binary":
        y = (y > np.median(y)).astype(float)
    elif kind in ("ordinal", "nominal"):
        y = np.digitize(y, np.quantile(y, [0.25, 0.5, 0.75])).astype(float)
        categories = ("a", "b", "c", "d")
    elif kind == "count":
        y = gen.poisson(np.exp(y / 2)).astype(float)
    observed = gen.random(n) >= 0.25
    observed[:2] = True  # every kind keeps observed rows
    obs, mis = np.flatnonzero(observed), np.flatnonzero(~observed)
    Xf = np.column_stack([np.ones(n), x, g])
    X = ArrayBlock(["Intercept", "x", "g"], np.asfortranarray(Xf[obs]), np.asfortranarray(Xf[mis]))
    Z, blocks, corr = None, (), ()
    if multilevel and level == 1:
        Zf = np.column_stack([np.ones(n), g])
        Z = ArrayBlock(["Intercept", "g"], np.asfortranarray(Zf[obs]), np.asfortranarray(Zf[mis]))
        blocks, corr = ((0, 1),), (True,)
    n_seg = J if level == 1 else 1
    return ArrayModelData(
        "y",
        y[obs],
        obs,
        mis,
        X,
        Z,
        Segments.from_codes(codes[obs], n_seg),
        codes[mis],
        n_seg,
        "g" if level == 1 else None,
        blocks,
        corr,
        categories,
    )


def _snapshot(x: Any) -> Any:
    """A deep copy of the arrays reachable from a dataclass state (for 'not modified')."""
    return copy.deepcopy(x)


def _same(a: Any, b: Any) -> bool:
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return type(a) is type(b) and all(
            _same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a)
        )
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same(u, v) for u, v in zip(a, b, strict=True))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)
    return a == b or (a != a and b != b)


def _frozen(state: Any) -> bool:
    if not dataclasses.is_dataclass(state):
        return False
    if not state.__dataclass_params__.frozen:
        return False
    return all(
        _frozen(v)
        for f in dataclasses.fields(state)
        if dataclasses.is_dataclass(v := getattr(state, f.name))
    )


def _fail(name: str, what: str) -> AssertionError:
    return AssertionError(f"model {name!r} breaks the model contract: {what}")


def check_model(
    name: str, data: ModelData | None = None, *, steps: int = 3, rng: int = 7, **options: Any
) -> None:
    """Run the model contract test on registered model ``name``.

    For each kind of response the model imputes (or on ``data``; a model class may name
    other :func:`example_data` kinds in an ``example_kinds`` attribute), it checks that the model
    follows :class:`~mlimpute.models.base.ConditionalModel`: every method exists;
    ``check`` accepts the data; ``init``/``step`` return frozen dataclass states and leave
    the previous state and the data unmodified; ``draw_missing`` gives ``n_mis`` finite
    values (observed categories only for categorical responses); the same generator gives
    the same states and draws; traces are named (unique names, one per value, finite);
    ``random_effects`` is (n_clusters, q) with the names of ``random_effect_names``.

    Parameters
    ----------
    name : str
        A registered model name.
    data : ModelData, optional
        Data to run on; default :func:`example_data` for each of the model's kinds.
    steps : int
        Gibbs steps after ``init``.
    rng : int
        Seed of the generators used.
    **options
        Options for the model's factory.

    Raises
    ------
    AssertionError
        Naming the model and the promise it breaks.

    Examples
    --------
    >>> check_model("2l.norm")
    >>> check_model("2l.norm", prior="iw")
    """
    info = get_model(name)
    model = info.factory(**options)
    if not isinstance(model, ConditionalModel):
        missing = [
            m
            for m in (
                "check",
                "init",
                "step",
                "draw_missing",
                "param_names",
                "param_vector",
                "random_effect_names",
                "random_effects",
            )
            if not callable(getattr(model, m, None))
        ]
        raise _fail(name, f"missing method(s) {missing}")
    sets = (
        [data]
        if data is not None
        else [
            example_data(kind, info.multilevel, info.level, rng=rng)
            for kind in getattr(model, "example_kinds", info.kinds)
        ]
    )
    for d in sets:
        _check_on(name, model, d, steps, rng)


def _run(
    model: ConditionalModel, d: ModelData, steps: int, seed: int, name: str
) -> tuple[Any, np.ndarray]:
    gen = np.random.default_rng(seed)
    state = model.init(gen, d)
    if not _frozen(state):
        raise _fail(name, f"init returned {type(state).__name__}, not a frozen dataclass")
    for _ in range(steps):
        before = _snapshot(state)
        new = model.step(gen, state, d)
        if not _same(before, state):
            raise _fail(name, "step modified the state it was given")
        if not _frozen(new):
            raise _fail(name, f"step returned {type(new).__name__}, not a frozen dataclass")
        state = new
    return state, model.draw_missing(gen, state, d)


def _check_on(name: str, model: ConditionalModel, d: ModelData, steps: int, seed: int) -> None:
    where = f"(response kind of {d.variable!r}: categories {d.categories})"
    model.check(d)
    before = _snapshot(
        {k: getattr(d, k) for k in ("y_obs", "obs_idx", "mis_idx", "codes_mis")}
        | {"X": (d.X.obs, d.X.mis), "Z": (d.Z.obs, d.Z.mis) if d.Z is not None else None}
    )
    state, draw = _run(model, d, steps, seed, name)
    after = {k: getattr(d, k) for k in ("y_obs", "obs_idx", "mis_idx", "codes_mis")} | {
        "X": (d.X.obs, d.X.mis),
        "Z": (d.Z.obs, d.Z.mis) if d.Z is not None else None,
    }
    if not _same(before, after):
        raise _fail(name, f"the data were modified {where}")
    draw = np.asarray(draw)
    if draw.shape != (d.n_mis,) or not np.all(np.isfinite(draw)):
        raise _fail(
            name,
            f"draw_missing gave shape {draw.shape} (expected ({d.n_mis},)) "
            f"or non-finite values {where}",
        )
    if d.categories is not None and not set(np.unique(draw)) <= set(np.unique(d.y_obs)):
        raise _fail(name, f"draw_missing gave a category never observed {where}")
    state2, draw2 = _run(model, d, steps, seed, name)
    if not np.array_equal(draw, draw2) or not _same(state, state2):
        raise _fail(name, f"the same generator gave different draws {where}")
    names = model.param_names(d)
    values = np.asarray(model.param_vector(state, d))
    if not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
        raise _fail(name, f"parameter names must be unique strings: {names}")
    if values.shape != (len(names),) or not np.all(np.isfinite(values)):
        raise _fail(
            name,
            f"param_vector has shape {values.shape} for {len(names)} names, "
            f"or non-finite values {where}",
        )
    b, b_names = model.random_effects(state, d)
    if list(b_names) != list(model.random_effect_names(d)):
        raise _fail(name, "random_effects names differ from random_effect_names")
    if np.shape(b) != (d.n_clusters, len(b_names)) or not np.all(np.isfinite(b)):
        raise _fail(
            name,
            f"random_effects has shape {np.shape(b)}, expected "
            f"({d.n_clusters}, {len(b_names)}), or non-finite values {where}",
        )
    if (d.Z is not None) != bool(b_names) and get_model(name).multilevel:
        raise _fail(name, "a multilevel model must report its random effects")
