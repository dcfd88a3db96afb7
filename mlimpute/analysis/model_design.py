"""The designs of an analysis model: each completed data set as arrays.

:class:`Design` holds one completed data set's response, fixed and random designs and
clusters. ``_Designs``, a base class of :class:`~mlimpute.analysis.model._Model`, builds
them: formulaic materialises the first data set, and later data sets reuse its design
where they agree with it (``_changed_rows``). It reads the attributes that
:class:`~mlimpute.analysis.model._Model` sets up (the parsed formula, the kind, the
cluster and the stored formulaic specs).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
import statsmodels.api as sm
from formulaic import model_matrix
from formulaic.errors import FormulaicError

from mlimpute.analysis.fitters import mixedlm as _mixedlm
from mlimpute.errors import DataError, DataTypeError, FormulaError, SpecificationError
from mlimpute.sampler.design import check_finite
from mlimpute.spec.checks import check_cluster_means, check_terms_on_data
from mlimpute.spec.formula import cmean_column, factor_columns
from mlimpute.spec.grammar import EVALUATION_CONTEXT

#: How messages name the families whose response values are restricted.
_FAMILY_NAMES = {
    "binomial": "binomial",
    "poisson": "Poisson",
    "negative_binomial": "negative binomial",
    "gamma": "Gamma",
    "inverse_gaussian": "inverse Gaussian",
}


class Design(NamedTuple):
    """One completed data set as arrays: response, fixed and random designs, clusters.

    ``X``, ``Z`` and ``groups`` may be shared, read-only, with other data sets' designs
    (see :meth:`_Model.design`); ``clusters`` caches ``(order, starts, sizes)`` of
    ``groups`` for the mixed-model fit. With several grouping factors ``Z`` holds the
    random-effect columns term by term and ``groups`` is an ``(n, T)`` array of group
    codes ``0 .. J_k - 1``, one column per grouping factor (``clusters`` is None).
    """

    y: np.ndarray
    X: np.ndarray
    Z: np.ndarray | None
    groups: np.ndarray | None
    clusters: tuple | None = None


class _Anchor(NamedTuple):
    """The first data set's design, which later data sets reuse where they agree with it."""

    columns: dict  # name -> Series: the columns the designs are built from
    X: np.ndarray
    Z: np.ndarray | None
    groups: np.ndarray | None
    clusters: tuple | None


def _changed_rows(frame: pd.DataFrame, columns: dict) -> np.ndarray | None:
    """Rows of ``frame`` whose value in any of ``columns`` (name -> Series) differs from
    the stored one; None when that cannot be told (a column missing, another dtype or
    length)."""
    changed = np.zeros(len(frame), dtype=bool)
    for name, old in columns.items():
        if name not in frame.columns:
            return None
        new = frame[name]
        if len(new) != len(old) or new.dtype != old.dtype:
            return None
        if isinstance(new.dtype, pd.CategoricalDtype):
            diff = new.cat.codes.to_numpy() != old.cat.codes.to_numpy()
        else:
            diff = np.asarray(new.to_numpy() != old.to_numpy(), dtype=bool)
            if diff.shape != changed.shape:
                return None
        changed |= diff
    return changed


def _matrix(spec, frame: pd.DataFrame) -> np.ndarray:
    """``spec`` materialised on ``frame``, in the formula namespace (nothing else reachable)."""
    with np.errstate(all="ignore"):
        return np.asarray(spec.get_model_matrix(frame, context=EVALUATION_CONTEXT), dtype=float)


class _Designs:
    """How a completed data set becomes a :class:`Design`: the materialisation part of
    :class:`~mlimpute.analysis.model._Model` (see there)."""

    # -- materialisation ------------------------------------------------------------------
    def _frame(self, df: pd.DataFrame, i: int) -> pd.DataFrame:
        text = self.parsed.text
        if self._needed is None:  # parsing the formula's terms costs ~1 ms: once
            self._cluster_cols = self._cluster_columns(df)
            # the columns of several grouping factors are among the variables
            self._needed = sorted(self.parsed.variables | set(self._cluster_cols))
            self._used = set(self.parsed.predictors) | {cmean_column(v) for v in self.parsed.cmeans}
            self._used |= {cmean_column(v, g) for v, g in self.parsed.factor_means}
        needed = self._needed
        missing = [c for c in needed if c not in df.columns]
        if missing:
            raise SpecificationError(
                f"column(s) {missing} used by {text!r} are not in completed data set {i}; "
                f"its columns: {list(df.columns)}"
            )
        na = df[needed].isna().sum()
        na = na[na > 0]
        if len(na):
            detail = ", ".join(f"{c!r} ({n} rows)" for c, n in na.items())
            raise DataError(
                f"completed data set {i} has missing values in {detail}, used by {text!r}: "
                "impute those variables too (give them a formula) or drop those rows first."
            )
        check_cluster_means(df, self.parsed)  # a mean of strings: named, not pandas' error
        if self._x_spec is None:  # C() levels, references, scores that miss the data: named
            check_terms_on_data(df, {self.parsed.response or "the analysis": self.parsed})
        if self.parsed.cmeans:
            cols = self._cluster_cols
            grouped = df.groupby(cols[0] if len(cols) == 1 else list(cols), sort=False)
            df = df.assign(
                **{cmean_column(v): grouped[v].transform("mean") for v in self.parsed.cmeans}
            )
        for v, g in self.parsed.factor_means:  # cmean(x, school): over that factor's clusters
            mean = df.groupby(list(factor_columns(g)), sort=False)[v].transform("mean")
            df = df.assign(**{cmean_column(v, g): mean})
        return df

    def _cluster_columns(self, df: pd.DataFrame) -> tuple[str, ...]:
        """The columns of the cluster of ``cmean()``: the grouping factor's column, or
        the columns of a factor ``a:b`` (the cluster of an imputation with several
        grouping factors)."""
        if self.cluster is None:
            return ()
        if self.parsed.group is not None or self.cluster in df.columns:
            return (self.cluster,)
        return factor_columns(self.cluster)

    def design(self, df: pd.DataFrame, i: int) -> Design:
        """Materialise completed data set ``i`` (1-based, for messages)."""
        frame = self._frame(df, i)
        y = self._response(frame, i)
        first = self._x_spec is None
        try:
            if first:
                X, Z, groups, clusters = self._first_design(frame, i)
            else:
                X, Z, groups, clusters = self._later_design(frame)
        except (FormulaicError, ValueError) as exc:
            if isinstance(exc, (DataError, SpecificationError)):
                raise
            raise FormulaError(
                f"could not materialise {self.parsed.text!r} on completed data set {i}: {exc}"
            ) from exc
        anchor = self._anchor
        if not first and X is not anchor.X:  # a later data set's own X (the first's: checked)
            self._check_rank(X, i)
        if groups is not None and (first or groups is not anchor.groups):
            self._check_levels(groups, len(y), i)
        check_finite(
            X,
            list(self.fixed_names),
            [self._x_spec],
            self.parsed.text,
            f"on completed data set {i}",
        )
        if Z is not None:
            check_finite(
                Z,
                list(self.random_names),
                self._z_specs,
                self.parsed.text,
                f"on completed data set {i}",
            )
        if self.keep is not None:
            X = X[:, self.keep]
        return Design(y, X, Z, groups, clusters)

    @property
    def _multilevel(self) -> bool:
        return self.kind in ("lmm", "glmm")

    @property
    def _group_columns(self) -> list[str]:
        """The columns that define the clusters: the grouping factor, or the columns of
        several grouping factors."""
        if self.multi:
            return list(dict.fromkeys(c for f in self.factors for c in factor_columns(f)))
        return [self.cluster]

    def _group_codes(self, frame: pd.DataFrame) -> np.ndarray:
        """``(n, T)`` group codes ``0 .. J_k - 1`` of the grouping factors (a factor
        ``a:b`` is every combination of the columns ``a`` and ``b`` that occurs)."""
        out = np.empty((len(frame), len(self.factors)), dtype=np.int64)
        for k, factor in enumerate(self.factors):
            codes = np.zeros(len(frame), dtype=np.int64)
            for col in factor_columns(factor):
                c, uniq = pd.factorize(frame[col], sort=True)
                codes = codes * max(len(uniq), 1) + c
            out[:, k] = pd.factorize(codes, sort=True)[0]
        return out

    def _first_design(self, frame: pd.DataFrame, i: int):
        with np.errstate(all="ignore"):  # NaN/inf from transforms: check_finite names them
            mm = model_matrix(
                self.parsed.fixed, frame, na_action="ignore", context=EVALUATION_CONTEXT
            )
        self._x_spec = mm.model_spec
        self.fixed_names = tuple(str(c) for c in mm.columns)
        X = np.asarray(mm, dtype=float)
        self._check_rank(X, i)
        Z = groups = clusters = None
        if self._multilevel and self.multi:
            Z = self._random_design(frame, True)
            groups = self._group_codes(frame)
        elif self._multilevel:
            Z = self._random_design(frame, True)
            groups = frame[self.cluster].to_numpy()
            clusters = _mixedlm._clusters(groups, groups.size)
        used = set(self._used)
        used.update(self._cluster_cols)
        if self.multi:
            used.update(self._group_columns)
        columns = {c: frame[c].copy() for c in sorted(used) if c in frame.columns}
        for a in (X, Z, groups):
            if a is not None:
                a.flags.writeable = False
        self._anchor = _Anchor(columns, X, Z, groups, clusters)
        return X, Z, groups, clusters

    def _later_design(self, frame: pd.DataFrame):
        anchor = self._anchor
        same_clusters = False
        if self._multilevel:
            cl = _changed_rows(frame, {c: anchor.columns[c] for c in self._group_columns})
            same_clusters = cl is not None and not cl.any()
        changed = (
            _changed_rows(frame, anchor.columns)
            if same_clusters or not (self._multilevel)
            else None
        )
        if changed is not None and not changed.any():
            return anchor.X, anchor.Z, anchor.groups, anchor.clusters
        if changed is None or changed.mean() > 0.5:
            X = _matrix(self._x_spec, frame)
            Z = groups = clusters = None
            if self._multilevel:
                Z = self._random_design(frame, False)
                groups, clusters = anchor.groups, anchor.clusters
                if not same_clusters and self.multi:
                    groups = self._group_codes(frame)
                elif not same_clusters:
                    groups, clusters = frame[self.cluster].to_numpy(), None
            return X, Z, groups, clusters
        rows = np.flatnonzero(changed)
        part = frame.iloc[rows]
        X = anchor.X.copy()
        X[rows] = _matrix(self._x_spec, part)
        Z = None
        if self._multilevel:
            Z = anchor.Z.copy()
            Z[rows] = self._random_design(part, False)
        return X, Z, anchor.groups, anchor.clusters

    def _response(self, frame: pd.DataFrame, i: int) -> np.ndarray:
        name = self.parsed.response
        col = frame[name]
        if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
            raise DataTypeError(
                f"the response {name!r} has dtype {col.dtype} in completed data set {i}; "
                "the analysis needs a numeric (or boolean) response."
            )
        y = col.to_numpy(dtype=float)
        fam = self._response_family()
        if fam is not None:
            if fam == "binomial":
                bad, need = ~((y == 0) | (y == 1)), "0/1 values"
            elif fam in ("gamma", "inverse_gaussian"):  # as R's glm(): y > 0
                bad, need = ~(y > 0), "positive values"
            else:
                bad, need = ~((y >= 0) & (y == np.round(y))), "non-negative integer counts"
            if bad.any():
                model = "mixed model" if self.kind == "glmm" else "GLM"
                raise DataTypeError(
                    f"the response {name!r} has the value {y[bad][0]:g} (row "
                    f"{frame.index[np.flatnonzero(bad)[0]]!r}) in completed data set {i}; a "
                    f"{_FAMILY_NAMES[fam]} {model} needs {need}."
                )
        return y

    def _response_family(self) -> str | None:
        """The family whose response values are restricted: ``"binomial"`` (0/1),
        ``"poisson"`` or ``"negative_binomial"`` (counts), ``"gamma"`` or
        ``"inverse_gaussian"`` (positive values); None for the others."""
        if self.kind == "glmm":
            return self.family[0]
        if self.kind == "glm":
            for cls, fam in (
                (sm.families.Binomial, "binomial"),
                (sm.families.Poisson, "poisson"),
                (sm.families.NegativeBinomial, "negative_binomial"),
                (sm.families.Gamma, "gamma"),
                (sm.families.InverseGaussian, "inverse_gaussian"),
            ):
                if isinstance(self.family, cls):
                    return fam
        return None

    def _random_design(self, frame: pd.DataFrame, first: bool) -> np.ndarray:
        if first and self.multi:
            self._first_random_terms(frame)
        elif first:
            specs, names, blocks = [], [], []
            for block in self.parsed.random:
                with np.errstate(all="ignore"):
                    mm = model_matrix(
                        block.terms, frame, na_action="ignore", context=EVALUATION_CONTEXT
                    )
                specs.append(mm.model_spec)
                names += [str(c) for c in mm.columns]
                blocks.append((mm.shape[1], block.correlated))
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise SpecificationError(
                    f"the random part of {self.parsed.text!r} has {dup} in more than one block."
                )
            self._z_specs, self.random_names = specs, tuple(names)
            simple = len(blocks) == 1 and blocks[0][1]
            self.blocks = None if simple else blocks
        mats = [_matrix(s, frame) for s in self._z_specs]
        return np.hstack(mats)

    def _first_random_terms(self, frame: pd.DataFrame) -> None:
        """The random-effect columns of several grouping factors, factor by factor (in
        formula order), each factor's blocks in formula order."""
        specs, names, labels, sizes, term_blocks = [], [], [], [], []
        for factor in self.factors:
            own, blocks = [], []
            for block, g in self.parsed.random_terms:
                if g != factor:
                    continue
                with np.errstate(all="ignore"):
                    mm = model_matrix(
                        block.terms, frame, na_action="ignore", context=EVALUATION_CONTEXT
                    )
                specs.append(mm.model_spec)
                own += [str(c) for c in mm.columns]
                blocks.append((mm.shape[1], block.correlated))
            dup = sorted({n for n in own if own.count(n) > 1})
            if dup:
                raise SpecificationError(
                    f"the random part of {self.parsed.text!r} has {dup} in more than one "
                    f"block of the grouping factor {factor!r}."
                )
            names += own
            labels += [factor] * len(own)
            sizes.append(len(own))
            term_blocks.append(blocks)
        self._z_specs, self.random_names = specs, tuple(names)
        self.random_labels, self.term_sizes = tuple(labels), tuple(sizes)
        self.term_blocks = term_blocks

    def _check_levels(self, groups: np.ndarray, n: int, i: int) -> None:
        """Refuse grouping factors with too few rows for their random effects, as lme4.

        lme4 (``lFormula``/``glFormula``, ``checkNlevels`` and ``checkZdims`` with their
        default ``"stop"``) refuses a grouping factor with fewer than 2 levels
        (``check.nlev.gtr.1``), a linear mixed model whose grouping factor has as many
        levels as observations or more (``check.nobs.vs.nlev``, ``allow.n = FALSE``), and a
        random-effect term with as many random effects (levels x effects per level) as
        observations or more (``check.nobs.vs.nRE``); a GLMM (``allow.n = TRUE``, no
        residual variance to confound) may have as many levels, or random effects, as
        observations, but not more. A term here is lme4's: a correlated block, or each
        column of an uncorrelated (``||``) block.
        """
        text = self.parsed.text
        glmm = self.kind == "glmm"
        if self.multi:
            factors = [
                (f, int(groups[:, k].max()) + 1, blocks)
                for k, (f, blocks) in enumerate(zip(self.factors, self.term_blocks, strict=True))
            ]
        else:
            blocks = self.blocks or [(len(self.random_names), True)]
            factors = [(self.cluster, int(pd.unique(groups).size), blocks)]
        for factor, J, blocks in factors:
            if J < 2:
                raise DataError(
                    f"the grouping factor {factor!r} of {text!r} has {J} level in completed "
                    f"data set {i}; a mixed model needs at least 2 (lme4: grouping factors "
                    "must have > 1 sampled level)."
                )
            q = max((size if correlated else 1) for size, correlated in blocks)
            if not glmm and J >= n:
                raise DataError(
                    f"the grouping factor {factor!r} of {text!r} has {J} levels in completed "
                    f"data set {i}, one per row ({n} rows): a random effect per row cannot "
                    "be told apart from the residual. A grouping factor needs fewer levels "
                    "than rows (lme4: number of levels of each grouping factor must be < "
                    f"number of observations); is {factor!r} a row id or a continuous "
                    "column?"
                )
            if J * q > n or (not glmm and J * q == n):
                raise DataError(
                    f"the grouping factor {factor!r} of {text!r} has {J} levels in completed "
                    f"data set {i} and {q} random effects per level, {J * q} in all, "
                    f"{'more than' if J * q > n else 'as many as'} its {n} rows: the "
                    "random-effect (co)variances cannot be estimated. lme4 needs "
                    f"{'no more' if glmm else 'fewer'} random effects per term than rows "
                    "(check.nobs.vs.nRE): drop random slopes or use a factor with fewer "
                    "levels."
                )

    def _check_rank(self, X: np.ndarray, i: int) -> None:
        """Refuse collinear fixed effects, naming the later column of each dependency.

        As R's ``lm`` (tolerance 1e-7): column ``j`` is aliased when its part orthogonal
        to the columns before it, ``|R_jj|`` of an unpivoted QR, is below 1e-7 of its norm.
        """
        n, p = X.shape
        if n <= p:
            raise DataError(
                f"{self.parsed.text!r} has {p} fixed effects but completed data set {i} only "
                f"{n} rows."
            )
        r = np.linalg.qr(X, mode="r")
        norms = np.linalg.norm(X, axis=0)
        aliased = [
            self.fixed_names[j]
            for j in range(p)
            if abs(r[j, j]) <= 1e-7 * max(norms[j], np.finfo(float).tiny)
        ]
        if aliased:
            raise SpecificationError(
                f"the fixed effects of {self.parsed.text!r} are collinear in completed data "
                f"set {i}: {aliased} are linear combinations of the columns before them (or "
                "constant zero); drop them."
            )
