"""Counts in model-based imputation: the ``family=`` of the analysis model and the models
of incomplete count predictors.

``impute(df, model="visits ~ x + z + (1 | g)", family="poisson")`` (or
``"negative_binomial"``) makes the analysis model a Poisson (log-normal: a log-rate with an
observation-level residual, :mod:`mlimpute.models.counts`) or negative-binomial GLMM with a
log link, whose parameters are drawn by the count models' steps (``2l.poisson``,
``2l.nb``) and whose missing outcomes are non-negative integers. An incomplete predictor
held in an integer column (pandas ``Int64`` and the other integer dtypes; an integer
column with missing values must be a nullable one) whose observed values are non-negative
is a **count predictor**: it gets its own count model (:func:`count_predictor_method`).

What is refused so far (:class:`~mlimpute.errors.UnsupportedError`, before any chain
starts, naming the feature): zero-inflated and other families, and with a count outcome
incomplete level-2 predictors and latent cluster means ``lmean()``; more than one
incomplete count predictor; a count predictor at level 2; a count predictor together with
incomplete level-2 predictors or ``lmean()``. Incomplete binary and ordinal predictors
are drawn exactly over their categories, with the count likelihood in their conditional.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from mlimpute.errors import DataTypeError, SpecificationError, UnsupportedError

__all__ = [
    "COUNT_FAMILIES",
    "COUNT_PREDICTOR_METHODS",
    "NB_DISPERSION_RATIO",
    "check_family",
    "is_count_column",
    "count_predictor_method",
    "check_count_design",
]

#: the analysis model's count families (``impute(model=..., family=...)``) and their models
COUNT_FAMILIES = {"poisson": "2l.poisson", "negative_binomial": "2l.nb"}
#: the models of incomplete count predictors (integer columns; the dispersion rule in
#: :func:`count_predictor_method`)
COUNT_PREDICTOR_METHODS = ("2l.poisson", "2l.nb")
#: a count predictor gets ``2l.nb`` when its observed values' pooled within-cluster
#: variance exceeds this multiple of their mean, else ``2l.poisson``
NB_DISPERSION_RATIO = 1.5

_ZERO_INFLATED = ("zip", "zinb", "zero_inflated_poisson", "zero_inflated_negative_binomial")


def check_family(family, df: pd.DataFrame, y: str) -> str | None:
    """Validate ``family=`` of model-based imputation against the outcome column.

    Returns the family to store (``"poisson"``, ``"negative_binomial"``) or None for
    today's rule (a normal outcome, or probit for a binary one).

    Raises
    ------
    SpecificationError
        An unknown family, or ``"gaussian"`` with a binary outcome.
    UnsupportedError
        A family model-based imputation does not support (zero-inflated, binomial...).
    DataTypeError
        A count family whose outcome's observed values are not non-negative integers.

    Examples
    --------
    >>> check_family("poisson", pd.DataFrame({"y": [0, 2, None]}), "y")
    'poisson'
    >>> check_family(None, pd.DataFrame({"y": [0.5]}), "y") is None
    True
    """
    from mlimpute.codec import column_kind

    if family is None:
        return None
    if not isinstance(family, str):
        raise SpecificationError(
            f"family must be a name such as 'poisson' or 'negative_binomial', got "
            f"{type(family).__name__}"
        )
    name = family.lower()
    if name in _ZERO_INFLATED or name.startswith("zero"):
        raise UnsupportedError(
            f"family={family!r}: model-based imputation does not support zero-inflated "
            "outcomes yet; impute them with chained equations (method '2l.zip' or "
            "'2l.zinb')"
        )
    if name in ("nb", "negbin", "negative-binomial"):
        raise SpecificationError(f"unknown family {family!r}: did you mean 'negative_binomial'?")
    if name == "gaussian":
        if column_kind(df[y]) != "numeric":
            raise SpecificationError(
                f"family='gaussian' but the outcome {y!r} is {column_kind(df[y])}: leave "
                "family out (a binary outcome gets a probit model)"
            )
        return None
    if name in ("binomial", "gamma", "inverse_gaussian"):
        raise UnsupportedError(
            f"family={family!r}: model-based imputation supports a normal outcome, a "
            "binary one (probit, without family=) and counts ('poisson', "
            "'negative_binomial') so far"
        )
    if name not in COUNT_FAMILIES:
        raise SpecificationError(
            f"unknown family {family!r}: one of 'gaussian', 'poisson', 'negative_binomial'"
        )
    s = df[y]
    if pd.api.types.is_bool_dtype(s.dtype) or not pd.api.types.is_numeric_dtype(s.dtype):
        raise DataTypeError(
            f"family={family!r} needs a numeric count outcome; {y!r} has dtype {s.dtype}"
        )
    v = s.to_numpy(dtype=np.float64, na_value=np.nan)
    v = v[~np.isnan(v)]
    bad = ~np.isfinite(v) | (v < 0) | (v != np.round(v))
    if bad.any():
        raise DataTypeError(
            f"family={family!r}: the outcome {y!r} has observed values that are not "
            f"non-negative integers (e.g. {v[bad][0]!r})"
        )
    return name


def is_count_column(s: pd.Series) -> bool:
    """An integer column (any integer dtype, nullable ones included) whose observed
    values are non-negative: a count predictor of model-based imputation.

    Examples
    --------
    >>> is_count_column(pd.Series([0, 3, None], dtype="Int64"))
    True
    >>> is_count_column(pd.Series([0.0, 3.0, None])), is_count_column(pd.Series([-1, 2]))
    (False, False)
    """
    if pd.api.types.is_bool_dtype(s.dtype) or not pd.api.types.is_integer_dtype(s.dtype):
        return False
    v = s.to_numpy(dtype=np.float64, na_value=np.nan)
    v = v[~np.isnan(v)]
    return v.size > 0 and bool((v >= 0).all())


def count_predictor_method(s: pd.Series, codes: np.ndarray) -> str:
    """The model of an incomplete count predictor: ``2l.nb`` when its observed values
    are overdispersed within clusters — pooled within-cluster variance more than
    :data:`NB_DISPERSION_RATIO` (1.5) times their mean — else
    ``2l.poisson`` (Poisson–log-normal, which absorbs mild overdispersion).

    Within clusters, so that the differences between clusters (which the random
    intercept models) do not count as overdispersion.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> g = np.repeat(np.arange(50), 10)
    >>> count_predictor_method(pd.Series(rng.poisson(3.0, 500)), g)
    '2l.poisson'
    >>> count_predictor_method(pd.Series(rng.negative_binomial(1, 0.25, 500)), g)
    '2l.nb'
    """
    v = s.to_numpy(dtype=np.float64, na_value=np.nan)
    obs = ~np.isnan(v)
    v, g = v[obs], np.asarray(codes)[obs]
    k = np.bincount(g)
    means = np.bincount(g, weights=v) / np.maximum(k, 1)
    ss = float(((v - means[g]) ** 2).sum())
    df_ = v.size - int((k > 0).sum())
    within = ss / df_ if df_ > 0 else float(np.var(v))
    mean = float(v.mean())
    return "2l.nb" if within > NB_DISPERSION_RATIO * max(mean, 1e-12) else "2l.poisson"


def check_count_design(
    model: str,
    family: str | None,
    counts: Sequence[str],
    level2: Sequence[str],
    cats: Sequence[str],  # binary/ordinal: supported (exact draws over the categories)
    lmeans: Sequence[str],
) -> None:
    """Refuse what counts in model-based imputation do not support yet, naming it.

    Examples
    --------
    >>> check_count_design("y ~ x + (1 | g)", "poisson", [], [], [], [])
    """
    if len(counts) > 1:
        raise UnsupportedError(
            f"several incomplete count predictors {list(counts)} in {model!r}: model-based "
            "imputation supports one incomplete count predictor so far"
        )
    for c in counts:
        if c in level2:
            raise UnsupportedError(
                f"the count predictor {c!r} is constant within clusters: model-based "
                "imputation supports level-1 count predictors so far"
            )
    if family is None:
        return
    if level2:
        raise UnsupportedError(
            f"family={family!r} with the incomplete level-2 predictor(s) {list(level2)}: "
            "model-based imputation with a count outcome supports incomplete level-1 "
            "predictors so far"
        )
    if lmeans:
        raise UnsupportedError(
            f"family={family!r} with the latent cluster mean(s) lmean() of {list(lmeans)}: "
            "model-based imputation with a count outcome does not support lmean() yet"
        )
