"""One analysis model of :mod:`mlimpute.analysis`: formula -> designs -> fits.

:class:`_Model` turns a parsed formula into the arrays of each completed data set
(:class:`Design`; formulaic builds the first, later data sets reuse it) and fits them with
the engine of its kind: the profiled linear mixed model
(:mod:`mlimpute.analysis.fitters.mixedlm`) or statsmodels' ``MixedLM``, the GLMM
(:mod:`mlimpute.analysis.fitters.glmm`), OLS or a GLM. The designs are built in
:mod:`mlimpute.analysis.model_design`, the variance components read in
:mod:`mlimpute.analysis.model_vc`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import statsmodels.api as sm

from mlimpute.analysis.fitters import glmm as _glmm
from mlimpute.analysis.fitters import mixedlm as _mixedlm
from mlimpute.analysis.fitters import multiterm as _multiterm
from mlimpute.analysis.model_design import (
    Design,
    _Anchor,
    _changed_rows,  # noqa: F401  (re-exported: mlimpute.analysis reaches it here)
    _Designs,
)
from mlimpute.analysis.model_vc import _VarianceComponents
from mlimpute.errors import UnsupportedError
from mlimpute.spec.formula import ParsedFormula
from mlimpute.spec.grammar import validate_rhs

Kind = Literal["lmm", "glmm", "ols", "glm"]


#: Families whose dispersion is fixed at 1, so that D3 can evaluate their likelihood.
_FIXED_SCALE = (sm.families.Binomial, sm.families.Poisson)


# --------------------------------------------------------------------------------------
# one analysis model: formula -> designs -> fits


class _Model(_Designs, _VarianceComponents):
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

    def with_nagq(self, nagq: int) -> _Model:
        """The same GLMM with ``nagq`` quadrature nodes (specs shared)."""
        out = _Model.__new__(_Model)
        out.__dict__.update(self.__dict__)
        out.nagq = int(nagq)
        return out

    def family_and_link(self) -> tuple[str, str]:
        """The response's family and link, by name: ``("gaussian", "identity")`` for
        linear (mixed) models, ``("negative_binomial", "log")``..."""
        if self.kind in ("lmm", "ols"):
            return "gaussian", "identity"
        if self.kind == "glmm":
            return self.family
        name = type(self.family).__name__.lower()
        link = type(self.family.link).__name__.lower()
        names = {"negativebinomial": "negative_binomial", "inversegaussian": "inverse_gaussian"}
        return names.get(name, name), {"inversepower": "inverse"}.get(link, link)

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
        link = type(fam.link).__name__.lower()
        if isinstance(fam, sm.families.NegativeBinomial):
            return f"GLM (negative binomial, {link} link; dispersion by ML)"
        return f"GLM ({type(fam).__name__.lower()}, {link} link)"
