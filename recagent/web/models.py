"""The HTTP API's bodies: what clients send and get back (OpenAPI at `/docs`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from recagent.agent.request import MAX_K, MIN_K
from recagent.agent.schema import Learned, RankedList
from recagent.data.profile import UserProfile

MAX_TEXT = 4000  # characters of one message
MAX_ID = 128  # characters of a user or item id
MAX_HISTORY = 2000  # items in a one-shot history

UserId = Field(
    None,
    max_length=MAX_ID,
    description="A user id from the dataset; unknown or absent: a new user with no history.",
)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(Body):
    type: str = Field(description="bad_request, unauthorized, not_found, too_large, ...")
    message: str = Field(description="What went wrong, for a person.")


class ErrorBody(Body):
    """Every error response (the shape OpenAI clients understand too)."""

    error: ErrorDetail


class NewSession(Body):
    user_id: str | None = UserId
    dataset: str | None = Field(None, max_length=MAX_ID, description="Default: the server's.")
    offline: bool = Field(
        False, description="Use the rule-based planner even when the server has an LLM."
    )


class Turn(Body):
    """One exchange of a conversation, as the page shows it again after a reload."""

    kind: Literal["message", "feedback", "notice"]
    text: str
    answer: RankedList | None = None


class SessionInfo(Body):
    session_id: str
    dataset: str
    user_id: str | None
    user_note: str = Field(description="Who the user is: history size, or a new user.")
    mode: Literal["llm", "planner"]
    model: str | None = None
    learned: Learned
    turns: list[Turn] = Field(default_factory=list, description="The conversation so far.")


class MessageIn(Body):
    text: str = Field(
        max_length=MAX_TEXT, description='What the person says, e.g. "dark sci-fi from the 80s".'
    )
    k: int | None = Field(None, ge=MIN_K, le=MAX_K, description="How many items.")


class FeedbackIn(Body):
    item_id: str = Field(min_length=1, max_length=MAX_ID)
    feedback: Literal["like", "dislike"]


class FeedbackOut(Body):
    said: str = Field(description='What the feedback stands for, e.g. "I loved Heat (1995)".')
    learned: Learned


class RecommendIn(Body):
    """One shot: a user's stored history, or a history of item ids, and a request."""

    text: str = Field("", max_length=MAX_TEXT)
    user_id: str | None = UserId
    history: list[str] | None = Field(
        None, max_length=MAX_HISTORY, description="Item ids, oldest first (instead of a user)."
    )
    k: int | None = Field(None, ge=MIN_K, le=MAX_K)
    dataset: str | None = Field(None, max_length=MAX_ID)


class ItemOut(Body):
    item_id: str
    title: str
    year: int | None = None
    genres: list[str] = Field(default_factory=list)
    text: str = Field("", description="The item's description, when the catalog has one.")


class ItemsOut(Body):
    query: str
    items: list[ItemOut]


class EvidenceOut(Body):
    """One piece of evidence behind a recommendation, with the items it cites named."""

    tool: str
    kind: str
    words: str = Field(description="The evidence in words.")
    score: float | None = None
    rank: int | None = None
    matched_text: str | None = None
    because_of: list[ItemOut] = Field(default_factory=list)


class WhyOut(Body):
    rank: int
    item_id: str
    title: str
    explanation: str
    evidence: list[EvidenceOut]


class ProfileOut(Body):
    dataset: str
    user_id: str
    history_size: int
    summary: str
    recent: list[ItemOut] = Field(default_factory=list)
    profile: UserProfile | None = None


class DatasetOut(Body):
    name: str
    users: int | None = None
    items: int | None = None
    loaded: bool
    sample_users: list[str] = Field(default_factory=list, description="Some known user ids.")
    notes: list[str] = Field(
        default_factory=list, description="What it runs without (no SASRec, no index) and why."
    )


class InfoOut(Body):
    version: str
    dataset: str = Field(description="The default dataset.")
    datasets: list[DatasetOut]
    mode: Literal["llm", "planner"]
    model: str | None = None
    scorer: str = Field(
        description="What ranks candidates: the best trained model (SASRec, HSTU, ...), or "
        "popularity."
    )
    index: str | None = Field(None, description="The vector index's embedder (None: off).")
    auth: bool = Field(description="Whether requests need `Authorization: Bearer <key>`.")
    notes: list[str] = Field(default_factory=list)


class Health(Body):
    status: Literal["ok"] = "ok"


# --- server-sent events of a turn -----------------------------------------------------------


class StepEvent(Body):
    text: str


class TokenEvent(Body):
    text: str


class ErrorEvent(Body):
    message: str


__all__ = [
    "Body",
    "DatasetOut",
    "ErrorBody",
    "ErrorDetail",
    "ErrorEvent",
    "EvidenceOut",
    "FeedbackIn",
    "FeedbackOut",
    "Health",
    "InfoOut",
    "ItemOut",
    "ItemsOut",
    "MessageIn",
    "NewSession",
    "ProfileOut",
    "RecommendIn",
    "SessionInfo",
    "StepEvent",
    "TokenEvent",
    "Turn",
    "WhyOut",
]
