"""The package's shape, checked: no import cycle, no private of another library reached by its
mangled name, one error base, and no Hetzner error code matched inside a message."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import scherbelberg
from scherbelberg.errors import ScherbelbergError

PACKAGE = Path(scherbelberg.__file__).parent
# files copied to nodes and run there alone (standard library only): they cannot import the
# package's errors, and what they raise never reaches a user of the package
STANDALONE = {"scherbelberg.bootstrap.node_reaper", "scherbelberg.bootstrap.idle"}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """Every module of `known` that `path` imports: at module level, inside functions and
    under `if TYPE_CHECKING:` alike (each is an arrow a reader follows)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                origin = ".".join([*base, node.module] if node.module else base)
            else:
                origin = node.module or ""
            for alias in node.names:
                submodule = f"{origin}.{alias.name}"
                found.add(submodule if submodule in known else origin)
    return {m for m in found if m in known and m != name}


def import_graph(root: Path) -> dict[str, set[str]]:
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    known = set(files)
    return {name: imports_of(path, name, known) for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_walker_finds_a_cycle_and_passes_a_tree(tmp_path: Path) -> None:
    toy = tmp_path / "toy"
    (toy / "sub").mkdir(parents=True)
    (toy / "__init__.py").write_text("")
    (toy / "sub" / "__init__.py").write_text("")
    (toy / "a.py").write_text("from . import b\n")
    (toy / "b.py").write_text("def f():\n    from .sub import c\n")
    (toy / "sub" / "c.py").write_text("from typing import TYPE_CHECKING\n")
    assert cycles(import_graph(toy)) == []
    (toy / "sub" / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..a import x\n"
    )
    assert cycles(import_graph(toy)) == [["toy.a", "toy.b", "toy.sub.c"]]


def test_no_import_cycle_in_the_package() -> None:
    assert cycles(import_graph(PACKAGE)) == []


def test_no_mangled_private_and_no_locals_trick() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{number}"
        for path in PACKAGE.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"_SpecCluster__|\blocals\(\)", line)
    ]
    assert offenders == []


def test_every_error_class_derives_from_the_one_base() -> None:
    outside: list[str] = []
    for info in pkgutil.walk_packages([str(PACKAGE)], "scherbelberg."):
        if info.name in STANDALONE or info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__ or not issubclass(cls, BaseException):
                continue
            if not issubclass(cls, ScherbelbergError):
                outside.append(f"{module.__name__}.{cls.__name__}")
    assert outside == []


def test_no_error_code_matched_in_a_message() -> None:
    """Hetzner's codes are `HetznerError.code` (and the emulator's `ApiError.code`): matching
    them, or anything else, inside an exception's text breaks when a message is reworded."""
    pattern = re.compile(r"""in str\((exc|err|error|e)\)|["']\(\w+\)["'] in """)
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}"
        for path in PACKAGE.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []


@pytest.mark.parametrize("name", sorted(STANDALONE))
def test_standalone_files_import_only_the_standard_library(name: str) -> None:
    """Why they may keep errors of their own: they run on a node without the package."""
    path = PACKAGE.parent / (name.replace(".", "/") + ".py")
    tree = ast.parse(path.read_text())
    imported = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not any(m.startswith("scherbelberg") or m == "" for m in imported), imported
