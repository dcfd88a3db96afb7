"""The latent contextual effect of design (d): maximum likelihood against model-based imputation.

    python benchmarks/contextual_ml.py [--reps 200] [--results DIR] [--out FILE]
                                       [--posterior DRAWS] [--iterations N [N ...]]

A script, not a test: nothing is asserted. Design (d) of the compatible study (200
clusters of five, ``x = μ_j + e`` with ICC_x 0.2, ``y = 0.5 x + 0.3 μ_j + u_j + e``, 20 % of
x missing at random on y). For replications ``0 .. reps − 1`` the data are regenerated
exactly as the study generates them, and the multilevel latent covariate model (Lüdtke et
al. 2008)::

    x_ij = ξ_j + e_ij,               ξ_j ~ N(μ_x, τ),   e_ij ~ N(0, σ_x²)
    y_ij = b0 + b1 x_ij + b2 ξ_j + u_j + ε_ij,   u_j ~ N(0, ψ),   ε_ij ~ N(0, σ²)

is fitted by maximum likelihood, by numerical optimisation of the exact log-likelihood of
each cluster's (x, y) vector (a 10-dimensional normal with the covariance the model
implies; missing x values simply drop out, so the same code fits the complete and the
incomplete data). On the complete data with equal clusters the model is just identified
and ML has a closed form (between- and within-cluster moments); the script checks the
numerical fit against it. Wald intervals use the inverse of a numerical Hessian.

Printed: mean (Monte Carlo SE), median, skewness and Wald coverage of the ML estimate of
b2 (the contextual effect, truth 0.3) on the complete and on the incomplete data, and,
where the study's replication files are found (``--results``, default
``/work/results/compatible``), the pooled ``lmean(x)`` estimate of model-based imputation
on the same replications, paired with the incomplete-data ML estimate. With
``--posterior`` (default 4000 draws) also the posterior mean of b2 on the incomplete data
under the imputation's priors, and under other priors on τ (the same draws reweighted).
With ``--iterations 30 200`` the script instead imputes model-based again (m = 20, the
study's random numbers; 30 iterations reproduce the stored estimates exactly) and compares
the pooled estimates, paired. Results are cached in ``--out`` (and ``*_iterations.csv``):
an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize, stats

from mlimpute.simulation.compatible.designs import DESIGNS
from mlimpute.simulation.compatible.study import CompatibleConfig, _seeds

N = 5  # rows per cluster


def _unpack(theta):
    mu, b0, b1, b2, lt, lsx, lpsi, ls2 = theta
    return mu, b0, b1, b2, np.exp(lt), np.exp(lsx), np.exp(lpsi), np.exp(ls2)


def _groups(x: np.ndarray, y: np.ndarray):
    """Clusters grouped by their number k of observed x; x observed first in each cluster."""
    X, Y = x.reshape(-1, N), y.reshape(-1, N)
    obs = ~np.isnan(X)
    order = np.argsort(~obs, axis=1, kind="stable")
    X = np.take_along_axis(X, order, 1)
    Y = np.take_along_axis(Y, order, 1)
    k = obs.sum(1)
    return [(kk, np.concatenate([X[k == kk, :kk], Y[k == kk]], 1)) for kk in np.unique(k)]


def negloglik(theta, groups) -> float:
    mu, b0, b1, b2, tau, sx, psi, s2 = _unpack(theta)
    bt = b1 + b2
    total = 0.0
    for k, V in groups:
        d = k + N
        C = np.empty((d, d))
        C[:k, :k] = tau + sx * np.eye(k)
        cyx = bt * tau + b1 * sx * np.eye(N)[:, :k]
        C[k:, :k] = cyx
        C[:k, k:] = cyx.T
        C[k:, k:] = bt**2 * tau + psi + (b1**2 * sx + s2) * np.eye(N)
        mean = np.r_[np.full(k, mu), np.full(N, b0 + bt * mu)]
        L = np.linalg.cholesky(C)
        R = np.linalg.solve(L, (V - mean).T)
        total += 0.5 * (R * R).sum() + V.shape[0] * np.log(np.diag(L)).sum()
    return total


def closed_form(x: np.ndarray, y: np.ndarray) -> float:
    """ML of b2 on complete equal clusters: within and between moments (divisor J)."""
    X, Y = x.reshape(-1, N), y.reshape(-1, N)
    xm, ym = X.mean(1), Y.mean(1)
    xw, yw = X - xm[:, None], Y - ym[:, None]
    swxx, swxy = (xw * xw).sum() / X.size, (xw * yw).sum() / X.size
    swxx, swxy = swxx * N / (N - 1), swxy * N / (N - 1)  # within ML: divisor J(n − 1)
    b1 = swxy / swxx
    sbxx = np.mean((xm - xm.mean()) ** 2)
    sbxy = np.mean((xm - xm.mean()) * (ym - ym.mean()))
    tau = sbxx - swxx / N
    return (sbxy - b1 * sbxx) / tau


def fit(x: np.ndarray, y: np.ndarray, posterior: int = 0, rng=None) -> dict[str, float]:
    """ML estimate of b2 and its Wald SE (inverse numerical Hessian); with ``posterior``
    > 0 also the posterior mean and 95 % interval of b2 by importance sampling."""
    groups = _groups(x, y)
    xo = x[~np.isnan(x)]
    start = np.array([xo.mean(), 0.0, 0.5, 0.0, np.log(0.2), np.log(0.8), np.log(0.2), 0.0])
    res = optimize.minimize(negloglik, start, args=(groups,), method="BFGS", options={"gtol": 1e-7})
    th = res.x
    h = 1e-4
    p = th.size
    H = np.empty((p, p))
    for i in range(p):
        for j in range(i, p):
            ei, ej = np.eye(p)[i] * h, np.eye(p)[j] * h
            H[i, j] = H[j, i] = (
                negloglik(th + ei + ej, groups)
                - negloglik(th + ei - ej, groups)
                - negloglik(th - ei + ej, groups)
                + negloglik(th - ei - ej, groups)
            ) / (4 * h * h)
    cov = np.linalg.inv(H)
    out = {"ml": float(th[3]), "se": float(np.sqrt(cov[3, 3]))}
    if posterior:
        out.update(_posterior(th, cov, groups, float(np.std(y)), posterior, rng))
    return out


def _log_prior(theta: np.ndarray, a: float) -> float:
    """The priors of model-based imputation on the parameters ``theta`` (log variances):
    flat on μ_x and the coefficients, ``p(v) ∝ 1/v`` for τ, σ_x² and σ² (flat in log v),
    half-t(2, A) on ψ's SD (A = sd(y), as ``2l.norm`` sets it)."""
    s = np.exp(theta[6] / 2)
    return -1.5 * np.log1p(s * s / (2 * a * a)) + theta[6] / 2


def _posterior(th, cov, groups, a, draws, rng) -> dict[str, float]:
    """Posterior of b2 by importance sampling from a multivariate t(5) around the ML fit
    (scale: the inverse Hessian): mean, 2.5 % and 97.5 % points, effective sample size;
    and the posterior mean under other priors on τ (the same draws, reweighted):
    ``post_tau_flat`` with ``p(τ) ∝ 1``, ``post_tau_sd`` with ``p(τ) ∝ τ^(−1/2)`` (flat on
    its SD), ``post_tau_ig`` with ``p(τ) ∝ τ^(−2) exp(−0.001/τ)`` (an inverse-gamma(1, 0.001)),
    against the imputation's ``p(τ) ∝ 1/τ``."""
    df = 5.0
    L = np.linalg.cholesky(cov)
    z = rng.standard_normal((draws, th.size))
    g = rng.chisquare(df, draws) / df
    T = th + (z @ L.T) / np.sqrt(g)[:, None]
    quad = np.sum(np.linalg.solve(L, (T - th).T) ** 2, axis=0)
    log_q = -0.5 * (df + th.size) * np.log1p(quad / df)
    log_p = np.array([-negloglik(t, groups) + _log_prior(t, a) for t in T])
    lw = log_p - log_q
    w = np.exp(lw - lw.max())
    w /= w.sum()
    b2 = T[:, 3]
    order = np.argsort(b2)
    cw = np.cumsum(w[order])
    lo, hi = b2[order][np.searchsorted(cw, [0.025, 0.975])]
    lt = T[:, 4]  # log τ
    alt = {}
    for name, dlog in (
        ("post_tau_flat", lt),
        ("post_tau_sd", lt / 2),
        ("post_tau_ig", -lt - 0.001 * np.exp(-lt)),
    ):
        la = lw + dlog
        wa = np.exp(la - la.max())
        alt[name] = float(wa @ b2 / wa.sum())
    return {
        **alt,
        "post_mean": float(w @ b2),
        "post_lo": float(lo),
        "post_hi": float(hi),
        "ess": float(1.0 / np.sum(w * w)),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=200)
    p.add_argument("--results", default="/work/results/compatible")
    p.add_argument("--out", default=str(Path(__file__).parent / "out" / "contextual_ml.csv"))
    p.add_argument(
        "--posterior",
        type=int,
        default=4000,
        help="importance draws for the posterior of b2 on the incomplete data (0: none)",
    )
    p.add_argument(
        "--iterations",
        type=int,
        nargs="*",
        default=[],
        help="instead: impute model-based again with these numbers of iterations (m = 20, "
        "the study's random numbers) and compare the pooled estimates, paired",
    )
    args = p.parse_args(argv)
    if args.iterations:
        return mixing(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = pd.read_csv(out).to_dict("records") if out.exists() else []
    done = {int(r["rep"]) for r in rows}
    seed = CompatibleConfig().seed
    for r in range(args.reps):
        if r in done:
            continue
        complete, incomplete = DESIGNS["d"].generate(
            np.random.default_rng(_seeds("d", r, seed)["data"])
        )
        y = complete["y"].to_numpy()
        row = {"rep": r, "closed_complete": closed_form(complete["x"].to_numpy(), y)}
        c = fit(complete["x"].to_numpy(), y)
        row["ml_complete"], row["se_complete"] = c["ml"], c["se"]
        i = fit(incomplete["x"].to_numpy(), y, args.posterior, np.random.default_rng(r))
        row["ml_incomplete"], row["se_incomplete"] = i["ml"], i["se"]
        if args.posterior:
            row.update({k: v for k, v in i.items() if k not in ("ml", "se")})
        f = Path(args.results) / "designd" / f"replication{r:04d}.json"
        if f.exists():
            rec = json.loads(f.read_text())["results"]["model"]["params"]["lmean(x)"]
            row["imputed"], row["se_imputed"] = rec["estimate"], rec["se"]
            row["imp_lo"], row["imp_hi"] = rec["ci_low"], rec["ci_high"]
        rows.append(row)
        pd.DataFrame(rows).to_csv(out, index=False)
    report(pd.DataFrame(rows).sort_values("rep").head(args.reps))


def mixing(args) -> None:
    """Model-based imputation again with ``args.iterations`` iterations per chain."""
    out = Path(args.out).with_name(Path(args.out).stem + "_iterations.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = pd.read_csv(out).to_dict("records") if out.exists() else []
    done = {(int(r["rep"]), int(r["iterations"])) for r in rows}
    config = CompatibleConfig()
    design = DESIGNS["d"]
    for r in range(args.reps):
        seeds = _seeds("d", r, config.seed)
        _, incomplete = design.generate(np.random.default_rng(seeds["data"]))
        for it in args.iterations:
            if (r, it) in done:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rng = np.random.default_rng(seeds["model"])
                imp = incomplete.mi.impute(model=design.model, m=config.m, iterations=it, rng=rng)
                row = imp.fit(latent="plausible").summary().loc["lmean(x)"]
            rows.append({"rep": r, "iterations": it, "estimate": row["estimate"], "se": row["se"]})
            pd.DataFrame(rows).to_csv(out, index=False)
    res = pd.DataFrame(rows)
    wide = res[res.rep < args.reps].pivot(index="rep", columns="iterations", values="estimate")
    n = len(wide)
    print(f"{n} replications of design (d): pooled lmean(x) estimate by iterations per chain")
    first = args.iterations[0]
    for it in args.iterations:
        v = wide[it]
        line = f"  {it:4d} iterations: mean {v.mean():.4f} ({v.std(ddof=1) / np.sqrt(n):.4f})"
        if it != first:
            d = v - wide[first]
            line += f"; minus {first} iterations {d.mean():+.4f} ({d.std(ddof=1) / np.sqrt(n):.4f})"
        print(line)


def report(res: pd.DataFrame) -> None:
    n = len(res)
    print(f"{n} replications of design (d); contextual effect b2, truth 0.3")
    gap = np.abs(res.closed_complete - res.ml_complete).max()
    print(f"  numerical ML vs closed form on the complete data: max |difference| {gap:.1e}")
    for col, se in (
        ("ml_complete", "se_complete"),
        ("ml_incomplete", "se_incomplete"),
        ("imputed", "se_imputed"),
    ):
        if col not in res:
            continue
        v = res[col].to_numpy()
        cov = np.mean(np.abs(v - 0.3) <= 1.96 * res[se].to_numpy())
        if col == "imputed":
            cov = np.mean((res.imp_lo <= 0.3) & (0.3 <= res.imp_hi))
        print(
            f"  {col:14s} mean {v.mean():.4f} ({v.std(ddof=1) / np.sqrt(n):.4f})  median "
            f"{np.median(v):.4f}  SD {v.std(ddof=1):.3f}  skew {stats.skew(v):+.2f}  "
            f"mean SE {res[se].mean():.3f}  coverage {cov:.3f}"
        )
    if "post_mean" in res:
        v = res.post_mean.to_numpy()
        cov = np.mean((res.post_lo <= 0.3) & (0.3 <= res.post_hi))
        print(
            f"  posterior mean (incomplete) {v.mean():.4f} ({v.std(ddof=1) / np.sqrt(n):.4f})  "
            f"median {np.median(v):.4f}  95 % interval coverage {cov:.3f}  "
            f"smallest ESS {res.ess.min():.0f}"
        )
        for col in ("post_tau_flat", "post_tau_sd", "post_tau_ig"):
            if col in res:
                d = res[col] - res.post_mean
                se = d.std(ddof=1) / np.sqrt(n)
                m = res[col].mean()
                print(f"  {col}: mean {m:.4f}; minus posterior mean {d.mean():+.4f} ({se:.4f})")
        d = res.post_mean - res.ml_incomplete
        se = d.std(ddof=1) / np.sqrt(n)
        print(f"  paired posterior mean − ML(incomplete): {d.mean():+.4f} ({se:.4f})")
    if "imputed" in res and "post_mean" in res:
        d = res.imputed - res.post_mean
        print(f"  paired MI − posterior mean: {d.mean():+.4f} ({d.std(ddof=1) / np.sqrt(n):.4f})")
    if "imputed" in res:
        d = res.imputed - res.ml_incomplete
        print(f"  paired MI − ML(incomplete): {d.mean():+.4f} ({d.std(ddof=1) / np.sqrt(n):.4f})")
        r = np.corrcoef(res.imputed, res.ml_incomplete)[0, 1]
        print(f"  correlation MI with ML(incomplete): {r:.3f}")


if __name__ == "__main__":
    sys.exit(main())
