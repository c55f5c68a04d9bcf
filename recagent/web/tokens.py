"""The model's tokens as it writes them, for the turn that asked: a copy of the chat model
that streams its replies, and a callback that hands each fragment (text, or the arguments of
the tool call it is writing) to the turn running in the current thread."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler

Sink = Callable[[str], None]
_sink: ContextVar[Sink | None] = ContextVar("recagent_token_sink", default=None)


class TokenRelay(BaseCallbackHandler):
    """Sends each streamed fragment to the sink of the turn that is running."""

    def on_llm_new_token(self, token: Any, *, chunk: Any = None, **kwargs: Any) -> Any:
        sink = _sink.get()
        if sink is None:
            return
        text = token if isinstance(token, str) else ""
        message = getattr(chunk, "message", None)
        for part in getattr(message, "tool_call_chunks", None) or []:
            text += part.get("args") or ""
        if text:
            sink(text)


@contextmanager
def tokens_to(sink: Sink | None) -> Iterator[None]:
    """Streamed tokens of model calls made in this context go to `sink`."""
    token = _sink.set(sink)
    try:
        yield
    finally:
        _sink.reset(token)


def streaming_model(model: Any) -> Any | None:
    """A copy of a LangChain chat model that streams and relays its tokens (None if the
    model cannot stream)."""
    if "streaming" not in type(model).model_fields:
        return None
    callbacks = [*(model.callbacks or []), TokenRelay()]
    return model.model_copy(update={"streaming": True, "callbacks": callbacks})


__all__ = ["TokenRelay", "streaming_model", "tokens_to"]
