"""Fitting one analysis model on every completed data set, and its likelihoods.

:func:`_fit_all` fits imputation 1 and then, warm-started from it, imputations 2..m
(serially, in worker processes or on a dask cluster); :class:`_Likelihood` evaluates the
log-likelihoods that the D2 (likelihood-ratio) and D3 tests of
:class:`mlimpute.analysis.results.PooledResult` pool.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import statsmodels.api as sm

from mlimpute.analysis.model import _FIXED_SCALE, Design, _Model
from mlimpute.errors import DataError, PoolingError, UnsupportedError


def _fit_one(model: _Model, d: Design, i: int, *, reml: bool, start=None):
    try:
        return model.fit(d, reml=reml, start=start)
    except (DataError, np.linalg.LinAlgError, ValueError) as exc:
        raise PoolingError(
            f"fitting {model.parsed.text!r} failed on completed data set {i}: {exc}"
        ) from exc


class _FitJob(NamedTuple):
    """What the fits of imputations 2..m share (sent once to each worker)."""

    source: Any
    model: _Model
    reml: bool
    start: Any  # warm start from the first imputation's fit
    first: Design
    first_fit: Any


def _fit_block(job: _FitJob, indices: Sequence[int]) -> list:
    """Fits of the completed data sets ``indices`` (1-based); runs in a worker too.

    A data set whose design is the first one's (same arrays, same response) gets the
    first fit itself: the same data give the same fit, whatever the start.
    """
    out = []
    for i in indices:
        d = job.model.design(job.source.complete(i), i)
        if d.X is job.first.X and d.Z is job.first.Z and np.array_equal(d.y, job.first.y):
            out.append(job.first_fit)
        else:
            out.append(_fit_one(job.model, d, i, reml=job.reml, start=job.start))
    return out


def _fit_all(
    source, model: _Model, *, reml: bool, n_jobs: int | None = None, client: Any = None
) -> tuple[list, Design]:
    """Fit every completed data set: the first here, the others from its estimates.

    Imputation 1 is fitted first, from the default start; imputations 2..m start from
    its estimates (:meth:`_Model.warm_start`; the data sets differ only in imputed
    cells) and are fitted serially, in a process pool (``n_jobs``) or on a dask cluster
    (``client``) by :func:`mlimpute.parallel.map_blocks`. Every fit depends only on its
    own data and on imputation 1's fit, so the executor never changes the results.
    """
    from mlimpute.parallel import map_blocks

    m = int(source.m)
    first = model.design(source.complete(1), 1)
    first_fit = _fit_one(model, first, 1, reml=reml)
    job = _FitJob(source, model, reml, model.warm_start(first_fit), first, first_fit)

    def failure(exc: BaseException, block: Sequence[int]) -> PoolingError:
        return PoolingError(
            f"fitting {model.parsed.text!r} on completed data sets {block[0]}-{block[-1]} "
            f"failed in a worker ({type(exc).__name__}: {exc}); rerun with n_jobs=None to "
            "see the error"
        )

    rest = map_blocks(
        _fit_block, job, range(2, m + 1), n_jobs=n_jobs, client=client, failure=failure
    )
    return [first_fit, *rest], first


# --------------------------------------------------------------------------------------
# likelihoods for D2 (likelihood ratios) and D3


class _Likelihood:
    """A model fitted to every completed data set, refittable by ML (private handle).

    :class:`~mlimpute.analysis.results.PooledResult` calls :meth:`loglik_own`,
    :meth:`loglik_pooled`, :meth:`dropping` and :attr:`n_params`; fits and
    log-likelihoods are cached.
    """

    def __init__(
        self, source, model: _Model, fits: Sequence | None, reml: bool, executor: dict | None = None
    ):
        self.source = source
        self.model = model
        self._fits = list(fits) if fits is not None and not (model.kind == "lmm" and reml) else None
        self._pooled: np.ndarray | None = None
        self.executor = dict(executor or {})

    def dropping(self, terms: Sequence[str]) -> _Likelihood:
        return _Likelihood(
            self.source, self.model.dropping(terms), None, reml=False, executor=self.executor
        )

    def with_nagq(self, nagq: int) -> _Likelihood:
        """The same GLMM refitted with ``nagq`` quadrature nodes (1: Laplace)."""
        return _Likelihood(
            self.source, self.model.with_nagq(nagq), None, reml=False, executor=self.executor
        )

    def _designs(self) -> Iterator[tuple[int, Design]]:
        for i in range(1, int(self.source.m) + 1):
            yield i, self.model.design(self.source.complete(i), i)

    def ml_fits(self) -> list:
        if self.model.kind == "glm" and isinstance(self.model.family, sm.families.NegativeBinomial):
            raise UnsupportedError(
                "likelihood-ratio pooling (D3, and D2 with use='likelihood') of "
                "negative-binomial models is not supported yet (as for negative-binomial "
                "GLMMs). Use D1 or D2 with use='wald'."
            )
        if self.model.kind == "glm" and not isinstance(self.model.family, _FIXED_SCALE):
            raise UnsupportedError(
                f"likelihood-based tests of a GLM need a family with a fixed dispersion "
                f"(binomial, Poisson); this one is {type(self.model.family).__name__}. Use D1 "
                "or D2 with use='wald'."
            )
        if self._fits is None:
            self._fits = _fit_all(self.source, self.model, reml=False, **self.executor)[0]
        return self._fits

    @property
    def n_params(self) -> int:
        return self.ml_fits()[0].n_params

    def loglik_own(self) -> np.ndarray:
        """ML log-likelihood of each imputation at its own estimates."""
        return np.array([f.llf for f in self.ml_fits()])

    def loglik_pooled(self) -> np.ndarray:
        """Log-likelihood of each imputation at the parameters pooled over imputations."""
        if self._pooled is None:
            params = self.model.pooled_params(self.ml_fits())
            self._pooled = np.array([self.model.loglike(d, params) for _, d in self._designs()])
        return self._pooled
