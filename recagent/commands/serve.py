"""`recagent serve`: the chat page and the HTTP API (FastAPI + uvicorn), in one process or in
`--workers N` processes behind one port (uvicorn's supervisor; the conversations' store and
its locks are shared, see `recagent.web.sessions`)."""

from __future__ import annotations

import functools
import ipaddress
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from recagent.commands.chat import DatasetOpt, LLMOpt
from recagent.commands.context import get_context, setup_logging
from recagent.config import LOOPBACK_HOSTS, ServerConfig, Settings
from recagent.errors import ConfigError

if TYPE_CHECKING:
    from fastapi import FastAPI

WORKER_HEALTHCHECK_S = 60.0  # a worker busy loading models still answers the supervisor
WORKER_START_S = 600.0  # how long "all N workers are serving" may take to be said


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
    workers: Annotated[
        int | None,
        typer.Option(
            help="Server processes behind the one port \\[default: 1]. Each loads the models "
            "(memory grows with N) and answers any conversation: they share the stored "
            "conversations, and one conversation's turns still run one at a time.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the chat page and the HTTP API. Missing data, model and index are built first,
    as `recagent chat` does; then the URL is printed (with --workers N, and a line once all
    of them serve)."""
    from pydantic import ValidationError

    from recagent.app import load_services, resolve_agent_llm

    app_ctx = get_context(ctx)
    settings = app_ctx.settings
    given = {"host": host, "port": port, "api_key": api_key, "workers": workers}
    chosen = {k: v for k, v in given.items() if v is not None}
    try:
        server = ServerConfig.model_validate(settings.server.model_dump() | chosen)
    except ValidationError as exc:
        error = exc.errors()[0]
        option = "--" + "-".join(str(p) for p in error["loc"]).replace("_", "-")
        raise ConfigError(f"invalid server options: {option}: {error['msg']}") from exc
    settings = settings.model_copy(update={"server": server})
    check_exposure(settings)
    name = app_ctx.dataset_name(dataset)
    services = load_services(app_ctx.workspace, settings, name, app_ctx.reporter)
    for note in services.notes:
        app_ctx.err.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True)
    agent_llm = resolve_agent_llm(settings, app_ctx.workspace, llm)
    mode = f"LLM {agent_llm.name}" if agent_llm else "offline (rule-based planner)"
    backend = None
    if server.workers == 1:  # one process: today's server, its backend built here
        from recagent.web.backend import Backend

        backend = Backend(app_ctx.workspace, settings, services, agent_llm)
    sock = bind(server.host, server.port)
    bound_port = sock.getsockname()[1]
    shown = f"[{server.host}]" if ":" in server.host else server.host
    url = f"http://{shown}:{bound_port}/"
    processes = f" · {server.workers} workers" if server.workers > 1 else ""
    app_ctx.out.print(
        f"recagent · {services.dataset.name} · mode: {escape(mode)}{processes}\n"
        f"serving on {url}  (API docs: {url}docs; Ctrl-C stops)",
        soft_wrap=True,
    )
    sys.stdout.flush()
    log_level = "warning" if app_ctx.verbose == 0 else "info"
    if backend is not None:
        from recagent.web.server import create_app

        run_one(create_app(backend), sock, log_level)
        return
    del services, agent_llm  # the workers load their own (built now: they only load)
    spec = WorkerSpec(app_ctx.workspace.root, dict(settings), name, llm, app_ctx.verbose)

    def ready() -> None:
        app_ctx.out.print(f"all {server.workers} workers are serving")
        sys.stdout.flush()

    run_workers(spec, server.workers, sock, log_level, ready)


def run_one(app: FastAPI, sock: socket.socket, log_level: str) -> None:
    import uvicorn

    config = uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process needs to build its app (sent to each worker by pickling;
    `settings` as its fields, since a Settings built from a file is a local class)."""

    home: Path
    settings: dict[str, Any]
    dataset: str
    llm: str | None
    verbose: int


def worker_app(spec: WorkerSpec) -> FastAPI:
    """The app of one worker process: its own services (loaded, not built: the parent built
    them before it started the workers), LLM and backend over the shared store. A failure
    stops the server (uvicorn's startup-failure exit) instead of a restart loop."""
    from uvicorn.config import STARTUP_FAILURE

    from recagent.app import load_services, resolve_agent_llm
    from recagent.errors import RecagentError
    from recagent.terminal import SafeConsole
    from recagent.web.backend import Backend
    from recagent.web.server import create_app
    from recagent.workspace import Workspace

    err = SafeConsole(stderr=True)
    setup_logging(spec.verbose, err)
    try:
        settings = Settings.model_construct(**spec.settings)
        workspace = Workspace(spec.home)
        services = load_services(workspace, settings, spec.dataset, build_missing=False)
        agent_llm = resolve_agent_llm(settings, workspace, spec.llm)
        return create_app(Backend(workspace, settings, services, agent_llm))
    except RecagentError as exc:
        err.print(f"[bold red]error:[/] a server worker could not start: {escape(str(exc))}")
        sys.exit(STARTUP_FAILURE)


def run_workers(
    spec: WorkerSpec,
    n: int,
    sock: socket.socket,
    log_level: str,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """`n` worker processes on the bound socket under uvicorn's supervisor (it restarts a
    worker that dies); `on_ready` is called once all of them serve. Ctrl-C (or SIGTERM)
    stops them all and then this process, as the single-process server does (exit 130 on
    Ctrl-C)."""
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors.multiprocess import SIGNALS

    config = uvicorn.Config(
        functools.partial(worker_app, spec),
        factory=True,
        workers=n,
        log_level=log_level,
        timeout_graceful_shutdown=5,
        timeout_worker_healthcheck=int(WORKER_HEALTHCHECK_S),
    )
    before = {sig: signal.getsignal(sig) for sig in SIGNALS}
    supervisor = _supervisor_class()(config, sockets=[sock])
    supervisor.on_ready = on_ready
    try:
        supervisor.run()
    finally:
        for sig, handler in before.items():
            if handler is not None:
                signal.signal(sig, handler)
    if any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes):
        raise ConfigError("the server stopped: a worker could not start (see above)")
    if supervisor.stopped_by is not None:
        signal.raise_signal(supervisor.stopped_by)  # Ctrl-C: KeyboardInterrupt, exit 130


def _supervisor_class() -> type[Any]:
    from uvicorn.supervisors.multiprocess import Multiprocess

    class Supervisor(Multiprocess):  # type: ignore[misc]
        """uvicorn's supervisor, saying when every worker is serving (`on_ready`) and
        remembering which signal stopped it."""

        stopped_by: int | None = None
        on_ready: Callable[[], None] | None = None

        def init_processes(self) -> None:
            super().init_processes()
            deadline = time.monotonic() + WORKER_START_S
            while not self.signal_queue and time.monotonic() < deadline:
                if not all(p.process.is_alive() for p in self.processes):
                    return  # the supervisor's loop restarts it, or stops on a failed start
                if all(p.is_ready(timeout=1) for p in self.processes):
                    if self.on_ready is not None:
                        self.on_ready()
                    return
                time.sleep(0.2)

        def handle_int(self) -> None:
            self.stopped_by = signal.SIGINT
            super().handle_int()

        def handle_term(self) -> None:
            self.stopped_by = self.stopped_by or signal.SIGTERM
            super().handle_term()

    return Supervisor


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the URL is printed (port 0: a free port); the
    workers of `--workers N` share it."""
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
