"""The variance components and R² of a pooled result.

:meth:`~_VarianceTables.variance_components` (random-effect (co)variances, residual
variance and intra-class correlations, pooled on normalising scales) and
:meth:`~_VarianceTables.r_squared` (Nakagawa-Schielzeth R²) of
:class:`~mlimpute.analysis.results.PooledResult`, a base class of it; the computations
are in :mod:`mlimpute.analysis.components`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlimpute.analysis.components import (
    pool_transformed,
    r_squared_one,
    vc_inference,
    with_correlations,
)
from mlimpute.analysis.fitters import base as _fitters
from mlimpute.errors import UnsupportedError
from mlimpute.pooling import pool_variance_components
from mlimpute.pooling.rubin import check_alpha

__all__: list[str] = []


def _plausible_hint(model: str) -> str:
    """What a latent covariate model's result cannot do, the plausible-values fit can."""
    if model.startswith("latent covariate"):
        return ", or fit with latent='plausible' (lmean(x) as a predictor)"
    return ""


class _VarianceTables:
    """The variance-component tables of a
    :class:`~mlimpute.analysis.results.PooledResult` (a base class of it)."""

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
        PoolingError
            If ``alpha`` is not strictly between 0 and 1.
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
        check_alpha(alpha)
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
        PoolingError
            If ``alpha`` is not strictly between 0 and 1.
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
        check_alpha(alpha)
        lik = self._likelihood
        if (
            lik is None
            or getattr(lik.model, "kind", None) != "lmm"
            or not all(isinstance(f, _fitters.MixedFit) for f in self.fits)
        ):
            raise UnsupportedError(
                f"r_squared() is available for linear mixed models fitted by fit(); this "
                f"result is a {self.model}{_plausible_hint(self.model)}."
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
