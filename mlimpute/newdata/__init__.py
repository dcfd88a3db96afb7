"""``impute_new``: complete new rows with the models as they stand at the end of each chain.

A finished run keeps where each chain stopped: its completed training values, the last
state of every model and its generator. :func:`impute_new` completes new rows chain by
chain with those states, **parameters fixed**, by the path that fits the run:

* :mod:`mlimpute.newdata.chained` — chained equations with one grouping factor;
* :mod:`mlimpute.newdata.model` — model-based imputation (``impute(model=...)``): each
  missing cell from its full conditional under the analysis model;
* :mod:`mlimpute.newdata.factors` — chained equations with several grouping factors
  (nested or crossed), one random-effect term per factor.

Rows of clusters seen in training use the chain's random effects. A cluster not seen in
training gets its effects redrawn at every sweep over the new rows, as a training
iteration draws them given the fixed parameters: for a normal model of the variable
(``2l.norm``, ``2l.norm.het``, ``2l.pmm``; for a normal outcome of ``model=``) from their
conditional given the new cluster's observed rows of the variable (term by term with
several grouping factors), for the other models from N(0, Ψ).

Each chain uses the child of ``SeedSequence(rng)`` of its number, so the result depends on
the seed only, never on the executor.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlimpute.errors import DataTypeError, SpecificationError
from mlimpute.newdata.chained import impute_new_chained
from mlimpute.newdata.checks import check_columns
from mlimpute.newdata.factors import impute_new_factors
from mlimpute.newdata.model import impute_new_model, refuse_unsupported
from mlimpute.parallel import resolve_n_jobs
from mlimpute.result.imputed import MultiplyImputed

__all__ = ["impute_new"]


def impute_new(
    imp: MultiplyImputed,
    new_df: pd.DataFrame,
    *,
    rng: int | np.random.SeedSequence | np.random.Generator | None = None,
    sweeps: int | None = None,
    n_jobs: int | None = None,
    client: Any = None,
) -> MultiplyImputed:
    """Complete the rows of ``new_df`` with the models where each chain of ``imp`` stopped.

    Parameters
    ----------
    imp : MultiplyImputed
        A finished run that knows where its chains stopped (also one read back with
        :func:`mlimpute.open`).
    new_df : DataFrame
        New rows with the columns and dtypes of the training data; never modified. The
        cluster column may hold clusters not seen in training.
    rng : int, SeedSequence or Generator, optional
        The random seed; completion k uses the k-th child of ``SeedSequence(rng)``, so the
        result is the same whatever ``n_jobs`` or ``client``.
    sweeps : int, optional
        Gibbs sweeps over the new rows' missing cells (parameters fixed). Default: 1 when
        a single sweep is exact — at most one incomplete imputed variable per new row, no
        cluster mean of an imputed variable in a formula, and no new cluster whose effects
        (drawn given its observed rows of a variable, for a normal model) condition on a
        row where a predictor of that model is missing while they feed a missing cell —
        else 10 (after model-based imputation 25 when a value is drawn by
        Metropolis–Hastings).
    n_jobs, client
        Where the m completions run, as for :func:`mlimpute.impute`.

    Returns
    -------
    MultiplyImputed
        m completed versions of ``new_df`` (one per chain of ``imp``); its traces are the
        mean and SD of the new imputations per sweep and the (fixed) model parameters. Its
        specification is marked as a completion of new rows (``spec.completion``), whose
        ``to_toml()`` refuses: save the training result's specification instead.

    Raises
    ------
    DataError, DataTypeError
        If a column of the training data is absent, extra, of another dtype, holds a
        category not seen in training (for a numeric column imputed with a binary model:
        a value other than 0 and 1), or is missing where no model imputes it, or if a
        cluster-level value contradicts its cluster's, or a grouping column has missing
        values; the message names the column. With several grouping factors also
        (``DataError``) if the new rows change how the factors nest (a class seen in
        training in another school, one new class in two schools); the message names the
        cluster and the clusters it would lie in.
    SpecificationError
        If ``imp`` does not know where its chains stopped.
    UnsupportedError
        With several grouping factors, after a run with a transform fitted on the data
        (``center()``, ``scale()``, ``poly()``, ``bs()``). After model-based imputation (``model=``,
        completed by :mod:`mlimpute.newdata.model`): for ``delta=`` or
        ``delta_cluster_sd=``, a count outcome (``family=``) or count variables
        (``2l.poisson``, ``2l.nb``), latent cluster means ``lmean()``, several grouping
        factors, level-3 variables, transforms fitted on the data, and default models of
        other columns that read ``ranef()``.

    Examples
    --------
    >>> import numpy as np, mlimpute
    >>> from mlimpute.datasets import classroom
    >>> df = classroom(1, rng=1).incomplete
    >>> imp = df.mi.impute({"grade": "~ skill + (1 | class)"}, m=2, iterations=5, rng=1)
    >>> new = df.iloc[:4].copy()
    >>> new["grade"] = np.nan
    >>> out = imp.impute_new(new, rng=2)
    >>> out.m, int(out.complete(1)["grade"].isna().sum())
    (2, 0)
    """
    if client is not None and n_jobs is not None:
        raise SpecificationError("pass n_jobs or client, not both")
    if n_jobs is not None:
        resolve_n_jobs(n_jobs)
    if sweeps is not None and (
        isinstance(sweeps, bool) or not isinstance(sweeps, (int, np.integer)) or sweeps < 1
    ):
        raise SpecificationError(f"sweeps must be a positive int, got {sweeps!r}")
    spec = imp.spec
    if spec.model is not None:
        refuse_unsupported(spec)
    if not isinstance(new_df, pd.DataFrame):
        raise DataTypeError(f"new_df must be a pandas DataFrame, got {type(new_df).__name__}")
    if spec.model is not None:  # model-based imputation
        data = check_columns(imp.data, new_df, spec)  # a copy: new_df is never modified
        return impute_new_model(imp, data, rng, sweeps, n_jobs, client)
    if spec.factors:  # several grouping factors
        data = check_columns(imp.data, new_df, spec)
        return impute_new_factors(imp, data, rng, sweeps, n_jobs, client)
    return impute_new_chained(imp, new_df, rng, sweeps, n_jobs, client)
