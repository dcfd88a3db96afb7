"""The result of an imputation: :class:`~mlimpute.result.imputed.MultiplyImputed`, its
assembly from the chains (``assemble``), its text and HTML summaries (``display``) and its
plots (``plot``).
"""
