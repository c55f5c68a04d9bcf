"""The one place LLMs are made: `offline` (no LLM; the rule-based planner) or
`openai:<model>` through `ChatOpenAI`, which speaks to OpenAI and to any OpenAI-compatible
server (vLLM, Ollama, llama.cpp, ...) via `OPENAI_BASE_URL`.

Calls time out, and transient failures (429, 5xx, timeouts, refused connections) are retried
with exponential backoff and jitter, a bounded number of times. When they still fail the
caller gets `LLMUnavailable` and falls back to the planner.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import httpx
import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGenerationChunk
from langchain_openai import ChatOpenAI
from tenacity import (
    RetryCallState,
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from recagent.config import LLMConfig
from recagent.errors import ConfigError, RecagentError
from recagent.prompts.registry import RenderedPrompt

log = logging.getLogger(__name__)
T = TypeVar("T")
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"


class LLMUnavailable(RecagentError):
    """The LLM failed for good (after retries) or answered unusably."""


@dataclass(frozen=True)
class LLMChoice:
    mode: Literal["offline", "openai"]
    model: str | None = None
    base_url: str | None = None

    @property
    def label(self) -> str:
        return "offline (rule-based planner)" if self.mode == "offline" else f"openai:{self.model}"


def resolve_llm(spec: str | None, cfg: LLMConfig) -> LLMChoice:
    """What `--llm` (or the config) asks for, given the environment."""
    spec = (spec or cfg.spec or "auto").strip()
    base_url = os.environ.get("OPENAI_BASE_URL") or None
    configured = bool(os.environ.get("OPENAI_API_KEY") or base_url)
    if spec == "offline" or (spec == "auto" and not configured):
        return LLMChoice("offline")
    if spec == "auto":
        return LLMChoice("openai", cfg.model or _server_model(base_url), base_url)
    kind, _, model = spec.partition(":")
    if kind != "openai":
        raise ConfigError(f"--llm {spec!r}: use 'offline' or 'openai:<model>'")
    if not configured:
        raise ConfigError(
            "--llm openai:... needs OPENAI_API_KEY (OpenAI) or OPENAI_BASE_URL (a compatible "
            "server such as vLLM, Ollama or llama.cpp)"
        )
    return LLMChoice("openai", model or cfg.model or _server_model(base_url), base_url)


def _server_model(base_url: str | None) -> str:
    """A compatible server's first model (what it serves), or OpenAI's default model."""
    if not base_url:
        return DEFAULT_OPENAI_MODEL
    try:
        # A one-slot server (llama.cpp) busy with another client's turn answers late.
        response = httpx.get(
            base_url.rstrip("/") + "/models", timeout=30.0, headers=_auth_headers()
        )
        response.raise_for_status()
        models = response.json().get("data") or []
        if models:
            return str(models[0]["id"])
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        log.warning(
            "could not list the models at the OpenAI-compatible server (%s); asking for %s "
            "(set [llm] model or --llm openai:<model>)",
            type(exc).__name__,
            DEFAULT_OPENAI_MODEL,
        )
    return DEFAULT_OPENAI_MODEL


def _auth_headers() -> dict[str, str]:
    key = os.environ.get("OPENAI_API_KEY")
    return {"Authorization": f"Bearer {key}"} if key else {}


def _dedupe_tool_chunk(message: BaseMessage, seen: set[Any]) -> None:
    """Some servers (llama.cpp's) repeat a tool call's name and id in every streamed chunk;
    LangChain would concatenate them ('fooofoo'). Keep them on the first chunk only."""
    chunks = getattr(message, "tool_call_chunks", None) or []
    raw = message.additional_kwargs.get("tool_calls") or []
    message.additional_kwargs.pop("function_call", None)  # legacy duplicate of tool_calls
    for tc in chunks:
        if tc.get("index") in seen:
            tc["name"], tc["id"] = None, None
    for tc in raw:
        if tc.get("index") in seen:
            tc["id"] = None
            if isinstance(tc.get("function"), dict):
                tc["function"]["name"] = None
    seen.update(tc.get("index") for tc in chunks)


class CompatChatOpenAI(ChatOpenAI):
    """`ChatOpenAI` that also suits llama.cpp-style servers: assistant messages carry ''
    rather than null content, the output cap is sent as `max_tokens` too, and repeated
    tool-call names in streams are not doubled."""

    def _get_request_payload(
        self, input_: Any, *, stop: list[str] | None = None, **kwargs: Any
    ) -> dict:
        payload = super()._get_request_payload(input_, stop=stop, **kwargs)
        if self.openai_api_base and "max_completion_tokens" in payload:
            # compatible servers (llama.cpp's) know only max_tokens: without it a model that
            # loops inside a constrained answer writes until the context is full
            payload.setdefault("max_tokens", payload["max_completion_tokens"])
        for message in payload.get("messages", []):
            if message.get("role") == "assistant" and message.get("content") is None:
                message["content"] = ""
        return payload

    def _stream(self, *args: Any, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        seen: set[Any] = set()
        for chunk in super()._stream(*args, **kwargs):
            _dedupe_tool_chunk(chunk.message, seen)
            yield chunk

    async def _astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        seen: set[Any] = set()
        async for chunk in super()._astream(*args, **kwargs):
            _dedupe_tool_chunk(chunk.message, seen)
            yield chunk


def make_chat_model(choice: LLMChoice, cfg: LLMConfig) -> BaseChatModel:
    """A chat model for `choice`; retries are ours (see `with_retries`), not the SDK's."""
    if choice.mode != "openai" or not choice.model:
        raise ConfigError("no LLM configured (offline mode)")
    return CompatChatOpenAI(
        model=choice.model,
        base_url=choice.base_url,
        api_key=os.environ.get("OPENAI_API_KEY") or "not-needed",
        timeout=cfg.timeout_s,
        max_retries=0,
        temperature=cfg.temperature,
        max_completion_tokens=cfg.max_tokens,
        stream_usage=True,
    )


def is_transient(exc: BaseException) -> bool:
    """429, 5xx, timeouts and connection failures are worth retrying; the rest are not."""
    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError, openai.RateLimitError)):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code >= 500 or exc.status_code == 429
    return isinstance(exc, (httpx.TimeoutException, httpx.ConnectError, TimeoutError))


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    log.warning("LLM call failed (%s); retry %d", type(exc).__name__, state.attempt_number)


def with_retries(fn: Callable[[], T], cfg: LLMConfig) -> T:
    """Run `fn` with bounded, jittered exponential backoff on transient failures.
    Raises `LLMUnavailable` when it still fails."""
    retrying = retry(
        retry=retry_if_exception(is_transient),
        wait=wait_random_exponential(multiplier=0.5, max=cfg.backoff_max_s),
        stop=stop_after_attempt(cfg.max_retries + 1),
        before_sleep=_log_retry,
        reraise=True,
    )
    try:
        return retrying(fn)()
    except openai.OpenAIError as exc:
        raise LLMUnavailable(describe_error(exc)) from exc
    except (httpx.HTTPError, TimeoutError) as exc:
        raise LLMUnavailable(describe_error(exc)) from exc


def complete(model: BaseChatModel, prompt: RenderedPrompt, cfg: LLMConfig) -> tuple[str, AIMessage]:
    """One plain completion of a rendered prompt (its system part, then its text), with
    retries; returns the reply's text and the reply itself (for token usage)."""
    messages = [SystemMessage(content=prompt.system or ""), HumanMessage(content=prompt.text)]
    reply = with_retries(lambda: model.invoke(messages), cfg)
    text = reply.content if isinstance(reply.content, str) else ""
    return text, reply


def describe_error(exc: BaseException) -> str:
    """A short, secret-free description of an LLM failure."""
    if isinstance(exc, openai.APIStatusError):
        return f"the LLM server answered HTTP {exc.status_code}"
    if isinstance(exc, (openai.APITimeoutError, httpx.TimeoutException, TimeoutError)):
        return "the LLM server timed out"
    if isinstance(exc, openai.APIConnectionError):
        return "could not connect to the LLM server"
    return f"LLM error ({type(exc).__name__})"


__all__ = [
    "LLMChoice",
    "LLMConfig",
    "LLMUnavailable",
    "complete",
    "describe_error",
    "is_transient",
    "make_chat_model",
    "resolve_llm",
    "with_retries",
]
