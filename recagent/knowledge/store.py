"""Where item knowledge lives: one SQLite file per dataset, `knowledge/<dataset>.sqlite` in
the workspace, one row per answer.

An answer is keyed by the exact prompt it answered (the template's hash and the rendered item
line), so a changed prompt or a changed item asks again and nothing else does. Each answer is
committed as it arrives: a build stopped by Ctrl-C or a crash loses at most the requests in
flight. An item's knowledge is its newest `ok` answer for its current item line, whatever
prompt wrote it (`current`), so editing the prompt keeps the old knowledge until the new one
is built.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from pydantic import BaseModel

from recagent.knowledge.parse import Status
from recagent.workspace import Workspace, check_name

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    item_id TEXT NOT NULL,
    item_hash TEXT NOT NULL,
    prompt_hash TEXT NOT NULL,
    model TEXT NOT NULL,
    status TEXT NOT NULL,
    aspects TEXT NOT NULL,
    raw TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    seconds REAL NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS answers_item ON answers (item_id);
"""
RAW_CHARS = 2000


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def answer_key(prompt_hash: str, prompt_text: str) -> str:
    return hashlib.sha256(json.dumps([prompt_hash, prompt_text]).encode("utf-8")).hexdigest()


class Answer(BaseModel):
    key: str
    item_id: str
    item_hash: str
    prompt_hash: str
    model: str
    status: Status
    aspects: dict[str, str] = {}
    raw: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0
    created: float = 0.0


def store_path(workspace: Workspace, dataset: str) -> Path:
    return workspace.root / "knowledge" / f"{check_name(dataset, 'dataset name')}.sqlite"


class KnowledgeStore:
    """The answers of one dataset (safe to share between threads and processes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)

    @classmethod
    def of(cls, workspace: Workspace, dataset: str) -> KnowledgeStore:
        return cls(store_path(workspace, dataset))

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30)) as conn, conn:
            yield conn

    def keys(self) -> set[str]:
        with self._lock, self._connect() as conn:
            return {row[0] for row in conn.execute("SELECT key FROM answers")}

    def put(self, answer: Answer) -> None:
        row = answer.model_dump()
        row["aspects"] = json.dumps(answer.aspects, ensure_ascii=False)
        row["raw"] = answer.raw[:RAW_CHARS]
        row["created"] = answer.created or time.time()
        with self._lock, self._connect() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO answers ({', '.join(row)}) "
                f"VALUES ({', '.join('?' * len(row))})",
                list(row.values()),
            )

    def answers(self) -> list[Answer]:
        with self._lock, self._connect() as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute("SELECT * FROM answers ORDER BY created, key").fetchall()
        return [
            Answer.model_validate({**dict(r), "aspects": json.loads(r["aspects"])}) for r in rows
        ]

    def current(self, item_hashes: dict[str, str]) -> dict[str, Answer]:
        """item_id -> its newest answer for the item line it has now (`item_hashes`); an `ok`
        answer wins over a newer `unknown` or `unparsed` one."""
        out: dict[str, Answer] = {}
        for answer in self.answers():  # oldest first: newer ones replace older ones
            if item_hashes.get(answer.item_id) != answer.item_hash:
                continue
            have = out.get(answer.item_id)
            if have is None or answer.status == "ok" or have.status != "ok":
                out[answer.item_id] = answer
        return out


def read_current(
    workspace: Workspace, dataset: str, item_hashes: dict[str, str]
) -> dict[str, Answer]:
    """`KnowledgeStore.current` without creating a store where none was built."""
    path = store_path(workspace, dataset)
    if not path.is_file():
        return {}
    return KnowledgeStore(path).current(item_hashes)


__all__ = [
    "Answer",
    "KnowledgeStore",
    "answer_key",
    "read_current",
    "store_path",
    "text_hash",
]
