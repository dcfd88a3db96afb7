"""Negative-binomial GLMMs (``family="negative_binomial"``) against glmmTMB's ``nbinom2``.

The reference fits are in tests/data/glmmtmb_nb_fits.json, made once by
tests/data/glmmtmb_nb.R (glmmTMB 1.1.5, Laplace approximation) on glmmtmb_nb.csv.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

import mlimpute
from mlimpute.analysis.fitters.glmm import fit_glmm, glmm_loglike
from mlimpute.analysis.fitters.likelihood import _nb_log
from mlimpute.errors import DataError, UnsupportedError

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def reference():
    df = pd.read_csv(DATA / "glmmtmb_nb.csv")
    fits = json.loads((DATA / "glmmtmb_nb_fits.json").read_text())
    return df, fits


@pytest.mark.parametrize("model", ["intercept", "slope"])
def test_matches_glmmtmb(reference, model):
    """Laplace fits equal glmmTMB's: fixed effects to 1e-4 (absolute; both optimisers stop
    at gradients far below that), their SEs, the dispersion and the (co)variances to 1e-3
    relative, the log-likelihood to 1e-4."""
    df, fits = reference
    ref = fits[model]
    n = len(df)
    X = np.c_[np.ones(n), df["x"]]
    Z = X if model == "slope" else np.ones((n, 1))
    f = fit_glmm(df["y"], X, Z, df["g"], "negative_binomial", nagq=1)
    assert f.converged
    np.testing.assert_allclose(f.fe_params, ref["fixef"], atol=1e-4)
    np.testing.assert_allclose(np.sqrt(np.diag(f.cov_fe)), ref["se"], rtol=1e-3)
    np.testing.assert_allclose(f.cov_re, np.array(ref["varcorr"]), rtol=1e-3, atol=1e-5)
    assert f.dispersion == pytest.approx(ref["dispersion"], rel=1e-3)
    assert f.llf == pytest.approx(ref["loglik"], abs=1e-4)


def test_kernel_is_the_nb_log_density_and_its_derivatives():
    y = np.array([0.0, 1.0, 4.0, 30.0])
    eta = np.array([-1.0, 0.3, 1.2, 2.5])
    r = 1.7
    logf, score, weight = _nb_log(y, eta, True, r)
    mu = np.exp(eta)
    ref = stats.nbinom.logpmf(y, r, r / (r + mu)) + np.array(
        [float(np.sum(np.log(np.arange(1, k + 1)))) for k in y]
    )  # the kernel leaves out −log y!
    np.testing.assert_allclose(logf, ref, rtol=1e-12)
    h = 1e-5
    up, dn = _nb_log(y, eta + h, False, r), _nb_log(y, eta - h, False, r)
    np.testing.assert_allclose(score, (up - dn) / (2 * h), rtol=1e-6)
    np.testing.assert_allclose(weight, -(up - 2 * logf + dn) / h**2, rtol=1e-4)


def test_quadrature_matches_brute_force_integration():
    """The 20-node adaptive quadrature of one cluster's NB likelihood equals direct
    numerical integration over the random intercept to 1e-7 relative."""
    y = np.array([0.0, 3.0, 1.0, 7.0, 2.0])
    x = np.array([-1.0, 0.2, 0.5, 1.3, -0.4])
    X = np.c_[np.ones(5), x]
    beta, s2, r = np.array([0.4, 0.5]), 0.6, 2.3

    def integrand(b):
        mu = np.exp(X @ beta + b)
        return np.exp(stats.nbinom.logpmf(y, r, r / (r + mu)).sum()) * stats.norm.pdf(
            b, 0, np.sqrt(s2)
        )

    exact = np.log(integrate.quad(integrand, -12, 12, epsabs=0, epsrel=1e-12)[0])
    got = glmm_loglike(
        y,
        X,
        np.ones((5, 1)),
        np.zeros(5),
        "negative_binomial",
        beta,
        [[s2]],
        nagq=20,
        dispersion=r,
    )
    assert got == pytest.approx(exact, rel=1e-7)


def test_refusals():
    y = np.array([0.0, 1.5, 2.0, 3.0])
    X, Z, g = np.ones((4, 1)), np.ones((4, 1)), np.array([0, 0, 1, 1])
    with pytest.raises(DataError, match="negative-binomial"):
        fit_glmm(y, X, Z, g, "negative_binomial")
    with pytest.raises(UnsupportedError, match="dispersion"):
        glmm_loglike(np.round(y), X, Z, g, "negative_binomial", [0.0], [[1.0]])


def test_pooled_through_imp_fit(reference):
    """``imp.fit(..., family="negative_binomial")`` pools the NB GLMM: on identical
    completed data sets the pooled estimates are the single fit's (AGQ, the default for
    a random intercept) and the between-imputation variance is zero."""
    df, _ = reference
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = mlimpute.from_completed([df, df]).fit("y ~ x + (1 | g)", family="negative_binomial")
    summary = res.summary()
    n = len(df)
    single = fit_glmm(df["y"], np.c_[np.ones(n), df["x"]], np.ones((n, 1)), df["g"], "nb")
    np.testing.assert_allclose(summary["estimate"].to_numpy(), single.fe_params, rtol=1e-6)
    np.testing.assert_allclose(summary["se"].to_numpy(), np.sqrt(np.diag(single.cov_fe)), rtol=1e-6)
