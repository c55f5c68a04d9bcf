"""The `recagent` command line: assembles the command groups and turns user errors into one
clear line on stderr and exit code 2 (never a traceback)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from typer.core import TyperGroup

from recagent import __version__
from recagent.commands import (
    chat,
    data,
    eval_runs,
    evaluate,
    index,
    knowledge,
    logs,
    models,
    prompts,
    represent,
    serve,
    train,
)
from recagent.commands.context import AppContext, setup_logging
from recagent.config import load_settings
from recagent.errors import RecagentError
from recagent.terminal import SafeConsole
from recagent.workspace import Workspace


class _Group(TyperGroup):
    """Root group: user errors become a message and exit code 2; Ctrl-C exits with 130."""

    def invoke(self, ctx: Any) -> Any:  # typer's own (vendored) click Context
        try:
            return super().invoke(ctx)
        except RecagentError as exc:
            SafeConsole(stderr=True).print(
                f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True
            )
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            SafeConsole(stderr=True).print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None


app = typer.Typer(
    cls=_Group,
    name="recagent",
    help="An LLM agent that recommends by calling classical recommenders as tools.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold API keys
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("chat")(chat.chat_cmd)
app.command("recommend")(chat.recommend_cmd)
app.command("serve")(serve.serve_cmd)
app.add_typer(data.app, name="data")
train.app.command("item-encoder")(represent.train_item_encoder_cmd)
evaluate.app.command("item-to-item")(represent.eval_item_to_item_cmd)
app.add_typer(train.app, name="train")
app.add_typer(index.app, name="index")
eval_runs.register(evaluate.app)
app.add_typer(evaluate.app, name="eval")
app.add_typer(knowledge.app, name="knowledge")
app.add_typer(prompts.app, name="prompts")
app.command("logs")(logs.logs_cmd)
app.command("models")(models.models_cmd)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"recagent {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="Log more (-v info, -vv debug).")
    ] = 0,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            help="Workspace directory for all artifacts \\[default: $RECAGENT_HOME, else the "
            "platform's user data dir].",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """An LLM agent that recommends by calling classical recommenders (SASRec, vector recall)
    as tools. Start with `recagent data prepare`."""
    settings = load_settings(home=home)
    app_ctx = AppContext(settings=settings, workspace=Workspace(settings.home), verbose=verbose)
    setup_logging(verbose, app_ctx.err)
    ctx.obj = app_ctx


def main() -> None:
    app()


__all__ = ["app", "main"]
