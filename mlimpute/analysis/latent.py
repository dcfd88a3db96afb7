"""Analysis formulas with ``lmean(x)``: the latent covariate model fitted by maximum likelihood.

:func:`mlimpute.analysis.fitting.fit` (``imp.fit(latent=...)``) either treats the column
``lmean(x)`` of every completed data set, the drawn latent cluster means, as data in a
linear mixed model (``latent="plausible"``), or fits the latent covariate model of
:mod:`mlimpute.analysis.fitters.latent` to x and y of every completed data set, with the
cluster means of x latent (``latent="ml"``; the drawn column is not used), and pools
those fits by Rubin's rules. The default, ``latent="auto"``, is ``"ml"`` for the formulas
that fit covers and ``"plausible"`` for the rest (:func:`choose_latent`).
:func:`latent_scope` and :func:`design_scope` tell which formulas the maximum-likelihood
fit covers: a normal response, one grouping factor with a random intercept only, x and
``lmean(x)`` as predictors and otherwise cluster-level columns only.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from mlimpute.analysis.fitters.latent import LatentFit, fit_latent
from mlimpute.analysis.model import Design, _Model
from mlimpute.analysis.results import PooledResult
from mlimpute.errors import (
    DataError,
    LatentBoundaryError,
    PoolingError,
    SpecificationError,
    UnsupportedError,
)
from mlimpute.pooling import pool
from mlimpute.spec.formula import lmean_column

__all__ = [
    "LATENT_CHOICES",
    "check_latent",
    "latent_scope",
    "design_scope",
    "choose_latent",
    "fit_latent_pooled",
    "fallback_note",
]

#: The values of ``fit(latent=...)``.
LATENT_CHOICES = ("auto", "plausible", "ml")


def check_latent(latent: Any, parsed) -> None:
    """Refuse an unknown ``latent`` and ``latent="ml"`` on a formula without ``lmean()``.

    Examples
    --------
    >>> from mlimpute.spec.formula import parse_formula
    >>> check_latent("plausible", parse_formula("y ~ x + (1 | g)"))
    >>> check_latent("mle", parse_formula("y ~ x + lmean(x) + (1 | g)"))
    Traceback (most recent call last):
    ...
    mlimpute.errors.SpecificationError: latent must be 'auto', 'plausible' or 'ml', got 'mle'
    """
    if not isinstance(latent, str) or latent not in LATENT_CHOICES:
        raise SpecificationError(f"latent must be 'auto', 'plausible' or 'ml', got {latent!r}")
    if latent == "ml" and not parsed.lmeans:
        raise SpecificationError(
            f"latent='ml' fits a latent cluster mean lmean(x); the formula {parsed.text!r} has none"
        )


def latent_scope(parsed, family: Any) -> str | None:
    """Why the formula is outside the maximum-likelihood latent fit (None: inside), from
    the formula alone; :func:`fit_latent_pooled` checks the design's columns.

    Examples
    --------
    >>> from mlimpute.spec.formula import parse_formula
    >>> latent_scope(parse_formula("y ~ x + lmean(x) + (1 | g)"), None) is None
    True
    >>> latent_scope(parse_formula("y ~ x + lmean(x) + (1 + x | g)"), None)
    "the random part '(1 + x | g)' is not a random intercept only"
    """
    if family is not None:
        return f"family={family!r}: the fit is for a normal response (no family)"
    if len(parsed.lmeans) > 1:
        return f"several latent cluster means {list(parsed.lmeans)}: the fit takes one"
    if not parsed.is_multilevel or parsed.several_groups:
        return "the fit needs one grouping factor with a random intercept, (1 | g)"
    blocks = [b for b, _ in parsed.random_terms]
    if len(blocks) != 1 or blocks[0].terms.replace(" ", "") not in ("1", "1+1"):
        shown = " + ".join(b.terms for b in blocks)
        return f"the random part '({shown} | {parsed.group})' is not a random intercept only"
    return None


def _layout(model: _Model, d: Design, x: str) -> tuple[int, int, np.ndarray, str | None]:
    """Columns of the fixed design: ``(x, lmean(x), cluster-level columns)``, or the
    reason the design is outside the fit."""
    names = list(model.fixed_names)
    lm = lmean_column(x)
    if x not in names:
        return 0, 0, np.array([], int), f"x itself ({x!r}) is not a term of the formula"
    if lm not in names:
        return 0, 0, np.array([], int), f"lmean({x}) enters the formula other than as a term"
    if "Intercept" not in names:
        return 0, 0, np.array([], int), "the formula has no intercept"
    codes = np.unique(d.groups, return_inverse=True)[1]
    level1 = []
    for c, name in enumerate(names):
        if name in (x, lm):
            continue
        col = d.X[:, c]
        last = np.zeros(codes.max() + 1)
        last[codes] = col  # the last row of each cluster: equal to every row at level 2
        if "lmean(" in name or not np.array_equal(last[codes], col):
            level1.append(name)
    if level1:
        return (
            0,
            0,
            np.array([], int),
            f"the term(s) {level1} vary within clusters or involve lmean({x}) (only x, "
            f"lmean({x}) and cluster-level columns are covered)",
        )
    other = np.array([c for c, n in enumerate(names) if n not in (x, lm)], int)
    return names.index(x), names.index(lm), other, None


def _fit_one(d: Design, ix: int, il: int, other: np.ndarray, i: int, text: str):
    codes = np.unique(d.groups, return_inverse=True)[1]
    row = np.zeros(int(codes.max()) + 1, int)
    row[codes] = np.arange(codes.size)  # one row of every cluster
    W = d.X[row][:, other]
    try:
        f = fit_latent(d.X[:, ix], d.y, codes, W)
    except (DataError, np.linalg.LinAlgError, ValueError) as exc:
        msg = f"fitting {text!r} by ML failed on completed data set {i}: {exc}"
        raise PoolingError(msg) from exc
    if f.boundary:
        raise LatentBoundaryError(_boundary_message(f, text, i), i)
    # the fitter's order (cluster-level columns, x, lmean(x)) -> the design's
    order = np.empty(other.size + 2, int)
    order[other] = np.arange(other.size)
    order[ix], order[il] = other.size, other.size + 1
    return dataclasses.replace(
        f, fe_params=f.fe_params[order], cov_fe=f.cov_fe[np.ix_(order, order)]
    )


def _boundary_message(f: LatentFit, text: str, i: int) -> str:
    """Why a boundary fit of completed data set ``i`` cannot be pooled, and what to do."""
    psi = float(f.cov_re[0, 0])
    return (
        f"the latent covariate model (latent='ml') of {text!r} is at the boundary of its "
        f"parameter space on completed data set {i}: its observed information is not "
        "positive definite, so it has no standard errors. The latent variance of the "
        f"cluster means is {f.tau:.3g} (within-cluster variance {f.sigma2_x:.3g}) and the "
        f"random-intercept variance {psi:.3g}: the cluster means hardly vary beyond their "
        "sampling error (latent variance near zero), and the contextual effect is not "
        "identified by maximum likelihood. Fit with latent='plausible' (the drawn "
        "latent cluster means as a predictor)"
    )


def fallback_note(exc: LatentBoundaryError) -> str:
    """The note of a ``latent="auto"`` fit that fell back to the plausible values."""
    return (
        "latent='auto' fitted the plausible values (lmean(x) as a predictor): the "
        f"maximum-likelihood latent covariate model is at its boundary on completed data "
        f"set {exc.imputation} (latent variance near zero, observed information not "
        "positive definite)"
    )


def design_scope(model: _Model, d: Design) -> tuple[tuple[int, int, np.ndarray], str | None]:
    """The design's columns ``(x, lmean(x), cluster-level columns)`` for the
    maximum-likelihood latent fit, and why the design is outside it (None: inside); the
    formula passed :func:`latent_scope`."""
    ix, il, other, reason = _layout(model, d, model.parsed.lmeans[0])
    if reason is None and model.random_names != ("Intercept",):
        reason = f"the random part has {list(model.random_names)}, not a random intercept only"
    return (ix, il, other), reason


def choose_latent(latent: str, imp, model: _Model, family: Any) -> tuple[str, Design | None]:
    """``latent="auto"`` resolved: ``"ml"`` where the formula has an ``lmean()`` that the
    maximum-likelihood fit covers (:func:`latent_scope`, :func:`design_scope` on the first
    completed data set), else ``"plausible"``; other values unchanged. Also the first
    completed data set's design when it was built (for :func:`fit_latent_pooled`)."""
    if latent != "auto":
        return latent, None
    parsed = model.parsed
    if not parsed.lmeans or latent_scope(parsed, family) is not None:
        return "plausible", None
    d1 = model.design(imp.complete(1), 1)
    return ("ml" if design_scope(model, d1)[1] is None else "plausible"), d1


def fit_latent_pooled(
    imp, model: _Model, dfcom: float | None, first: Design | None = None
) -> PooledResult:
    """The maximum-likelihood latent fit on every completed data set, pooled (``first``:
    the first data set's design, if already built).

    Raises
    ------
    UnsupportedError
        For a design outside the fit (:func:`latent_scope` passed), naming the terms.
    """
    parsed = model.parsed
    text = parsed.text
    m = int(imp.m)
    d1 = model.design(imp.complete(1), 1) if first is None else first
    x = parsed.lmeans[0]
    (ix, il, other), reason = design_scope(model, d1)
    if reason is not None:
        raise UnsupportedError(f"latent='ml' cannot fit {text!r}: {reason}")
    fits: list[LatentFit] = [_fit_one(d1, ix, il, other, 1, text)]
    for i in range(2, m + 1):
        d = model.design(imp.complete(i), i)
        fits.append(_fit_one(d, ix, il, other, i, text))
    est = np.array([f.fe_params for f in fits])
    cov = np.array([f.cov_fe for f in fits])
    dfc = min(model.dfcom(f) for f in fits) if dfcom is None else float(dfcom)
    pooled = pool(est, cov, dfcom=dfc, names=model.fixed_names)
    vc_names = model.vc_names()
    vc = (vc_names, np.array([model.vc_values(f) for f in fits]))
    return PooledResult(
        estimates=est,
        covariances=cov,
        pooled=pooled,
        model=f"latent covariate model (ML, lmean({x}) latent)",
        formula=text,
        response=parsed.response,
        nobs=d1.y.size,
        group=model.cluster,
        n_groups=fits[0].n_groups,
        fits=fits,
        variance_components=vc,
        singular=[i for i, f in enumerate(fits, 1) if f.singular],
        nonconverged=[i for i, f in enumerate(fits, 1) if not f.converged],
        source=imp,
        likelihood=None,
    )
