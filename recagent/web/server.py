"""The FastAPI app of `recagent serve`: the chat page at `/`, the API under `/v1`, OpenAPI
docs at `/docs`; errors as JSON; an API key when the server has one (declared as HTTP bearer
security in OpenAPI, so `/docs` can send it); idle conversations swept in the background."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from importlib.resources import files
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import FileResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from recagent import __version__
from recagent.config import LOOPBACK_HOSTS
from recagent.web import api, openai_api
from recagent.web.backend import Backend
from recagent.web.errors import BodyLimit, LoopbackHost, check_key, install_error_handlers
from recagent.web.models import Health

log = logging.getLogger(__name__)
STATIC = files("recagent.web") / "static"
SWEEP_EVERY_S = 60.0
BEARER = HTTPBearer(  # declares the scheme; `check_key` says what is wrong with a bad key
    scheme_name="bearerAuth",
    description="The server's API key (`recagent serve --api-key`), sent as "
    "`Authorization: Bearer <key>`.",
    auto_error=False,
)


def create_app(backend: Backend) -> FastAPI:
    server = backend.settings.server
    key = server.api_key.get_secret_value() if server.api_key is not None else None

    async def authorized(
        request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]
    ) -> None:
        check_key(key, request.headers.get("authorization"))  # the header as sent

    # with a key, the API's routes declare bearer security in OpenAPI (/docs can send it)
    guarded = [Depends(authorized)] if key is not None else []

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async def sweep() -> None:
            while True:
                await asyncio.sleep(min(SWEEP_EVERY_S, server.session_ttl_s))
                gone = await backend.lookup(backend.sessions.sweep)
                if gone:
                    log.info("forgot %d idle conversations", gone)

        task = asyncio.create_task(sweep())
        yield
        task.cancel()

    app = FastAPIOffline(  # /docs and /redoc with their scripts served here, not from a CDN
        title="recagent",
        version=__version__,
        description="Recommendations from an agent that calls classical recommenders as "
        "tools. Conversations under /v1/sessions; one shot at /v1/recommend; an "
        "OpenAI-compatible /v1/chat/completions. Errors are `{error: {type, message}}`.",
        lifespan=lifespan,
    )
    app.state.backend = backend
    install_error_handlers(app)
    app.add_middleware(BodyLimit, limit=server.max_body_bytes)
    if key is None:  # no key: loopback only, and no other site's name may reach it
        app.add_middleware(LoopbackHost, allowed=(*LOOPBACK_HOSTS, server.host))
    app.include_router(api.router, dependencies=guarded)
    app.include_router(openai_api.router, dependencies=guarded)

    @app.get("/healthz", response_model=Health, tags=["server"])
    async def healthz() -> Health:
        """Whether the server is up (no key needed)."""
        return Health()

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app


__all__ = ["create_app"]
