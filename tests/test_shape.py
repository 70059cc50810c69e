"""The code's shape stays one a newcomer can hold in their head (issue "Thin again").

Limits: in the component and the Klipper extra no class over 300 lines and no
function over 60; in the simulator and the other tools no class over 400; no
import circle anywhere outside the tests; the extra at most 300 lines a file
and 500 in all; a README of at most 200 lines with the reference in docs/.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPONENT = ROOT / "moonraker_component" / "panda_breath"
EXTRA = ROOT / "klipper_extra"
TOOLS = ROOT / "scripts"


def _sources(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _definitions(path: Path) -> Iterator[tuple[ast.AST, str, int]]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            yield node, f"{path.relative_to(ROOT)}:{node.lineno} {node.name}", length


def _too_long(folders: list[Path], class_limit: int, function_limit: int | None) -> list[str]:
    found = []
    for folder in folders:
        for path in _sources(folder):
            for node, where, length in _definitions(path):
                limit = class_limit if isinstance(node, ast.ClassDef) else function_limit
                if limit is not None and length > limit:
                    found.append(f"{where}: {length} lines (limit {limit})")
    return found


def test_component_and_extra_classes_and_functions_are_short() -> None:
    assert _too_long([COMPONENT, EXTRA], 300, 60) == []


def test_simulator_and_tools_classes_are_short() -> None:
    assert _too_long([TOOLS], 400, None) == []


def _module_name(path: Path, base: Path) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module: str, known: set[str]) -> set[str]:
    """The project modules ``module`` imports (absolute or relative), by name."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)] if node.level > 1 else anchor
                base = ".".join([*anchor, *([base] if base else [])])
            # ``from pkg import mod`` imports mod; ``from mod import name``, mod
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        else:
            continue
        found.update(name for name in names if name in known and name != module)
    return found


def _graph(base: Path, folders: list[Path]) -> dict[str, set[str]]:
    paths = {_module_name(p, base): p for folder in folders for p in _sources(folder)}
    known = set(paths)
    return {name: _imports(path, name, known) for name, path in paths.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


@pytest.mark.parametrize(
    "base, folders",
    [
        (ROOT / "moonraker_component", [COMPONENT]),
        (TOOLS, [TOOLS]),
        (EXTRA, [EXTRA]),
    ],
    ids=["component", "scripts", "extra"],
)
def test_no_import_circle(base: Path, folders: list[Path]) -> None:
    assert _cycles(_graph(base, folders)) == []


def test_cycle_finder_sees_a_circle() -> None:
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]


def test_extra_is_small() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in _sources(EXTRA)}
    assert all(n <= 300 for n in sizes.values()), sizes
    assert sum(sizes.values()) <= 500, sizes


def test_readme_is_short_and_the_reference_is_in_docs() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200
    for page in ("Config_Reference.md", "Status_Reference.md", "G-Codes.md", "Developing.md"):
        assert (ROOT / "docs" / page).is_file(), page
