"""The classroom example of Jacobusse (2005): children nested in classes.

:func:`classroom` generates the three experiments of Jacobusse (2005, IMPS, Tilburg)
with their parameters. The demo, the tests, the notebooks and the benchmarks all use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from mlimpute.errors import SpecificationError
from mlimpute.rng import as_generator

__all__ = ["Classroom", "classroom", "ANALYSIS_FORMULAS", "IMPUTATION_FORMULAS"]

#: The true (complete-data) analysis model of each experiment, in lme4 syntax.
ANALYSIS_FORMULAS = {
    1: "grade ~ skill + (1 | class)",
    2: "grade ~ skill + gender + relation + (1 | class)",
    3: "grade ~ skill * gender + relation + (1 + gender || class)",
}

#: Multilevel imputation models a user would write for each experiment.
IMPUTATION_FORMULAS = {
    1: {"grade": "~ skill + (1 | class)"},
    2: {
        "relation": "~ gender + grade + skill + cmean(grade) + (1 | class)",
        "grade": "~ gender + relation + skill + cmean(relation) + (1 | class)",
    },
    3: {"grade": "~ skill * gender + relation + (1 + gender | class)"},
}


@dataclass(frozen=True)
class Classroom:
    """One generated classroom data set.

    Attributes
    ----------
    complete : pandas.DataFrame
        The data before deletion (columns ``class, skill, gender, relation, grade``).
    incomplete : pandas.DataFrame
        The same data with missing values.
    truth : dict
        Data-generating parameters, named as :meth:`MultiplyImputed.fit` names them
        (``Intercept``, ``skill``, ``var(Intercept|class)``, ``var(Residual)``...).
    experiment : int
    formula : str
        The true analysis model (lme4 syntax).
    imputation : dict
        A multilevel imputation model for the incomplete variables.
    """

    complete: pd.DataFrame
    incomplete: pd.DataFrame
    truth: dict = field(default_factory=dict)
    experiment: int = 1
    formula: str = ""
    imputation: dict = field(default_factory=dict)


def classroom(
    experiment: Literal[1, 2, 3] = 1,
    *,
    n_classes: int = 30,
    class_size: int = 20,
    rng: int | np.random.Generator | None = None,
) -> Classroom:
    """Generate one of the three classroom experiments of Jacobusse (2005).

    Children ``i`` in classes ``j``; teacher ``skill ~ N(0, 1)`` per class.

    1. Random intercepts: ``grade = 10 + 1·skill + u_j + e``, ``var(u) = D0 = 1``,
       ``var(e) = S = 4``; 40 % of ``grade`` missing completely at random.
    2. Two incomplete variables, MAR: ``gender ~ Bernoulli(.5)`` (1 = girl);
       ``relation = 0.5·gender + v_j + ε`` with ``var(v) = 0.2``, ``var(ε) = 0.8``;
       ``grade = 10 + 1·skill + 1·gender + 0.8·relation + u_j + e`` (D0 = 1, S = 4).
       ``relation`` and ``grade`` are each missing with probability .6 for boys and .2 for
       girls (40 % on average), so complete-case means of both are biased upwards.
    3. Random slope of gender with a cross-level interaction:
       ``grade = 10 + 1·skill + 1·gender + 0.5·skill·gender + 0.8·relation + u0_j +
       u1_j·gender + e`` with ``D0 = 1``, ``D1 = var(u1) = 0.5``, no covariance, ``S = 4``;
       ``relation`` as in experiment 2; 40 % of ``grade`` missing completely at random.

    Parameters
    ----------
    experiment : {1, 2, 3}
    n_classes, class_size : int
        J classes of n children (Jacobusse (2005): 30 of 20).
    rng : int, numpy.random.SeedSequence or numpy.random.Generator, optional
        Seed, seed sequence or generator.

    Returns
    -------
    Classroom

    Examples
    --------
    >>> data = classroom(1, rng=1)
    >>> data.incomplete.shape, round(float(data.incomplete["grade"].isna().mean()), 2)
    ((600, 3), 0.4)
    """
    if experiment not in (1, 2, 3):
        raise SpecificationError(f"experiment must be 1, 2 or 3, got {experiment!r}")
    if n_classes < 2 or class_size < 1:
        raise SpecificationError("need at least 2 classes of at least 1 child")
    gen = as_generator(rng)
    J, n = int(n_classes), int(class_size)
    N = J * n
    cls = np.repeat(np.arange(1, J + 1), n)
    skill_j = gen.standard_normal(J)
    skill = skill_j[cls - 1]
    df = pd.DataFrame({"class": cls, "skill": skill})

    if experiment == 1:
        truth = {"Intercept": 10.0, "skill": 1.0, "var(Intercept|class)": 1.0, "var(Residual)": 4.0}
        u = gen.normal(0.0, 1.0, J)
        df["grade"] = 10.0 + skill + u[cls - 1] + gen.normal(0.0, 2.0, N)
        incomplete = df.copy()
        incomplete.loc[_mcar(gen, N, 0.4), "grade"] = np.nan
    else:
        gender = gen.binomial(1, 0.5, N)
        v = gen.normal(0.0, np.sqrt(0.2), J)
        relation = 0.5 * gender + v[cls - 1] + gen.normal(0.0, np.sqrt(0.8), N)
        u0 = gen.normal(0.0, 1.0, J)
        grade = 10.0 + skill + gender + 0.8 * relation + u0[cls - 1] + gen.normal(0.0, 2.0, N)
        truth = {"Intercept": 10.0, "skill": 1.0, "gender": 1.0, "relation": 0.8}
        if experiment == 3:
            u1 = gen.normal(0.0, np.sqrt(0.5), J)
            grade = grade + (0.5 * skill + u1[cls - 1]) * gender
            truth = {
                "Intercept": 10.0,
                "skill": 1.0,
                "gender": 1.0,
                "skill:gender": 0.5,
                "relation": 0.8,
                "var(Intercept|class)": 1.0,
                "var(gender|class)": 0.5,
                "var(Residual)": 4.0,
            }
        else:
            truth.update({"var(Intercept|class)": 1.0, "var(Residual)": 4.0})
        df["gender"] = gender
        df["relation"] = relation
        df["grade"] = grade
        incomplete = df.copy()
        if experiment == 2:
            p_miss = np.where(gender == 0, 0.6, 0.2)
            incomplete.loc[gen.random(N) < p_miss, "relation"] = np.nan
            incomplete.loc[gen.random(N) < p_miss, "grade"] = np.nan
        else:
            incomplete.loc[_mcar(gen, N, 0.4), "grade"] = np.nan
    return Classroom(
        df,
        incomplete,
        truth,
        experiment,
        ANALYSIS_FORMULAS[experiment],
        dict(IMPUTATION_FORMULAS[experiment]),
    )


def _mcar(gen: np.random.Generator, n: int, fraction: float) -> np.ndarray:
    """Exactly ``round(fraction·n)`` rows, chosen completely at random."""
    mask = np.zeros(n, dtype=bool)
    mask[gen.choice(n, size=int(round(fraction * n)), replace=False)] = True
    return mask
