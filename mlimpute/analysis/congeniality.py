"""Does the imputation support the analysis? The check behind :class:`CompatibilityWarning`.

The imputation model should be at least as complicated as the analysis model. An
analysis term that involves an incomplete variable -- a random slope, an interaction or a
non-linear term (``I(x**2)``, ``np.log(x)``, ``poly(x, 2)``) -- is estimated without bias
only if the imputation models carried it:

* **chained equations** (``impute(formulas)`` or ``cluster=``): the model of an
  incomplete response must have the same term (the same random slope on the same
  cluster); for an interaction ``x:z`` of an incomplete predictor ``x``, the model of ``x``
  must have ``y:z``. A random slope or a non-linear function of an incomplete predictor
  has no counterpart in chained equations (the conditional model of ``x`` given a ``y``
  with a random slope on ``x`` is not a linear mixed model), so it is always reported,
  with a pointer to model-based imputation, ``impute(df, model=...)``, which draws such
  predictors from their full conditionals under the analysis model;
* **model-based imputation** (``impute(model=...)``): every such term of the analysis must
  be a term of the model the imputation was made for.

``C(x)`` counts as ``x``; cluster means and imputations made elsewhere
(:func:`~mlimpute.from_completed`) are not checked. :func:`check_congeniality` warns once
per :func:`~mlimpute.analysis.fit` call, naming every term at fault; it is a diagnostic and
never stops an analysis.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
from formulaic import Formula
from formulaic.errors import FormulaicError

from mlimpute.errors import CompatibilityWarning, FormulaError, warn
from mlimpute.spec.formula import ParsedFormula, _required

__all__ = ["check_congeniality", "incompatible_terms"]

Factor = tuple[str, bool]  # a factor's expression and whether it is a plain column


def check_congeniality(imp: Any, parsed: ParsedFormula) -> None:
    """Warn once (:class:`~mlimpute.errors.CompatibilityWarning`) if the analysis
    ``parsed`` has terms of incomplete variables that the imputation did not model.

    Parameters
    ----------
    imp : MultiplyImputed
        The imputations (anything else, e.g. :func:`~mlimpute.from_completed`, is not
        checked).
    parsed : ParsedFormula
        The analysis model.

    Examples
    --------
    >>> import warnings
    >>> import mlimpute
    >>> from mlimpute.spec.formula import parse_formula
    >>> d = mlimpute.datasets.classroom(3, rng=1, n_classes=10)
    >>> imp = d.incomplete.mi.impute({"grade": "~ skill + gender + relation + (1 | class)"},
    ...                              m=2, iterations=2, rng=1)
    >>> slope = parse_formula("grade ~ skill + gender + (1 + gender | class)")
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     check_congeniality(imp, slope)
    >>> msg = str(caught[0].message)
    >>> "random slope of gender on class" in msg, "model=" in msg
    (True, True)
    """
    try:
        notes = incompatible_terms(imp, parsed)
    except (FormulaicError, FormulaError):  # a diagnostic: never stops the analysis
        return
    if notes:
        warn(_message(imp, parsed, notes), CompatibilityWarning)


def incompatible_terms(imp: Any, parsed: ParsedFormula) -> list[str]:
    """One note per analysis term of an incomplete variable that the imputation did not
    model (the rules of the module docstring); empty if there is none.

    Examples
    --------
    >>> import mlimpute
    >>> from mlimpute.spec.formula import parse_formula
    >>> d = mlimpute.datasets.classroom(1, rng=1, n_classes=10)
    >>> imp = d.incomplete.mi.impute(d.imputation, m=2, iterations=2, rng=1)
    >>> incompatible_terms(imp, parse_formula("grade ~ skill + (1 | class)"))
    []
    """
    found = _imputed_frame(imp)
    y = parsed.response
    if found is None or y is None:
        return []
    spec, data = found
    incomplete = {c for c in data.columns if data[c].isna().any()}
    model = getattr(spec, "model", None)
    if model is not None:
        if str(model) == str(parsed):  # the model it was made for: compatible by construction
            return []
        return _against_model(parsed, model, incomplete)
    models = {v.name: v.formula for v in spec.variables if v.name in incomplete}
    if not models:
        return []
    return _against_chained(parsed, models)


# -- the two rules ---------------------------------------------------------------------------
def _analysis_terms(parsed: ParsedFormula):
    """``(part, factors, info, label, what, bias)`` for each term that needs checking: the
    random slopes, interactions and non-linear terms of the analysis."""
    text = parsed.text
    where = [("fixed", t, None) for t in _terms(parsed.fixed)]
    where += [("random", t, g) for b, g in parsed.random_terms for t in _terms(b.terms)]
    for part, factors, g in where:
        term = tuple(e for e, _ in factors)
        info = [_factor_vars(e, lookup, text) for e, lookup in factors]
        nonlinear = not all(plain for _, plain in info)
        if part == "fixed" and len(term) < 2 and not nonlinear:
            continue  # a main effect: every imputation model has it
        label = ":".join(term)
        what = (
            f"the random slope of {label} on {g}"
            if part == "random"
            else f"the interaction {label}"
            if len(term) > 1 and not nonlinear
            else f"the non-linear term {label}"
        )
        bias = (
            "estimates of its variance are biased toward zero"
            if part == "random"
            else "its estimate is biased toward zero"
            if not nonlinear
            else "its estimate is biased toward a linear relation"
        )
        yield part, term, info, what, bias, g


def _against_chained(parsed: ParsedFormula, models: dict[str, ParsedFormula]) -> list[str]:
    y = parsed.response

    def fixed(name: str) -> set[frozenset[str]]:
        return _term_set(_terms(models[name].fixed))

    def slopes(name: str, group: str | None) -> set[frozenset[str]]:
        f = models[name]
        return _term_set([t for b, h in f.random_terms if h == group for t in _terms(b.terms)])

    notes: list[str] = []
    for part, term, info, what, bias, g in _analysis_terms(parsed):
        reasons = []
        if y in models:
            have = slopes(y, g) if part == "random" else fixed(y)
            if frozenset(term) not in have:
                reasons.append(f"the imputation model of {y} does not include it")
        for expr, (names, plain) in zip(term, info, strict=True):
            for x in sorted(names & set(models) - {y}):
                if not plain:
                    reasons.append(
                        f"{x} is incomplete and imputed on its own scale, while "
                        f"the analysis uses {expr}"
                    )
                    continue
                if part == "random":  # x given y: not a model chained equations have
                    reasons.append(
                        f"{x} is incomplete, and its imputation model would need the random "
                        f"slope of {y} on {x}, which chained equations cannot represent (a "
                        f"random slope of {y} on {g} in the model of {x} only approximates it)"
                    )
                    continue
                need = frozenset(set(term) - {expr} | {y})
                if need not in fixed(x):
                    reasons.append(
                        f"{x} is incomplete and its imputation model lacks the "
                        "term " + ":".join(sorted(need))
                    )
        if reasons:
            notes.append(f"{what}: {'; '.join(dict.fromkeys(reasons))}; {bias}")
    return notes


def _against_model(parsed: ParsedFormula, model: ParsedFormula, incomplete: set[str]) -> list[str]:
    fixed = _term_set(_terms(model.fixed))
    random = {(g, t) for b, g in model.random_terms for t in _term_set(_terms(b.terms))}
    notes: list[str] = []
    for part, term, info, what, bias, g in _analysis_terms(parsed):
        used = set().union(*(names for names, _ in info)) | {parsed.response}
        if not used & incomplete:
            continue
        if (g, frozenset(term)) not in random if part == "random" else frozenset(term) not in fixed:
            notes.append(
                f"{what}: the analysis model of the imputation, {model.text!r}, does not "
                f"include it; {bias}"
            )
    return notes


def _message(imp: Any, parsed: ParsedFormula, notes: list[str]) -> str:
    head = (
        f"the analysis {parsed.text!r} has terms that the imputation did not model: "
        + " | ".join(notes)
    )
    if getattr(imp.spec, "model", None) is not None:
        return head + (
            f". Impute with an analysis model that includes them: "
            f"df.mi.impute(model={parsed.text!r}, ...)."
        )
    return head + (
        ". Impute with a model that includes them (for an incomplete response, a formula "
        "with the same terms) before analysing them; for an incomplete predictor, chained "
        "equations can only approximate them: impute from the analysis model itself, "
        f"df.mi.impute(model={parsed.text!r}, ...) (model-based imputation, which draws "
        "each missing value from its full conditional under that model)."
    )


# -- terms and their variables ---------------------------------------------------------------
def _imputed_frame(imp: Any) -> tuple[Any, pd.DataFrame] | None:
    """``(spec, observed data)`` of imputations made by mlimpute; None for others."""
    spec, data = getattr(imp, "spec", None), getattr(imp, "data", None)
    if spec is None or not isinstance(data, pd.DataFrame) or not hasattr(imp, "dataset"):
        return None
    return spec, data


def _terms(rhs: str) -> list[tuple[Factor, ...]]:
    """Terms of a formulaic right-hand side (intercept left out): per factor its
    expression and whether it is a column looked up as it is."""
    out = []
    for term in Formula(rhs):
        factors = tuple(
            (str(f.expr), f.eval_method.value == "lookup")
            for f in term.factors
            if str(f.expr) not in ("1", "0")
        )
        if factors:
            out.append(factors)
    return out


def _factor_vars(expr: str, lookup: bool, text: str) -> tuple[frozenset[str], bool]:
    """Data columns a factor uses and whether it uses them linearly (a column, ``C(x)``)."""
    if expr.startswith(("cmean(", "ranef(", "lmean(")):
        return frozenset(), True  # cluster means and random effects are not checked here
    if lookup:
        return frozenset({expr}), True
    plain = bool(re.fullmatch(r"C\(\s*`?[^,()`]+`?\s*\)", expr))
    return frozenset(n.strip("`") for n in _required(expr, text)), plain


def _term_set(terms: list[tuple[Factor, ...]]) -> set[frozenset[str]]:
    return {frozenset(e for e, _ in t) for t in terms}
