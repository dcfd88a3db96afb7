"""Small data sets with several random-effect terms, as a model sees them.

:func:`term_data` builds the model data of a response with a primary term and further
terms (plain arrays, rows sorted by the primary clusters) for tests, benchmarks and
examples of :class:`~mlimpute.models.ml_multi.MultiTermNorm`;
:func:`example_three_level` and :func:`example_crossed` simulate the two standard cases.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mlimpute.models.base import ExtraTerm
from mlimpute.models.segments import Segments
from mlimpute.models.testing import ArrayBlock, ArrayModelData

__all__ = [
    "MultiArrayModelData",
    "term_data",
    "example_three_level",
    "example_crossed",
]


@dataclass(frozen=True)
class MultiArrayModelData(ArrayModelData):
    """:class:`~mlimpute.models.testing.ArrayModelData` with further random-effect terms."""

    #: what a simulation drew: realised variances of the effects (``var(Intercept|school)``)
    simulated: dict[str, float] = field(default_factory=dict, repr=False, compare=False)


def _block(names: list[str], M: np.ndarray, obs: np.ndarray, mis: np.ndarray) -> ArrayBlock:
    return ArrayBlock(list(names), np.asfortranarray(M[obs]), np.asfortranarray(M[mis]))


def _contains(outer: np.ndarray, inner: np.ndarray) -> bool:
    """Whether every ``inner`` cluster lies within one ``outer`` cluster."""
    pairs = np.unique(np.column_stack([inner, outer]), axis=0)
    return bool(np.unique(pairs[:, 0]).size == pairs.shape[0])


def term_data(
    y: np.ndarray,
    X: np.ndarray,
    x_names: list[str],
    primary: tuple[str, np.ndarray, np.ndarray, list[str]],
    extra: list[tuple[str, np.ndarray, np.ndarray, list[str]]],
    observed: np.ndarray | None = None,
    correlated: bool = True,
    simulated: dict[str, float] | None = None,
) -> MultiArrayModelData:
    """Model data for ``y`` on fixed design ``X`` with several random-effect terms.

    Parameters
    ----------
    y : ndarray, shape (n,)
    X : ndarray, shape (n, p)
    x_names : list of str
    primary : (group, codes, Z, z_names)
        The primary (innermost) term: its cluster codes ``0..J-1`` and random design.
    extra : list of (group, codes, Z, z_names)
        The further terms.
    observed : ndarray of bool, optional
        Where y is observed (default everywhere).
    correlated : bool
        Whether each term's random effects form one correlated block.
    simulated : dict, optional
        Stored as the data's ``simulated`` attribute.

    Returns
    -------
    MultiArrayModelData
        Rows sorted by the primary clusters; nesting of each further term in or around the
        primary term detected from the codes.

    Examples
    --------
    >>> d = example_three_level(n_schools=4, classes=2, pupils=3, rng=0)
    >>> d.n_clusters, d.extra_terms[0].n_clusters, d.extra_terms[0].contains_primary
    (8, 4, True)
    """
    n = y.shape[0]
    group0, codes0, Z0, zn0 = primary
    order = np.argsort(codes0, kind="stable")
    observed = np.ones(n, bool) if observed is None else np.asarray(observed, bool)
    obs = order[observed[order]]
    mis = order[~observed[order]]
    J0 = int(codes0.max()) + 1
    terms = []
    for group, codes, Z, zn in extra:
        J = int(codes.max()) + 1
        q = Z.shape[1]
        contains = _contains(codes, codes0)
        parent = None
        if contains:
            parent = np.full(J0, -1, dtype=np.intp)
            parent[codes0] = codes
        terms.append(
            ExtraTerm(
                group,
                _block(zn, Z, obs, mis),
                codes[obs].astype(np.intp),
                codes[mis].astype(np.intp),
                J,
                (tuple(range(q)),) if correlated else tuple((i,) for i in range(q)),
                (True,) if correlated else (False,) * q,
                nested_in_primary=_contains(codes0, codes),
                contains_primary=contains,
                parent=parent,
            )
        )
    q0 = Z0.shape[1]
    return MultiArrayModelData(
        "y",
        np.asarray(y, float)[obs],
        np.flatnonzero(observed[order]),
        np.flatnonzero(~observed[order]),
        _block(x_names, X, obs, mis),
        _block(zn0, Z0, obs, mis),
        Segments.from_codes(codes0[obs], J0),
        codes0[mis].astype(np.intp),
        J0,
        group0,
        (tuple(range(q0)),) if correlated else tuple((i,) for i in range(q0)),
        (True,) if correlated else (False,) * q0,
        extra_terms=tuple(terms),
        simulated=dict(simulated or {}),
    )


def example_three_level(
    n_schools: int = 30,
    classes: int = 4,
    pupils: int = 10,
    var_school: float = 0.5,
    var_class: float = 0.3,
    sigma2: float = 1.0,
    missing: float = 0.2,
    rng: int = 0,
) -> MultiArrayModelData:
    """Pupils in classes in schools: ``y = 1 + 0.5x + u_school + u_class + e``.

    Random intercepts for class (primary term) and school; a fraction ``missing`` of y
    missing completely at random.

    Examples
    --------
    >>> d = example_three_level(n_schools=3, classes=2, pupils=4, rng=1)
    >>> d.n_obs + d.n_mis, d.extra_terms[0].group
    (24, 'school')
    """
    gen = np.random.default_rng(rng)
    n_cls = n_schools * classes
    school = np.repeat(np.arange(n_schools), classes * pupils)
    klass = np.repeat(np.arange(n_cls), pupils)
    n = school.size
    x = gen.standard_normal(n)
    u_s = gen.normal(0, np.sqrt(var_school), n_schools)
    u_c = gen.normal(0, np.sqrt(var_class), n_cls)
    e = gen.normal(0, np.sqrt(sigma2), n)
    y = 1 + 0.5 * x + u_s[school] + u_c[klass] + e
    one = np.ones((n, 1))
    realised = {
        "var(Intercept|school)": float(u_s.var()),
        "var(Intercept|class)": float(u_c.var()),
        "var(Residual)": float(e.var()),
    }
    observed = gen.random(n) >= missing
    return term_data(
        y,
        np.column_stack([np.ones(n), x]),
        ["Intercept", "x"],
        ("class", klass, one, ["Intercept"]),
        [("school", school, one, ["Intercept"])],
        observed,
        simulated=realised,
    )


def example_crossed(
    n_a: int = 40,
    n_b: int = 30,
    n: int = 1200,
    var_a: float = 0.3,
    var_b: float = 0.3,
    sigma2: float = 1.0,
    missing: float = 0.0,
    rng: int = 0,
) -> MultiArrayModelData:
    """Two crossed factors (schools ``a`` × neighbourhoods ``b``), rows at random cells:
    ``y = 1 + 0.5x + u_a + u_b + e``.

    Examples
    --------
    >>> d = example_crossed(n_a=5, n_b=4, n=60, rng=0)
    >>> d.group, d.extra_terms[0].group, d.extra_terms[0].contains_primary
    ('a', 'b', False)
    """
    gen = np.random.default_rng(rng)
    a = np.r_[np.arange(n_a), gen.integers(0, n_a, n - n_a)]
    b = np.r_[np.arange(n_b), gen.integers(0, n_b, n - n_b)][gen.permutation(n)]
    x = gen.standard_normal(n)
    u_a = gen.normal(0, np.sqrt(var_a), n_a)
    u_b = gen.normal(0, np.sqrt(var_b), n_b)
    e = gen.normal(0, np.sqrt(sigma2), n)
    y = 1 + 0.5 * x + u_a[a] + u_b[b] + e
    one = np.ones((n, 1))
    realised = {
        "var(Intercept|a)": float(u_a.var()),
        "var(Intercept|b)": float(u_b.var()),
        "var(Residual)": float(e.var()),
    }
    return term_data(
        y,
        np.column_stack([np.ones(n), x]),
        ["Intercept", "x"],
        ("a", a, one, ["Intercept"]),
        [("b", b, one, ["Intercept"])],
        gen.random(n) >= missing,
        simulated=realised,
    )
