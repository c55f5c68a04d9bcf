"""One turn of a conversation over HTTP: under the conversation's locks (in this process,
then across the server's worker processes, with the copy in memory brought up to date with
the store), in a worker thread, with the turn's events (steps in words, the model's tokens)
handed to the caller as they happen, and the conversation stored once it is answered."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import sqlite3
from collections.abc import AsyncIterator, Callable
from typing import Any

from pydantic import BaseModel

from recagent.agent.schema import RankedList
from recagent.agent.steps import describe
from recagent.errors import RecagentError
from recagent.web.backend import Backend
from recagent.web.errors import ApiError
from recagent.web.models import ErrorEvent, FeedbackOut, MessageIn, StepEvent, TokenEvent, Turn
from recagent.web.sessions import Live
from recagent.web.tokens import tokens_to

log = logging.getLogger(__name__)
Listener = Callable[[str, BaseModel], None]  # (event name, payload), called from the worker
LOCK_POLL_S = 0.02  # how often a turn asks again for a conversation another process holds
KEEP_ALIVE = ": keep-alive\n\n"  # an SSE comment: clients ignore it, proxies see traffic
WAITING = "waiting for the previous message to be answered"


@contextlib.asynccontextmanager
async def held(
    backend: Backend, live: Live, on_wait: Callable[[], None] | None = None
) -> AsyncIterator[None]:
    """Hold the conversation for one turn: its lock in this process, then its lock across
    the server's processes (polled; renewed while held, so that only a crashed worker's lock
    runs out), with `live` reloaded from the store if another worker changed it. `on_wait`
    is called once if the turn has to wait for another."""
    sessions = backend.sessions
    told = False
    if live.lock.locked() and on_wait is not None:
        on_wait()
        told = True
    async with live.lock:
        owner = f"{os.getpid()}:{secrets.token_hex(6)}"
        while not await backend.lookup(sessions.try_lock, live.session_id, owner):
            if not told and on_wait is not None:
                on_wait()
                told = True
            await asyncio.sleep(LOCK_POLL_S)
        renewing = asyncio.create_task(_renew(backend, live.session_id, owner))
        try:
            await backend.lookup(sessions.refresh, live)
            yield
        finally:
            renewing.cancel()
            await backend.lookup(sessions.unlock, live.session_id, owner)


async def _renew(backend: Backend, session_id: str, owner: str) -> None:
    sessions = backend.sessions
    while True:
        await asyncio.sleep(sessions.lease_s / 3)
        try:
            kept = await backend.lookup(sessions.renew_lock, session_id, owner)
        except sqlite3.Error as exc:
            log.warning("could not renew the lock of a conversation (%s)", exc)
            continue
        if not kept:
            log.warning(
                "a conversation's lock ran out during a turn; its answer is stored only if "
                "no other worker changed the conversation meanwhile"
            )
            return


def _ask(backend: Backend, live: Live, body: MessageIn, listen: Listener | None) -> RankedList:
    """The blocking part, in a worker thread (the caller holds the conversation's lock)."""
    session = live.session
    streaming = listen is not None and backend.settings.server.stream_tokens
    on_event = None
    if listen is not None:

        def on_event(kind: str, data: Any) -> None:
            if kind == "step":
                listen("step", StepEvent(text=str(data)))
            elif kind == "token" and not streaming:  # streamed already, fragment by fragment
                listen("token", TokenEvent(text=str(data)))
            elif (words := describe(kind, data, session.ctx)) is not None:
                listen("step", StepEvent(text=words))

    sink = (lambda text: listen("token", TokenEvent(text=text))) if streaming and listen else None
    with tokens_to(sink):
        ranked = session.ask(body.text, k=body.k, on_event=on_event)
    live.add(Turn(kind="message", text=body.text, answer=ranked))
    backend.sessions.save(live)
    return ranked


async def answer(
    backend: Backend, live: Live, body: MessageIn, listen: Listener | None = None
) -> RankedList:
    """Run one turn in order with the conversation's other turns (in any worker)."""
    waiting = (lambda: listen("step", StepEvent(text=WAITING))) if listen is not None else None
    async with held(backend, live, waiting):
        return await backend.run(_ask, backend, live, body, listen)


def _feedback(backend: Backend, live: Live, item_id: str, liked: bool) -> FeedbackOut:
    said = live.session.feedback(item_id, liked)
    live.add(Turn(kind="feedback", text=said))
    backend.sessions.save(live)
    return FeedbackOut(
        said=said, learned=live.session.conversation.learned(live.session.dataset.catalog)
    )


async def feedback(backend: Backend, live: Live, item_id: str, liked: bool) -> FeedbackOut:
    async with held(backend, live):  # quick: a lookup thread, not a turn's
        return await backend.lookup(_feedback, backend, live, item_id, liked)


def sse(event: str, payload: BaseModel | dict[str, Any]) -> str:
    data = payload.model_dump_json() if isinstance(payload, BaseModel) else json.dumps(payload)
    return f"event: {event}\ndata: {data}\n\n"


def error_message(exc: BaseException) -> str:
    """What a client is told of a failure (a bug's details stay in the server's log)."""
    if isinstance(exc, ApiError):
        return exc.message
    if isinstance(exc, RecagentError):
        return str(exc)
    return "the turn failed on the server (the error is in the server's log)"


async def stream(backend: Backend, live: Live, body: MessageIn) -> AsyncIterator[str]:
    """The turn as server-sent events: `step` and `token` events while it runs, then one
    `answer` (the RankedList) or one `error`. The turn finishes (and is stored) even if the
    client goes away."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, BaseModel] | None] = asyncio.Queue()

    def listen(event: str, payload: BaseModel) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, (event, payload))

    task = asyncio.create_task(answer(backend, live, body, listen))
    backend.keep(task)
    task.add_done_callback(lambda _: queue.put_nowait(None))
    while (item := await queue.get()) is not None:
        yield sse(*item)
    try:
        ranked = task.result()
    except Exception as exc:
        if not isinstance(exc, RecagentError):
            log.exception("turn failed")
        yield sse("error", ErrorEvent(message=error_message(exc)))
        return
    yield sse("answer", ranked)


async def keep_alive(events: AsyncIterator[str], every_s: float) -> AsyncIterator[str]:
    """`events` (server-sent), with a comment whenever nothing was sent for `every_s`
    seconds: a proxy cuts a stream that stays quiet through a turn of minutes."""

    async def following() -> str:
        return await events.__anext__()

    pending: asyncio.Task[str] | None = None
    try:
        while True:
            pending = pending or asyncio.create_task(following())
            done, _ = await asyncio.wait({pending}, timeout=every_s)
            if not done:
                yield KEEP_ALIVE
                continue
            try:
                event = pending.result()
            except StopAsyncIteration:
                return
            pending = None
            yield event
    finally:
        if pending is not None and not pending.done():
            pending.cancel()


__all__ = [
    "KEEP_ALIVE",
    "answer",
    "error_message",
    "feedback",
    "held",
    "keep_alive",
    "sse",
    "stream",
]
