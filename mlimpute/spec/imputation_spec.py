"""The frozen specification classes: :class:`ImputationSpec` (a validated imputation
specification) and :class:`VariableSpec` (how one incomplete variable is imputed).

:func:`~mlimpute.spec.build.build_spec` makes them; the names are also importable from
:mod:`mlimpute.spec.build`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from mlimpute.spec.formula import ParsedFormula, factor_columns

__all__ = ["ImputationSpec", "VariableSpec", "MethodArgument", "refuse_completion"]

#: what the specification of an ``impute_new()`` result is (shown by its repr)
COMPLETION_NOTE = (
    "completion of new rows (impute_new()): parameters fixed at the final states of the "
    "trained chains; iterations = sweeps over the new rows' missing cells, seed = the rng "
    "of impute_new()"
)


def refuse_completion(spec: ImputationSpec) -> None:
    """Refuse to write a specification file of an ``impute_new()`` result: it would
    repeat neither the training run nor the completion of the new rows."""
    if getattr(spec, "completion", False):
        from mlimpute.errors import SpecificationError

        raise SpecificationError(
            "this is the specification of a completion of new rows (impute_new()): its "
            "parameters were fixed at the final states of the trained chains, and "
            "iterations and seed are those of the completion, so no specification file "
            "repeats it. Save the training result's specification instead "
            "(imp.spec.to_toml() of the result impute_new() was called on)"
        )


#: What ``method={column: ...}`` takes: a model name, ``(name, {option: value})`` or
#: ``{"method": name, option: value}`` (the form of specification files).
MethodArgument = str | tuple[str, Mapping[str, Any]] | Mapping[str, Any]


@dataclass(frozen=True)
class VariableSpec:
    """How one incomplete variable is imputed."""

    name: str
    formula: ParsedFormula
    method: str
    level: int = 1
    #: keyword options of the model, ``(("prior", "iw"),)``
    options: tuple[tuple[str, Any], ...] = ()

    def __str__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.options)
        return f"{self.name}: {self.formula} [{self.method}{opts}]"

    @property
    def method_argument(self) -> MethodArgument:
        """The model as ``method=`` takes it: the name, or ``(name, options)``."""
        return (self.method, dict(self.options)) if self.options else self.method


@dataclass(frozen=True)
class ImputationSpec:
    """A validated imputation specification.

    Attributes
    ----------
    variables : tuple of VariableSpec
        In visit order.
    cluster : str or None
        The grouping factor shared by the multilevel models (with several grouping
        factors: the innermost level, e.g. ``class`` or ``school:class``).
    m, iterations : int
    seed : int or None
        Root entropy that reproduces the run (``rng=seed``), when known.
    spawn_key : tuple of int
        With :attr:`seed`, the spawn key of the SeedSequence the run was given (a child
        of ``SeedSequence(seed).spawn(...)``, as simulation studies hand out): then
        ``rng=numpy.random.SeedSequence(seed, spawn_key=spawn_key)`` (:attr:`rng`)
        reproduces the run. Empty for ``rng=seed``.
    events : tuple of str
        Non-fatal decisions taken while validating (unused formulas...).
    model : ParsedFormula or None
        The analysis model of model-based imputation (``impute(model=...)``): then
        ``variables`` are the models of its incomplete predictors in the order of the
        factorisation (each conditional on the ones after it), and the outcome, whose
        missing values are drawn from the analysis model itself.
    auxiliary : tuple of str
        Auxiliary columns of model-based imputation (predictors in every predictor's
        model).
    family : str or None
        The analysis model's count family of model-based imputation
        (``impute(model=..., family="poisson")``), else None.
    delta : tuple of (str, float)
        Sensitivity shifts (``impute(delta=...)``): each drawn value of the variable is
        shifted by this amount within the chain. Shifts of 0 are not kept.
    delta_cluster_sd : tuple of (str, float)
        Cluster-level shifts (``impute(delta_cluster_sd=...)``): each chain draws one
        shift per cluster from N(0, sd²), added to the variable's imputed values in that
        cluster. SDs of 0 are not kept.
    completion : bool
        True for the result of ``imp.impute_new(new_df)``: the training run's models
        completing new rows with their parameters fixed at the final states of the trained
        chains; ``iterations`` are then the sweeps over the new rows and ``seed`` the
        ``rng`` of ``impute_new()``. No specification file repeats such a result, so
        :meth:`to_toml` refuses it (save the training result's specification instead).
    """

    variables: tuple[VariableSpec, ...]
    cluster: str | None
    m: int
    iterations: int
    seed: int | None = None
    events: tuple[str, ...] = field(default=())
    #: the analysis model of model-based imputation (``impute(model=...)``), else None
    model: ParsedFormula | None = None
    #: auxiliary columns of model-based imputation
    auxiliary: tuple[str, ...] = ()
    #: the analysis model's count family of model-based imputation (``"poisson"``,
    #: ``"negative_binomial"``); None: normal, or probit for a binary outcome
    family: str | None = None
    #: sensitivity shifts of the imputed values, ``(("grade", -0.5),)``
    delta: tuple[tuple[str, float], ...] = ()
    #: SD of the per-cluster shifts of the imputed values, ``(("grade", 0.3),)``
    delta_cluster_sd: tuple[tuple[str, float], ...] = ()
    #: grouping factors besides ``cluster`` (three-level and cross-classified data):
    #: the enclosing levels outermost first, then crossed factors
    factors: tuple[str, ...] = ()
    #: the nested levels' grouping factors, outermost first, ``cluster`` last
    #: (``("school", "class")``); empty for two-level data
    hierarchy: tuple[str, ...] = ()
    #: how the grouping factors relate, as found in the data (shown by ``repr``)
    structure: tuple[str, ...] = ()
    #: with ``seed``: the spawn key of the SeedSequence the run was given (see above)
    spawn_key: tuple[int, ...] = ()
    #: the specification of an ``impute_new()`` result (see above)
    completion: bool = False

    @property
    def rng(self) -> int | np.random.SeedSequence | None:
        """``rng=`` that reproduces the run: :attr:`seed`, or with a :attr:`spawn_key` the
        SeedSequence ``SeedSequence(seed, spawn_key=spawn_key)``; None if not recorded."""
        if self.seed is None or not self.spawn_key:
            return self.seed
        return np.random.SeedSequence(self.seed, spawn_key=self.spawn_key)

    @property
    def formulas(self) -> dict[str, str]:
        """``{variable: formula}`` in the syntax a user writes."""
        return {v.name: str(replace(v.formula, response=None)) for v in self.variables}

    @property
    def variables_by_name(self) -> dict[str, VariableSpec]:
        return {v.name: v for v in self.variables}

    @property
    def methods(self) -> dict[str, str]:
        """``{variable: model name}``."""
        return {v.name: v.method for v in self.variables}

    @property
    def method_options(self) -> dict[str, dict[str, Any]]:
        """``{variable: {option: value}}`` for the variables whose model has options."""
        return {v.name: dict(v.options) for v in self.variables if v.options}

    @property
    def method_arguments(self) -> dict[str, MethodArgument]:
        """``method=`` that reproduces the models: names, ``(name, options)`` with options."""
        return {v.name: v.method_argument for v in self.variables}

    @property
    def cluster_argument(self) -> str | list[str] | None:
        """``cluster=`` that gives this structure again: the nested levels as the list of
        their columns, outermost first (``["school", "class"]``, also when class ids
        repeat across schools and the class level is ``school:class``), or the cluster."""
        if self.hierarchy:
            outer, inner = self.hierarchy[0], self.hierarchy[-1]
            return [outer, factor_columns(inner)[-1]]
        return self.cluster

    @property
    def visit(self) -> list[str]:
        return [v.name for v in self.variables]

    def to_toml(self, **extras) -> str:
        """TOML of what was run; see :func:`mlimpute.specfile.spec_to_toml`. With nested
        levels, ``imputation.cluster`` is the list ``cluster=[outer, inner]`` was given as.
        Refused (:class:`~mlimpute.errors.SpecificationError`) for the specification of an
        ``impute_new()`` result (:attr:`completion`), which no file can repeat."""
        refuse_completion(self)
        if self.delta or self.delta_cluster_sd:  # the shifts are options of impute()
            options = dict(extras.pop("options", None) or {})
            if self.delta:
                options["delta"] = dict(self.delta)
            if self.delta_cluster_sd:
                options["delta_cluster_sd"] = dict(self.delta_cluster_sd)
            extras["options"] = options
        from mlimpute.specfile import spec_to_toml

        return spec_to_toml(self, **extras)

    def __repr__(self) -> str:
        lines = [
            f"ImputationSpec(m={self.m}, iterations={self.iterations}, "
            f"cluster={self.cluster!r}, seed={self.seed}"
            + (f", spawn_key={self.spawn_key}" if self.spawn_key else "")
            + ")"
        ]
        if self.hierarchy:
            lines[0] = lines[0].replace(
                f"cluster={self.cluster!r}", f"levels={list(self.hierarchy)!r}"
            )
        lines += [f"  structure: {s}" for s in self.structure]
        if self.completion:
            lines.append(f"  {COMPLETION_NOTE}")
        if self.model is not None:
            aux = f", auxiliary={list(self.auxiliary)!r}" if self.auxiliary else ""
            aux += f", family={self.family!r}" if self.family else ""
            lines.append(f"  model: {self.model}{aux}")
            lines.append("  factorisation (missing values from their full conditionals):")
            y = self.model.response
            if y in self.variables_by_name:
                lines.append(f"    {y}: the analysis model")
            lines += [f"    {v}" for v in self.variables if v.name != self.model.response]
            return "\n".join(lines + self._shift_lines())
        lines += [f"  {v}" for v in self.variables]
        return "\n".join(lines + self._shift_lines())

    def _shift_lines(self) -> list[str]:
        lines = []
        if self.delta:
            shifts = ", ".join(f"{k} {d:+g}" for k, d in self.delta)
            lines.append(f"  delta (shift of the imputed values): {shifts}")
        if self.delta_cluster_sd:
            sds = ", ".join(f"{k} {d:g}" for k, d in self.delta_cluster_sd)
            lines.append(f"  delta_cluster_sd (SD of the per-cluster shifts): {sds}")
        return lines
