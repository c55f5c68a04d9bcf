"""Every LLM request in an evaluation, cached by a hash of the request (model, messages, tools,
parameters), so a rerun makes no new calls and gives the same numbers. Also a simple
rate limit for API models, and a bound on the calls in flight.

The cache is one SQLite file: processes (Ray workers) share it safely, SQLite locks it, and
the first reply stored for a request wins, so processes racing on one request go on with
the same reply.

`CachedChatModel` wraps any chat model: `bind_tools` records the tools in the request, and a
cache miss calls the wrapped model with them.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, messages_from_dict, messages_to_dict
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, PrivateAttr


class LLMCache:
    """SQLite key-value store: request hash -> the model's reply message."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, reply TEXT NOT NULL)"
            )

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def get(self, key: str) -> AIMessage | None:
        with self._lock, self._connect() as conn:
            row = conn.execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        message = messages_from_dict([json.loads(row[0])])[0]
        return message if isinstance(message, AIMessage) else None

    def put(self, key: str, reply: AIMessage) -> AIMessage:
        """Store `reply` unless another thread or process stored one for `key` first; return
        the stored one."""
        data = json.dumps(messages_to_dict([reply])[0])
        with self._lock, self._connect() as conn:
            conn.execute("INSERT OR IGNORE INTO replies (key, reply) VALUES (?, ?)", (key, data))
            row = conn.execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
        if row is None or row[0] == data:
            return reply
        stored = messages_from_dict([json.loads(row[0])])[0]
        return stored if isinstance(stored, AIMessage) else reply


class RateLimiter:
    """At most `per_minute` calls per minute (0 = unlimited) and at most `concurrency` in
    flight (0 = unlimited), across threads."""

    def __init__(self, per_minute: float, concurrency: int = 0) -> None:
        self.interval = 60.0 / per_minute if per_minute > 0 else 0.0
        self.concurrency = concurrency
        self._next = 0.0
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(concurrency) if concurrency > 0 else None

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the `concurrency` slots, and start no sooner than the rate allows."""
        with self._slots or nullcontext():
            self.wait()
            yield

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        time.sleep(max(0.0, start - now))


def _canonical(message: BaseMessage) -> dict[str, Any]:
    """What a message says, without the ids LangChain and servers assign at random (message
    ids, tool-call ids), so the same conversation always hashes the same."""
    out: dict[str, Any] = {"type": message.type, "content": message.content}
    calls = getattr(message, "tool_calls", None)
    if calls:
        out["tool_calls"] = [{"name": c["name"], "args": c["args"]} for c in calls]
    name = getattr(message, "name", None)
    if name:
        out["name"] = name
    return out


def request_key(model: str, messages: Sequence[BaseMessage], params: dict[str, Any]) -> str:
    payload = {"model": model, "messages": [_canonical(m) for m in messages], "params": params}
    blob = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class CachedChatModel(BaseChatModel):
    """A chat model whose replies come from the cache when the same request was made before."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    inner: BaseChatModel
    model_name: str
    store: LLMCache | None = None  # (`cache` is taken by LangChain's own cache)
    limiter: RateLimiter | None = None
    _stats: dict[str, int] = PrivateAttr(default_factory=lambda: {"hits": 0, "misses": 0})
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "cached"

    @property
    def stats(self) -> dict[str, int]:
        return dict(self._stats)

    def add_stats(self, stats: dict[str, int]) -> None:
        """Count hits and misses made elsewhere (by the workers of a Ray run)."""
        with self._lock:
            for name in self._stats:
                self._stats[name] += int(stats.get(name, 0))

    def bind_tools(self, tools: Sequence[Any], tool_choice: Any = None, **kwargs: Any) -> Any:
        return self.bind(
            tools=[convert_to_openai_tool(t) for t in tools], tool_choice=tool_choice, **kwargs
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        params = {k: v for k, v in kwargs.items() if v is not None}
        key = request_key(self.model_name, messages, {**params, "stop": stop})
        cached = self.store.get(key) if self.store else None
        if cached is not None:
            with self._lock:
                self._stats["hits"] += 1
            return ChatResult(generations=[ChatGeneration(message=cached)])
        model = self.inner
        tools = params.pop("tools", None)
        tool_choice = params.pop("tool_choice", None)
        runnable: Any = model.bind_tools(tools, tool_choice=tool_choice) if tools else model
        with self.limiter.slot() if self.limiter else nullcontext():
            reply = runnable.invoke(messages, stop=stop, **params)
        with self._lock:
            self._stats["misses"] += 1
        if self.store is not None and isinstance(reply, AIMessage):
            reply = self.store.put(key, reply)
        return ChatResult(generations=[ChatGeneration(message=reply)])


__all__ = ["CachedChatModel", "LLMCache", "RateLimiter", "request_key"]
