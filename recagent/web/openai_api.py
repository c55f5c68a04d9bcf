"""recagent as a "model" for any chat front end that speaks the OpenAI chat-completions
protocol: `POST /v1/chat/completions` (stream and non-stream) and `GET /v1/models`.

Each request carries the whole conversation, so each is answered by a fresh session that
replays the earlier messages and answers the last one. The reply's text lists the
recommendations with their explanations; the structured answer (a RankedList) rides along
in the extra field `recagent` of the completion (non-stream) or of the last chunk (stream).
Options beyond the protocol go in an extra body field `recagent`:
`{"user_id": "42", "dataset": "ml-100k", "k": 5, "offline": false}`. The model name may be
`recagent` or `recagent:<dataset>`.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from recagent.agent.request import MAX_K, MIN_K, ChatMessage
from recagent.agent.schema import RankedList
from recagent.errors import RecagentError
from recagent.web.backend import Backend, UnknownDataset
from recagent.web.errors import ApiError
from recagent.web.models import MAX_ID, MAX_TEXT, ErrorBody
from recagent.web.turns import error_message, keep_alive

log = logging.getLogger(__name__)

MODEL = "recagent"
MAX_MESSAGES = 200


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class OpenAIMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return " ".join(p.text or "" for p in self.content if p.type == "text")
        return self.content or ""


class RecagentOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str | None = Field(None, max_length=MAX_ID)
    dataset: str | None = Field(None, max_length=MAX_ID)
    k: int | None = Field(None, ge=MIN_K, le=MAX_K)
    offline: bool = False


class ChatCompletionIn(BaseModel):
    """The OpenAI request; fields recagent has no use for (temperature, ...) are accepted
    and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str = MODEL
    messages: list[OpenAIMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: bool = False
    recagent: RecagentOptions = Field(default_factory=RecagentOptions)


class CompletionMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: CompletionMessage
    finish_reason: Literal["stop"] = "stop"


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage = Field(default_factory=Usage)
    recagent: RankedList = Field(description="The structured answer (recagent's extra field).")


def reply_text(ranked: RankedList) -> str:
    """The answer as chat text, by kind: a list (the message, one numbered line per item
    with its explanation), a verdict (the verdict, then its evidence), or a profile; then
    notices."""
    lines = [ranked.message.strip(), ""] if ranked.message.strip() else []
    if ranked.verdict is not None:
        lines += [f"- {reason}" for reason in ranked.verdict.reasons]
    elif ranked.profile is not None:
        top = ", ".join(f"{g.genre} {g.share:.0%}" for g in ranked.profile.profile.top_genres)
        if top:
            lines.append(f"Top genres: {top}")
    else:
        for it in ranked.items:
            year = f" ({it.year})" if it.year else ""
            genres = f" [{', '.join(it.genres)}]" if it.genres else ""
            lines.append(f"{it.rank}. {it.title}{year}{genres}: {it.explanation}")
        if not ranked.items:
            lines.append("I found nothing that fits; try asking differently.")
    if ranked.notices:
        lines += ["", *(f"Note: {n}" for n in ranked.notices)]
    return "\n".join(lines).strip()


def _dataset(body: ChatCompletionIn) -> str | None:
    name, _, dataset = body.model.partition(":")
    if name != MODEL:
        raise ApiError(404, f"no model {body.model!r}: use {MODEL!r} or '{MODEL}:<dataset>'")
    return body.recagent.dataset or dataset or None


def _conversation(body: ChatCompletionIn) -> list[ChatMessage]:
    said = [
        ChatMessage(role=m.role, text=m.text()[:MAX_TEXT])  # type: ignore[arg-type]
        for m in body.messages
        if m.role in ("user", "assistant")
    ]
    if not said or said[-1].role != "user":
        raise ApiError(422, "messages: the last message must be the user's")
    return said


def _answer(backend: Backend, body: ChatCompletionIn) -> RankedList:
    options = body.recagent
    try:
        session = backend.new_session(_dataset(body) or backend.default, options.offline)
    except UnknownDataset as exc:
        raise ApiError(404, str(exc)) from None
    session.set_user(options.user_id)
    last = session.replay(_conversation(body))
    return session.ask(last, k=options.k)


def _chunk(cid: str, created: int, model: str, delta: dict[str, Any], **extra: Any) -> str:
    finish = extra.pop("finish_reason", None)
    chunk = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return f"data: {json.dumps(chunk)}\n\n"


router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])


@router.get("/models")
async def models(request: Request) -> dict[str, Any]:
    """The "models" a chat front end can pick: recagent on the default dataset, and on each
    prepared one."""
    backend: Backend = request.app.state.backend
    names = [MODEL] + [f"{MODEL}:{d}" for d in backend.dataset_names()]
    return {
        "object": "list",
        "data": [{"id": n, "object": "model", "created": 0, "owned_by": "recagent"} for n in names],
    }


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={
        400: {"model": ErrorBody},
        404: {"model": ErrorBody},
        422: {"model": ErrorBody},
        200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}},
    },
)
async def chat_completions(
    body: ChatCompletionIn, request: Request
) -> ChatCompletion | StreamingResponse:
    """Recommendations as a chat completion (`stream: true` for chunks). The reply text
    lists the items with explanations; `recagent` holds the RankedList."""
    backend: Backend = request.app.state.backend
    _dataset(body)
    _conversation(body)  # bad requests fail before a stream starts
    cid = "chatcmpl-" + secrets.token_hex(12)
    created = int(time.time())
    if not body.stream:
        ranked = await backend.run(_answer, backend, body)
        return ChatCompletion(
            id=cid,
            created=created,
            model=body.model,
            choices=[Choice(message=CompletionMessage(content=reply_text(ranked)))],
            recagent=ranked,
        )

    async def chunks() -> AsyncIterator[str]:
        yield _chunk(cid, created, body.model, {"role": "assistant", "content": ""})
        try:
            ranked = await backend.run(_answer, backend, body)
        except Exception as exc:
            if not isinstance(exc, ApiError | RecagentError):
                log.exception("chat completion failed")
            yield f"data: {json.dumps({'error': {'message': error_message(exc)}})}\n\n"
            return
        for line in reply_text(ranked).splitlines(keepends=True):
            yield _chunk(cid, created, body.model, {"content": line})
        yield _chunk(
            cid,
            created,
            body.model,
            {},
            finish_reason="stop",
            recagent=ranked.model_dump(mode="json"),
        )
        yield "data: [DONE]\n\n"

    every = backend.settings.server.sse_keepalive_s
    return StreamingResponse(keep_alive(chunks(), every), media_type="text/event-stream")


__all__ = ["ChatCompletion", "ChatCompletionIn", "reply_text", "router"]
