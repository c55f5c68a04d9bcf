"""The LLM factory: choosing a model, retries with backoff, and OpenAI-compatible servers."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage

from recagent.agent.llm import LLMChoice, LLMUnavailable, make_chat_model, resolve_llm, with_retries
from recagent.config import LLMConfig
from recagent.errors import ConfigError
from tests.fakes import FakeOpenAIServer

FAST = LLMConfig(timeout_s=2, max_retries=2, backoff_max_s=0.05)


def test_offline_by_default() -> None:
    assert resolve_llm(None, LLMConfig()).mode == "offline"


def test_auto_uses_the_server_and_its_model(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenAIServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        choice = resolve_llm(None, LLMConfig())
    assert choice == LLMChoice("openai", "fake-model", server.base_url)
    assert resolve_llm("offline", LLMConfig()).mode == "offline"


def test_explicit_openai_without_configuration_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        resolve_llm("openai:gpt-4o-mini", LLMConfig())
    with pytest.raises(ConfigError, match="offline"):
        resolve_llm("anthropic:claude", LLMConfig())


def _model(server: FakeOpenAIServer, cfg: LLMConfig = FAST):
    return make_chat_model(LLMChoice("openai", "fake-model", server.base_url), cfg)


def test_429_then_success(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    with FakeOpenAIServer([{"status": 429}, {"content": "hello"}]) as server:
        reply = with_retries(lambda: _model(server).invoke([HumanMessage("hi")]), FAST)
    assert reply.content == "hello"
    assert len(server.chat_requests) == 2


def test_500_for_good_gives_up_after_bounded_retries(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    with (
        FakeOpenAIServer([{"status": 500}] * 5) as server,
        pytest.raises(LLMUnavailable, match="HTTP 500"),
    ):
        with_retries(lambda: _model(server).invoke([HumanMessage("hi")]), FAST)
    assert len(server.chat_requests) == FAST.max_retries + 1
    assert "sk-test-secret" not in caplog.text


def test_timeout_is_retried_then_reported() -> None:
    cfg = LLMConfig(timeout_s=0.3, max_retries=1, backoff_max_s=0.05)
    with (
        FakeOpenAIServer(
            [{"sleep": 1.0, "content": "late"}, {"sleep": 1.0, "content": "late"}]
        ) as server,
        pytest.raises(LLMUnavailable, match="timed out"),
    ):
        with_retries(lambda: _model(server, cfg).invoke([HumanMessage("hi")]), cfg)
    assert len(server.chat_requests) == 2


def test_bad_request_is_not_retried() -> None:
    with (
        FakeOpenAIServer([{"status": 400}, {"content": "never"}]) as server,
        pytest.raises(LLMUnavailable, match="HTTP 400"),
    ):
        with_retries(lambda: _model(server).invoke([HumanMessage("hi")]), FAST)
    assert len(server.chat_requests) == 1


def test_streamed_tool_calls_from_servers_that_repeat_names() -> None:
    """llama.cpp repeats the tool name in every chunk; it must not be concatenated."""
    reply = {
        "tool_calls": [{"name": "search_items", "arguments": {"query": "dark sci-fi", "k": 20}}]
    }
    with FakeOpenAIServer([reply], repeat_names=True) as server:
        model = _model(server).bind_tools(
            [
                {
                    "type": "function",
                    "function": {"name": "search_items", "parameters": {"type": "object"}},
                }
            ]
        )
        chunks = list(model.stream([HumanMessage("hi")]))
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    assert [tc["name"] for tc in merged.tool_calls] == ["search_items"]
    assert merged.tool_calls[0]["args"] == {"query": "dark sci-fi", "k": 20}


def test_assistant_tool_messages_carry_string_content() -> None:
    """Some servers reject `content: null` on assistant messages with tool calls."""
    from langchain_core.messages import AIMessage, ToolMessage

    with FakeOpenAIServer([{"content": "done"}]) as server:
        history = [
            HumanMessage("hi"),
            AIMessage(content="", tool_calls=[{"name": "t", "args": {}, "id": "c1"}]),
            ToolMessage(content="{}", tool_call_id="c1", name="t"),
        ]
        _model(server).invoke(history)
    sent = server.chat_requests[0]["messages"][1]
    assert sent["role"] == "assistant" and sent["content"] == ""


def test_a_compatible_server_gets_the_output_cap_it_knows() -> None:
    """llama.cpp's server reads `max_tokens` only: without it a model looping inside a
    schema-constrained answer writes until the context is full (seen: 6,841 tokens, 18 min)."""
    cfg = LLMConfig(timeout_s=2, max_retries=0, max_tokens=321)
    with FakeOpenAIServer([{"content": "hello"}]) as server:
        model = make_chat_model(LLMChoice("openai", "fake-model", server.base_url), cfg)
        with_retries(lambda: model.invoke([HumanMessage(content="hi")]), cfg)
    body = server.chat_requests[0]
    assert body["max_tokens"] == 321
