"""Which runs used the compiled Gibbs step, on the record.

A result whose chains ran some model's step compiled (:mod:`mlimpute._numba`,
``MLIMPUTE_NUMBA=1``) says so in one event, :data:`COMPILED` followed by the variables.
Chains continued with the switch set the other way would agree with one longer run only to
round-off, so :func:`check_switch` warns before they go on.
"""

from __future__ import annotations

from collections.abc import Sequence

from mlimpute.errors import MlimputeWarning, warn
from mlimpute.models.ml_norm import compiled_variables

__all__ = ["COMPILED", "compiled_event", "check_switch"]

#: the start of the event a result records when the compiled step ran some of its models
COMPILED = "compiled Gibbs step (MLIMPUTE_NUMBA=1) for: "


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


def check_switch(events: Sequence[str], plan, what: str) -> None:
    """Warn where a result with ``events`` was made with the compiled step switched the
    other way than it is now for ``plan``: its chains would go on with numbers equal to
    round-off, not bit for bit those of one longer run."""
    before = any(str(e).startswith(COMPILED) for e in events)
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
