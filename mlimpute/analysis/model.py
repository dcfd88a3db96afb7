"""One analysis model of :mod:`mlimpute.analysis`: formula -> designs -> fits.

:class:`_Model` turns a parsed formula into the arrays of each completed data set
(:class:`Design`; formulaic builds the first, later data sets reuse it) and fits them with
the engine of its kind: the profiled linear mixed model
(:mod:`mlimpute.analysis.fitters.mixedlm`) or statsmodels' ``MixedLM``, the GLMM
(:mod:`mlimpute.analysis.fitters.glmm`), OLS or a GLM.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
import statsmodels.api as sm
from formulaic import model_matrix
from formulaic.errors import FormulaicError

from mlimpute.analysis.fitters import glmm as _glmm
from mlimpute.analysis.fitters import mixedlm as _mixedlm
from mlimpute.analysis.fitters import multiterm as _multiterm
from mlimpute.errors import (
    DataError,
    DataTypeError,
    FormulaError,
    SpecificationError,
    UnsupportedError,
)
from mlimpute.sampler.design import check_finite
from mlimpute.spec.formula import ParsedFormula, cmean_column, factor_columns
from mlimpute.spec.grammar import EVALUATION_CONTEXT, validate_rhs

Kind = Literal["lmm", "glmm", "ols", "glm"]


#: Residual variance of the latent-scale response of a binary GLMM, for its ICC.
_LATENT_VARIANCE = {"logit": np.pi**2 / 3.0, "probit": 1.0}
#: Families whose dispersion is fixed at 1, so that D3 can evaluate their likelihood.
_FIXED_SCALE = (sm.families.Binomial, sm.families.Poisson)


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


# --------------------------------------------------------------------------------------
# one analysis model: formula -> designs -> fits


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


class _Model:
    """How one formula turns a completed data set into a design and a fit.

    The formulaic ``ModelSpec`` of the fixed part (and of each random block) is taken from
    the first data set materialised and reused for every later one. ``keep`` selects
    columns of the fixed design (the reduced model of a test drops some).

    Later data sets differ from the first only in imputed cells, so their designs are
    not built anew: the rows where a column the designs are built from (predictors,
    cluster means, the cluster) differs from the first data set are found by comparing
    values, and only those rows are materialised (with the same ``ModelSpec``, so the
    same encodings) into a copy of the first design; with none, the first data set's
    arrays are shared. (With more than half the rows changed, the whole data set is
    materialised.) Formulaic's transforms act row by row once their state is frozen in
    the ``ModelSpec``, so the result is the full materialisation, bit for bit.
    """

    def __init__(
        self,
        parsed: ParsedFormula,
        kind: Kind,
        *,
        family=None,
        cluster=None,
        engine: str = "statsmodels",
        nagq: int | None = None,
    ):
        for rhs in (parsed.fixed, *(b.terms for b in parsed.random)):
            validate_rhs(rhs, parsed.text)  # also a ParsedFormula built by hand
        self.multi = parsed.several_groups
        if self.multi and kind == "glmm":
            raise UnsupportedError(
                f"generalised linear mixed models support one grouping factor; "
                f"{parsed.text!r} has the grouping factors {list(parsed.groups)} (linear "
                "mixed models, without family=, support several)."
            )
        if self.multi and kind == "lmm" and engine == "statsmodels":
            raise UnsupportedError(
                f"engine='statsmodels' supports one grouping factor; {parsed.text!r} has "
                f"the grouping factors {list(parsed.groups)}: use engine='profiled'."
            )
        self.parsed = parsed
        self.kind = kind
        self.family = family  # statsmodels family (glm) or (family, link) names (glmm)
        self.engine = engine
        self.nagq = nagq
        self.cluster = parsed.group or cluster
        self.keep: np.ndarray | None = None
        self._x_spec = None
        self._z_specs: list | None = None
        self.fixed_names: tuple[str, ...] = ()
        self.random_names: tuple[str, ...] = ()
        self.blocks: list[tuple[int, bool]] | None = None
        #: several grouping factors: the factors (formula order), per factor its blocks
        #: and number of random effects, and the factor of each random-effect column
        self.factors: tuple[str, ...] = parsed.groups if self.multi else ()
        self.term_blocks: list[list[tuple[int, bool]]] = []
        self.term_sizes: tuple[int, ...] = ()
        self.random_labels: tuple[str, ...] = ()
        self._anchor: _Anchor | None = None
        self._needed: list[str] | None = None
        self._cluster_cols: tuple[str, ...] = ()
        self._used: set[str] = set()

    @property
    def names(self) -> tuple[str, ...]:
        if self.keep is None:
            return self.fixed_names
        return tuple(n for n, k in zip(self.fixed_names, self.keep, strict=True) if k)

    def dropping(self, terms: Sequence[str]) -> _Model:
        """The same model without the fixed-effect columns ``terms`` (specs shared)."""
        out = _Model.__new__(_Model)
        out.__dict__.update(self.__dict__)
        out.keep = np.array([n not in set(terms) for n in self.fixed_names])
        if self.keep is not None:
            out.keep &= self.keep
        return out

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
        try:
            if self._x_spec is None:
                X, Z, groups, clusters = self._first_design(frame, i)
            else:
                X, Z, groups, clusters = self._later_design(frame)
        except (FormulaicError, ValueError) as exc:
            if isinstance(exc, (DataError, SpecificationError)):
                raise
            raise FormulaError(
                f"could not materialise {self.parsed.text!r} on completed data set {i}: {exc}"
            ) from exc
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
        if self.kind == "glmm":
            fam = self.family[0]
            bad = ~((y == 0) | (y == 1)) if fam == "binomial" else ~((y >= 0) & (y == np.round(y)))
            if bad.any():
                need = "0/1 values" if fam == "binomial" else "non-negative integer counts"
                raise DataTypeError(
                    f"the response {name!r} has the value {y[bad][0]:g} (row "
                    f"{frame.index[np.flatnonzero(bad)[0]]!r}) in completed data set {i}; a "
                    f"{fam} mixed model needs {need}."
                )
        return y

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

    def _terms(self, d: Design) -> list:
        """The random-effect terms of a design with several grouping factors."""
        out, o = [], 0
        for k, (factor, q) in enumerate(zip(self.factors, self.term_sizes, strict=True)):
            codes = d.groups[:, k]
            out.append(
                _multiterm.Term(
                    d.Z[:, o : o + q],
                    codes,
                    int(codes.max()) + 1,
                    _mixedlm.block_mask(self.term_blocks[k]),
                    factor,
                )
            )
            o += q
        return out

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

    # -- fitting --------------------------------------------------------------------------
    def fit(self, d: Design, *, reml: bool, start=None):
        """Fit one design; ``start``: a warm start (:meth:`warm_start` of another fit)."""
        if self.kind == "lmm" and self.multi:
            terms = self._terms(d)
            if len(terms) == 1:  # one grouping factor made of several columns
                blocks = self.term_blocks[0]
                return _mixedlm.fit_mixedlm(
                    d.y,
                    d.X,
                    d.Z,
                    terms[0].codes,
                    reml=reml,
                    blocks=None if len(blocks) == 1 and blocks[0][1] else blocks,
                    engine=self.engine,
                    start=start,
                )
            return _multiterm.fit_multiterm(d.y, d.X, terms, reml=reml, start=start)
        if self.kind == "lmm":
            return _mixedlm.fit_mixedlm(
                d.y,
                d.X,
                d.Z,
                d.groups,
                reml=reml,
                blocks=self.blocks,
                engine=self.engine,
                start=start,
                clusters=d.clusters,
            )
        if self.kind == "glmm":
            return _glmm.fit_glmm(
                d.y,
                d.X,
                d.Z,
                d.groups,
                self.family[0],
                link=self.family[1],
                nagq=self.nagq,
                blocks=self.blocks,
            )
        if self.kind == "ols":
            return _mixedlm.fit_ols(d.y, d.X)
        return _mixedlm.fit_glm(d.y, d.X, self.family)

    def warm_start(self, f):
        """Where fits of the other imputations start: this fit's ``theta`` (LMMs with the
        profiled engine; None otherwise)."""
        if self.kind == "lmm" and self.engine == "profiled":
            return f.theta
        return None

    def loglike(self, d: Design, params: tuple) -> float:
        """Log-likelihood of data set ``d`` at given (pooled) parameters."""
        if self.kind == "lmm" and self.multi:
            terms = self._terms(d)
            if len(terms) == 1:
                return _mixedlm.mixedlm_loglike(d.y, d.X, d.Z, terms[0].codes, *params)
            return _multiterm.multiterm_loglike(d.y, d.X, terms, *params)
        if self.kind == "lmm":
            return _mixedlm.mixedlm_loglike(d.y, d.X, d.Z, d.groups, *params)
        if self.kind == "glmm":
            return _glmm.glmm_loglike(
                d.y,
                d.X,
                d.Z,
                d.groups,
                self.family[0],
                *params,
                link=self.family[1],
                nagq=self.nagq,
            )
        if self.kind == "ols":
            return _mixedlm.ols_loglike(d.y, d.X, *params)
        return _mixedlm.glm_loglike(d.y, d.X, self.family, *params)

    def pooled_params(self, fits: Sequence) -> tuple:
        """Parameters averaged over imputations, mitml's convention for D3."""
        if self.kind == "lmm":
            return _mixedlm.pooled_parameters(fits)
        if self.kind == "glmm":  # means of beta and of Sigma, as for linear mixed models
            return (
                np.mean([f.fe_params for f in fits], axis=0),
                np.mean([f.cov_re for f in fits], axis=0),
            )
        if self.kind == "ols":
            return (
                np.mean([f.params for f in fits], axis=0),
                float(np.mean([f.sigma2_ml for f in fits])),
            )
        return (np.mean([f.params for f in fits], axis=0),)

    @staticmethod
    def estimates(f) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(f, (_mixedlm.MixedFit, _glmm.GLMMFit)):
            return f.fe_params, f.cov_fe
        return f.params, f.cov_params

    @staticmethod
    def dfcom(f) -> float:
        """Complete-data df: ``n - p`` (OLS, GLM, GLMM); lme4's ``df.residual`` (LMM)."""
        if isinstance(f, _glmm.GLMMFit):
            return float(f.nobs - f.fe_params.size)
        if isinstance(f, _mixedlm.MixedFit):
            return float(f.nobs - f.n_params)
        return float(f.df_resid)

    # -- variance components --------------------------------------------------------------
    def vc_names(self) -> tuple[str, ...] | None:
        if self.kind == "ols":
            return ("var(Residual)",)
        if self.kind not in ("lmm", "glmm"):
            return None
        if self.multi:
            return self._vc_names_multi()
        g, rn = self.cluster, self.random_names
        mask = self._mask()
        names = []
        for a in range(len(rn)):
            for b in range(a, len(rn)):
                if mask[a, b]:
                    names.append(f"var({rn[a]}|{g})" if a == b else f"cov({rn[a]},{rn[b]}|{g})")
        if self.kind == "lmm":
            names.append("var(Residual)")
        if "Intercept" in rn and self._latent_variance() is not None:
            names.append(f"ICC|{g}")
        return tuple(names)

    def _vc_names_multi(self) -> tuple[str, ...]:
        """Several grouping factors: each factor's (co)variances (``var(x|school)``,
        ``cov(Intercept,x|school:class)``), ``var(Residual)``, then ``ICC|factor`` for
        each factor with a random intercept."""
        rn, lab = self.random_names, self.random_labels
        mask = self._mask()
        names = []
        for a in range(len(rn)):
            for b in range(a, len(rn)):
                if mask[a, b]:
                    g = lab[a]
                    names.append(f"var({rn[a]}|{g})" if a == b else f"cov({rn[a]},{rn[b]}|{g})")
        names.append("var(Residual)")
        names += [f"ICC|{g}" for g, _ in self._intercepts()]
        return tuple(names)

    def _intercepts(self) -> list[tuple[str, int]]:
        """``(factor, column)`` of each grouping factor's random intercept."""
        return [
            (g, j)
            for j, (n, g) in enumerate(zip(self.random_names, self.random_labels, strict=True))
            if n == "Intercept"
        ]

    def _latent_variance(self) -> float | None:
        """Level-1 variance for the ICC: residual (LMM), latent (binary GLMM), else None."""
        if self.kind == "lmm":
            return np.nan  # the fit's own residual variance
        if self.kind == "glmm" and self.family[0] == "binomial":
            return _LATENT_VARIANCE[self.family[1]]
        return None

    def _mask(self) -> np.ndarray:
        q = len(self.random_names)
        if self.multi:
            return _mixedlm.block_mask([b for blocks in self.term_blocks for b in blocks])
        return np.ones((q, q), bool) if self.blocks is None else _mixedlm.block_mask(self.blocks)

    def vc_values(self, f) -> np.ndarray:
        if isinstance(f, _mixedlm.OLSFit):
            n = f.df_resid + f.params.size
            return np.array([f.sigma2_ml * n / f.df_resid])
        iu = np.triu_indices(len(self.random_names))
        keep = self._mask()[iu]
        values = list(f.cov_re[iu][keep])
        if self.multi:
            # ICC per level: that level's intercept variance over the total of the
            # intercept variances and the residual variance (variance partition)
            ints = [j for _, j in self._intercepts()]
            total = sum(f.cov_re[j, j] for j in ints) + f.scale
            return np.array(values + [f.scale] + [f.cov_re[j, j] / total for j in ints])
        level1 = self._latent_variance()
        if self.kind == "lmm":
            values.append(f.scale)
            level1 = f.scale
        if "Intercept" in self.random_names and level1 is not None:
            j = self.random_names.index("Intercept")
            values.append(f.cov_re[j, j] / (f.cov_re[j, j] + level1))
        return np.array(values)

    def describe(self, reml: bool) -> str:
        if self.kind == "lmm":
            return f"linear mixed model ({'REML' if reml else 'ML'})"
        if self.kind == "glmm":
            k = _glmm._resolve_nagq(self.nagq, len(self.random_names))
            how = "Laplace" if k == 1 else f"adaptive Gauss-Hermite, {k} nodes"
            return f"GLMM ({self.family[0]}, {self.family[1]} link; ML, {how})"
        if self.kind == "ols":
            return "linear model (OLS)"
        fam = self.family
        return f"GLM ({type(fam).__name__.lower()}, {type(fam.link).__name__.lower()} link)"
