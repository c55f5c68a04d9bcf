"""The CLI skeleton: version, help everywhere, verbose logging."""

from __future__ import annotations

import typer

from recagent import __version__
from recagent.cli import app


def _all_command_paths(group: typer.Typer) -> list[list[str]]:
    import click

    root = typer.main.get_command(group)
    paths: list[list[str]] = [[]]

    def walk(cmd: click.Command, prefix: list[str]) -> None:
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                paths.append([*prefix, name])
                walk(sub, [*prefix, name])

    walk(root, [])
    return paths


def test_version(cli) -> None:
    result = cli("--version")
    assert result.exit_code == 0
    assert __version__ in result.stdout


def test_help_everywhere(cli) -> None:
    for path in _all_command_paths(app):
        result = cli(*path, "--help")
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.stdout


def test_no_args_shows_help(cli) -> None:
    result = cli()
    assert "Usage" in result.output


def test_verbose_flag_is_accepted(cli) -> None:
    result = cli("-vv", "data", "list")
    assert result.exit_code == 0


def test_bracketed_defaults_survive_rich_markup(cli) -> None:
    assert "RECAGENT_HOME" in cli("--help").stdout
    assert "'year' if present" in cli("data", "prepare", "--help").stdout
