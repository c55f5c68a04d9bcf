"""`recagent serve`: the chat page and the HTTP API (FastAPI + uvicorn)."""

from __future__ import annotations

import ipaddress
import socket
import sys
from typing import Annotated

import typer
from rich.markup import escape

from recagent.commands.chat import DatasetOpt, LLMOpt
from recagent.commands.context import get_context
from recagent.config import LOOPBACK_HOSTS, ServerConfig, Settings
from recagent.errors import ConfigError


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def check_exposure(settings: Settings) -> None:
    """Anything but a loopback address needs an API key: refuse to start without one."""
    server = settings.server
    if not is_loopback(server.host) and server.api_key is None:
        raise ConfigError(
            f"--host {server.host} makes the server reachable from other machines; it needs an "
            "API key: pass --api-key KEY or set RECAGENT_SERVER__API_KEY (clients send "
            "'Authorization: Bearer KEY'), or keep the default --host 127.0.0.1"
        )


def serve_cmd(
    ctx: typer.Context,
    dataset: DatasetOpt = None,
    llm: LLMOpt = None,
    host: Annotated[
        str | None,
        typer.Option(
            help="Address to bind \\[default: 127.0.0.1; others need an API key].",
            show_default=False,
        ),
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port \\[default: 8000].", show_default=False)
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="RECAGENT_SERVER__API_KEY",
            help="Clients must send 'Authorization: Bearer KEY' (required off loopback).",
            show_default=False,
            show_envvar=True,
        ),
    ] = None,
) -> None:
    """Serve the chat page and the HTTP API. Missing data, model and index are built first,
    as `recagent chat` does; then the URL is printed."""
    import uvicorn
    from pydantic import ValidationError

    from recagent.app import load_services, resolve_agent_llm
    from recagent.web.backend import Backend
    from recagent.web.server import create_app

    app_ctx = get_context(ctx)
    settings = app_ctx.settings
    given = {"host": host, "port": port, "api_key": api_key}
    chosen = {k: v for k, v in given.items() if v is not None}
    try:
        server = ServerConfig.model_validate(settings.server.model_dump() | chosen)
    except ValidationError as exc:
        raise ConfigError(f"invalid server options: {exc.errors()[0]['msg']}") from exc
    settings = settings.model_copy(update={"server": server})
    check_exposure(settings)
    services = load_services(
        app_ctx.workspace, settings, app_ctx.dataset_name(dataset), app_ctx.reporter
    )
    for note in services.notes:
        app_ctx.err.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True)
    agent_llm = resolve_agent_llm(settings, app_ctx.workspace, llm)
    backend = Backend(app_ctx.workspace, settings, services, agent_llm)
    mode = f"LLM {agent_llm.name}" if agent_llm else "offline (rule-based planner)"
    sock = bind(server.host, server.port)
    bound_port = sock.getsockname()[1]
    shown = f"[{server.host}]" if ":" in server.host else server.host
    url = f"http://{shown}:{bound_port}/"
    app_ctx.out.print(
        f"recagent · {services.dataset.name} · mode: {escape(mode)}\n"
        f"serving on {url}  (API docs: {url}docs; Ctrl-C stops)",
        soft_wrap=True,
    )
    sys.stdout.flush()
    config = uvicorn.Config(
        create_app(backend),
        log_level="warning" if app_ctx.verbose == 0 else "info",
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run(sockets=[sock])


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the URL is printed (port 0: a free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror}); try another --port"
        ) from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock
