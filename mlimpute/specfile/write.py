"""Writing specification files (:mod:`mlimpute.specfile`): finished runs and templates.

:func:`spec_to_toml` writes the specification of a finished run; :func:`init_spec` and
:func:`default_formulas` make the commented template of ``mlimpute init`` from a data set.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlimpute.errors import SpecificationError
from mlimpute.spec.formula import formula_text
from mlimpute.specfile.study import StudySpec
from mlimpute.specfile.study import _cluster as _levels

if TYPE_CHECKING:
    from mlimpute.spec.build import ImputationSpec


def spec_to_toml(spec: ImputationSpec, **extras: Any) -> str:
    """TOML text of what was run: explicit formulas, methods, visit order and seed.

    Running it again on the same data with the same mlimpute version reproduces the
    imputations bit for bit.

    Parameters
    ----------
    spec : ImputationSpec
        Usually ``imp.spec``.
    **extras
        ``data``, ``columns``, ``output``, ``analysis``, ``options``: see
        :meth:`StudySpec.from_imputation_spec`.

    Examples
    --------
    >>> import mlimpute
    >>> df = mlimpute.datasets.classroom(1, rng=1).incomplete
    >>> imp = df.mi.impute({"grade": "~ skill + (1 | class)"}, m=2, iterations=4, rng=3)
    >>> print(spec_to_toml(imp.spec, data="classroom.csv"))  # doctest: +ELLIPSIS
    # mlimpute specification of a finished run: ...
    <BLANKLINE>
    mlimpute_version = "..."
    <BLANKLINE>
    [data]
    path = "classroom.csv"
    <BLANKLINE>
    [imputation]
    cluster = "class"
    m = 2
    iterations = 4
    seed = 3
    visit = [
        "grade",
    ]
    <BLANKLINE>
    [imputation.formulas]
    grade = "~ skill + (1 | class)"
    <BLANKLINE>
    [imputation.methods]
    grade = "2l.norm"
    <BLANKLINE>
    """
    return StudySpec.from_imputation_spec(spec, **extras).to_toml(
        "mlimpute specification of a finished run: `mlimpute run <this file>` repeats it\n"
        "(same data and mlimpute version: the same imputations, bit for bit).\n"
        "Paths are relative to this file's directory."
    )


# ------------------------------------------------------------------------------------------
# defaults for `mlimpute init`
# ------------------------------------------------------------------------------------------
def _is_number(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype)


def _default_spec(df: pd.DataFrame, cluster: str | Sequence[str] | None):
    """The specification ``impute(df, cluster=cluster)`` would run (warnings silenced)."""
    import warnings

    from mlimpute.errors import MlimputeWarning
    from mlimpute.spec.build import build_spec

    for c in [cluster] if isinstance(cluster, str) else cluster or []:
        if c not in df.columns:
            raise SpecificationError(
                f"cluster column {c!r} is not in the data; columns: {list(df.columns)}"
            )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MlimputeWarning)
        return build_spec(df, None, cluster=cluster)


def default_formulas(
    df: pd.DataFrame, cluster: str | Sequence[str] | None = None
) -> dict[str, str]:
    """The default imputation formulas for ``df``: those ``impute(cluster=...)`` uses.

    See :mod:`mlimpute.spec.defaults`: every incomplete variable from all other analysis
    variables; with a cluster, level-1 models get a random intercept and the cluster means
    of their level-1 predictors, level-2 variables a model on one row per cluster.

    Examples
    --------
    >>> import mlimpute
    >>> df = mlimpute.datasets.classroom(2, rng=1).incomplete
    >>> default_formulas(df, "class")["grade"]
    '~ skill + gender + cmean(gender) + relation + cmean(relation) + (1 | class)'
    """
    return _default_spec(df, cluster).formulas


def init_spec(
    df: pd.DataFrame,
    *,
    cluster: str | Sequence[str] | None = None,
    data: str | os.PathLike | None = None,
    m: int = 20,
    iterations: int = 20,
    seed: int | None = None,
    model: str | None = None,
    auxiliary: Sequence[str] | None = None,
    family: str | None = None,
) -> str:
    """TOML text of a default specification for ``df`` (``mlimpute init``), to be reviewed.

    The formulas and models are the defaults of ``impute(cluster=...)``, written out;
    ``cluster=["school", "class"]`` (nested levels, outermost first) writes the
    three-level defaults and ``cluster = ["school", "class"]`` in ``[imputation]``.
    With ``model=`` (``mlimpute init --model "y ~ x + (1 + x | g)"``) a ``[model]`` table
    for model-based imputation from that analysis model instead, checked against the data
    as ``impute(df, model=..., auxiliary=...)`` checks it; its factorisation is written as
    comments. Incomplete columns outside the model and its auxiliaries are left out
    through ``data.columns``.

    Examples
    --------
    >>> import mlimpute
    >>> df = mlimpute.datasets.classroom(1, rng=1).incomplete
    >>> text = init_spec(df, cluster="class", data="classroom.csv", seed=1)
    >>> from mlimpute.specfile import loads_spec
    >>> loads_spec(text).formulas
    {'grade': '~ skill + (1 | class)'}
    >>> text = init_spec(df, model="grade ~ skill + (1 | class)", seed=1)
    >>> print(text.split("[model]")[1].strip())
    formula = "grade ~ skill + (1 | class)"
    m = 20
    iterations = 20
    seed = 1
    >>> loads_spec(text).model
    'grade ~ skill + (1 | class)'
    """
    if model is not None:
        return _init_model(df, model, auxiliary, cluster, data, m, iterations, seed, family)
    if family is not None:
        raise SpecificationError("family= needs an analysis model (--model)")
    if auxiliary:
        raise SpecificationError("auxiliary columns need an analysis model (--model)")
    spec = _default_spec(df, cluster)
    formulas = spec.formulas
    missing = df.isna().sum()
    levels = [cluster] if isinstance(cluster, str) else list(cluster or [])
    skipped = [c for c in df.columns if missing[c] > 0 and c not in formulas and c not in levels]
    columns = [c for c in df.columns if c not in skipped] if skipped else None
    study = StudySpec(
        formulas=formulas,
        methods=spec.methods,
        cluster=_levels(spec.cluster_argument) if levels else None,
        m=m,
        iterations=iterations,
        seed=seed,
        data=os.fspath(data) if data is not None else None,
        columns=tuple(columns) if columns else None,
        version=_version(),
    )
    header = [
        "mlimpute specification written by `mlimpute init`.",
        "REVIEW THE FORMULAS BELOW before running `mlimpute run <this file>`: every",
        "incomplete column is imputed from all other columns"
        + (
            f", level-1 variables with a random intercept per {cluster!r} and the cluster "
            "means of their level-1 predictors, level-2 variables on one row per cluster."
            if len(levels) == 1
            else f", with the nested levels {levels}: a random intercept for every "
            "enclosing level and the cluster means of the lower-level predictors at each "
            "level (cmean(x), cmean(x, outer)); class-level variables on one row per class, "
            "school-level ones on one row per school."
            if levels
            else "."
        ),
        "Paths are relative to this file's directory. Add an [analysis] table",
        '(formula = "y ~ x + (1 | g)", tests = ["x = 0"]) to pool an analysis.',
    ]
    header += [f"Note: {e}" for e in spec.events]
    if skipped:
        header.append(
            f"Left out (incomplete, not imputable): {skipped}; data.columns lists the columns used."
        )
    if not formulas:
        header.append("No incomplete column: nothing to impute.")
    if seed is None:
        header.append("Set imputation.seed to make the run reproducible.")
    return study.to_toml("\n".join(header))


def _init_model(
    df: pd.DataFrame,
    model: str,
    auxiliary: Sequence[str] | None,
    cluster: str | None,
    data: str | os.PathLike | None,
    m: int,
    iterations: int,
    seed: int | None,
    family: str | None = None,
) -> str:
    """:func:`init_spec` with an analysis model: a ``[model]`` table."""
    from mlimpute.spec.arguments import column_list
    from mlimpute.spec.formula import parse_formula
    from mlimpute.spec.model import build_model_spec

    if not isinstance(model, str):
        raise SpecificationError(f"model must be a formula string, got {type(model).__name__}")
    aux = column_list(auxiliary, "auxiliary") or []
    parsed = parse_formula(model)
    used = set(parsed.variables) | set(aux) | ({parsed.group} if parsed.group else set())
    missing = df.isna().sum()
    skipped = [c for c in df.columns if missing[c] > 0 and c not in used]
    columns = [c for c in df.columns if c not in skipped] if skipped else None
    spec = build_model_spec(
        df[columns] if columns else df,
        model,
        aux or None,
        m=m,
        iterations=iterations,
        cluster=cluster,
        family=family,
    )
    study = StudySpec(
        formulas=None,
        m=m,
        iterations=iterations,
        seed=seed,
        data=os.fspath(data) if data is not None else None,
        columns=tuple(columns) if columns else None,
        version=_version(),
        model=model,
        auxiliary=tuple(aux),
        family=spec.family,
    )
    header = [
        "mlimpute specification written by `mlimpute init --model`.",
        "Model-based imputation: the analysis model below drives the imputation and, without "
        "an [analysis] table, is the analysis that `mlimpute run <this file>` pools.",
        "The factorisation (each missing value drawn from its full conditional under the "
        "analysis model times these models):",
    ]
    y = spec.model.response
    if y in spec.variables_by_name:
        header.append(f"  {y}: the analysis model")
    header += [f"  {v.name} {formula_text(v.formula)}" for v in spec.variables if v.name != y]
    header += [f"Note: {e}" for e in spec.events]
    if skipped:
        header.append(
            f"Left out (incomplete, outside the model and its auxiliaries): {skipped}; "
            "data.columns lists the columns used."
        )
    if seed is None:
        header.append("Set model.seed to make the run reproducible.")
    return study.to_toml("\n".join(header))


def _version() -> str:
    from mlimpute._version import __version__

    return __version__
