"""Names in the result Dataset of an imputation run (:attr:`MultiplyImputed.dataset`).

One place for the layout that the sampler's result assembly
(:mod:`mlimpute.result.assemble`), the result object, the diagnostics, the plots and the
files (:mod:`mlimpute.io`) all read: per imputed variable ``v``

- ``v`` with dims ``("imputation", "v:row")``: the imputed values (the ``"v:row"``
  coordinate holds the row positions in the original data);
- ``"v:params"`` with dims ``("imputation", "iteration", "v:param")``: the trace of the
  model's parameters;

and the traces ``mean`` and ``sd`` of the imputed values with dims
``("imputation", "iteration", "variable")``.

The module imports nothing, so every layer of the package may use it.

Examples
--------
>>> from mlimpute.schema import param_dim, param_var, row_dim
>>> row_dim("grade"), param_var("grade"), param_dim("grade")
('grade:row', 'grade:params', 'grade:param')
"""

from __future__ import annotations

__all__ = [
    "IMPUTATION",
    "ITERATION",
    "VARIABLE",
    "TRACE_STATS",
    "row_dim",
    "param_var",
    "param_dim",
]

#: Dimension numbering the imputations (chains), 1..m.
IMPUTATION = "imputation"
#: Dimension numbering the iterations of every chain, 1..iterations.
ITERATION = "iteration"
#: Dimension naming the imputed variables in the ``mean`` and ``sd`` traces.
VARIABLE = "variable"
#: The per-iteration summaries of each variable's imputed values.
TRACE_STATS = ("mean", "sd")


def row_dim(name: str) -> str:
    """Dimension of a variable's missing rows in :attr:`MultiplyImputed.dataset`.

    Parameters
    ----------
    name : str
        An imputed variable.

    Returns
    -------
    str
        ``"<name>:row"``.

    Examples
    --------
    >>> row_dim("grade")
    'grade:row'
    """
    return f"{name}:row"


def param_var(name: str) -> str:
    """Data variable holding the parameter trace of ``name``'s model.

    Parameters
    ----------
    name : str
        An imputed variable.

    Returns
    -------
    str
        ``"<name>:params"``.

    Examples
    --------
    >>> param_var("grade")
    'grade:params'
    """
    return f"{name}:params"


def param_dim(name: str) -> str:
    """Dimension naming the parameters of ``name``'s model in its parameter trace.

    Parameters
    ----------
    name : str
        An imputed variable.

    Returns
    -------
    str
        ``"<name>:param"``.

    Examples
    --------
    >>> param_dim("grade")
    'grade:param'
    """
    return f"{name}:param"
