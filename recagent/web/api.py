"""The HTTP API: conversations (sessions, messages as JSON or server-sent events, feedback,
why), one-shot recommendations, the catalog, user profiles, and what the server is."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import StreamingResponse

from recagent.agent.schema import RankedList
from recagent.agent.turn import AskOptions
from recagent.app import Services
from recagent.tools.profile import SummarizeProfileResult
from recagent.tools.registry import run_tool
from recagent.web.backend import Backend, UnknownDataset
from recagent.web.errors import ApiError
from recagent.web.models import (
    MAX_ID,
    ErrorBody,
    FeedbackIn,
    FeedbackOut,
    InfoOut,
    ItemOut,
    ItemsOut,
    MessageIn,
    NewSession,
    ProfileOut,
    RecommendIn,
    SessionInfo,
    WhyOut,
)
from recagent.web.sessions import Live, UnknownSession
from recagent.web.turns import answer, feedback, keep_alive, stream
from recagent.web.views import item_out, why_out

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody},
    401: {"model": ErrorBody},
    404: {"model": ErrorBody},
    413: {"model": ErrorBody},
    415: {"model": ErrorBody},
    422: {"model": ErrorBody},
    500: {"model": ErrorBody},
}
SessionId = Annotated[str, Path(max_length=64, description="From POST /v1/sessions.")]
DatasetQ = Annotated[str | None, Query(max_length=MAX_ID, description="Default: the server's.")]


def backend_of(request: Request) -> Backend:
    backend: Backend = request.app.state.backend
    return backend


async def live_session(backend: Backend, session_id: str) -> Live:
    try:
        return await backend.lookup(backend.sessions.get, session_id)
    except UnknownSession:
        raise ApiError(
            404,
            f"no conversation {session_id!r} (it never existed or expired); start one "
            "with POST /v1/sessions",
        ) from None


async def services_of(backend: Backend, dataset: str | None) -> Services:
    try:
        return await backend.lookup(backend.services, dataset)
    except UnknownDataset as exc:
        raise ApiError(404, str(exc)) from None


def session_info(live: Live, note: str = "") -> SessionInfo:
    s = live.session
    return SessionInfo(
        session_id=live.session_id,
        dataset=s.dataset.name,
        user_id=s.ctx.user_id,
        user_note=note or _user_note(live),
        mode=s.mode,  # type: ignore[arg-type]
        model=s.model_name if s.mode == "llm" else None,
        learned=s.conversation.learned(s.dataset.catalog),
        turns=list(live.turns),
    )


def _user_note(live: Live) -> str:
    s = live.session
    if s.ctx.user_id is None:
        return "no user: recommendations come from what you say"
    if not s.user_history:
        return f"user {s.ctx.user_id}: a new user with no history"
    return f"user {s.ctx.user_id}: {len(s.user_history)} items in the history"


router = APIRouter(prefix="/v1", responses=ERRORS)


@router.get("/info", response_model=InfoOut, tags=["server"])
async def info(request: Request) -> InfoOut:
    """The default dataset and the prepared ones, the mode (LLM model or offline planner),
    the scorer and index, and the version."""
    return backend_of(request).info()


@router.post("/sessions", response_model=SessionInfo, status_code=201, tags=["conversation"])
async def new_session(body: NewSession, request: Request) -> SessionInfo:
    """Start a conversation, for a known user, a new user, or nobody in particular."""
    backend = backend_of(request)
    try:
        live, note = await backend.lookup(
            backend.sessions.create, body.dataset or backend.default, body.user_id, body.offline
        )
    except UnknownDataset as exc:
        raise ApiError(404, str(exc)) from None
    return session_info(live, note)


@router.get("/sessions/{session_id}", response_model=SessionInfo, tags=["conversation"])
async def get_session(session_id: SessionId, request: Request) -> SessionInfo:
    """The conversation so far (after a reload or a server restart); during a turn, once
    it is answered."""
    backend = backend_of(request)
    live = await live_session(backend, session_id)
    async with live.lock:  # a consistent view: not halfway through a turn
        await backend.lookup(backend.sessions.refresh, live)  # another worker's turns too
        return session_info(live)


@router.post(
    "/sessions/{session_id}/messages",
    response_model=RankedList,
    tags=["conversation"],
    responses={
        200: {
            "content": {
                "text/event-stream": {
                    "schema": {
                        "type": "string",
                        "description": "event: step|token|answer|error, data: JSON "
                        "({text}, {text}, RankedList, {message}); the last is answer or error; "
                        "comment lines (': keep-alive') while a turn is quiet",
                    }
                }
            }
        }
    },
)
async def message(
    session_id: SessionId, body: MessageIn, request: Request
) -> RankedList | StreamingResponse:
    """Say something; the answer is a RankedList. With `Accept: text/event-stream` the turn
    streams: `step` events (what the agent is doing, in words), `token` events (the model's
    text, LLM mode), then one `answer` (or one `error`); a comment (`: keep-alive`) every
    `sse_keepalive_s` seconds that nothing else is sent."""
    backend = backend_of(request)
    live = await live_session(backend, session_id)
    if "text/event-stream" in request.headers.get("accept", ""):
        return StreamingResponse(
            keep_alive(stream(backend, live, body), backend.settings.server.sse_keepalive_s),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    return await answer(backend, live, body)


@router.post("/sessions/{session_id}/feedback", response_model=FeedbackOut, tags=["conversation"])
async def give_feedback(session_id: SessionId, body: FeedbackIn, request: Request) -> FeedbackOut:
    """Like or dislike an item: learned exactly as saying "I loved X" / "I didn't like X"
    (a liked item joins the history, a disliked one never comes back)."""
    backend = backend_of(request)
    live = await live_session(backend, session_id)
    if body.item_id not in live.session.dataset.catalog:
        raise ApiError(404, f"no item {body.item_id!r} in {live.session.dataset.name}")
    return await feedback(backend, live, body.item_id, body.feedback == "like")


@router.get("/sessions/{session_id}/why/{item_id}", response_model=WhyOut, tags=["conversation"])
async def why(
    session_id: SessionId, item_id: Annotated[str, Path(max_length=MAX_ID)], request: Request
) -> WhyOut:
    """Why an item of this conversation's answers was recommended (in the latest answer
    that holds it): its explanation and each piece of evidence, in words, with the items
    it cites."""
    backend = backend_of(request)
    live = await live_session(backend, session_id)
    if not live.lock.locked():  # else a turn runs here, and this copy is the newest
        async with live.lock:
            await backend.lookup(backend.sessions.refresh, live)
    answers = [t.answer for t in reversed(live.turns) if t.answer is not None]
    for ranked in answers:
        for it in ranked.items:
            if it.item_id == item_id:
                return why_out(it, live.session.dataset.catalog)
    raise ApiError(404, f"item {item_id!r} was not recommended in this conversation")


@router.post("/recommend", response_model=RankedList, tags=["one shot"])
async def recommend(body: RecommendIn, request: Request) -> RankedList:
    """One recommendation without a conversation: for a user's stored history, or for a
    history of item ids, and a request in words."""
    backend = backend_of(request)
    services = await services_of(backend, body.dataset)
    catalog = services.dataset.catalog
    if body.history is not None:
        unknown = [i for i in body.history if i not in catalog]
        if unknown:
            raise ApiError(422, f"history: unknown item ids {', '.join(unknown[:10])}")

    def run() -> RankedList:
        session = backend.new_session(services.dataset.name)
        session.set_user(body.user_id)
        return session.ask(body.text, k=body.k, options=AskOptions(history=body.history))

    return await backend.run(run)


@router.get("/items", response_model=ItemsOut, tags=["catalog"])
async def items(
    request: Request,
    q: Annotated[str, Query(min_length=1, max_length=200, description="A title or a description.")],
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
    dataset: DatasetQ = None,
) -> ItemsOut:
    """Items whose title matches `q` (typos are fine), then items whose description does."""
    backend = backend_of(request)
    services = await services_of(backend, dataset)

    def search() -> list[ItemOut]:
        ds = services.dataset
        found = [h.item_id for h in ds.titles.search(q, limit=limit)]
        if services.index is not None and len(found) < limit:
            found += [h.item_id for h in services.index.search(q, limit, None)]
        unique = list(dict.fromkeys(found))[:limit]
        return [item_out(ds.catalog[i]) for i in unique]

    return ItemsOut(query=q, items=await backend.lookup(search))


@router.get("/items/{item_id}", response_model=ItemOut, tags=["catalog"])
async def item(
    item_id: Annotated[str, Path(max_length=MAX_ID)], request: Request, dataset: DatasetQ = None
) -> ItemOut:
    """One item, with its description."""
    services = await services_of(backend_of(request), dataset)
    found = services.dataset.catalog.get(item_id)
    if found is None:
        raise ApiError(404, f"no item {item_id!r} in {services.dataset.name}")
    return item_out(found, with_text=True)


@router.get("/users/{user_id}/profile", response_model=ProfileOut, tags=["catalog"])
async def profile(
    user_id: Annotated[str, Path(max_length=MAX_ID)], request: Request, dataset: DatasetQ = None
) -> ProfileOut:
    """What a user's history says about their taste."""
    backend = backend_of(request)
    services = await services_of(backend, dataset)
    ds = services.dataset
    if ds.interactions.user_idx_of(user_id) is None:
        raise ApiError(404, f"user {user_id!r} is not in {ds.name}")

    def summarize() -> ProfileOut:
        session = services.session()
        session.set_user(user_id)
        session.ctx.history_ratings = session.user_ratings
        result = run_tool("summarize_profile", {}, session.ctx)
        if not isinstance(result, SummarizeProfileResult):
            raise ApiError(500, f"the profile could not be made ({getattr(result, 'error', '')})")
        recent = [item_out(ds.catalog[i]) for i in reversed(session.user_history[-10:])]
        return ProfileOut(
            dataset=ds.name,
            user_id=user_id,
            history_size=len(session.user_history),
            summary=result.summary,
            recent=recent,
            profile=result.profile,
        )

    return await backend.lookup(summarize)


__all__ = ["router"]
