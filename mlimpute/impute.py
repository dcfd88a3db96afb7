"""``impute``: validate, build the plan once, run the chains, assemble the result."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from mlimpute._heap import available_memory as _available_memory
from mlimpute._heap import release_free_memory
from mlimpute.codec import categories, column_kind
from mlimpute.diagnostics import convergence_warning
from mlimpute.errors import (
    ConvergenceWarning,
    MlimputeWarning,
    SpecificationError,
    UnsupportedError,
    warn,
)
from mlimpute.models.transforms import transform_methods
from mlimpute.parallel import resolve_n_jobs
from mlimpute.result.assemble import assemble
from mlimpute.result.imputed import MultiplyImputed, chain_states
from mlimpute.rng import chain_seeds, recorded_seed
from mlimpute.sampler.batched import check_batch
from mlimpute.sampler.engine import ChainResult, build_plan
from mlimpute.sampler.executors import map_chains
from mlimpute.schema import param_var
from mlimpute.spec.arguments import MAX_CATEGORIES
from mlimpute.spec.build import build_spec
from mlimpute.spec.formula import factor_columns
from mlimpute.spec.model import build_model_spec, with_latent_means

__all__ = ["impute", "iterate_result", "extend_result"]


def impute(
    df: pd.DataFrame,
    formulas: Mapping[str, str] | Sequence[str] | None = None,
    *,
    m: int = 5,
    iterations: int = 20,
    rng: int | np.random.Generator | None = None,
    method: Mapping[str, Any] | None = None,
    visit: Sequence[str] | None = None,
    cluster: str | Sequence[str] | None = None,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    heteroscedastic: bool | Sequence[str] = False,
    max_categories: int = MAX_CATEGORIES,
    n_jobs: int | None = None,
    client: Any = None,
    progress: bool | None = None,
    model: str | None = None,
    auxiliary: Sequence[str] | str | None = None,
    delta: Mapping[str, float] | None = None,
    delta_cluster_sd: Mapping[str, float] | None = None,
    transform: Mapping[str, str] | None = None,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    batch: str | int = "auto",
    family: str | None = None,
) -> MultiplyImputed:
    """Multiply impute ``df`` with (multilevel) chained equations.

    Parameters
    ----------
    df : DataFrame
        The incomplete data; never modified.
    formulas : dict or list of str
        ``{"grade": "~ skill + (1 + gender | class)"}``: one lme4-style formula per
        incomplete variable (or a list of ``"grade ~ ..."`` strings). A random part selects
        the multilevel normal model (``2l.norm``), otherwise ``norm``; ``cmean(x)`` is the
        cluster mean of ``x``, recomputed at every visit.
    m : int
        Number of imputations (independent chains).
    iterations : int
        Visits of every incomplete variable per chain.
    rng : int, numpy.random.SeedSequence or numpy.random.Generator, optional
        The random seed. Chain k uses the k-th child of ``SeedSequence(rng)`` (of the given
        SeedSequence, or of the Generator's), so results depend only on the seed. None:
        fresh entropy, recorded in ``imp.spec`` so the run can be repeated.
    method : dict, optional
        Override the model per variable, e.g. ``{"grade": "norm"}``; with options,
        ``{"grade": ("2l.norm", {"prior": "iw"})}`` (the model's keyword arguments:
        :func:`mlimpute.models.model_options`; kept in ``imp.spec`` and in saved files).
    visit : list of str, optional
        Visit order (default: the order of ``formulas``).
    cluster : str, optional
        The cluster column. With it, every incomplete variable without a formula gets the
        default model (see :mod:`mlimpute.spec.defaults`): level-1 variables a random intercept
        plus the cluster means of their level-1 predictors, level-2 variables the level-2
        model; probit for binary, ordered probit for ordered, multinomial probit for
        unordered categoricals. ``imp.spec`` shows what was used.
        A list gives three nested levels, outermost first (``["school", "class"]``):
        nesting and every variable's level are found in the data, level-1 variables get a
        random intercept for every level, class-level variables are imputed on one row
        per class with a random intercept for school, school-level variables on one row
        per school.
    include, exclude : list of str or str, optional
        Columns the default models use (the cluster column and identifier-like columns are
        left out automatically; ``imp.events`` says which). A single column may be given as
        a string, as in ``df.drop(columns="id")``.
    heteroscedastic : bool, str or list of str
        Cluster-specific residual variances (``2l.norm.het``, mice's ``2l.norm``) for all
        multilevel numeric variables, or for the ones listed; for longitudinal data.
    max_categories : int, default 50
        The most categories an imputed unordered or ordered categorical variable may have.
        The multinomial probit model has one latent equation per category but one, each
        with its own coefficients and random effects, so cost grows with the categories
        and rare categories are poorly identified; more categories raise
        :class:`~mlimpute.errors.SpecificationError`. The default models also leave out
        categorical predictors with more categories (one design column each), with an
        event.
    n_jobs : int, optional
        Worker processes for the chains (-1: all cores). Results are identical to the serial
        run for the same seed.
    client : dask.distributed.Client, optional
        Run the chains as tasks on this cluster (data scattered once).
    progress : bool, optional
        A progress bar over chains × iterations; default: in a terminal and in a Jupyter
        notebook (a widget bar, with ipywidgets installed), never when the environment
        variable ``CI`` is set.
    model : str, optional
        The analysis model, in lme4 syntax (``"y ~ x * z + w + (1 + x | g)"``), for
        model-based (analysis-model-compatible) imputation: the missing values of its
        predictors are drawn from their full conditionals under the analysis model times
        one normal random-intercept model per incomplete predictor (each conditional on
        the incomplete predictors after it in the model and on the complete ones and the
        auxiliaries), and missing outcome values from the analysis model itself. Random
        slopes on and interactions with incomplete predictors are then preserved, which
        chained equations cannot do. ``imp.spec`` shows the factorisation, ``imp.fit()``
        fits this model. Supported: a normal or binary (probit) outcome, or a count
        outcome with ``family=``; incomplete continuous predictors (also in
        interactions, random slopes and transforms such as ``I(x**2)``), binary, ordinal,
        nominal, count and level-2 predictors, ``lmean(x)``, and several grouping
        factors, within the limits the user guide lists (compatible imputation); anything
        else raises :class:`~mlimpute.errors.UnsupportedError` before the chains start.
        Cannot be combined with ``formulas``, ``method``, ``visit``, ``include``,
        ``exclude`` or ``heteroscedastic`` yet; ``cluster`` (the model's grouping factor)
        gives the incomplete columns that are neither in the model nor auxiliary the
        default chained models.
    auxiliary : list of str or str, optional
        With ``model=``: columns that inform the imputations (predictors in every
        incomplete predictor's model) without entering the analysis; incomplete ones are
        imputed too, from the models they enter.
    family : str, optional
        With ``model=``: the analysis model's family for a count outcome, ``"poisson"``
        (a Poisson GLMM with a log link; its log-rate has an observation-level residual
        that absorbs overdispersion) or ``"negative_binomial"``; the outcome's missing
        values are then non-negative integers, and ``imp.fit()`` fits that GLMM. Default:
        a normal outcome, or probit for a binary one. An incomplete integer predictor
        (e.g. dtype ``Int64``) of non-negative values gets its own count model
        (:mod:`mlimpute.spec.model_counts`).
    delta : dict, optional
        Sensitivity to data missing not at random (δ-adjustment; Leacy et al. 2017,
        Tompsett et al. 2018): ``{"grade": -0.5}`` adds -0.5 to every value drawn for the
        missing grades, inside the chain, so the other variables' models see the shifted
        values. For a variable imputed with a probit, logit, ordinal, nominal or count
        model the shift is added to the linear predictor of its missing rows instead (the
        latent scale; the log scale for counts; for a nominal variable, the utility of
        every category but the first). With ``model=`` the shifted values are what
        the analysis model and the other predictors' models see, while the variable's
        own model is fitted to the unshifted draws (so the shift does not compound);
        continuous predictors and auxiliaries, binary ones and a binary outcome (on
        their probit scale), the outcome and columns imputed by chained defaults can be
        shifted, ordinal and nominal predictors not yet. A shift of 0 gives exactly the
        run without it. An integer column imputed by predictive mean matching (``pmm``,
        ``2l.pmm``, ``2lonly.pmm``; the default for integer codes and counts) takes
        whole-number shifts only (its completed values are rounded to integers, which
        would undo a fractional shift): another shift is a ``SpecificationError`` naming
        the column.
        :func:`mlimpute.sensitivity` runs a series of shifts and tabulates the analysis.
    transform : dict, optional
        ``{"income": "log"}`` or ``{"rt": "yeo-johnson"}``: impute a skewed variable with
        its normal model on the transformed scale (Yeo–Johnson's λ estimated from the
        observed values by maximum likelihood) and return values on the original scale;
        the other variables' models see the original values. Kept in the specification
        as the model option ``transform`` (:mod:`mlimpute.models.transforms`).
    bounds : dict, optional
        ``{"score": (0, 100)}``: impute a bounded variable on the logit scale of its value
        rescaled to (0, 1); the imputations lie within the bounds.
    delta_cluster_sd : dict, optional
        ``{"grade": 0.3}``: in addition, each chain draws one shift per cluster from
        N(0, 0.3²) and adds it to the imputed grades of that cluster (whole clusters
        missing for a reason); for a probit, logit, ordinal, nominal or count model the
        shift is added to the cluster's random intercept (the linear predictor). The
        shifts come from a generator of their own, so the other draws are those of the
        run without them. Refused (``SpecificationError``) for an integer column imputed
        by predictive mean matching: its per-cluster shifts are not whole numbers.
    batch : "auto" or int, default "auto"
        Chains stepped together as one state (one Python-level step per iteration for
        the group) when some level-1 variable uses the multilevel normal model with a
        random part that the imputations do not change, or, with ``model=``, when the
        analysis model is a multilevel normal model (its step, and those of the
        continuous predictors' models, are stacked over the chains): ``"auto"`` groups
        all chains of a data set of up to 20,000 rows (60,000 where a stacked variable
        has random slopes, without ``model=``); an int sets the group size (1: one chain
        at a time). The imputations are identical whatever the value.

    Returns
    -------
    MultiplyImputed

    Raises
    ------
    FormulaError, SpecificationError, DataError, DataTypeError
        On bad input, before any chain starts; the message names the argument, column or
        formula term. The memory the result needs is estimated up front too, and a run
        that cannot fit in the available memory is refused.

    Examples
    --------
    >>> from mlimpute.datasets import classroom
    >>> df = classroom(1, rng=1).incomplete
    >>> imp = impute(df, {"grade": "~ skill + (1 | class)"}, m=3, iterations=10, rng=1)
    >>> imp.dataset["grade"].shape
    (3, 240)
    """
    _check_run_options(n_jobs, client, progress)
    batch = check_batch(batch)
    if family is not None and model is None:
        raise SpecificationError(
            "family= needs model=: it is the family of the analysis model (for chained "
            "equations choose a count model with method=, e.g. {'visits': '2l.poisson'})"
        )
    if auxiliary is not None and model is None:
        raise SpecificationError(
            "auxiliary= needs model=: it names columns that inform a model-based imputation"
        )
    if model is not None and (transform or bounds):
        raise UnsupportedError(
            "transform= and bounds= cannot be combined with model= yet; use formulas "
            "(chained equations)"
        )
    if model is not None:
        spec = build_model_spec(
            df,
            model,
            auxiliary,
            m=m,
            iterations=iterations,
            formulas=formulas,
            method=method,
            visit=visit,
            cluster=cluster,
            include=include,
            exclude=exclude,
            heteroscedastic=heteroscedastic,
            delta=delta,
            delta_cluster_sd=delta_cluster_sd,
            family=family,
        )
        df = with_latent_means(df, spec)  # an empty column lmean(x) that imputation fills
    else:
        args = dict(
            m=m,
            iterations=iterations,
            visit=visit,
            cluster=cluster,
            include=include,
            exclude=exclude,
            heteroscedastic=heteroscedastic,
            max_categories=max_categories,
            delta=delta,
            delta_cluster_sd=delta_cluster_sd,
        )
        spec = build_spec(df, formulas, method=method, **args)
        if transform or bounds:  # the models chosen above, with the transform as an option
            method = transform_methods(spec, transform, bounds, method)
            spec = build_spec(df, formulas, method=method, **args)
    _check_memory(df, spec)
    release_free_memory(len(df))  # a large run starts from the pages the process can spare
    seeds, entropy = chain_seeds(rng, spec.m)
    seed, spawn_key = recorded_seed(seeds, entropy)
    spec = replace(spec, seed=seed, spawn_key=spawn_key)
    data = _private_copy(df)
    plan = build_plan(data, spec)
    results = []
    if spec.variables:
        bar = _progress_bar(progress, spec.m * spec.iterations)
        try:
            results = map_chains(
                plan,
                seeds,
                n_jobs=n_jobs,
                client=client,
                batch=batch,
                progress=None
                if bar is None
                else (lambda done: bar.update(done * spec.iterations - bar.n)),
            )
        finally:
            if bar is not None:
                bar.close()
    for e in plan.events:
        warn(e, MlimputeWarning)
    return _result(plan, results, data)


def _result(plan, results, data: pd.DataFrame) -> MultiplyImputed:
    """The result of ``results`` (chain order), with where every chain stopped."""
    plan.release_rows()  # no chain reads the designs any more: freed before assembling
    dataset = assemble(plan, results, release=True)  # the chains' values held once
    chains = [r.final for r in results] if results else None
    events = list(plan.events)
    result = MultiplyImputed(dataset, data, plan.spec, events, chains=chains)
    if results:
        msg = convergence_warning(result)
        if msg is not None:
            result.events.append(msg)
            warn(msg, ConvergenceWarning)
    return result


def _private_copy(df: pd.DataFrame) -> pd.DataFrame:
    """The result's own copy of ``df``: a shallow one where pandas copies on write (always
    from pandas 3), which no later change of ``df`` reaches and which cannot change ``df``
    (without the column data: 38 MB at 1,000,000 rows of five columns); a deep copy
    otherwise."""
    if _copy_on_write():
        return df.copy(deep=False)
    return df.copy()


def _copy_on_write() -> bool:
    """Whether pandas copies on write (pandas >= 3, or the option set in pandas 2)."""
    if int(pd.__version__.split(".")[0]) >= 3:
        return True
    try:
        return pd.get_option("mode.copy_on_write") is True
    except (KeyError, pd.errors.OptionError):  # pragma: no cover - pandas without it
        return False


def _chain_states(imp: MultiplyImputed, what: str) -> list:
    """The chains' states, every one stopped at the result's iteration count (a file whose
    chains stopped at different iterations is refused: it is no run's result)."""
    instead = "; run impute() again with the same rng and more iterations or imputations"
    chains = chain_states(imp, what, instead)
    iterations = {c.iterations for c in chains}
    if iterations != {imp.spec.iterations}:
        raise SpecificationError(
            f"{what} needs every chain stopped at iteration {imp.spec.iterations}; the "
            f"chains of this result stopped at {sorted(iterations)}"
        )
    return chains


def _check_count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise SpecificationError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _previous(imp: MultiplyImputed, k: int, final) -> ChainResult:
    """Chain k of ``imp`` as a ChainResult: its traces and where it stopped."""
    ds = imp.dataset
    return ChainResult(
        final.imputed,
        ds["mean"].to_numpy()[k],
        ds["sd"].to_numpy()[k],
        {n: ds[param_var(n)].to_numpy()[k] for n in imp.variables},
        final,
    )


def iterate_result(
    imp: MultiplyImputed, n: int, *, n_jobs: int | None = None, client: Any = None
) -> MultiplyImputed:
    """Run every chain of ``imp`` ``n`` more iterations; see :meth:`MultiplyImputed.iterate`.

    Examples
    --------
    >>> from mlimpute.datasets import classroom
    >>> df = classroom(1, rng=1).incomplete
    >>> imp = impute(df, {"grade": "~ skill + (1 | class)"}, m=2, iterations=3, rng=1)
    >>> iterate_result(imp, 2).dataset.sizes["iteration"]
    5
    """
    n = _check_count(n, "n")
    _check_run_options(n_jobs, client, None)
    if not imp.spec.variables:
        return MultiplyImputed(
            imp.dataset,
            imp.data,
            replace(imp.spec, iterations=imp.spec.iterations + n),
            imp.events,
        )
    chains = _chain_states(imp, "iterate()")
    spec = replace(imp.spec, iterations=imp.spec.iterations + n)
    _check_memory(imp.data, spec)
    plan = build_plan(imp.data, spec)
    new = map_chains(
        plan,
        [c.seed for c in chains],
        n_jobs=n_jobs,
        client=client,
        starts=chains,
        iterations=n,
    )
    results = []
    for k, (c, r) in enumerate(zip(chains, new, strict=True)):
        old = _previous(imp, k, c)
        results.append(
            ChainResult(
                r.imputed,
                np.concatenate([old.mean, r.mean]),
                np.concatenate([old.sd, r.sd]),
                {v: np.concatenate([old.params[v], r.params[v]]) for v in imp.variables},
                r.final,
            )
        )
    return _result(plan, results, imp.data)


def extend_result(
    imp: MultiplyImputed, k: int, *, n_jobs: int | None = None, client: Any = None
) -> MultiplyImputed:
    """Add ``k`` imputations to ``imp``; see :meth:`MultiplyImputed.extend`.

    Examples
    --------
    >>> from mlimpute.datasets import classroom
    >>> df = classroom(1, rng=1).incomplete
    >>> imp = impute(df, {"grade": "~ skill + (1 | class)"}, m=2, iterations=3, rng=1)
    >>> extend_result(imp, 1).m
    3
    """
    k = _check_count(k, "k")
    _check_run_options(n_jobs, client, None)
    spec = replace(imp.spec, m=imp.spec.m + k)
    if not imp.spec.variables:
        plan = build_plan(imp.data, spec)
        return MultiplyImputed(assemble(plan, []), imp.data, spec, imp.events)
    chains = _chain_states(imp, "extend()")
    _check_memory(imp.data, spec)
    plan = build_plan(imp.data, spec)
    seeds = [_sibling(chains[0].seed, imp.m + j) for j in range(k)]
    new = map_chains(plan, seeds, n_jobs=n_jobs, client=client, first=imp.m)
    results = [_previous(imp, j, c) for j, c in enumerate(chains)] + list(new)
    return _result(plan, results, imp.data)


def _sibling(first: np.random.SeedSequence, k: int) -> np.random.SeedSequence:
    """The seed of chain ``k`` of the run whose chain 0 has seed ``first``: the same root
    spawned one child further per chain (``spawn_key`` ends in the child's number), as
    ``root.spawn(m + k)[k]`` would give."""
    key = tuple(first.spawn_key)
    return np.random.SeedSequence(
        first.entropy, spawn_key=(*key[:-1], key[-1] + k), pool_size=first.pool_size
    )


def _check_run_options(n_jobs, client, progress) -> None:
    """How to run, checked before the data are: a bad option must not cost a plan."""
    if progress is not None and not isinstance(progress, (bool, np.bool_)):
        raise SpecificationError(f"progress must be True, False or None, got {progress!r}")
    if client is not None and n_jobs is not None:
        raise SpecificationError("pass n_jobs or client, not both")
    if n_jobs is not None:
        resolve_n_jobs(n_jobs)  # raises SpecificationError naming n_jobs


def _estimate_memory(df: pd.DataFrame, spec) -> dict[str, int]:
    """Bytes a run will hold at its peak, by part (float64 everywhere).

    Imputed values: m × (missing cells), held once (each chain writes them into the result's
    array, and the chain states read them there); traces: m × iterations × (mean and sd of
    every variable + its model parameters), twice (the chains' results and the assembled
    Dataset exist together for a moment). The plan: the sorted copy of the columns used and
    each model's design. Chain states (kept so that ``imp.iterate()`` can continue): per
    chain and variable, its coefficients and random effects, and the latent values of its
    observed rows (one column per latent equation of a categorical model). Per chain a few
    kB of bookkeeping.
    """
    n = len(df)
    m, T, V = spec.m, spec.iterations, len(spec.variables)
    missing = df.isna().sum()
    cells = params = design = states = 0
    n_clusters = 1
    if spec.cluster is not None:  # a factor "school:class": its combinations
        cols = list(factor_columns(spec.cluster))
        one = len(cols) == 1
        n_clusters = int(df[cols[0]].nunique() if one else df[cols].drop_duplicates().shape[0])
    used = set()
    widths: dict[str, int] = {}  # design columns of each predictor, computed once

    def width_of(c: str) -> int:
        if c not in widths:
            dtype = df[c].dtype
            cats = None
            if not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)):
                cats = categories(df[c]) if column_kind(df[c]) in ("nominal", "ordinal") else None
            widths[c] = max(len(cats) - 1, 1) if cats else 1
        return widths[c]

    for v in spec.variables:
        f = v.formula
        used |= f.variables
        cells += int(missing[v.name])
        width = 1 + sum(width_of(p) for p in f.predictors if p in df.columns)
        q = sum(len(b.terms.split("+")) for b, _ in f.random_terms)
        k = width + q * (q + 1) // 2 + 1
        cats = categories(df[v.name])
        if cats is not None and len(cats) > 2:
            k *= len(cats) - 1  # one latent equation per category but one
        params += k
        design += n * (width + q)
        latent = len(cats) - 1 if cats is not None and len(cats) > 2 else 1
        n_obs = n - int(missing[v.name])
        states += latent * (n_obs + n_clusters * max(q, 1) + width + (q + 1) ** 2)
    out = {
        "imputed values": 8 * m * cells,
        "traces": 2 * 8 * m * T * (2 * V + params),
        "data and designs": 8 * (n * len(used) + design),
        "chain states": 8 * m * states,
        "per-chain bookkeeping": m * (2000 + 400 * V),
    }
    return out


def _gb(nbytes: float) -> str:
    return f"{nbytes / 1e9:.3g} GB" if nbytes >= 1e8 else f"{nbytes / 1e6:.3g} MB"


def _check_memory(df: pd.DataFrame, spec) -> None:
    """Refuse, before any work, a run whose result cannot fit in the available memory."""
    if not spec.variables:
        return
    parts = _estimate_memory(df, spec)
    need = sum(parts.values())
    avail = _available_memory()
    if avail is None or need <= avail:
        return
    detail = ", ".join(f"{k} {_gb(v)}" for k, v in parts.items() if v)
    raise SpecificationError(
        f"m={spec.m} imputations with iterations={spec.iterations} of {len(spec.variables)} "
        f"variable(s) and {len(df)} rows need about {_gb(need)} of memory ({detail}), but "
        f"only {_gb(avail)} is available. Use a smaller m (or fewer iterations), or impute "
        "fewer columns (include=/exclude=, or formulas for the variables you need)"
    )


def _progress_bar(progress: bool | None, total: int):
    """A tqdm bar when asked, or by default when interactive (a terminal or a Jupyter
    notebook, where ``tqdm.auto`` draws a widget), never by default under CI."""
    if progress is None:
        from mlimpute.result.display import in_notebook

        progress = (sys.stderr.isatty() or in_notebook()) and not os.environ.get("CI")
    if not progress:
        return None
    from tqdm.auto import tqdm

    tqdm.monitor_interval = 0  # no monitor thread: it would make fork-based pools unsafe
    return tqdm(total=total, desc="imputing", unit="it", leave=False)
