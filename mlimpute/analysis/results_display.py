"""How a pooled result shows itself: as text (``print(res)``) and as HTML in a notebook.

``_PooledDisplay`` is a base class of :class:`~mlimpute.analysis.results.PooledResult`:
the header (model, formula, imputations, groups, complete-data df), the table of pooled
estimates, the variance components and the notes.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

__all__: list[str] = []

_RULE = 88


class _PooledDisplay:
    """The text and HTML display of a :class:`~mlimpute.analysis.results.PooledResult`
    (a base class of it)."""

    def _header(self) -> list[tuple[str, str]]:
        rows = [("Model", self.model)]
        if self.formula:
            rows.append(("Formula", self.formula))
        rows.append(("Imputations", str(self.m)))
        if self.nobs is not None:
            rows.append(("Observations", str(self.nobs)))
        if isinstance(self.group, tuple):  # several grouping factors
            shown = ", ".join(f"{g} ({j})" for g, j in zip(self.group, self.n_groups, strict=True))
            rows.append(("Groups", shown))
        elif self.group is not None:
            rows.append(("Groups", f"{self.group} ({self.n_groups})"))
        rows.append(("Complete-data df", _fmt_num(self.dfcom)))
        rows.append(("Pooling", "Rubin's rules, Barnard-Rubin df"))
        return rows

    def _table_strings(self) -> pd.DataFrame:
        tab = self.summary()
        out = pd.DataFrame(index=tab.index.rename(None))
        for col in ["estimate", "se", "t"]:
            out[col] = tab[col].map(lambda v: f"{v:.4g}" if abs(v) >= 1e4 else f"{v:.3f}")
        out["df"] = tab["df"].map(_fmt_num)
        out["p"] = tab["p"].map(lambda v: "<0.001" if v < 0.001 else f"{v:.3f}")
        out["[0.025"] = tab["ci_low"].map(lambda v: f"{v:.3f}")
        out["0.975]"] = tab["ci_high"].map(lambda v: f"{v:.3f}")
        out["fmi"] = tab["fmi"].map(lambda v: f"{v:.3f}")
        return out

    def __str__(self) -> str:
        title = "Multiply imputed analysis"
        lines = [title.center(_RULE), "=" * _RULE]
        lines += [f"{k + ':':<18}{v}" for k, v in self._header()]
        lines.append("-" * _RULE)
        lines.append(self._table_strings().to_string())
        if self._vc is not None:
            lines.append("-" * _RULE)
            vc = self.variance_components()
            vc.index.name = None
            lines.append("Variance components (mean over imputations):")
            lines.append(vc.to_string(float_format=lambda v: f"{v:.4f}"))
        lines.append("=" * _RULE)
        lines += [f"Note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.__str__()

    def _repr_html_(self) -> str:
        head = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
            f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
            for k, v in self._header()
        )
        parts = [
            "<div><b>Multiply imputed analysis</b>",
            f"<table>{head}</table>",
            self._table_strings().to_html(),
        ]
        if self._vc is not None:
            parts.append(self.variance_components().to_html(float_format=lambda v: f"{v:.4f}"))
        parts += [f"<p><b>Note:</b> {html.escape(n)}</p>" for n in self.notes]
        parts.append("</div>")
        return "\n".join(parts)


def _fmt_num(v: float) -> str:
    if np.isinf(v):
        return "inf"
    return f"{v:.0f}" if v >= 1e4 or float(v).is_integer() else f"{v:.2f}"
