"""What every command needs: settings, the workspace, consoles and a progress reporter."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler

from recagent.config import Settings
from recagent.errors import ConfigError
from recagent.progress import RichReporter
from recagent.terminal import PrintableLogFilter, SafeConsole
from recagent.workspace import Workspace

# --dataset as the model commands (train, eval <model>, models) take it
DatasetOpt = Annotated[
    str | None,
    typer.Option(
        "--dataset",
        "-d",
        help="Dataset in the workspace \\[default: from settings].",
        show_default=False,
    ),
]

NOISY_LOGGERS = ("chromadb", "httpx", "httpcore", "openai", "urllib3", "langchain", "langgraph")


@dataclass
class AppContext:
    settings: Settings
    workspace: Workspace
    verbose: int = 0
    out: Console = field(default_factory=SafeConsole)
    err: Console = field(default_factory=lambda: SafeConsole(stderr=True))

    @property
    def reporter(self) -> RichReporter:
        return RichReporter(self.err)

    def dataset_name(self, given: str | None) -> str:
        """The dataset a command works on: the flag, else the configured default if prepared,
        else the only prepared one."""
        if given:
            return given
        prepared = self.workspace.dataset_names()
        if self.settings.dataset in prepared or not prepared:
            return self.settings.dataset
        if len(prepared) == 1:
            return prepared[0]
        raise ConfigError(
            f"the default dataset {self.settings.dataset!r} is not prepared; choose one with "
            f"--dataset ({', '.join(prepared)})"
        )

    def print_json(self, obj: Any) -> None:
        """Machine-readable output: plain JSON on stdout, no styling or wrapping."""
        typer.echo(json.dumps(obj, indent=2, default=str))


def get_context(ctx: typer.Context) -> AppContext:
    root = ctx.find_root()
    if not isinstance(root.obj, AppContext):
        raise RuntimeError("command invoked outside the recagent app")
    return root.obj


def setup_logging(verbose: int, console: Console) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = RichHandler(console=console, show_path=verbose > 1, markup=False)
    handler.addFilter(PrintableLogFilter())
    logging.basicConfig(level=level, handlers=[handler], format="%(message)s", force=True)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose > 2 else logging.WARNING)


__all__ = ["AppContext", "get_context", "setup_logging"]
