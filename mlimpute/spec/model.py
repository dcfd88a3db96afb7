"""The specification of model-based (analysis-model-compatible) imputation.

``impute(df, model="y ~ x * z + (1 + x | g)", auxiliary=[...])``: the analysis model drives
the imputation. :func:`build_model_spec` checks the model against the data and writes down
the factorisation

    p(y, x_1, …, x_K | z) = f(y | x, z, b) · Π_k p_k(x_k | x_{k+1}, …, x_K, z, a)

with y the analysis model's outcome, x_1, …, x_K its incomplete predictors in the order in
which the model names them, z its complete predictors (the cluster means ``cmean(z)`` of
complete columns in the analysis model among them) and a the auxiliary columns. Each
``p_k`` is a normal model with a random intercept of the cluster
(``x_k ~ x_{k+1} + … + z + a + (1 | g)``); the spec holds one
:class:`~mlimpute.spec.build.VariableSpec` per incomplete predictor (its own model) and,
when y is incomplete, one for y whose formula is the analysis model.

What is supported: a normal or binary (probit) outcome, or with ``family=`` a count outcome
(Poisson, negative binomial; :mod:`mlimpute.spec.model_counts`, which also gives an
incomplete integer count predictor its own count model); incomplete continuous level-1
predictors that enter the linear predictor linearly given everything else (main effects,
random slopes, interactions with other variables; closed-form draws) or through
transforms (``I(x**2)``, ``log(x)``...; Metropolis–Hastings draws); incomplete binary,
ordinal and (one) nominal level-1 predictors (latent probit models ``2l.bin``,
``2l.ordinal``, ``2l.nominal``; exact draws over the categories); incomplete continuous
level-2 predictors that enter linearly (cross-level interactions; one row per cluster);
incomplete continuous auxiliaries; the latent cluster mean ``lmean(x)`` of one continuous
level-1 column x (Lüdtke et al. 2008): x's model is ``x_ij = ξ_j + e_ij`` and the spec
holds a level-2 variable ``lmean(x)`` (``lmean(x) ~ level-2 columns``: ξ_j's own model)
whose drawn values every completed data set carries in the column ``lmean(x)``; so far x
is then the only incomplete level-1 predictor (incomplete level-2 predictors may join,
their models taking ``lmean(x)`` as a predictor), and no level-1 column other than x
enters the analysis model. With several random-effect terms (nested levels, crossed
factors) every predictor's model has a random intercept for each grouping factor and
class- and school-level predictors are modelled at their own level
(:mod:`mlimpute.spec.model_terms`). Anything else raises
:class:`~mlimpute.errors.UnsupportedError` naming the term, before any chain starts.

Each conditional model's formula and method: :mod:`mlimpute.spec.model_formulas`; how
each predictor enters the analysis model: :mod:`mlimpute.spec.model_linear`; the latent
cluster means: :mod:`mlimpute.spec.model_latent`.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from mlimpute.errors import SpecificationError, UnsupportedError
from mlimpute.spec.arguments import check_frame, column_list, positive_int
from mlimpute.spec.checks import (
    check_cluster_means,
    check_formula_columns,
    check_terms_on_data,
)
from mlimpute.spec.defaults import is_level2, varying_clusters
from mlimpute.spec.formula import lmean_column, parse_formula
from mlimpute.spec.formula_columns import calls_of
from mlimpute.spec.model_counts import COUNT_FAMILIES
from mlimpute.spec.model_formulas import (
    _METHOD,
    _METHOD2,
    _PREDICTOR_METHODS,
    level2_formula,
    outcome_method,
    predictor_formula,
)
from mlimpute.spec.model_latent import _check_latent_means, latent_means, with_latent_means
from mlimpute.spec.model_linear import _position, check_linear, nonlinear_predictors
from mlimpute.spec.model_terms import (
    check_level2_terms,
    complete_factor_means,
    level3_columns,
    model_terms,
)

__all__ = [
    "build_model_spec",
    "predictor_formula",
    "check_linear",
    "nonlinear_predictors",
    "level2_formula",
    "latent_means",
    "with_latent_means",
]


def _constant_within(codes, values: pd.Series) -> bool:
    """A complete column with one value per cluster (usable in a level-2 model)."""
    return varying_clusters(codes, values).size == 0


def _has_mean(values: pd.Series) -> bool:
    """A numeric or boolean column, whose cluster means a level-2 model can take."""
    return pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)


def model_based(spec) -> set[str]:
    """The imputed columns a specification's analysis model decides (its variables and the
    auxiliaries); the others (with ``cluster=``) get chained default models.

    Examples
    --------
    >>> model_based(None)
    set()
    """
    if spec is None or spec.model is None:
        return set()
    return {v.name for v in spec.variables} & (set(spec.model.variables) | set(spec.auxiliary))


def build_model_spec(
    df: pd.DataFrame,
    model: str,
    auxiliary: Sequence[str] | str | None,
    *,
    m: int,
    iterations: int,
    formulas=None,
    method=None,
    visit=None,
    cluster: str | None = None,
    include=None,
    exclude=None,
    heteroscedastic=False,
    delta=None,
    delta_cluster_sd=None,
    family: str | None = None,
):
    """Validate ``model=``/``auxiliary=`` (and ``family=``, see
    :mod:`mlimpute.spec.model_counts`) against ``df``; return the
    :class:`~mlimpute.spec.build.ImputationSpec` of the factorisation (module docstring).
    ``delta=``/``delta_cluster_sd=`` are the sensitivity shifts
    (:mod:`mlimpute.compatible.shift`).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"g": np.repeat(range(20), 5), "x": rng.normal(size=100),
    ...                    "z": rng.normal(size=100)})
    >>> df["y"] = df.x + rng.normal(size=100)
    >>> df.loc[::5, "x"] = np.nan
    >>> spec = build_model_spec(df, "y ~ x * z + (1 + x | g)", None, m=2, iterations=5)
    >>> spec.formulas
    {'x': '~ z + (1 | g)'}
    """
    from mlimpute.codec import column_kind
    from mlimpute.spec.build import ImputationSpec, VariableSpec
    from mlimpute.spec.model_counts import (
        check_count_design,
        check_family,
        count_predictor_method,
        is_count_column,
    )

    check_frame(df)
    m = positive_int(m, "m")
    iterations = positive_int(iterations, "iterations")
    if not isinstance(model, str):
        raise SpecificationError(
            f"model must be the analysis model as a string such as 'y ~ x + (1 + x | g)', "
            f"got {type(model).__name__}"
        )
    for arg, value in (
        ("formulas", formulas),
        ("method", method),
        ("visit", visit),
        ("include", include),
        ("exclude", exclude),
    ):
        if value is not None:
            raise UnsupportedError(
                f"{arg}= cannot be combined with model= yet: the analysis model decides "
                "every imputation model"
            )
    if heteroscedastic:
        raise UnsupportedError("heteroscedastic= cannot be combined with model= yet")
    auxiliary = column_list(auxiliary, "auxiliary") or []
    parsed = parse_formula(model)
    y = parsed.response
    if y is None:
        raise SpecificationError(
            f"the analysis model {model!r} has no outcome: write it as 'y ~ ...'"
        )
    if parsed.ranefs:
        raise SpecificationError(f"ranef() is not allowed in the analysis model {model!r}")
    columns = set(df.columns)
    lmeans = parsed.lmeans
    lcols = {lmean_column(x) for x in lmeans}
    clash = sorted(lcols & columns)
    if clash:
        raise SpecificationError(
            f"the data have a column {clash[0]!r}, the name of the latent cluster mean "
            f"in the analysis model {model!r}; rename that column first"
        )
    unknown = sorted((parsed.variables - lcols - columns) | (set(lmeans) - columns))
    if unknown:
        raise SpecificationError(
            f"the analysis model refers to unknown column(s) {unknown}: {model!r}"
        )
    check_formula_columns({y: parsed})
    check_terms_on_data(df, {y: parsed})
    check_cluster_means(df, parsed)
    for a in auxiliary:
        if a not in columns:
            raise SpecificationError(f"auxiliary names unknown column {a!r}")
        if a in parsed.variables:
            raise SpecificationError(
                f"auxiliary column {a!r} is already in the analysis model {model!r}"
            )
    g = parsed.group
    # several random-effect terms (nested levels, crossed factors): spec/model_terms.py
    terms = model_terms(df, parsed, cluster) if parsed.several_groups else None
    if terms is not None:
        g = terms.cluster
        if lmeans:
            raise UnsupportedError(
                f"lmean() in the analysis model {model!r} with several grouping factors "
                f"{list(parsed.groups)}: latent cluster means support one grouping factor "
                "so far"
            )
    if g is None:
        raise UnsupportedError(
            f"the analysis model {model!r} has no random part: model-based imputation "
            "supports multilevel analysis models (with a random part such as (1 | g)) so far"
        )
    if terms is None and df[g].isna().any():
        raise SpecificationError(
            f"cluster column {g!r} has {int(df[g].isna().sum())} missing value(s); drop or "
            "fill those rows first"
        )
    missing = df.isna().sum()
    _check_categorical_terms(df, parsed, missing)
    # cmean(x, school) of a complete x: a fixed column, a complete predictor of every
    # incomplete predictor's model (cmean(x, cls) over the primary factor is cmean(x))
    primary, factor_means = complete_factor_means(
        parsed, terms, missing, "model-based imputation (impute(model=...))"
    )
    predictors = (parsed.predictors - lcols) | set(lmeans)
    used = [*sorted(predictors, key=lambda c: _position(model, c)), *auxiliary]
    outside = [c for c in df.columns if missing[c] > 0 and c not in used and c not in (y, g)]
    if terms is not None and outside:
        raise UnsupportedError(
            f"incomplete column(s) {outside} are neither in the analysis model nor "
            f"auxiliary: with several grouping factors {list(parsed.groups)} model-based "
            "imputation has no default (chained) models for them yet; add them to "
            "auxiliary=[...] or drop them before imputing (df.drop(columns=[...]))"
        )
    if terms is None and cluster is not None and cluster != g:
        raise SpecificationError(
            f"cluster={cluster!r} differs from the grouping factor {g!r} of the analysis "
            f"model {model!r}: with model= the cluster is the model's grouping factor"
        )
    extras, extra_events = [], []
    if outside and cluster is None:
        raise SpecificationError(
            f"incomplete column(s) {outside} are neither in the analysis model nor "
            "auxiliary: add them to auxiliary=[...], give cluster= to impute them with "
            "the default (chained) models, or drop them before imputing "
            "(df.drop(columns=[...]))"
        )
    if outside:
        from mlimpute.spec.build import build_spec

        chained = build_spec(df, m=m, iterations=iterations, cluster=g)
        extras = [v for v in chained.variables if v.name in outside]
        left = [c for c in outside if c not in {v.name for v in extras}]
        if left:
            raise SpecificationError(
                f"incomplete column(s) {left} get no default model (see "
                "mlimpute.describe(df)); drop them before imputing"
            )
        extra_events = list(chained.events)
    family = check_family(family, df, y)
    outcome_method(df[y], y, family)  # refuses an outcome kind that is not supported
    codes = terms.codes if terms is not None else pd.factorize(df[g], sort=True)[0]
    incomplete = [c for c in used if missing[c] > 0]
    for c in incomplete:
        kind = column_kind(df[c])
        if kind not in _PREDICTOR_METHODS:
            raise UnsupportedError(
                f"incomplete predictor {c!r} is {kind}: model-based imputation supports "
                "continuous, binary, ordinal and nominal incomplete predictors so far"
            )
        if missing[c] == len(df):
            raise SpecificationError(f"predictor {c!r} has no observed values")
    if missing[y] == len(df):
        raise SpecificationError(f"the outcome {y!r} has no observed values")
    level2 = [c for c in incomplete if is_level2(codes, df[c])]
    # several terms: which of them are constant within the enclosing level (school-level)
    level3 = [c for c in level2 if terms is not None and check_level2_terms(terms, df, c, model)]
    nonlinear = check_linear(parsed, incomplete)
    for c in level2:
        if c in nonlinear:
            raise UnsupportedError(
                f"the level-2 predictor {c!r} (constant within the clusters of {g!r}) enters "
                f"the analysis model {model!r} non-linearly: model-based imputation supports "
                "level-2 incomplete predictors that enter linearly (main effects, cross-level "
                "interactions) so far"
            )
    # level-1 predictors first (conditional on every level-2 one), then level-2 predictors
    # on one row per cluster, conditional on the later level-2 ones and the complete
    # level-2 columns
    kinds = {c: column_kind(df[c]) for c in incomplete}
    # integer columns of non-negative values: count predictors with their own count model
    counts = [c for c in incomplete if kinds[c] == "numeric" and is_count_column(df[c])]
    kinds.update({c: "count" for c in counts})
    check_count_design(
        model,
        family,
        counts,
        level2,
        [c for c in incomplete if kinds[c] in ("binary", "ordinal")],
        lmeans,
    )
    if terms is not None and (counts or family in COUNT_FAMILIES):
        what = f"the count predictor(s) {counts}" if counts else f"family={family!r}"
        raise UnsupportedError(
            f"{what} with the several random-effect terms of the analysis model "
            f"{model!r}: the count models have no version for several grouping factors "
            "yet"
        )
    if counts and (level2 or lmeans):
        raise UnsupportedError(
            f"the incomplete count predictor(s) {counts} together with incomplete level-2 "
            "predictors or latent cluster means: model-based imputation does not support "
            "the combination yet"
        )
    for c in level2:
        if kinds[c] != "numeric":
            raise UnsupportedError(
                f"the level-2 predictor {c!r} is {kinds[c]}: model-based imputation supports "
                "continuous level-2 incomplete predictors so far"
            )
    # continuous level-1 predictors, then categorical ones (drawn exactly over their
    # categories; their models condition on no continuous predictor), then level-2 ones
    level1 = [c for c in incomplete if c not in level2 and kinds[c] == "numeric"]
    cats = [
        c for c in incomplete if c not in level2 and kinds[c] in ("binary", "ordinal", "nominal")
    ]
    cats = _nominal_last(cats, kinds)
    nominal = [c for c in cats if kinds[c] == "nominal"]
    if cats and level2 and terms is not None:
        raise UnsupportedError(
            f"categorical incomplete predictor(s) {cats} together with incomplete class- or "
            f"school-level predictor(s) {level2} in the analysis model {model!r} with "
            "several random-effect terms: model-based imputation does not support the "
            "combination yet"
        )
    if nominal and level2:
        raise UnsupportedError(
            f"the nominal incomplete predictor {nominal[0]!r} together with incomplete "
            f"level-2 predictor(s) {level2}: model-based imputation does not support the "
            "combination yet (binary and ordinal predictors may join level-2 ones)"
        )
    level1 = [*level1, *cats, *counts]  # count predictors last (one so far)
    incomplete = [*level1, *level2]
    complete = [c for c in used if missing[c] == 0 and c != g]
    complete2 = [c for c in complete if _constant_within(codes, df[c])]
    # the cluster means cmean(z) of complete level-1 columns in the analysis model are
    # complete predictors too: every predictor's model conditions on them (a level-2
    # predictor's, on one row per cluster, as the cluster-level columns they are)
    means = [
        c for c in dict.fromkeys([*parsed.cmeans, *primary]) if c in complete and c not in complete2
    ]
    # a complete level-1 column tells of a level-2 predictor through its cluster means
    # (x = 0.8·w + ...: a class's mean of x predicts its w), and no model of that column
    # carries p(x | w) into w's draw: a level-2 predictor's model takes the cluster mean
    # of every complete numeric level-1 column of the analysis model and the auxiliaries
    means2 = [
        *means,
        *(
            c
            for c in complete
            if c not in complete2 and c not in means and c not in lmeans and _has_mean(df[c])
        ),
    ]
    if lmeans:
        _check_latent_means(df, parsed, codes, incomplete, level2, complete, complete2, nonlinear)
    # with lmean(x): x = lmean(x) + e, lmean(x) ~ complete level-2 columns, and each
    # incomplete level-2 predictor's model takes lmean(x) as a predictor
    latent = [lmean_column(x) for x in lmeans]
    variables = []
    groups = terms.groups if terms is not None else g  # a random intercept per factor
    outer = terms.outer if terms is not None else None
    for k, x in enumerate(level1):
        if x in lmeans:
            f = predictor_formula(x, [], complete2, g)
        else:
            f = predictor_formula(x, incomplete[k + 1 :], complete, groups, means, factor_means)
        if kinds[x] == "count":
            meth = count_predictor_method(df[x], codes)
        else:
            meth = _PREDICTOR_METHODS[kinds[x]]
        variables.append(VariableSpec(x, f, meth, 1))
    for x in lmeans:
        if x not in incomplete:  # a complete x: its model still defines lmean(x)
            f = predictor_formula(x, [], complete2, g)
            variables.append(VariableSpec(x, f, _METHOD, 1))
    level2 = [c for c in level2 if c not in level3]  # class-level (school-level: below)
    for k, w in enumerate(level2):
        # (nested: cmean(x, school) is constant within each class, a class-level column)
        f = level2_formula(
            w, [*level2[k + 1 :], *level3, *latent], complete2, outer, means2, factor_means
        )
        variables.append(VariableSpec(w, f, _METHOD if outer else _METHOD2, 2))
    if level3:  # school-level: one row per school
        complete3 = level3_columns(terms, df, complete2)
        # the school means of the complete lower-level columns (the numeric or boolean
        # level-1 ones and the class-level ones, which vary within schools): no model of
        # theirs carries p(x | s) into s's draw, as for a class-level predictor above;
        # fixed columns, computed once (sampler/plan.py)
        lower = [c for c in complete if c not in complete3 and _has_mean(df[c])]
        school_means = (terms.outer, lower)
    for k, s in enumerate(level3):
        f = level2_formula(s, level3[k + 1 :], complete3, school_means=school_means)
        variables.append(VariableSpec(s, f, _METHOD2, 3))
    for col in latent:  # lmean(x) ~ complete level-2 columns: the level-2 part of x's model
        variables.append(VariableSpec(col, level2_formula(col, [], complete2), _METHOD2, 2))
    if missing[y] > 0:
        variables.append(VariableSpec(y, parsed, outcome_method(df[y], y, family), 1))
    variables += extras  # chained defaults, conditional on everything else
    # the auxiliaries enter the predictors' models: no column named like the intercept
    check_formula_columns({**{v.name: v.formula for v in variables}, y: parsed})
    nothing = not (incomplete or missing[y] or lmeans)
    events = ["nothing to impute in the analysis model"] if nothing else []
    events += extra_events
    counted = [*counts, *([y] if family in COUNT_FAMILIES else [])]
    shifts = _model_shifts(
        df, variables, cats, kinds, lmeans, model, delta, delta_cluster_sd, level3, counted
    )
    return ImputationSpec(
        tuple(variables),
        g,
        m,
        iterations,
        None,
        tuple(events),
        model=parsed,
        auxiliary=tuple(auxiliary),
        delta=shifts[0],
        delta_cluster_sd=shifts[1],
        **(_factor_fields(terms) if terms is not None else {}),
        **({"family": family} if family is not None else {}),
    )


def _check_categorical_terms(df: pd.DataFrame, parsed, missing: pd.Series) -> None:
    """``C(x)`` of an incomplete predictor ``x`` in the analysis model, refused: for a
    continuous ``x`` every imputed value would be a category of its own; a categorical
    ``x`` is coded as a category by its own model already (write ``x``)."""
    from mlimpute.codec import column_kind

    for call in calls_of(parsed.text, ("C",)):
        column = call.arguments[0].strip("`") if call.arguments else None
        if column is None or column not in df or not missing[column]:
            continue
        where = f"{call.text} in the analysis model {parsed.text!r}"
        if column_kind(df[column]) == "numeric":
            raise UnsupportedError(
                f"{where}: {column!r} is incomplete and numeric; its imputed values are not "
                "among its observed values, and C() would make each of them a category of "
                f"its own. Write {column!r} for a continuous predictor, or convert it to a "
                "pandas Categorical before imputing (df[col].astype('category'))"
            )
        raise UnsupportedError(
            f"{where}: {column!r} is an incomplete categorical predictor, which the analysis "
            f"model codes as categories already: write {column!r} instead of {call.text}"
        )


def _model_shifts(
    df, variables, cats, kinds, lmeans, model, delta, delta_cluster_sd, school, counted
):
    """The checked ``(delta, delta_cluster_sd)`` of a model-based imputation (a
    school-level predictor of an analysis model with several terms, a count predictor and
    a count outcome cannot be shifted yet)."""
    from mlimpute.spec.arguments import check_delta
    from mlimpute.spec.shifts import check_model_delta

    delta = check_delta(delta)
    cluster_sd = check_delta(delta_cluster_sd, "delta_cluster_sd")
    for arg, given in (("delta", delta), ("delta_cluster_sd", cluster_sd)):
        for name in school:
            if given.get(name):
                raise UnsupportedError(
                    f"{arg} for the school-level predictor {name!r} (constant within the "
                    f"enclosing level of the analysis model {model!r}) is not supported yet"
                )
        shifted = [name for name, value in given.items() if value]
        if counted and shifted:
            raise UnsupportedError(
                f"{arg} for {shifted} with the count variable(s) {counted} of the analysis "
                f"model {model!r}: model-based imputation does not combine shifts with "
                "count variables yet (shift them with chained imputation)"
            )
    return check_model_delta(
        delta,
        cluster_sd,
        variables,
        columns=list(df.columns),
        categorical=[c for c in cats if kinds[c] != "binary"],
        lmeans=lmeans,
        model_text=model,
    )


def _nominal_last(cats: list[str], kinds: dict[str, str]) -> list[str]:
    """The categorical predictors with the nominal one last: its model (a multinomial
    probit) then conditions on no other categorical predictor, and the binary/ordinal
    ones' models take it as a predictor (dummy coded). Several incomplete nominal
    predictors are refused (one's likelihood would enter the other's draw)."""
    nominal = [c for c in cats if kinds[c] == "nominal"]
    if len(nominal) > 1:
        raise UnsupportedError(
            f"several incomplete nominal predictors {nominal}: model-based imputation "
            "supports one so far"
        )
    return [c for c in cats if kinds[c] != "nominal"] + nominal


def _factor_fields(terms) -> dict:
    """The grouping-factor fields of the specification with several terms."""
    return {"factors": terms.factors, "hierarchy": terms.hierarchy, "structure": terms.structure}
