"""The modules of secured_bio.genomics import each other in one direction only (issue 14).

The graph is built from every ``import``/``from`` statement of the source, including those
inside functions and ``if TYPE_CHECKING:`` blocks, so a circle hidden behind a late import is
still a circle here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import secured_bio.genomics

PACKAGE = "secured_bio.genomics"
ROOT = Path(secured_bio.genomics.__file__).parent


def _module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join([PACKAGE, *parts])


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Map each module of the package to the package modules it imports (statically)."""
    modules = {_module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative import
                    anchor = name.split(".") if is_pkg else name.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                # ``from pkg import sub`` imports the submodule pkg.sub
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]
            for target in targets:
                while target and target not in modules:  # a.b.c.attr -> the module a.b.c
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_import_graph__finds_a_function_level_circle(tmp_path: Path) -> None:
    pkg = tmp_path / "genomics"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from secured_bio.genomics.b import f\n")
    (pkg / "b.py").write_text("def f():\n    from secured_bio.genomics import a\n")
    (pkg / "c.py").write_text("from . import a\n")
    graph = import_graph(pkg)
    assert graph[f"{PACKAGE}.b"] == {f"{PACKAGE}.a"}
    assert graph[f"{PACKAGE}.c"] == {f"{PACKAGE}.a"}
    assert find_cycles(graph) == [[f"{PACKAGE}.a", f"{PACKAGE}.b"]]


def test_import_graph__genomics_has_no_circles() -> None:
    graph = import_graph()
    assert f"{PACKAGE}.store" in graph[f"{PACKAGE}.qc"]  # the graph sees the package
    cycles = find_cycles(graph)
    assert cycles == [], (
        "import circles in secured_bio.genomics (move what both sides need to a module "
        f"below them): {cycles}"
    )
