"""Test doubles for the LLM path: a scripted LangChain chat model, and a real HTTP server that
speaks the OpenAI chat-completions protocol (streaming too) with scripted replies and
injected faults."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field

Reply = AIMessage | Callable[[list[BaseMessage]], AIMessage]


def tool_call(name: str, args: dict[str, Any], call_id: str | None = None) -> dict[str, Any]:
    return {"name": name, "args": args, "id": call_id or f"call_{name}_{time.monotonic_ns()}"}


def last_tool_json(messages: list[BaseMessage], name: str) -> dict[str, Any]:
    """The parsed result of the most recent call to tool `name` in `messages`."""
    for msg in reversed(messages):
        if isinstance(msg, ToolMessage) and msg.name == name:
            return json.loads(msg.content)
    raise AssertionError(f"no {name} result in the conversation")


class ScriptedChatModel(BaseChatModel):
    """Replies from a script (AIMessages, or functions of the conversation), in order.
    Records every call's messages and tool_choice."""

    script: list[Any] = Field(default_factory=list)
    calls: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Any, tool_choice: Any = None, **kwargs: Any) -> Any:
        names = [getattr(t, "name", None) or t.get("name") for t in tools]
        return self.bind(tool_names=names, tool_choice=tool_choice)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.calls.append({"messages": list(messages), **kwargs})
        if not self.script:
            raise AssertionError(f"script exhausted after {len(self.calls) - 1} calls")
        step = self.script.pop(0)
        reply = step(messages) if callable(step) else step
        reply.usage_metadata = {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}
        return ChatResult(generations=[ChatGeneration(message=reply)])


ServerReply = dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]]


class FakeOpenAIServer:
    """An OpenAI-compatible server on 127.0.0.1 with scripted replies.

    A reply is a dict: {"status": 429|500} (an error), {"sleep": s} (delay first),
    {"content": "..."}, {"tool_calls": [{"name": ..., "arguments": str|dict}]}; or a function
    of the request body returning one. `repeat_names` mimics servers that repeat the tool
    name in every streamed chunk (llama.cpp)."""

    def __init__(self, script: list[ServerReply] | None = None, repeat_names: bool = False) -> None:
        self.script: list[ServerReply] = list(script or [])
        self.requests: list[dict[str, Any]] = []
        self.repeat_names = repeat_names
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if "messages" in r]

    def _next(self, body: dict[str, Any]) -> dict[str, Any]:
        if not self.script:
            return {"status": 500, "error": "script exhausted"}
        step = self.script.pop(0)
        return step(body) if callable(step) else step

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _json(self, status: int, obj: Any) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._json(
                        200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]}
                    )
                else:
                    self._json(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                server.requests.append(body)
                reply = server._next(body)
                if reply.get("sleep"):
                    time.sleep(reply["sleep"])
                status = reply.get("status", 200)
                if status != 200:
                    self._json(
                        status,
                        {"error": {"message": reply.get("error", "injected"), "type": "fault"}},
                    )
                    return
                if body.get("stream"):
                    self._stream(body, reply)
                else:
                    self._json(200, _completion(body, reply))

            def _stream(self, body: dict[str, Any], reply: dict[str, Any]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                try:
                    for chunk in _chunks(body, reply, server.repeat_names):
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                        self.wfile.flush()
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading after the last chunk it needed

        return Handler


def _calls(reply: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for i, tc in enumerate(reply.get("tool_calls", [])):
        args = tc["arguments"]
        out.append(
            {
                "index": i,
                "id": tc.get("id", f"call_{i}_{tc['name']}"),
                "type": "function",
                "function": {
                    "name": tc["name"],
                    "arguments": args if isinstance(args, str) else json.dumps(args),
                },
            }
        )
    return out


_USAGE = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}


def _completion(body: dict[str, Any], reply: dict[str, Any]) -> dict[str, Any]:
    calls = _calls(reply)
    message: dict[str, Any] = {"role": "assistant", "content": reply.get("content")}
    if calls:
        message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in calls]
    return {
        "id": "cmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake-model"),
        "choices": [
            {"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}
        ],
        "usage": _USAGE,
    }


def _chunks(
    body: dict[str, Any], reply: dict[str, Any], repeat_names: bool
) -> list[dict[str, Any]]:
    base = {
        "id": "cmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model", "fake-model"),
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    out = [chunk({"role": "assistant", "content": ""})]
    content = reply.get("content") or ""
    for i in range(0, len(content), 8):
        out.append(chunk({"content": content[i : i + 8]}))
    calls = _calls(reply)
    for call in calls:
        args = call["function"]["arguments"]
        pieces = [args[i : i + 10] for i in range(0, len(args), 10)] or [""]
        for n, piece in enumerate(pieces):
            first = n == 0 or repeat_names
            delta_call: dict[str, Any] = {"index": call["index"], "function": {"arguments": piece}}
            if first:
                delta_call.update(id=call["id"], type="function")
                delta_call["function"]["name"] = call["function"]["name"]
            out.append(chunk({"tool_calls": [delta_call]}))
    out.append(chunk({}, "tool_calls" if calls else "stop"))
    if (body.get("stream_options") or {}).get("include_usage"):
        out.append({**base, "choices": [], "usage": _USAGE})
    return out


__all__ = ["FakeOpenAIServer", "ScriptedChatModel", "last_tool_json", "tool_call"]
