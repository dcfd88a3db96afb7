"""The compatible-imputation study: model-based against chained imputation and complete
cases on four designs where chained equations cannot reproduce the analysis model.

:mod:`.designs` generates the data, :mod:`.study` runs (and resumes) the replications,
:mod:`.report` summarises them; ``python -m mlimpute.simulation.compatible --help`` runs it.
"""
