"""Materialise parsed formulas once, as every conditional model sees its data.

Every conditional model gets a :class:`ModelData`: its observed response and the fixed
(X) and random (Z) design matrices (:class:`~mlimpute.sampler.block.Block` s), each split
into the response's observed and missing rows, on the rows sorted by cluster
(:class:`~mlimpute.sampler.layout.Layout`). The parts live in modules of their own:

* :mod:`mlimpute.sampler.layout`: the row order and the grouping factors;
* :mod:`mlimpute.sampler.values`: a chain's current columns (:class:`Values`,
  :class:`ClusterValues`);
* :mod:`mlimpute.sampler.block`: a design block and its per-visit refresh;
* :mod:`mlimpute.sampler.materialise`: formulaic's design, built once, and the rank check.

Their public names stay importable from here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from mlimpute.errors import DataError, FormulaError, SpecificationError, UnsupportedError
from mlimpute.models.base import ExtraTerm
from mlimpute.models.segments import Segments
from mlimpute.sampler.block import Block, check_finite
from mlimpute.sampler.layout import GroupingFactor, Layout
from mlimpute.sampler.materialise import (
    _independent_columns,
    _materialise,
    ones_rows,
    rows,
)
from mlimpute.sampler.values import ClusterValues, Values
from mlimpute.spec.defaults import factor_codes
from mlimpute.spec.formula import ParsedFormula, RandomBlock

__all__ = [
    "Layout",
    "Block",
    "ModelData",
    "build_model_data",
    "chain_designs",
    "Values",
    "ClusterValues",
    "check_finite",
    "factor_codes",
    "GroupingFactor",
]


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
    #: whether the response is an integer column (its imputations are rounded on output)
    integer: bool = False
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

    def without_rows(self) -> ModelData:
        """A copy without the row arrays only the chains read (the designs' rows, the
        observed responses, the rows' cluster codes): names, shapes of one row and the
        observed and missing rows' positions are kept. For :meth:`Plan.release_rows`."""
        seg = replace(self.seg_obs, codes=self.seg_obs.codes[:0].copy())
        extra = tuple(
            replace(
                t,
                Z=t.Z.without_rows(),
                codes_obs=t.codes_obs[:0].copy(),
                codes_mis=t.codes_mis[:0].copy(),
            )
            for t in self.extra_terms
        )
        return replace(
            self,
            y_obs=self.y_obs[:0].copy(),
            X=self.X.without_rows(),
            Z=self.Z.without_rows() if self.Z is not None else None,
            seg_obs=seg,
            codes_mis=self.codes_mis[:0].copy(),
            extra_terms=extra,
            cache={},
        )

    def refresh(self, values: Values, static: pd.DataFrame) -> None:
        # the rows' primary cluster codes, for cmean(x) columns gathered per cluster
        codes = None
        if isinstance(values, Values) and values.layout.segments.n_clusters == self.n_clusters:
            codes = (self.seg_obs.codes, self.codes_mis)
        self.X.refresh(values, static, self.obs_idx, self.mis_idx, codes)
        if self.Z is not None:
            self.Z.refresh(values, static, self.obs_idx, self.mis_idx, codes)
        for t in self.extra_terms:
            t.Z.refresh(values, static, self.obs_idx, self.mis_idx, codes)


#: held by the chain that refreshes the plan's own design arrays (one per process)
_IN_PLACE = threading.Lock()


@contextmanager
def chain_designs(
    data: dict[str, ModelData], names: Iterable[str]
) -> Iterator[dict[str, ModelData]]:
    """The designs one chain refreshes in place, by variable.

    Chains run one after another (serially, or one at a time in each worker process) use
    the plan's own arrays: every visit refreshes all dynamic columns before the model reads
    them (:meth:`ModelData.refresh`), so nothing a chain reads depends on what an earlier
    chain left there, and no chain needs a copy of the designs. A chain that starts while
    another one of the same process holds them (threads) gets copies
    (:meth:`ModelData.for_chain`). Either way the draws are the same.

    Afterwards the dynamic columns of the plan's designs hold the last chain's values:
    whoever reads them refreshes them first (as every chain and :func:`mlimpute.check` do).

    Parameters
    ----------
    data : dict of str to ModelData
        The plan's designs.
    names : iterable of str
        The variables the chain visits.

    Yields
    ------
    dict of str to ModelData

    Examples
    --------
    >>> df = pd.DataFrame({"y": [1.0, np.nan, 3.0, 4.0], "x": [0.0, 1.0, 2.0, 1.0]})
    >>> from mlimpute.spec.formula import parse_formula
    >>> parsed = parse_formula("y ~ x")
    >>> d = build_model_data(parsed, df.fillna(2.0), df["y"].notna().to_numpy(),
    ...                      Layout.single(4), {"y"})
    >>> with chain_designs({"y": d}, ["y"]) as datas:
    ...     datas["y"] is d
    True
    """
    if not _IN_PLACE.acquire(blocking=False):
        yield {n: data[n].for_chain() for n in names}
        return
    try:
        yield {n: data[n] for n in names}
    finally:
        _IN_PLACE.release()


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
    X = Block(names, rows(X, obs_idx), rows(X, mis_idx), fast, slow, spec)
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
        if len(random) == 1 and random[0].terms.strip() == "1":  # a random intercept only
            Z = Block(zn, ones_rows(obs_idx.size), ones_rows(mis_idx.size))
        else:
            Zfull = [col for Zb in zs for col in Zb]  # the blocks' columns, in order
            Z = Block(zn, rows(Zfull, obs_idx), rows(Zfull, mis_idx), zf, zsl, zspec)
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
