"""Helpers for the web tests: a backend over a prepared stack, a real uvicorn server on
127.0.0.1 (a free port, in a thread), and a server-sent-events reader."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from recagent.app import AgentLLM, Services
from recagent.config import Settings, load_settings
from recagent.web.backend import Backend
from recagent.web.server import create_app


def server_settings(home: Path, **server: Any) -> Settings:
    settings = load_settings(home=home)
    validated = settings.server.model_validate(settings.server.model_dump() | server)
    return settings.model_copy(update={"server": validated})


def make_backend(
    services: Services,
    sessions_db: Path,
    llm: AgentLLM | None = None,
    **server: Any,
) -> Backend:
    settings = server_settings(services.workspace.root, **server)
    return Backend(services.workspace, settings, services, llm, sessions_db=sessions_db)


@contextmanager
def running(backend: Backend) -> Iterator[str]:
    """The app served by uvicorn on 127.0.0.1 (a free port) in a thread; yields its URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(backend), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def sse_events(response: httpx.Response) -> list[tuple[str, Any]]:
    """(event, data) pairs of a server-sent-events response, in order."""
    events, name, data = [], "message", []
    for line in response.iter_lines():
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line and data:
            events.append((name, json.loads("\n".join(data))))
            name, data = "message", []
    return events


__all__ = ["make_backend", "running", "server_settings", "sse_events"]
