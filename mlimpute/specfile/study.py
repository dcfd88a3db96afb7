"""The study specification of :mod:`mlimpute.specfile`: :class:`StudySpec` and its parts.

:class:`StudySpec` (with :class:`AnalysisSpec` and :class:`OutputSpec`) is what a
specification file holds: it reads its data, imputes, and turns itself into TOML text
(formulas written by :func:`mlimpute.spec.formula.formula_text`).
"""

from __future__ import annotations

import inspect
import os
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlimpute.errors import SpecificationError
from mlimpute.spec.formula import formula_text

if TYPE_CHECKING:
    from mlimpute.result.imputed import MultiplyImputed
    from mlimpute.spec.build import ImputationSpec


_INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class AnalysisSpec:
    """The analysis run on every completed data set and pooled (``imp.fit``).

    Attributes
    ----------
    formula : str
        lme4-style analysis formula with a response.
    reml : bool
        REML (default) or ML for mixed models.
    tests : tuple of str
        Hypotheses tested on the pooled result (D1), e.g. ``("gender = 0",)``.
    family : str, optional
        GLM family for single-level formulas (``"binomial"``...).
    """

    formula: str
    reml: bool = True
    tests: tuple[str, ...] = ()
    family: str | None = None


@dataclass(frozen=True)
class OutputSpec:
    """Files a run writes; paths relative to the specification file, ``None``: not written.

    :func:`mlimpute.specfile.run` refuses paths that lead out of the specification's
    directory (or out of ``out_dir``), unless ``allow_outside=True``.

    Attributes
    ----------
    imputations : str, optional
        The imputation file: ``*.nc`` (netCDF) or ``*.zarr``.
    completed : str, optional
        Completed data, ``*.csv``, ``*.parquet`` or ``*.dta``; a ``{i}`` in the name writes
        one file per imputation, otherwise one long file with an ``imputation`` column.
    pooled : str, optional
        CSV of the pooled table of the analysis.
    """

    imputations: str | None = None
    completed: str | None = None
    pooled: str | None = None


@dataclass(frozen=True)
class StudySpec:
    """A complete, runnable study: data, imputation model, outputs and analysis.

    Attributes
    ----------
    formulas : dict
        ``{variable: "~ ..."}`` in visit order (``None``: let :func:`mlimpute.impute` choose).
    methods : dict
        Model per variable (empty: chosen from the formulas): a name, or a table
        ``{"method": name, option: value}`` for a model with options.
    cluster : str or tuple of str, optional
        The grouping column, or the nested levels outermost first
        (``cluster = ["school", "class"]`` in a file: ``impute(cluster=[...])``).
    m, iterations : int
    seed : int, optional
        Root seed (``rng=seed``); with it a run is reproduced bit for bit.
    spawn_key : tuple of int
        With :attr:`seed`: the spawn key of a run given a child SeedSequence
        (``SeedSequence(seed).spawn(n)[k]`` has the key ``(k,)``); the run is
        ``rng=SeedSequence(seed, spawn_key=spawn_key)``. Empty for an int seed.
    visit : tuple of str, optional
    data : str, optional
        Data file, relative to :attr:`base_dir`.
    columns : tuple of str, optional
        The columns of the data file to use (all by default).
    output : OutputSpec
    analysis : AnalysisSpec, optional
    options : dict
        Further keyword arguments of :func:`mlimpute.impute` (e.g. ``n_jobs``).
    version : str, optional
        The mlimpute version that wrote the file.
    base_dir : pathlib.Path, optional
        Directory relative paths are resolved against (the file's directory).
    model : str, optional
        The analysis model of a model-based imputation (``impute(df, model=...)``, the
        ``[model]`` table of a file), in lme4 syntax; then :attr:`formulas` is ``None``,
        the analysis model decides every imputation model, and without an
        :attr:`analysis` :func:`~mlimpute.specfile.run` pools the analysis model.
    auxiliary : tuple of str
        With :attr:`model`: columns that inform the imputations without entering the
        analysis (``impute(auxiliary=...)``).
    family : str, optional
        With :attr:`model`: the analysis model's count family (``impute(family=...)``,
        ``family = "poisson"`` in the ``[model]`` table).

    Examples
    --------
    >>> s = StudySpec({"grade": "~ skill + (1 | class)"}, m=3, seed=1)
    >>> print(s.to_toml().split("[imputation]")[1].strip())
    m = 3
    iterations = 20
    seed = 1
    <BLANKLINE>
    [imputation.formulas]
    grade = "~ skill + (1 | class)"
    """

    formulas: Mapping[str, str] | None
    methods: Mapping[str, str | Mapping[str, Any]] = field(default_factory=dict)
    cluster: str | tuple[str, ...] | None = None
    m: int = 5
    iterations: int = 20
    seed: int | None = None
    visit: tuple[str, ...] | None = None
    data: str | None = None
    columns: tuple[str, ...] | None = None
    output: OutputSpec = field(default_factory=OutputSpec)
    analysis: AnalysisSpec | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    version: str | None = None
    base_dir: Path | None = field(default=None, compare=False, repr=False)
    model: str | None = None
    auxiliary: tuple[str, ...] = ()
    family: str | None = None
    spawn_key: tuple[int, ...] = ()

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_imputation_spec(
        cls,
        spec: ImputationSpec,
        *,
        data: str | os.PathLike | None = None,
        columns: Sequence[str] | None = None,
        output: OutputSpec | Mapping[str, str | None] | None = None,
        analysis: AnalysisSpec | Mapping[str, Any] | str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> StudySpec:
        """The study that reproduces a run: explicit formulas, methods, visit order, seed.

        ``analysis`` may be an :class:`AnalysisSpec`, a dict of its fields or a formula.
        """
        from mlimpute._version import __version__
        from mlimpute.spec.imputation_spec import refuse_completion

        refuse_completion(spec)  # an impute_new() result: no file repeats it
        if isinstance(output, Mapping):
            output = OutputSpec(**output)
        if isinstance(analysis, str):
            analysis = AnalysisSpec(analysis)
        elif isinstance(analysis, Mapping):
            analysis = AnalysisSpec(
                **{k: tuple(v) if k == "tests" else v for k, v in analysis.items()}
            )
        if spec.model is not None:  # model-based: the analysis model decides every model
            return cls(
                formulas=None,
                m=spec.m,
                iterations=spec.iterations,
                seed=spec.seed,
                data=os.fspath(data) if data is not None else None,
                columns=tuple(columns) if columns is not None else None,
                output=output or OutputSpec(),
                analysis=analysis,
                options=dict(options or {}),
                version=__version__,
                model=spec.model.text,
                auxiliary=tuple(spec.auxiliary),
                family=getattr(spec, "family", None),
                spawn_key=tuple(spec.spawn_key),
            )
        return cls(
            formulas={v.name: formula_text(v.formula) for v in spec.variables},
            # a model with options as a table: grade = { method = "2l.norm", prior = "iw" }
            methods={
                v.name: {"method": v.method, **dict(v.options)} if v.options else v.method
                for v in spec.variables
            },
            cluster=_cluster(spec.cluster_argument),
            m=spec.m,
            iterations=spec.iterations,
            seed=spec.seed,
            visit=tuple(spec.visit),
            data=os.fspath(data) if data is not None else None,
            columns=tuple(columns) if columns is not None else None,
            output=output or OutputSpec(),
            analysis=analysis,
            options=dict(options or {}),
            version=__version__,
            spawn_key=tuple(spec.spawn_key),
        )

    # -- paths and data -------------------------------------------------------------------
    def resolve(self, path: str | os.PathLike) -> Path:
        """``path`` relative to :attr:`base_dir` (the specification file's directory)."""
        p = Path(os.fspath(path)).expanduser()
        return p if p.is_absolute() or self.base_dir is None else self.base_dir / p

    def read_data(self) -> pd.DataFrame:
        """Read :attr:`data` (by suffix, see :func:`mlimpute.io.read_data`)."""
        from mlimpute.io import read_data

        if self.data is None:
            raise SpecificationError("data.path: the specification names no data file")
        df = read_data(self.resolve(self.data))
        if self.columns is not None:
            unknown = [c for c in self.columns if c not in df.columns]
            if unknown:
                raise SpecificationError(
                    f"data.columns: {unknown} not in {self.data!r}; its "
                    f"columns are {list(df.columns)}"
                )
            df = df[list(self.columns)]
        return df

    # -- running --------------------------------------------------------------------------
    @property
    def pooled_analysis(self) -> AnalysisSpec | None:
        """The analysis :func:`~mlimpute.specfile.run` pools: :attr:`analysis`, or for a
        model-based imputation without one its analysis model."""
        if self.analysis is None and self.model is not None:
            return AnalysisSpec(self.model, family=self.family)
        return self.analysis

    def impute_kwargs(self, **extra: Any) -> dict[str, Any]:
        """Keyword arguments of :func:`mlimpute.impute` for this study."""
        from mlimpute.impute import impute

        params = inspect.signature(impute).parameters
        kw: dict[str, Any] = {"m": self.m, "iterations": self.iterations, "rng": self.rng}
        if self.model is not None:
            kw["model"] = self.model
            if self.auxiliary:
                kw["auxiliary"] = list(self.auxiliary)
            if self.family is not None:
                kw["family"] = self.family
        if self.methods:
            kw["method"] = dict(self.methods)
        if self.visit is not None:
            kw["visit"] = list(self.visit)
        if self.cluster is not None and "cluster" in params:
            kw["cluster"] = self.cluster if isinstance(self.cluster, str) else list(self.cluster)
        kw.update(self.options)
        kw.update({k: v for k, v in extra.items() if k in params})
        return kw

    def impute(self, df: pd.DataFrame | None = None, **extra: Any) -> MultiplyImputed:
        """Impute ``df`` (default: :meth:`read_data`) as specified.

        ``extra`` keyword arguments that :func:`mlimpute.impute` accepts (``progress``...)
        are passed on; others are ignored.

        Examples
        --------
        >>> import mlimpute
        >>> df = mlimpute.datasets.classroom(1, rng=1).incomplete
        >>> imp = df.mi.impute({"grade": "~ skill + (1 | class)"}, m=2, iterations=4, rng=3)
        >>> from mlimpute.specfile import loads_spec, spec_to_toml
        >>> study = loads_spec(spec_to_toml(imp.spec))
        >>> again = study.impute(df)
        >>> bool((again.dataset["grade"] == imp.dataset["grade"]).all())
        True
        """
        from mlimpute.impute import impute

        if df is None:
            df = self.read_data()
        formulas = dict(self.formulas) if self.formulas is not None else None
        imp = impute(df, formulas, **self.impute_kwargs(**extra))
        if isinstance(self.cluster, tuple) and len(self.cluster) > 1:
            if imp.spec.cluster_argument != list(self.cluster):  # pragma: no cover - impute checks
                raise SpecificationError(
                    f"imputation.cluster is {list(self.cluster)!r} but the imputation has the "
                    f"levels {list(imp.spec.hierarchy)!r}"
                )
        elif (
            self.model is None
            and self.cluster is not None
            and imp.spec.cluster is not None
            and imp.spec.cluster != _cluster(self.cluster)
        ):
            raise SpecificationError(
                f"imputation.cluster is {self.cluster!r} but the formulas group by "
                f"{imp.spec.cluster!r}"
            )
        return imp

    # -- writing --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The TOML document as a dict (``None`` values left out)."""
        doc: dict[str, Any] = {}
        if self.version is not None:
            doc["mlimpute_version"] = self.version
        data = _drop_none(
            {"path": self.data, "columns": list(self.columns) if self.columns else None}
        )
        if data:
            doc["data"] = data
        if self.model is not None:
            doc["model"] = _drop_none(
                {
                    "formula": self.model,
                    "auxiliary": list(self.auxiliary) if self.auxiliary else None,
                    "family": self.family,
                    "m": self.m,
                    "iterations": self.iterations,
                    "seed": self._seed_value(),
                    "spawn_key": self._spawn_key_value(),
                    "options": dict(self.options) if self.options else None,
                }
            )
            self._outputs_and_analysis(doc)
            return doc
        imp = _drop_none(
            {
                "cluster": self.cluster
                if isinstance(self.cluster, str) or self.cluster is None
                else list(self.cluster),
                "m": self.m,
                "iterations": self.iterations,
                "seed": self._seed_value(),
                "spawn_key": self._spawn_key_value(),
                "visit": list(self.visit) if self.visit is not None else None,
            }
        )
        if self.formulas is not None:
            imp["formulas"] = dict(self.formulas)
        if self.methods:
            imp["methods"] = dict(self.methods)
        if self.options:
            imp["options"] = dict(self.options)
        doc["imputation"] = imp
        self._outputs_and_analysis(doc)
        return doc

    def _seed_value(self) -> int | str | None:
        """The seed as TOML holds it (a string beyond the 64-bit integers)."""
        return self.seed if self.seed is None or self.seed <= _INT64_MAX else str(self.seed)

    def _spawn_key_value(self) -> list[int] | None:
        return [int(k) for k in self.spawn_key] if self.spawn_key else None

    @property
    def rng(self) -> int | np.random.SeedSequence | None:
        """``rng=`` of :func:`mlimpute.impute` for this study: :attr:`seed`, or with a
        :attr:`spawn_key` ``SeedSequence(seed, spawn_key=spawn_key)``."""
        if self.seed is None or not self.spawn_key:
            return self.seed
        return np.random.SeedSequence(self.seed, spawn_key=tuple(self.spawn_key))

    def _outputs_and_analysis(self, doc: dict[str, Any]) -> None:
        out = _drop_none(vars(self.output))
        if out:
            doc["output"] = out
        if self.analysis is not None:
            a = self.analysis
            doc["analysis"] = _drop_none(
                {
                    "formula": a.formula,
                    "reml": a.reml,
                    "family": a.family,
                    "tests": list(a.tests) if a.tests else None,
                }
            )

    def to_toml(self, header: str | None = None) -> str:
        """The specification as TOML text, preceded by ``header`` as comment lines."""
        import tomli_w

        lines = []
        if header is None:
            header = (
                "mlimpute specification: run it with `mlimpute run <this file>`.\n"
                "Paths are relative to this file's directory."
            )
        if self.seed is None:
            header += (
                "\nNo seed: every run of this file draws fresh entropy, so the imputations "
                "differ from run to run. (A finished run records its seed unless it was given "
                "a Generator or SeedSequence that had already spawned children, or one with "
                "a pool size other than numpy's default.)"
            )
        for h in header.splitlines():
            lines += [f"# {w}" for w in textwrap.wrap(h, 86, break_on_hyphens=False)] or ["#"]
        return "\n".join(lines) + "\n\n" + tomli_w.dumps(self.to_dict())

    def write(self, path: str | os.PathLike, header: str | None = None) -> Path:
        """Write :meth:`to_toml` to ``path``; returns it."""
        p = Path(os.fspath(path))
        p.write_text(self.to_toml(header), encoding="utf-8")
        return p


def _drop_none(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


def _cluster(value: str | Sequence[str] | None) -> str | tuple[str, ...] | None:
    """``cluster=`` as a study holds it: a column, the nested levels as a tuple (a list of
    one column is that column), or None."""
    if value is None or isinstance(value, str):
        return value
    value = tuple(value)
    return value[0] if len(value) == 1 else value
