"""Rich and plain-text summaries of a :class:`~mlimpute.result.imputed.MultiplyImputed`.

:func:`imputed_html` is what Jupyter shows for a result (``MultiplyImputed._repr_html_``);
:func:`imputed_text` is the same summary as plain text. Both list the imputed variables
with how much of each was imputed, the model and the formula used, the run's settings, the
largest R-hat of each variable's traces over the second half of the iterations, and the
events recorded on the way.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from mlimpute.result.imputed import MultiplyImputed

__all__ = ["Table", "imputed_html", "imputed_text", "in_notebook"]


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel that can draw ``tqdm.auto``'s widget bar
    (ipywidgets installed).

    Examples
    --------
    >>> in_notebook()
    False
    """
    import importlib.util
    import sys

    ipython = sys.modules.get("IPython")
    if ipython is None or "ipykernel" not in sys.modules:
        return False
    if importlib.util.find_spec("ipywidgets") is None:
        return False  # tqdm.notebook would fail; a text bar in a notebook is noise
    shell = ipython.get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _number(v: float, digits: int) -> str:
    """``v`` with ``digits`` decimals; what rounds to zero is ``0`` (no ``-0.000``,
    no ``1.8e-15``); large values in 4 significant digits."""
    if pd.isna(v):
        return "NaN"
    if np.isinf(v):
        return "inf" if v > 0 else "-inf"
    if abs(v) >= 1e6:
        return f"{v:.4g}"
    text = f"{v:.{digits}f}"
    return f"{0.0:.{digits}f}" if float(text) == 0 else text


def _p_value(v: float) -> str:
    return "NaN" if pd.isna(v) else "<0.001" if v < 0.001 else f"{v:.3f}"


class Table(pd.DataFrame):
    """A pandas DataFrame that shows itself whole and rounded.

    Returned by :meth:`PooledResult.summary`, :meth:`PooledResult.variance_components`
    and :func:`mlimpute.describe.describe`: every column is printed (a plain REPL does
    not cut the table to ``...``), numbers are rounded to what they can tell (``digits``
    decimals per column, 3 by default; p-values below 0.001 as ``<0.001``; values that
    round to zero as ``0``). It is a DataFrame in every other respect and holds the
    unrounded values; anything derived from it (``.round()``, a column selection) is a
    plain DataFrame.

    Examples
    --------
    >>> import pandas as pd
    >>> from mlimpute.result.display import Table
    >>> t = Table(pd.DataFrame({"icc": [0.30587, 1.76e-15], "p": [0.2, 1e-5]},
    ...                        index=["grade", "skill"]), digits={"icc": 3})
    >>> t
             icc       p
    grade  0.306   0.200
    skill  0.000  <0.001
    >>> float(t.loc["skill", "icc"])
    1.76e-15
    """

    _metadata = ["digits"]

    def __init__(
        self, data: Any = None, *args: Any, digits: dict | None = None, **kwargs: Any
    ) -> None:
        super().__init__(data, *args, **kwargs)
        object.__setattr__(self, "digits", dict(digits or {}))

    @property
    def _constructor(self):
        return pd.DataFrame

    def _formatters(self) -> dict:
        out = {}
        for col in self.columns:
            dtype = self[col].dtype
            if col == "p":
                out[col] = _p_value
            elif pd.api.types.is_float_dtype(dtype):
                digits = self.digits.get(col, 3)
                out[col] = lambda v, d=digits: _number(v, d)
        return out

    def __repr__(self) -> str:
        return self.to_string(
            formatters=self._formatters(), max_rows=pd.get_option("display.max_rows")
        )

    def _repr_html_(self) -> str:
        return self.to_html(
            formatters=self._formatters(), max_rows=pd.get_option("display.max_rows")
        )


_STYLE = (
    "<style>"
    ".mlimpute-imp table{border-collapse:collapse;margin:0.3em 0}"
    ".mlimpute-imp th,.mlimpute-imp td{padding:0.15em 0.6em;text-align:left}"
    ".mlimpute-imp td.num{text-align:right}"
    ".mlimpute-imp .high{color:#B61A51;font-weight:bold}"
    ".mlimpute-imp code{font-size:90%}"
    "</style>"
)


def _summary(imp: MultiplyImputed) -> dict:
    """Everything both views show, computed once."""
    from mlimpute.diagnostics import MIN_WARNING_ITERATIONS, rhat_table
    from mlimpute.schema import row_dim

    n_rows = len(imp.data)
    traces = imp.traces
    n_iter = traces.sizes.get("iteration", 0)
    rows = []
    table = None
    threshold = None
    # a completion of new rows (impute_new()): the parameters were fixed, not sampled, so
    # there is no convergence to diagnose (R-hat of constant traces is inf, and a level-2
    # value taken from its cluster leaves its trace NaN)
    completion = bool(getattr(imp.spec, "completion", False))
    if imp.variables and n_iter >= MIN_WARNING_ITERATIONS and not completion:
        table = rhat_table(imp, burn=n_iter // 2)
        limits = table["limit"].to_numpy()
        threshold = float(np.nanmin(limits)) if np.isfinite(limits).any() else None
    for v in imp.spec.variables:
        k = int(imp.dataset.sizes[row_dim(v.name)])
        worst = worst_trace = None
        finite = True
        if table is not None and k:  # no R-hat of the traces of no imputed cells
            sub = table[table["variable"] == v.name]
            finite = bool(sub["finite"].all())
            values = sub["rhat"].to_numpy()
            if np.isfinite(values).any() or np.isinf(values).any():
                pos = int(np.nanargmax(values))
                worst, worst_trace = float(values[pos]), str(sub["trace"].iloc[pos])
        rows.append(
            {
                "name": str(v.name),
                "n": k,
                "pct": 100.0 * k / n_rows if n_rows else np.nan,
                "method": str(v.method),
                "formula": str(v.formula),
                "rhat": worst,
                "trace": worst_trace,
                "finite": finite,
                "high": bool(table is not None and k and (sub["rhat"] > sub["limit"]).any())
                or not finite,
            }
        )
    overall = [r["rhat"] for r in rows if r["rhat"] is not None]
    return {
        "m": imp.m,
        "iterations": imp.spec.iterations,
        "rows": n_rows,
        # several grouping factors: the levels (outermost first) and further factors
        "cluster": (
            [
                *(getattr(imp.spec, "hierarchy", ()) or (imp.spec.cluster,)),
                *(f for f in getattr(imp.spec, "factors", ()) if f not in imp.spec.hierarchy),
            ]
            if getattr(imp.spec, "factors", ())
            else imp.spec.cluster
        ),
        "seed": imp.spec.seed,
        "variables": rows,
        "max_rhat": max(overall) if overall else None,
        "threshold": threshold,
        "n_iter": n_iter,
        "events": [str(e) for e in imp.events],
        "completion": completion,
    }


#: the line that stands for the R-hat line of an impute_new() result
COMPLETION_LINE = (
    "parameters fixed at the final states of the trained chains: no convergence "
    "diagnostics (the sweeps only fill the new rows' missing cells)"
)


def _rhat_note(s: dict) -> str:
    if s["threshold"] is None:
        if not s["variables"]:
            return "nothing imputed"
        from mlimpute.diagnostics import MIN_WARNING_ITERATIONS

        return f"not computed (fewer than {MIN_WARNING_ITERATIONS} iterations)"
    n_iter = s["n_iter"]
    worst = "n/a" if s["max_rhat"] is None else f"{s['max_rhat']:.3f}"
    return (
        f"{worst} over iterations {n_iter // 2 + 1}-{n_iter} "
        f"(warning above a limit per trace, lowest {s['threshold']:.3f})"
    )


def imputed_text(imp: MultiplyImputed) -> str:
    """A plain-text summary of an imputation result.

    Parameters
    ----------
    imp : MultiplyImputed

    Returns
    -------
    str
        A header with m, iterations, rows, cluster and seed; one line per imputed variable
        (cells imputed, % imputed, model, largest R-hat of its traces and the trace it
        belongs to, ``!`` when above the threshold of
        :func:`mlimpute.diagnostics.convergence_warning`, formula); the largest R-hat
        overall; the events, one per line.

    Examples
    --------
    >>> import mlimpute
    >>> from mlimpute.datasets import classroom
    >>> from mlimpute.result.display import imputed_text
    >>> df = classroom(1, rng=1).incomplete
    >>> imp = df.mi.impute({"grade": "~ skill + (1 | class)"}, m=3, iterations=10, rng=1)
    >>> print(imputed_text(imp))  # doctest: +ELLIPSIS
    MultiplyImputed: m=3, iterations=10, rows=600, cluster='class', seed=1
      grade   240 imputed (40.0 %)  2l.norm  R-hat ...  grade ~ skill + (1 | class)
    max R-hat (second half): ... over iterations 6-10 (warning above ...)
    events: none
    """
    s = _summary(imp)
    lines = [
        f"MultiplyImputed: m={s['m']}, iterations={s['iterations']}, rows={s['rows']}, "
        f"cluster={s['cluster']!r}, seed={s['seed']}"
    ]
    if s["completion"]:  # the iterations are the sweeps over the new rows
        lines[0] = lines[0].replace(": m=", " (new rows completed by impute_new()): m=", 1)
        lines[0] = lines[0].replace(", iterations=", ", sweeps=", 1)
    width = max([len(r["name"]) for r in s["variables"]], default=0)
    for r in s["variables"]:
        rhat = "n/a" if r["rhat"] is None else f"{r['rhat']:.3f} ({r['trace']})"
        flag = " !" if r["high"] else ""
        if not r["finite"]:
            flag += " non-finite draws"
        shown = "" if s["completion"] else f"  R-hat {rhat}{flag}"
        lines.append(
            f"  {r['name']:<{width}} {r['n']:>5} imputed ({r['pct']:4.1f} %)  "
            f"{r['method']}{shown}  {r['formula']}"
        )
    if s["completion"]:
        lines.append(COMPLETION_LINE)
    else:
        lines.append(f"max R-hat (second half): {_rhat_note(s)}")
    if s["events"]:
        lines.append(f"events ({len(s['events'])}):")
        lines += [f"  - {e}" for e in s["events"]]
    else:
        lines.append("events: none")
    return "\n".join(lines)


def imputed_html(imp: MultiplyImputed) -> str:
    """An HTML summary of an imputation result, for ``MultiplyImputed._repr_html_``.

    Parameters
    ----------
    imp : MultiplyImputed

    Returns
    -------
    str
        A self-contained HTML fragment: a header with m, iterations, rows, cluster and
        seed; a table of the imputed variables (cells imputed, % imputed, model, formula,
        largest R-hat of the variable's traces over the second half of the iterations and
        the trace it belongs to, in red when above the threshold of
        :func:`mlimpute.diagnostics.convergence_warning` or when a trace has non-finite
        draws); the largest R-hat overall; the events in a collapsible list. All text is
        HTML-escaped.

    Examples
    --------
    >>> import mlimpute
    >>> from mlimpute.datasets import classroom
    >>> from mlimpute.result.display import imputed_html
    >>> df = classroom(1, rng=1).incomplete
    >>> imp = df.mi.impute({"grade": "~ skill + (1 | class)"}, m=3, iterations=10, rng=1)
    >>> page = imputed_html(imp)
    >>> page.startswith("<div class=\\"mlimpute-imp\\">"), "2l.norm" in page
    (True, True)
    """
    s = _summary(imp)
    esc = html.escape
    head = (
        "<b>MultiplyImputed</b>"
        + (" (new rows completed by impute_new())" if s["completion"] else "")
        + f": m={s['m']}, {'sweeps' if s['completion'] else 'iterations'}={s['iterations']}, "
        f"rows={s['rows']}, cluster=<code>{esc(repr(s['cluster']))}</code>, "
        f"seed={esc(str(s['seed']))}"
    )
    body = []
    for r in s["variables"]:
        if r["rhat"] is None:
            rhat = "n/a"
        else:
            rhat = f"{r['rhat']:.3f} <small>({esc(r['trace'])})</small>"
        if not r["finite"]:
            rhat += " <small>non-finite draws</small>"
        cls = ' class="num high"' if r["high"] else ' class="num"'
        cell = "" if s["completion"] else f"<td{cls}>{rhat}</td>"
        body.append(
            f'<tr><td><b>{esc(r["name"])}</b></td><td class="num">{r["n"]}</td>'
            f'<td class="num">{r["pct"]:.1f} %</td><td>{esc(r["method"])}</td>'
            f"<td><code>{esc(r['formula'])}</code></td>{cell}</tr>"
        )
    table = (
        (
            "<table><thead><tr><th>variable</th><th>imputed</th><th>%</th><th>model</th>"
            "<th>formula</th>"
            + ("" if s["completion"] else "<th>max R-hat</th>")
            + "</tr></thead><tbody>"
            + "".join(body)
            + "</tbody></table>"
        )
        if body
        else "<p>Nothing was imputed.</p>"
    )
    if s["completion"]:
        rhat_line = f"<p>{esc(COMPLETION_LINE[0].upper() + COMPLETION_LINE[1:])}</p>"
    else:
        rhat_line = f"<p>Max R-hat (second half): {esc(_rhat_note(s))}</p>"
    if s["events"]:
        items = "".join(f"<li>{esc(e)}</li>" for e in s["events"])
        events = (
            f"<details><summary>Events ({len(s['events'])})</summary><ul>{items}</ul></details>"
        )
    else:
        events = "<p>Events: none</p>"
    return f'<div class="mlimpute-imp">{_STYLE}<p>{head}</p>{table}{rhat_line}{events}</div>'
