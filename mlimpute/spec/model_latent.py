"""The latent cluster mean ``lmean(x)`` of model-based imputation (Lüdtke et al. 2008).

x's model is ``x_ij = ξ_j + e_ij``; the column ``lmean(x)`` of every completed data set
holds the drawn ξ_j. :func:`latent_means` and :func:`with_latent_means` name and add those
columns; ``_check_latent_means`` refuses what latent cluster means do not support yet.
"""

from __future__ import annotations

import pandas as pd

from mlimpute.errors import UnsupportedError
from mlimpute.spec.defaults import is_level2
from mlimpute.spec.formula import lmean_column


def latent_means(spec) -> dict[str, str]:
    """The latent cluster means of a specification's analysis model: ``{column: x}`` for
    every ``lmean(x)`` (the column ``lmean(x)`` holds the drawn random intercepts of x's
    model, one value per cluster).

    Examples
    --------
    >>> latent_means(None)
    {}
    """
    if spec is None or spec.model is None:
        return {}
    return {lmean_column(x): x for x in spec.model.lmeans}


def with_latent_means(df: pd.DataFrame, spec) -> pd.DataFrame:
    """``df`` with an empty (all-missing) float column ``lmean(x)`` for every latent
    cluster mean of the specification's analysis model: the imputations fill it (a copy;
    ``df`` is left as it is, and returned as it is when there is none).

    Examples
    --------
    >>> with_latent_means(pd.DataFrame({"x": [1.0]}), None).columns.tolist()
    ['x']
    """
    cols = [c for c in latent_means(spec) if c not in df.columns]
    if not cols:
        return df
    return df.assign(**{c: float("nan") for c in cols})


def _check_latent_means(
    df, parsed, codes, incomplete, level2, complete, complete2, nonlinear
) -> None:
    """What ``lmean(x)`` supports so far; :class:`~mlimpute.errors.UnsupportedError`
    naming the rest, before any chain starts.

    x's model is ``x_ij = ξ_j + e_ij`` with ``ξ_j = w_j'α + r_j`` (``lmean(x)`` is ξ_j, w
    the complete level-2 columns of the model): x is a continuous level-1 column, the
    only incomplete level-1 predictor (incomplete level-2 predictors may join: their
    models take lmean(x) as a predictor), and no level-1 column other than x enters the
    analysis model.
    """
    from mlimpute.codec import column_kind

    model = parsed.text
    for x in parsed.lmeans:
        if column_kind(df[x]) != "numeric":
            raise UnsupportedError(
                f"lmean({x}) in the analysis model {model!r}: {x!r} is "
                f"{column_kind(df[x])}; latent cluster means need a continuous column"
            )
        if is_level2(codes, df[x]):
            raise UnsupportedError(
                f"lmean({x}) in the analysis model {model!r}: {x!r} is constant within "
                "clusters (a level-2 column is its own cluster mean)"
            )
        if x in nonlinear:
            raise UnsupportedError(
                f"lmean({x}) in the analysis model {model!r}: {x!r} also enters it "
                "non-linearly, which latent cluster means do not support yet"
            )
    others = [c for c in incomplete if c not in parsed.lmeans and c not in level2]
    if others:
        raise UnsupportedError(
            f"lmean() in the analysis model {model!r} together with the incomplete "
            f"level-1 predictor(s) or auxiliaries {others}: latent cluster means support "
            "one incomplete level-1 predictor (x in lmean(x)) so far, beside incomplete "
            "level-2 ones"
        )
    if len(parsed.lmeans) > 1:
        raise UnsupportedError(
            f"the analysis model {model!r} has several latent cluster means "
            f"{list(parsed.lmeans)}: one is supported so far"
        )
    level1 = [c for c in complete if c not in complete2 and c not in parsed.lmeans]
    if level1:
        raise UnsupportedError(
            f"lmean() in the analysis model {model!r} together with the level-1 "
            f"column(s) {level1} (predictors or auxiliaries): x's model in lmean(x) takes "
            "level-2 columns only so far"
        )
