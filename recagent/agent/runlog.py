"""Every turn, appended to SQLite in the workspace: the message, the plan that ran, the tool
calls (arguments and durations), the model, tokens, latency, prompt hashes and the final
list.

A turn hands its record over (`submit`) and returns its answer at once: one writer thread
appends records in order, off the request path. `flush` waits until every record handed
over is written (the CLI flushes before it exits; the process flushes at exit too)."""

from __future__ import annotations

import atexit
import json
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    session_id TEXT NOT NULL,
    dataset TEXT NOT NULL,
    user_id TEXT,
    mode TEXT NOT NULL,
    model TEXT,
    message TEXT NOT NULL,
    latency_ms REAL NOT NULL,
    record TEXT NOT NULL
)
"""


class TurnRecord(BaseModel):
    session_id: str
    dataset: str
    user_id: str | None
    mode: str
    model: str | None = None
    kind: str = "recommend"
    message: str
    k: int
    latency_ms: float
    llm_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    plan: list[str] = Field(default_factory=list, description="The plan that ran, a step a line.")
    titles_proposed: int = Field(0, description="Titles the model named from what it knows.")
    titles_found: int = Field(0, description="... that the catalog has.")
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    prompt_hashes: dict[str, str] = Field(default_factory=dict)
    repairs: dict[str, int] = Field(default_factory=dict)
    fallback_reason: str | None = None
    readings: dict[str, Any] = Field(
        default_factory=dict, description="Both readings (llm, rules) when they differ."
    )
    items: list[dict[str, Any]] = Field(default_factory=list)
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


class _Writer:
    """The one thread that appends one log file's records, in the order handed over."""

    def __init__(self, append: Callable[[TurnRecord], None], path: Path) -> None:
        self.append = append
        self.path = path
        self.queue: queue.Queue[TurnRecord] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name=f"runlog:{path.name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            record = self.queue.get()
            try:
                self.append(record)
            except sqlite3.Error as exc:  # a log that cannot be written never breaks a turn
                log.warning("could not write the run log %s: %s", self.path, exc)
            finally:
                self.queue.task_done()

    def flush(self) -> None:
        self.queue.join()


_writers: dict[Path, _Writer] = {}
_writers_lock = threading.Lock()


def _flush_all() -> None:
    for writer in list(_writers.values()):
        writer.flush()


atexit.register(_flush_all)


class RunLog:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=10)
        conn.execute(SCHEMA)
        return conn

    def append(self, record: TurnRecord) -> None:
        """Write `record` now (what the writer thread does with each one handed over)."""
        with closing(self._connect()) as conn, conn:
            conn.execute(
                "INSERT INTO turns (created_at, session_id, dataset, user_id, mode, model, "
                "message, latency_ms, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.created_at,
                    record.session_id,
                    record.dataset,
                    record.user_id,
                    record.mode,
                    record.model,
                    record.message,
                    record.latency_ms,
                    record.model_dump_json(),
                ),
            )

    def submit(self, record: TurnRecord) -> None:
        """Hand `record` to this file's writer thread and return at once."""
        key = self.path.resolve()
        with _writers_lock:
            writer = _writers.get(key)
            if writer is None:
                writer = _writers[key] = _Writer(self.append, key)
        writer.queue.put(record)

    def flush(self) -> None:
        """Wait until every record handed over for this file is written."""
        writer = _writers.get(self.path.resolve())
        if writer is not None:
            writer.flush()

    def last(self, n: int = 10) -> list[TurnRecord]:
        """The most recent `n` turns, oldest first (after what was handed over is written)."""
        self.flush()
        if not self.path.is_file():
            return []
        with closing(self._connect()) as conn:
            rows = conn.execute(
                "SELECT record FROM turns ORDER BY id DESC LIMIT ?", (n,)
            ).fetchall()
        return [TurnRecord.model_validate(json.loads(r[0])) for r in reversed(rows)]


__all__ = ["RunLog", "TurnRecord"]
