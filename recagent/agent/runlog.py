"""Every turn, appended to SQLite in the workspace: the message, the tool calls (arguments and
durations), the model, tokens, latency, prompt hashes and the final list."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

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
    message: str
    k: int
    latency_ms: float
    llm_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    prompt_hashes: dict[str, str] = Field(default_factory=dict)
    repairs: dict[str, int] = Field(default_factory=dict)
    fallback_reason: str | None = None
    readings: dict[str, Any] = Field(
        default_factory=dict, description="Both readings (llm, rules) when they differ."
    )
    items: list[dict[str, Any]] = Field(default_factory=list)
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


class RunLog:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=10)
        conn.execute(SCHEMA)
        return conn

    def append(self, record: TurnRecord) -> None:
        with self._connect() as conn:
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

    def last(self, n: int = 10) -> list[TurnRecord]:
        """The most recent `n` turns, oldest first."""
        if not self.path.is_file():
            return []
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT record FROM turns ORDER BY id DESC LIMIT ?", (n,)
            ).fetchall()
        return [TurnRecord.model_validate(json.loads(r[0])) for r in reversed(rows)]


__all__ = ["RunLog", "TurnRecord"]
