"""Descriptives of a (multilevel) DataFrame before imputing it: ``df.mi.describe()``.

One row per column: how much is missing, location and spread or category counts, the
intraclass correlation of level-1 numeric variables, whether a variable lives at level 1
(varies within clusters) or level 2 (constant within every cluster), its role (cluster,
identifier, variable, excluded) and the name of the conditional model the defaults would
use to impute it (WinMICE's *descriptives* sheet). Roles and models come from
:func:`mlimpute.spec.defaults.classify_columns`, the classification ``impute`` uses.

The intraclass correlation is the one-way ANOVA estimator for unbalanced clusters
(Snijders & Bosker 2012, §3.3.1; Donner 1986):

    MSB = sum_j n_j (ybar_j - ybar)^2 / (J - 1),      MSW = sum_ij (y_ij - ybar_j)^2 / (N - J),
    n0  = (N - sum_j n_j^2 / N) / (J - 1),            s2_b = (MSB - MSW) / n0,
    ICC = s2_b / (s2_b + MSW),

computed on the observed values only (``N`` observed values in the ``J`` clusters that have
at least one). ``n0`` is the average cluster size corrected for unequal sizes; with equal
sizes it is the cluster size. The estimate is not truncated: with no cluster effect it
scatters around zero and can be slightly negative.

References
----------
.. [1] Snijders, T. A. B. & Bosker, R. J. (2012). *Multilevel Analysis*, 2nd ed. Sage.
.. [2] Donner, A. (1986). A review of inference procedures for the intraclass correlation
   coefficient in the one-way random effects model. *International Statistical Review*
   54(1), 67-82.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Literal

import numpy as np
import pandas as pd

from mlimpute.codec import column_kind
from mlimpute.errors import DataTypeError, SpecificationError, UnsupportedError
from mlimpute.spec.defaults import DEFAULT_MODELS, ColumnRole, classify_columns, integer_codes

__all__ = ["DEFAULT_MODELS", "describe", "icc_anova", "icc_nested", "variable_kind"]

Kind = Literal["numeric", "binary", "ordinal", "nominal", "other"]

_COLUMNS = [
    "kind",
    "n",
    "n_missing",
    "pct_missing",
    "mean",
    "sd",
    "levels",
    "icc",
    "level",
    "role",
    "model",
    "note",
]
_MAX_LEVELS = 6  # category counts shown before "... (+k more)"


def variable_kind(s: pd.Series) -> Kind:
    """The kind of variable a column holds, as the default models see it.

    Binary: bool, a two-category categorical, numbers whose observed values are all 0 or 1,
    or text with exactly two distinct observed values (:func:`mlimpute.codec.column_kind`).

    Examples
    --------
    >>> import pandas as pd
    >>> from mlimpute.describe import variable_kind
    >>> variable_kind(pd.Series([0, 1, None])), variable_kind(pd.Series([0.5, 1.0]))
    ('binary', 'numeric')
    """
    return column_kind(s)  # type: ignore[return-value]


def icc_anova(y: np.ndarray, codes: np.ndarray) -> float:
    """One-way ANOVA intraclass correlation for unbalanced clusters.

    Parameters
    ----------
    y : numpy.ndarray of float, shape (n,)
        Values; NaN marks a missing value (left out).
    codes : numpy.ndarray of int, shape (n,)
        Cluster codes ``0..J-1``; ``-1`` marks an unknown cluster (row left out).

    Returns
    -------
    float
        ``s2_b / (s2_b + MSW)`` with ``s2_b = (MSB - MSW) / n0`` and
        ``n0 = (N - sum n_j^2 / N) / (J - 1)`` (see the module docstring). NaN with fewer
        than two clusters, no within-cluster degrees of freedom (``N = J``) or no variance.

    Notes
    -----
    Two ``np.bincount`` passes over the rows: ``O(n + J)``.

    Examples
    --------
    >>> import numpy as np
    >>> from mlimpute.describe import icc_anova
    >>> y = np.array([1.0, 2.0, 3.0, 5.0, 6.0, 7.0])
    >>> round(icc_anova(y, np.array([0, 0, 0, 1, 1, 1])), 4)
    0.8846
    """
    keep = ~np.isnan(y) & (codes >= 0)
    g = codes[keep]
    v = y[keep]
    n_total = v.size
    if n_total == 0:
        return float("nan")
    size = np.bincount(g)
    total = np.bincount(g, weights=v, minlength=size.size)
    present = size > 0
    n_clusters = int(present.sum())
    if n_clusters < 2 or n_total - n_clusters < 1:
        return float("nan")
    means = np.divide(total, size, out=np.zeros_like(total), where=present)
    grand = v.mean()
    ssb = float((size * (means - grand) ** 2).sum())
    ssw = float(((v - means[g]) ** 2).sum())
    msb = ssb / (n_clusters - 1)
    msw = ssw / (n_total - n_clusters)
    n0 = (n_total - float((size.astype(np.float64) ** 2).sum()) / n_total) / (n_clusters - 1)
    between = (msb - msw) / n0
    denominator = between + msw
    if not denominator > 0:
        return float("nan")
    return between / denominator


def icc_nested(y: np.ndarray, outer: np.ndarray, inner: np.ndarray) -> tuple[float, float]:
    """Shares of the variance between outer clusters (schools) and between inner clusters
    within them (classes), from the unbalanced nested (hierarchical) ANOVA.

    With ``a`` schools, ``b`` classes, ``n_ij`` rows in class j of school i,
    ``n_i = sum_j n_ij`` and ``N`` rows: ``E[MS_e] = s2_e``,
    ``E[MS_c] = s2_e + n0 s2_c``, ``E[MS_s] = s2_e + n0' s2_c + n0'' s2_s`` with
    ``n0 = (N - sum_i sum_j n_ij^2 / n_i) / (b - a)``,
    ``n0' = (sum_i sum_j n_ij^2 / n_i - sum_ij n_ij^2 / N) / (a - 1)`` and
    ``n0'' = (N - sum_i n_i^2 / N) / (a - 1)`` (Sokal & Rohlf, *Biometry*, the unbalanced
    nested ANOVA); negative variance estimates count as 0. A one-way ANOVA over schools
    would count part of the class variance as school variance.

    Parameters
    ----------
    y : numpy.ndarray of float, shape (n,)
        Values; NaN marks a missing value (left out).
    outer, inner : numpy.ndarray of int, shape (n,)
        School codes and class codes (classes numbered over all schools, each class in
        one school); ``-1`` marks an unknown cluster (row left out).

    Returns
    -------
    (float, float)
        ``s2_s / total`` and ``s2_c / total`` (NaN when not estimable).

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([1.0, 1.2, 2.0, 2.4, 5.0, 5.4, 6.0, 6.2])
    >>> s, c = icc_nested(y, np.repeat([0, 1], 4), np.repeat([0, 1, 2, 3], 2))
    >>> round(s, 3), round(c, 3)
    (0.936, 0.058)
    """
    keep = ~np.isnan(y) & (outer >= 0) & (inner >= 0)
    v, o, c = y[keep], outer[keep], inner[keep]
    nan = (float("nan"), float("nan"))
    N = v.size
    if N == 0:
        return nan
    n_ij = np.bincount(c).astype(np.float64)
    present = n_ij > 0
    n_i = np.bincount(o).astype(np.float64)
    a, b = int((n_i > 0).sum()), int(present.sum())
    if a < 2 or b - a < 1 or N - b < 1:
        return nan
    school_of = np.zeros(n_ij.size, dtype=np.intp)
    school_of[c] = o
    mean_c = np.divide(
        np.bincount(c, weights=v, minlength=n_ij.size), n_ij, where=present, out=np.zeros_like(n_ij)
    )
    mean_s = np.divide(
        np.bincount(o, weights=v, minlength=n_i.size), n_i, where=n_i > 0, out=np.zeros_like(n_i)
    )
    grand = v.mean()
    ms_e = float(((v - mean_c[c]) ** 2).sum()) / (N - b)
    ms_c = float((n_ij * (mean_c - mean_s[school_of]) ** 2)[present].sum()) / (b - a)
    ms_s = float((n_i * (mean_s - grand) ** 2).sum()) / (a - 1)
    sq_within = np.bincount(school_of[present], weights=n_ij[present] ** 2, minlength=n_i.size)
    k1 = float(np.divide(sq_within, n_i, where=n_i > 0, out=np.zeros_like(n_i)).sum())
    n0 = (N - k1) / (b - a)
    n0p = (k1 - float((n_ij**2).sum()) / N) / (a - 1)
    n0pp = (N - float((n_i**2).sum()) / N) / (a - 1)
    s2_c = max((ms_c - ms_e) / n0, 0.0)
    s2_s = max((ms_s - ms_e - n0p * s2_c) / n0pp, 0.0)
    total = s2_s + s2_c + ms_e
    if not total > 0:
        return nan
    return s2_s / total, s2_c / total


def _level_counts(s: pd.Series) -> str:
    """``"a: 3, b: 5"`` over the observed values, in category (or sorted) order."""
    counts = s.value_counts(dropna=True, sort=False)
    if not isinstance(s.dtype, pd.CategoricalDtype):
        try:
            counts = counts.sort_index()
        except TypeError:  # mixed, unorderable labels: keep order of appearance
            pass
    items = [f"{label}: {int(n)}" for label, n in counts.iloc[:_MAX_LEVELS].items()]
    if len(counts) > _MAX_LEVELS:
        items.append(f"... (+{len(counts) - _MAX_LEVELS} more)")
    return ", ".join(items)


def _cluster_summary(codes: np.ndarray) -> str:
    sizes = np.bincount(codes[codes >= 0])
    sizes = sizes[sizes > 0]
    if sizes.size == 0:
        return "0 clusters"
    return f"{sizes.size} clusters, size {sizes.min()}-{sizes.max()} (mean {sizes.mean():.1f})"


def describe(df: pd.DataFrame, cluster: Hashable | None = None) -> pd.DataFrame:
    """Describe every column before imputing: missingness, summaries, ICC, level, model.

    Parameters
    ----------
    df : pandas.DataFrame
        The data; it is not modified.
    cluster : column label, optional
        The grouping factor (e.g. ``"class"``). Without it every variable is level 1, the
        ICC is NaN and the single-level model names are given.

    Returns
    -------
    pandas.DataFrame
        One row per column of ``df`` (index: the column labels, named ``variable``) with

        - ``kind``: ``numeric``, ``binary``, ``ordinal``, ``nominal`` or ``other`` (see
          :func:`variable_kind`; 0/1 numeric columns and bools are ``binary``);
        - ``n``, ``n_missing``, ``pct_missing``: observed and missing values, % missing;
        - ``mean``, ``sd``: for numeric and binary numeric/bool columns (the mean of a 0/1
          column is the proportion of ones), NaN otherwise; ``sd`` with ``ddof=1``;
        - ``levels``: counts of the observed values of binary and categorical columns as
          a short string (``"0: 290, 1: 310"``; after six categories ``"... (+k more)"``);
          for the cluster column, the number of clusters and their sizes;
        - ``icc``: for numeric and binary level-1 columns when ``cluster`` is given, the
          one-way ANOVA intraclass correlation on the observed values with the unbalanced
          cluster size ``n0 = (N - sum n_j^2 / N) / (J - 1)`` (see :func:`icc_anova`; on the
          0/1 scale for binary columns); NaN otherwise;
        - ``level``: ``2`` when the observed values are constant within every cluster (and
          some cluster has at least two of them), ``1`` otherwise; ``"cluster"`` for the
          cluster column; always ``1`` without ``cluster``; missing for identifiers and
          excluded columns;
        - ``role``: ``cluster``, ``identifier`` (complete, and unique in every row or
          numbering the rows of each cluster 1..n_j: left out of the models),
          ``excluded`` (a dtype that cannot be modelled), ``level-1`` or ``level-2``
          (:func:`mlimpute.spec.defaults.classify_columns`, the rules ``impute`` follows);
        - ``model``: the conditional model the defaults would use (:data:`DEFAULT_MODELS`):
          with a cluster, ``2l.norm`` (numeric level 1), ``2l.bin`` (0/1, bool or two
          categories), ``2l.ordinal`` (ordered categorical), ``2l.nominal`` (unordered
          categorical), ``2lonly.norm``/``2lonly.bin``/... for level-2 variables; without
          one, the single-level models ``norm``, ``bin``, ``ordinal``, ``nominal``.
          Integer codes (whole numbers with at most 10 distinct values, e.g. 1-4) and
          counts (non-negative whole numbers with more distinct values) get
          predictive mean matching, ``2l.pmm``/``2lonly.pmm``/``pmm``, which imputes
          observed values only. Missing for the cluster, identifiers and excluded columns;
        - ``note``: why an identifier or excluded column is left out, or that a column
          holds integer codes or counts; missing otherwise.

    Raises
    ------
    DataTypeError
        ``df`` is not a DataFrame.
    SpecificationError
        ``cluster`` is not a column of ``df``.

    Notes
    -----
    Rows with a missing cluster id count towards ``n``/``n_missing`` but are left out of
    the ICC and the level. Cost: one factorisation of the cluster column, then per column
    a few ``np.bincount`` passes, ``O(n p)``; no loop over rows or clusters.

    Examples
    --------
    >>> from mlimpute.datasets import classroom
    >>> from mlimpute.describe import describe
    >>> df = classroom(2, rng=1).incomplete
    >>> d = describe(df, cluster="class")
    >>> d[["pct_missing", "icc", "role", "model"]].round(2)  # doctest: +NORMALIZE_WHITESPACE
              pct_missing   icc     role        model
    variable
    class            0.00   NaN  cluster          NaN
    skill            0.00   NaN  level-2  2lonly.norm
    gender           0.00  0.01  level-1       2l.bin
    relation        43.33  0.22  level-1      2l.norm
    grade           42.67  0.31  level-1      2l.norm
    """
    if not isinstance(df, pd.DataFrame):
        raise DataTypeError(f"describe needs a pandas DataFrame, got {type(df).__name__}")
    if isinstance(cluster, (list, tuple)):
        if len(cluster) == 1:
            cluster = cluster[0]
        else:
            return _describe_levels(df, list(cluster))
    codes: np.ndarray | None = None
    cluster_pos = -1
    if cluster is not None:
        matches = np.flatnonzero(df.columns == cluster) if _hashable(cluster) else []
        if len(matches) != 1:
            what = "is not a column" if len(matches) == 0 else "names several columns"
            raise SpecificationError(
                f"cluster {cluster!r} {what} of the DataFrame; columns: {list(df.columns)}"
            )
        cluster_pos = int(matches[0])
        codes, _ = pd.factorize(df.iloc[:, cluster_pos], use_na_sentinel=True)

    # describe tolerates rows without a cluster id (impute refuses them): the roles are
    # computed on the other rows, as the levels always were
    roles = classify_columns(
        df.set_axis(range(df.shape[1]), axis=1), None if cluster is None else cluster_pos
    )
    n_rows = len(df)
    rows = []
    for pos in range(df.shape[1]):
        s = df.iloc[:, pos]
        rows.append(_describe_column(s, n_rows, codes, roles[pos]))
    out = pd.DataFrame(rows, columns=_COLUMNS, index=pd.Index(df.columns, name="variable"))
    out = out.astype(
        {
            "n": np.int64,
            "n_missing": np.int64,
            "pct_missing": np.float64,
            "mean": np.float64,
            "sd": np.float64,
            "icc": np.float64,
        }
    )
    from mlimpute.result.display import Table  # shown whole and rounded; the values are not rounded

    return Table(out, digits={"pct_missing": 1, "mean": 3, "sd": 3, "icc": 3})


def _describe_levels(df: pd.DataFrame, levels: list) -> pd.DataFrame:
    """:func:`describe` with nested levels (``cluster=["school", "class"]``): the columns
    ``icc`` becomes one column per enclosing level, the share of the variance at that
    level (``icc(school)``, ``icc(class)``: between classes within schools). A class-level
    column's ``icc(school)`` is over one observed value per class; negative variance
    estimates count as 0, as in :func:`icc_nested`."""
    if len(levels) > 2:
        raise UnsupportedError(
            f"cluster={levels}: describe supports three levels (two grouping columns) so far"
        )
    for c in levels:
        if not _hashable(c) or int(np.sum(df.columns == c)) != 1:
            raise SpecificationError(
                f"cluster {c!r} is not a column of the DataFrame; columns: {list(df.columns)}"
            )
    outer, inner = levels
    from mlimpute.spec.defaults import _combined_codes

    oc = _combined_codes(df, [outer])
    ic = _combined_codes(df, [outer, inner])
    out = describe(df.drop(columns=[outer]), cluster=inner)  # a copy; df is not modified
    roles = classify_columns(df, levels)
    full = describe(df[[outer]], cluster=outer).loc[[outer]]
    base = pd.concat([full, out]).reindex(df.columns)
    base.index.name = "variable"
    icc_outer = np.full(len(base), np.nan)
    icc_inner = np.full(len(base), np.nan)
    for k, name in enumerate(base.index):
        role = roles[name]
        level = "cluster" if role.role == "cluster" else role.level
        base.iloc[k, base.columns.get_loc("level")] = level
        base.iloc[k, base.columns.get_loc("role")] = role.role
        base.iloc[k, base.columns.get_loc("model")] = np.nan if role.model is None else role.model
        s = df[name]
        numeric = pd.api.types.is_numeric_dtype(s.dtype) and not isinstance(
            s.dtype, pd.CategoricalDtype
        )
        if name == inner:  # the classes within schools (ids may repeat across schools)
            base.iloc[k, base.columns.get_loc("levels")] = _cluster_summary(ic)
        if not numeric or role.role == "cluster" or role.level is None:
            continue
        v = s.to_numpy(dtype=np.float64, na_value=np.nan)
        keep = (oc >= 0) & (ic >= 0)
        if role.level == 1:
            icc_outer[k], icc_inner[k] = icc_nested(v, oc, ic)
        elif role.level == 2:  # one value per class: the share between schools
            seen = keep & ~np.isnan(v)  # each class's first observed value
            _, first = np.unique(ic[seen], return_index=True)
            # a negative estimate counts as 0, as in icc_nested for the level-1 columns
            icc_outer[k] = np.maximum(icc_anova(v[seen][first], oc[seen][first]), 0.0)
    pos = base.columns.get_loc("icc")
    base = base.drop(columns=["icc"])
    base.insert(pos, f"icc({inner})", icc_inner)
    base.insert(pos, f"icc({outer})", icc_outer)
    from mlimpute.result.display import Table

    digits = {"pct_missing": 1, "mean": 3, "sd": 3, f"icc({outer})": 3, f"icc({inner})": 3}
    for col in ("model", "note"):  # missing entries as NaN, as without levels
        base[col] = base[col].astype(object).where(base[col].notna(), np.nan)
    return Table(pd.DataFrame(base), digits=digits)


def _hashable(x: object) -> bool:
    try:
        hash(x)
    except TypeError:
        return False
    return True


def _describe_column(s: pd.Series, n_rows: int, codes: np.ndarray | None, role: ColumnRole) -> list:
    n_missing = int(s.isna().sum())
    n_obs = n_rows - n_missing
    pct = 100.0 * n_missing / n_rows if n_rows else float("nan")
    kind = variable_kind(s)
    numeric = pd.api.types.is_numeric_dtype(s.dtype) and not isinstance(
        s.dtype, pd.CategoricalDtype
    )
    values = s.to_numpy(dtype=np.float64, na_value=np.nan) if numeric else None

    if role.role == "cluster":
        assert codes is not None
        return [
            kind,
            n_obs,
            n_missing,
            pct,
            np.nan,
            np.nan,
            _cluster_summary(codes),
            np.nan,
            "cluster",
            "cluster",
            None,
            None,
        ]

    mean = sd = icc = np.nan
    if values is not None and n_obs:
        observed = values[~np.isnan(values)]
        mean = float(observed.mean())
        sd = float(observed.std(ddof=1)) if observed.size > 1 else np.nan
    levels = _level_counts(s) if kind in ("binary", "ordinal", "nominal") else None
    note = np.nan if role.reason is None else role.reason  # missing like the other columns
    if role.codes:
        what = "integer codes" if integer_codes(s) else "counts"
        note = (
            f"{what} ({s.nunique()} values): predictive mean matching imputes observed values only"
        )
    if codes is not None and role.level == 1 and values is not None:
        icc = icc_anova(values, codes)
    return [
        kind,
        n_obs,
        n_missing,
        pct,
        mean,
        sd,
        levels,
        icc,
        role.level,
        role.role,
        role.model,
        note,
    ]
