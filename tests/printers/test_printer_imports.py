"""Test that `printers` imports nothing of the project but `protocol` and itself."""

from __future__ import annotations

import ast
from pathlib import Path

import printers

FORBIDDEN = {"edge_agent", "central", "tests"}


def imported_packages(source: Path) -> set[str]:
    """Return the top-level names of every module that `source` imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_printers_imports_only_protocol_of_the_project() -> None:
    package = Path(printers.__file__).parent
    modules = sorted(package.glob("*.py"))
    assert len(modules) >= 10
    for module in modules:
        assert not imported_packages(module) & FORBIDDEN, module.name
