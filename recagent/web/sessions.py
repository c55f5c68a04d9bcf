"""The server's conversations: many at once, each with its own lock (two messages to one
conversation run in order), kept in SQLite in the workspace after every change so that a
restart loses none, and forgotten after a configurable idle time."""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from recagent.agent.conversation import Conversation
from recagent.agent.session import ChatSession
from recagent.web.models import Turn

MAX_TURNS = 50  # turns kept for showing the conversation again (the session keeps its memory)

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    dataset TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    record TEXT NOT NULL
)
"""


class StoredSession(BaseModel):
    """One conversation as stored: how to rebuild its session, and what was said."""

    model_config = ConfigDict(extra="forbid")

    session_id: str
    offline: bool = False
    created_at: float
    updated_at: float
    conversation: Conversation
    turns: list[Turn] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _from_version_1(cls, data: Any) -> Any:
        """A record stored before the conversation was one value (`snapshot`, version 1)."""
        if isinstance(data, dict) and "snapshot" in data and "conversation" not in data:
            data = dict(data)
            old = data.pop("snapshot")
            memory = old.get("memory") or {}
            data["conversation"] = {
                "dataset": old["dataset"],
                "user_id": old.get("user_id"),
                "feelings": dict(memory.get("feelings") or []),
                "pending": memory.get("pending") or [],
                "liked_genres": memory.get("liked_genres") or {},
                "disliked_genres": memory.get("disliked_genres") or {},
                "last_request": old.get("last_request"),
                "last_answer": old.get("last_list"),
                "shown": old.get("shown") or [],
                "messages": old.get("messages") or [],
            }
        return data


class SessionStore:
    """Conversations in one SQLite file; every call opens its own connection (thread-safe)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    def save(self, record: StoredSession) -> None:
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO sessions (id, dataset, created_at, updated_at, record) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                "updated_at = excluded.updated_at, record = excluded.record",
                (
                    record.session_id,
                    record.conversation.dataset,
                    record.created_at,
                    record.updated_at,
                    record.model_dump_json(),
                ),
            )

    def load(self, session_id: str) -> StoredSession | None:
        with self._connect() as conn:
            row = conn.execute("SELECT record FROM sessions WHERE id = ?", (session_id,)).fetchone()
        if row is None:
            return None
        try:
            return StoredSession.model_validate(json.loads(row[0]))
        except (ValidationError, ValueError):
            return None  # written by an incompatible version: the conversation is gone

    def delete(self, session_id: str) -> None:
        with self._connect() as conn:
            conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    def delete_idle(self, before: float) -> int:
        with self._connect() as conn:
            return conn.execute("DELETE FROM sessions WHERE updated_at < ?", (before,)).rowcount


@dataclass
class Live:
    """A conversation in memory."""

    session_id: str
    session: ChatSession
    offline: bool
    created_at: float
    last_used: float
    turns: list[Turn] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def record(self, now: float) -> StoredSession:
        return StoredSession(
            session_id=self.session_id,
            offline=self.offline,
            created_at=self.created_at,
            updated_at=now,
            conversation=self.session.conversation,
            turns=self.turns[-MAX_TURNS:],
        )


class UnknownSession(LookupError):
    """No such conversation (never created, or expired)."""


Factory = Callable[[str, bool], ChatSession]  # (dataset, offline) -> a fresh session


class Sessions:
    """Live conversations over a store. `factory` builds a fresh session for a dataset;
    `ttl_s`: idle time after which a conversation is forgotten."""

    def __init__(
        self,
        store: SessionStore,
        factory: Factory,
        ttl_s: float,
        clock: Callable[[], float] = time.time,
        max_live: int = 1000,
    ) -> None:
        self.store = store
        self.factory = factory
        self.ttl_s = ttl_s
        self.clock = clock
        self.max_live = max_live  # beyond this, the least recently used leave memory (stored)
        self._live: dict[str, Live] = {}
        self._guard = threading.Lock()  # _live is touched from the loop and worker threads

    def create(self, dataset: str, user_id: str | None, offline: bool) -> tuple[Live, str]:
        """A new conversation (call from a worker thread: building a session may load a
        dataset's models); returns it and what `set_user` said about the user."""
        session = self.factory(dataset, offline)
        note = session.set_user(user_id)
        now = self.clock()
        session.session_id = secrets.token_urlsafe(12)  # the run log's id is the API's
        live = Live(session.session_id, session, offline, now, now)
        self.store.save(live.record(now))
        self._keep(live)
        return live, note

    def _keep(self, live: Live) -> Live:
        """Hold `live` in memory (or the copy another thread restored first), letting the
        least recently used conversations go back to the store when there are too many."""
        with self._guard:
            live = self._live.setdefault(live.session_id, live)
            if len(self._live) > self.max_live:
                idle = sorted(
                    (x for x in self._live.values() if not x.lock.locked() and x is not live),
                    key=lambda x: x.last_used,
                )
                for old in idle[: len(self._live) - self.max_live]:
                    del self._live[old.session_id]
        return live

    def get(self, session_id: str) -> Live:
        """The conversation, from memory or the store (call from a worker thread: restoring
        one builds a session); `UnknownSession` if there is none or it expired."""
        now = self.clock()
        with self._guard:
            live = self._live.get(session_id)
            if live is not None and now - live.last_used <= self.ttl_s:
                live.last_used = now
                return live
        if live is not None:
            self.forget(session_id)
            raise UnknownSession(session_id)
        stored = self.store.load(session_id)
        if stored is None or now - stored.updated_at > self.ttl_s:
            if stored is not None:
                self.store.delete(session_id)
            raise UnknownSession(session_id)
        session = self.factory(stored.conversation.dataset, stored.offline)
        session.restore(stored.conversation)
        session.session_id = session_id
        fresh = Live(session_id, session, stored.offline, stored.created_at, now, stored.turns)
        return self._keep(fresh)

    def save(self, live: Live) -> None:
        """Store the conversation as it is now (after every change)."""
        now = self.clock()
        live.last_used = now
        self.store.save(live.record(now))

    def forget(self, session_id: str) -> None:
        with self._guard:
            self._live.pop(session_id, None)
        self.store.delete(session_id)

    def sweep(self) -> int:
        """Forget conversations idle for longer than the TTL; returns how many (in memory)."""
        cutoff = self.clock() - self.ttl_s
        with self._guard:
            idle = [sid for sid, live in self._live.items() if live.last_used < cutoff]
            for sid in idle:
                del self._live[sid]
        self.store.delete_idle(cutoff)
        return len(idle)

    def __len__(self) -> int:
        return len(self._live)


__all__ = ["MAX_TURNS", "Live", "SessionStore", "Sessions", "StoredSession", "UnknownSession"]
