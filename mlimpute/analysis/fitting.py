"""The public :func:`fit`: one analysis model on every completed data set, pooled.

Checks the formula against the data and the imputation models (categorical codes,
terms the imputation models left out), builds the model (:mod:`mlimpute.analysis.model`),
fits every completed data set (:mod:`mlimpute.analysis.fits`) and pools
(:class:`~mlimpute.analysis.results.PooledResult`). See :mod:`mlimpute.analysis`.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import pandas as pd
import statsmodels.api as sm

from mlimpute.analysis import latent as _latent
from mlimpute.analysis.apply import _check_source
from mlimpute.analysis.congeniality import check_congeniality
from mlimpute.analysis.fits import _fit_all, _Likelihood
from mlimpute.analysis.fitters import glmm as _glmm
from mlimpute.analysis.model import Kind, _Model
from mlimpute.analysis.results import PooledResult
from mlimpute.codec import categories, column_kind, decode
from mlimpute.errors import (
    FormulaError,
    LatentBoundaryError,
    MlimputeWarning,
    PoolingError,
    SpecificationError,
    UnsupportedError,
)
from mlimpute.pooling import pool
from mlimpute.pooling.rubin import check_dfcom
from mlimpute.spec.checks import check_formula_columns
from mlimpute.spec.defaults import PMM_MODELS
from mlimpute.spec.formula import ParsedFormula, parse_formula

__all__ = ["fit"]


_FAMILIES: dict[str, Callable[[], sm.families.Family]] = {
    "gaussian": sm.families.Gaussian,
    "binomial": sm.families.Binomial,
    "poisson": sm.families.Poisson,
    "gamma": sm.families.Gamma,
    "inverse_gaussian": sm.families.InverseGaussian,
    # alpha given (its default) so statsmodels does not warn; it is not used: a GLM
    # (fitters.base.fit_glm) and a GLMM estimate the dispersion by maximum likelihood
    "negative_binomial": lambda link=None: sm.families.NegativeBinomial(link, alpha=1.0),
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


# --------------------------------------------------------------------------------------
# fitting a formula on every completed data set


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


def fit(
    imp: Any,
    formula: str | None = None,
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
    latent: Literal["auto", "plausible", "ml"] = "auto",
) -> PooledResult:
    """Fit a model on every completed data set and pool the results.

    Usually called as ``imp.fit(formula, ...)``.

    Parameters
    ----------
    imp : MultiplyImputed or CompletedImputations
        The imputations (``m >= 2``).
    formula : str, optional
        lme4-style formula with a response: ``"grade ~ skill*gender + (1 + gender | class)"``.
        Default: the analysis model of a model-based imputation (``impute(model=...)``).
        A random part gives a linear mixed model; ``(1 + x || g)`` makes the random effects
        uncorrelated. Several grouping factors give a model with several random-effect
        terms (linear mixed models only): nested ``(1 | school/class)`` (the same as
        ``(1 | school) + (1 | school:class)``; ``a:b`` is every combination of the columns
        ``a`` and ``b``), crossed ``(1 | school) + (1 | neighbourhood)``, random slopes at
        any level ``(1 + x | class) + (1 | school)``
        (:func:`mlimpute.analysis.fitters.multiterm.fit_multiterm`).
        ``cmean(x)`` is the cluster mean of ``x``. Without a random part:
        OLS, or a GLM with ``family``. A random part with ``family`` gives a GLMM.
    reml : bool, default True
        REML (lme4's default) or ML for linear mixed models. Tests on likelihoods refit by
        ML whatever is chosen here. GLMMs are always fitted by ML (``reml`` is ignored).
    family : str or statsmodels family, optional
        ``"binomial"``, ``"poisson"``, ``"gamma"``, ``"gaussian"``, ``"inverse_gaussian"``,
        ``"negative_binomial"`` or a ``statsmodels.api.families`` instance (whose link is
        used): a GLM. The negative binomial (variance ``mu + mu^2/r``) has its dispersion
        r estimated by maximum likelihood, as ``MASS::glm.nb`` does (its ``theta``; the
        ``alpha`` of a statsmodels family object is not used), reported as each fit's
        ``dispersion``, with the coefficients' covariance given r, as ``glm.nb``
        reports it. With a random part a generalised linear mixed model
        (:func:`mlimpute.analysis.fitters.glmm.fit_glmm`), for ``"binomial"``
        (0/1 response; logit or probit link), ``"poisson"`` (log link) and
        ``"negative_binomial"`` (log link; its dispersion estimated with the other
        parameters).
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
        Linear mixed-model fitter (:func:`mlimpute.analysis.fitters.mixedlm.fit_mixedlm`): Newton's
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
    latent : {"auto", "plausible", "ml"}, default "auto"
        How a formula with a latent cluster mean ``lmean(x)`` is fitted. ``"auto"``:
        ``"ml"`` where the formula is within its scope (below), else ``"plausible"``.
        ``"plausible"``: a linear mixed model (or GLMM) with the column ``lmean(x)`` of
        every completed data set, the drawn latent means, as a predictor ("plausible
        values"); any formula. ``"ml"``: the latent covariate model (Lüdtke et al. 2008)
        by maximum likelihood on each completed data set, from x and y with the cluster
        means of x latent (the column ``lmean(x)`` is not used;
        :mod:`mlimpute.analysis.latent`), standard errors from the observed information,
        pooled by Rubin's rules. It covers a normal response, one grouping factor with a
        random intercept ``(1 | g)``, and x, ``lmean(x)`` and cluster-level columns as
        predictors (these enter both y's mean and the mean of the latent cluster means);
        ``reml``, ``engine``, ``n_jobs`` and ``client`` do not apply, and likelihood-based
        tests (D2 on likelihoods, D3) and ``r_squared()`` are not available. With clusters
        of five (1,000 data sets of design (d) in ``docs/compatible.md``) it lowered the
        contextual effect's bias from +11.9 % to +7.4 % and its interval coverage from
        0.970 to 0.962. When the maximum-likelihood fit of some completed data set is
        at the boundary of its parameter space (x's cluster means hardly vary beyond
        their sampling error: the latent variance near zero, its observed information
        not positive definite), ``"auto"`` fits ``"plausible"`` instead and says so in
        the result's notes (and a warning); ``"ml"`` raises
        :class:`~mlimpute.errors.LatentBoundaryError`. Formulas without ``lmean()``
        ignore ``"auto"`` and ``"plausible"``; ``"ml"`` needs an ``lmean()``.

    Returns
    -------
    PooledResult
        ``.summary()``, ``.variance_components()``, ``.test()``, ``.compare()``...

    Raises
    ------
    PoolingError
        If ``m < 2``, or a fit fails on some completed data set (named in the message), or
        a ``C(x)`` term meets imputed values of a numeric ``x`` that are not among its
        observed values (codes imputed by a continuous model: each such value would be a
        category of its own); the message names ``x`` and its imputation model.
    FormulaError, SpecificationError, DataError, DataTypeError
        For a formula without response, an unknown column, missing values in an analysed
        column, collinear fixed effects, a response that is not 0/1 (binomial GLM or
        GLMM) or a count (Poisson, negative binomial), or a grouping factor with fewer
        than 2 levels, with a level for every row (linear mixed models), or with as many
        random effects as rows or more (lme4's rules; GLMMs may have as many). Every
        completed data set is checked before it is fitted; the message names the data
        set and the term, factor or value.
    LatentBoundaryError
        For ``latent="ml"`` when the fit of a completed data set (named) is at the
        boundary of its parameter space (a :class:`PoolingError`).
    UnsupportedError
        For ``latent="ml"`` with a formula outside its scope (the message names the term
        or argument). For a random part with a family or link other than binomial
        (logit, probit), Poisson (log) and negative binomial (log); for several grouping
        factors with ``family`` (GLMMs) or ``engine="statsmodels"``; for a crossed design
        with more than 3,000 random effects outside its largest grouping factor.

    Warns
    -----
    CompatibilityWarning
        Once per call, when the analysis has a random slope, an interaction or a
        non-linear term (``I(x**2)``, ``np.log(x)``, ``poly(x, 2)``) involving an
        incomplete variable that the imputation models did not include in the form the
        analysis needs: the model of an incomplete response must have the same term (the
        same random slope on the same cluster); for an interaction ``x:z`` of an incomplete
        predictor ``x``, the model of ``x`` must have ``y:z``. A random slope or a
        non-linear function of an incomplete predictor is always reported: chained
        equations can only approximate them. Random-slope variances and interaction
        effects are then biased toward zero. ``C(x)`` counts as ``x``; complete variables
        and imputations made elsewhere (:func:`from_completed`) are not checked.

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

    Several grouping factors: ``.variance_components()`` lists each factor's
    (co)variances (``var(Intercept|school)``, ``var(Intercept|school:class)``), the
    residual variance and an ``ICC|factor`` row per factor with a random intercept, that
    factor's share of the total variance (intercept variances and residual). The
    complete-data df of ``dfcom`` counts every random-effect (co)variance. D1-D3 work as
    with one factor.

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
    analysis_model = getattr(getattr(imp, "spec", None), "model", None)
    if formula is None:
        if analysis_model is None:
            raise FormulaError(
                "fit() needs a formula such as 'grade ~ skill + (1 | class)' (only a "
                "model-based imputation, impute(model=...), has a default: its model)"
            )
        formula = analysis_model.text
        if family is None:  # the family model-based imputation used: a count outcome's,
            family = getattr(imp.spec, "family", None)
            if family is None and _binary(imp, analysis_model.response):
                family = "binomial"  # or a binary outcome's multilevel probit model
                link = "probit" if link is None else link
    parsed = formula if isinstance(formula, ParsedFormula) else parse_formula(formula)
    if parsed.response is None:
        raise FormulaError(f"an analysis formula needs a response: {parsed.text!r}")
    if not isinstance(reml, (bool, np.bool_)):
        raise SpecificationError(f"reml must be True or False, got {reml!r}")
    if link is not None and family is None:
        raise SpecificationError(f"link={link!r} needs a family (e.g. family='binomial').")
    glm_family = None if family is None else _family(family, link)
    if glm_family is not None and parsed.several_groups:
        raise UnsupportedError(
            f"generalised linear mixed models support one grouping factor; {parsed.text!r} "
            f"has the grouping factors {list(parsed.groups)}. For a normal response drop "
            "family= (a linear mixed model)."
        )
    if glm_family is not None and parsed.is_multilevel:
        try:
            glm_family = _glmm.glmm_family(glm_family)
        except UnsupportedError as exc:
            raise UnsupportedError(
                f"{parsed.text!r} has a random part: {exc} For a normal response drop "
                "family= (a linear mixed model)."
            ) from None
    if nagq is not None and (
        isinstance(nagq, bool) or not isinstance(nagq, (int, np.integer)) or nagq < 1
    ):
        raise SpecificationError(f"nagq must be a positive integer (1 = Laplace), got {nagq!r}")
    if engine not in ("statsmodels", "profiled"):
        raise SpecificationError(f"engine must be 'statsmodels' or 'profiled', got {engine!r}")
    if n_jobs is not None and client is not None:
        raise SpecificationError("pass n_jobs or client, not both")
    if dfcom is not None:
        check_dfcom(dfcom)
    if cluster is None and getattr(imp, "spec", None) is not None:
        cluster = getattr(imp.spec, "cluster", None)
    if parsed.cmeans and parsed.group is None and cluster is None:
        how = "pass cluster=" if parsed.several_groups else "add a random part or pass cluster="
        raise FormulaError(f"cmean({parsed.cmeans[0]}) in {parsed.text!r} needs a cluster: {how}.")
    if parsed.several_groups and engine == "statsmodels":
        raise UnsupportedError(
            f"engine='statsmodels' supports one grouping factor; {parsed.text!r} has the "
            f"grouping factors {list(parsed.groups)}: use engine='profiled'."
        )
    if parsed.is_multilevel:
        kind: Kind = "lmm" if family is None else "glmm"
    else:
        kind = "glm" if family is not None else "ols"
    # a column named like a function the formula calls (log(log)), or Intercept: named
    check_formula_columns({parsed.response or "the analysis": parsed})
    _check_categorical_codes(imp, parsed)
    check_congeniality(imp, parsed)  # CompatibilityWarning: terms the imputation lacked
    model = _Model(parsed, kind, family=glm_family, cluster=cluster, engine=engine, nagq=nagq)
    _latent.check_latent(latent, parsed)
    requested = latent
    latent, first = _latent.choose_latent(latent, imp, model, family)
    remarks: list[str] = []
    if latent == "ml":
        reason = _latent.latent_scope(parsed, family)
        if reason is not None:
            raise UnsupportedError(f"latent='ml' cannot fit {parsed.text!r}: {reason}")
        try:
            result = _latent.fit_latent_pooled(imp, model, dfcom, first)
        except LatentBoundaryError as exc:
            if requested != "auto":
                raise
            # latent="auto": the plausible-values analysis, which has no such boundary
            remarks.append(_latent.fallback_note(exc))
        else:
            _warn_notes(result, m)
            return result

    executor = {"n_jobs": n_jobs, "client": client}
    fits, first = _fit_all(imp, model, reml=bool(reml), **executor)
    nobs = first.y.size
    group = model.cluster if kind in ("lmm", "glmm") else None
    if model.multi:  # several grouping factors (or one made of several columns)
        n_groups = tuple(int(first.groups[:, k].max()) + 1 for k in range(len(model.factors)))
        group = model.factors
        if len(n_groups) == 1:
            group, n_groups = group[0], n_groups[0]
    else:
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
        group=group,
        n_groups=n_groups,
        fits=fits,
        variance_components=vc,
        singular=singular,
        nonconverged=nonconv,
        source=imp,
        likelihood=_Likelihood(imp, model, fits, reml=bool(reml), executor=executor),
        remarks=remarks,
    )
    _warn_notes(result, m)
    return result


def _warn_notes(result: PooledResult, m: int) -> None:
    if result.notes:
        warnings.warn("; ".join(result.notes) + f" (m = {m}).", MlimputeWarning, stacklevel=4)


# --------------------------------------------------------------------------------------
# does the imputation support the analysis?

_CATEGORICAL = re.compile(r"\bC\(\s*(`[^`]+`|[A-Za-z_.][\w.]*)")


def _imputed_frame(imp: Any) -> tuple[Any, pd.DataFrame] | None:
    """``(spec, observed data)`` of imputations made by mlimpute; None for others."""
    spec, data = getattr(imp, "spec", None), getattr(imp, "data", None)
    if spec is None or not isinstance(data, pd.DataFrame) or not hasattr(imp, "dataset"):
        return None
    return spec, data


def _check_categorical_codes(imp: Any, parsed: ParsedFormula) -> None:
    """Refuse ``C(x)`` of a numeric ``x`` whose imputed values are not observed values.

    Imputed by a continuous model, codes such as 1-4 come back as 2.37, 3.81...: each is a
    category of its own in ``C(x)``, which gives a singular or meaningless design.
    """
    found = _imputed_frame(imp)
    if found is None:
        return
    spec, data = found
    text = " + ".join([parsed.fixed, *(b.terms for b, _ in parsed.random_terms)])
    methods = spec.methods
    for name in dict.fromkeys(m.group(1).strip("`") for m in _CATEGORICAL.finditer(text)):
        if name not in methods or name not in data.columns or name not in imp.dataset:
            continue
        column = data[name]
        if categories(column) is not None:  # a categorical column: imputed categories
            continue
        observed = pd.unique(column.dropna().to_numpy(dtype=float))
        raw = np.asarray(imp.dataset[name].values, dtype=float)
        values = np.asarray(decode(raw.ravel(), column.iloc[:0]), dtype=float)
        new = ~np.isin(values, observed)
        if not new.any():
            continue
        per_set = [np.unique(np.concatenate([observed, v])).size for v in values.reshape(raw.shape)]
        method = methods[name]
        pmm = PMM_MODELS.get(method, "2l.pmm")
        shown = ", ".join(f"{v:g}" for v in np.sort(observed)[:10])
        raise PoolingError(
            f"C({name}) in {parsed.text!r} treats {name!r} as categorical, but "
            f"{int(new.sum())} of its {new.size} imputed values (over the m = {raw.shape[0]} "
            f"imputations) are not among its {observed.size} observed values ({shown}"
            f"{', ...' if observed.size > 10 else ''}): completed data set 1 has "
            f"{per_set[0]} distinct values of {name!r}, each a category of its own, which "
            f"makes the design singular or meaningless. {name!r} was imputed as a "
            f"continuous variable (method {method!r}); impute it with a model that returns "
            f"observed values only (method={{{name!r}: {pmm!r}}}) or convert it to a "
            "pandas Categorical before imputing."
        )


def _binary(imp: Any, name: str | None) -> bool:
    """Whether the data's column ``name`` is binary (model-based imputation's outcome then
    has a multilevel probit model)."""
    data = getattr(imp, "data", None)
    return (
        name is not None
        and data is not None
        and name in data
        and (column_kind(data[name]) == "binary")
    )
