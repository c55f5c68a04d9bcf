"""The server's conversations: many at once, each with its own lock (two messages to one
conversation run in order, in this process and across the server's worker processes), kept
in SQLite in the workspace after every change so that a restart loses none, and forgotten
after a configurable idle time.

Several worker processes share one store. A turn holds the conversation's lock in its own
process (an `asyncio.Lock`) and then its lock across processes (a row in `turn_locks`,
taken with `BEGIN IMMEDIATE` and held for a lease that the holder renews; a crashed worker's
lock expires with its lease). Each stored change bumps the conversation's `version`; a
worker whose copy in memory is older reloads it from the store before it goes on."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from recagent.agent.conversation import Conversation
from recagent.agent.session import ChatSession
from recagent.errors import RecagentError
from recagent.web.models import Turn

MAX_TURNS = 50  # turns kept for showing the conversation again (the session keeps its memory)
LOCK_LEASE_S = 30.0  # a turn's lock across processes lasts this long unless renewed
BUSY_TIMEOUT_S = 30.0  # how long a connection waits for another's write to end

SESSIONS_TABLE = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    dataset TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    record TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 0
)
"""
LOCKS_TABLE = """
CREATE TABLE IF NOT EXISTS turn_locks (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at REAL NOT NULL
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
    version: int = Field(0, description="Bumped by every stored change.")

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


class StaleSession(RecagentError):
    """The conversation was changed by another worker since this one loaded it."""


class SessionStore:
    """Conversations in one SQLite file (WAL, so readers never wait on a writer), shared by
    the server's processes; every call opens its own connection and closes it."""

    def __init__(self, path: Path, busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self.path = path
        self.busy_timeout_s = busy_timeout_s
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._open() as conn:
            conn.execute("PRAGMA journal_mode=WAL")  # kept by the file once set
            conn.execute("BEGIN IMMEDIATE")  # workers starting together: one creates
            conn.execute(SESSIONS_TABLE)
            conn.execute(LOCKS_TABLE)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(sessions)")}
            if "version" not in columns:  # a store written before there were workers
                conn.execute("ALTER TABLE sessions ADD COLUMN version INTEGER NOT NULL DEFAULT 0")
            conn.execute("COMMIT")

    @contextlib.contextmanager
    def _open(self) -> Iterator[sqlite3.Connection]:
        """A connection in autocommit mode (a transaction is an explicit BEGIN), closed
        after use (an open transaction left behind is rolled back)."""
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()

    def save(self, record: StoredSession, expected: int | None = None) -> None:
        """Store `record`; with `expected`, only over that stored version (or none), else
        `StaleSession` (another worker wrote in between)."""
        with self._open() as conn:
            saved = conn.execute(
                "INSERT INTO sessions (id, dataset, created_at, updated_at, record, version) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                "updated_at = excluded.updated_at, record = excluded.record, "
                "version = excluded.version WHERE ? IS NULL OR sessions.version = ?",
                (
                    record.session_id,
                    record.conversation.dataset,
                    record.created_at,
                    record.updated_at,
                    record.model_dump_json(),
                    record.version,
                    expected,
                    expected,
                ),
            ).rowcount
        if not saved:
            raise StaleSession(
                "the conversation was changed by another server worker during this turn; "
                "send the message again"
            )

    def load(self, session_id: str) -> StoredSession | None:
        with self._open() as conn:
            row = conn.execute(
                "SELECT record, version FROM sessions WHERE id = ?", (session_id,)
            ).fetchone()
        if row is None:
            return None
        try:
            stored = StoredSession.model_validate(json.loads(row[0]))
        except (ValidationError, ValueError):
            return None  # written by an incompatible version: the conversation is gone
        stored.version = row[1]
        return stored

    def version(self, session_id: str) -> int | None:
        """The stored version of a conversation (None: not stored)."""
        with self._open() as conn:
            row = conn.execute(
                "SELECT version FROM sessions WHERE id = ?", (session_id,)
            ).fetchone()
        return None if row is None else int(row[0])

    def delete(self, session_id: str) -> None:
        with self._open() as conn:
            conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    def delete_idle(self, before: float) -> int:
        with self._open() as conn:
            conn.execute("DELETE FROM turn_locks WHERE expires_at < ?", (time.time(),))
            return conn.execute("DELETE FROM sessions WHERE updated_at < ?", (before,)).rowcount

    # ---- a conversation's lock across processes -------------------------------------------

    def try_lock(self, session_id: str, owner: str, lease_s: float) -> bool:
        """One try at the conversation's lock: taken (for `lease_s`) when nobody holds it,
        its holder's lease ran out (a crashed worker), or `owner` holds it already."""
        now = time.time()
        with self._open() as conn:
            conn.execute("BEGIN IMMEDIATE")  # one writer: the check and the take are one
            row = conn.execute(
                "SELECT owner, expires_at FROM turn_locks WHERE id = ?", (session_id,)
            ).fetchone()
            free = row is None or row[0] == owner or row[1] <= now
            if free:
                conn.execute(
                    "INSERT INTO turn_locks (id, owner, expires_at) VALUES (?, ?, ?) "
                    "ON CONFLICT(id) DO UPDATE SET owner = excluded.owner, "
                    "expires_at = excluded.expires_at",
                    (session_id, owner, now + lease_s),
                )
            conn.execute("COMMIT")
        return free

    def renew_lock(self, session_id: str, owner: str, lease_s: float) -> bool:
        """Extend `owner`'s lease; False if it no longer holds the lock."""
        with self._open() as conn:
            return bool(
                conn.execute(
                    "UPDATE turn_locks SET expires_at = ? WHERE id = ? AND owner = ?",
                    (time.time() + lease_s, session_id, owner),
                ).rowcount
            )

    def unlock(self, session_id: str, owner: str) -> None:
        with self._open() as conn:
            conn.execute("DELETE FROM turn_locks WHERE id = ? AND owner = ?", (session_id, owner))


@dataclass
class Live:
    """A conversation in memory; `version`: the stored version it reflects."""

    session_id: str
    session: ChatSession
    offline: bool
    created_at: float
    last_used: float
    turns: list[Turn] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    version: int = 0

    def add(self, turn: Turn) -> None:
        """A turn said; only the last MAX_TURNS are kept, in memory as in the store."""
        self.turns.append(turn)
        del self.turns[:-MAX_TURNS]

    def record(self, now: float) -> StoredSession:
        return StoredSession(
            session_id=self.session_id,
            offline=self.offline,
            created_at=self.created_at,
            updated_at=now,
            conversation=self.session.conversation,
            turns=self.turns[-MAX_TURNS:],
            version=self.version + 1,
        )


class UnknownSession(LookupError):
    """No such conversation (never created, or expired)."""


Factory = Callable[[str, bool], ChatSession]  # (dataset, offline) -> a fresh session


class Sessions:
    """Live conversations over a store. `factory` builds a fresh session for a dataset;
    `ttl_s`: idle time after which a conversation is forgotten; `lease_s`: how long a
    turn's lock across processes lasts unless renewed."""

    def __init__(
        self,
        store: SessionStore,
        factory: Factory,
        ttl_s: float,
        clock: Callable[[], float] = time.time,
        max_live: int = 1000,
        lease_s: float = LOCK_LEASE_S,
    ) -> None:
        self.store = store
        self.factory = factory
        self.ttl_s = ttl_s
        self.clock = clock
        self.max_live = max_live  # beyond this, the least recently used leave memory (stored)
        self.lease_s = lease_s
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
        self.save(live)
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
        one builds a session); `UnknownSession` if there is none or it expired. A copy idle
        here is checked against the store: another worker may have kept it going."""
        now = self.clock()
        with self._guard:
            live = self._live.get(session_id)
            if live is not None:
                if now - live.last_used <= self.ttl_s:
                    live.last_used = now
                    return live
                del self._live[session_id]
        stored = self.store.load(session_id)
        if stored is None or now - stored.updated_at > self.ttl_s:
            if stored is not None:
                self.store.delete(session_id)
            raise UnknownSession(session_id)
        session = self.factory(stored.conversation.dataset, stored.offline)
        session.restore(stored.conversation)
        session.session_id = session_id
        fresh = Live(session_id, session, stored.offline, stored.created_at, now, stored.turns)
        fresh.version = stored.version
        return self._keep(fresh)

    def refresh(self, live: Live) -> None:
        """Bring `live` up to date when another worker stored a newer version (call under
        the conversation's lock, from a worker thread)."""
        version = self.store.version(live.session_id)
        if version is None or version == live.version:
            return  # nothing newer (or no longer stored: the next save stores it again)
        stored = self.store.load(live.session_id)
        if stored is None:
            return
        live.session.restore(stored.conversation)
        live.turns = list(stored.turns[-MAX_TURNS:])
        live.version = stored.version

    def save(self, live: Live) -> None:
        """Store the conversation as it is now (after every change), over the version it
        was loaded at (`StaleSession` if another worker stored one in between)."""
        now = self.clock()
        live.last_used = now
        record = live.record(now)
        self.store.save(record, expected=live.version)
        live.version = record.version

    # ---- the lock across processes (one try each; the caller polls) ----------------------

    def try_lock(self, session_id: str, owner: str) -> bool:
        return self.store.try_lock(session_id, owner, self.lease_s)

    def renew_lock(self, session_id: str, owner: str) -> bool:
        return self.store.renew_lock(session_id, owner, self.lease_s)

    def unlock(self, session_id: str, owner: str) -> None:
        self.store.unlock(session_id, owner)

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


__all__ = [
    "MAX_TURNS",
    "Live",
    "SessionStore",
    "Sessions",
    "StaleSession",
    "StoredSession",
    "UnknownSession",
]
