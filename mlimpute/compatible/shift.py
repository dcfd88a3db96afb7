"""δ-adjustment (sensitivity to missing not at random) in model-based imputation.

The pattern-mixture reading of NARFCS (Leacy et al. 2017; Tompsett et al. 2018): the
missing values of a shifted variable x are ``x = x* + δ`` (plus ``u_j``, one shift per
cluster, with ``delta_cluster_sd=``), where ``x*`` follows the missing-at-random model.
In model-based imputation x's own model is updated from its *completed* column, so the
chain carries two versions of x's missing values:

* ``x*`` (unshifted) is what x's own model sees: its parameter update, and its factor
  ``N(x*; μ_x, σ_x²)`` in x's full conditional; a model in which x is the *response*
  (an earlier predictor's model in the factorisation, x's own model) always sees x*;
* ``x = x* + δ`` is what every other model sees: the analysis model and the models of the
  predictors that take x as a predictor, and the completed data sets.

The full conditional of x* is

    p(x* | rest) ∝ N(x*; μ_x, σ_x²) · f(y | η(x* + δ)) · Π_m p_m(v_m | η_m(x* + δ)),

so x = x* + δ has the full conditional of the unshifted sampler with x's own mean moved
to ``μ_x + δ``:

    p(x | rest) ∝ N(x; μ_x + δ, σ_x²) · f(y | η(x)) · Π_m p_m(v_m | η_m(x)).

The closed form (:func:`shifted_moments`), the Metropolis–Hastings target and the
level-2 draw (the mean of the cluster's own model moved by ``δ + u_j``) all follow from it;
x* is then ``x − δ``. Without this split the shifted values would feed back into x's own
model and the shift would compound from iteration to iteration.

A missing outcome is drawn from the analysis model (whose parameters use the observed
outcomes only) and shifted; a binary outcome on its latent (probit) scale, through the
intercept of the analysis model. Columns outside the analysis model (imputed by chained
defaults with ``cluster=``) are shifted as on the chained path. Categorical predictors of
model-based imputation and latent cluster means ``lmean()`` cannot be shifted yet (their
models are fitted to the completed categories or to the drawn cluster means, where the
unshifted values are not defined); both are refused by name.

References
----------
Leacy, F. P., Floyd, S., Yates, T. A. & White, I. R. (2017). *American Journal of
Epidemiology* 185(4), 304–315.
Tompsett, D. M., Leacy, F., Moreno-Betancur, M., Heron, J. & White, I. R. (2018).
*Statistics in Medicine* 37(15), 2338–2353.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from mlimpute.compatible.conditionals import LinearTerm, conditional_moments
from mlimpute.errors import SpecificationError, UnsupportedError

if TYPE_CHECKING:  # pragma: no cover
    from mlimpute.sampler.engine import Plan

__all__ = ["shifted_moments", "check_model_delta", "check_plan_shifts", "ModelShifts"]


def shifted_moments(
    mu_x: np.ndarray,
    sigma2_x: float | np.ndarray,
    terms: Sequence[LinearTerm],
    shift: np.ndarray | float,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of the shifted value ``x = x* + δ`` of a missing predictor.

    x* has the full conditional ``N(x*; μ_x, σ_x²) Π_m N(v_m; a_m + c_m (x* + δ), σ_m²)``
    (its own model at x*, every model it predicts at the shifted value); x = x* + δ is
    then normal with the moments of :func:`~mlimpute.compatible.conditional_moments` at
    the own mean ``μ_x + δ``.

    Parameters
    ----------
    mu_x : ndarray, shape (n,)
        Mean of x's own (missing-at-random) model per row.
    sigma2_x : float or ndarray
        Residual variance of x's own model.
    terms : sequence of LinearTerm
        The models in which x enters linearly, as functions of the shifted x.
    shift : float or ndarray, shape (n,)
        δ (plus the cluster's shift) per row.

    Returns
    -------
    mean, var : ndarray, shape (n,)
        Of x; x* has mean ``mean − shift`` and the same variance.

    Examples
    --------
    >>> t = LinearTerm(np.array([2.0]), np.array([0.0]), 1.0, 1.0)
    >>> shifted_moments(np.array([0.0]), 1.0, [t], 1.0)
    (array([1.5]), array([0.5]))
    """
    mu = np.asarray(mu_x, dtype=float) + shift
    return conditional_moments(mu, sigma2_x, terms)


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
        The categorical predictors of the factorisation (not shifted yet).
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
                    "imputation is not supported yet (its latent model is fitted to the "
                    "completed categories); shifts apply to continuous predictors and "
                    "auxiliaries, the outcome and the columns imputed by chained defaults "
                    "so far"
                )
    kept = tuple((v.name, float(delta[v.name])) for v in variables if delta.get(v.name, 0.0))
    kept_sd = tuple(
        (v.name, float(cluster_sd[v.name])) for v in variables if cluster_sd.get(v.name, 0.0)
    )
    return kept, kept_sd


def check_plan_shifts(plan: Plan) -> None:
    """Shifts on the linear predictor (a binary outcome, categorical columns imputed by
    chained defaults) need an intercept, and per-cluster ones a random intercept:
    :class:`~mlimpute.errors.SpecificationError` naming the variable otherwise (before
    any chain starts).

    Examples
    --------
    >>> check_plan_shifts.__name__
    'check_plan_shifts'
    """
    from mlimpute.sampler.engine import latent_shifts

    latent_shifts(plan)


class ModelShifts:
    """The shifts of one model-based chain: per shifted variable, the shift of each missing
    row (a level-1 variable, ``δ + u_j`` of the row's cluster) or of each cluster (a
    level-2 variable, length J).

    Parameters
    ----------
    plan : Plan
        The chain's plan.
    seed : numpy.random.SeedSequence
        The chain's seed: the per-cluster shifts come from a generator of their own
        derived from it (as on the chained path), the same at every iteration and when the
        chain is continued; the chain's other draws are those of a run without.

    Examples
    --------
    >>> ModelShifts.__name__
    'ModelShifts'
    """

    def __init__(self, plan: Plan, seed: np.random.SeedSequence | None) -> None:
        from mlimpute.sampler.engine import cluster_shifts, latent_shifts

        spec = plan.spec
        delta = dict(spec.delta)
        u = cluster_shifts(plan, seed) if spec.delta_cluster_sd else {}
        names = [n for n in plan.names if n in delta or n in dict(spec.delta_cluster_sd)]
        #: shifts on the linear predictor: (intercept index, δ, random-intercept index)
        self.latent = latent_shifts(plan)
        #: the per-cluster shifts u_j of each variable of ``delta_cluster_sd``
        self.cluster = u
        codes = plan.layout.codes
        self.level2 = {v.name for v in spec.variables if v.level == 2}
        self.rows: dict[str, np.ndarray] = {}  # missing rows (sorted order)
        self.shift: dict[str, np.ndarray] = {}
        J = plan.layout.segments.n_clusters
        for name in names:
            if name in self.latent:
                continue
            d = float(delta.get(name, 0.0))
            if name in self.level2:
                s = np.full(J, d)
                if name in u:
                    s = s + u[name]
            else:
                rows = plan.missing_rows(name)
                self.rows[name] = rows
                s = np.full(rows.size, d)
                if name in u:
                    s = s + u[name][codes[rows]]
            self.shift[name] = s

    def draw_missing(self, rng, name: str, model, state, d, mis_idx: np.ndarray):
        """``model.draw_missing`` for column ``name`` (the outcome, or a column imputed by
        chained defaults), shifted: on the linear predictor for a latent model, else added
        to the draws (``mis_idx``: the missing rows, or clusters of a level-2 column)."""
        if name in self.latent:
            from mlimpute.sampler.engine import shift_intercept

            index, delta, zi = self.latent[name]
            u = self.cluster.get(name)
            return model.draw_missing(rng, shift_intercept(state, index, delta, zi, u), d)
        draw = model.draw_missing(rng, state, d)
        if name not in self.shift:
            return draw
        if name in self.level2:
            return draw + self.shift[name][mis_idx]
        return draw + self.shift[name]

    def __contains__(self, name: str) -> bool:
        return name in self.shift

    def __bool__(self) -> bool:
        return bool(self.shift)

    def shift_start(self, names, values, mis_clusters) -> None:
        """A new chain's start values of the missing values are x*: the chain carries
        x = x* + δ (no random numbers; ``names`` are the predictors of the factorisation)."""
        for name in names:
            if name not in self.shift:
                continue
            if name in self.level2:
                s = np.where(mis_clusters[name], self.shift[name], 0.0)
                values[name] = values[name] + s[values.layout.codes]
            else:
                x = values[name].copy()
                x[self.rows[name]] += self.shift[name]
                values[name] = x
            values.touch(name)

    def unshifted(self, name: str, values, first: np.ndarray, missing_clusters=None):
        """x's column with its missing values unshifted (x*): a new array for a shifted
        variable (all rows; a level-2 one repeated over the rows of each cluster), the
        column itself otherwise."""
        v = values[name]
        if name not in self.shift:
            return v
        out = v.copy()
        if name in self.level2:
            s = np.where(missing_clusters, self.shift[name], 0.0)
            out = out - s[values.layout.codes]
        else:
            out[self.rows[name]] -= self.shift[name]
        return out

    def responses(self, names, values, first, mis_clusters) -> dict[str, np.ndarray]:
        """``{p: p*}`` for the shifted variables among ``names`` (the responses of the
        models in which another predictor is a predictor)."""
        return {
            p: self.unshifted(p, values, first, mis_clusters.get(p))
            for p in names
            if p in self.shift
        }
