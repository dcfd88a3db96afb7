"""Methods that forward to a module-level function and show its documentation.

``df.mi.impute`` and ``imp.fit`` call :func:`mlimpute.impute` and
:func:`mlimpute.analysis.fit`. They are written with the real signature (so
``inspect.signature`` and Jupyter's Shift-Tab list every option); :func:`forwards` gives
them the full docstring of the function they call, read the first time the method is looked
up, so the heavy module is imported only when the method is used or its help is shown.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable
from typing import Any

__all__ = ["forwards"]

_SECTION = re.compile(r"^([A-Z][A-Za-z ]+)\n-{3,}\n", re.MULTILINE)


def _sections(doc: str) -> tuple[str, list[tuple[str, str]]]:
    """Split a cleaned numpydoc docstring into its summary part and (title, body) sections."""
    hits = list(_SECTION.finditer(doc))
    head = doc[: hits[0].start()] if hits else doc
    out = []
    for i, hit in enumerate(hits):
        end = hits[i + 1].start() if i + 1 < len(hits) else len(doc)
        out.append((hit.group(1), doc[hit.end() : end]))
    return head, out


def _drop_parameters(body: str, names: tuple[str, ...]) -> str:
    """Remove the entries of ``names`` from a Parameters section body."""
    lines, out, skip = body.splitlines(keepends=True), [], False
    for line in lines:
        if line and not line[0].isspace():
            skip = line.split(":")[0].strip() in names
        if not skip:
            out.append(line)
    return "".join(out)


def merged_doc(own: str | None, target: Callable, drop: tuple[str, ...]) -> str:
    """``own``'s summary, ``target``'s description and sections (without the parameters in
    ``drop``; without a Parameters section when none is left), then ``own``'s Examples (or
    else ``target``'s)."""
    own_head, own_sections = _sections(inspect.cleandoc(own or ""))
    target_head, target_sections = _sections(inspect.cleandoc(target.__doc__ or ""))
    own_examples = [s for s in own_sections if s[0] == "Examples"]
    parts = [own_head.rstrip() + "\n\n"]
    extended = target_head.strip().partition("\n\n")[2].strip()  # after its summary
    if extended:
        parts.append(extended + "\n\n")
    for title, body in target_sections:
        if title == "Examples" and own_examples:
            continue
        if title == "Parameters":
            body = _drop_parameters(body, drop)
            if not body.strip():  # every parameter dropped: no section (numpydoc)
                continue
        parts.append(f"{title}\n{'-' * len(title)}\n{body.rstrip()}\n\n")
    for title, body in own_examples:
        parts.append(f"{title}\n{'-' * len(title)}\n{body.rstrip()}\n")
    return "".join(parts).rstrip() + "\n"


class forwards:  # noqa: N801  (used as a decorator)
    """Decorator for a method that forwards to ``module:function``.

    The method keeps its own signature (write the real one); on first look-up its
    ``__doc__`` becomes its own summary line followed by the target's Parameters, Returns,
    Raises, Notes... sections (without the entries named in ``drop``, e.g. the DataFrame
    the accessor supplies, and without a Parameters section left empty) and its own
    Examples.
    """

    def __init__(self, target: str, *, drop: tuple[str, ...] = ()):
        self.target = target
        self.drop = drop
        self.func: Callable | None = None
        self.done = False

    def __call__(self, func: Callable) -> forwards:
        self.func = func
        self.__doc__ = func.__doc__  # what doctest reads: the method's own example
        self.__module__ = func.__module__
        self.__wrapped__ = func
        return self

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, cls: type | None = None) -> Any:
        func = self.func
        if not self.done:
            self.done = True
            module, attr = self.target.split(":")
            target = getattr(importlib.import_module(module), attr)
            func.__doc__ = merged_doc(func.__doc__, target, self.drop)
        return func if obj is None else func.__get__(obj, cls)
