"""The three classroom experiments of Jacobusse (2005) as a reproducible simulation study.

Jacobusse (IMPS 2005) generated classroom data (children in classes), deleted
values, imputed them with a single-level and with a multilevel model, and analysed every
completed data set with the true multilevel model. This module repeats that study:

* **Data.** Replication ``r`` of experiment ``e`` draws its data and all its imputations
  from ``SeedSequence([seed, e, r])`` (child 0: the data; child 1, 2, 3: the
  ``single_level``, ``multilevel`` and ``defaults`` imputations), so every replication can
  be rerun on its own and does not depend on the methods chosen, the order replications
  run in or the number of processes.
* **Methods.** ``complete`` (the data before deletion), ``complete_cases`` (listwise
  deletion), ``single_level`` (Bayesian linear regression, mice's ``norm``: the
  multilevel imputation formulas without random part and cluster means), ``multilevel``
  (:data:`mlimpute.datasets.IMPUTATION_FORMULAS`) and, once :func:`mlimpute.impute`
  accepts ``cluster=``, ``defaults`` (``df.mi.impute(cluster="class")``). Every data set
  is analysed with :data:`mlimpute.datasets.ANALYSIS_FORMULAS` (REML) and pooled by
  Rubin's rules; a single data set through :func:`mlimpute.from_completed` with two
  identical copies (``B = 0``: the complete-data answer).
* **Means** (experiment 2): the mean of ``grade`` and ``relation``, on the observed values
  (complete cases) or on every completed data set, with a cluster-robust standard error
  ``sqrt(J/(J-1) * sum_j s_j^2) / n`` (``s_j`` the sum of the deviations from the mean in
  class ``j``) pooled by Rubin's rules with ``dfcom = J - 1``.
* **Measures**, per method and parameter: true value, mean estimate, bias, relative
  bias, mean difference from the same replication's complete-data estimate, empirical SD,
  RMSE, mean SE, 95 % CI coverage of the true value (and of the complete-data estimate)
  and mean CI width (fixed effects and means), Monte Carlo SE of the bias and seconds per
  imputation run. See :func:`summarise` and :func:`acceptance`.

Replications run in parallel processes and each is written to its own JSON file
``<out>/experiment<e>/replication<r>.json``; a rerun skips the files that exist.

Command line::

    python -m mlimpute.simulation --experiments 1 2 3 --reps 200 --jobs 2 --out results/
    python -m mlimpute.simulation --out results/ --plots --markdown docs/simulation.md

References
----------
Jacobusse, G. (2005). Multiple imputation of missing data in a multilevel setting.
IMPS 2005, Tilburg.

Morris, T. P., White, I. R. & Crowther, M. J. (2019). Using simulation studies to
evaluate statistical methods. Statistics in Medicine 38, 2074-2102.
"""

from __future__ import annotations

from mlimpute.simulation.acceptance import SingleDataSet, acceptance, single_data_set
from mlimpute.simulation.cli import main
from mlimpute.simulation.design import (
    DEFAULT_M,
    DEFAULT_SEED,
    LABELS,
    METHODS,
    SEED_FIGURE_FORMULA,
    TRUE_MEANS,
    _cluster_mean,  # noqa: F401  (tests reach it here)
    replication_seeds,
    single_level_formulas,
)
from mlimpute.simulation.markdown import provenance, to_markdown, write_markdown
from mlimpute.simulation.plots import make_figures, plot_replications, plot_single_data_set
from mlimpute.simulation.results import load_records, stored_config, summarise, timings
from mlimpute.simulation.study import StudyConfig, available_methods, run_replication, run_study

__all__ = [
    "METHODS",
    "DEFAULT_SEED",
    "DEFAULT_M",
    "TRUE_MEANS",
    "LABELS",
    "SEED_FIGURE_FORMULA",
    "StudyConfig",
    "available_methods",
    "single_level_formulas",
    "replication_seeds",
    "run_replication",
    "run_study",
    "load_records",
    "summarise",
    "timings",
    "acceptance",
    "SingleDataSet",
    "single_data_set",
    "to_markdown",
    "write_markdown",
    "plot_replications",
    "plot_single_data_set",
    "make_figures",
    "stored_config",
    "provenance",
    "main",
]
