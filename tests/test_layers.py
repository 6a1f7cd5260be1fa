"""The house's layers, pinned: no import cycle inside jexkv, and a client layer (jexkv/resp)
that stands alone, so that the parser loads alone and the asyncio client can sit beside the
sync one. Read from the source with ast (imports at any depth, those only for type
checkers left out), and checked once for real in a fresh interpreter."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import jexkv

PACKAGE = pathlib.Path(jexkv.__file__).resolve().parent


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(module: str) -> set[str]:
    """The jexkv modules ``module`` imports, at any depth, when it runs."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in MODULES else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {name for name in found if name in MODULES and name != module}


GRAPH = {module: _imports(module) for module in MODULES}


def _cycles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(GRAPH[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(GRAPH):
        if node not in index:
            connect(node)
    return found


def test_no_import_cycle_inside_jexkv() -> None:
    assert _cycles() == []


def test_the_client_layer_imports_nothing_of_jexkv_but_the_error_tree() -> None:
    allowed = {"jexkv", "jexkv.errors"}
    for module, imported in GRAPH.items():
        if module == "jexkv.resp" or module.startswith("jexkv.resp."):
            outside = {m for m in imported if not m.startswith("jexkv.resp")} - allowed
            assert outside == set(), f"{module} imports {sorted(outside)}"


def test_the_lower_layers_know_nothing_of_the_adapters() -> None:
    lower = ["jexkv.errors", "jexkv.codec", "jexkv.clock", "jexkv.jobs", "jexkv.namespaces",
             "jexkv.wakeups", "jexkv.worker", "jexkv.taskqueue", "jexkv.contracts"]  # fmt: skip
    adapters = ("jexkv.memory", "jexkv.sqlite", "jexkv.redis", "jexkv.resp", "jexkv.urls")
    for module in lower:
        reached = {m for m in GRAPH[module] if m.startswith(adapters)}
        assert reached == set(), f"{module} imports {sorted(reached)}"


def test_the_parser_loads_alone() -> None:
    code = (
        "import jexkv.resp.protocol, sys\n"
        "print(sorted(m for m in sys.modules if m.startswith('jexkv')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=PACKAGE.parent,
    ).stdout
    assert ast.literal_eval(out) == ["jexkv", "jexkv.errors", "jexkv.resp", "jexkv.resp.protocol"]


def test_the_checker_sees_a_cycle() -> None:
    GRAPH["jexkv.errors"].add("jexkv.codec")
    try:
        assert _cycles() != []
    finally:
        GRAPH["jexkv.errors"].discard("jexkv.codec")
