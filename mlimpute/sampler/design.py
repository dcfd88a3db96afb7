"""Materialise parsed formulas once; refresh imputed columns in place.

Rows are sorted by cluster once (:class:`Layout`), so segment sums are ``reduceat`` calls.
Every conditional model gets a :class:`ModelData`: its observed response and the fixed
(X) and random (Z) design matrices, each split into the response's observed and missing
rows. Formulaic materialises each design **once**, on a template fill; afterwards only
the columns that depend on imputed variables (directly, through an interaction, or through
``cmean(x)``) are recomputed, in place, at each visit:

* terms whose factors are plain numeric variables or ``cmean`` columns are products of
  the current value arrays (the fast path, pure numpy);
* any other term that depends on an imputed variable (``I(x**2)``, ``np.log(x)``...) is
  re-evaluated through formulaic's frozen ``ModelSpec`` (the slow path, correct for every
  transform formulaic knows).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from formulaic import model_matrix
from formulaic.errors import FormulaicError
from formulaic.parser.types.factor import Factor
from scipy import linalg as sla

from mlimpute.codec import decode
from mlimpute.errors import DataError, FormulaError, SpecificationError, UnsupportedError
from mlimpute.models.base import ExtraTerm
from mlimpute.models.segments import Segments
from mlimpute.spec.defaults import factor_codes
from mlimpute.spec.formula import (
    ParsedFormula,
    RandomBlock,
    factor_columns,
    split_cmean_column,
)
from mlimpute.spec.grammar import EVALUATION_CONTEXT, validate_rhs
from mlimpute.spec.longsum import balanced_sum

__all__ = [
    "Layout",
    "Block",
    "ModelData",
    "build_model_data",
    "Values",
    "check_finite",
    "factor_codes",
    "GroupingFactor",
]


@dataclass(frozen=True)
class GroupingFactor:
    """A grouping factor other than the primary one, on the sorted rows of a :class:`Layout`.

    Attributes
    ----------
    name : str
        As in :attr:`ParsedFormula.random_terms <mlimpute.spec.formula.ParsedFormula.random_terms>`.
    codes : ndarray of int
        Cluster code of each sorted row (non-decreasing when ``contains_primary``).
    labels : pandas.Index
        Label of each code.
    contains_primary : bool
        Every primary cluster lies within one cluster of this factor (school ⊃ class).
    nested_in_primary : bool
        Every cluster of this factor lies within one primary cluster.
    """

    name: str
    codes: np.ndarray
    labels: pd.Index
    contains_primary: bool
    nested_in_primary: bool

    @property
    def n_clusters(self) -> int:
        return len(self.labels)


def _pairs(a: np.ndarray, b: np.ndarray) -> int:
    """Number of distinct (a, b) code pairs."""
    return np.unique(a.astype(np.int64) * (int(b.max()) + 1) + b).size if a.size else 0


def _first_seen(codes: np.ndarray, labels: pd.Index) -> tuple[np.ndarray, pd.Index]:
    """Codes renumbered in order of first appearance (non-decreasing when grouped)."""
    uniq, first = np.unique(codes, return_index=True)
    by_first = uniq[np.argsort(first, kind="stable")]
    new = np.empty(len(labels), dtype=np.intp)
    new[by_first] = np.arange(by_first.size)
    return new[codes], labels[by_first]


@dataclass(frozen=True)
class Layout:
    """Row order and cluster structure shared by every model of one imputation run.

    Attributes
    ----------
    order : ndarray
        ``order[k]`` is the original position of sorted row ``k``.
    segments : Segments
        Cluster segments of all rows (sorted).
    labels : pandas.Index
        Cluster label of each code.
    group : str or None
        The cluster column (the primary grouping factor: the innermost level).
    factors : tuple of GroupingFactor
        Further grouping factors (three-level and cross-classified data); rows are sorted
        by the factors containing the primary one first, outermost first.
    """

    order: np.ndarray
    segments: Segments
    labels: pd.Index
    group: str | None
    factors: tuple[GroupingFactor, ...] = ()

    def factor(self, name: str) -> GroupingFactor:
        """The further grouping factor ``name``."""
        for f in self.factors:
            if f.name == name:
                return f
        raise KeyError(name)

    @classmethod
    def from_factors(cls, df: pd.DataFrame, group: str, others: tuple[str, ...]) -> Layout:
        """Rows sorted by the factors that contain ``group`` (outermost first), then by
        ``group``; nesting (every class in one school) is found in the data.

        Examples
        --------
        >>> df = pd.DataFrame({"s": [2, 1, 2, 1], "c": ["a", "b", "b", "a"]})
        >>> lay = Layout.from_factors(df, "s:c", ("s",))
        >>> lay.order.tolist(), lay.codes.tolist(), lay.factor("s").codes.tolist()
        ([3, 1, 0, 2], [0, 1, 2, 3], [0, 0, 1, 1])
        """
        codes, labels = factor_codes(df, group)
        J = len(labels)
        raw = []
        for name in others:
            c, lab = factor_codes(df, name)
            contains = _pairs(codes, c) == J
            nested = _pairs(c, codes) == len(lab)
            raw.append((name, c, lab, contains, nested))
        # outermost (fewest clusters) most significant: np.lexsort sorts by its last key
        containing = sorted((r for r in raw if r[3]), key=lambda r: -len(r[2]))
        order = np.lexsort([codes, *(r[1] for r in containing)])
        codes, labels = _first_seen(codes[order], labels)
        factors = []
        for name, c, lab, contains, nested in raw:
            c = c[order]
            if contains:
                c, lab = _first_seen(c, lab)
            factors.append(GroupingFactor(name, c, lab, contains, nested))
        return cls(order, Segments.from_codes(codes, J), labels, group, tuple(factors))

    @classmethod
    def from_frame(cls, df: pd.DataFrame, group: str | None) -> Layout:
        n = len(df)
        if group is None:
            codes = np.zeros(n, dtype=np.intp)
            labels = pd.Index([0])
        elif len(factor_columns(group)) > 1:
            return cls.from_factors(df, group, ())
        else:
            codes, labels = pd.factorize(df[group], sort=True)
            labels = pd.Index(labels)
        order = np.argsort(codes, kind="stable")
        return cls(order, Segments.from_codes(codes[order], len(labels)), labels, group)

    @classmethod
    def single(cls, n: int) -> Layout:
        """n rows in one cluster (the cluster rows of a level-2 model)."""
        codes = np.zeros(n, dtype=np.intp)
        return cls(np.arange(n), Segments.from_codes(codes, 1), pd.Index([0]), None)

    @property
    def n(self) -> int:
        return len(self.order)

    @property
    def codes(self) -> np.ndarray:
        return self.segments.codes

    def cluster_mean(self, x: np.ndarray) -> np.ndarray:
        """Cluster mean of ``x`` broadcast back to the (sorted) rows."""
        return np.take(self.segments.mean(x), self.codes)

    def factor_mean(self, x: np.ndarray, factor: str | None) -> np.ndarray:
        """Mean of ``x`` over the rows of each cluster of the grouping factor ``factor``
        (None or the primary one: :meth:`cluster_mean`), broadcast back to the rows: the
        column ``cmean(x, factor)``.

        Examples
        --------
        >>> df = pd.DataFrame({"s": [1, 1, 1, 2], "c": [1, 2, 2, 3]})
        >>> lay = Layout.from_factors(df, "c", ("s",))
        >>> lay.factor_mean(np.array([1.0, 2.0, 3.0, 7.0]), "s").tolist()
        [2.0, 2.0, 2.0, 7.0]
        """
        if factor is None or factor == self.group:
            return self.cluster_mean(x)
        fac = self.factor(factor)
        sums = np.bincount(fac.codes, weights=x, minlength=fac.n_clusters)
        counts = np.bincount(fac.codes, minlength=fac.n_clusters)
        return np.take(sums / np.maximum(counts, 1), fac.codes)


class Values(dict):
    """The current completed columns of one chain (sorted order; codes for categories).

    ``like`` maps a categorical variable to a Series of its dtype, used to decode codes
    when formulaic re-evaluates a term (the slow refresh path).
    """

    def __init__(
        self, layout: Layout, *args: Any, like: dict[str, pd.Series] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.layout = layout
        self.like = like or {}
        self._cmean: dict[str, np.ndarray] = {}

    def frame_value(self, name: str) -> np.ndarray | pd.Series:
        """The current column as formulaic should see it (decoded categories)."""
        if name in self.like:
            return decode(self[name], self.like[name])
        return self[name]

    def touch(self, name: str) -> None:
        """Forget cached cluster means of ``name`` after its imputed values changed."""
        for key in [k for k in self._cmean if k[0] == name]:
            del self._cmean[key]

    def factor(self, name: str, static: pd.DataFrame) -> np.ndarray:
        if name in self:
            return self[name]
        split = split_cmean_column(name)
        if split is not None and split[0] in self:
            if split not in self._cmean:  # cmean(x) or cmean(x, factor)
                self._cmean[split] = self.layout.factor_mean(self[split[0]], split[1])
            return self._cmean[split]
        return static[name].to_numpy(dtype=np.float64)


class ClusterValues:
    """A chain's values seen one row per cluster (for level-2 models).

    Level-2 variables give their cluster value (first row), ``cmean(x)`` the cluster mean
    of x's current values, ``ranef(...)`` columns the current random effects passed in.
    """

    def __init__(
        self,
        values: Values,
        first: np.ndarray,
        ranef: dict[str, np.ndarray],
        segments: Segments | None = None,
    ) -> None:
        self.values, self.first, self.ranef = values, first, ranef
        self.like = values.like
        # the clusters whose means cmean(x) gives: the layout's, or (level-3 rows with
        # three levels) the segments of the level-3 factor over the sorted rows
        self.segments = values.layout.segments if segments is None else segments

    def __iter__(self):
        return iter([*self.values, *self.ranef])

    def __contains__(self, name) -> bool:
        return name in self.values or name in self.ranef

    def __getitem__(self, name: str) -> np.ndarray:
        if name in self.ranef:
            return self.ranef[name]
        return np.take(self.values[name], self.first)

    def factor(self, name: str, static: pd.DataFrame) -> np.ndarray:
        if name in self:
            return self[name]
        split = split_cmean_column(name)
        if split is not None and split[0] in self.values:
            if split[1] is None:  # the mean over this view's clusters
                return self.segments.mean(self.values[split[0]])
            # cmean(x, factor): the row-level mean over factor's clusters, at each cluster
            return np.take(self.values.factor(name, static), self.first)
        return static[name].to_numpy(dtype=np.float64)

    def frame_value(self, name: str) -> np.ndarray | pd.Series:
        if name in self.like:
            return decode(self[name], self.like[name])
        return self[name]


@dataclass
class Block:
    """One materialised right-hand side, split into observed and missing rows."""

    names: list[str]
    obs: np.ndarray
    mis: np.ndarray
    fast: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)
    slow: list[int] = field(default_factory=list)
    spec: object = None

    @property
    def dynamic(self) -> bool:
        return bool(self.fast or self.slow)

    def for_chain(self) -> Block:
        """A copy whose dynamic arrays the chain may overwrite (static ones are shared)."""
        if not self.dynamic:
            return self
        return replace(self, obs=self.obs.copy(order="F"), mis=self.mis.copy(order="F"))

    def drop(self, keep: np.ndarray) -> Block:
        """Keep only the columns ``keep`` (indices), renumbering the refresh plans."""
        new = {int(old): i for i, old in enumerate(keep)}
        return Block(
            [self.names[k] for k in keep],
            np.asfortranarray(self.obs[:, keep]),
            np.asfortranarray(self.mis[:, keep]),
            [(new[c], f) for c, f in self.fast if c in new],
            [new[c] for c in self.slow if c in new],
            self.spec,
        )

    def cluster_constant(self, codes: np.ndarray) -> np.ndarray:
        """Which columns are constant within clusters on the observed rows, whatever the
        imputations: static columns that are (checked), dynamic ones that are products of
        cluster means (``cmean(x)`` is constant within clusters by construction).

        Parameters
        ----------
        codes : ndarray of int
            Cluster code of each observed row (sorted).

        Returns
        -------
        ndarray of bool, one per column
        """
        same = codes[1:] == codes[:-1]
        out = np.all(self.obs[1:][same] == self.obs[:-1][same], axis=0)
        out[self.slow] = False
        for col, factors in self.fast:
            # cmean(x, factor) over another factor: not known to be constant (crossed)
            out[col] = all((split_cmean_column(f) or ("", "?"))[1] is None for f in factors)
        return out

    def refresh(
        self, values: Values, static: pd.DataFrame, obs_idx: np.ndarray, mis_idx: np.ndarray
    ) -> None:
        """Recompute the dynamic columns from the chain's current values, in place."""
        for col, factors in self.fast:
            v = values.factor(factors[0], static)
            for f in factors[1:]:
                v = v * values.factor(f, static)
            # straight into the (Fortran-ordered, contiguous) columns; indices are in range,
            # and mode="clip" spares the buffered copy mode="raise" makes
            np.take(v, obs_idx, out=self.obs[:, col], mode="clip")
            np.take(v, mis_idx, out=self.mis[:, col], mode="clip")
        if self.slow:
            frame = static.copy(deep=False)
            for name in values:
                if name in frame:
                    frame[name] = values.frame_value(name)
            for col in frame.columns:
                split = split_cmean_column(str(col))
                if split is not None and split[0] in values:
                    frame[col] = values.factor(col, static)
            with np.errstate(all="ignore"):
                mm = np.asarray(
                    self.spec.get_model_matrix(frame, context=EVALUATION_CONTEXT), dtype=np.float64
                )
            if not np.isfinite(mm[:, self.slow]).all():
                check_finite(
                    mm,
                    self.names,
                    [self.spec],
                    "this model's formula",
                    "with the current imputed values",
                )
            self.obs[:, self.slow] = mm[obs_idx][:, self.slow]
            self.mis[:, self.slow] = mm[mis_idx][:, self.slow]


@dataclass(frozen=True)
class ModelData:
    """Everything one conditional model sees of the data (rows sorted by cluster).

    The sampler's implementation of :class:`mlimpute.models.base.ModelData` (where the
    fields are documented). Frozen: the design blocks' dynamic columns are refreshed in
    place (:meth:`refresh`), nothing is reassigned.
    """

    variable: str
    y_obs: np.ndarray
    obs_idx: np.ndarray
    mis_idx: np.ndarray
    X: Block
    Z: Block | None
    seg_obs: Segments
    codes_mis: np.ndarray
    n_clusters: int
    group: str | None = None
    random_blocks: tuple[tuple[int, ...], ...] = ()
    random_correlated: tuple[bool, ...] = ()
    events: list[str] = field(default_factory=list)
    #: labels of the response's category codes (None for a numeric response)
    categories: tuple | None = None
    #: random-effect terms over further grouping factors (:class:`ExtraTerm`)
    extra_terms: tuple[ExtraTerm, ...] = ()
    #: what models derive from the static parts of the design (e.g. per-cluster ``Z'Z``),
    #: computed on first use; the chains' copies share it (:meth:`for_chain`)
    cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_obs(self) -> int:
        return self.y_obs.shape[0]

    @property
    def n_mis(self) -> int:
        return self.mis_idx.shape[0]

    def for_chain(self) -> ModelData:
        new = replace(self, X=self.X.for_chain(), Z=self.Z.for_chain() if self.Z else None)
        if self.extra_terms:
            extra = tuple(replace(t, Z=t.Z.for_chain()) for t in self.extra_terms)
            new = replace(new, extra_terms=extra)
        return new

    def refresh(self, values: Values, static: pd.DataFrame) -> None:
        self.X.refresh(values, static, self.obs_idx, self.mis_idx)
        if self.Z is not None:
            self.Z.refresh(values, static, self.obs_idx, self.mis_idx)
        for t in self.extra_terms:
            t.Z.refresh(values, static, self.obs_idx, self.mis_idx)


def _materialise(rhs: str, frame: pd.DataFrame, parsed: ParsedFormula, dynamic: set[str]):
    if rhs.strip() == "1":  # an intercept only (the usual random part): what formulaic gives
        return ["Intercept"], np.ones((len(frame), 1)), [], [], None
    validate_rhs(rhs, parsed.text)  # also a ParsedFormula built by hand or read from a file
    try:
        # the used columns are complete here: a NaN can only come from a transform, which
        # check_finite names (formulaic's na_action="raise" would not name the column)
        with np.errstate(all="ignore"):
            mm = model_matrix(
                balanced_sum(rhs), frame, na_action="ignore", context=EVALUATION_CONTEXT
            )
    except FormulaicError as exc:
        raise FormulaError(f"cannot build the design of {parsed.text!r}: {exc}") from None
    spec = mm.model_spec
    check_finite(
        np.asarray(mm, dtype=np.float64),
        list(mm.columns),
        [spec],
        parsed.text,
        "on the data (imputed cells at their starting values)",
    )
    fast, slow = [], []
    for term, _scoped, columns in spec.structure:
        idx = [spec.column_indices[c] for c in columns]
        facs = term.factors
        deps = {str(v) for v in spec.term_variables.get(term, ())} & dynamic
        if not deps:
            continue
        numeric = all(
            f.eval_method == Factor.EvalMethod.LOOKUP
            and spec.encoder_state.get(f.expr, ("numerical",))[0].value == "numerical"
            for f in facs
        )
        if numeric and len(idx) == 1:
            fast.append((idx[0], tuple(f.expr for f in facs)))
        else:
            slow.extend(idx)
    X = np.asarray(mm, dtype=np.float64)
    return list(mm.columns), X, fast, slow, spec


def check_finite(X: np.ndarray, names: list[str], specs: list, formula: str, where: str) -> None:
    """Raise :class:`DataError` if a design column has NaN or ±inf values.

    Names the term (e.g. ``log(x)`` of values ≤ 0, ``I(x/z)`` with ``z == 0``) and the
    data columns it is computed from.

    Parameters
    ----------
    X : ndarray
        The design, one column per name.
    names : list of str
        Column names of ``X``.
    specs : list of formulaic ModelSpec
        The specs the columns come from (to find each column's term and variables).
    formula : str
        The formula, for the message.
    where : str
        Which data, for the message.

    Examples
    --------
    >>> check_finite(np.ones((2, 1)), ["Intercept"], [], "y ~ 1", "on the data")
    """
    bad = ~np.isfinite(X)
    if not bad.any():
        return
    details = []
    for j in np.flatnonzero(bad.any(axis=0)):
        term, columns = _term_of(names[j], specs)
        vals = X[bad[:, j], j]
        kinds = [
            k
            for k, hit in (
                ("NaN", np.isnan(vals).any()),
                ("+inf", (vals > 0).any()),
                ("-inf", (vals < 0).any()),
            )
            if hit
        ]
        used = f" of the column(s) {columns}" if columns else ""
        details.append(f"{term!r}{used} is {'/'.join(kinds)} on {int(bad[:, j].sum())} row(s)")
    raise DataError(
        f"{formula!r} {where}: " + "; ".join(dict.fromkeys(details)) + " (e.g. log() of "
        "values ≤ 0, sqrt() of negative values, a division by zero); transform the data "
        "first or change the term"
    )


def _term_of(column: str, specs: list) -> tuple[str, list[str]]:
    """The term producing design column ``column`` and the data columns it uses."""
    for spec in specs:
        if spec is None:
            continue
        for term, _scoped, columns in spec.structure:
            if column in columns:
                used = sorted(
                    str(v)
                    for v in spec.term_variables.get(term, ())
                    if getattr(v, "source", "data") == "data"
                )
                return str(term), used
    return column, []


def build_model_data(
    parsed: ParsedFormula,
    template: pd.DataFrame,
    observed: np.ndarray,
    layout: Layout,
    dynamic: set[str],
    y: np.ndarray | None = None,
) -> ModelData:
    """Materialise ``parsed`` on the (sorted, filled) ``template`` for one response.

    Parameters
    ----------
    parsed : ParsedFormula
        With its response set.
    template : DataFrame
        Sorted rows, no missing values in the variables used (imputed cells filled),
        with ``cmean(x)`` columns present.
    observed : ndarray of bool
        Where the response is observed (sorted order).
    layout : Layout
    dynamic : set of str
        Imputed variables and the ``cmean(...)`` columns of imputed variables.
    y : ndarray, optional
        The response as the model sees it (values or category codes, sorted order);
        default: the template column as floats.

    Notes
    -----
    Fixed-effect columns that are constant or linearly dependent on the observed rows are
    dropped (pivoted QR, tolerance 1e-7 relative), each with an event, as mice does.
    """
    if y is None:
        y = template[parsed.response].to_numpy(dtype=np.float64)
    obs_idx = np.flatnonzero(observed)
    mis_idx = np.flatnonzero(~observed)
    names, X, fast, slow, spec = _materialise(parsed.fixed, template, parsed, dynamic)
    X = Block(names, np.asfortranarray(X[obs_idx]), np.asfortranarray(X[mis_idx]), fast, slow, spec)
    events = []
    if X.obs.shape[1]:
        keep, dropped = _independent_columns(X.obs)
        if dropped:
            for k in dropped:
                events.append(
                    f"{parsed.response}: dropped predictor column {names[k]!r} (constant or "
                    "collinear with other predictors on the observed rows)"
                )
            X = X.drop(np.asarray(keep, dtype=np.intp))
    n_obs, p = X.obs.shape
    if n_obs <= p:
        raise DataError(
            f"{parsed.response!r} has {n_obs} observed row(s) for {p} fixed effect(s) in "
            f"{parsed.text!r}: the model is saturated (no residual variation to impute "
            "from); simplify its formula (for default models: leave predictors out with "
            "exclude=, or give this variable's formula yourself)"
        )
    extra: tuple[ExtraTerm, ...] = ()
    if parsed.group is not None and parsed.group != layout.group:
        raise UnsupportedError(
            f"the formula for {parsed.response!r} ({parsed.text!r}) has a random part over "
            f"{parsed.group!r} only, but the rows are grouped by {layout.group!r} (the "
            f"innermost level); add (1 | {layout.group})"
        )
    if parsed.several_groups:
        primary, extra = _terms_of(parsed, layout, template, obs_idx, mis_idx, dynamic, events)
        Z, blocks, corr = primary
    else:
        Z, blocks, corr = _random_design(
            parsed, parsed.random, parsed.group, template, obs_idx, mis_idx, dynamic, events
        )
    codes = layout.codes
    return ModelData(
        parsed.response,
        y[obs_idx],
        obs_idx,
        mis_idx,
        X,
        Z,
        Segments.from_codes(codes[obs_idx], layout.segments.n_clusters),
        codes[mis_idx],
        layout.segments.n_clusters,
        layout.group if parsed.several_groups else parsed.group,
        blocks,
        corr,
        events,
        extra_terms=extra,
    )


def _random_design(
    parsed: ParsedFormula,
    random: tuple[RandomBlock, ...],
    group: str | None,
    template: pd.DataFrame,
    obs_idx: np.ndarray,
    mis_idx: np.ndarray,
    dynamic: set[str],
    events: list[str],
) -> tuple[Block | None, tuple[tuple[int, ...], ...], tuple[bool, ...]]:
    """The random design of the blocks ``random`` over one grouping factor: Z, the columns
    of each block and whether each is correlated (collinear columns dropped, with events)."""
    Z, blocks, corr = None, (), ()
    if random:
        zn, zs, zf, zsl, zspec = [], [], [], [], None
        blocks = []
        for block in random:
            n_, Zb, f_, s_, sp = _materialise(block.terms, template, parsed, dynamic)
            base = len(zn)
            blocks.append(tuple(range(base, base + len(n_))))
            zn += n_
            zs.append(Zb)
            zf += [(c + base, f) for c, f in f_]
            if s_:
                if zspec is not None or len(random) > 1:
                    raise SpecificationError(
                        f"{parsed.text!r}: transformed imputed variables in random parts are "
                        "supported in a single random block only"
                    )
                zsl, zspec = s_, sp
        if len(set(zn)) < len(zn):
            raise FormulaError(f"{parsed.text!r}: a random-effect column appears twice: {zn}")
        Zfull = np.hstack(zs)
        Z = Block(
            zn, np.asfortranarray(Zfull[obs_idx]), np.asfortranarray(Zfull[mis_idx]), zf, zsl, zspec
        )
        corr = tuple(b.correlated for b in random)
        blocks = tuple(blocks)
        keep, dropped = _independent_columns(Z.obs) if Z.obs.shape[1] else ([], [])
        if dropped:
            for k in dropped:
                events.append(
                    f"{parsed.response}: dropped random-effect column {zn[k]!r} of "
                    f"{group!r} (constant or collinear with the other random effects "
                    "on the observed rows)"
                )
            new = {old: i for i, old in enumerate(keep)}
            kept = [
                (tuple(new[c] for c in b if c in new), c_)
                for b, c_ in zip(blocks, corr, strict=True)
            ]
            kept = [(b, c_) for b, c_ in kept if b]
            Z = Z.drop(np.asarray(keep, dtype=np.intp))
            blocks, corr = tuple(b for b, _ in kept), tuple(c_ for _, c_ in kept)
    return Z, blocks, corr


def _terms_of(
    parsed: ParsedFormula,
    layout: Layout,
    template: pd.DataFrame,
    obs_idx: np.ndarray,
    mis_idx: np.ndarray,
    dynamic: set[str],
    events: list[str],
) -> tuple[tuple, tuple[ExtraTerm, ...]]:
    """The primary term (the layout's grouping factor) and one :class:`ExtraTerm` per
    further grouping factor of a formula with several."""
    if layout.group not in parsed.groups:
        raise UnsupportedError(
            f"the formula for {parsed.response!r} ({parsed.text!r}) has the grouping factors "
            f"{list(parsed.groups)} but no random term over the innermost one, "
            f"{layout.group!r}; add (1 | {layout.group})"
        )
    by_group: dict[str, list[RandomBlock]] = {}
    for block, g in parsed.random_terms:
        by_group.setdefault(g, []).append(block)
    primary = _random_design(
        parsed,
        tuple(by_group[layout.group]),
        layout.group,
        template,
        obs_idx,
        mis_idx,
        dynamic,
        events,
    )
    starts = layout.segments.starts  # first row of each primary cluster (none is empty)
    extra = []
    for g, random in by_group.items():
        if g == layout.group:
            continue
        fac = layout.factor(g)
        Z, blocks, corr = _random_design(
            parsed, tuple(random), g, template, obs_idx, mis_idx, dynamic, events
        )
        if Z is None or not blocks:
            continue
        extra.append(
            ExtraTerm(
                g,
                Z,
                fac.codes[obs_idx],
                fac.codes[mis_idx],
                fac.n_clusters,
                blocks,
                corr,
                nested_in_primary=fac.nested_in_primary,
                contains_primary=fac.contains_primary,
                parent=fac.codes[starts].copy() if fac.contains_primary else None,
            )
        )
    return primary, tuple(extra)


def _independent_columns(X: np.ndarray, tol: float = 1e-7) -> tuple[list[int], list[int]]:
    """Columns to keep and to drop, in formula order.

    Unpivoted QR of the unit-norm columns: ``|R_kk|`` is the part of column k orthogonal to
    the columns before it, so a column that adds nothing to the earlier ones (a constant next
    to the intercept, a collinear predictor) is dropped and the earlier one kept.
    """
    p = X.shape[1]
    if X.shape[0] == 0:
        return list(range(p)), []
    norms = np.sqrt((X**2).sum(0))
    Xs = X / np.where(norms > 0, norms, 1.0)
    R = sla.qr(Xs, mode="r")[0]
    d = np.zeros(p)
    k = min(R.shape)
    d[:k] = np.abs(np.diag(R)[:k])
    keep_mask = (d > tol) & (norms > 0)
    return np.flatnonzero(keep_mask).tolist(), np.flatnonzero(~keep_mask).tolist()
