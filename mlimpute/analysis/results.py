"""The pooled result of a multiply imputed analysis: tables, display and tests.

:class:`PooledResult` holds the ``m`` per-imputation estimates and covariances, their
Rubin's-rules pooling (:class:`mlimpute.pooling.PooledEstimates`), the per-imputation
variance components and the fit problems met on the way. It never fits anything itself:
likelihood-based tests (D2 on likelihood ratios, D3) ask the analysis layer
(:mod:`mlimpute.analysis`) that produced it to refit, through a small private handle.

Linear hypotheses for :meth:`PooledResult.test` are written as in R's
``car::linearHypothesis`` / mitml's ``testConstraints``: equations joined by commas,
each side a linear combination of term names (formulaic's names, e.g. ``Intercept``,
``skill``, ``skill:gender``; backquote a name that contains ``+``, ``-``, ``*``, ``=`` or
``,``) with numeric coefficients, e.g. ``"gender = 0, skill:gender = 0"`` or
``"2*skill - gender = 1"``. A side without ``=`` is set to zero.
They are parsed by :func:`parse_hypotheses` (in :mod:`mlimpute.analysis.hypotheses`).

The variance-component and R² tables are in :mod:`mlimpute.analysis.results_components`,
the display in :mod:`mlimpute.analysis.results_display` (base classes of
:class:`PooledResult`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from mlimpute.analysis.hypotheses import parse_hypotheses
from mlimpute.analysis.results_components import _plausible_hint, _VarianceTables
from mlimpute.analysis.results_display import _PooledDisplay
from mlimpute.errors import PoolingError, UnsupportedError
from mlimpute.pooling import PooledEstimates, TestResult, d1, d2, d3
from mlimpute.pooling import wald_statistics as _wald

__all__ = ["PooledResult", "parse_hypotheses"]


# --------------------------------------------------------------------------------------
# the result


class PooledResult(_VarianceTables, _PooledDisplay):
    """An analysis fitted on each of ``m`` completed data sets and pooled.

    Made by :func:`mlimpute.analysis.fit` (``imp.fit(formula)``) and
    :func:`mlimpute.analysis.apply` (``imp.apply(func)``); not constructed by users.

    Attributes
    ----------
    pooled : PooledEstimates
        Rubin's-rules pooling of the estimates (``qbar``, ``ubar``, ``b``, ``t``, ...).
    names : tuple of str
        Term names, as formulaic writes them (``Intercept``, ``skill:gender``...).
    m : int
        Number of imputations.
    dfcom : float
        Complete-data degrees of freedom used for the Barnard-Rubin df.
    formula : str or None
        The analysis formula (``None`` for :func:`~mlimpute.analysis.apply`).
    model : str
        What was fitted, e.g. ``"linear mixed model (REML)"``.
    nobs : int or None
        Rows per completed data set.
    fits : tuple
        The ``m`` complete-data fits (``mlimpute.analysis.fitters.mixedlm.MixedFit``, ``OLSFit``,
        ``GLMFit`` or what the user's function returned).
    singular, nonconverged : tuple of int
        Imputations (1-based) whose fit is singular (on the boundary, by lme4's rule)
        or whose optimiser did not converge. They are kept in the pooling, counted and
        shown, never dropped.
    notes : tuple of str
        Those problems in words, as shown under the table, after ``remarks``: what the
        fit did differently from what was asked (``latent="auto"`` falling back to the
        plausible values).
    """

    def __init__(
        self,
        *,
        estimates: np.ndarray,
        covariances: np.ndarray,
        pooled: PooledEstimates,
        model: str,
        formula: str | None = None,
        response: str | None = None,
        nobs: int | None = None,
        group: str | None = None,
        n_groups: int | None = None,
        fits: Sequence[Any] = (),
        variance_components: tuple[tuple[str, ...], np.ndarray] | None = None,
        singular: Sequence[int] = (),
        nonconverged: Sequence[int] = (),
        source: Any = None,
        likelihood: Any = None,
        remarks: Sequence[str] = (),
    ):
        self.pooled = pooled
        self.remarks = tuple(str(r) for r in remarks)
        self.names = pooled.names
        self.m = pooled.m
        self.dfcom = pooled.dfcom
        self.formula = formula
        self.model = model
        self.response = response
        self.nobs = nobs
        self.group = group
        self.n_groups = n_groups
        self.fits = tuple(fits)
        self.singular = tuple(int(i) for i in singular)
        self.nonconverged = tuple(int(i) for i in nonconverged)
        self._estimates = np.array(estimates, dtype=float)
        self._covariances = np.array(covariances, dtype=float)
        self._estimates.setflags(write=False)
        self._covariances.setflags(write=False)
        self._vc = variance_components
        self._source = source
        self._likelihood = likelihood

    # -- tables ---------------------------------------------------------------------------
    def summary(self, alpha: float = 0.05) -> pd.DataFrame:
        """Pooled estimates with t-based inference on Barnard-Rubin df.

        Parameters
        ----------
        alpha : float, default 0.05
            ``ci_low``/``ci_high`` bound a two-sided ``1 - alpha`` interval.

        Returns
        -------
        pandas.DataFrame
            Indexed by term, columns
            ``estimate, se, t, df, p, ci_low, ci_high, riv, lambda, fmi``; shown whole and
            rounded (a :class:`mlimpute.result.display.Table`), the values are not rounded.

        Examples
        --------
        >>> import mlimpute
        >>> from mlimpute.datasets import classroom
        >>> d = classroom(1, rng=1)
        >>> imp = d.incomplete.mi.impute(d.imputation, m=5, iterations=10, rng=2)
        >>> res = imp.fit("grade ~ skill + (1 | class)")
        >>> list(res.summary().index), list(res.summary().columns[:5])
        (['Intercept', 'skill'], ['estimate', 'se', 't', 'df', 'p'])
        """
        from mlimpute.result.display import Table

        return Table(self.pooled.table(alpha=alpha), digits={"df": 1})

    @property
    def per_imputation(self) -> pd.DataFrame:
        """The ``m`` complete-data estimates, one row per imputation (1..m)."""
        return pd.DataFrame(
            self._estimates,
            index=pd.RangeIndex(1, self.m + 1, name="imputation"),
            columns=pd.Index(self.names, name="term"),
        )

    @property
    def notes(self) -> tuple[str, ...]:
        """Problems with some complete-data fits, in words (kept in the pooling)."""
        out = list(getattr(self, "remarks", ()))
        if self.singular:
            out.append(
                f"boundary (singular) fit in {len(self.singular)} of {self.m} imputations "
                f"({_listing(self.singular)}): a random-effect variance is estimated as "
                "(near) zero or a correlation as +-1 (lme4's isSingular rule)"
            )
        if self.nonconverged:
            out.append(
                f"the optimiser did not converge in {len(self.nonconverged)} of {self.m} "
                f"imputations ({_listing(self.nonconverged)}); see .fits[i - 1].messages"
            )
        return tuple(out)

    # -- tests ----------------------------------------------------------------------------
    def test(
        self,
        hypothesis: str,
        method: Literal["D1", "D2", "D3"] = "D1",
        *,
        use: Literal["wald", "likelihood"] = "wald",
        ariv: Literal["default", "positive"] = "default",
    ) -> TestResult:
        """Test linear hypotheses on the pooled fixed effects.

        Parameters
        ----------
        hypothesis : str
            E.g. ``"gender = 0, skill:gender = 0"`` (see :func:`parse_hypotheses`).
        method : {"D1", "D2", "D3"}, default "D1"
            D1: pooled Wald test (Li, Raghunathan & Rubin 1991; Reiter's df with the
            result's finite ``dfcom``). D2: combines the ``m`` chi-square statistics,
            Wald (``use="wald"``) or likelihood-ratio (``use="likelihood"``). D3: Meng &
            Rubin's likelihood-ratio test.
        use : {"wald", "likelihood"}, default "wald"
            Which statistics D2 combines (mitml's ``use``).
        ariv : {"default", "positive"}
            For D3: ``"positive"`` truncates a negative ``r`` at zero.

        Returns
        -------
        TestResult

        Notes
        -----
        D2 with ``use="likelihood"`` and D3 need the hypothesis to set terms to zero
        (``term = 0, ...``): the reduced model is refitted on every completed data set
        without those columns of the fixed-effects design, both models by maximum
        likelihood (REML fits are refitted by ML, as mitml does). D3 is available for
        linear mixed models, OLS, binomial/Poisson GLMs and GLMMs fitted by ``fit()``
        (for a GLMM, each data set's likelihood at the pooled fixed effects and pooled
        random-effect covariance, with the fit's quadrature).

        Examples
        --------
        >>> import mlimpute
        >>> from mlimpute.datasets import classroom
        >>> d = classroom(1, rng=1)
        >>> imp = d.incomplete.mi.impute(d.imputation, m=5, iterations=10, rng=2)
        >>> res = imp.fit("grade ~ skill + (1 | class)")
        >>> t = res.test("skill = 0, Intercept = 10")
        >>> round(t.statistic, 2), t.df1, round(t.p, 4)
        (5.89, 2.0, 0.0063)
        """
        method = _check_method(method, use)
        L, rhs, dropped = parse_hypotheses(hypothesis, self.names)
        k = L.shape[0]
        if method == "D1" or (method == "D2" and use == "wald"):
            q = self._estimates @ L.T - rhs
            u = np.einsum("ij,ljk,mk->lim", L, self._covariances, L)
            terms = [self.names[j] for j in np.flatnonzero(np.any(L != 0, axis=0))]
            if method == "D1":
                return d1(q, u, dfcom=self.dfcom, names=terms)
            return d2(_wald(q, u, names=terms), k)
        if dropped is None:
            raise UnsupportedError(
                f"likelihood-based tests ({method}"
                f"{', use=likelihood' if method == 'D2' else ''}) need hypotheses of the form "
                f"'term = 0, ...' (the reduced model drops those terms); {hypothesis!r} is "
                "not; use method='D1' or D2 with use='wald'."
            )
        full = self._need_likelihood(method)
        if len(dropped) == len(self.names):
            raise UnsupportedError("the hypothesis drops every fixed effect; keep at least one.")
        reduced = full.dropping(dropped)
        return _likelihood_test(full, reduced, k, method, ariv)

    def compare(
        self,
        reduced: PooledResult,
        method: Literal["D1", "D2", "D3"] = "D1",
        *,
        use: Literal["wald", "likelihood"] = "wald",
        ariv: Literal["default", "positive"] = "default",
    ) -> TestResult:
        """Compare this model with a nested ``reduced`` one (mitml's ``testModels``).

        Parameters
        ----------
        reduced : PooledResult
            A model fitted to the same imputations whose terms are a subset of this one's,
            of the same kind, family and link (a GLMM with the GLM of the same family,
            or a linear mixed model with OLS, tests the random part).
        method : {"D1", "D2", "D3"}, default "D1"
            D1 and D2 (``use="wald"``) test the fixed effects this model has and
            ``reduced`` lacks; D2 with ``use="likelihood"`` and D3 compare the two models'
            likelihoods and so also test random parts (D3 refits REML fits by ML; the
            number of parameters tested is the difference in parameter counts).
        use, ariv
            As in :meth:`test`.

        Returns
        -------
        TestResult

        Raises
        ------
        PoolingError
            For models of different kinds, families or links (naming both), fitted to
            other imputations, with other responses, or not nested.

        Notes
        -----
        Likelihood ratios of GLMMs need both log-likelihoods from the same
        approximation: a reduced GLMM fitted with another ``nagq`` than this one (by
        default a random intercept has 10 quadrature nodes, random slopes the Laplace
        approximation) is refitted with this model's ``nagq`` for D2 with
        ``use="likelihood"`` and D3 (``reduced`` itself is unchanged). Wald tests (D1, D2
        with ``use="wald"``) use this model's estimates only.
        """
        if not isinstance(reduced, PooledResult):
            raise PoolingError(f"compare() needs a PooledResult, got {type(reduced).__name__}.")
        method = _check_method(method, use)
        _check_same_family(self, reduced)
        if reduced._source is not self._source or reduced.m != self.m:
            raise PoolingError(
                "the two models must be fitted to the same imputations (the same object's "
                ".fit()/.apply()); these were not."
            )
        if self.response != reduced.response:
            raise PoolingError(
                f"the models have different responses ({self.response!r} and "
                f"{reduced.response!r}) and cannot be compared."
            )
        missing = [n for n in reduced.names if n not in self.names]
        if missing:
            hint = (
                " (call the larger model's compare())"
                if len(reduced.names) > len(self.names)
                else ""
            )
            raise PoolingError(
                f"the models are not nested: {missing} of the reduced model are not terms of "
                f"this one{hint}."
            )
        if method == "D1" or (method == "D2" and use == "wald"):
            extra = [n for n in self.names if n not in reduced.names]
            if not extra:
                raise PoolingError(
                    "the models have the same fixed effects; Wald tests (D1, D2 with "
                    "use='wald') compare fixed effects only; use method='D3' or "
                    "use='likelihood' to compare their random parts."
                )
            return self.test(", ".join(f"`{n}` = 0" for n in extra), method, use=use)
        full = self._need_likelihood(method)
        red = _same_nagq(full, reduced._need_likelihood(method), self, reduced)
        k = full.n_params - red.n_params
        if k < 1:
            raise PoolingError(
                f"the full model must have more parameters than the reduced one; it has "
                f"{full.n_params}, the reduced model {red.n_params}."
            )
        return _likelihood_test(full, red, k, method, ariv)

    def _need_likelihood(self, method: str):
        if self._likelihood is None:
            raise UnsupportedError(
                f"{method} on likelihoods needs the model refitted on every completed data "
                f"set, which only results of fit() can do; this is a {self.model}. Use D1 or "
                f"D2 with use='wald'{_plausible_hint(self.model)}."
            )
        return self._likelihood


# --------------------------------------------------------------------------------------
# what compare() can compare

#: kinds of fit() models that may be compared with each other: the same kind, or a
#: mixed model with the single-level model of the same family (tests of the random part)
_COMPARABLE_KINDS = ({"lmm", "ols"}, {"glmm", "glm"})


def _check_same_family(full: PooledResult, reduced: PooledResult) -> None:
    """Refuse models of different kinds (other than a mixed model and the single-level
    model of the same family), families or links: neither their likelihoods nor their
    coefficients are comparable. Results of ``apply()`` (no model known) are not checked."""
    a, b = getattr(full._likelihood, "model", None), getattr(reduced._likelihood, "model", None)
    if a is None or b is None:
        return
    kinds = {a.kind, b.kind}
    if len(kinds) > 1 and kinds not in _COMPARABLE_KINDS:
        raise PoolingError(
            f"the models are of different kinds: this one is a {full.model}, the reduced one "
            f"a {reduced.model}; compare() compares nested models of the same kind, family "
            "and link (or a mixed model with the model without its random part)."
        )
    (fa, la), (fb, lb) = a.family_and_link(), b.family_and_link()
    if fa != fb:
        raise PoolingError(
            f"the models have different families ({fa!r} and {fb!r}: this one is a "
            f"{full.model}, the reduced one a {reduced.model}) and cannot be compared."
        )
    if la != lb:
        raise PoolingError(
            f"the models have different links ({la!r} and {lb!r}: this one is a "
            f"{full.model}, the reduced one a {reduced.model}) and cannot be compared."
        )


def _same_nagq(full, red, full_result: PooledResult, reduced_result: PooledResult):
    """The reduced GLMM's likelihood with the full one's quadrature: a GLMM fitted with
    other ``nagq`` (by default 10 nodes for a random intercept, Laplace with random
    slopes) is refitted with the full model's, so that both likelihoods are the same
    approximation (a difference of a Laplace and a quadrature log-likelihood is no
    likelihood ratio)."""
    if full.model.kind != "glmm" or red.model.kind != "glmm":
        return red
    k_full, k_red = full_result.fits[0].nagq, reduced_result.fits[0].nagq
    if k_full == k_red:
        return red
    q = len(red.model.random_names)
    if k_full**q > 10_000:
        raise PoolingError(
            f"the full model was fitted with nagq={k_full}, the reduced one with "
            f"nagq={k_red}: likelihood ratios need the same approximation, and the reduced "
            f"model's {q} random effects allow no refit with nagq={k_full} "
            f"({k_full**q} nodes per cluster); fit both with nagq=1 (Laplace)."
        )
    return red.with_nagq(k_full)


# --------------------------------------------------------------------------------------
# variance-component inference


def _likelihood_test(full, reduced, k: int, method: str, ariv: str) -> TestResult:
    own_f, pooled_f = full.loglik_own(), full.loglik_pooled()
    own_r = reduced.loglik_own()
    lr_own = 2.0 * (own_f - own_r)
    if method == "D2":
        return d2(lr_own, k)
    lr_pooled = 2.0 * (pooled_f - reduced.loglik_pooled())
    return d3(lr_own, lr_pooled, k, ariv=ariv)


def _check_method(method: str, use: str) -> str:
    if method not in ("D1", "D2", "D3"):
        raise PoolingError(f"method must be 'D1', 'D2' or 'D3', got {method!r}.")
    if use not in ("wald", "likelihood"):
        raise PoolingError(f"use must be 'wald' or 'likelihood', got {use!r}.")
    return method


def _listing(items: Sequence[int], limit: int = 10) -> str:
    shown = ", ".join(str(i) for i in items[:limit])
    return shown + (", ..." if len(items) > limit else "")
