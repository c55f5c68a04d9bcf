"""One turn of a conversation over HTTP: under the conversation's lock, in a worker thread,
with the turn's events (steps in words, the model's tokens) handed to the caller as they
happen, and the conversation stored once it is answered."""

from __future__ import annotations

import asyncio
import json
import logging
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
    live.turns.append(Turn(kind="message", text=body.text, answer=ranked))
    backend.sessions.save(live)
    return ranked


async def answer(
    backend: Backend, live: Live, body: MessageIn, listen: Listener | None = None
) -> RankedList:
    """Run one turn in order with the conversation's other turns."""
    async with live.lock:
        return await backend.run(_ask, backend, live, body, listen)


def _feedback(backend: Backend, live: Live, item_id: str, liked: bool) -> FeedbackOut:
    said = live.session.feedback(item_id, liked)
    live.turns.append(Turn(kind="feedback", text=said))
    backend.sessions.save(live)
    return FeedbackOut(
        said=said, learned=live.session.conversation.learned(live.session.dataset.catalog)
    )


async def feedback(backend: Backend, live: Live, item_id: str, liked: bool) -> FeedbackOut:
    async with live.lock:
        return await backend.run(_feedback, backend, live, item_id, liked)


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
    if live.lock.locked():
        yield sse("step", StepEvent(text="waiting for the previous message to be answered"))
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


__all__ = ["answer", "error_message", "feedback", "sse", "stream"]
