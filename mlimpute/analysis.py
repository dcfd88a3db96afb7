"""Analyse multiply imputed data: fit on each completed data set, pool by Rubin's rules.

``imp.fit("grade ~ skill*gender + (1 + gender | class)")`` materialises the formula on
each of the ``m`` completed data sets, fits it and pools the fixed effects
(:func:`mlimpute.pooling.pool`) and the variance components (averages, as mitml does).
The formula is lme4's, parsed by :func:`mlimpute.formula.parse_formula`:

* with a random part, a linear mixed model (lme4's profiled REML or ML criterion
  minimised by :func:`mlimpute._mixedlm.fit_mixedlm`; REML by default; statsmodels
  ``MixedLM`` with ``engine="statsmodels"``). ``(1 + x || g)`` (uncorrelated
  random effects) and several blocks ``(1 | g) + (0 + x | g)`` are honoured: the
  random-effect covariance is fitted block-diagonal, diagonal within ``||`` blocks;
* with a random part and ``family=`` (binomial with logit or probit link, Poisson), a
  generalised linear mixed model fitted by maximum likelihood
  (:func:`mlimpute._glmm.fit_glmm`: adaptive Gauss-Hermite quadrature for a random
  intercept, the Laplace approximation otherwise, as lme4's ``glmer``);
* without one, OLS, or with ``family=`` a GLM (statsmodels ``GLM``);
* ``cmean(x)`` is the cluster mean of ``x`` in each completed data set.

The fixed-effects design is built by formulaic on the first completed data set; its
``ModelSpec`` is reused for the others, so every data set has the same columns (and
categorical encodings), named as formulaic names them (``Intercept``, ``skill:gender``).

:func:`apply` pools any function of a completed data set that returns estimates with a
covariance, and :func:`from_completed` wraps imputations made elsewhere (R's mice,
Blimp...) so that both work on them too.

Notes
-----
Cost: ``m`` model fits plus ``m`` completed data sets. For the seed's experiment 3
(600 rows, random slope, m = 25) ``imp.fit`` takes about 0.13 s: about 3 ms per
mixed-model fit (Newton's method, imputations 2..m warm-started from imputation 1's
estimates), against about 0.2 s per fit with ``engine="statsmodels"``; see
``benchmarks/bench_fit.py``. A random-intercept logit GLMM on 1,000 rows in 50 clusters
takes about 0.05-0.1 s per fit. The designs are materialised by formulaic for the first
data set only; later ones reuse it and re-materialise only the rows whose predictors
were imputed (:class:`_Model`). With ``n_jobs`` or ``client`` the fits of imputations
2..m run in worker processes (:func:`mlimpute.executors.map_blocks`), with results
identical to the serial run. Likelihood-based tests refit: D3 on a REML fit refits the
full model by ML and fits the reduced one, ``2 m`` more fits.

References
----------
.. [1] Rubin, D. B. (1987). *Multiple Imputation for Nonresponse in Surveys*. Wiley.
.. [2] Grund, S., Lüdtke, O. & Robitzsch, A. (2016). Multiple imputation of multilevel
   missing data: an introduction to the R package pan. *SAGE Open* 6(4).
.. [3] Bates, D., Mächler, M., Bolker, B. & Walker, S. (2015). Fitting linear
   mixed-effects models using lme4. *Journal of Statistical Software* 67(1).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
import statsmodels.api as sm
from formulaic import model_matrix
from formulaic.errors import FormulaicError

from . import _glmm, _mixedlm
from .errors import (
    DataError,
    DataTypeError,
    FormulaError,
    MlimputeWarning,
    PoolingError,
    SpecificationError,
    UnsupportedError,
)
from .formula import ParsedFormula, cmean_column, parse_formula
from .pooling import pool
from .results import PooledResult

__all__ = ["CompletedImputations", "apply", "fit", "from_completed"]

Kind = Literal["lmm", "glmm", "ols", "glm"]

_FAMILIES: dict[str, Callable[[], sm.families.Family]] = {
    "gaussian": sm.families.Gaussian,
    "binomial": sm.families.Binomial,
    "poisson": sm.families.Poisson,
    "gamma": sm.families.Gamma,
    "inverse_gaussian": sm.families.InverseGaussian,
    "negative_binomial": sm.families.NegativeBinomial,
}
_LINKS: dict[str, Callable[[], sm.families.links.Link]] = {
    "logit": sm.families.links.Logit,
    "probit": sm.families.links.Probit,
    "cloglog": sm.families.links.CLogLog,
    "log": sm.families.links.Log,
    "identity": sm.families.links.Identity,
    "inverse": sm.families.links.InversePower,
    "sqrt": sm.families.links.Sqrt,
}
#: Residual variance of the latent-scale response of a binary GLMM, for its ICC.
_LATENT_VARIANCE = {"logit": np.pi**2 / 3.0, "probit": 1.0}
#: Families whose dispersion is fixed at 1, so that D3 can evaluate their likelihood.
_FIXED_SCALE = (sm.families.Binomial, sm.families.Poisson)


class Design(NamedTuple):
    """One completed data set as arrays: response, fixed and random designs, clusters.

    ``X``, ``Z`` and ``groups`` may be shared, read-only, with other data sets' designs
    (see :meth:`_Model.design`); ``clusters`` caches ``(order, starts, sizes)`` of
    ``groups`` for the mixed-model fit.
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

    def __init__(self, parsed: ParsedFormula, kind: Kind, *, family=None, cluster=None,
                 engine: str = "statsmodels", nagq: int | None = None):
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
        self._anchor: _Anchor | None = None
        self._needed: list[str] | None = None
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
            self._needed = sorted(
                self.parsed.variables | ({self.cluster} if self.cluster else set()))
            self._used = set(self.parsed.predictors) | {
                cmean_column(v) for v in self.parsed.cmeans}
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
            grouped = df.groupby(self.cluster, sort=False)
            df = df.assign(
                **{cmean_column(v): grouped[v].transform("mean") for v in self.parsed.cmeans}
            )
        return df

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
        if self.keep is not None:
            X = X[:, self.keep]
        return Design(y, X, Z, groups, clusters)

    @property
    def _multilevel(self) -> bool:
        return self.kind in ("lmm", "glmm")

    def _first_design(self, frame: pd.DataFrame, i: int):
        mm = model_matrix(self.parsed.fixed, frame, na_action="raise")
        self._x_spec = mm.model_spec
        self.fixed_names = tuple(str(c) for c in mm.columns)
        X = np.asarray(mm, dtype=float)
        self._check_rank(X, i)
        Z = groups = clusters = None
        if self._multilevel:
            Z = self._random_design(frame, True)
            groups = frame[self.cluster].to_numpy()
            clusters = _mixedlm._clusters(groups, groups.size)
        used = set(self._used)
        if self.cluster is not None:
            used.add(self.cluster)
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
            cl = _changed_rows(frame, {self.cluster: anchor.columns[self.cluster]})
            same_clusters = cl is not None and not cl.any()
        changed = _changed_rows(frame, anchor.columns) if same_clusters or not (
            self._multilevel) else None
        if changed is not None and not changed.any():
            return anchor.X, anchor.Z, anchor.groups, anchor.clusters
        if changed is None or changed.mean() > 0.5:
            X = np.asarray(self._x_spec.get_model_matrix(frame), dtype=float)
            Z = groups = clusters = None
            if self._multilevel:
                Z = self._random_design(frame, False)
                groups, clusters = anchor.groups, anchor.clusters
                if not same_clusters:
                    groups, clusters = frame[self.cluster].to_numpy(), None
            return X, Z, groups, clusters
        rows = np.flatnonzero(changed)
        part = frame.iloc[rows]
        X = anchor.X.copy()
        X[rows] = np.asarray(self._x_spec.get_model_matrix(part), dtype=float)
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
        if first:
            specs, names, blocks = [], [], []
            for block in self.parsed.random:
                mm = model_matrix(block.terms, frame, na_action="raise")
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
        mats = [np.asarray(s.get_model_matrix(frame), dtype=float) for s in self._z_specs]
        return np.hstack(mats)

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
        aliased = [self.fixed_names[j] for j in range(p)
                   if abs(r[j, j]) <= 1e-7 * max(norms[j], np.finfo(float).tiny)]
        if aliased:
            raise SpecificationError(
                f"the fixed effects of {self.parsed.text!r} are collinear in completed data "
                f"set {i}: {aliased} are linear combinations of the columns before them (or "
                "constant zero); drop them."
            )

    # -- fitting --------------------------------------------------------------------------
    def fit(self, d: Design, *, reml: bool, start=None):
        """Fit one design; ``start``: a warm start (:meth:`warm_start` of another fit)."""
        if self.kind == "lmm":
            return _mixedlm.fit_mixedlm(d.y, d.X, d.Z, d.groups, reml=reml, blocks=self.blocks,
                                        engine=self.engine, start=start, clusters=d.clusters)
        if self.kind == "glmm":
            return _glmm.fit_glmm(d.y, d.X, d.Z, d.groups, self.family[0], link=self.family[1],
                                  nagq=self.nagq, blocks=self.blocks)
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
        if self.kind == "lmm":
            return _mixedlm.mixedlm_loglike(d.y, d.X, d.Z, d.groups, *params)
        if self.kind == "glmm":
            return _glmm.glmm_loglike(d.y, d.X, d.Z, d.groups, self.family[0], *params,
                                      link=self.family[1], nagq=self.nagq)
        if self.kind == "ols":
            return _mixedlm.ols_loglike(d.y, d.X, *params)
        return _mixedlm.glm_loglike(d.y, d.X, self.family, *params)

    def pooled_params(self, fits: Sequence) -> tuple:
        """Parameters averaged over imputations, mitml's convention for D3."""
        if self.kind == "lmm":
            return _mixedlm.pooled_parameters(fits)
        if self.kind == "glmm":  # means of beta and of Sigma, as for linear mixed models
            return (np.mean([f.fe_params for f in fits], axis=0),
                    np.mean([f.cov_re for f in fits], axis=0))
        if self.kind == "ols":
            return (np.mean([f.params for f in fits], axis=0),
                    float(np.mean([f.sigma2_ml for f in fits])))
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

    def _latent_variance(self) -> float | None:
        """Level-1 variance for the ICC: residual (LMM), latent (binary GLMM), else None."""
        if self.kind == "lmm":
            return np.nan  # the fit's own residual variance
        if self.kind == "glmm" and self.family[0] == "binomial":
            return _LATENT_VARIANCE[self.family[1]]
        return None

    def _mask(self) -> np.ndarray:
        q = len(self.random_names)
        return np.ones((q, q), bool) if self.blocks is None else _mixedlm.block_mask(self.blocks)

    def vc_values(self, f) -> np.ndarray:
        if isinstance(f, _mixedlm.OLSFit):
            n = f.df_resid + f.params.size
            return np.array([f.sigma2_ml * n / f.df_resid])
        iu = np.triu_indices(len(self.random_names))
        keep = self._mask()[iu]
        values = list(f.cov_re[iu][keep])
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


# --------------------------------------------------------------------------------------
# likelihoods for D2 (likelihood ratios) and D3


class _Likelihood:
    """A model fitted to every completed data set, refittable by ML (private handle).

    :class:`~mlimpute.results.PooledResult` calls :meth:`loglik_own`,
    :meth:`loglik_pooled`, :meth:`dropping` and :attr:`n_params`; fits and
    log-likelihoods are cached.
    """

    def __init__(self, source, model: _Model, fits: Sequence | None, reml: bool,
                 executor: dict | None = None):
        self.source = source
        self.model = model
        self._fits = list(fits) if fits is not None and not (
            model.kind == "lmm" and reml) else None
        self._pooled: np.ndarray | None = None
        self.executor = dict(executor or {})

    def dropping(self, terms: Sequence[str]) -> _Likelihood:
        return _Likelihood(self.source, self.model.dropping(terms), None, reml=False,
                           executor=self.executor)

    def _designs(self) -> Iterator[tuple[int, Design]]:
        for i in range(1, int(self.source.m) + 1):
            yield i, self.model.design(self.source.complete(i), i)

    def ml_fits(self) -> list:
        if self.model.kind == "glm" and not isinstance(self.model.family, _FIXED_SCALE):
            raise UnsupportedError(
                f"likelihood-based tests of a GLM need a family with a fixed dispersion "
                f"(binomial, Poisson); this one is {type(self.model.family).__name__}. Use D1 "
                "or D2 with use='wald'."
            )
        if self._fits is None:
            self._fits = _fit_all(self.source, self.model, reml=False, **self.executor)[0]
        return self._fits

    @property
    def n_params(self) -> int:
        return self.ml_fits()[0].n_params

    def loglik_own(self) -> np.ndarray:
        """ML log-likelihood of each imputation at its own estimates."""
        return np.array([f.llf for f in self.ml_fits()])

    def loglik_pooled(self) -> np.ndarray:
        """Log-likelihood of each imputation at the parameters pooled over imputations."""
        if self._pooled is None:
            params = self.model.pooled_params(self.ml_fits())
            self._pooled = np.array([self.model.loglike(d, params) for _, d in self._designs()])
        return self._pooled


# --------------------------------------------------------------------------------------
# public entry points


def _check_source(imp: Any) -> int:
    if not (hasattr(imp, "complete") and hasattr(imp, "m")):
        raise PoolingError(
            f"expected multiply imputed data (a MultiplyImputed or the result of "
            f"from_completed()), got {type(imp).__name__}."
        )
    m = int(imp.m)
    if m < 2:
        raise PoolingError(
            f"pooling needs at least 2 imputations, got m = {m}: with one completed data set "
            "there is no between-imputation variance and the standard errors would ignore "
            "the uncertainty due to the missing data. Impute with m >= 2 (20 or more is "
            "usual), or analyse that single data set directly."
        )
    return m


def _family(family: Any, link: str | None = None) -> sm.families.Family:
    if isinstance(family, sm.families.Family):
        if link is not None:
            raise SpecificationError(
                f"link={link!r} given with a statsmodels family object: set the link in the "
                "object (e.g. sm.families.Binomial(sm.families.links.Probit())) or give the "
                "family by name."
            )
        return family
    if link is not None and (not isinstance(link, str) or link.lower() not in _LINKS):
        raise SpecificationError(f"unknown link {link!r}: one of {sorted(_LINKS)}.")
    if isinstance(family, str) and family.lower() in _FAMILIES:
        if link is None:
            return _FAMILIES[family.lower()]()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # statsmodels warns on non-standard links
            return _FAMILIES[family.lower()](_LINKS[link.lower()]())
    raise SpecificationError(
        f"unknown family {family!r}: give a statsmodels family or one of {sorted(_FAMILIES)}."
    )


def _fit_one(model: _Model, d: Design, i: int, *, reml: bool, start=None):
    try:
        return model.fit(d, reml=reml, start=start)
    except (DataError, np.linalg.LinAlgError, ValueError) as exc:
        raise PoolingError(
            f"fitting {model.parsed.text!r} failed on completed data set {i}: {exc}"
        ) from exc


class _FitJob(NamedTuple):
    """What the fits of imputations 2..m share (sent once to each worker)."""

    source: Any
    model: _Model
    reml: bool
    start: Any  # warm start from the first imputation's fit
    first: Design
    first_fit: Any


def _fit_block(job: _FitJob, indices: Sequence[int]) -> list:
    """Fits of the completed data sets ``indices`` (1-based); runs in a worker too.

    A data set whose design is the first one's (same arrays, same response) gets the
    first fit itself: the same data give the same fit, whatever the start.
    """
    out = []
    for i in indices:
        d = job.model.design(job.source.complete(i), i)
        if (d.X is job.first.X and d.Z is job.first.Z
                and np.array_equal(d.y, job.first.y)):
            out.append(job.first_fit)
        else:
            out.append(_fit_one(job.model, d, i, reml=job.reml, start=job.start))
    return out


def _fit_all(source, model: _Model, *, reml: bool, n_jobs: int | None = None,
             client: Any = None) -> tuple[list, Design]:
    """Fit every completed data set: the first here, the others from its estimates.

    Imputation 1 is fitted first, from the default start; imputations 2..m start from
    its estimates (:meth:`_Model.warm_start`; the data sets differ only in imputed
    cells) and are fitted serially, in a process pool (``n_jobs``) or on a dask cluster
    (``client``) by :func:`mlimpute.executors.map_blocks`. Every fit depends only on its
    own data and on imputation 1's fit, so the executor never changes the results.
    """
    from .executors import map_blocks

    m = int(source.m)
    first = model.design(source.complete(1), 1)
    first_fit = _fit_one(model, first, 1, reml=reml)
    job = _FitJob(source, model, reml, model.warm_start(first_fit), first, first_fit)

    def failure(exc: BaseException, block: Sequence[int]) -> PoolingError:
        return PoolingError(
            f"fitting {model.parsed.text!r} on completed data sets {block[0]}-{block[-1]} "
            f"failed in a worker ({type(exc).__name__}: {exc}); rerun with n_jobs=None to "
            "see the error"
        )

    rest = map_blocks(_fit_block, job, range(2, m + 1), n_jobs=n_jobs, client=client,
                      failure=failure)
    return [first_fit, *rest], first


def fit(
    imp: Any,
    formula: str,
    *,
    reml: bool = True,
    family: str | sm.families.Family | None = None,
    link: str | None = None,
    nagq: int | None = None,
    dfcom: float | None = None,
    cluster: str | None = None,
    engine: Literal["profiled", "statsmodels"] = "profiled",
    n_jobs: int | None = None,
    client: Any = None,
) -> PooledResult:
    """Fit a model on every completed data set and pool the results.

    Usually called as ``imp.fit(formula, ...)``.

    Parameters
    ----------
    imp : MultiplyImputed or CompletedImputations
        The imputations (``m >= 2``).
    formula : str
        lme4-style formula with a response: ``"grade ~ skill*gender + (1 + gender | class)"``.
        A random part gives a linear mixed model; ``(1 + x || g)`` makes the random effects
        uncorrelated. ``cmean(x)`` is the cluster mean of ``x``. Without a random part:
        OLS, or a GLM with ``family``. A random part with ``family`` gives a GLMM.
    reml : bool, default True
        REML (lme4's default) or ML for linear mixed models. Tests on likelihoods refit by
        ML whatever is chosen here. GLMMs are always fitted by ML (``reml`` is ignored).
    family : str or statsmodels family, optional
        ``"binomial"``, ``"poisson"``, ``"gamma"``, ``"gaussian"``, ``"inverse_gaussian"``,
        ``"negative_binomial"`` or a ``statsmodels.api.families`` instance (whose link is
        used): a GLM. With a random part a generalised linear mixed model
        (:func:`mlimpute._glmm.fit_glmm`), for ``"binomial"`` (0/1 response; logit or
        probit link) and ``"poisson"`` (log link).
    link : str, optional
        Link of a family given by name: ``"logit"``, ``"probit"``, ``"cloglog"``,
        ``"log"``, ``"identity"``, ``"inverse"``, ``"sqrt"`` (default: the family's
        canonical link).
    nagq : int, optional
        GLMMs: adaptive Gauss-Hermite quadrature nodes per random effect (lme4's
        ``nAGQ``; 1 is the Laplace approximation). Default 10 with a single random effect
        (a random intercept), 1 (Laplace) with random slopes.
    dfcom : float, optional
        Complete-data degrees of freedom for the Barnard-Rubin df. By default ``n - p``
        for OLS, GLMs and GLMMs, and for linear mixed models lme4's ``df.residual()``,
        ``n - (p + number of random-effect (co)variances + 1)``, which is what mice's
        ``pool()`` uses for ``lmer`` fits (through broom.mixed); the two differ by a
        handful of df. ``numpy.inf`` gives Rubin's large-sample df (mitml's default).
    cluster : str, optional
        Cluster column for ``cmean(x)`` in a formula without a random part (by default
        the grouping factor, or the imputation's cluster).
    engine : {"profiled", "statsmodels"}, default "profiled"
        Linear mixed-model fitter (:func:`mlimpute._mixedlm.fit_mixedlm`): Newton's
        method on lme4's profiled deviance with its analytic gradient (checked, with a
        Nelder-Mead fallback), or statsmodels ``MixedLM`` with its optimum checked on the
        profiled deviance -- a cross-check, 40-60 times slower, that agrees to about 1e-6
        (statsmodels' own precision). Imputations 2..m start from imputation 1's
        estimates.
    n_jobs : int, optional
        Fit imputations 2..m in a pool of ``n_jobs`` worker processes (-1: all cores), as
        :meth:`mlimpute.MultiplyImputed` does for the chains; the data reach each worker
        once. Results are identical to the serial run. Pays off for slow fits (large
        data, GLMMs, ``engine="statsmodels"``): a pool costs about 0.02 s to start
        (``fork``), 0.1-1 s otherwise.
    client : dask.distributed.Client, optional
        Fit them as tasks on this dask cluster instead (data scattered once).

    Returns
    -------
    PooledResult
        ``.summary()``, ``.variance_components()``, ``.test()``, ``.compare()``...

    Raises
    ------
    PoolingError
        If ``m < 2``, or a fit fails on some completed data set (named in the message).
    FormulaError, SpecificationError, DataError, DataTypeError
        For a formula without response, an unknown column, missing values in an analysed
        column, collinear fixed effects, or a GLMM response that is not 0/1 (binomial) or
        a count (Poisson).
    UnsupportedError
        For a random part with a family or link other than binomial (logit, probit) and
        Poisson (log).

    Notes
    -----
    GLMMs: the fixed effects are pooled with the ``n - p`` complete-data df (R's mice
    would take ``df.residual()`` of a ``glmer`` fit, ``n - p`` minus the number of
    random-effect (co)variances: a difference of 1-3 df). Their complete-data covariance
    is lme4's default ``vcov()``, the fixed-effects block of the inverse observed
    information in all parameters. ``.variance_components()`` reports the random-effect
    (co)variances on the latent (linear predictor) scale and, for binomial models, the
    latent-scale ICC ``var / (var + pi^2/3)`` (logit) or ``var / (var + 1)`` (probit);
    there is no residual variance. All tests work; D3 evaluates each data set's
    likelihood at the pooled ``beta`` and pooled ``Sigma`` (mitml's convention).

    A fit that is singular (lme4's ``isSingular`` rule: a diagonal entry of the relative
    Cholesky factor below 1e-4, i.e. a variance at zero or a correlation at +-1) or whose
    optimiser did not converge is kept in the pooling, counted in ``.singular`` /
    ``.nonconverged``, shown under the table and announced by one ``MlimputeWarning``.

    With ``m = 1`` this raises :class:`PoolingError` instead of returning the single fit:
    Rubin's rules need ``m >= 2``. Identical imputations (``B = 0``, e.g. no missing
    values) give the complete-data answer with ``fmi = 0``.

    Examples
    --------
    >>> import mlimpute
    >>> from mlimpute.datasets import classroom
    >>> d = classroom(1, rng=1)
    >>> imp = d.incomplete.mi.impute(d.imputation, m=5, iterations=10, rng=2)
    >>> res = imp.fit("grade ~ skill + (1 | class)")
    >>> res.summary()[["estimate", "se", "fmi"]].round(2)  # doctest: +NORMALIZE_WHITESPACE
               estimate    se   fmi
    term
    Intercept      9.97  0.19  0.28
    skill          0.79  0.23  0.31
    >>> list(res.variance_components().index)
    ['var(Intercept|class)', 'var(Residual)', 'ICC|class']

    A multilevel probit model of a binary outcome:

    >>> imp2 = mlimpute.from_completed([d.complete.assign(good=lambda f: f.grade > 10)] * 2)
    >>> res = imp2.fit("good ~ skill + (1 | class)", family="binomial", link="probit")
    >>> res.model
    'GLMM (binomial, probit link; ML, adaptive Gauss-Hermite, 10 nodes)'
    >>> list(res.variance_components().index)
    ['var(Intercept|class)', 'ICC|class']
    """
    m = _check_source(imp)
    parsed = formula if isinstance(formula, ParsedFormula) else parse_formula(formula)
    if parsed.response is None:
        raise FormulaError(f"an analysis formula needs a response: {parsed.text!r}")
    if not isinstance(reml, (bool, np.bool_)):
        raise SpecificationError(f"reml must be True or False, got {reml!r}")
    if link is not None and family is None:
        raise SpecificationError(f"link={link!r} needs a family (e.g. family='binomial').")
    glm_family = None if family is None else _family(family, link)
    if glm_family is not None and parsed.is_multilevel:
        try:
            glm_family = _glmm.glmm_family(glm_family)
        except UnsupportedError as exc:
            raise UnsupportedError(
                f"{parsed.text!r} has a random part: {exc} For a normal response drop "
                "family= (a linear mixed model)."
            ) from None
    if nagq is not None and (isinstance(nagq, bool) or not isinstance(
            nagq, (int, np.integer)) or nagq < 1):
        raise SpecificationError(f"nagq must be a positive integer (1 = Laplace), got {nagq!r}")
    if engine not in ("statsmodels", "profiled"):
        raise SpecificationError(f"engine must be 'statsmodels' or 'profiled', got {engine!r}")
    if n_jobs is not None and client is not None:
        raise SpecificationError("pass n_jobs or client, not both")
    if dfcom is not None and not float(dfcom) > 0:
        raise PoolingError(f"dfcom must be positive (or inf), got {dfcom!r}")
    if cluster is None and getattr(imp, "spec", None) is not None:
        cluster = getattr(imp.spec, "cluster", None)
    if parsed.cmeans and parsed.group is None and cluster is None:
        raise FormulaError(
            f"cmean({parsed.cmeans[0]}) in {parsed.text!r} needs a cluster: add a random part "
            "or pass cluster=."
        )
    if parsed.is_multilevel:
        kind: Kind = "lmm" if family is None else "glmm"
    else:
        kind = "glm" if family is not None else "ols"
    model = _Model(parsed, kind, family=glm_family, cluster=cluster, engine=engine, nagq=nagq)

    executor = {"n_jobs": n_jobs, "client": client}
    fits, first = _fit_all(imp, model, reml=bool(reml), **executor)
    nobs = first.y.size
    n_groups = None if first.groups is None else int(pd.unique(first.groups).size)
    est = np.array([model.estimates(f)[0] for f in fits])
    cov = np.array([model.estimates(f)[1] for f in fits])
    dfc = min(model.dfcom(f) for f in fits) if dfcom is None else float(dfcom)
    pooled = pool(est, cov, dfcom=dfc, names=model.fixed_names)

    singular = [i for i, f in enumerate(fits, 1) if getattr(f, "singular", False)]
    nonconv = [i for i, f in enumerate(fits, 1) if not getattr(f, "converged", True)]
    vc_names = model.vc_names()
    vc = None if vc_names is None else (vc_names, np.array([model.vc_values(f) for f in fits]))
    result = PooledResult(
        estimates=est,
        covariances=cov,
        pooled=pooled,
        model=model.describe(bool(reml)),
        formula=parsed.text,
        response=parsed.response,
        nobs=nobs,
        group=model.cluster if kind in ("lmm", "glmm") else None,
        n_groups=n_groups,
        fits=fits,
        variance_components=vc,
        singular=singular,
        nonconverged=nonconv,
        source=imp,
        likelihood=_Likelihood(imp, model, fits, reml=bool(reml), executor=executor),
    )
    if result.notes:
        warnings.warn("; ".join(result.notes) + f" (m = {m}).", MlimputeWarning, stacklevel=3)
    return result


def _labels(obj: Any) -> list[str] | None:
    if isinstance(obj, (pd.Series, pd.DataFrame)):
        return [str(x) for x in obj.index]
    return None


def _unpack(out: Any, i: int) -> tuple[np.ndarray, np.ndarray, list[str] | None, float | None,
                                        bool]:
    """(estimates, covariance, names, dfcom, converged) from what the user function returned."""
    converged = True
    if hasattr(out, "params") and hasattr(out, "cov_params"):
        cov_full = out.cov_params()
        if hasattr(out, "fe_params"):  # MixedLMResults: pool the fixed effects only
            est = out.fe_params
            k = len(np.asarray(est))
            cov = np.asarray(cov_full)[:k, :k]
        else:
            est, cov = out.params, cov_full
        names = _labels(est)
        if names is None and getattr(getattr(out, "model", None), "exog_names", None):
            names = [str(n) for n in out.model.exog_names][: len(np.asarray(est))]
        dfc = getattr(out, "df_resid", None)
        if getattr(out, "converged", True) is False or (
            isinstance(getattr(out, "mle_retvals", None), dict)
            and out.mle_retvals.get("converged") is False
        ):
            converged = False
        dfc = float(dfc) if dfc is not None and np.isfinite(dfc) and dfc > 0 else None
        return np.asarray(est, float), np.asarray(cov, float), names, dfc, converged
    if isinstance(out, (tuple, list)) and len(out) in (2, 3):
        est, cov = out[0], out[1]
        names = _labels(est)
        if isinstance(cov, pd.DataFrame) and names is not None:
            try:
                cov = cov.loc[list(est.index), list(est.index)]
            except KeyError as exc:
                raise PoolingError(
                    f"the covariance returned for completed data set {i} lacks the term "
                    f"{exc.args[0]!r} of the estimates."
                ) from None
        dfc = None if len(out) == 2 or out[2] is None else float(out[2])
        return np.asarray(est, float), np.asarray(cov, float), names, dfc, converged
    raise PoolingError(
        f"func returned a {type(out).__name__} for completed data set {i}; expected a fitted "
        "statsmodels results object or a tuple (estimates, covariance[, dfcom])."
    )


def apply(
    imp: Any,
    func: Callable[[pd.DataFrame], Any],
    *,
    dfcom: float | None = None,
    names: Sequence[str] | None = None,
) -> PooledResult:
    """Pool any analysis: call ``func`` on each completed data set, combine by Rubin's rules.

    Usually called as ``imp.apply(func)``.

    Parameters
    ----------
    imp : MultiplyImputed or CompletedImputations
        The imputations (``m >= 2``).
    func : callable
        Receives one completed data set (a copy; changing it changes nothing) and returns
        either a fitted statsmodels results object (its ``.params``, ``.cov_params()``
        and ``.df_resid`` are used; for ``MixedLM`` the fixed effects ``.fe_params``) or
        a tuple ``(estimates, covariance)`` / ``(estimates, covariance, dfcom)``.
        Estimates may be a pandas Series (its index names the terms) or an array;
        the covariance a ``(k, k)`` array or DataFrame, or a ``(k,)`` array of variances.
    dfcom : float, optional
        Complete-data df; by default the smallest returned (``dfcom`` or ``df_resid``)
        over the imputations, else ``inf``.
    names : sequence of str, optional
        Term names when the estimates are unnamed (default ``Parameter.1``, ...).

    Returns
    -------
    PooledResult
        D1 and D2 (Wald) tests work on it; likelihood-based tests need :func:`fit`.

    Examples
    --------
    >>> import mlimpute, statsmodels.formula.api as smf
    >>> from mlimpute.datasets import classroom
    >>> d = classroom(1, rng=1)
    >>> imp = d.incomplete.mi.impute(d.imputation, m=5, iterations=10, rng=2)
    >>> res = imp.apply(lambda df: smf.ols("grade ~ skill", df).fit())
    >>> list(res.summary().index)
    ['Intercept', 'skill']
    >>> res = imp.apply(lambda df: (df[["grade"]].mean(), df[["grade"]].var() / len(df)))
    >>> round(float(res.summary().loc["grade", "estimate"]), 2)
    9.92
    """
    m = _check_source(imp)
    if not callable(func):
        raise PoolingError(f"func must be callable, got {type(func).__name__}.")
    ests, covs, dfcs, fits, nonconv = [], [], [], [], []
    first_names: list[str] | None = None
    for i, df in enumerate(imp.complete("all"), start=1):
        out = func(df)
        est, cov, nm, dfc, ok = _unpack(out, i)
        est = np.atleast_1d(est)
        k = est.size
        if cov.shape == (k,):
            cov = np.diag(cov)
        if cov.shape != (k, k):
            raise PoolingError(
                f"completed data set {i}: {k} estimates but a covariance of shape {cov.shape}; "
                f"expected ({k}, {k}) or ({k},)."
            )
        if i == 1:
            first_names = nm
        elif nm is not None and first_names is not None and nm != first_names:
            if sorted(nm) != sorted(first_names):
                odd = sorted(set(nm) ^ set(first_names))
                raise PoolingError(
                    f"completed data set {i} returned other terms than data set 1: {odd}."
                )
            order = [nm.index(n) for n in first_names]
            est, cov = est[order], cov[np.ix_(order, order)]
        if ests and k != ests[0].size:
            raise PoolingError(
                f"completed data set {i} returned {k} estimates, data set 1 {ests[0].size}."
            )
        ests.append(est)
        covs.append(cov)
        fits.append(out)
        if dfc is not None:
            dfcs.append(dfc)
        if not ok:
            nonconv.append(i)
    label = names if names is not None else first_names
    dfc = float(dfcom) if dfcom is not None else (min(dfcs) if dfcs else np.inf)
    pooled = pool(np.array(ests), np.array(covs), dfcom=dfc, names=label)
    name = getattr(func, "__name__", type(func).__name__)
    result = PooledResult(
        estimates=np.array(ests),
        covariances=np.array(covs),
        pooled=pooled,
        model=f"user function {name}()",
        fits=fits,
        nonconverged=nonconv,
        source=imp,
    )
    if result.notes:
        warnings.warn("; ".join(result.notes) + f" (m = {m}).", MlimputeWarning, stacklevel=3)
    return result


# --------------------------------------------------------------------------------------
# imputations made elsewhere


class CompletedImputations:
    """``m`` completed data sets made elsewhere (R's mice, Blimp...), ready to analyse.

    Made by :func:`from_completed`. A :class:`~mlimpute.MultiplyImputed` stores the
    imputed cells of one incomplete DataFrame together with the imputation model and its
    traces; for imputations made elsewhere none of those is known (which cells were
    missing cannot be told reliably from the completed data), so this small class holds
    the completed data sets themselves and offers the same analysis interface:
    :attr:`m`, :meth:`complete`, :meth:`fit`, :meth:`apply`.

    Attributes
    ----------
    m : int
    columns : pandas.Index
    events : list of str
        Decisions taken while reading the data (e.g. an imputation 0 skipped).
    """

    def __init__(self, frames: Sequence[pd.DataFrame], events: Sequence[str] = ()):
        self._frames = tuple(frames)
        self.events = list(events)

    @property
    def m(self) -> int:
        return len(self._frames)

    @property
    def columns(self) -> pd.Index:
        return self._frames[0].columns

    def complete(self, which: int | Literal["all", "long"] = 1):
        """Completed data set ``which`` (1-based), ``"all"`` (an iterator) or ``"long"``.

        Every call returns copies: changing them leaves the stored data unchanged.
        """
        if isinstance(which, str):
            if which == "all":
                return (f.copy() for f in self._frames)
            if which == "long":
                return pd.concat(
                    [f.assign(imputation=i) for i, f in enumerate(self._frames, 1)]
                )[["imputation", *self.columns]]
            raise SpecificationError(f"which must be an int, 'long' or 'all', got {which!r}")
        if isinstance(which, bool) or not isinstance(which, (int, np.integer)) or not (
            1 <= which <= self.m
        ):
            raise SpecificationError(
                f"imputation {which!r} does not exist: imputations are numbered 1..{self.m}"
            )
        return self._frames[int(which) - 1].copy()

    def __iter__(self) -> Iterator[pd.DataFrame]:
        return self.complete("all")

    def __len__(self) -> int:
        return self.m

    def fit(self, formula: str, **kwargs) -> PooledResult:
        """Fit ``formula`` on every completed data set and pool; see :func:`fit`."""
        return fit(self, formula, **kwargs)

    def apply(self, func: Callable[[pd.DataFrame], Any], **kwargs) -> PooledResult:
        """Pool any per-data-set analysis; see :func:`apply`."""
        return apply(self, func, **kwargs)

    def __repr__(self) -> str:
        n = len(self._frames[0])
        return (f"<CompletedImputations: m={self.m}, rows={n}, "
                f"columns={list(self.columns)}>")


def from_completed(
    dfs: pd.DataFrame | Iterable[pd.DataFrame], imputation: str = "imputation"
) -> CompletedImputations:
    """Wrap completed data sets imputed elsewhere so that they can be analysed and pooled.

    Parameters
    ----------
    dfs : list of DataFrame or DataFrame
        Either the ``m`` completed data sets, or one long DataFrame stacking them with an
        ``imputation`` column (e.g. R's ``mice::complete(imp, "long")``, whose column is
        ``.imp``, or Blimp's stacked output). Rows with imputation 0 (mice's
        ``include = TRUE`` copy of the incomplete data) are skipped, and that is noted in
        ``.events``.
    imputation : str, default "imputation"
        Name of the imputation column of a long DataFrame; it is removed from the data
        sets.

    Returns
    -------
    CompletedImputations
        With ``.fit()``, ``.apply()``, ``.complete(i)``; holds copies of the data.

    Raises
    ------
    SpecificationError
        If there is no data set, a data set is not a DataFrame, the data sets do not have
        the same columns or numbers of rows, or the long form lacks its imputation column.

    Examples
    --------
    >>> import mlimpute.analysis as mia
    >>> from mlimpute.datasets import classroom
    >>> df = classroom(1, rng=1).complete
    >>> mia.from_completed([df, df, df]).m
    3
    >>> long = pd.concat([df.assign(imp=i) for i in (1, 2)])
    >>> mia.from_completed(long, imputation="imp").complete(2).shape
    (600, 3)
    """
    events: list[str] = []
    if isinstance(dfs, pd.DataFrame):
        if imputation not in dfs.columns:
            raise SpecificationError(
                f"a single DataFrame must be in long form with an imputation column "
                f"{imputation!r}; its columns are {list(dfs.columns)} (pass imputation=...)."
            )
        if dfs[imputation].isna().any():
            raise SpecificationError(f"the imputation column {imputation!r} has missing values.")
        labels = pd.unique(dfs[imputation])
        if 0 in set(labels) and len(labels) > 1:
            events.append(f"rows with {imputation} = 0 (the incomplete data) were skipped")
            labels = [v for v in labels if v != 0]
        frames = [dfs.loc[dfs[imputation] == v].drop(columns=imputation)
                  for v in sorted(labels)]
    else:
        if isinstance(dfs, (str, bytes)) or not isinstance(dfs, Iterable):
            raise SpecificationError(
                f"dfs must be a list of DataFrames or one long DataFrame, got "
                f"{type(dfs).__name__}."
            )
        frames = list(dfs)
        for i, f in enumerate(frames, 1):
            if not isinstance(f, pd.DataFrame):
                raise SpecificationError(
                    f"completed data set {i} is a {type(f).__name__}, not a DataFrame."
                )
    if not frames:
        raise SpecificationError("no completed data sets given (m must be at least 1).")
    cols = frames[0].columns
    if cols.duplicated().any():
        raise SpecificationError(f"duplicated column names: {list(cols[cols.duplicated()])}")
    out = []
    for i, f in enumerate(frames, 1):
        if set(f.columns) != set(cols) or len(f.columns) != len(cols):
            extra = sorted(map(str, set(f.columns) - set(cols)))
            lacking = sorted(map(str, set(cols) - set(f.columns)))
            raise SpecificationError(
                f"completed data set {i} does not have the columns of data set 1: "
                f"missing {lacking}, extra {extra}."
            )
        if len(f) != len(frames[0]):
            raise SpecificationError(
                f"completed data set {i} has {len(f)} rows, data set 1 has {len(frames[0])}."
            )
        out.append(f[list(cols)].copy())
    return CompletedImputations(out, events)
