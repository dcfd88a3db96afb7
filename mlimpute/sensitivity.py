"""Sensitivity to data missing not at random: δ-adjustment and the tipping-point table.

Under "missing at random" the imputations follow the observed data. If the missing values
of a variable may be systematically higher or lower than that (missing not at random),
the δ-adjustment of Leacy et al. (2017) and Tompsett et al. (2018) shifts every value
drawn for it by δ inside the chain (so the other variables' models see the shifted
values) and repeats the analysis over a range of δ: the δ at which a conclusion changes
(the tipping point) says how strong a departure from missing at random it takes.

With model-based imputation (``model=``) the same shift is the pattern-mixture model
``x_mis = x* + δ`` with x* from the missing-at-random model: x's own model is fitted to
the unshifted x*, the analysis model and the other predictors' models see x* + δ
(:mod:`mlimpute.compatible.shift`); the analysis defaults to the model itself.

References
----------
Leacy, F. P., Floyd, S., Yates, T. A. & White, I. R. (2017). Analyses of sensitivity to
the missing-at-random assumption using multiple imputation with delta adjustment:
application to a tuberculosis/HIV prevalence survey with incomplete HIV-status data.
*American Journal of Epidemiology* 185(4), 304–315.
Tompsett, D. M., Leacy, F., Moreno-Betancur, M., Heron, J. & White, I. R. (2018). On the
use of the not-at-random fully conditional specification (NARFCS) procedure in practice.
*Statistics in Medicine* 37(15), 2338–2353.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlimpute.errors import SpecificationError
from mlimpute.impute import impute
from mlimpute.spec.arguments import check_delta
from mlimpute.spec.build import build_spec
from mlimpute.spec.formula import lmean_column, parse_formula
from mlimpute.spec.model import build_model_spec

__all__ = ["sensitivity", "SensitivityResult"]

#: the impute() arguments that shape the specification (checked once, before any chain)
_SPEC_ARGUMENTS = (
    "iterations",
    "method",
    "visit",
    "cluster",
    "include",
    "exclude",
    "heteroscedastic",
    "max_categories",
    "delta_cluster_sd",
)
_COLUMNS = ["delta", "term", "estimate", "se", "ci_low", "ci_high", "p"]


@dataclass
class SensitivityResult:
    """The pooled analysis for each shift δ of one variable's imputed values.

    Attributes
    ----------
    variable : str
        The shifted variable.
    table : pandas.DataFrame
        One row per δ and term: ``delta, term, estimate, se, ci_low, ci_high, p``.
    results : dict
        δ → the :class:`~mlimpute.PooledResult` of the analysis at that δ.
    analysis : str
        The analysis formula.
    alpha : float
        ``ci_low``/``ci_high`` bound two-sided ``1 - alpha`` intervals.
    """

    variable: str
    table: pd.DataFrame
    results: dict[float, Any] = field(repr=False)
    analysis: str = ""
    alpha: float = 0.05

    def __repr__(self) -> str:
        deltas = ", ".join(f"{d:g}" for d in self.results)
        return (
            f"SensitivityResult({self.analysis!r}, {self.variable} shifted by δ = {deltas})\n"
            f"{self.table.to_string(index=False)}"
        )

    def plot(self, term: str, ax=None):
        """The tipping-point figure: the pooled estimate of ``term`` with its interval
        against δ, and a horizontal line at 0.

        Parameters
        ----------
        term : str
            A term of the analysis (a value of ``table["term"]``).
        ax : matplotlib.axes.Axes, optional
            Draw here (default: a new figure).

        Returns
        -------
        matplotlib.axes.Axes

        Examples
        --------
        >>> import mlimpute
        >>> df = mlimpute.datasets.classroom(1, rng=1).incomplete
        >>> res = mlimpute.sensitivity(df, {"grade": "~ skill + (1 | class)"},
        ...     delta={"grade": [-1, 0]}, analysis="grade ~ skill + (1 | class)",
        ...     m=2, iterations=3, rng=1)
        >>> ax = res.plot("Intercept")
        """
        rows = self.table[self.table["term"] == term]
        if rows.empty:
            terms = list(dict.fromkeys(self.table["term"]))
            raise SpecificationError(f"term {term!r} is not in the analysis; terms: {terms}")
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5))
        x = rows["delta"].to_numpy(dtype=float)
        est = rows["estimate"].to_numpy(dtype=float)
        lo, hi = rows["ci_low"].to_numpy(dtype=float), rows["ci_high"].to_numpy(dtype=float)
        ax.fill_between(x, lo, hi, alpha=0.2, color="C0", lw=0)
        ax.plot(x, est, "o-", color="C0", label="estimate")
        ax.plot(x, lo, color="C0", lw=0.8, ls="--", label=f"{1 - self.alpha:.0%} interval")
        ax.plot(x, hi, color="C0", lw=0.8, ls="--")
        ax.axhline(0.0, color="0.3", lw=0.8)
        ax.set_xlabel(f"δ (shift of the imputed {self.variable})")
        ax.set_ylabel(term)
        ax.set_title(f"Sensitivity of {term!r} to δ", fontsize="medium")
        ax.legend(frameon=False, fontsize="small")
        return ax


def sensitivity(
    df: pd.DataFrame,
    formulas: Mapping[str, str] | Sequence[str] | None = None,
    *,
    model: str | None = None,
    delta: Mapping[str, Any],
    analysis: str | None = None,
    m: int = 20,
    rng: int | np.random.SeedSequence | np.random.Generator | None = 1,
    alpha: float = 0.05,
    **impute_kwargs: Any,
) -> SensitivityResult:
    """Repeat an imputation and analysis over shifts δ of one variable's imputed values.

    For each δ, :func:`mlimpute.impute` runs with ``delta={variable: δ}`` and the same
    random numbers (the same ``rng``), and ``analysis`` is fitted and pooled; δ = 0 gives
    exactly the analysis without a shift. See :mod:`mlimpute.sensitivity` for the method.

    Parameters
    ----------
    df : DataFrame
        The incomplete data; never modified.
    formulas : dict or list of str, optional
        The imputation models, as for :func:`mlimpute.impute`.
    model : str, optional
        The analysis model of a model-based imputation (``impute(model=...)``) instead
        of ``formulas``: the shifted variable is a continuous or binary predictor or
        auxiliary of it, or its outcome (see :func:`mlimpute.impute` for what can be
        shifted).
    delta : dict
        ``{"grade": [-1, -0.5, 0, 0.5]}``: one incomplete variable and the shifts to try (a
        single number is one shift): added to the imputed values of a continuous numeric
        variable, to the linear predictor (latent or log scale) of a variable imputed with
        a probit, logit, ordinal, nominal or count model. For an integer column imputed by
        predictive mean matching (``pmm``, ``2l.pmm``, ``2lonly.pmm``) every shift must be
        a whole number (its completed values are rounded to integers), and
        ``delta_cluster_sd`` is refused.
    analysis : str, optional
        The analysis model, as for :meth:`MultiplyImputed.fit
        <mlimpute.MultiplyImputed.fit>`; with ``model=`` it defaults to the model.
    m : int, default 20
        Imputations per δ.
    rng : int, numpy.random.SeedSequence or numpy.random.Generator, default 1
        The random seed, the same for every δ (None: fresh entropy, drawn once).
    alpha : float, default 0.05
        The intervals are two-sided ``1 - alpha`` intervals.
    **impute_kwargs
        Further arguments of :func:`mlimpute.impute` (``iterations``, ``cluster``,
        ``method``, ``n_jobs``, ``delta_cluster_sd`` for per-cluster shifts around each
        δ...).

    Returns
    -------
    SensitivityResult
        ``.table`` (one row per δ and term), ``.plot(term)`` (the tipping-point figure)
        and ``.results`` (the pooled result per δ).

    Raises
    ------
    SpecificationError, UnsupportedError
        On a bad ``delta`` (unknown or complete column, a model that cannot be shifted,
        values that are not numbers, a shift that is not a whole number of an integer
        column imputed by predictive mean matching) or ``analysis``, before any chain
        starts.

    Examples
    --------
    >>> import mlimpute
    >>> df = mlimpute.datasets.classroom(1, rng=1).incomplete
    >>> res = mlimpute.sensitivity(df, {"grade": "~ skill + (1 | class)"},
    ...     delta={"grade": [-0.5, 0, 0.5]}, analysis="grade ~ skill + (1 | class)",
    ...     m=2, iterations=3, rng=1)
    >>> res.table.shape
    (6, 7)

    With model-based imputation the analysis defaults to the model:

    >>> import numpy as np, pandas as pd
    >>> r = np.random.default_rng(0)
    >>> d = pd.DataFrame({"g": np.repeat(range(20), 5), "x": r.normal(size=100)})
    >>> d["y"] = d.x + r.normal(size=100)
    >>> d.loc[::4, "x"] = np.nan
    >>> res = mlimpute.sensitivity(d, model="y ~ x + (1 + x | g)", delta={"x": [-1, 0]},
    ...     m=2, iterations=3, rng=1)
    >>> res.analysis
    'y ~ x + (1 + x | g)'
    """
    variable, shifts = _check_shifts(delta)
    if analysis is None and isinstance(model, str):
        analysis = model
    if analysis is None:
        raise SpecificationError(
            "analysis is missing: give the analysis model, e.g. analysis='grade ~ skill + "
            "(1 | class)' (with model= it defaults to the model)"
        )
    if not isinstance(analysis, str):
        raise SpecificationError(
            f"analysis must be a model formula such as 'grade ~ skill + (1 | class)', got "
            f"{type(analysis).__name__}"
        )
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise SpecificationError(f"alpha must be a number between 0 and 1, got {alpha!r}")
    parsed = parse_formula(analysis)
    unknown = sorted(parsed.variables - set(df.columns) - {lmean_column(x) for x in parsed.lmeans})
    if unknown:
        raise SpecificationError(f"analysis {analysis!r} refers to unknown column(s) {unknown}")
    # the specification at one non-zero shift, so that every argument is checked before
    # any chain: the first shift that is not a whole number if the grid has one (an integer
    # column imputed by predictive mean matching takes whole shifts only), else the largest
    checked = next((d for d in shifts if not d.is_integer()), max(shifts, key=abs))
    spec_kwargs = {k: impute_kwargs[k] for k in _SPEC_ARGUMENTS if k in impute_kwargs}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the runs below warn again
        if model is None:
            build_spec(df, formulas, m=m, delta={variable: checked}, **spec_kwargs)
        else:
            if "auxiliary" in impute_kwargs:
                spec_kwargs["auxiliary"] = impute_kwargs["auxiliary"]
            spec_kwargs.setdefault("iterations", 20)
            if "max_categories" in spec_kwargs:
                del spec_kwargs["max_categories"]  # not an argument of model=
            build_model_spec(
                df,
                model,
                spec_kwargs.pop("auxiliary", None),
                m=m,
                formulas=formulas,
                delta={variable: checked},
                **spec_kwargs,
            )
    if model is not None:
        impute_kwargs["model"] = model
    seed = _fixed(rng)
    results: dict[float, Any] = {}
    rows = []
    for d in shifts:
        imp = impute(df, formulas, m=m, rng=seed(), delta={variable: d}, **impute_kwargs)
        res = imp.fit(analysis)
        results[d] = res
        s = res.summary(alpha=alpha)
        tab = pd.DataFrame(
            {
                "delta": d,
                "term": s.index.astype(object),
                **{c: s[c].to_numpy(dtype=float) for c in _COLUMNS[2:]},
            }
        )
        rows.append(tab)
    table = pd.concat(rows, ignore_index=True)[_COLUMNS]
    return SensitivityResult(variable, table, results, analysis, float(alpha))


def _check_shifts(delta) -> tuple[str, list[float]]:
    """``{"grade": [-1, 0, 1]}`` → ("grade", [-1.0, 0.0, 1.0]), checked."""
    if not isinstance(delta, Mapping) or len(delta) != 1:
        raise SpecificationError(
            "delta must name one variable and its shifts, e.g. {'grade': [-1, -0.5, 0, 0.5]}"
            f", got {delta!r}"
        )
    ((variable, values),) = delta.items()
    if isinstance(values, (str, bytes)) or not np.iterable(values):
        values = [values]
    values = list(values)
    if not values:
        raise SpecificationError(f"delta for {variable!r} gives no shifts")
    shifts = [check_delta({variable: v})[variable] for v in values]
    if len(set(shifts)) != len(shifts):
        raise SpecificationError(f"delta for {variable!r} repeats a shift: {values!r}")
    return variable, shifts


def _fixed(rng):
    """A function returning, at each call, an ``rng`` that gives the same chains."""
    if rng is None:
        entropy = int(np.random.SeedSequence().entropy)
        return lambda: entropy
    if isinstance(rng, np.random.Generator):
        seq = rng.bit_generator.seed_seq
        if not isinstance(seq, np.random.SeedSequence):
            raise SpecificationError("rng's bit generator has no SeedSequence to spawn from")
        rng = seq
    if isinstance(rng, np.random.SeedSequence):
        seq = rng
        return lambda: np.random.SeedSequence(
            seq.entropy,
            spawn_key=seq.spawn_key,
            pool_size=seq.pool_size,
            n_children_spawned=seq.n_children_spawned,
        )
    return lambda: rng
