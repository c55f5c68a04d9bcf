"""What the HTTP layer serves: the prepared datasets' services (built by `recagent.app`), the
LLM when one is configured, the live conversations, and the threads that run the blocking
work off the event loop: turns in one pool, quick lookups in another, so that slow turns
never keep a lookup waiting."""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from recagent import __version__
from recagent.agent.runlog import RunLog
from recagent.agent.session import ChatSession
from recagent.app import AgentLLM, Services, open_services
from recagent.config import Settings
from recagent.errors import RecagentError
from recagent.web.models import DatasetOut, InfoOut
from recagent.web.sessions import Sessions, SessionStore
from recagent.web.tokens import streaming_model
from recagent.workspace import Workspace

log = logging.getLogger(__name__)
T = TypeVar("T")
SAMPLE_USERS = 200  # user ids offered by the page's picker


class UnknownDataset(RecagentError):
    """A dataset that is not prepared in this workspace."""


class Backend:
    def __init__(
        self,
        workspace: Workspace,
        settings: Settings,
        default: Services,
        llm: AgentLLM | None = None,
        sessions_db: Path | None = None,
    ) -> None:
        """`sessions_db`: where conversations are stored [default: the workspace's
        server/sessions.sqlite]."""
        self.workspace = workspace
        self.settings = settings
        self.default = default.dataset.name
        self.llm = llm
        self._streaming = (
            streaming_model(llm.model)
            if llm is not None and settings.server.stream_tokens
            else None
        )
        self._services: dict[str, Services] = {self.default: default}
        self._loading = threading.Lock()
        self.runlog = RunLog(workspace.log_db)
        self.sessions = Sessions(
            SessionStore(sessions_db or workspace.root / "server" / "sessions.sqlite"),
            self.new_session,
            settings.server.session_ttl_s,
            max_live=settings.server.max_live_sessions,
        )
        self.limiter = anyio.CapacityLimiter(settings.server.turn_threads)
        self.lookups = anyio.CapacityLimiter(settings.server.lookup_threads)
        self._tasks: set[asyncio.Task[Any]] = set()

    # ---- datasets ----------------------------------------------------------------------

    def dataset_names(self) -> list[str]:
        return sorted(set(self.workspace.dataset_names()) | set(self._services))

    def services(self, name: str | None) -> Services:
        """The services of a prepared dataset (another than the default is loaded on first
        use, without building what is missing: that is said in its notes)."""
        name = name or self.default
        loaded = self._services.get(name)
        if loaded is not None:  # the usual case: no waiting on another dataset's loading
            return loaded
        with self._loading:
            if name in self._services:
                return self._services[name]
            if name not in self.workspace.dataset_names():
                choices = ", ".join(self.dataset_names())
                raise UnknownDataset(f"no prepared dataset {name!r}; prepared: {choices}")
            services = open_services(
                self.workspace, self.settings, name, build_missing=False
            ).warm()
            self._services[name] = services
            return services

    # ---- sessions ------------------------------------------------------------------------

    def new_session(self, dataset: str, offline: bool = False) -> ChatSession:
        """A fresh conversation on `dataset` (the LLM's, unless `offline` or none)."""
        services = self.services(dataset)
        if self.llm is None or offline:
            return services.session(runlog=self.runlog)
        model = self._streaming or self.llm.model
        return services.session(
            model, self.llm.name, profile_cache=self.llm.profile_cache, runlog=self.runlog
        )

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a turn (blocking, maybe minutes with a model) in a thread, so the event loop
        keeps serving others; at most `turn_threads` at once."""
        return await anyio.to_thread.run_sync(functools.partial(fn, *args), limiter=self.limiter)

    async def lookup(self, fn: Callable[..., T], *args: Any) -> T:
        """Run quick blocking work (a search, a profile, a conversation from the store) in a
        thread of its own pool (`lookup_threads`), never queued behind turns."""
        return await anyio.to_thread.run_sync(functools.partial(fn, *args), limiter=self.lookups)

    def keep(self, task: asyncio.Task[Any]) -> None:
        """Hold a turn that runs on after its client left until it is done."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- what the server is --------------------------------------------------------------

    def info(self) -> InfoOut:
        default = self._services[self.default]
        datasets = []
        for name in self.dataset_names():
            loaded = self._services.get(name)
            if loaded is None:
                datasets.append(DatasetOut(name=name, loaded=False))
                continue
            inter = loaded.dataset.interactions
            sample = min(SAMPLE_USERS, inter.n_users)
            datasets.append(
                DatasetOut(
                    name=name,
                    users=inter.n_users,
                    items=len(loaded.dataset.catalog),
                    loaded=True,
                    sample_users=[inter.user_id_at(u) for u in range(1, sample + 1)],
                    notes=list(loaded.notes),
                )
            )
        meta = getattr(default.index, "meta", None)
        return InfoOut(
            version=__version__,
            dataset=self.default,
            datasets=datasets,
            mode="llm" if self.llm else "planner",
            model=self.llm.name if self.llm else None,
            scorer=default.scorer_title,
            index=str(meta.embedder) if meta is not None else None,
            auth=self.settings.server.api_key is not None,
            notes=list(default.notes),
        )


__all__ = ["Backend", "UnknownDataset"]
