"""What a message asks for, as one typed value: the reading that the rest of a turn acts on.

Two readers fill it: the rules (`recagent.agent.rules`, offline and the fallback) and, in
LLM mode, the model through one typed tool call (`recagent.agent.reading`). Whichever wins,
the guard enforces its constraints, and every movie the person mentions carries how they
feel about it, which the session's memory turns into history and exclusions.
"""

from __future__ import annotations

import statistics
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from recagent.data.constraints import Constraints

MIN_K, MAX_K, DEFAULT_K = 1, 50, 10

Feeling = Literal["loved", "liked", "seen", "like_this", "disliked", "not_seen", "suggested"]
"""How a person feels about an item they mention: loved / liked / seen (history), like_this
("something like X": a reference, and history), disliked (never recommend, push away),
not_seen (no opinion yet), suggested (the other side of a dialogue named it)."""

Intent = Literal["recommend", "rank", "judge", "profile", "why_not"]
"""What kind of answer a message asks for: items to try (recommend), an order of the titles
the person gives (rank), a verdict on one title for this person (judge), what is known of
their taste (profile), or why a title was not recommended (why_not)."""

POSITIVE: frozenset[str] = frozenset({"loved", "liked", "seen", "like_this"})
NEGATIVE: frozenset[str] = frozenset({"disliked"})


class ChatMessage(BaseModel):
    """One message of a conversation: by the person (`user`) or the other side."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    text: str


class Mention(BaseModel):
    """An item the message refers to, by title or by its place in the last answer."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(description="As written (or the catalog title).")
    item_id: str | None = Field(None, description="The catalog item, once resolved.")
    feeling: Feeling
    rank: int | None = Field(
        None, description="Refers to this place in the last answer (-1: the last one)."
    )


class Request(BaseModel):
    """What a message asks for. Constraint genres are catalog genres; years are inclusive."""

    model_config = ConfigDict(extra="forbid")

    text: str
    intent: Intent = "recommend"
    targets: list[str] = Field(
        default_factory=list,
        description="Item ids the person asks about (rank, judge, why_not), in their order.",
    )
    k: int | None = None
    query: str = Field("", description="Free-text taste: what to search item text for.")
    constraints: Constraints = Field(default_factory=Constraints)
    mentions: list[Mention] = Field(default_factory=list)
    include_seen: bool = False
    combine: Literal["any", "all"] = Field(
        "any", description="all: items close to every reference ('between Alien and Heat')."
    )
    more_like_rank: int | None = None
    older: bool = False
    newer: bool = False
    more: bool = False
    reader: Literal["rules", "llm"] = "rules"
    notices: list[str] = Field(default_factory=list)

    @property
    def reference_titles(self) -> list[str]:
        return [m.title for m in self.mentions if m.feeling == "like_this" and m.rank is None]

    def asks_something(self) -> bool:
        """Names a taste, genres or items to go on (not only a refinement of the last answer)."""
        c = self.constraints
        return bool(
            self.intent != "recommend"
            or self.query
            or c.genres_all
            or c.genres_any
            or any(m.rank is None for m in self.mentions)
        )

    @property
    def is_refinement(self) -> bool:
        """Adjusts the previous answer rather than asking something new."""
        c = self.constraints
        adjusts = (
            self.more_like_rank
            or self.older
            or self.newer
            or self.more
            or c.genres_none
            or c.year_min
            or c.year_max
            or self.k
            or any(m.rank is not None for m in self.mentions)
        )
        return bool(adjusts) and not self.asks_something()

    def same_reading(self, other: Request) -> bool:
        """Whether two readings ask for the same thing (the run log keeps both if not)."""

        def key(r: Request) -> tuple[object, ...]:
            c = r.constraints
            return (
                r.intent,
                r.targets,
                r.k,
                r.query.lower(),
                sorted(c.genres_all),
                sorted(c.genres_any),
                sorted(c.genres_none),
                c.year_min,
                c.year_max,
                sorted((m.item_id or m.title.lower(), m.feeling) for m in r.mentions),
                r.include_seen,
            )

        return key(self) == key(other)


def refine(new: Request, last: Request, last_years: list[int]) -> Request:
    """The previous request adjusted by a refinement ("no horror", "older ones", "more like
    the second one", "not the third one"); `last_years`: the years of the last answer."""
    merged = last.model_copy(deep=True)
    merged.text, merged.notices, merged.reader = new.text, list(new.notices), new.reader
    merged.intent, merged.targets = "recommend", []  # a refinement adjusts a list
    merged.more_like_rank, merged.older, merged.newer, merged.more = None, False, False, False
    c, n = merged.constraints, new.constraints
    if n.genres_none:
        c.genres_none = sorted(set(c.genres_none) | set(n.genres_none))
        c.genres_all = [g for g in c.genres_all if g not in n.genres_none]
        c.genres_any = [g for g in c.genres_any if g not in n.genres_none]
    if n.year_min is not None or n.year_max is not None:
        c.year_min, c.year_max = n.year_min, n.year_max
    merged.k = new.k or merged.k
    merged.include_seen = merged.include_seen or new.include_seen
    if last_years and (new.older or new.newer):
        middle = int(statistics.median(last_years))
        if new.older:
            c.year_min, c.year_max = None, middle - 1
        else:
            c.year_min, c.year_max = middle + 1, None
    merged.more = new.more
    merged.mentions = [m for m in merged.mentions if m.rank is None] + [
        m for m in new.mentions if m.rank is not None
    ]
    if new.more_like_rank is not None:
        merged.more_like_rank = new.more_like_rank
        merged.query = ""
        merged.mentions = [m for m in merged.mentions if m.feeling != "like_this"]
    return merged


def clamp_k(k: int | None, notices: list[str], default: int = DEFAULT_K) -> int:
    if k is None:
        return default
    if k < MIN_K or k > MAX_K:
        clamped = min(MAX_K, max(MIN_K, k))
        notices.append(f"asked for {k} items; showing {clamped} (allowed: {MIN_K}-{MAX_K})")
        return clamped
    return k


__all__ = [
    "DEFAULT_K",
    "MAX_K",
    "NEGATIVE",
    "POSITIVE",
    "ChatMessage",
    "Feeling",
    "Intent",
    "Mention",
    "Request",
    "clamp_k",
    "refine",
]
