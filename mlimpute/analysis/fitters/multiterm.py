"""Linear mixed models with several random-effect terms: lme4's profiled deviance.

The model is ``y = X beta + sum_k Z_k b_k + e`` with one term ``k`` per grouping factor
(``school``, ``school:class``, ``neighbourhood``): ``b_k`` stacks one vector of ``q_k``
random effects per group of factor ``k``, independent over groups and terms, each
``N(0, Tau_k)``, and ``e ~ N(0, sigma2 I)``. As in lme4 (Bates et al. 2015, JSS 67(1),
Eqs 34 and 41) ``Tau_k = sigma2 Lambda_k Lambda_k'``, the free entries of the lower
triangular ``Lambda_k`` of all terms are ``theta``, the relative covariance factor of all
random effects is the block-diagonal ``Lambda_theta``, and ``beta`` and ``sigma2`` are
profiled out of the deviance. Everything comes from the system

    [ Lambda' Z'Z Lambda + I    Lambda' Z'W ]        W = [y X]
    [ W'Z Lambda                W'W         ]

by eliminating the random effects: ``log|Lambda'Z'Z Lambda + I|`` and the Schur complement
``S = W'V^{-1}W`` (``V`` relative to ``sigma2``) give ``pwrss = S_yy - S_yX S_XX^{-1}
S_Xy``, the deviance and the estimates exactly as for one term
(:class:`mlimpute.analysis.fitters.profiled._Profiled`).

**Nested terms** (each class in one school; any number of levels): the random effects
are eliminated level by level, innermost first. A group of one level meets exactly one
group of each enclosing level, so its row of the system is a short dense vector
(``q`` of every enclosing level, then ``1 + p``), elimination creates no fill-in and each
step is a batched ``q x q`` factorisation over the groups of that level followed by a
sum over the children of each parent. One evaluation costs ``O(J R^2 q)`` (``J`` groups
of the innermost level, ``R`` the row length), independent of ``n``; the cross products
are computed once per data set.

**Crossed terms** (pupils in schools crossed with neighbourhoods): the term with the most
random effects is eliminated first (its block is block diagonal); the Schur complement
on the other terms' random effects is formed with ``scipy.sparse`` products and
factorised densely (LAPACK Cholesky). That is the documented choice for up to
:data:`DENSE_LIMIT` random effects outside the first term (3,000: a 3,000 x 3,000
Cholesky costs about 0.2 s); larger crossed designs raise :class:`UnsupportedError`
(they would need a sparse Cholesky with fill-reducing ordering, e.g. CHOLMOD through
scikit-sparse, which is not a dependency).

**Optimiser.** Newton's method on ``theta`` (unbounded, see
:meth:`~mlimpute.analysis.fitters.multiprofiled._MultiProfiled.minimise`; lme4's start
``Lambda_k = I``) with the gradient and Hessian from central differences of the
deviance (the Hessian then updated by BFGS), the deviances of an iteration evaluated in
one batch. The single-term model keeps its own fitter
(:func:`mlimpute.analysis.fitters.mixedlm.fit_mixedlm`); this one is used when a model
has two or more grouping factors. The deviance and the optimiser live in
:mod:`mlimpute.analysis.fitters.multiprofiled`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from mlimpute.analysis.fitters.base import MixedFit, _design, block_mask
from mlimpute.analysis.fitters.multiprofiled import (  # noqa: F401  (re-exported)
    DENSE_LIMIT,
    _MultiProfiled,
)
from mlimpute.analysis.fitters.profiled import _lower_cholesky
from mlimpute.errors import DataError

__all__ = ["Term", "MultiFit", "make_term", "fit_multiterm", "multiterm_loglike"]


@dataclass(frozen=True, eq=False)
class Term:
    """One random-effect term: the design ``Z`` of its effects and its groups.

    Attributes
    ----------
    Z : ndarray, shape (n, q)
        Random-effect design of the term (``1`` for a random intercept, ``[1, x]``...).
    codes : ndarray of int, shape (n,)
        Group of each row, ``0 .. n_groups - 1`` (every group present).
    n_groups : int
    mask : ndarray of bool, shape (q, q)
        Free entries of ``Tau`` (:func:`mlimpute.analysis.fitters.base.block_mask`).
    name : str
        The grouping factor as written in the formula (``"school:class"``).
    """

    Z: np.ndarray
    codes: np.ndarray
    n_groups: int
    mask: np.ndarray
    name: str = ""

    @property
    def q(self) -> int:
        return int(self.Z.shape[1])


def make_term(
    Z: ArrayLike,
    groups: ArrayLike | Sequence[ArrayLike],
    *,
    blocks: Sequence[tuple[int, bool]] | None = None,
    name: str = "",
) -> Term:
    """A :class:`Term` from a design and group ids.

    Parameters
    ----------
    Z : array_like, shape (n, q) or (n,)
        Random-effect design.
    groups : array_like of shape (n,), or a sequence of such arrays
        Group ids (any hashable values); several arrays give the groups of their
        combinations (``school:class``).
    blocks : sequence of (size, correlated), optional
        Covariance structure within the term (default: one unstructured block).
    name : str
        Label of the grouping factor.

    Returns
    -------
    Term

    Examples
    --------
    >>> t = make_term(np.ones(4), [[1, 1, 2, 2], ["a", "b", "a", "b"]], name="s:c")
    >>> t.codes.tolist(), t.n_groups, t.q
    ([0, 1, 2, 3], 4, 1)
    """
    Zm = np.asarray(Z, dtype=float)
    if Zm.ndim == 1:
        Zm = Zm[:, None]
    n, q = Zm.shape
    arrays = [groups] if np.ndim(groups) == 1 and not _is_list_of_arrays(groups) else groups
    codes = np.zeros(n, dtype=np.int64)
    for a in arrays:
        c, uniq = pd.factorize(pd.Series(np.asarray(a)), use_na_sentinel=True)
        if c.size != n:
            raise DataError(f"groups of {name or 'a term'} have {c.size} entries for {n} rows.")
        if np.any(c < 0):
            raise DataError(
                f"group id of {name or 'a term'} missing in row {int(np.flatnonzero(c < 0)[0])}."
            )
        codes = codes * max(len(uniq), 1) + c
    codes, uniq = pd.factorize(codes)
    mask = np.ones((q, q), dtype=bool) if blocks is None else block_mask(blocks)
    if mask.shape != (q, q):
        raise DataError(f"blocks describe {mask.shape[0]} random-effect columns, Z has {q}.")
    if not np.all(np.isfinite(Zm)):
        raise DataError(f"the random-effect design of {name or 'a term'} is not finite.")
    return Term(Zm, codes.astype(np.int64), int(len(uniq)), mask, name)


def _is_list_of_arrays(groups) -> bool:
    return isinstance(groups, (list, tuple)) and len(groups) > 0 and np.ndim(groups[0]) == 1


@dataclass(frozen=True, eq=False)
class MultiFit(MixedFit):
    """A linear mixed model fit with several random-effect terms.

    As :class:`~mlimpute.analysis.fitters.base.MixedFit`, with ``cov_re`` the
    block-diagonal covariance of all terms' random effects (term by term, in formula
    order; ``free`` marks the estimated entries) and per term its grouping factor, number
    of random effects and number of groups.
    """

    terms: tuple[str, ...] = ()
    term_sizes: tuple[int, ...] = ()
    term_groups: tuple[int, ...] = ()
    structure: str = ""  # "nested" or "crossed"

    def term_cov(self, k: int) -> np.ndarray:
        """``Tau_k``, the covariance of term ``k``'s random effects."""
        o = int(np.sum(self.term_sizes[:k]))
        q = self.term_sizes[k]
        return self.cov_re[o : o + q, o : o + q]


def _check_terms(n: int, terms: Sequence[Term]) -> list[Term]:
    terms = list(terms)
    if len(terms) < 2:
        raise DataError("fit_multiterm needs two or more random-effect terms.")
    for t in terms:
        if t.Z.shape[0] != n or t.codes.shape != (n,):
            raise DataError(
                f"term {t.name!r}: Z has {t.Z.shape[0]} rows and codes {t.codes.shape}, the "
                f"data {n} rows."
            )
        counts = np.bincount(t.codes, minlength=t.n_groups) if t.codes.min() >= 0 else None
        if counts is None or counts.size != t.n_groups or not counts.all():
            raise DataError(
                f"term {t.name!r}: the group codes must be 0 .. {t.n_groups - 1}, each "
                "present (make_term builds them)."
            )
    return terms


def fit_multiterm(
    y: ArrayLike,
    X: ArrayLike,
    terms: Sequence[Term],
    *,
    reml: bool = True,
    start: ArrayLike | None = None,
    structure: str | None = None,
) -> MultiFit:
    """Fit a linear mixed model with several random-effect terms by REML or ML.

    Parameters
    ----------
    y : array_like, shape (n,)
    X : array_like, shape (n, p)
        Fixed-effects design.
    terms : sequence of Term
        Two or more random-effect terms (:func:`make_term`), one per grouping factor.
    reml : bool, default True
        REML (lme4's default) or ML.
    start : array_like, optional
        ``theta`` to start from (:attr:`MixedFit.theta` of a fit to similar data); by
        default lme4's ``Lambda_k = I``.
    structure : {"nested", "crossed"}, optional
        How the random effects are eliminated (see the module docstring); by default
        ``"nested"`` when the grouping factors are nested in one another, else
        ``"crossed"``. ``"crossed"`` also fits nested designs (slower; a cross-check).

    Returns
    -------
    MultiFit
        ``cov_re`` block diagonal over the terms (formula order), ``theta`` lme4's
        ``theta`` in that order, ``llf`` the ML log-likelihood or ``-1/2`` the REML
        criterion, ``cov_vc`` the sampling covariance of the variance parameters.

    Raises
    ------
    DataError
        For inconsistent shapes or non-finite data.
    UnsupportedError
        For a crossed design with more than :data:`DENSE_LIMIT` random effects outside
        its largest term.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> school = np.repeat(np.arange(20), 40)
    >>> cls = np.repeat(np.arange(80), 10)
    >>> y = rng.normal(size=20)[school] + 0.5 * rng.normal(size=80)[cls] + rng.normal(size=800)
    >>> X = np.ones((800, 1))
    >>> terms = [make_term(np.ones(800), school, name="school"),
    ...          make_term(np.ones(800), cls, name="class")]
    >>> f = fit_multiterm(y, X, terms)
    >>> f.structure, f.terms, f.term_groups
    ('nested', ('school', 'class'), (20, 80))
    >>> bool(f.converged)
    True
    """
    yv, Xm = _design(y, X)
    terms = _check_terms(yv.size, terms)
    prof = _MultiProfiled(yv, Xm, terms, reml, structure)
    if start is None:
        theta0 = np.concatenate(
            [np.eye(t.q)[r, c] for t, (r, c) in zip(terms, prof.tri, strict=True)]
        )
    else:
        theta0 = np.asarray(start, dtype=float)
        if theta0.shape != (prof.K,):
            raise DataError(f"start must have {prof.K} entries, got {theta0.shape}.")
    theta, converged, how = prof.minimise(theta0)
    fe, cov_re, scale, cov_fe, dev = prof.estimates(theta)
    messages = () if converged else ("the profiled-deviance optimisation did not converge",)
    return MultiFit(
        fe_params=fe,
        cov_fe=cov_fe,
        cov_re=np.where(prof.mask, cov_re, 0.0),
        scale=scale,
        llf=-0.5 * dev,
        reml=reml,
        nobs=yv.size,
        n_groups=max(t.n_groups for t in terms),
        converged=converged,
        messages=messages,
        free=prof.mask,
        theta=theta,
        optimizer=how,
        cov_vc=prof.vc_covariance(theta, scale),
        terms=tuple(t.name for t in terms),
        term_sizes=tuple(t.q for t in terms),
        term_groups=tuple(t.n_groups for t in terms),
        structure=prof.structure,
    )


def multiterm_loglike(
    y: ArrayLike,
    X: ArrayLike,
    terms: Sequence[Term],
    fe_params: ArrayLike,
    cov_re: ArrayLike,
    scale: float,
) -> float:
    """ML log-likelihood of a model with several random-effect terms at given parameters.

    ``cov_re`` is the block-diagonal covariance of all terms' random effects (as
    :attr:`MultiFit.cov_re`; each block may be singular), ``scale`` the residual variance.
    The same quantity as :func:`mlimpute.analysis.fitters.mixedlm.mixedlm_loglike`
    (used by D3 at the pooled parameters).

    Examples
    --------
    >>> rng = np.random.default_rng(2)
    >>> a, b = np.repeat(np.arange(10), 20), np.tile(np.arange(5), 40)
    >>> y = rng.normal(size=200)
    >>> terms = [make_term(np.ones(200), a, name="a"), make_term(np.ones(200), b, name="b")]
    >>> f = fit_multiterm(y, np.ones((200, 1)), terms, reml=False)
    >>> ll = multiterm_loglike(y, np.ones((200, 1)), terms, f.fe_params, f.cov_re, f.scale)
    >>> bool(abs(ll - f.llf) < 1e-6)
    True
    """
    yv, Xm = _design(y, X)
    terms = _check_terms(yv.size, terms)
    if not scale > 0:
        raise DataError(f"the residual variance must be positive, got {scale}.")
    prof = _MultiProfiled(yv, Xm, terms, False)
    cov = np.asarray(cov_re, dtype=float)
    theta, o = [], 0
    for t, (r, c) in zip(terms, prof.tri, strict=True):
        block = cov[o : o + t.q, o : o + t.q] / scale
        theta.append(_lower_cholesky(np.where(t.mask, block, 0.0))[r, c])
        o += t.q
    logdet, S = prof.parts(np.concatenate(theta)[None])
    v = np.r_[1.0, -np.asarray(fe_params, dtype=float)]
    n = yv.size
    quad = float(v @ S[0] @ v) / scale
    return float(-0.5 * (n * np.log(2.0 * np.pi * scale) + logdet[0] + quad))
