"""A user's taste computed from their history: genres, decades, ratings, recent items."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recagent.data.catalog import Catalog

TOP_GENRES = 5
MIN_GENRE_COUNT = 3
LIKE_MARGIN = 0.3  # mean rating of a genre this far above the user's mean = liked
DISLIKE_MARGIN = 0.4


class GenreShare(BaseModel):
    genre: str
    share: float = Field(description="Share of the history with this genre.")
    count: int
    mean_rating: float | None = None


class DecadeShare(BaseModel):
    decade: str
    share: float


class ProfileItem(BaseModel):
    item_id: str
    title: str
    year: int | None = None
    rating: float | None = None


class RatingStyle(BaseModel):
    mean: float | None = None
    std: float | None = None
    label: str = Field(description="generous, harsh, balanced, or 'no ratings'")


class UserProfile(BaseModel):
    """What the history says about a user; `text` is a short offline summary."""

    model_config = ConfigDict(extra="forbid")

    user_id: str | None = None
    n_items: int
    top_genres: list[GenreShare] = Field(default_factory=list)
    liked_genres: list[str] = Field(default_factory=list)
    disliked_genres: list[str] = Field(default_factory=list)
    favourite_decades: list[DecadeShare] = Field(default_factory=list)
    recent_items: list[ProfileItem] = Field(default_factory=list)
    top_rated: list[ProfileItem] = Field(default_factory=list)
    rating_style: RatingStyle
    text: str = ""


def _style(ratings: np.ndarray) -> RatingStyle:
    if not len(ratings):
        return RatingStyle(label="no ratings")
    mean, std = float(ratings.mean()), float(ratings.std())
    label = "generous" if mean >= 4.0 else "harsh" if mean <= 3.0 else "balanced"
    return RatingStyle(mean=round(mean, 2), std=round(std, 2), label=label)


def compute_profile(
    catalog: Catalog,
    history: Sequence[str],
    ratings: Sequence[float | None] | None = None,
    user_id: str | None = None,
) -> UserProfile:
    """Profile of a history (item ids, time order); `ratings` align with it when known."""
    if ratings is not None and len(ratings) != len(history):
        raise ValueError("ratings must align with history")
    scores = list(ratings) if ratings is not None else [np.nan] * len(history)
    pairs = [(catalog[i], r) for i, r in zip(history, scores, strict=True) if i in catalog]
    items = [item for item, _ in pairs]
    rated = np.array([np.nan if r is None else r for _, r in pairs], dtype=float)
    known = rated[~np.isnan(rated)]
    style = _style(known)
    n = len(items)

    counts: Counter[str] = Counter()
    sums: dict[str, list[float]] = {}
    for item, r in zip(items, rated, strict=False):
        for g in item.genres:
            counts[g] += 1
            if not np.isnan(r):
                sums.setdefault(g, []).append(float(r))
    top = [
        GenreShare(
            genre=g,
            share=round(c / n, 3),
            count=c,
            mean_rating=round(float(np.mean(sums[g])), 2) if g in sums else None,
        )
        for g, c in counts.most_common(TOP_GENRES)
    ]
    liked, disliked = [], []
    if style.mean is not None:
        for g, c in counts.most_common():
            if c < MIN_GENRE_COUNT or g not in sums:
                continue
            m = float(np.mean(sums[g]))
            if m >= style.mean + LIKE_MARGIN:
                liked.append(g)
            elif m <= style.mean - DISLIKE_MARGIN:
                disliked.append(g)
    else:
        liked = [g.genre for g in top[:3]]

    decades = Counter(f"{item.year // 10 * 10}s" for item in items if item.year)
    n_dated = sum(decades.values()) or 1
    fav_decades = [
        DecadeShare(decade=d, share=round(c / n_dated, 3)) for d, c in decades.most_common(3)
    ]

    def ref(idx: int) -> ProfileItem:
        item = items[idx]
        r = None if np.isnan(rated[idx]) else float(rated[idx])
        return ProfileItem(item_id=item.item_id, title=item.title, year=item.year, rating=r)

    recent = [ref(i) for i in range(n - 1, max(-1, n - 6), -1)]
    top_rated: list[ProfileItem] = []
    if len(known):
        order = sorted(range(n), key=lambda i: (-np.nan_to_num(rated[i], nan=-1), -i))
        top_rated = [ref(i) for i in order[:5]]

    profile = UserProfile(
        user_id=user_id,
        n_items=n,
        top_genres=top,
        liked_genres=liked[:5],
        disliked_genres=disliked[:5],
        favourite_decades=fav_decades,
        recent_items=recent,
        top_rated=top_rated,
        rating_style=style,
    )
    profile.text = profile_text(profile)
    return profile


def profile_text(p: UserProfile) -> str:
    """A short factual summary, written without an LLM."""
    if p.n_items == 0:
        return "A new user with no history yet."
    parts = [f"{p.n_items} items in the history"]
    if p.top_genres:
        parts.append("mostly " + ", ".join(f"{g.genre} ({g.share:.0%})" for g in p.top_genres[:3]))
    if p.liked_genres and p.rating_style.mean is not None:
        parts.append("rates " + ", ".join(p.liked_genres[:3]) + " above their average")
    if p.disliked_genres:
        parts.append("rates " + ", ".join(p.disliked_genres[:3]) + " below their average")
    if p.favourite_decades:
        parts.append("favourite decade " + p.favourite_decades[0].decade)
    if p.rating_style.mean is not None:
        parts.append(f"{p.rating_style.label} rater (mean {p.rating_style.mean:.1f})")
    if p.recent_items:
        parts.append("recently: " + ", ".join(i.title for i in p.recent_items[:3]))
    return "; ".join(parts) + "."


__all__ = [
    "DecadeShare",
    "GenreShare",
    "ProfileItem",
    "RatingStyle",
    "UserProfile",
    "compute_profile",
    "profile_text",
]
