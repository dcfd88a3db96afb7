"""Inference for variance components, the ICC and R² across imputations.

Each completed data set's fit carries the sampling covariance of its variance parameters
(``cov_vc``, from the REML/ML information). Variances are pooled on the log scale, the ICC
and R² on the logit scale and correlations on Fisher's z scale (quantities with skewed or
bounded sampling distributions pooled after a normalising transformation: van Buuren,
*Flexible Imputation of Missing Data*, 2nd ed., §5.3.1; Marshall et al. 2009), each
imputation's variance on that scale by the delta method; Rubin's rules with Barnard–Rubin
df; the interval is transformed back. R² is Nakagawa & Schielzeth's marginal and
conditional R² (Johnson's extension for random slopes).

With several grouping factors (:class:`~mlimpute.analysis.fitters.multiterm.MultiFit`)
the rows of each factor get complete-data df ``J_k - 1`` (``J_k`` groups of that
factor), the residual variance ``n - J`` (nested: ``J`` groups of the innermost factor;
crossed: ``J = sum_k J_k - (T - 1)``, the rank of the group indicators), and the ICC of
each factor, ``var_k / (sum_l var_l + sigma2)`` over the random-intercept variances
``var_l`` of all factors, is pooled on the logit scale,
``log var_k - log(sum_{l != k} var_l + sigma2)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from mlimpute.analysis.fitters import base as _fitters
from mlimpute.analysis.fitters.multiterm import MultiFit

__all__ = ["vc_inference", "pool_transformed", "with_correlations", "r_squared_one"]
BACK_TRANSFORM = {
    "log": np.exp,
    "logit": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "identity": lambda x: x,
    "fisher_z": np.tanh,
}


def vc_transformed(fit, names: Sequence[str]):
    """Per row: (scale, value on that scale, its variance, level 2?) for one fit."""
    if isinstance(fit, _fitters.OLSFit):
        n = fit.df_resid + fit.params.size
        s2 = fit.sigma2_ml * n / fit.df_resid
        return ["log"], np.array([np.log(s2)]), np.array([2.0 / fit.df_resid]), [False]
    if not isinstance(fit, _fitters.MixedFit) or fit.cov_vc is None:
        return None
    if isinstance(fit, MultiFit):
        return _vc_transformed_multi(fit, names)
    q = fit.cov_re.shape[0]
    mask = np.ones((q, q), bool) if fit.free is None else fit.free
    rows, cols = np.nonzero(np.tril(mask))
    pos = {(int(r), int(c)): k for k, (r, c) in enumerate(zip(rows, cols, strict=True))}
    d = rows.size + 1
    phi = np.r_[fit.cov_re[rows, cols], fit.scale]
    grads, values, scales, level2 = [], [], [], []
    diag_names = {}
    # a variance on the boundary (lme4's isSingular rule) has no log: NaN, and so has
    # every row that involves it
    zero = fit.relative_cholesky_diagonal < _fitters.SINGULAR_TOL
    for a in range(q):
        for b in range(a, q):
            if not mask[a, b]:
                continue
            k = pos[(b, a)]
            g = np.zeros(d)
            if a == b:
                diag_names[a] = k
                with np.errstate(divide="ignore", invalid="ignore"):
                    g[k] = 1.0 / phi[k]
                    values.append(np.nan if zero[a] else np.log(phi[k]))
                scales.append("log")
            else:
                g[k] = 1.0
                values.append(np.nan if zero[a] or zero[b] else phi[k])
                scales.append("identity")
            grads.append(g)
            level2.append(True)
    g = np.zeros(d)
    g[-1] = 1.0 / phi[-1]
    grads.append(g)
    values.append(np.log(phi[-1]))
    scales.append("log")
    level2.append(False)
    if len(values) < len(names):  # the ICC of the random intercept
        j = intercept_index(names, q)
        k = diag_names[j]
        g = np.zeros(d)
        with np.errstate(divide="ignore", invalid="ignore"):
            g[k] = 1.0 / phi[k]
            values.append(np.nan if zero[j] else np.log(phi[k] / phi[-1]))
        g[-1] = -1.0 / phi[-1]
        grads.append(g)
        scales.append("logit")
        level2.append(True)
    grads = np.array(grads)
    with np.errstate(invalid="ignore"):
        var = np.einsum("rd,de,re->r", grads, fit.cov_vc, grads)
    return scales, np.array(values), var, level2


def _term_of(fit: MultiFit) -> np.ndarray:
    """Term index of each random-effect column of a several-term fit."""
    return np.repeat(np.arange(len(fit.term_sizes)), fit.term_sizes)


def _vc_transformed_multi(fit: MultiFit, names: Sequence[str]):
    """As :func:`vc_transformed` for several grouping factors; the last element holds
    per row the term index (-1: the residual variance)."""
    q = fit.cov_re.shape[0]
    mask = fit.free
    term = _term_of(fit)
    rows, cols = np.nonzero(np.tril(mask))
    pos = {(int(r), int(c)): k for k, (r, c) in enumerate(zip(rows, cols, strict=True))}
    d = rows.size + 1
    phi = np.r_[fit.cov_re[rows, cols], fit.scale]
    zero = fit.relative_cholesky_diagonal < _fitters.SINGULAR_TOL
    grads, values, scales, levels = [], [], [], []
    for a in range(q):
        for b in range(a, q):
            if not mask[a, b]:
                continue
            k = pos[(b, a)]
            g = np.zeros(d)
            if a == b:
                with np.errstate(divide="ignore", invalid="ignore"):
                    g[k] = 1.0 / phi[k]
                    values.append(np.nan if zero[a] else np.log(phi[k]))
                scales.append("log")
            else:
                g[k] = 1.0
                values.append(np.nan if zero[a] or zero[b] else phi[k])
                scales.append("identity")
            grads.append(g)
            levels.append(int(term[a]))
    g = np.zeros(d)
    g[-1] = 1.0 / phi[-1]
    grads.append(g)
    values.append(np.log(phi[-1]))
    scales.append("log")
    levels.append(-1)
    # ICC rows: one per random intercept, in column order (the order of the var rows)
    diag = [n for n in names if n.startswith("var(") and n != "var(Residual)"]
    ints = [a for a, n in enumerate(diag[:q]) if n.startswith("var(Intercept|")]
    if len(values) + len(ints) == len(names):
        total = sum(phi[pos[(a, a)]] for a in ints) + phi[-1]
        for a in ints:
            k = pos[(a, a)]
            rest = total - phi[k]
            g = np.zeros(d)
            with np.errstate(divide="ignore", invalid="ignore"):
                g[k] = 1.0 / phi[k]
                for b in ints:
                    if b != a:
                        g[pos[(b, b)]] = -1.0 / rest
                g[-1] = -1.0 / rest
                values.append(np.nan if zero[a] else np.log(phi[k]) - np.log(rest))
            grads.append(g)
            scales.append("logit")
            levels.append(int(term[a]))
    grads = np.array(grads)
    with np.errstate(invalid="ignore"):
        var = np.einsum("rd,de,re->r", grads, fit.cov_vc, grads)
    return scales, np.array(values), var, levels


def _residual_groups(fit: MultiFit) -> int:
    """Rank of the group indicators of a several-term fit (for the residual df)."""
    if fit.structure == "nested":
        return max(fit.term_groups)
    return sum(fit.term_groups) - (len(fit.term_groups) - 1)


def intercept_index(names: Sequence[str], q: int) -> int:
    diag = [n for n in names if n.startswith("var(") and n != "var(Residual)"]
    return next(a for a, n in enumerate(diag[:q]) if n.startswith("var(Intercept|"))


def vc_inference(fits, names: Sequence[str], n_groups: int | None, alpha: float) -> pd.DataFrame:
    """Rubin's rules on the transformed scale, back-transformed (see variance_components)."""
    c = len(names)
    out = pd.DataFrame(
        np.nan, index=pd.Index(names, name="term"), columns=["se", "ci_low", "ci_high", "df"]
    )
    per = [vc_transformed(f, names) for f in fits]
    if not per or any(p is None or len(p[1]) != c for p in per):
        return out
    scales, level2 = per[0][0], per[0][3]
    values = np.array([p[1] for p in per])
    variances = np.array([p[2] for p in per])
    first = fits[0]
    for r in range(c):
        v, u = values[:, r], variances[:, r]
        if not (np.all(np.isfinite(v)) and np.all(np.isfinite(u)) and np.all(u > 0)):
            continue
        if isinstance(first, _fitters.OLSFit):
            dfcom = float(first.df_resid)
        elif isinstance(first, MultiFit):
            level = level2[r]
            dfcom = float(
                first.nobs - _residual_groups(first) if level < 0 else first.term_groups[level] - 1
            )
        elif level2[r]:
            dfcom = float(n_groups - 1)
        else:
            dfcom = float(first.nobs - n_groups)
        out.iloc[r] = pool_transformed(v, u, dfcom, scales[r], alpha)
    return out


def pool_transformed(v: np.ndarray, u: np.ndarray, dfcom: float, scale: str, alpha: float) -> list:
    """``[se, ci_low, ci_high, df]`` of one quantity pooled on ``scale``, carried back."""
    from scipy import stats

    from mlimpute.pooling import pool_scalar

    res = pool_scalar(v, u, dfcom=dfcom)
    qbar, t, df = float(res.qbar[0]), float(res.t[0, 0]), float(res.df[0])
    if np.all(v == v[0]):
        qbar = float(v[0])
    half = stats.t.ppf(1.0 - alpha / 2.0, df) * np.sqrt(t)
    back = BACK_TRANSFORM[scale]
    with np.errstate(over="ignore"):
        est = back(qbar)
        deriv = {"log": est, "logit": est * (1.0 - est), "identity": 1.0, "fisher_z": 1.0 - est**2}[
            scale
        ]
        return [deriv * np.sqrt(t), back(qbar - half), back(qbar + half), df]


def correlations_of(fit):
    """``[(a, b, rho, z, var z)]`` for each free covariance of one mixed-model fit."""
    q = fit.cov_re.shape[0]
    mask = np.ones((q, q), bool) if fit.free is None else fit.free
    rows, cols = np.nonzero(np.tril(mask))
    pos = {(int(r), int(c)): k for k, (r, c) in enumerate(zip(rows, cols, strict=True))}
    zero = fit.relative_cholesky_diagonal < _fitters.SINGULAR_TOL
    out = []
    for a in range(q):
        for b in range(a + 1, q):
            if not mask[a, b]:
                continue
            va, vb, c = fit.cov_re[a, a], fit.cov_re[b, b], fit.cov_re[a, b]
            rho = c / np.sqrt(va * vb) if va > 0 and vb > 0 else np.nan
            if zero[a] or zero[b] or fit.cov_vc is None or not abs(rho) < 1:
                out.append((a, b, rho, np.nan, np.nan))
                continue
            g = np.zeros(rows.size + 1)  # d atanh(rho) / d phi
            k = 1.0 / (1.0 - rho**2)
            g[pos[(b, a)]] = k / np.sqrt(va * vb)
            g[pos[(a, a)]] = -k * rho / (2.0 * va)
            g[pos[(b, b)]] = -k * rho / (2.0 * vb)
            out.append((a, b, rho, np.arctanh(rho), float(g @ fit.cov_vc @ g)))
    return out


def with_correlations(table: pd.DataFrame, fits, n_groups, alpha: float) -> pd.DataFrame:
    """``table`` with a Fisher-z pooled ``cor(...)`` row after each ``cov(...)`` row."""
    cov_rows = [n for n in table.index if str(n).startswith("cov(")]
    if not cov_rows or not all(isinstance(f, _fitters.MixedFit) for f in fits):
        return table
    per = [correlations_of(f) for f in fits]
    pieces = []
    k = 0
    for name in table.index:
        pieces.append(table.loc[[name]])
        if not str(name).startswith("cov("):
            continue
        rho = np.array([p[k][2] for p in per])
        z = np.array([p[k][3] for p in per])
        u = np.array([p[k][4] for p in per])
        row = {"estimate": float(np.mean(rho)), "between_sd": float(np.std(rho, ddof=1))}
        if np.all(rho == rho[0]):
            row.update(estimate=float(rho[0]), between_sd=0.0)
        stats_ = [np.nan] * 4
        groups = n_groups
        if isinstance(fits[0], MultiFit):
            groups = fits[0].term_groups[int(_term_of(fits[0])[per[0][k][0]])]
        if np.all(np.isfinite(z)) and np.all(np.isfinite(u)) and np.all(u > 0):
            stats_ = pool_transformed(z, u, float(groups - 1), "fisher_z", alpha)
        row.update(zip(["se", "ci_low", "ci_high", "df"], stats_, strict=True))
        pieces.append(pd.DataFrame(row, index=pd.Index(["cor" + str(name)[3:]], name="term")))
        k += 1
    return pd.concat(pieces)


def r_squared_one(fit, design) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Marginal and conditional R² of one LMM fit, their logits and delta-method variances."""
    X = np.asarray(design.X, dtype=float)
    Z = np.asarray(design.Z, dtype=float)
    beta = fit.fe_params
    sx = np.atleast_2d(np.cov(X, rowvar=False))
    var_f = float(beta @ sx @ beta)  # var(X beta), n - 1 divisor as in MuMIn
    mz = Z.T @ Z / Z.shape[0]  # mean z z'
    var_r = float(np.sum(fit.cov_re * mz))  # mean z' Tau z (Johnson 2014)
    var_e = float(fit.scale)
    q = fit.cov_re.shape[0]
    mask = np.ones((q, q), bool) if fit.free is None else fit.free
    rows, cols = np.nonzero(np.tril(mask))
    g_r = np.r_[np.where(rows == cols, mz[rows, cols], 2.0 * mz[rows, cols]), 0.0]
    e_last = np.zeros(rows.size + 1)
    e_last[-1] = 1.0
    g_beta_f = 2.0 * sx @ beta
    total = var_f + var_r + var_e
    r2 = np.array([var_f / total, (var_f + var_r) / total])
    logits = np.array(
        [np.log(var_f) - np.log(var_r + var_e), np.log(var_f + var_r) - np.log(var_e)]
    )
    grads = [
        (g_beta_f / var_f, -(g_r + e_last) / (var_r + var_e)),
        (g_beta_f / (var_f + var_r), g_r / (var_f + var_r) - e_last / var_e),
    ]
    cov_vc = np.full((rows.size + 1,) * 2, np.nan) if fit.cov_vc is None else fit.cov_vc
    var = np.array([gb @ fit.cov_fe @ gb + gp @ cov_vc @ gp for gb, gp in grads])
    return r2, logits, var
