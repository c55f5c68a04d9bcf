"""A conversation as one value: who the person is, how they feel about the items they named,
the suggestions they have not answered yet, the genres they said they like or not, the last
request and the last answer (kept apart from everything shown), and the recent messages the
model sees.

A turn never changes it in place. Reading a message gives a `ConversationDelta`
(`Conversation.hear`); the turn builds its answer against the conversation with that delta
applied, and the session keeps the result only when the turn succeeded (`commit`), so a turn
that fails learns nothing. The same value is what the server stores and restores.

What it means for recommending: loved, liked and seen items (and "like this one") extend the
person's history, so the sequence model scores the next item for it and recall seeds from
it; disliked items and rejected suggestions never come back and pull their look-alikes down.
A later statement about an item replaces an earlier one ("suggested" -> "loved").
"""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel, ConfigDict, Field

from recagent.agent.feelings import reply_feeling
from recagent.agent.request import NEGATIVE, POSITIVE, ChatMessage, Feeling, Request
from recagent.agent.schema import Learned, LearnedItem, RankedList
from recagent.data.catalog import Catalog

VERSION = 2
MEMORY_TURNS = 3  # the recent exchanges the model sees
SEED_WEIGHTS: dict[str, float] = {
    "like_this": 1.0,
    "loved": 1.0,
    "liked": 1.0,
    "seen": 0.5,
    "suggested": 0.5,
    "not_seen": 0.5,
}
"""How much a mentioned item says about what to recommend next (recall seeds from these)."""


class ConversationDelta(BaseModel):
    """What one message, or one whole turn, adds to a conversation."""

    model_config = ConfigDict(extra="forbid")

    feelings: list[tuple[str, Feeling]] = Field(default_factory=list)
    pending: list[str] | None = Field(None, description="The suggestions now awaiting a reply.")
    liked_genres: list[str] = Field(default_factory=list)
    disliked_genres: list[str] = Field(default_factory=list)
    request: Request | None = None
    answer: RankedList | None = None
    messages: list[ChatMessage] = Field(default_factory=list)

    def then(self, other: ConversationDelta) -> ConversationDelta:
        """This delta followed by `other`."""
        return ConversationDelta(
            feelings=[*self.feelings, *other.feelings],
            pending=other.pending if other.pending is not None else self.pending,
            liked_genres=[*self.liked_genres, *other.liked_genres],
            disliked_genres=[*self.disliked_genres, *other.disliked_genres],
            request=other.request or self.request,
            answer=other.answer or self.answer,
            messages=[*self.messages, *other.messages],
        )


class Conversation(BaseModel):
    """Everything a conversation needs to continue (also what the server stores)."""

    model_config = ConfigDict(extra="forbid")

    version: int = VERSION
    dataset: str
    user_id: str | None = None
    feelings: dict[str, Feeling] = Field(
        default_factory=dict, description="item_id -> latest feeling, least recent first."
    )
    pending: list[str] = Field(
        default_factory=list, description="The other side's latest suggestions, unanswered."
    )
    liked_genres: dict[str, int] = Field(default_factory=dict)
    disliked_genres: dict[str, int] = Field(default_factory=dict)
    last_request: Request | None = None
    last_answer: RankedList | None = None
    shown: list[str] = Field(default_factory=list, description="Every item shown so far.")
    messages: list[ChatMessage] = Field(default_factory=list)

    # ---- reading it ---------------------------------------------------------------------

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

    def last_answer_ids(self) -> list[str]:
        """The items of the last answer, in its order ("the third one" is its third)."""
        return [it.item_id for it in self.last_answer.items] if self.last_answer else []

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

    # ---- what a message adds --------------------------------------------------------------

    def hear(self, request: Request) -> ConversationDelta:
        """What the person's message teaches: how they feel about what they named (places
        in the last answer refer to the last answer), the reply to pending suggestions, the
        genres they asked for or against."""
        feelings: list[tuple[str, Feeling]] = []
        answered = False
        last = self.last_answer_ids()
        for m in request.mentions:
            if m.rank is not None:
                feelings += [(i, m.feeling) for i in _by_rank(m.rank, last)]
            elif m.item_id:
                answered |= m.item_id in self.pending
                feelings.append((m.item_id, m.feeling))
        if self.pending and not answered:
            feeling = reply_feeling(request.text)
            if feeling is not None:
                feelings += [(i, feeling) for i in self.pending]
        c = request.constraints
        return ConversationDelta(
            feelings=feelings,
            pending=[],
            liked_genres=[*c.genres_all, *c.genres_any],
            disliked_genres=list(c.genres_none),
        )

    def suggested(self, item_ids: list[str]) -> ConversationDelta:
        """The other side of a dialogue suggested these (an earlier message of it)."""
        fresh = [(i, "suggested") for i in item_ids if i not in self.feelings]
        return ConversationDelta(feelings=fresh, pending=list(item_ids))  # type: ignore[arg-type]

    # ---- applying it ------------------------------------------------------------------------

    def apply(self, delta: ConversationDelta) -> Conversation:
        """A new conversation with `delta` applied (this one is unchanged)."""
        feelings = dict(self.feelings)
        for item_id, feeling in delta.feelings:
            if feeling == "suggested" and item_id in feelings:
                continue  # a suggestion never overrides what the person said
            feelings.pop(item_id, None)  # a fresh statement moves it to the end (recency)
            feelings[item_id] = feeling
        liked = Counter(self.liked_genres)
        liked.update(delta.liked_genres)
        disliked = Counter(self.disliked_genres)
        disliked.update(delta.disliked_genres)
        shown = list(self.shown)
        if delta.answer is not None:
            shown += [i.item_id for i in delta.answer.items if i.item_id not in shown]
        return self.model_copy(
            update={
                "feelings": feelings,
                "pending": self.pending if delta.pending is None else list(delta.pending),
                "liked_genres": dict(liked),
                "disliked_genres": dict(disliked),
                "last_request": delta.request or self.last_request,
                "last_answer": delta.answer or self.last_answer,
                "shown": shown,
                "messages": [*self.messages, *delta.messages][-2 * MEMORY_TURNS :],
            }
        )


def _by_rank(rank: int, last: list[str]) -> list[str]:
    """Items of the last answer a rank refers to: 1-based, -1 the last one, 0 all of them."""
    if rank == 0:
        return list(last)
    if rank == -1:
        return last[-1:]
    return [last[rank - 1]] if 1 <= rank <= len(last) else []


__all__ = ["MEMORY_TURNS", "SEED_WEIGHTS", "Conversation", "ConversationDelta"]
