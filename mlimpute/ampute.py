"""Amputation: make complete data incomplete, for simulation studies.

:func:`ampute` deletes values of chosen variables by a logistic missingness model,
row by row (level 1) or for whole clusters (level 2), optionally with *systematically*
missing variables (missing for every row of a share of the clusters), and hits the
requested proportions in expectation exactly: the intercept of the logistic model is
solved for.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from mlimpute.errors import DataError, DataTypeError, SpecificationError
from mlimpute.rng import RngLike, as_generator
from mlimpute.spec.arguments import describe_value, is_real_number

__all__ = ["ampute"]

_MECHANISMS = ("MCAR", "MAR", "MNAR")
#: why a mechanism other than MAR has no use for ``depends_on``
_UNUSED = {"MCAR": "MCAR depends on nothing", "MNAR": "MNAR depends on the variable itself"}


def _expit(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _solve_intercept(eta: np.ndarray, weights: np.ndarray, target: float) -> float:
    """The ``a`` with ``sum w expit(a + eta) / sum w = target`` (bisection, 200 steps).

    The weighted mean of ``expit(a + eta)`` increases strictly from 0 to 1 in ``a``; the
    bracket ``[-40 - max eta, 40 - min eta]`` holds the root for any target in
    ``(1e-17, 1 - 1e-17)``, and 200 halvings shrink it far below double precision.
    """
    lo, hi = -40.0 - float(eta.max()), 40.0 - float(eta.min())
    total = weights.sum()
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if (weights * _expit(mid + eta)).sum() / total < target:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-13:
            break
    return 0.5 * (lo + hi)


def _standardise(x: np.ndarray, name: str) -> np.ndarray:
    sd = x.std()
    if not sd > 0:
        raise DataError(f"{name!r} is constant; it cannot drive the missingness.")
    return (x - x.mean()) / sd


def _column_list(dep):
    """``depends_on`` of one variable as a list: a single column name (a string) is a list
    of one, as in pandas; an Index or array becomes a list; anything else is kept (and
    checked where it is used)."""
    if isinstance(dep, str):
        return [dep]
    if isinstance(dep, (pd.Index, np.ndarray)):
        return dep.tolist()
    return dep


def _depends_on(depends_on, targets: list, mechs: dict, columns: pd.Index) -> dict:
    """``depends_on`` per amputed variable (None where not given or not used), checked for
    every mechanism: a dict names variables of ``prop``, each column named is a column of
    ``df``; then a dict entry is refused for a variable whose mechanism is not MAR (the
    only one that uses it), and one list for all variables, which applies to the MAR
    ones, is refused if there are none."""
    if depends_on is None:
        return dict.fromkeys(targets)
    shared = not isinstance(depends_on, Mapping)
    if shared:
        given = {"": _column_list(depends_on)}
    else:
        unknown = [k for k in depends_on if k not in targets]
        if unknown:
            raise SpecificationError(f"depends_on names {unknown}, which are not in prop.")
        given = {c: _column_list(d) for c, d in depends_on.items() if d is not None}
    for c, dep in given.items():
        if not isinstance(dep, Sequence) or len(dep) == 0:
            where = "" if shared else f" for {c!r}"
            raise SpecificationError(
                f"depends_on{where} must be a column name or a list of column names, got {dep!r}."
            )
        bad = [x for x in dep if x not in columns]
        if bad:
            raise SpecificationError(f"depends_on names {bad}, which are not columns of df.")
    if shared:
        mar = [c for c in targets if mechs[c] == "MAR"]
        if not mar:
            named = ", ".join(f"{c!r} is {mechs[c]}" for c in targets)
            raise SpecificationError(
                f"depends_on is given, but no variable is amputed MAR ({named}): only MAR "
                "uses depends_on (MCAR depends on nothing, MNAR on the variable itself); "
                "give mechanism='MAR' (or a dict naming the MAR variables), or leave "
                "depends_on out."
            )
        return {c: given[""] if c in mar else None for c in targets}
    for c in given:
        if mechs[c] != "MAR":
            raise SpecificationError(
                f"depends_on gives columns for {c!r}, whose mechanism is {mechs[c]!r}: "
                f"only MAR uses depends_on ({_UNUSED[mechs[c]]}); give "
                f"mechanism={{{c!r}: 'MAR'}} or leave {c!r} out of depends_on."
            )
    return {c: given.get(c) for c in targets}


def _per_variable(value, columns: Sequence[Hashable], what: str, default) -> dict:
    """One setting per amputed column; a mapping gives ``default`` to the columns it omits."""
    if isinstance(value, Mapping):
        unknown = [k for k in value if k not in columns]
        if unknown:
            raise SpecificationError(f"{what} names {unknown}, which are not in prop.")
        return {c: value.get(c, default) for c in columns}
    return dict.fromkeys(columns, value)


def _numeric(df: pd.DataFrame, col: Hashable, role: str) -> np.ndarray:
    s = df[col]
    if not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)):
        raise DataTypeError(
            f"{role} {col!r} has dtype {s.dtype}; the missingness model needs numbers."
        )
    if s.isna().any():
        raise DataError(
            f"{role} {col!r} has {int(s.isna().sum())} missing values; the missingness model "
            "needs it complete."
        )
    return s.to_numpy(dtype=float)


def _with_missing(s: pd.Series, miss: np.ndarray) -> pd.Series:
    """``s`` with ``miss`` set missing: NaN for floats, pd.NA for nullable and others.

    numpy integer and boolean columns cannot hold a missing value; they become pandas'
    nullable ``Int64``/``boolean`` (the same values, ``pd.NA`` where missing).
    """
    if pd.api.types.is_bool_dtype(s) and not isinstance(s.dtype, pd.BooleanDtype):
        s = s.astype("boolean")
    elif pd.api.types.is_integer_dtype(s) and isinstance(s.dtype, np.dtype):
        s = s.astype(str(s.dtype).capitalize())
    return s.mask(pd.Series(miss, index=s.index))


def ampute(
    df: pd.DataFrame,
    cluster: Hashable | None = None,
    prop: Mapping[Hashable, float] | None = None,
    *,
    mechanism: Literal["MCAR", "MAR", "MNAR"] | Mapping[Hashable, str] = "MCAR",
    depends_on: str
    | Sequence[Hashable]
    | Mapping[Hashable, str | Sequence[Hashable]]
    | None = None,
    level: int | Mapping[Hashable, int] = 1,
    systematic: float | Mapping[Hashable, float] = 0.0,
    strength: float | Mapping[Hashable, float] = 1.0,
    rng: RngLike = None,
) -> pd.DataFrame:
    """Delete values of complete data by a logistic missingness model.

    For each variable ``v`` in ``prop``, unit ``i`` (a row, or a cluster when
    ``level=2``) is missing with probability ``expit(a + strength * z_i)``:

    * ``"MCAR"``: ``z = 0``;
    * ``"MAR"``: ``z`` is the standardised sum of the standardised ``depends_on``
      columns (complete columns other than ``v``);
    * ``"MNAR"``: ``z`` is the standardised ``v`` itself.

    The intercept ``a`` is solved (bisection) so that the *expected* share of missing
    rows equals ``prop[v]`` exactly; with ``systematic=s`` a share ``s`` of the clusters
    (chosen at random) first loses ``v`` in every row, and the intercept is solved for
    the remaining rows so that the overall expected share is still ``prop[v]``. Level 2
    deletes a cluster-level variable (constant within clusters) for whole clusters; the
    model then works on one value per cluster (cluster means of ``depends_on``) and the
    expected share of missing *rows* (clusters weighted by size) hits the target. The
    variables are amputed independently of each other.

    Parameters
    ----------
    df : pandas.DataFrame
        Complete data (the variables in ``prop`` and ``depends_on`` without missing
        values). Not modified.
    cluster : column name, optional
        Cluster id column; needed for ``level=2`` and ``systematic``.
    prop : dict
        Target share of missing rows per variable, each in (0, 1) (Python or numpy
        numbers, as for ``systematic`` and ``strength``).
    mechanism : {"MCAR", "MAR", "MNAR"} or dict, default "MCAR"
        One for all variables or one per variable.
    depends_on : column name, list of column names or dict, optional
        For MAR: the columns the missingness depends on (one list for all variables,
        or one per variable); a single column may be given by its name
        (``depends_on="gender"`` is ``depends_on=["gender"]``). One list applies to the
        variables whose mechanism is MAR; it is refused if there are none, and a dict
        entry for a variable amputed MCAR or MNAR is refused (neither uses it).
    level : {1, 2} or dict, default 1
        Row-level or whole-cluster missingness.
    systematic : float or dict, default 0.0
        Share of clusters, in [0, 1), in which a level-1 variable is missing entirely.
        A dict sets it per variable; the variables it leaves out get 0 (as ``mechanism``,
        ``level`` and ``strength`` given as dicts fall back to their defaults).
    strength : float or dict, default 1.0
        Slope of the logistic model per standard deviation of ``z`` (log odds ratio);
        ignored for MCAR.
    rng : int, numpy.random.SeedSequence or numpy.random.Generator, optional
        Source of randomness.

    Returns
    -------
    pandas.DataFrame
        A new DataFrame, same columns and index. Float columns hold ``NaN`` where
        missing, nullable and object/categorical columns ``pd.NA``/``NaN`` as pandas
        does; numpy integer and boolean columns become ``Int64``/``boolean``.

    Raises
    ------
    SpecificationError
        For an unknown column, a proportion outside (0, 1), an unknown mechanism, MAR
        without ``depends_on`` or with the variable itself in it, ``depends_on`` for a
        variable amputed MCAR or MNAR (or naming an unknown column or a variable not in
        ``prop``, whatever the mechanism), a level other than 1
        or 2, ``level=2`` or ``systematic`` without ``cluster``, or a systematic share
        that already exceeds the target.
    DataError
        For a level-2 variable that varies within a cluster, or incomplete or constant
        columns the model needs.
    DataTypeError
        For a non-numeric column the MAR/MNAR model needs.

    Examples
    --------
    >>> import mlimpute
    >>> df = mlimpute.datasets.classroom(2, rng=1).complete
    >>> out = mlimpute.ampute(df, "class", {"grade": 0.4, "skill": 0.2},
    ...                       mechanism={"grade": "MAR", "skill": "MCAR"},
    ...                       depends_on=["gender"], level={"grade": 1, "skill": 2}, rng=3)
    >>> round(float(out["grade"].isna().mean()), 2), bool(df["grade"].isna().any())
    (0.4, False)
    >>> bool(out.groupby("class")["skill"].apply(lambda s: s.isna().nunique() == 1).all())
    True
    """
    if not isinstance(df, pd.DataFrame):
        raise DataTypeError(f"df must be a pandas DataFrame, got {type(df).__name__}.")
    if not isinstance(prop, Mapping) or not prop:
        raise SpecificationError("prop must be a dict {column: share of missing rows}.")
    targets = list(prop)
    unknown = [c for c in targets if c not in df.columns]
    if unknown:
        raise SpecificationError(f"prop names {unknown}, which are not columns of df.")
    if cluster is not None and cluster not in df.columns:
        raise SpecificationError(f"cluster {cluster!r} is not a column of df.")
    if cluster is not None and cluster in prop:
        raise SpecificationError(f"the cluster column {cluster!r} cannot be amputed.")
    mechs = _per_variable(mechanism, targets, "mechanism", "MCAR")
    levels = _per_variable(level, targets, "level", 1)
    systs = _per_variable(systematic, targets, "systematic", 0.0)
    slopes = _per_variable(strength, targets, "strength", 1.0)
    for v in targets:
        if mechs[v] not in _MECHANISMS:
            raise SpecificationError(
                f"mechanism for {v!r} must be one of {_MECHANISMS}, got {mechs[v]!r}."
            )
    deps = _depends_on(depends_on, targets, mechs, df.columns)
    if cluster is not None:
        if df[cluster].isna().any():
            raise DataError(f"cluster {cluster!r} has missing ids.")
        codes, _ = pd.factorize(df[cluster])
        sizes = np.bincount(codes).astype(float)
    gen = as_generator(rng)
    out = df.copy()
    n = len(df)
    for v in targets:
        p = prop[v]
        if not is_real_number(p):
            raise SpecificationError(
                f"prop[{v!r}] must be a number in (0, 1), got {describe_value(p)}."
            )
        if not 0.0 < p < 1.0:
            raise SpecificationError(f"prop[{v!r}] must be in (0, 1), got {p!r}.")
        mech = mechs[v]
        lev, syst, slope = levels[v], systs[v], slopes[v]
        if lev not in (1, 2):
            raise SpecificationError(f"level for {v!r} must be 1 or 2, got {lev!r}.")
        if not is_real_number(syst):
            raise SpecificationError(
                f"systematic for {v!r} must be a number in [0, 1), got {describe_value(syst)}."
            )
        if not 0.0 <= syst < 1.0:
            raise SpecificationError(f"systematic for {v!r} must be in [0, 1), got {syst!r}.")
        if not is_real_number(slope):
            raise SpecificationError(
                f"strength for {v!r} must be a finite number, got {describe_value(slope)}."
            )
        if not np.isfinite(slope):
            raise SpecificationError(f"strength for {v!r} must be a finite number, got {slope!r}.")
        p, syst = float(p), float(syst)
        if (lev == 2 or syst > 0) and cluster is None:
            what = "level=2" if lev == 2 else "systematic"
            raise SpecificationError(f"{what} for {v!r} needs cluster=.")
        if lev == 2 and syst > 0:
            raise SpecificationError(
                f"systematic applies to level-1 variables; {v!r} is amputed for whole "
                "clusters already (level=2)."
            )
        if df[v].isna().any():
            raise DataError(f"{v!r} already has missing values; ampute complete data.")
        dep = deps[v]
        if mech == "MAR":
            if dep is None:
                raise SpecificationError(
                    f"MAR for {v!r} needs depends_on: a column name or a list of column names."
                )
            if v in dep:
                raise SpecificationError(
                    f"depends_on for {v!r} includes {v!r} itself; that is MNAR (mechanism='MNAR')."
                )
        # the score z per row
        if mech == "MCAR":
            z = np.zeros(n)
        elif mech == "MAR":
            x = np.column_stack(
                [_standardise(_numeric(df, c, "depends_on column"), c) for c in dep]
            )
            z = _standardise(x.sum(axis=1), "the sum of " + ", ".join(map(str, dep)))
        else:
            z = _standardise(_numeric(df, v, "MNAR variable"), v)
        eta = float(slope) * z if mech != "MCAR" else z
        if lev == 2:
            varies = df.groupby(codes, sort=True)[v].nunique(dropna=False).to_numpy() > 1
            if varies.any():
                first = np.flatnonzero(codes == np.flatnonzero(varies)[0])[0]
                bad_cluster = df[cluster].iloc[first]
                raise DataError(
                    f"{v!r} varies within cluster {bad_cluster!r}; level=2 deletes "
                    "cluster-level variables (constant within clusters)."
                )
            eta_j = np.bincount(codes, weights=eta) / sizes
            a = _solve_intercept(eta_j, sizes, p)
            miss = (gen.random(sizes.size) < _expit(a + eta_j))[codes]
        else:
            sys_rows = np.zeros(n, dtype=bool)
            if syst > 0:
                k = int(round(syst * sizes.size))
                chosen = gen.choice(sizes.size, size=k, replace=False)
                sys_rows = np.isin(codes, chosen)
            rest = ~sys_rows
            target = (p * n - sys_rows.sum()) / rest.sum()
            if not 0.0 < target < 1.0:
                raise SpecificationError(
                    f"systematic={syst:g} for {v!r} deletes {sys_rows.sum()} of {n} rows, "
                    f"which is already more than prop={p:g}; lower systematic or raise prop."
                )
            a = _solve_intercept(eta[rest], np.ones(int(rest.sum())), target)
            miss = sys_rows | (rest & (gen.random(n) < _expit(a + eta)))
        out[v] = _with_missing(out[v], miss)
    return out
