"""Levels of variables, the role of every column, and the default imputation model.

With ``df.mi.impute(cluster="class")`` and no formula for a variable, mlimpute imputes it
from all other analysis variables: a level-1 variable with a random intercept and the
cluster means of its level-1 predictors (without them the within- and between-cluster
regressions are forced to be equal, which biases within-cluster slopes: Enders, Mistler &
Keller 2016; Grund, Lüdtke & Robitzsch 2018), a level-2 variable on the cluster rows from
the other level-2 variables and the cluster means of the level-1 variables. The model
follows the variable's kind (:data:`DEFAULT_MODELS`).

Every column is classified once, by :func:`classify_columns`, which ``impute``,
``describe`` and ``mlimpute init`` all use:

* **cluster**: the grouping column;
* **identifier**: left out of the models, because a number per row carries no
  information and as a predictor would only add noise. A column is an identifier when it
  is complete and either (a) different in every row (a pupil number): text, or whole
  numbers in at least 20 rows, or (b) with a cluster, numbers each cluster ``0..n_j - 1`` or
  ``1..n_j`` (a pupil number within its school) and takes more than :data:`MAX_CODES`
  values overall (a day or wave number with at most that many occasions, the same
  pattern, stays a variable). Name a column in ``include=`` to keep it;
* **excluded**: a dtype that cannot be modelled (dates...), or left out by
  ``include=``/``exclude=``;
* **level-2** (observed values constant within every cluster) or **level-1**.

**Integer codes.** A numeric column whose observed values are whole numbers with at most
:data:`MAX_CODES` distinct values (codes such as 1-4, a 1-7 rating, a small count; 0/1
columns are binary already) is imputed by predictive mean matching (``pmm``, ``2l.pmm``,
``2lonly.pmm``) instead of the normal model: every imputed value is one of the observed
values, so the column keeps its codes and its dtype, ``x`` used as a number still works,
and ``C(x)`` in an analysis gets the observed categories only. The normal model would
return values such as 2.37, which a categorical term turns into new, one-row categories.
PMM orders the codes by their predicted mean; for unordered codes (a school
denomination, a region) convert the column to a pandas ``Categorical`` before imputing to
use the multinomial model instead (``df["den"] = df["den"].astype("category")``).

**Counts.** Non-negative whole numbers with more than :data:`MAX_CODES` distinct values
(visits, absences, books at home) are imputed by predictive mean matching too
(:func:`counts`): the imputed values are observed counts, so the share of zeros, the
skew and the integer dtype survive, with no assumption about the count distribution
(over-dispersion, excess zeros). The normal model would return negative and fractional
counts and too few zeros; the count models (``2l.poisson``, ``2l.nb``, ``2l.zinb``...)
assume a distribution and cost several times more per step, so they are chosen by name.
Whole numbers that can be negative stay numeric (the normal model).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlimpute.codec import column_kind, sorted_codes
from mlimpute.models import default_for
from mlimpute.models.registry import DefaultSlot, DefaultView
from mlimpute.spec.formula import _quote, factor_columns

__all__ = [
    "DEFAULT_MODELS",
    "MAX_CODES",
    "ColumnRole",
    "classify_columns",
    "integer_codes",
    "counts",
    "default_method",
    "varying_clusters",
    "is_level2",
    "analysis_columns",
    "default_formula",
    "default_formula_levels",
    "factor_codes",
]

#: An integer-valued numeric column with at most this many distinct observed values holds
#: codes (imputed by predictive mean matching); a within-cluster numbering needs more.
MAX_CODES = 10
#: Whole numbers that differ in every row are an identifier from this many rows on (in a
#: handful of rows, measured values can all differ by chance).
_MIN_ROWS_ID = 20


def _slot(level: int) -> tuple[int, bool]:
    """This module's level (0: no clusters, 1: level-1 with clusters, 2: level-2) as the
    registry's (level, multilevel)."""
    return {0: (1, False), 1: (1, True), 2: (2, False)}[level]


def _level_of(slot: DefaultSlot) -> int | None:
    return {(1, False): 0, (1, True): 1, (2, False): 2}.get((slot.level, slot.multilevel))


#: Default model by ``(kind, level)``; level 0 = no cluster structure. A read-only view of
#: the defaults the models declare when they register (:func:`mlimpute.models.register`).
DEFAULT_MODELS: DefaultView = DefaultView(
    lambda s: (s.kind, _level_of(s)) if s.variant == "" and _level_of(s) is not None else None
)

#: The predictive-mean-matching counterpart of each normal model, for integer codes (a
#: read-only view of the registry's ``"codes"`` defaults).
PMM_MODELS: DefaultView = DefaultView(
    lambda s: default_for(s.kind, s.level, s.multilevel) if s.variant == "codes" else None
)


def default_method(kind: str, level: int, codes: bool = False, top: bool = True) -> str | None:
    """The default model name for a variable of ``kind`` at ``level`` (0: no clusters),
    as declared by the models (:func:`mlimpute.models.default_for`).

    With three levels (``top=False`` for the levels below the top one), a level-2
    variable is imputed on the level-2 rows with a random intercept for level 3: the
    multilevel model; a level-3 variable on the level-3 rows.

    ``codes``: the column holds integer codes (:func:`integer_codes`), imputed by
    predictive mean matching so that only observed values come back.

    Examples
    --------
    >>> default_method("numeric", 2), default_method("numeric", 2, codes=True)
    ('2lonly.norm', '2lonly.pmm')
    """
    if level == 3:
        level = 2
    elif level == 2 and not top:
        level = 1
    lvl, multilevel = _slot(level)
    return default_for(kind, lvl, multilevel, "codes" if codes else "")


def _whole(s: pd.Series) -> np.ndarray | None:
    """Observed values as floats when all are finite whole numbers (numeric, not bool)."""
    if (
        not pd.api.types.is_numeric_dtype(s.dtype)
        or pd.api.types.is_bool_dtype(s.dtype)
        or isinstance(s.dtype, pd.CategoricalDtype)
        or pd.api.types.is_complex_dtype(s.dtype)
    ):
        return None
    v = s.to_numpy(dtype=np.float64, na_value=np.nan)
    head = v[:_WHOLE_PREFIX]  # a fraction among the first values decides without a full pass
    head = head[~np.isnan(head)]
    if not np.isfinite(head).all() or (head != np.round(head)).any():
        return None
    v = v[~np.isnan(v)]
    if not np.isfinite(v).all() or (v != np.round(v)).any():
        return None
    return v


#: values :func:`_whole` looks at first
_WHOLE_PREFIX = 1024


def integer_codes(s: pd.Series) -> bool:
    """Whether ``s`` holds integer codes: numeric, not 0/1, observed values whole numbers
    with 2 to :data:`MAX_CODES` distinct values (whatever the dtype, so codes read into a
    float column with NaN count too).

    Examples
    --------
    >>> integer_codes(pd.Series([1.0, 4.0, None, 2.0])), integer_codes(pd.Series([0, 1]))
    (True, False)
    >>> integer_codes(pd.Series(range(40))), integer_codes(pd.Series([1.5, 2.0]))
    (False, False)
    """
    if column_kind(s) != "numeric":
        return False
    v = _whole(s)
    return v is not None and 2 <= np.unique(v).size <= MAX_CODES


def counts(s: pd.Series) -> bool:
    """Whether ``s`` holds counts imputed by predictive mean matching by default: numeric,
    observed values non-negative whole numbers with more than :data:`MAX_CODES` distinct
    values (fewer are :func:`integer_codes`).

    Examples
    --------
    >>> counts(pd.Series([0, 0, 3, 12, 1, 5, 7, 2, 9, 4, 30, 6, None]))
    True
    >>> counts(pd.Series(range(-5, 20))), counts(pd.Series([0.5, 1.0] * 8))
    (False, False)
    """
    if column_kind(s) != "numeric":
        return False
    v = _whole(s)
    return v is not None and bool((v >= 0).all()) and np.unique(v).size > MAX_CODES


def pmm_by_default(s: pd.Series) -> bool:
    """Integer codes or counts: the columns the defaults impute by predictive mean matching.

    Examples
    --------
    >>> pmm_by_default(pd.Series([1, 2, 3])), pmm_by_default(pd.Series([0.1, 0.2]))
    (True, False)
    """
    return integer_codes(s) or counts(s)


@dataclass(frozen=True)
class ColumnRole:
    """How the defaults treat one column (see :func:`classify_columns`).

    Attributes
    ----------
    name : column label
    kind : str
        ``numeric``, ``binary``, ``ordinal``, ``nominal`` or ``other``
        (:func:`mlimpute.codec.column_kind`).
    role : str
        ``cluster``, ``identifier``, ``excluded``, ``level-1``, ``level-2`` or (with
        three levels) ``level-3``.
    level : int or None
        1, 2 or 3 for the variables (1 without a cluster), None otherwise.
    codes : bool
        Integer codes or counts (:func:`integer_codes`, :func:`counts`): imputed by
        predictive mean matching.
    model : str or None
        The default model if the column has missing values; None for columns left out.
    reason : str or None
        Why an identifier or excluded column is left out.
    """

    name: Hashable
    kind: str
    role: str
    level: int | None = None
    codes: bool = False
    model: str | None = None
    reason: str | None = None

    @property
    def used(self) -> bool:
        """Whether the default models use the column (imputed or as a predictor)."""
        return self.role in ("level-1", "level-2", "level-3")


def _identifier_reason(s: pd.Series, kind: str, codes: np.ndarray | None) -> str | None:
    """Why ``s`` looks like an identifier, or None. ``codes``: cluster codes (-1: unknown)."""
    n = len(s)
    if n < 3 or kind not in ("numeric", "nominal") or s.isna().any():
        return None
    whole = _whole(s) if kind == "numeric" else None
    if kind == "numeric" and whole is None:
        return None  # measured values (decimals) are not numbers given to rows
    if s.nunique() == n and (kind == "nominal" or n >= _MIN_ROWS_ID):
        return "identifier: a different value in every row"
    if codes is None or whole is None:
        return None
    known = codes >= 0
    g, v = codes[known], whole[known]
    if g.size == 0 or np.unique(v).size <= MAX_CODES:
        return None
    size = np.bincount(g)
    lo = np.full(size.size, np.inf)
    hi = np.full(size.size, -np.inf)
    np.minimum.at(lo, g, v)
    np.maximum.at(hi, g, v)
    present = size > 0
    distinct = pd.DataFrame({"g": g, "v": v}).drop_duplicates().shape[0] == g.size
    consecutive = np.array_equal(hi[present] - lo[present] + 1, size[present])
    starts = lo[present]
    if distinct and consecutive and (np.all(starts == 1) or np.all(starts == 0)):
        first = int(starts[0])
        return f"identifier: numbers the rows of each cluster {first}..n_j"
    return None


def classify_columns(
    df: pd.DataFrame,
    cluster: Hashable | None = None,
    include: Sequence[Hashable] | None = None,
    exclude: Sequence[Hashable] | None = None,
) -> dict[Hashable, ColumnRole]:
    """The role and default model of every column: the one classification of the defaults.

    ``impute(cluster=...)``, :func:`mlimpute.describe.describe` and ``mlimpute init`` all
    classify columns here, so they agree (see the module docstring for the rules).

    Parameters
    ----------
    df : pandas.DataFrame
        The data; not modified.
    cluster : column label or list of column labels, optional
        The grouping column; rows with a missing cluster id are left out of the level and
        identifier rules. A list gives nested levels, outermost first
        (``["school", "class"]``): level 3 is constant within schools, level 2 within
        classes (within schools).
    include, exclude : sequence of column labels, optional
        Columns the defaults may use / must not use. A column named in ``include`` is kept
        even if it looks like an identifier.

    Returns
    -------
    dict
        ``{column: ColumnRole}`` in the column order of ``df``.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"school": [1, 1, 1, 2, 2, 2], "pupil": list("abcdef"),
    ...                    "den": [1.0, 1.0, 1.0, 3.0, 3.0, None],
    ...                    "score": [2.5, None, 3.1, 4.7, 1.2, 3.3]})
    >>> roles = classify_columns(df, cluster="school")
    >>> [(r.role, r.model) for r in roles.values()]  # doctest: +NORMALIZE_WHITESPACE
    [('cluster', None), ('identifier', None), ('level-2', '2lonly.pmm'),
     ('level-1', '2l.norm')]
    """
    codes = outer = None
    clusters: set = set()
    if isinstance(cluster, (list, tuple)):  # nested levels, outermost first
        clusters = set(cluster)
        codes = _combined_codes(df, list(cluster))
        outer = _combined_codes(df, list(cluster[:1])) if len(cluster) > 1 else None
        cluster = None if not cluster else cluster[-1]
    elif cluster is not None:
        clusters = {cluster}
        codes, _ = pd.factorize(df[cluster], use_na_sentinel=True)
    chosen = None if include is None else set(include)
    dropped = set(exclude or ())
    out: dict[Hashable, ColumnRole] = {}
    for pos, name in enumerate(df.columns):
        s = df.iloc[:, pos]
        kind = column_kind(s)
        if name in clusters:
            out[name] = ColumnRole(name, kind, "cluster")
            continue
        reason = None
        if name in dropped:
            reason = "left out by exclude="
        elif chosen is not None and name not in chosen:
            reason = "not in include="
        elif kind == "other":
            reason = f"dtype {s.dtype} cannot be modelled"
        if reason is not None:
            out[name] = ColumnRole(name, kind, "excluded", reason=reason)
            continue
        if chosen is None:
            reason = _identifier_reason(s, kind, codes)
            if reason is not None:
                out[name] = ColumnRole(name, kind, "identifier", reason=reason)
                continue
        level = 1
        if codes is not None:
            known = codes >= 0
            level = 2 if is_level2(codes[known], s[known]) else 1
            if level == 2 and outer is not None:
                known = outer >= 0
                level = 3 if is_level2(outer[known], s[known]) else 2
        code = pmm_by_default(s)
        top = outer is None
        model = default_method(kind, level if codes is not None else 0, codes=code, top=top)
        out[name] = ColumnRole(name, kind, f"level-{level}", level, code, model)
    return out


def factor_codes(df: pd.DataFrame, factor: str) -> tuple[np.ndarray, pd.Index]:
    """Codes ``0..J-1`` of a grouping factor on the rows of ``df`` and the label of each
    code (sorted): one column, or every combination of several (``"school:class"``,
    :func:`~mlimpute.spec.formula.factor_columns`; labels are tuples then).

    Examples
    --------
    >>> df = pd.DataFrame({"s": [1, 1, 2, 2], "c": [1, 2, 1, 1]})
    >>> codes, labels = factor_codes(df, "s:c")
    >>> codes.tolist(), list(labels)
    ([0, 1, 2, 2], [(1, 1), (1, 2), (2, 1)])
    """
    cols = factor_columns(factor)
    if len(cols) == 1:
        codes, labels = sorted_codes(df[cols[0]])
        return codes, pd.Index(labels)
    codes, labels = pd.MultiIndex.from_frame(df[list(cols)]).factorize(sort=True)
    return codes, pd.Index(labels)


def _combined_codes(df: pd.DataFrame, columns: list) -> np.ndarray:
    """Codes of every combination of ``columns`` (-1 where one is missing)."""
    if len(columns) == 1:
        return pd.factorize(df[columns[0]], use_na_sentinel=True)[0]
    frame = df[columns]
    codes = frame.groupby(columns, sort=True, dropna=True).ngroup().to_numpy().copy()
    codes[frame.isna().any(axis=1).to_numpy()] = -1
    return codes


def varying_clusters(codes: np.ndarray, values: pd.Series) -> np.ndarray:
    """Codes of the clusters in which the observed values of ``values`` are not constant."""
    dtype = values.dtype
    numbers = dtype.kind in "if" or dtype.kind == "u" and dtype.itemsize < 8
    if isinstance(dtype, np.dtype) and numbers:
        # numbers are compared directly (no hashing)
        v = values.to_numpy()
        keep = ~np.isnan(v) if dtype.kind == "f" else None
    else:
        v, _ = pd.factorize(values, use_na_sentinel=True)
        keep = v >= 0
    g = codes
    if keep is not None and not keep.all():
        g, v = codes[keep], v[keep]
    if g.size == 0:
        return np.zeros(0, dtype=np.intp)
    # a cluster varies where one of its values differs from another one of them (the
    # value the scatter left there: which one does not matter)
    ref = np.empty(int(codes.max()) + 1, dtype=v.dtype)
    ref[g] = v
    varies = np.zeros(ref.size, dtype=bool)
    varies[g[v != ref[g]]] = True
    return np.flatnonzero(varies)


#: rows :func:`is_level2` looks at first: values that vary within a cluster there decide
_LEVEL2_PREFIX = 8192


def is_level2(codes: np.ndarray, values: pd.Series) -> bool:
    """Level 2: observed values constant within every cluster, and some cluster has two.

    The first rows are looked at first: values that vary within a cluster there decide
    (level 1) without a pass over every row, as most columns of a large data set do.

    Examples
    --------
    >>> codes = np.array([0, 0, 1, 1])
    >>> is_level2(codes, pd.Series([1.0, 1.0, 2.0, None]))
    True
    >>> is_level2(codes, pd.Series([1, 2, 3, 3]))
    False
    """
    if codes.size > _LEVEL2_PREFIX and codes[:_LEVEL2_PREFIX].min() >= 0:
        head = values.iloc[:_LEVEL2_PREFIX]
        if varying_clusters(codes[:_LEVEL2_PREFIX], head).size:
            return False
    observed = values.notna().to_numpy()
    if not observed.any():
        return False
    if np.bincount(codes if observed.all() else codes[observed]).max() < 2:
        return False
    return varying_clusters(codes, values).size == 0


def analysis_columns(
    df: pd.DataFrame,
    cluster: str | None,
    include: Sequence[str] | None,
    exclude: Sequence[str] | None,
) -> tuple[list[str], list[str]]:
    """Columns the defaults use, and the ones left out automatically (with reasons).

    A thin view of :func:`classify_columns`: the columns it gives a level to, in the order
    of ``include`` (or of ``df``), and the identifiers and unsupported dtypes it leaves out.
    """
    roles = classify_columns(df, cluster, include, exclude)
    order = list(include) if include is not None else list(df.columns)
    keep = [c for c in order if c in roles and roles[c].used]
    left_out = [
        f"{c!r} ({roles[c].reason})"
        for c in order
        if c in roles
        and (
            roles[c].role == "identifier"
            or roles[c].role == "excluded"
            and roles[c].reason.startswith("dtype")
        )
    ]
    return keep, left_out


def default_formula(
    name: str,
    columns: Sequence[str],
    levels: dict[str, int],
    kinds: dict[str, str],
    cluster: str | None,
) -> str:
    """The default formula for ``name`` given the analysis columns and their levels.

    Examples
    --------
    >>> default_formula("grade", ["grade", "skill", "iq"], {"grade": 1, "skill": 2, "iq": 1},
    ...                 {"grade": "numeric", "skill": "numeric", "iq": "numeric"}, "class")
    '~ skill + iq + cmean(iq) + (1 | class)'
    """
    others = [c for c in columns if c != name]
    terms = []
    if cluster is None:
        terms = [_quote(c) for c in others]
        return "~ " + (" + ".join(terms) if terms else "1")
    lvl = levels[name]
    for c in others:
        level1 = levels[c] == 1
        numeric = kinds[c] in ("numeric", "binary")
        if lvl == 2:
            if not level1:
                terms.append(_quote(c))
            elif numeric:
                terms.append(f"cmean({_quote(c)})")
        else:
            terms.append(_quote(c))
            if level1 and numeric:
                terms.append(f"cmean({_quote(c)})")
    rhs = " + ".join(terms) if terms else "1"
    if lvl == 1:
        rhs += f" + (1 | {_quote(cluster)})"
    return "~ " + rhs


def default_formula_levels(
    name: str,
    columns: Sequence[str],
    levels: dict[str, int],
    kinds: dict[str, str],
    hierarchy: Sequence[str],
) -> str:
    """The default formula for ``name`` with three nested levels (``hierarchy``: the
    grouping factors, outermost first, e.g. ``("school", "class")``).

    A level-1 variable: every other variable, the class means (``cmean(x)``) of the
    numeric level-1 predictors, the school means (``cmean(x, school)``) of the numeric
    level-1 and level-2 predictors, and a random intercept for each level. A level-2
    variable (constant within classes, imputed on one row per class): the level-2 and
    level-3 variables, the class means of the level-1 variables, the school means of the
    level-1 and of the other level-2 variables, and a random intercept for level 3. A
    level-3 variable (imputed on one row per school): the level-3 variables and the school
    means of the level-1 and level-2 variables (``cmean`` on the school rows).

    Without the school means, the level-1 and class-level models would take the school
    random intercept of the other variables as unrelated to them: the class-level model
    regresses a class's value on its class means only, and the part of a class mean that
    is the school's effect then biases the imputed class-level values.

    Examples
    --------
    >>> lv = {"y": 1, "x": 1, "z": 2, "w": 3}
    >>> kinds = dict.fromkeys(lv, "numeric")
    >>> default_formula_levels("y", list(lv), lv, kinds, ("school", "class"))
    '~ x + cmean(x) + cmean(x, school) + z + cmean(z, school) + w + (1 | school) + (1 | class)'
    >>> default_formula_levels("z", list(lv), lv, kinds, ("school", "class"))
    '~ cmean(y) + cmean(y, school) + cmean(x) + cmean(x, school) + w + (1 | school)'
    >>> default_formula_levels("w", list(lv), lv, kinds, ("school", "class"))
    '~ cmean(y) + cmean(x) + cmean(z)'
    """
    from mlimpute.spec.formula import _factor_text

    lvl = levels[name]
    top = len(hierarchy) + 1  # the outermost level
    outer = _factor_text(hierarchy[0], _quote)
    terms = []
    for c in columns:
        if c == name:
            continue
        numeric = kinds[c] in ("numeric", "binary")
        q = _quote(c)
        if levels[c] >= lvl:
            terms.append(q)
            if lvl == 1 and levels[c] == 1 and numeric:
                terms.append(f"cmean({q})")
        elif numeric:  # a lower-level variable: its mean over this level's clusters
            terms.append(f"cmean({q})")
        if numeric and lvl < top and levels[c] < top:  # and over the outermost level's
            terms.append(f"cmean({q}, {outer})")
    rhs = " + ".join(terms) if terms else "1"
    above = hierarchy[: len(hierarchy) + 1 - lvl]  # the levels enclosing this one
    for g in above:
        rhs += f" + (1 | {_factor_text(g, _quote)})"
    return "~ " + rhs
