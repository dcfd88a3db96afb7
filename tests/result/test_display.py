"""Tests of mlimpute.result.display: the HTML and text summaries of a MultiplyImputed."""

from __future__ import annotations

import sys
import warnings
import xml.etree.ElementTree as ET

import numpy as np

import mlimpute  # noqa: F401  (registers .mi)
from mlimpute.datasets import classroom
from mlimpute.diagnostics import rhat_table
from mlimpute.result.display import imputed_html, imputed_text
from mlimpute.result.imputed import MultiplyImputed


def edited(imp, edit, events=None) -> MultiplyImputed:
    """A copy of ``imp`` with iid normal traces over 40 iterations, then ``edit(ds)``."""
    rng = np.random.default_rng(5)
    ds = imp.dataset.isel(iteration=np.arange(40) % 10)
    ds = ds.assign_coords(iteration=np.arange(1, 41)).copy(deep=True)
    for name in imp.traces.data_vars:
        ds[name].values = rng.normal(size=ds[name].shape)
    edit(ds)
    return MultiplyImputed(ds, imp.data, imp.spec, imp.events if events is None else events)


def test_html_is_well_formed_and_lists_the_run(imp):
    page = imputed_html(imp)
    root = ET.fromstring(page)  # well-formed XHTML fragment
    assert root.get("class") == "mlimpute-imp"
    cells = [[td.text or "".join(td.itertext()) for td in tr] for tr in root.iter("tr")]
    assert cells[0] == ["variable", "imputed", "%", "model", "formula", "max R-hat"]
    body = {row[0]: row for row in cells[1:]}
    assert list(body) == ["relation", "grade"]
    for v in imp.spec.variables:
        row = body[v.name]
        k = imp.dataset.sizes[f"{v.name}:row"]
        assert row[1] == str(k)
        assert row[2] == f"{100 * k / len(imp.data):.1f} %"
        assert row[3] == v.method
        assert row[4] == str(v.formula)
    text = "".join(root.itertext())
    assert "m=3, iterations=10, rows=600" in text and "seed=1" in text
    table = rhat_table(imp)
    worst = table.loc[table["rhat"].idxmax()]
    assert f"{worst['rhat']:.3f}" in text
    assert "iterations 6-10" in text
    # a short run may carry a convergence event; whatever it has is listed
    assert ("Events: none" in text) if not imp.events else (f"Events ({len(imp.events)})" in text)


def test_high_rhat_and_non_finite_draws_are_highlighted(imp):
    def edit(ds):
        ds["grade:params"].loc[{"imputation": 2, "grade:param": "skill"}] += 10.0
        ds["sd"].loc[{"imputation": 1, "iteration": 30, "variable": "relation"}] = np.inf

    bad = edited(imp, edit)
    root = ET.fromstring(imputed_html(bad))
    rows = {tr[0].text or "".join(tr[0].itertext()): tr for tr in root.iter("tr")}
    grade_rhat = rows["grade"][5]
    assert "high" in grade_rhat.get("class") and "(skill)" in "".join(grade_rhat.itertext())
    assert "non-finite draws" in "".join(rows["relation"][5].itertext())
    text = imputed_text(bad)
    assert "(skill) !" in text and "non-finite draws" in text
    healthy = edited(imp, lambda ds: None)
    assert "high" not in imputed_html(healthy).split("</style>")[1]
    assert " !" not in imputed_text(healthy)


def test_events_are_listed_and_escaped(imp):
    events = ["grade: dropped <collinear> & unused predictor", "second event"]
    res = MultiplyImputed(imp.dataset, imp.data, imp.spec, events)
    page = imputed_html(res)
    assert "&lt;collinear&gt; &amp; unused" in page and "<collinear>" not in page
    root = ET.fromstring(page)
    assert [li.text for li in root.iter("li")] == events
    assert "Events (2)" in "".join(root.itertext())
    text = imputed_text(res)
    assert "events (2):" in text and "  - second event" in text


def test_short_runs_and_nothing_imputed():
    df = classroom(1, rng=1).incomplete
    short = df.mi.impute({"grade": "~ skill + (1 | class)"}, m=2, iterations=5, rng=1)
    assert "fewer than 8 iterations" in imputed_html(short)
    assert "R-hat n/a" in imputed_text(short)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        empty = classroom(1, rng=1).complete.mi.impute(
            {"grade": "~ skill + (1 | class)"}, m=2, iterations=4, rng=1
        )
    page = imputed_html(empty)
    ET.fromstring(page)
    assert "Nothing was imputed." in page
    assert imputed_text(empty).splitlines()[1] == "max R-hat (second half): nothing imputed"


def test_text_summary(imp):
    text = imputed_text(imp)
    lines = text.splitlines()
    assert lines[0] == "MultiplyImputed: m=3, iterations=10, rows=600, cluster='class', seed=1"
    assert lines[1].lstrip().startswith("relation")
    assert "2l.norm" in lines[2] and str(imp.spec.variables[1].formula) in lines[2]
    assert (
        (lines[-1] == "events: none")
        if not imp.events
        else (f"events ({len(imp.events)}):" in text)
    )


def test_summaries_do_not_modify_the_result(imp):
    before = imp.dataset.copy(deep=True)
    imputed_html(imp)
    imputed_text(imp)
    assert imp.dataset.identical(before)


def test_progress_bar_by_default_in_notebooks_and_terminals_never_under_ci(monkeypatch):
    import mlimpute.result.display
    from mlimpute.impute import _progress_bar

    monkeypatch.setattr(mlimpute.result.display, "in_notebook", lambda: True)
    monkeypatch.delenv("CI", raising=False)
    bar = _progress_bar(None, 10)
    assert bar is not None
    bar.close()
    monkeypatch.setenv("CI", "true")
    assert _progress_bar(None, 10) is None
    monkeypatch.setattr(mlimpute.result.display, "in_notebook", lambda: False)
    monkeypatch.delenv("CI")
    assert (_progress_bar(None, 10) is None) == (not sys.stderr.isatty())
    assert _progress_bar(False, 10) is None


def test_not_in_a_notebook_under_pytest():
    from mlimpute.result.display import in_notebook

    assert in_notebook() is False


def test_a_completion_of_new_rows_shows_no_convergence_diagnostics():
    df = classroom(2, rng=1).incomplete
    imp = df.mi.impute(cluster="class", m=2, iterations=7, rng=5)
    new = df.iloc[:10].copy()
    new["grade"] = np.nan
    out = imp.impute_new(new, rng=4)  # 10 sweeps: enough for R-hat to be computed
    text = imputed_text(out)
    assert "R-hat" not in text and "non-finite" not in text and " !" not in text
    assert text.startswith("MultiplyImputed (new rows completed by impute_new()): m=2, sweeps=10")
    assert "parameters fixed at the final states of the trained chains" in text
    page = imputed_html(out)
    ET.fromstring(page)
    assert (
        "R-hat" not in page and "non-finite" not in page and "high" not in page.split("</style>")[1]
    )
    assert "Parameters fixed at the final states of the trained chains" in page
    assert "R-hat" in imputed_text(imp)  # the training run's summary keeps them
