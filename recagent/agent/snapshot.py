"""A conversation as plain data, so a server can store it and pick it up again after a
restart: the user, what the conversation taught the session (items and how the person feels
about them, genres), the last request and answer, what was shown, and the recent messages
the model sees. Restoring one onto a fresh session of the same dataset continues the
conversation as if nothing had happened."""

from __future__ import annotations

from collections import Counter

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from pydantic import BaseModel, ConfigDict, Field

from recagent.agent.request import ChatMessage, Feeling, Request
from recagent.agent.schema import RankedList
from recagent.agent.session import ChatSession
from recagent.errors import ConfigError

SNAPSHOT_VERSION = 1


class MemorySnapshot(BaseModel):
    model_config = ConfigDict(extra="forbid")

    feelings: list[tuple[str, Feeling]] = Field(
        default_factory=list, description="item_id and feeling, first mention first."
    )
    pending: list[str] = Field(default_factory=list)
    liked_genres: dict[str, int] = Field(default_factory=dict)
    disliked_genres: dict[str, int] = Field(default_factory=dict)


class SessionSnapshot(BaseModel):
    """Everything a conversation needs to continue."""

    model_config = ConfigDict(extra="forbid")

    version: int = SNAPSHOT_VERSION
    dataset: str
    user_id: str | None = None
    memory: MemorySnapshot = Field(default_factory=MemorySnapshot)
    last_request: Request | None = None
    last_list: RankedList | None = None
    shown: list[str] = Field(default_factory=list)
    messages: list[ChatMessage] = Field(default_factory=list)


def _chat_message(message: BaseMessage) -> ChatMessage:
    role = "user" if isinstance(message, HumanMessage) else "assistant"
    content = message.content if isinstance(message.content, str) else str(message.content)
    return ChatMessage(role=role, text=content)


def snapshot(session: ChatSession) -> SessionSnapshot:
    memory, state = session.memory, session.state
    return SessionSnapshot(
        dataset=session.dataset.name,
        user_id=session.ctx.user_id,
        memory=MemorySnapshot(
            feelings=list(memory.feelings.items()),
            pending=list(memory.pending),
            liked_genres=dict(memory.liked_genres),
            disliked_genres=dict(memory.disliked_genres),
        ),
        last_request=state.last_request,
        last_list=state.last_list,
        shown=list(state.shown),
        messages=[_chat_message(m) for m in state.messages],
    )


def restore(session: ChatSession, snap: SessionSnapshot) -> None:
    """Continue the conversation `snap` on `session` (a fresh one of the same dataset)."""
    if snap.dataset != session.dataset.name:
        raise ConfigError(
            f"a conversation on {snap.dataset} cannot continue on {session.dataset.name}"
        )
    session.set_user(snap.user_id)
    memory, state = session.memory, session.state
    memory.feelings = dict(snap.memory.feelings)
    memory.pending = list(snap.memory.pending)
    memory.liked_genres = Counter(snap.memory.liked_genres)
    memory.disliked_genres = Counter(snap.memory.disliked_genres)
    state.last_request = snap.last_request
    state.last_list = snap.last_list
    state.shown = list(snap.shown)
    state.messages = [
        HumanMessage(content=m.text) if m.role == "user" else AIMessage(content=m.text)
        for m in snap.messages
    ]


__all__ = ["MemorySnapshot", "SessionSnapshot", "restore", "snapshot"]
