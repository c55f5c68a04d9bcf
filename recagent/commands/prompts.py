"""`recagent prompts ...`: list, show, edit, diff, reset and validate the prompt templates."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.syntax import Syntax
from rich.table import Table

from recagent.commands.context import AppContext, get_context
from recagent.errors import ConfigError
from recagent.prompts.registry import PromptError, PromptRegistry
from recagent.terminal import printable
from recagent.workspace import atomic_write_text

app = typer.Typer(
    help="Prompt templates: shipped defaults, overridden by files in $RECAGENT_HOME/prompts/.",
    no_args_is_help=True,
)
NameArg = Annotated[str, typer.Argument(help="Prompt name (see `recagent prompts list`).")]


def registry_for(app_ctx: AppContext) -> PromptRegistry:
    return PromptRegistry(app_ctx.workspace.prompts_dir)


@app.command("list")
def list_cmd(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every prompt, where it comes from (default or your override) and its hash."""
    app_ctx = get_context(ctx)
    reg = registry_for(app_ctx)
    rows = []
    for name in reg.names():
        try:
            tpl = reg.get(name)
            rows.append(
                {
                    "name": name,
                    "source": reg.source(name),
                    "version": tpl.version,
                    "hash": tpl.hash,
                    "description": tpl.description,
                }
            )
        except PromptError as exc:
            rows.append(
                {
                    "name": name,
                    "source": reg.source(name),
                    "version": "-",
                    "hash": "INVALID",
                    "description": str(exc),
                }
            )
    if as_json:
        app_ctx.print_json(rows)
        return
    table = Table("name", "source", "version", "hash", "description")
    for row in rows:
        table.add_row(*(escape(str(v)) for v in row.values()))
    app_ctx.out.print(table)


@app.command("show")
def show_cmd(ctx: typer.Context, name: NameArg) -> None:
    """Print the template in effect."""
    app_ctx = get_context(ctx)
    path = registry_for(app_ctx).path(name)
    app_ctx.out.print(f"[dim]# {escape(str(path))}[/]")
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    app_ctx.out.print(Syntax(printable(text), "yaml", word_wrap=True))


@app.command("path")
def path_cmd(ctx: typer.Context, name: NameArg) -> None:
    """Print the path of the template in effect (your override if there is one)."""
    typer.echo(str(registry_for(get_context(ctx)).path(name)))


@app.command("diff")
def diff_cmd(ctx: typer.Context, name: NameArg) -> None:
    """Show how your override differs from the shipped default."""
    app_ctx = get_context(ctx)
    reg = registry_for(app_ctx)
    reg.path(name)
    text = reg.diff(name)
    if not text:
        app_ctx.out.print(f"{name}: no override (the shipped default is in effect)")
        return
    app_ctx.out.print(Syntax(printable(text), "diff"))


@app.command("reset")
def reset_cmd(
    ctx: typer.Context,
    name: NameArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Delete your override so the shipped default is used again."""
    app_ctx = get_context(ctx)
    reg = registry_for(app_ctx)
    user = reg.user_path(name)
    if user is None or not user.is_file():
        app_ctx.out.print(f"{name}: no override to reset")
        return
    if not reg.default_path(name).is_file():
        raise ConfigError(f"{name} has no shipped default; delete {user} yourself if you mean it")
    if not yes and not typer.confirm(f"Delete your override {user}?"):
        raise typer.Exit(1)
    user.unlink()
    app_ctx.out.print(f"{name}: reset to the shipped default")


@app.command("validate")
def validate_cmd(
    ctx: typer.Context,
    names: Annotated[
        list[str] | None, typer.Argument(help="Prompts to check \\[default: all].")
    ] = None,
) -> None:
    """Check that templates parse, declare every variable they use, and render (within the
    render budget). A broken override is named; until it is fixed, turns use the shipped
    template and warn."""
    app_ctx = get_context(ctx)
    reg = registry_for(app_ctx)
    failures = 0
    for name in names or reg.names():
        try:
            tpl = reg.validate(name)
            app_ctx.out.print(f"[green]ok[/]      {name} ({reg.source(name)}, {tpl.hash})")
        except PromptError as exc:
            failures += 1
            app_ctx.err.print(f"[red]invalid[/] {escape(str(exc))}", soft_wrap=True)
    if failures:
        raise typer.Exit(2)


def _editor() -> list[str]:
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
    if not editor:
        found = next((e for e in ("nano", "vim", "vi") if shutil.which(e)), None)
        if not found:
            raise ConfigError("no editor found: set $EDITOR (for example EDITOR=nano)")
        editor = found
    return shlex.split(editor)


@app.command("edit")
def edit_cmd(ctx: typer.Context, name: NameArg) -> None:
    """Edit a prompt in $EDITOR; saved as your override only if it is valid.

    You edit a copy; it replaces your override only if it parses, declares its variables and
    renders."""
    app_ctx = get_context(ctx)
    reg = registry_for(app_ctx)
    source = reg.path(name)
    original = source.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="recagent-prompt-") as tmp:
        draft = Path(tmp) / f"{name}.yaml"
        draft.write_text(original, encoding="utf-8")
        while True:
            result = subprocess.run([*_editor(), str(draft)], check=False)
            if result.returncode != 0:
                raise ConfigError(f"the editor exited with code {result.returncode}; nothing saved")
            text = draft.read_text(encoding="utf-8")
            if text == original:
                app_ctx.out.print(f"{name}: no changes")
                return
            try:
                PromptRegistry(Path(tmp), reg.defaults_dir).validate(name)
                break
            except PromptError as exc:
                app_ctx.err.print(f"[red]invalid:[/] {escape(str(exc))}", soft_wrap=True)
                if not typer.confirm("Edit again?", default=True):
                    raise ConfigError(f"{name}: not saved (the template was invalid)") from None
        target = reg.user_path(name)
        assert target is not None
        atomic_write_text(target, text)
    app_ctx.out.print(f"[green]saved[/] {escape(str(target))} (hash {reg.get(name).hash})")
