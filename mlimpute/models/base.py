"""The model contract: the protocols every conditional model follows.

A conditional model imputes one incomplete variable given the current values of the others.
The sampler (:mod:`mlimpute.sampler.engine`) knows models only through
:class:`ConditionalModel`; a model sees the data only through :class:`ModelData`. Every
method that draws takes the random generator **first**; states are frozen dataclasses that
the sampler carries from visit to visit and never looks into.

Life of a model in a run:

1. **spec time** — :func:`build_spec` picks the model by name (``method=``) or from the
   default table (:func:`~mlimpute.models.registry.default_for`, declared with
   :func:`~mlimpute.models.registry.register`), and validates the
   keyword options of ``method={"y": ("2l.norm", {"prior": "iw"})}`` against the factory's
   signature (:func:`~mlimpute.models.registry.validate_options`);
2. **plan time** — the sampler builds the model's :class:`ModelData` once and calls
   :meth:`ConditionalModel.check`: problems a model can see in its data (an ordinal model
   without an intercept...) are a :class:`~mlimpute.errors.SpecificationError` naming the
   variable, before any chain starts;
3. **in each chain** — ``init(rng, data)``, then per iteration ``step(rng, state, data)``,
   ``draw_missing(rng, state, data)`` and ``param_vector(state, data)`` for the traces;
   level-2 formulas with ``ranef(x)`` read ``x``'s model through ``random_effects``.

Adding a model: one module in :mod:`mlimpute.models` with a class decorated by
:func:`~mlimpute.models.registry.register` (``default_for=`` if it becomes the default of
some variables), its import line in ``mlimpute/models/__init__.py``, and a test file;
``check_model(name)`` runs the contract test over it (the test suite runs it over the
whole registry).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np

from mlimpute.errors import UnsupportedError
from mlimpute.models.segments import Segments

__all__ = [
    "DesignBlock",
    "ExtraTerm",
    "ModelData",
    "ConditionalModel",
    "LinearCore",
    "ModelBase",
    "refuse_extra_terms",
]

State = TypeVar("State")


# -- what a model sees of the data -------------------------------------------------------
@runtime_checkable
class DesignBlock(Protocol):
    """One materialised right-hand side (fixed part X or random part Z).

    Attributes
    ----------
    names : list of str
        Column names (formulaic's: ``Intercept``, ``skill``, ``C(den)[T.2]``...).
    obs : ndarray, shape (n_obs, k)
        Rows where the response is observed (sorted by cluster), Fortran order.
    mis : ndarray, shape (n_mis, k)
        Rows where the response is missing.
    fast, slow : list
        The columns the sampler recomputes from the current imputations (models only read
        whether there are any: :attr:`dynamic`).
    """

    names: list[str]
    obs: np.ndarray
    mis: np.ndarray
    fast: list[tuple[int, tuple[str, ...]]]
    slow: list[int]

    @property
    def dynamic(self) -> bool:
        """Whether some column changes with the imputations (else it is fixed for a run)."""
        ...

    def cluster_constant(self, codes: np.ndarray) -> np.ndarray:
        """Which columns are constant within clusters on the observed rows, whatever the
        imputations (bool per column); ``codes`` are the observed rows' cluster codes."""
        ...


@dataclass(frozen=True)
class ExtraTerm:
    """A random-effect term over another grouping factor than the primary one.

    A formula with several grouping factors (``(1 | school) + (1 | class)``, crossed
    ``(1 | school) + (1 | neighbourhood)``) gives its model one primary term, in the
    usual fields of :class:`ModelData` (``Z``, ``seg_obs``, ``codes_mis``, ``n_clusters``,
    ``group``: the rows are sorted by its clusters), and one ExtraTerm per other grouping
    factor. The primary term is the innermost level (class, not school), so that the
    segment machinery serves the largest number of clusters.

    Attributes
    ----------
    group : str
        The grouping factor, as in :attr:`ParsedFormula.random_terms
        <mlimpute.spec.formula.ParsedFormula.random_terms>` (``"school"``,
        ``"school:class"``).
    Z : DesignBlock
        Its random-effect design, split into the response's observed and missing rows
        like the primary ``Z`` (same row order).
    codes_obs : ndarray of int, shape (n_obs,)
        This factor's cluster code of each observed row (``0..n_clusters-1``; not sorted
        unless ``contains_primary``).
    codes_mis : ndarray of int, shape (n_mis,)
        Its cluster code of each missing row.
    n_clusters : int
        Number of clusters of this factor.
    random_blocks : tuple of tuple of int
        Columns of this term's ``Z`` in each random part ``( ... | group)``.
    random_correlated : tuple of bool
        Whether each of those random parts has a full (``|``) or diagonal (``||``)
        covariance.
    nested_in_primary : bool
        Every cluster of this factor lies within one primary cluster (found in the data).
    contains_primary : bool
        Every primary cluster lies within one cluster of this factor (school contains
        class; found in the data). Then ``parent`` maps primary clusters to this factor's
        and ``codes_obs`` is non-decreasing (rows are sorted by this factor first),
        except for a factor crossing the outer one of three nested levels (a teacher of
        classes in several schools: the rows are sorted by school first).
        Both False: crossed factors.
    parent : ndarray of int, shape (primary n_clusters,), optional
        With ``contains_primary``: the cluster of this factor holding each primary
        cluster; otherwise None.
    """

    group: str
    Z: DesignBlock
    codes_obs: np.ndarray
    codes_mis: np.ndarray
    n_clusters: int
    random_blocks: tuple[tuple[int, ...], ...]
    random_correlated: tuple[bool, ...]
    nested_in_primary: bool
    contains_primary: bool
    parent: np.ndarray | None = None


@runtime_checkable
class ModelData(Protocol):
    """Everything one conditional model sees of the data: rows sorted by cluster.

    :class:`mlimpute.sampler.design.ModelData` is the implementation the sampler builds;
    :func:`mlimpute.models.testing.example_data` builds small ones for tests. Models read
    these attributes and never write them (the one exception is :attr:`cache`). The design
    arrays change in place between visits (the imputed predictors are refreshed); the
    response ``y_obs`` and every index array do not.

    Attributes
    ----------
    variable : str
        The response column (for messages).
    y_obs : ndarray, shape (n_obs,)
        The observed response: values, or category codes ``0..K-1`` for categories.
    obs_idx, mis_idx : ndarray of int
        Sorted-order positions of the observed and missing rows of the response.
    X : DesignBlock
        Fixed-effect design.
    Z : DesignBlock or None
        Random-effect design (None without a random part).
    seg_obs : Segments
        Cluster segments of the observed rows.
    codes_mis : ndarray of int, shape (n_mis,)
        Cluster code of each missing row.
    n_clusters : int
        J, the number of clusters (1 for a level-2 model's cluster rows).
    group : str or None
        The grouping column.
    random_blocks : tuple of tuple of int
        Columns of Z in each random part ``( ... | g)``.
    random_correlated : tuple of bool
        Whether each random part has a full covariance (``|``) or a diagonal one (``||``).
    extra_terms : tuple of ExtraTerm
        Random-effect terms over further grouping factors (empty for a formula with one
        grouping factor; only models with ``multi_term = True`` accept others, see
        :func:`refuse_extra_terms`).
    categories : tuple or None
        Labels of the response's category codes (None for a numeric response).
    integer : bool
        Whether the response is an integer column, whose imputations are rounded on output
        (optional: a model reads it with ``getattr(data, "integer", False)``).
    cache : dict
        Per-plan scratch space for what a model derives from the static design (shared by
        the chains; keyed by the model family).
    """

    variable: str
    y_obs: np.ndarray
    obs_idx: np.ndarray
    mis_idx: np.ndarray
    X: DesignBlock
    Z: DesignBlock | None
    seg_obs: Segments
    codes_mis: np.ndarray
    n_clusters: int
    group: str | None
    random_blocks: tuple[tuple[int, ...], ...]
    random_correlated: tuple[bool, ...]
    extra_terms: tuple[ExtraTerm, ...]
    categories: tuple[Any, ...] | None
    cache: dict[str, Any]

    @property
    def n_obs(self) -> int:
        """Number of observed rows of the response."""
        ...

    @property
    def n_mis(self) -> int:
        """Number of missing rows of the response."""
        ...


# -- the model protocols -------------------------------------------------------------------
@runtime_checkable
class ConditionalModel(Protocol[State]):
    """What the sampler calls on every model (:mod:`mlimpute.sampler.engine`).

    Models are built by their registry factory with the options of the specification and
    hold no data: one model object serves every chain, so all per-chain quantities live in
    the state, a frozen dataclass that the methods return anew (never modify one).
    Random numbers come only from the ``rng`` passed in, always the first argument, so the
    same generator gives the same draws.
    """

    def check(self, data: ModelData) -> None:
        """Refuse data this model cannot fit, at plan time (before any chain starts).

        Parameters
        ----------
        data : ModelData

        Raises
        ------
        SpecificationError
            Naming ``data.variable`` and what to change.
        """
        ...

    def init(self, rng: np.random.Generator, data: ModelData) -> State:
        """A starting state from the observed rows (and the current completed predictors).

        Parameters
        ----------
        rng : numpy.random.Generator
        data : ModelData

        Returns
        -------
        State
        """
        ...

    def step(self, rng: np.random.Generator, state: State, data: ModelData) -> State:
        """One Gibbs step of the parameters given the current completed predictors
        (observed rows of the response only, as mice does).

        Parameters
        ----------
        rng : numpy.random.Generator
        state : State
            From :meth:`init` or the previous :meth:`step`; not modified.
        data : ModelData

        Returns
        -------
        State
            A new state.
        """
        ...

    def draw_missing(self, rng: np.random.Generator, state: State, data: ModelData) -> np.ndarray:
        """Imputations for the missing rows given the state.

        Parameters
        ----------
        rng : numpy.random.Generator
        state : State
        data : ModelData

        Returns
        -------
        ndarray, shape (n_mis,)
            Values, or category codes (as floats) for categorical responses.
        """
        ...

    def param_names(self, data: ModelData) -> list[str]:
        """Names of the traced parameters (fixed at plan time).

        Parameters
        ----------
        data : ModelData

        Returns
        -------
        list of str
            Unique, one per entry of :meth:`param_vector`.
        """
        ...

    def param_vector(self, state: State, data: ModelData) -> np.ndarray:
        """The traced parameters of a state.

        Parameters
        ----------
        state : State
        data : ModelData

        Returns
        -------
        ndarray, shape (len(param_names(data)),)
        """
        ...

    def random_effect_names(self, data: ModelData) -> list[str]:
        """Names of the random effects :meth:`random_effects` returns (fixed at plan time;
        ``ranef(x)`` columns of level-2 designs are named after them).

        Parameters
        ----------
        data : ModelData

        Returns
        -------
        list of str
            Empty for single-level models.
        """
        ...

    def random_effects(self, state: State, data: ModelData) -> tuple[np.ndarray, list[str]]:
        """The current random effects, one row per cluster.

        Parameters
        ----------
        state : State
        data : ModelData

        Returns
        -------
        b : ndarray, shape (n_clusters, q)
        names : list of str
            :meth:`random_effect_names`, one per column of ``b``.
        """
        ...


@runtime_checkable
class LinearCore(Protocol[State]):
    """The normal linear model API that latent-variable and matching models reuse.

    :class:`~mlimpute.models.norm.Norm` and :class:`~mlimpute.models.ml_norm.MultilevelNorm`
    implement it; the probit, ordered-probit and multinomial-probit models run it on latent
    values with ``sigma2=1`` (:mod:`mlimpute.models._latent`), predictive mean matching on the
    response itself (:mod:`mlimpute.models.pmm`). A future model whose conditional depends
    on another model's likelihood reuses the same calls.
    """

    def start(
        self,
        rng: np.random.Generator,
        data: ModelData,
        y: np.ndarray,
        sigma2: float | None = None,
        beta_prec: np.ndarray | None = None,
    ) -> State:
        """A starting state for response ``y`` (observed rows), then one :meth:`gibbs` step.

        Parameters
        ----------
        rng : numpy.random.Generator
        data : ModelData
        y : ndarray, shape (n_obs,)
            The response the core is fitted to (latent values for latent models).
        sigma2 : float, optional
            Fixed residual variance (1 on a latent scale); drawn when None.
        beta_prec : ndarray, shape (p,), optional
            Prior precision of the fixed effects (prior mean 0), with ``sigma2`` given.

        Returns
        -------
        State
        """
        ...

    def gibbs(
        self,
        rng: np.random.Generator,
        state: State,
        data: ModelData,
        y: np.ndarray,
        sigma2: float | None = None,
        beta_prec: np.ndarray | None = None,
    ) -> State:
        """One Gibbs step given response ``y``; arguments as in :meth:`start`.

        Returns
        -------
        State
            A new state.
        """
        ...

    def predict(
        self, state: State, data: ModelData, rows: str = "mis", mean: bool = False
    ) -> np.ndarray:
        """The linear predictor on the ``"obs"`` or ``"mis"`` rows.

        Parameters
        ----------
        state : State
        data : ModelData
        rows : {"mis", "obs"}
        mean : bool
            Use the conditional posterior means of the coefficients instead of the draws.

        Returns
        -------
        ndarray, shape (n_obs,) or (n_mis,)
        """
        ...

    def param_names(self, data: ModelData) -> list[str]:
        """Trace names, the residual variance last."""
        ...

    def param_vector(self, state: State, data: ModelData) -> np.ndarray:
        """Trace values, the residual variance last."""
        ...

    def random_effect_names(self, data: ModelData) -> list[str]:
        """As :meth:`ConditionalModel.random_effect_names`."""
        ...

    def random_effects(self, state: State, data: ModelData) -> tuple[np.ndarray, list[str]]:
        """As :meth:`ConditionalModel.random_effects`."""
        ...


def refuse_extra_terms(model: object, data: ModelData) -> None:
    """Refuse random-effect terms over several grouping factors unless the model's class
    sets ``multi_term = True`` (it fits ``data.extra_terms``).

    The sampler calls it for every model before :meth:`ConditionalModel.check`;
    :meth:`ModelBase.check` calls it too.

    Raises
    ------
    UnsupportedError
        Naming the variable, the model and the grouping factors.

    Examples
    --------
    >>> from mlimpute.models.testing import example_data
    >>> refuse_extra_terms(ModelBase(), example_data())  # no extra terms: accepted
    """
    extra = tuple(getattr(data, "extra_terms", ()) or ())
    if extra and not getattr(type(model), "multi_term", False):
        factors = [data.group, *(t.group for t in extra)]
        raise UnsupportedError(
            f"the model {type(model).__name__} of {data.variable!r} has one grouping factor; "
            f"its formula has the grouping factors {factors} (choose a method that fits "
            "several random-effect terms, such as '2l.norm')"
        )


class ModelBase:
    """Defaults for the optional parts of :class:`ConditionalModel`.

    A model deriving from it gets a :meth:`check` that accepts every data set with one
    grouping factor and no random effects (single-level models); it still writes
    ``init``, ``step``, ``draw_missing``, ``param_names`` and ``param_vector``. A model
    that fits several random-effect terms (:attr:`ModelData.extra_terms`) sets the class
    attribute ``multi_term = True``.
    """

    #: whether the model fits ``data.extra_terms`` (random terms over further factors)
    multi_term: bool = False

    def check(self, data: ModelData) -> None:
        """Accept every data set with one grouping factor (override to refuse some, with a
        SpecificationError, calling ``super().check(data)``)."""
        refuse_extra_terms(self, data)

    def random_effect_names(self, data: ModelData) -> list[str]:
        """No random effects."""
        return []

    def random_effects(self, state: Any, data: ModelData) -> tuple[np.ndarray, list[str]]:
        """An empty (n_clusters, 0) array: no random effects."""
        return np.zeros((data.n_clusters, 0)), []
