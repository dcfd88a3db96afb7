"""Which runs used the compiled Gibbs step, on the record.

A result whose chains ran some model's step compiled (:mod:`mlimpute._numba`,
``MLIMPUTE_NUMBA=1``) says so in one event, :data:`COMPILED` followed by the variables.
Chains continued with the switch set the other way would agree with one longer run only to
round-off, so :func:`check_switch` warns before they go on. ``iterate()`` and ``extend()``
keep that record, and where they ran with the switch set the other way they add an event
saying which chains and iterations did (:func:`continued_events`, starting with
:data:`SWITCHED`), so later continuations still know how the result was made.
"""

from __future__ import annotations

from collections.abc import Sequence

from mlimpute.errors import MlimputeWarning, warn
from mlimpute.models.ml_norm import compiled_variables

__all__ = ["COMPILED", "SWITCHED", "compiled_event", "continued_events", "check_switch"]

#: the start of the event a result records when the compiled step ran some of its models
COMPILED = "compiled Gibbs step (MLIMPUTE_NUMBA=1) for: "
#: the start of the event a continued result records for chains and iterations that ran
#: with the switch set the other way than when the result was made
SWITCHED = "compiled step switched "


def compiled_event(plan) -> str | None:
    """The event recording the variables whose step runs compiled on ``plan`` now (the
    switch read at this call), or None where there are none.

    Examples
    --------
    >>> from mlimpute.datasets import classroom
    >>> from mlimpute.sampler.engine import build_plan
    >>> from mlimpute.spec.build import build_spec
    >>> df = classroom(1, rng=1).incomplete
    >>> plan = build_plan(df, build_spec(df, {"grade": "~ skill + (1 | class)"}, m=1))
    >>> print(compiled_event(plan))  # the compiled step is off unless MLIMPUTE_NUMBA=1
    None
    """
    names = compiled_variables(plan.models, plan.data)
    return COMPILED + ", ".join(names) if names else None


def _made_compiled(events: Sequence[str]) -> bool:
    return any(str(e).startswith(COMPILED) for e in events)


def _span(what: str, first: int, last: int) -> str:
    """``"iterations 4–5"``, ``"chain 3"`` (1-based, inclusive)."""
    return f"{what} {first}" if first == last else f"{what}s {first}–{last}"


def continued_events(
    events: Sequence[str], plan, chains: tuple[int, int], iterations: tuple[int, int]
) -> list[str]:
    """The compiled-step record of a result continued from one with ``events``: the old
    record kept (:data:`COMPILED` and earlier :data:`SWITCHED` events), and where the
    switch is now set the other way than when the result was made, an event saying that
    ``chains`` and ``iterations`` (1-based, inclusive ``(first, last)``) ran the other way.

    Examples
    --------
    >>> from mlimpute.datasets import classroom
    >>> from mlimpute.sampler.engine import build_plan
    >>> from mlimpute.spec.build import build_spec
    >>> df = classroom(1, rng=1).incomplete
    >>> plan = build_plan(df, build_spec(df, {"grade": "~ skill + (1 | class)"}, m=2))
    >>> made = [COMPILED + "grade"]  # made compiled; continued now with the switch off
    >>> continued_events(made, plan, (1, 2), (4, 5))[1].split(": ", 1)[1]
    'chains 1–2, iterations 4–5 ran with the numpy step (MLIMPUTE_NUMBA=0)'
    """
    kept = [str(e) for e in events if str(e).startswith((COMPILED, SWITCHED))]
    now = compiled_event(plan)
    made = _made_compiled(events)
    if made == (now is not None):
        return kept
    where = f"{_span('chain', *chains)}, {_span('iteration', *iterations)}"
    if made:
        kept.append(f"{SWITCHED}off: {where} ran with the numpy step (MLIMPUTE_NUMBA=0)")
    else:
        kept.append(f"{SWITCHED}on: {where} ran with the {now}")
    return kept


def check_switch(events: Sequence[str], plan, what: str) -> None:
    """Warn where a result with ``events`` was made with the compiled step switched the
    other way than it is now for ``plan``: its chains would go on with numbers equal to
    round-off, not bit for bit those of one longer run. The switch compared is the one the
    result was made with (its :data:`COMPILED` event), also after continuations that ran
    the other way."""
    before = _made_compiled(events)
    if before == (compiled_event(plan) is not None):
        return
    was, now, set_to = ("on", "off", "1") if before else ("off", "on", "0")
    warn(
        f"{what}: this result was made with the compiled Gibbs step switched {was}, and "
        f"it is switched {now} now: the continued chains agree with one longer run to "
        f"round-off, not bit for bit; set the environment variable MLIMPUTE_NUMBA={set_to} "
        "to continue them exactly",
        MlimputeWarning,
    )
