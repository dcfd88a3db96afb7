"""One materialised right-hand side (:class:`Block`) and its per-visit refresh.

Formulaic materialises each design **once**, on a template fill; afterwards only the
columns that depend on imputed variables (directly, through an interaction, or through
``cmean(x)``) are recomputed, in place, at each visit (:meth:`Block.refresh`):

* terms whose factors are plain numeric variables or ``cmean`` columns are products of
  the current value arrays (the fast path, pure numpy);
* any other term that depends on an imputed variable (``I(x**2)``, ``np.log(x)``...) is
  re-evaluated through formulaic's frozen ``ModelSpec`` (the slow path, correct for every
  transform formulaic knows).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from mlimpute.errors import DataError
from mlimpute.sampler.values import Values
from mlimpute.spec.formula import split_cmean_column
from mlimpute.spec.grammar import EVALUATION_CONTEXT

__all__ = ["Block", "check_finite"]


@dataclass
class Block:
    """One materialised right-hand side, split into observed and missing rows."""

    names: list[str]
    obs: np.ndarray
    mis: np.ndarray
    fast: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)
    slow: list[int] = field(default_factory=list)
    spec: object = None
    #: further factors' cluster codes of the rows (:meth:`_factor_codes`)
    _codes: dict = field(default_factory=dict, repr=False, compare=False)
    #: the per-cluster values the last refresh gathered each ``cmean(x)`` column from:
    #: column -> (the observed rows' array written, a weak reference to the values by
    #: cluster code, which the chain's values hold while they are current); a model
    #: reads them only for that array (the rows' values are these, gathered)
    cluster_values: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def dynamic(self) -> bool:
        return bool(self.fast or self.slow)

    def __getstate__(self) -> dict:
        """Pickled without :attr:`cluster_values` (weak references to a chain's values,
        which a copy in another process does not have)."""
        state = self.__dict__.copy()
        state["cluster_values"] = {}
        return state

    def for_chain(self) -> Block:
        """A copy whose dynamic arrays the chain may overwrite (static ones are shared)."""
        if not self.dynamic:
            return self
        return replace(self, obs=self.obs.copy(order="F"), mis=self.mis.copy(order="F"))

    def without_rows(self) -> Block:
        """A copy with no rows (the same columns): what is left of a design no chain
        reads any more."""
        empty = np.empty((0, self.obs.shape[1]), order="F")
        return replace(self, obs=empty, mis=empty.copy(order="F"), _codes={})

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
        imputations: static columns that are (checked), dynamic ones that are cluster
        means of the model's own clusters (``cmean(x)`` of a level-1 model is constant
        within its clusters by construction) and are constant on the rows now. The check
        of the values matters where the model's clusters are not those of the mean: a
        class-level variable's model clusters by school, and ``cmean(x)`` (a class mean)
        varies within a school.

        Parameters
        ----------
        codes : ndarray of int
            Cluster code of each observed row (sorted).

        Returns
        -------
        ndarray of bool, one per column
        """
        same = codes[1:] == codes[:-1]
        out = np.zeros(self.obs.shape[1], dtype=bool)
        slow = set(self.slow)
        for j in range(out.size):
            if j not in slow:  # column by column: no copy of the rows
                x = self.obs[:, j]
                out[j] = not np.any((x[1:] != x[:-1]) & same)
        for col, factors in self.fast:
            # cmean(x, factor) over another factor: not known to be constant (crossed)
            out[col] &= all((split_cmean_column(f) or ("", "?"))[1] is None for f in factors)
        return out

    def _factor_codes(
        self, name: str, codes: np.ndarray, obs_idx: np.ndarray, mis_idx: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """A further factor's cluster codes of the observed and the missing rows, kept
        for the rows they were taken for."""
        hit = self._codes.get(name)
        if hit is None or hit[0] is not obs_idx or hit[1] is not mis_idx:
            hit = (obs_idx, mis_idx, np.take(codes, obs_idx), np.take(codes, mis_idx))
            self._codes[name] = hit
        return hit[2], hit[3]

    def refresh(
        self,
        values: Values,
        static: pd.DataFrame,
        obs_idx: np.ndarray,
        mis_idx: np.ndarray,
        codes: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """Recompute the dynamic columns from the chain's current values, in place.

        ``codes`` (the primary cluster codes of the observed and of the missing rows)
        lets a ``cmean(x)`` column be gathered from the per-cluster means directly (the
        same numbers, without the column of the means broadcast to every row).
        """
        if not (self.fast or self.slow):
            return
        per_cluster = codes is not None and isinstance(values, Values)
        for col, factors in self.fast:
            means = values.cluster_means(factors[0]) if per_cluster and len(factors) == 1 else None
            if means is not None:
                means.take(codes[0], out=self.obs[:, col], mode="clip")
                means.take(codes[1], out=self.mis[:, col], mode="clip")
                self.cluster_values[col] = (self.obs, weakref.ref(means))
                continue
            self.cluster_values.pop(col, None)
            per = values.factor_means(factors[0]) if per_cluster and len(factors) == 1 else None
            if per is not None:  # cmean(x, school): from the school means, as cmean(x) above
                fo, fm = self._factor_codes(factors[0], per[1], obs_idx, mis_idx)
                per[0].take(fo, out=self.obs[:, col], mode="clip")
                per[0].take(fm, out=self.mis[:, col], mode="clip")
                continue
            v = values.factor(factors[0], static)
            for f in factors[1:]:
                v = v * values.factor(f, static)
            # straight into the (Fortran-ordered, contiguous) columns; indices are in range,
            # and mode="clip" spares the buffered copy mode="raise" makes
            v.take(obs_idx, out=self.obs[:, col], mode="clip")
            v.take(mis_idx, out=self.mis[:, col], mode="clip")
        if self.slow:
            frame = static.copy(deep=False)
            for name in values:
                if name in frame:
                    frame[name] = values.frame_value(name)
            # cmean() columns of the chain's values (plan.static does not keep those of
            # imputed variables), and any others the frame has
            needed = [str(v) for v in getattr(self.spec, "required_variables", ())]
            for col in [*frame.columns, *(c for c in needed if c not in frame)]:
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
