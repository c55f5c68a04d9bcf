"""What a conversation has taught the session about the person: the items they mentioned
with how they feel about each, the suggestions they answered, and the genres they said they
like or do not.

Loved, liked and seen items (and "like this one") extend the person's history, so SASRec
scores the next item for it and recall seeds from it; disliked items and rejected
suggestions are excluded from every later answer and pushed away from in the ranking. A
later statement about an item replaces an earlier one ("suggested" -> "loved").
"""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel, ConfigDict, Field

from recagent.agent.feelings import reply_feeling
from recagent.agent.request import NEGATIVE, POSITIVE, Feeling, Request
from recagent.agent.rules import RuleReader
from recagent.data.catalog import Catalog

SEED_WEIGHTS: dict[str, float] = {
    "like_this": 1.0,
    "loved": 1.0,
    "liked": 1.0,
    "seen": 0.5,
    "suggested": 0.5,
    "not_seen": 0.5,
}
"""How much a mentioned item says about what to recommend next (recall seeds from these)."""


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


class ConversationMemory:
    """The person's statements across turns (one per session; `reset` forgets them)."""

    def __init__(self) -> None:
        self.feelings: dict[str, Feeling] = {}  # item_id -> latest feeling, first-mention order
        self.pending: list[str] = []  # the other side's latest suggestions, not yet answered
        self.liked_genres: Counter[str] = Counter()
        self.disliked_genres: Counter[str] = Counter()

    def reset(self) -> None:
        self.feelings.clear()
        self.pending.clear()
        self.liked_genres.clear()
        self.disliked_genres.clear()

    def listen(self, reader: RuleReader, role: str, text: str) -> Request:
        """Learn from one message of a conversation, read by rules: the person's (`user`)
        statements, or the other side's suggestions; returns the reading."""
        if role == "user":
            request = reader.read(text)
            self.hear(request)
        else:
            request = reader.read(text, role="assistant")
            self.suggested([m.item_id for m in request.mentions if m.item_id])
        return request

    def hear(self, request: Request, shown: list[str] | None = None) -> None:
        """Learn from what the person said (`shown`: the last answer, for "the second one")."""
        answered = False
        for m in request.mentions:
            if m.rank is not None:
                for item_id in _by_rank(m.rank, shown or []):
                    self._set(item_id, m.feeling)
                continue
            if m.item_id:
                answered |= m.item_id in self.pending
                self._set(m.item_id, m.feeling)
        if self.pending and not answered:
            feeling = reply_feeling(request.text)
            if feeling is not None:
                for item_id in self.pending:
                    self._set(item_id, feeling)
        self.pending = []
        c = request.constraints
        self.liked_genres.update(c.genres_all + c.genres_any)
        self.disliked_genres.update(c.genres_none)

    def suggested(self, item_ids: list[str]) -> None:
        """The other side of a dialogue suggested these (an earlier message of the dialogue)."""
        for item_id in item_ids:
            if item_id not in self.feelings:
                self.feelings[item_id] = "suggested"
        self.pending = list(item_ids)

    def _set(self, item_id: str, feeling: Feeling) -> None:
        self.feelings.pop(item_id, None)  # a fresh statement moves it to the end (recency)
        self.feelings[item_id] = feeling

    def history(self) -> list[str]:
        """Items the person loved, liked, saw or named as "like this", oldest first."""
        return [i for i, f in self.feelings.items() if f in POSITIVE]

    def disliked(self) -> list[str]:
        return [i for i, f in self.feelings.items() if f in NEGATIVE]

    def seeds(self) -> dict[str, float]:
        """Items to recall from, with how much each says (disliked ones say nothing)."""
        return {i: SEED_WEIGHTS[f] for i, f in self.feelings.items() if f in SEED_WEIGHTS}

    def genre_preferences(self) -> tuple[list[str], list[str]]:
        """Genres said to be liked and disliked (a genre said both ways counts as neither)."""
        liked = [g for g in self.liked_genres if g not in self.disliked_genres]
        disliked = [g for g in self.disliked_genres if g not in self.liked_genres]
        return liked, disliked

    def learned(self, catalog: Catalog) -> Learned:
        liked, disliked = self.genre_preferences()
        return Learned(
            items=[
                LearnedItem(item_id=i, title=catalog[i].label, feeling=f)
                for i, f in self.feelings.items()
                if i in catalog
            ],
            liked_genres=liked,
            disliked_genres=disliked,
        )


def _by_rank(rank: int, shown: list[str]) -> list[str]:
    """Items of the last answer a rank refers to: 1-based, -1 the last one, 0 all of them."""
    if rank == 0:
        return list(shown)
    if rank == -1:
        return shown[-1:]
    return [shown[rank - 1]] if 1 <= rank <= len(shown) else []


__all__ = ["SEED_WEIGHTS", "ConversationMemory", "Learned", "LearnedItem"]
