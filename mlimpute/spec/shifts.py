"""The checks of ``delta=``/``delta_cluster_sd=`` for model-based imputation.

The shift itself is described in :mod:`mlimpute.compatible.shift`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mlimpute.errors import SpecificationError, UnsupportedError

__all__ = ["check_model_delta"]


def check_model_delta(
    delta: Mapping[str, float],
    cluster_sd: Mapping[str, float],
    variables: Sequence,
    *,
    columns: Sequence[str],
    categorical: Sequence[str] = (),
    lmeans: Sequence[str] = (),
    model_text: str = "",
) -> tuple[tuple[tuple[str, float], ...], tuple[tuple[str, float], ...]]:
    """The non-zero ``delta=`` and ``delta_cluster_sd=`` of a model-based imputation, in
    the order of its variables; refuses what cannot be shifted, by name.

    Parameters
    ----------
    delta, cluster_sd : dict
        ``{column: shift}`` and ``{column: SD}``, already checked to be numbers.
    variables : sequence of VariableSpec
        The specification's imputed variables.
    columns : sequence of str
        The data's columns.
    categorical : sequence of str
        The ordinal and nominal predictors of the factorisation (not shifted yet; a
        binary one is shifted on its probit scale).
    lmeans : sequence of str
        The columns x of the model's latent cluster means ``lmean(x)``.
    model_text : str
        The analysis model (for messages).

    Returns
    -------
    delta, delta_cluster_sd : tuple of (str, float)
        The non-zero shifts and SDs, in the order of ``variables``.

    Raises
    ------
    SpecificationError
        A column that is unknown or not imputed.
    UnsupportedError
        A categorical predictor of the factorisation, or an analysis model with
        ``lmean()``.

    Examples
    --------
    >>> from mlimpute.spec.build import VariableSpec
    >>> from mlimpute.spec.formula import parse_formula
    >>> v = VariableSpec("x", parse_formula("x ~ z + (1 | g)"), "2l.norm", 1)
    >>> check_model_delta({"x": 0.5}, {}, [v], columns=["x", "z", "g", "y"])
    ((('x', 0.5),), ())
    """
    names = {v.name for v in variables}
    for arg, shifts in (("delta", delta), ("delta_cluster_sd", cluster_sd)):
        for name in shifts:
            if name not in columns:
                raise SpecificationError(f"{arg} names unknown column {name!r}")
            if name not in names:
                raise SpecificationError(
                    f"{arg} names {name!r}, which is not imputed (it has no missing values, "
                    "or is neither in the analysis model nor auxiliary); a shift applies "
                    "to imputed values only"
                )
            if not shifts[name]:
                continue
            if lmeans:
                raise UnsupportedError(
                    f"{arg} for {name!r} with the latent cluster mean(s) "
                    f"{[f'lmean({x})' for x in lmeans]} in the analysis model "
                    f"{model_text!r}: shifts are not supported together with lmean() yet"
                )
            if name in categorical:
                raise UnsupportedError(
                    f"{arg} for the categorical predictor {name!r} of model-based "
                    "imputation is not supported yet (ordinal and nominal ones); shifts "
                    "apply to continuous and binary predictors and auxiliaries, the outcome "
                    "and the columns imputed by chained defaults so far"
                )
    kept = tuple((v.name, float(delta[v.name])) for v in variables if delta.get(v.name, 0.0))
    kept_sd = tuple(
        (v.name, float(cluster_sd[v.name])) for v in variables if cluster_sd.get(v.name, 0.0)
    )
    return kept, kept_sd
