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
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from mlimpute.analysis.components import (
    pool_transformed,
    r_squared_one,
    vc_inference,
    with_correlations,
)
from mlimpute.analysis.fitters import base as _fitters
from mlimpute.analysis.hypotheses import parse_hypotheses
from mlimpute.errors import PoolingError, UnsupportedError
from mlimpute.pooling import PooledEstimates, TestResult, d1, d2, d3, pool_variance_components
from mlimpute.pooling import wald_statistics as _wald

__all__ = ["PooledResult", "parse_hypotheses"]

_RULE = 88


# --------------------------------------------------------------------------------------
# the result


class PooledResult:
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
        Those problems in words, as shown under the table.
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
    ):
        self.pooled = pooled
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

    def variance_components(self, alpha: float = 0.05, correlations: bool = False) -> pd.DataFrame:
        """Variance components averaged over imputations, with pooled intervals.

        Rows, for a model with random part ``(1 + gender | class)``:
        ``var(Intercept|class)``, ``cov(Intercept,gender|class)``, ``var(gender|class)``,
        ``var(Residual)`` and ``ICC|class``: the random-effect (co)variances (absolute,
        lme4's scale), the residual variance and the intra-class correlation
        ``var(Intercept) / (var(Intercept) + var(Residual))``. Covariances fixed at zero
        (``||``, separate blocks) are not listed. Each quantity, the ICC included, is
        computed within each imputation and then averaged (mitml's
        ``testEstimates(extra.pars = TRUE)``); ``between_sd`` is its standard deviation
        over the imputations. An OLS fit has ``var(Residual)`` (``RSS / (n - p)``) only.
        A GLMM has no residual variance: its (co)variances are on the latent (linear
        predictor) scale, and a binomial GLMM's ``ICC|class`` is the latent-scale
        ``var(Intercept) / (var(Intercept) + pi^2/3)`` (logit) or ``/ (var(Intercept) + 1)``
        (probit); a Poisson GLMM has no ICC row.

        **Several grouping factors** (``(1 | school) + (1 | school:class)``,
        ``(1 | school) + (1 | neighbourhood)``): the rows of each factor
        (``var(Intercept|school)``, ``var(Intercept|school:class)``, ...), then
        ``var(Residual)``, then ``ICC|factor`` for each factor with a random intercept:
        its share of the total variance, ``var(Intercept|k) / (sum over factors of
        var(Intercept|l) + var(Residual))`` (the variance partition coefficient; for
        nested factors the correlation of two pupils of one class is the sum of the
        class and school rows). The complete-data df below are ``J_k - 1`` with ``J_k`` the
        groups of the row's own factor.

        **Inference.** ``se``, ``ci_low``, ``ci_high`` and ``df`` come from Rubin's rules
        applied on a scale where the estimates are close to normal, then transformed
        back (van Buuren 2018, *Flexible Imputation of Missing Data*, 2nd ed., §5.3.1,
        and Marshall et al. 2009, *BMC Med Res Methodol* 9:57: pool quantities with
        skewed or bounded sampling distributions after a normalising transformation):
        variances (``var(...)``, ``var(Residual)``) on the log scale -- a variance is
        positive and its estimate right-skewed, and the log is the usual scale for Wald
        intervals of variance components (Pinheiro & Bates 2000, §2.4.3); the ICC on the
        logit scale, where ``logit(ICC) = log var(Intercept) - log var(Residual)`` is a
        difference of two log variances, so the same argument applies and the interval
        stays in (0, 1); covariances, which can take either sign, on their own scale. Each
        imputation's variance on that scale is the delta method applied to the fit's
        sampling covariance of ``(Tau, sigma2)``: the inverse observed REML (or ML)
        information, from the Hessian of the deviance (OLS: ``var(log s^2) = 2 / (n - p)``).
        ``df`` is the Barnard-Rubin df with complete-data df ``J - 1`` (``J`` clusters)
        for the cluster-level rows and the ICC, ``n - J`` for the residual variance
        (``n - p`` for OLS). The interval is the back-transformed ``t`` interval, so it
        is not symmetric about ``estimate`` (which stays the mean over imputations);
        ``se`` is the pooled standard error on the transformed scale carried back by the
        delta method (``exp(qbar) sqrt(T)`` for a variance). These columns are NaN where
        no sampling covariance is available (GLMMs) or a variance is estimated as zero
        in some imputation (a singular fit: zero has no log).

        With ``correlations=True`` each covariance row is followed by the random-effect
        correlation, ``cor(Intercept,gender|class)``: computed within each imputation,
        averaged, and pooled on Fisher's z scale (``atanh``), where a correlation's
        estimate is close to normal with a variance that depends little on the
        correlation itself (van Buuren 2018, §5.3.1); its interval stays in (-1, 1).

        Parameters
        ----------
        alpha : float, default 0.05
            ``ci_low``/``ci_high`` bound a two-sided ``1 - alpha`` interval.
        correlations : bool, default False
            Add a correlation row after each covariance row.

        Returns
        -------
        pandas.DataFrame
            Columns ``estimate, between_sd, se, ci_low, ci_high, df``.

        Raises
        ------
        UnsupportedError
            For GLMs and for results of ``apply()``, which have no such components.

        Examples
        --------
        >>> import mlimpute
        >>> from mlimpute.datasets import classroom
        >>> d = classroom(1, rng=1)
        >>> imp = d.incomplete.mi.impute(d.imputation, m=5, iterations=10, rng=2)
        >>> vc = imp.fit("grade ~ skill + (1 | class)").variance_components()
        >>> list(vc.columns)
        ['estimate', 'between_sd', 'se', 'ci_low', 'ci_high', 'df']
        >>> bool((vc["ci_low"] < vc["estimate"]).all() and (vc["estimate"] < vc["ci_high"]).all())
        True
        """
        if self._vc is None:
            raise UnsupportedError(
                f"variance components are reported for mixed models and OLS fitted by "
                f"fit(); this result is a {self.model}."
            )
        names, values = self._vc
        table = pool_variance_components(values, names)
        # identical imputations give the complete-data values exactly (a mean of equal
        # floats can be off in the last bit)
        same = np.all(values == values[:1], axis=0)
        table.loc[same, "estimate"] = values[0, same]
        table.loc[same, "between_sd"] = 0.0
        inference = vc_inference(self.fits, names, self.n_groups, alpha)
        for col in ("se", "ci_low", "ci_high", "df"):
            table[col] = inference[col]
        if correlations:
            table = with_correlations(table, self.fits, self.n_groups, alpha)
        from mlimpute.result.display import Table

        return Table(
            table,
            digits={"estimate": 4, "between_sd": 4, "se": 4, "ci_low": 4, "ci_high": 4, "df": 1},
        )

    def r_squared(self, alpha: float = 0.05) -> pd.DataFrame:
        """Nakagawa-Schielzeth marginal and conditional R² of a linear mixed model, pooled.

        Per imputation, with ``var_f`` the variance of the fixed-effect predictions
        ``X beta`` (``n - 1`` divisor), ``var_r`` the mean of ``z_i' Tau z_i`` over rows
        (the random-effect variance; Johnson's 2014 extension to random slopes, ``D0`` for
        a random intercept) and ``var_e`` the residual variance: marginal
        ``R² = var_f / (var_f + var_r + var_e)``, conditional
        ``R² = (var_f + var_r) / (var_f + var_r + var_e)`` (Nakagawa & Schielzeth 2013).
        ``estimate`` is their mean over imputations; the interval is pooled on the logit
        scale as the ICC in :meth:`variance_components` (the logit of each R² is a
        difference of log variances), each imputation's variance by the delta method from
        the fit's covariance of the fixed effects and of the variance parameters, with
        Barnard-Rubin ``df`` on complete-data df ``J - 1`` (several grouping factors: the
        smallest ``J``).

        Parameters
        ----------
        alpha : float, default 0.05
            ``ci_low``/``ci_high`` bound a two-sided ``1 - alpha`` interval.

        Returns
        -------
        pandas.DataFrame
            Rows ``marginal``, ``conditional``; columns
            ``estimate, between_sd, se, ci_low, ci_high, df``.

        Raises
        ------
        UnsupportedError
            For anything but a linear mixed model fitted by ``fit()``.

        Examples
        --------
        >>> import mlimpute
        >>> from mlimpute.datasets import classroom
        >>> d = classroom(1, rng=1)
        >>> imp = d.incomplete.mi.impute(d.imputation, m=5, iterations=10, rng=2)
        >>> r2 = imp.fit("grade ~ skill + (1 | class)").r_squared()
        >>> list(r2.index), bool((r2["ci_low"] < r2["estimate"]).all())
        (['marginal', 'conditional'], True)
        """
        lik = self._likelihood
        if (
            lik is None
            or getattr(lik.model, "kind", None) != "lmm"
            or not all(isinstance(f, _fitters.MixedFit) for f in self.fits)
        ):
            raise UnsupportedError(
                f"r_squared() is available for linear mixed models fitted by fit(); this "
                f"result is a {self.model}."
            )
        per = [r_squared_one(f, d) for f, (_, d) in zip(self.fits, lik._designs(), strict=True)]
        r2 = np.array([p[0] for p in per])
        logits = np.array([p[1] for p in per])
        var = np.array([p[2] for p in per])
        names = ["marginal", "conditional"]
        table = pool_variance_components(r2, names)
        table.index.name = None
        extra = []
        for r in range(2):
            v, u = logits[:, r], var[:, r]
            if np.all(np.isfinite(v)) and np.all(np.isfinite(u)) and np.all(u > 0):
                groups = min(np.atleast_1d(self.n_groups))  # several factors: the fewest
                extra.append(pool_transformed(v, u, float(groups - 1), "logit", alpha))
            else:
                extra.append([np.nan] * 4)
        table[["se", "ci_low", "ci_high", "df"]] = np.array(extra)
        from mlimpute.result.display import Table

        return Table(table, digits={"estimate": 4, "between_sd": 4, "se": 4, "df": 1})

    @property
    def notes(self) -> tuple[str, ...]:
        """Problems with some complete-data fits, in words (kept in the pooling)."""
        out = []
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
            if method == "D1":
                return d1(q, u, dfcom=self.dfcom)
            return d2(_wald(q, u), k)
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
            A model fitted to the same imputations whose terms are a subset of this one's.
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
        """
        if not isinstance(reduced, PooledResult):
            raise PoolingError(f"compare() needs a PooledResult, got {type(reduced).__name__}.")
        method = _check_method(method, use)
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
        red = reduced._need_likelihood(method)
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
                "D2 with use='wald'."
            )
        return self._likelihood

    # -- display --------------------------------------------------------------------------
    def _header(self) -> list[tuple[str, str]]:
        rows = [("Model", self.model)]
        if self.formula:
            rows.append(("Formula", self.formula))
        rows.append(("Imputations", str(self.m)))
        if self.nobs is not None:
            rows.append(("Observations", str(self.nobs)))
        if isinstance(self.group, tuple):  # several grouping factors
            shown = ", ".join(f"{g} ({j})" for g, j in zip(self.group, self.n_groups, strict=True))
            rows.append(("Groups", shown))
        elif self.group is not None:
            rows.append(("Groups", f"{self.group} ({self.n_groups})"))
        rows.append(("Complete-data df", _fmt_num(self.dfcom)))
        rows.append(("Pooling", "Rubin's rules, Barnard-Rubin df"))
        return rows

    def _table_strings(self) -> pd.DataFrame:
        tab = self.summary()
        out = pd.DataFrame(index=tab.index.rename(None))
        for col in ["estimate", "se", "t"]:
            out[col] = tab[col].map(lambda v: f"{v:.4g}" if abs(v) >= 1e4 else f"{v:.3f}")
        out["df"] = tab["df"].map(_fmt_num)
        out["p"] = tab["p"].map(lambda v: "<0.001" if v < 0.001 else f"{v:.3f}")
        out["[0.025"] = tab["ci_low"].map(lambda v: f"{v:.3f}")
        out["0.975]"] = tab["ci_high"].map(lambda v: f"{v:.3f}")
        out["fmi"] = tab["fmi"].map(lambda v: f"{v:.3f}")
        return out

    def __str__(self) -> str:
        title = "Multiply imputed analysis"
        lines = [title.center(_RULE), "=" * _RULE]
        lines += [f"{k + ':':<18}{v}" for k, v in self._header()]
        lines.append("-" * _RULE)
        lines.append(self._table_strings().to_string())
        if self._vc is not None:
            lines.append("-" * _RULE)
            vc = self.variance_components()
            vc.index.name = None
            lines.append("Variance components (mean over imputations):")
            lines.append(vc.to_string(float_format=lambda v: f"{v:.4f}"))
        lines.append("=" * _RULE)
        lines += [f"Note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.__str__()

    def _repr_html_(self) -> str:
        head = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
            f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
            for k, v in self._header()
        )
        parts = [
            "<div><b>Multiply imputed analysis</b>",
            f"<table>{head}</table>",
            self._table_strings().to_html(),
        ]
        if self._vc is not None:
            parts.append(self.variance_components().to_html(float_format=lambda v: f"{v:.4f}"))
        parts += [f"<p><b>Note:</b> {html.escape(n)}</p>" for n in self.notes]
        parts.append("</div>")
        return "\n".join(parts)


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


def _fmt_num(v: float) -> str:
    if np.isinf(v):
        return "inf"
    return f"{v:.0f}" if v >= 1e4 or float(v).is_integer() else f"{v:.2f}"
