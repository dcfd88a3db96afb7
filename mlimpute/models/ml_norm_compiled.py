"""The kernels' Gibbs step of :class:`~mlimpute.models.ml_norm.MultilevelNorm`, compiled
or in numpy: where it runs, and what it is given.

The step is written twice with the same numbers bit for bit: the compiled (numba)
kernels (:mod:`mlimpute.models.kernels`) and their numpy twins
(:mod:`mlimpute.models.ordered`). This module serves both: every call takes the backend
:func:`mlimpute._numba.enabled` selects at that moment (``_k``), which changes the speed
only, never a result. Importing this module does not import numba: the compiled backend
imports it where it is selected (numba installed and loaded, or ``MLIMPUTE_NUMBA=1``),
so numba stays an optional dependency. Here are

* :func:`usable` and :func:`compiled_draws`: the models and data they serve;
* :func:`step_chains` and :func:`draw_missing_chains`: a step, and the missing values'
  draws, of C chains by one kernel call, from and into
  :class:`~mlimpute.models.ml_norm.MultilevelNormState` objects;
* for a random intercept with a changing design, the sums of the columns no imputation
  changes, computed once (``_Fixed.split``), so that each step sums only the changing
  columns again (:func:`~mlimpute.models.kernels.sums.intercept_sums`); the kernels
  read those fixed columns from the one design the chains share;
* what the kernels are given without copying: the fixed arrays of a model's data as
  read-only views (kept in ``data.cache``), the chains' changing designs as typed lists
  of views of the arrays the sampler refreshes in place, the generators as a typed list,
  and the stacked arrays the last step made its states from (each kept while it is
  used: building a typed list costs about 10 us an element); the numpy twins take plain
  lists of the same arrays.
"""

from __future__ import annotations

import functools
import operator
import threading
import types
import weakref
from typing import Any

import numpy as np

from mlimpute import _numba
from mlimpute.models._ml_norm_static import static
from mlimpute.models.base import ModelData

__all__ = [
    "ChainKernels",
    "usable",
    "compiled_draws",
    "prepare",
    "step_chains",
    "draw_missing_chains",
    "stacked",
]


@functools.lru_cache(maxsize=2)
def _backend(compiled: bool) -> types.SimpleNamespace:
    """The step's functions: the compiled kernels (:mod:`mlimpute.models.kernels`) or
    their numpy twins (:mod:`mlimpute.models.ordered`), which give the same numbers;
    ``seq`` makes the sequences of arrays they take (a numba typed list, or a list).
    The kernels that also place and trace the draws (``step_draw_place``,
    ``draw_place``) serve only the compiled design refresh of the sampler, which runs
    with the compiled step: the numpy backend has none."""
    if compiled:
        from numba.typed import List

        from mlimpute.models.kernels import draws, fused, step, sums

        placing = (fused.step_draw_place, draws.draw_place)
    else:
        from mlimpute.models.ordered import draws, fused, step, sums

        List = list  # noqa: N806 - the name of numba's typed list, for both
        placing = (None, None)
    return types.SimpleNamespace(
        step=step.step,
        step_intercept=fused.step_intercept,
        step_draw_place=placing[0],
        draw_missing=draws.draw_missing,
        draw_place=placing[1],
        design_sums=sums.design_sums,
        fixed_columns=sums.fixed_columns,
        response_sums=sums.response_sums,
        sum_of_squares=sums.sum_of_squares,
        seq=List,
        compiled=compiled,
    )


def _k() -> types.SimpleNamespace:
    """The backend the switch selects now (:func:`mlimpute._numba.enabled`)."""
    return _backend(_numba.enabled())


def _seq(k: types.SimpleNamespace, arrays: Any) -> Any:
    """``arrays`` as backend ``k`` takes a sequence of arrays (a typed list made where a
    compiled kernel gets another sequence, kept by the caller's cache otherwise)."""
    if k.compiled and type(arrays) is not k.seq:
        return k.seq(list(arrays))
    return arrays


def usable(model: Any, data: ModelData) -> bool:
    """Whether the kernels run the Gibbs step of ``model`` (a
    :class:`~mlimpute.models.ml_norm.MultilevelNorm` with the half-t prior) on ``data``:
    one random part that the imputations do not change, a random intercept (also where
    the numpy step splits the design: the kernel needs no split) or two or more columns,
    with the collapsed Metropolis-Hastings step only for one correlated 2x2 block."""
    if not compiled_draws(data):
        return False
    st = static(data)
    if not st.ones and st.q < 2:
        return False
    if not (model.mh_steps and st.mh):
        return True
    return st.q == 2 and data.random_correlated == (True,)


def compiled_draws(data: ModelData) -> bool:
    """Whether :func:`draw_missing_chains` draws the missing values of ``data`` (one
    primary random part that the imputations do not change)."""
    return (
        not data.extra_terms
        and data.Z is not None
        and data.Z.obs.shape[1] > 0
        and static(data).ZtZ is not None
    )


def prepare(model: Any, data: ModelData) -> None:
    """The kernels' fixed arrays of ``data`` built now, from ``data`` itself (the plan's
    own design, which the chains' copies share): so that they never keep a view of a
    block's arrays (:mod:`mlimpute.sampler.batched_values`) alive after the block."""
    if usable(model, data):
        _Fixed.of(data)
        _MissingRows.of(data)


def _built_again() -> None:
    """What a pickled :class:`_Fixed` or :class:`_MissingRows` becomes: nothing, so that a
    process that receives the data (a pool's worker) builds its own from its copy of the
    data, the same arrays (typed lists do not pickle)."""
    return None


class _PerData:
    """Arrays built once per model data and kept in its ``cache`` under :attr:`KEY`;
    pickled as nothing, so that a process that receives the data builds them again."""

    KEY = ""

    def __reduce__(self) -> tuple:
        return (_built_again, ())

    @classmethod
    def of(cls, data: ModelData):
        got = data.cache.get(cls.KEY)
        if got is None:
            got = data.cache[cls.KEY] = cls(data)
        return got


class _Fixed(_PerData):
    """The arrays of ``data`` the step kernel reads that do not change in a run (kept in
    ``data.cache``, shared by the chains): codes, Z', y, Z'Z, Z'y, the covariance blocks,
    and for a fixed design X' and its sums."""

    KEY = "ml_norm_kernel"

    def __init__(self, data: ModelData) -> None:
        self.J = data.n_clusters
        self.codes = _read_only(data.seg_obs.codes, np.int64)
        self.ZT = _read_only(data.Z.obs.T)
        self.y = _read_only(data.y_obs)
        self.ZtZ = _read_only(static(data).ZtZ)
        blocks = [
            g
            for cols, correlated in zip(data.random_blocks, data.random_correlated, strict=True)
            for g in ([list(cols)] if correlated else [[c] for c in cols])
        ]
        self.bidx = np.array([i for g in blocks for i in g], dtype=np.int64)
        self.bptr = np.cumsum([0] + [len(g) for g in blocks]).astype(np.int64)
        self.dynamic = bool(data.X.dynamic)
        k = _k()
        self.Zty = k.response_sums(self.y, self.codes, self.ZT, self.J)
        self.yty = k.sum_of_squares(self.y) if static(data).ones else 0.0
        # the design as the chains share it (its fixed columns) and its changing columns
        self.XT0 = _read_only(data.X.obs.T)
        self.dmask = _changing(data)
        if not self.dynamic:  # every chain's design, and its sums
            self.XTs = k.seq([_read_only(data.X.obs.T)])
            self.sums = k.design_sums(self.XTs, self.y, self.codes, self.ZT, self.J)
        self.split = None
        if self.dynamic and static(data).ones:  # what intercept_sums takes
            X = data.X
            dyn = np.flatnonzero(self.dmask)
            const = X.cluster_constant(data.seg_obs.codes)
            ptr = np.searchsorted(self.codes, np.arange(self.J + 1)).astype(np.int64)
            first = np.where(ptr[:-1] < ptr[1:], ptr[:-1], -1).astype(np.int64)
            base = k.design_sums(k.seq([self.XT0]), self.y, self.codes, self.ZT, self.J)
            by_column = k.fixed_columns(self.XT0, base[0][0], first, const.astype(np.bool_))
            self.split = (
                self.XT0,
                self.dmask,
                self.Zty[:, 0].copy(),
                ptr,
                first,
                np.diff(ptr).astype(np.float64),
                np.array(dyn, dtype=np.int64),
                const.astype(np.bool_),
                base[0][0],
                base[1][0],
                base[2][0],
                *by_column,
            )


class _MissingRows(_PerData):
    """What the draw kernel reads of the missing rows (kept in ``data.cache``): their
    cluster codes, Z' and, for a fixed design, X'; which columns of X and Z are ones
    there (the kernel adds those terms without reading them)."""

    KEY = "ml_norm_kernel_mis"

    def __init__(self, data: ModelData) -> None:
        self.codes = _read_only(data.codes_mis, np.int32)  # int32: half the memory read
        self.ZT = _read_only(data.Z.mis.T)
        self.dynamic = bool(data.X.dynamic)
        self.XT0 = _read_only(data.X.mis.T)
        self.dmask = _changing(data)
        # columns of ones (the intercept) and a Z of ones on these rows: not read
        self.unit = ~self.dmask & np.all(self.XT0 == 1.0, axis=1)
        self.ones = self.ZT.shape[0] == 1 and bool(np.all(self.ZT == 1.0))
        if not self.dynamic:
            self.XTs = _k().seq([self.XT0])


def _changing(data: ModelData) -> np.ndarray:
    """Which columns of ``data``'s fixed design the imputations change (bool, one per
    column): the others the kernels read from the design the chains share."""
    out = np.zeros(data.X.obs.shape[1], dtype=np.bool_)
    out[[c for c, _ in data.X.fast] + list(data.X.slow)] = True
    return out


_ones: weakref.ref | None = None


def _ones_row(k: int) -> np.ndarray:
    """A read-only (1, k) C-ordered row of ones: a view of one buffer the kernels' arrays
    of every design share (a new buffer where the current one is too short)."""
    global _ones
    base = _ones() if _ones is not None else None
    if base is None or base.size < k:
        base = np.ones(k)
        base.flags.writeable = False
        _ones = weakref.ref(base)
    return base[None, :k]


def _read_only(a: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """``a`` as the kernels take their fixed arrays (they are compiled for one kind):
    C-ordered and read-only; a read-only view where ``a`` is C-ordered already (the
    transposed designs, stored in Fortran order), else a copy."""
    if a.dtype == dtype and a.flags.c_contiguous:
        out = a.view()
    elif a.ndim == 2 and a.shape[0] == 1 and a.size and not any(a.strides) and a[0, 0] == 1.0:
        # a random intercept's row of ones (one value broadcast): the process's shared one
        out = _ones_row(a.shape[1])
    else:
        out = np.array(a, dtype=dtype, order="C")
    out.flags.writeable = False
    return out


# Caches of the Python-side objects the kernels take (objects held, so their ids stay
# theirs); changed under a lock, as chains may run in threads.
_LOCK = threading.Lock()
_VIEWS: dict[tuple[int, str], tuple[tuple[np.ndarray, ...], Any]] = {}


def _keep(cache: dict, key: Any, value: Any, size: int) -> None:
    """``cache[key] = value``, dropping the oldest entry beyond ``size``."""
    cache.pop(key, None)
    if len(cache) >= size:
        cache.pop(next(iter(cache)))
    cache[key] = value


def _designs(k: types.SimpleNamespace, datas: list[ModelData], rows: str = "obs") -> Any:
    """The chains' changing designs as a typed list of transposed views (p, n), which
    read the arrays the sampler refreshes in place. Kept while ``datas[0]`` lives, as
    building one costs ~10 us an array; a design that is not Fortran-ordered is copied
    (and not kept)."""
    arrays = tuple(getattr(d.X, rows) for d in datas)
    key = (id(datas[0]), rows, k.compiled)
    got = _VIEWS.get(key)
    if got is not None and len(got[0]) == len(arrays) and all(map(operator.is_, got[0], arrays)):
        return got[1]
    views = [_read_only(a.T) for a in arrays]
    typed = k.seq(views)
    if any(not np.may_share_memory(v, a) for v, a in zip(views, arrays, strict=True)):
        return typed  # copies: they would not follow the refreshes, so not kept
    with _LOCK:
        if key not in _VIEWS:
            weakref.finalize(datas[0], _VIEWS.pop, key, None)
        _VIEWS[key] = (arrays, typed)
    return typed


_GENERATORS: dict[tuple[int, ...], tuple[tuple[Any, ...], Any]] = {}


def _typed(k: types.SimpleNamespace, rngs: list[np.random.Generator]) -> Any:
    """The generators as backend ``k`` takes them: a numba typed list (building one costs
    ~10 us a generator, so the last few are kept; the list shares each generator's
    state), or the list itself."""
    if not k.compiled:
        return rngs
    key = tuple(map(id, rngs))
    got = _GENERATORS.get(key)
    if got is not None and len(got[0]) == len(rngs) and all(map(operator.is_, got[0], rngs)):
        return got[1]
    typed = k.seq(rngs)
    with _LOCK:
        _keep(_GENERATORS, key, (tuple(rngs), typed), 64)
    return typed


_STACKS: dict[tuple[int, ...], tuple[tuple[Any, ...], dict[str, np.ndarray]]] = {}


def stacked(states: list) -> dict[str, np.ndarray]:
    """The states' arrays stacked over the chains; for states that :func:`step_chains`
    made, the arrays it made them from (the last few are kept)."""
    got = _STACKS.get(tuple(map(id, states)))
    if got is not None and len(got[0]) == len(states) and all(map(operator.is_, got[0], states)):
        return got[1]
    out = {
        f: np.stack([getattr(s, f) for s in states]).astype(np.float64, copy=False)
        for f in ("beta", "b", "psi", "alpha", "scale")
    }
    out["sigma2"] = np.array([s.sigma2 for s in states], dtype=np.float64)
    out["floor"] = np.array([s.sigma2_floor for s in states], dtype=np.float64)
    return out


def _state_args(old: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """The stacked states' arrays in the order the step kernels take them."""
    return old["sigma2"], old["psi"], old["alpha"], old["scale"], old["floor"], old["beta"]


def step_chains(
    model: Any, rngs: list[np.random.Generator], states: list, datas: list[ModelData], make: Any
) -> list:
    """One Gibbs step of every chain, ``model.step(rngs[c], states[c], datas[c])``, by one
    kernel call (:func:`usable` models); ``make`` is the class of the states
    (:class:`~mlimpute.models.ml_norm.MultilevelNormState`, a dataclass)."""
    fx = _Fixed.of(datas[0])
    k = _k()
    C = len(states)
    if fx.dynamic:
        XTs = _designs(k, datas)
        if fx.split is not None:  # only the changing columns summed again, in the step call
            ZtX = np.empty((C, fx.J, 1, fx.XT0.shape[0]))
            kernel, sums = k.step_intercept, (fx.split, ZtX, False)
        else:
            kernel, sums = k.step, k.design_sums(XTs, fx.y, fx.codes, fx.ZT, fx.J)
        xk = np.arange(C, dtype=np.int64)
    else:
        XTs = _seq(k, fx.XTs)
        kernel, sums = k.step, fx.sums
        xk = np.zeros(C, dtype=np.int64)
    st = static(datas[0])
    mh = model.mh_steps if st.mh else 0
    old = stacked(states)
    beta, mean, b, b_mean, s2, psi, alpha, status = kernel(
        _typed(k, rngs),
        XTs,
        xk,
        fx.y,
        fx.codes,
        fx.ZT,
        fx.ZtZ,
        fx.Zty,
        *sums,
        *_state_args(old),
        model.nu,
        mh,
        model.mh_step,
        fx.bidx,
        fx.bptr,
        st.ones,
        fx.XT0,
        fx.dmask,
        fx.yty,
    )
    if status:
        raise np.linalg.LinAlgError(
            f"chain {status - 1}: the fixed effects' precision is not positive definite"
        )
    drawn = (beta, mean, b, b_mean, s2, psi, alpha)
    new = [_new_state(make, s, c, *drawn) for c, s in enumerate(states)]
    stacks = _stacks_of(drawn, old)
    with _LOCK:
        # the states stepped from are superseded: their stacks are not kept alive with them
        _STACKS.pop(tuple(map(id, states)), None)
        _keep(_STACKS, tuple(map(id, new)), (tuple(new), stacks), 16)
    return new


def _new_state(make: Any, prev: Any, c: int, beta, mean, b, b_mean, s2, psi, alpha) -> Any:
    """Chain ``c``'s state after a kernel step (``prev`` its state before): the frozen
    dataclass's fields set directly, as its ``__init__`` would (which costs 1.3 us a
    state)."""
    state = object.__new__(make)
    state.__dict__.update(
        beta=beta[c],
        b=b[c],
        sigma2=float(s2[c]),
        psi=psi[c],
        alpha=alpha[c],
        scale=prev.scale,
        beta_mean=mean[c],
        b_mean=b_mean[c],
        sigma_hyper=None,
        sigma2_floor=prev.sigma2_floor,
    )
    return state


def _stacks_of(drawn: tuple, old: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The kernel's arrays of a step's new states (``drawn`` as :func:`_new_state` takes
    them), kept to pass to the next kernel call: what :func:`stacked` would build."""
    beta, _, b, _, s2, psi, alpha = drawn
    stacks = {"beta": beta, "b": b, "psi": psi, "alpha": alpha, "sigma2": s2}
    stacks.update(scale=old["scale"], floor=old["floor"])
    return stacks


def draw_missing_chains(
    rngs: list[np.random.Generator],
    states: list,
    datas: list[ModelData],
    place: tuple | None = None,
) -> np.ndarray | None:
    """``model.draw_missing(rngs[c], states[c], datas[c])`` for every chain (C, n_mis),
    by one kernel call (:func:`compiled_draws` data, one residual variance). With
    ``place = (x, mis_idx, mean, sd)`` the same call writes them into the chains' columns
    ``x`` (C, n) at the rows ``mis_idx`` and their trace into ``mean`` and ``sd``, as
    :func:`mlimpute.models.kernels.refresh.place_draws` (and returns None)."""
    fx = _MissingRows.of(datas[0])
    k = _k()
    C = len(states)
    if fx.dynamic:
        XmTs, xk = _designs(k, datas, "mis"), np.arange(C, dtype=np.int64)
    else:
        XmTs, xk = _seq(k, fx.XTs), np.zeros(C, dtype=np.int64)
    got = stacked(states)
    kernel, placed = (k.draw_missing, ()) if place is None else (k.draw_place, place)
    return kernel(
        _typed(k, rngs),
        XmTs,
        xk,
        fx.codes,
        fx.ZT,
        got["beta"],
        got["b"],
        got["sigma2"],
        fx.XT0,
        fx.dmask,
        fx.unit,
        fx.ones,
        *placed,
    )


class ChainKernels:
    """The compiled step and draws of one variable for a chain run alone, their arguments
    prepared once (:meth:`of`): :meth:`step` is ``model.step(rng, state, data)`` and
    :meth:`draw_place` is ``model.draw_missing`` with the draws placed and traced, the
    same kernel calls as :func:`step_chains` and :func:`draw_missing_chains` with one
    chain, with less Python a visit (the arrays the last step made are passed on as they
    are; the state objects are made as :func:`step_chains` makes them)."""

    def __init__(self, model: Any, data: ModelData, rng: np.random.Generator, make: Any) -> None:
        fx, mr = _Fixed.of(data), _MissingRows.of(data)
        k = self._k = _k()
        st = static(data)
        one = np.zeros(1, dtype=np.int64)
        gens = k.seq([rng])
        if fx.dynamic:  # views that follow the refreshes (checked in :meth:`of`)
            XTs, XmTs = k.seq([_read_only(data.X.obs.T)]), k.seq([_read_only(data.X.mis.T)])
            ZtX = np.empty((1, fx.J, 1, fx.XT0.shape[0]))  # the chain's own Z'X: its
            ZtX[0] = fx.split[8]  # fixed columns written once, the others by every step
            self._kernel, sums = k.step_intercept, (fx.split, ZtX, True)
        else:
            XTs, XmTs = _seq(k, fx.XTs), _seq(k, mr.XTs)
            self._kernel, sums = k.step, fx.sums
        mh = model.mh_steps if st.mh else 0
        self._head = (gens, XTs, one, fx.y, fx.codes, fx.ZT, fx.ZtZ, fx.Zty, *sums)
        self._tail = (model.nu, mh, model.mh_step, fx.bidx, fx.bptr, st.ones, fx.XT0)
        self._tail += (fx.dmask, fx.yty)
        self._draw = (gens, XmTs, one, mr.codes, mr.ZT)
        self._draw_tail = (mr.XT0, mr.dmask, mr.unit, mr.ones)
        # the step and the draws in one call (random intercept, changing design)
        self._fused = self._kernel is k.step_intercept
        self._draws_fixed = (XmTs, mr.codes, mr.ZT, mr.XT0, mr.dmask, mr.unit, mr.ones)
        self.placed = False
        self._make = make
        self._p = fx.XT0.shape[0]
        self._psi = st.psi_rows * st.q + st.psi_cols  # the traced entries of Ψ, flat
        self._last: Any = None
        self._stacks: dict[str, np.ndarray] = {}

    @classmethod
    def of(
        cls, model: Any, data: ModelData, rng: np.random.Generator, make: Any
    ) -> ChainKernels | None:
        """The kernels of ``model`` on ``data`` for the chain of ``rng``, or None where
        the model calls them itself: a model or data they do not serve, a changing design
        other than a random intercept's, or designs not stored by column."""
        if not usable(model, data):
            return None
        if _Fixed.of(data).dynamic:
            if _Fixed.of(data).split is None:
                return None
            for a in (data.X.obs, data.X.mis):
                if not (a.flags.f_contiguous and a.dtype == np.float64):
                    return None
        return cls(model, data, rng, make)

    def _arrays(self, state: Any) -> dict[str, np.ndarray]:
        return self._stacks if state is self._last else stacked([state])

    def step(self, state: Any, place: tuple | None = None) -> Any:
        """One Gibbs step from ``state`` (the next state). With ``place`` (the arguments
        of :meth:`draw_place` after the state) and a kernel that can, the missing values
        are drawn, placed and traced by the same call; :attr:`placed` says whether they
        were."""
        old = self._arrays(state)
        fused = place is not None and self._fused
        beta, mean, b, b_mean, s2, psi, alpha, status = (
            self._k.step_draw_place if fused else self._kernel
        )(
            *self._head,
            *_state_args(old),
            *self._tail,
            *((*self._draws_fixed, *place) if fused else ()),
        )
        self.placed = fused
        if status:
            raise np.linalg.LinAlgError(
                "chain 0: the fixed effects' precision is not positive definite"
            )
        drawn = (beta, mean, b, b_mean, s2, psi, alpha)
        new = _new_state(self._make, state, 0, *drawn)
        self._last = new
        self._stacks = _stacks_of(drawn, old)
        return new

    def params(self, state: Any, out: np.ndarray) -> None:
        """``model.param_vector(state, data)`` written into ``out``: β, the traced entries
        of Ψ, σ²."""
        p = self._p
        out[:p] = state.beta
        np.take(state.psi, self._psi, out=out[p:-1])
        out[-1] = state.sigma2

    def draw_place(
        self, state: Any, x: np.ndarray, mis_idx: np.ndarray, mean: np.ndarray, sd: np.ndarray
    ) -> None:
        """The missing values' draws from ``state``, written into the chain's column ``x``
        (1, n) at the rows ``mis_idx``, their mean and SD into ``mean`` and ``sd`` (1,)."""
        got = self._arrays(state)
        self._k.draw_place(
            *self._draw,
            got["beta"],
            got["b"],
            got["sigma2"],
            *self._draw_tail,
            x,
            mis_idx,
            mean,
            sd,
        )
