"""Walk a click command tree: every command must have help with an example."""

from __future__ import annotations

from collections.abc import Iterator

import click
from click.testing import CliRunner


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Yield the path of every command and group under `group`."""
    for name, cmd in group.commands.items():
        path = (*prefix, name)
        if isinstance(cmd, click.Group):
            yield from command_paths(cmd, path)
        yield path


def check_help(main: click.Group, path: tuple[str, ...], program: str) -> None:
    """Assert that `program PATH --help` works and shows an example for a leaf command."""
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    cmd: click.Command = main
    for name in path:
        assert isinstance(cmd, click.Group)
        cmd = cmd.commands[name]
    if not isinstance(cmd, click.Group):
        assert "Example:" in result.output and program in result.output
