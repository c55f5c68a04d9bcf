"""The agent's answer: a ranked list whose every item carries its explanation and evidence."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from recagent.agent.plan import Plan
from recagent.agent.request import Feeling, Intent, Request
from recagent.data.profile import UserProfile
from recagent.tools.base import Evidence

VerdictLabel = Literal["good_pick", "maybe", "not_for_you", "seen", "disliked", "excluded"]


class LearnedItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_id: str
    title: str
    feeling: Feeling


class Learned(BaseModel):
    """What the session learned, as the JSON answer and `/profile` show it."""

    model_config = ConfigDict(extra="forbid")

    items: list[LearnedItem] = Field(default_factory=list)
    liked_genres: list[str] = Field(default_factory=list)
    disliked_genres: list[str] = Field(default_factory=list)

    def describe(self) -> str:
        groups: dict[str, list[str]] = {}
        for it in self.items:
            groups.setdefault(it.feeling, []).append(it.title)
        parts = [
            f"{feeling.replace('_', ' ')}: {'; '.join(titles)}"
            for feeling, titles in groups.items()
        ]
        if self.liked_genres:
            parts.append(f"likes {', '.join(self.liked_genres)}")
        if self.disliked_genres:
            parts.append(f"does not like {', '.join(self.disliked_genres)}")
        return " | ".join(parts) if parts else "nothing yet"


class Verdict(BaseModel):
    """One title judged for this person (judge), or why it was not recommended (why_not)."""

    model_config = ConfigDict(extra="forbid")

    item_id: str
    title: str
    label: VerdictLabel = Field(
        description="good_pick, maybe, not_for_you; or seen, disliked, excluded (by the "
        "request's constraints) when it cannot be recommended at all."
    )
    summary: str = Field(description="The verdict in plain words.")
    reasons: list[str] = Field(default_factory=list, description="The evidence, in words.")
    catalog_rank: int | None = Field(
        None, description="Its place among the catalog's unseen items for this person."
    )
    catalog_size: int | None = None
    predicted_stars: float | None = Field(
        None, description="The stars the best rating predictor on valid expects them to give."
    )
    rating_model: str | None = Field(None, description="Which predictor that was.")


class ProfileAnswer(BaseModel):
    """What is known of the person's taste (profile)."""

    model_config = ConfigDict(extra="forbid")

    summary: str
    profile: UserProfile
    learned: Learned


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
    """A validated answer (after the guard). `kind` says what it answers: items to try
    (recommend), the person's own titles in order (rank) - both lists -, a verdict on one
    title (judge, why_not: `verdict`, the title as the one item), or their taste (profile:
    `profile`, no items)."""

    model_config = ConfigDict(extra="forbid")

    kind: Intent = "recommend"
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
    verdict: Verdict | None = None
    profile: ProfileAnswer | None = None
    plan: Plan | None = Field(None, description="The tool calls that ran, in order.")


class FinalPick(BaseModel):
    item_id: str = Field(description="An item_id from the candidates.")
    explanation: str = Field("", description="Why, for this person, from its evidence.")


class FinalAnswer(BaseModel):
    """Submit the recommendations, best first, each with why it fits this person."""

    items: list[FinalPick] = Field(description="The recommended items, best first.")
    message: str = Field("", description="One sentence to the person.")


__all__ = [
    "FinalAnswer",
    "FinalPick",
    "Learned",
    "LearnedItem",
    "ProfileAnswer",
    "RankedItem",
    "RankedList",
    "Verdict",
    "VerdictLabel",
]
