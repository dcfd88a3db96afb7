"""Tests of mlimpute.analysis.results: what ``PooledResult.compare()`` compares.

Models of different kinds, families or links are refused before any other check; the
likelihoods of GLMMs fitted with different ``nagq`` are made comparable by refitting the
reduced model with the full model's quadrature.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mlimpute
from mlimpute.errors import PoolingError


@pytest.fixture(scope="module")
def counts():
    """Poisson counts in 40 clusters of 15 (m = 2 'imputations')."""
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(40), 15)
    x, z = rng.standard_normal(600), rng.standard_normal(600)
    frames = [
        pd.DataFrame(
            {
                "g": g,
                "x": x,
                "z": z,
                "y": rng.poisson(np.exp(0.5 + 0.3 * x + rng.normal(0, 0.4, 40)[g])).astype(float),
            }
        ).assign(b=lambda d: (d["y"] > 1).astype(float))
        for _ in range(2)
    ]
    return mlimpute.from_completed(frames)


def _fit(imp, formula, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return imp.fit(formula, **kwargs)


def test_compare_refuses_models_of_other_kinds_families_or_links(counts):
    """A Poisson GLMM against a Gaussian LMM gave a 'likelihood ratio' of a Poisson and a
    normal likelihood (F = 20.4, p = 0.007), a Poisson against a negative-binomial GLMM a
    Wald test, and equal parameter counts 'the full model must have more parameters'."""
    poisson = _fit(counts, "y ~ x + z + (1 + x | g)", family="poisson")
    lmm = _fit(counts, "y ~ x + (1 | g)")
    for method, use in (("D2", "likelihood"), ("D3", "wald"), ("D1", "wald")):
        with pytest.raises(PoolingError, match="different kinds.*GLMM \\(poisson.*linear mixed"):
            poisson.compare(lmm, method, use=use)
    nb = _fit(counts, "y ~ x + (1 | g)", family="negative_binomial")  # 4 parameters
    same_count = _fit(counts, "y ~ x + z + (1 | g)", family="poisson")  # 4 parameters
    for method, use in (("D2", "wald"), ("D2", "likelihood")):
        with pytest.raises(PoolingError, match="different families \\('poisson' and 'negative_bi"):
            same_count.compare(nb, method, use=use)
    logit = _fit(counts, "b ~ x + z", family="binomial")
    probit = _fit(counts, "b ~ x", family="binomial", link="probit")
    with pytest.raises(PoolingError, match="different links \\('logit' and 'probit'"):
        logit.compare(probit)
    with pytest.raises(PoolingError, match="different kinds"):
        _fit(counts, "y ~ x + z + (1 | g)").compare(_fit(counts, "y ~ x", family="gaussian"))


def test_compare_keeps_mixed_against_single_level_models_of_one_family(counts):
    """A GLMM against the GLM of its family (or an LMM against OLS) tests the random part:
    the likelihood-ratio statistic is twice the difference of the two fits' log-likelihoods."""
    glmm = _fit(counts, "y ~ x + (1 | g)", family="poisson")
    glm = _fit(counts, "y ~ x", family="poisson")
    t = glmm.compare(glm, "D2", use="likelihood")
    lr = 2 * np.array([a.llf - b.llf for a, b in zip(glmm.fits, glm.fits, strict=True)])
    assert t.df1 == 1 and t.statistic == pytest.approx(
        mlimpute.pooling.d2(lr, 1).statistic, rel=1e-12
    )
    assert _fit(counts, "y ~ x + (1 | g)").compare(_fit(counts, "y ~ x"), "D3").df1 == 1


@pytest.fixture(scope="module")
def binary():
    """A binary response in 60 small clusters (reproducer of the mixed-nagq comparison)."""
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(60), 5)
    x = rng.standard_normal(300)
    u = rng.normal(0, 1.5, 60)[g]
    y = (rng.random(300) < 1 / (1 + np.exp(-(-0.5 + 0.5 * x + u)))).astype(float)
    frames = []
    for _ in range(3):
        d = pd.DataFrame({"g": g, "x": x, "y": y})
        flip = rng.random(300) < 0.05
        d.loc[flip, "y"] = 1 - d.loc[flip, "y"]
        frames.append(d)
    return mlimpute.from_completed(frames)


def test_compare_refits_the_reduced_glmm_with_the_full_models_nagq(binary):
    """At the default nagq a random-slope GLMM (Laplace) was compared with a
    random-intercept one (10 nodes): D2 differenced a Laplace and a quadrature
    log-likelihood (negative statistics: a PoolingError) and D3 gave a negative F. The
    reduced model is now refitted by Laplace: the tests equal those with nagq=1 given."""
    full = _fit(binary, "y ~ x + (1 + x | g)", family="binomial")
    red = _fit(binary, "y ~ x + (1 | g)", family="binomial")
    laplace = _fit(binary, "y ~ x + (1 | g)", family="binomial", nagq=1)
    assert (full.fits[0].nagq, red.fits[0].nagq) == (1, 10)
    for method, use in (("D2", "likelihood"), ("D3", "wald")):
        got = full.compare(red, method, use=use)
        want = full.compare(laplace, method, use=use)
        assert got.statistic == pytest.approx(want.statistic, rel=1e-10) and got.statistic > 0
        assert got.p == pytest.approx(want.p, rel=1e-10)
    assert red.fits[0].nagq == 10 and "10 nodes" in red.model  # the reduced result unchanged


def test_compare_refuses_a_nagq_the_reduced_model_cannot_take(binary):
    full = _fit(binary, "y ~ x + (1 | g)", family="binomial", nagq=101)
    red = _fit(binary, "y ~ 1 + (1 + x | g)", family="binomial")
    with pytest.raises(PoolingError, match="nagq=101, the reduced one with nagq=1.*nagq=1"):
        full.compare(red, "D3")
