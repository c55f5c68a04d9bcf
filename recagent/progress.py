"""Progress reporting for long work. Library code takes a `Reporter`; the CLI passes a rich one,
tests and library callers get the silent default."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from rich.console import Console
from rich.markup import escape
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
    """One rich progress line per stage, with a bar and ETA when the total is known; when the
    console is not a terminal (a log file, nohup), plain lines instead: one per step that
    reports fields (an epoch's loss and metric), others at most every `every_s` seconds,
    and one when the stage ends."""

    def __init__(
        self, console: Console | None = None, transient: bool = False, every_s: float = 30.0
    ) -> None:
        self.console = console or Console(stderr=True)
        self.transient = transient
        self.every_s = every_s

    @contextmanager
    def stage(self, description: str, total: float | None = None) -> Iterator[Advance]:
        if not self.console.is_terminal:
            with self._lines(description, total) as advance:
                yield advance
            return
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

    @contextmanager
    def _lines(self, description: str, total: float | None) -> Iterator[Advance]:
        started = last = step = time.monotonic()
        done = 0.0

        def line(text: str) -> None:
            self.console.print(escape(text), soft_wrap=True, highlight=False)

        def advance(n: float = 1, **fields: object) -> None:
            nonlocal done, last, step
            done += n
            now = time.monotonic()
            took, step = now - step, now
            if not fields and now - last < self.every_s:
                return
            last = now
            count = f"{done:g}/{total:g}" if total else f"{done:g}"
            info = "".join(f" {k}={v}" for k, v in fields.items())
            line(f"{description}: {count}{info} ({took:.1f} s, {now - started:.0f} s in all)")

        try:
            yield advance
        except BaseException as exc:  # say so, as the terminal's spinner does
            why = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            line(f"{description} ({why}) ({time.monotonic() - started:.1f} s)")
            raise
        line(f"done: {description} ({time.monotonic() - started:.1f} s)")


__all__ = ["Advance", "Reporter", "RichReporter", "SilentReporter"]
