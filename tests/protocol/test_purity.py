"""`protocol/` does no I/O: no sockets, files, databases, clocks or randomness."""

import ast
from pathlib import Path

import protocol

BANNED_MODULES = {
    "socket",
    "sqlite3",
    "requests",
    "flask",
    "serial",
    "os",
    "sys",
    "time",
    "random",
    "secrets",
    "subprocess",
    "threading",
    "asyncio",
    "urllib",
    "http",
    "pathlib",
    "io",
    "shutil",
    "tempfile",
    "logging",
    "sqlalchemy",
    "psycopg",
    "uuid",
    "zeroconf",
}
BANNED_CALLS = {"now", "utcnow", "today", "open", "print", "input", "urandom"}


def _modules():
    root = Path(protocol.__file__).parent
    return sorted(root.rglob("*.py"))


def test_protocol_imports_nothing_that_does_io():
    offenders = []
    for path in _modules():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in BANNED_MODULES or top in {"central", "edge_agent", "printers"}:
                    offenders.append(f"{path.name}: import {name}")
    assert offenders == []


def test_protocol_reads_no_clock_and_opens_nothing():
    offenders = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in BANNED_CALLS:
                    offenders.append(f"{path.name}:{node.lineno} {name}()")
    assert offenders == []


def test_the_rule_is_written_at_the_top_of_the_package():
    assert "cannot do any I/O" in protocol.__doc__
