"""The agent's answer: a ranked list whose every item carries its explanation and evidence."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from recagent.agent.memory import Learned
from recagent.agent.request import Request
from recagent.tools.base import Evidence


class RankedItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rank: int
    item_id: str
    title: str
    year: int | None = None
    genres: list[str] = Field(default_factory=list)
    explanation: str
    evidence: list[Evidence] = Field(default_factory=list)
    score: float | None = Field(None, description="Blended tool score used for the order.")


class RankedList(BaseModel):
    """A validated answer (after the guard)."""

    model_config = ConfigDict(extra="forbid")

    items: list[RankedItem]
    message: str = ""
    mode: Literal["llm", "planner"] = Field(
        description="llm: an LLM called the tools; planner: the rule-based planner did."
    )
    model: str | None = None
    fallback_reason: str | None = Field(None, description="Why an LLM turn fell back.")
    notices: list[str] = Field(default_factory=list)
    repairs: dict[str, int] = Field(default_factory=dict)
    request: Request | None = None
    learned: Learned | None = Field(
        None, description="What the conversation taught the session (items, genres)."
    )


class FinalPick(BaseModel):
    item_id: str = Field(description="An item_id from the candidates.")
    explanation: str = Field("", description="Why, for this person, from its evidence.")


class FinalAnswer(BaseModel):
    """Submit the recommendations, best first, each with why it fits this person."""

    items: list[FinalPick] = Field(description="The recommended items, best first.")
    message: str = Field("", description="One sentence to the person.")
    search_more: str = Field(
        "", description="Only if too few candidates fit: what to search for instead."
    )


__all__ = ["FinalAnswer", "FinalPick", "RankedItem", "RankedList"]
