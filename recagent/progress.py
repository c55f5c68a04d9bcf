"""Progress reporting for long work. Library code takes a `Reporter`; the CLI passes a rich one,
tests and library callers get the silent default."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

Advance = Callable[..., None]
"""`advance(n=1, **fields)`: move the bar by n and update extra display fields."""


class Reporter(Protocol):
    def stage(
        self, description: str, total: float | None = None
    ) -> AbstractContextManager[Advance]: ...


class SilentReporter:
    """Reports nothing."""

    @contextmanager
    def stage(self, description: str, total: float | None = None) -> Iterator[Advance]:
        yield lambda n=1, **fields: None


class RichReporter:
    """One rich progress line per stage, with a bar and ETA when the total is known."""

    def __init__(self, console: Console | None = None, transient: bool = False) -> None:
        self.console = console or Console(stderr=True)
        self.transient = transient

    @contextmanager
    def stage(self, description: str, total: float | None = None) -> Iterator[Advance]:
        columns = [
            SpinnerColumn(finished_text="[green]✓[/]"),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn() if total else TextColumn(""),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn() if total else TextColumn(""),
        ]
        with Progress(*columns, console=self.console, transient=self.transient) as bar:
            task = bar.add_task(description, total=total, info="")

            def advance(n: float = 1, **fields: object) -> None:
                if fields:
                    info = " ".join(f"{k}={v}" for k, v in fields.items())
                    bar.update(task, advance=n, info=info)
                else:
                    bar.update(task, advance=n)

            try:
                yield advance
            except BaseException as exc:  # say so, rather than leave a frozen spinner
                why = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
                bar.update(task, description=f"{description} [red]({why})[/]")
                raise
            bar.update(
                task, total=bar.tasks[0].completed or 1, completed=bar.tasks[0].completed or 1
            )


__all__ = ["Advance", "Reporter", "RichReporter", "SilentReporter"]
