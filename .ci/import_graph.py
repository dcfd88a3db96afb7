"""The import graph of mlimpute, drawn from the code (every import, including those inside
functions), and its cycles.

    python .ci/import_graph.py             # stage graph, cycles between stages and modules
    python .ci/import_graph.py --modules   # also every module-level edge
    python .ci/import_graph.py --contract  # without the upward imports that pyproject.toml's
                                           # layers contract lists (the convenience methods)

A "stage" is a subpackage (mlimpute/spec, mlimpute/result ...) or a top-level module
(mlimpute/impute.py ...). Imports under ``if TYPE_CHECKING:`` are listed apart: they never run.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "mlimpute"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = getattr(test, "id", None) or getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                for sub in node.body:
                    for n in ast.walk(sub):
                        if hasattr(n, "lineno"):
                            lines.add(n.lineno)
    return lines


def imports(modules: dict[str, Path]) -> list[tuple[str, str, int, str]]:
    """(importer, imported, line, kind) with kind 'top', 'function' or 'type-checking'."""
    out = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        is_pkg = path.name == "__init__.py"
        tc = _type_checking_lines(tree)
        top_level = {id(n) for n in tree.body}
        for stmt in tree.body:  # module-level statements nested in if/try count as top
            if isinstance(stmt, ast.If | ast.Try):
                top_level.update(id(n) for n in ast.walk(stmt))
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                targets = [
                    f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names
                ]
            for t in targets:
                while t and t not in modules and "." in t:
                    t = t.rsplit(".", 1)[0]
                if t in modules and t != name:
                    kind = (
                        "type-checking"
                        if node.lineno in tc
                        else "top"
                        if id(node) in top_level
                        else "function"
                    )
                    out.append((name, t, node.lineno, kind))
    return out


def stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def sccs(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    sys.setrecursionlimit(10000)

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def elementary_cycles(graph: dict[str, set[str]], limit: int = 100000) -> list[list[str]]:
    """Every simple cycle (each reported once, from its smallest node); small graphs only."""
    nodes = sorted(graph)
    found: list[list[str]] = []
    for first in nodes:

        def dfs(v: str, start: str = first, path: list[str] = [first]) -> None:  # noqa: B006
            for w in sorted(graph.get(v, ())):
                if len(found) >= limit:
                    return
                if w == start:
                    found.append(list(path))
                elif w > start and w not in path:
                    path.append(w)
                    dfs(w, start, path)
                    path.pop()

        dfs(first, first, [first])
    return found


def contract_exceptions() -> set[tuple[str, str]]:
    """The (importer, imported) pairs the layers contract of pyproject.toml ignores."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    out = set()
    for contract in config["tool"]["importlinter"]["contracts"]:
        if contract.get("type") == "layers":
            for entry in contract.get("ignore_imports", []):
                a, b = (x.strip() for x in entry.split("->"))
                out.add((a, b))
    return out


def main(argv: list[str]) -> int:
    mods = all_modules()
    edges = imports(mods)
    runtime = [e for e in edges if e[3] != "type-checking"]
    if "--contract" in argv:
        skip = contract_exceptions()
        runtime = [e for e in runtime if (e[0], e[1]) not in skip]
        print(f"(without the {len(skip)} upward imports the layers contract lists)\n")
    mgraph: dict[str, set[str]] = defaultdict(set)
    sgraph: dict[str, set[str]] = defaultdict(set)
    for a, b, _, _ in runtime:
        mgraph[a].add(b)
        if stage(a) != stage(b):
            sgraph[stage(a)].add(stage(b))
    print("stage graph (runtime imports, top level or inside functions):")
    for s in sorted(sgraph):
        print(f"  {s} -> {', '.join(sorted(sgraph[s]))}")
    scycles = elementary_cycles(sgraph)
    print(f"\nstage cycles: {len(scycles)}")
    for c in scycles:
        print("  " + " -> ".join(c + [c[0]]))
    comps = sccs(mgraph)
    print(f"\nmodule circles (strongly connected components): {len(comps)}")
    for c in comps:
        print(f"  {len(c)} modules: {', '.join(c)}")
    mcycles = elementary_cycles(mgraph, limit=100000)
    print(f"module-level elementary cycles: {len(mcycles)}{'+' if len(mcycles) >= 100000 else ''}")
    if "--modules" in argv:
        print("\nedges:")
        for a, b, line, kind in sorted(edges):
            print(f"  {a} -> {b}  (line {line}, {kind})")
    return 1 if comps else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
