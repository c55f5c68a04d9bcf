"""The LLM's reading of a message: one typed tool call (`read_request`), validated against the
catalog before it becomes the turn's `Request`.

Genres must map to the catalog's genres (else the reading is invalid and the rules read the
message instead, a counted repair); titles are resolved by typo-tolerant lookup (a title
the catalog does not have is dropped and said); years must be sane. What the person did not
say is dropped and said: genres the conversation does not name, a count the message does
not name, rewatches it does not ask for, a taste in words the person never wrote (a small
model copying an example). Two genres are "any of" only when the person says "or"; a range
cut short inside a decade the message names becomes that decade.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recagent.agent.request import MAX_K, MIN_K, Mention, Request
from recagent.agent.rules import decades, joins_with_or
from recagent.data.constraints import Constraints
from recagent.data.dataset import Dataset

READ_TOOL = "read_request"
TITLE_SCORE = 85.0
EARLIEST_YEAR = 1870
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "of",
        "in",
        "on",
        "to",
        "for",
        "with",
        "some",
        "something",
        "movie",
        "movies",
        "film",
        "films",
    ]
)


class MovieFeeling(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(description="The title as written in the conversation.")
    feeling: Literal["loved", "liked", "seen", "disliked", "not_seen", "like_this"] = Field(
        description="loved/liked/seen: the person watched it; disliked: never recommend it "
        "or things like it; not_seen: no opinion yet; like_this: they want things like it."
    )


class Reading(BaseModel):
    """Record what the person wants, from their own words only. Leave out what they did not
    say."""

    model_config = ConfigDict(extra="forbid")

    wanted_genres: list[str] = Field(default_factory=list, description="Genres they ask for.")
    any_genre: bool = Field(
        False, description="true: any of wanted_genres will do; false: all of them together."
    )
    unwanted_genres: list[str] = Field(default_factory=list, description="Genres to avoid.")
    year_from: int | None = Field(None, description="Earliest release year they accept.")
    year_to: int | None = Field(None, description="Latest release year they accept.")
    movies: list[MovieFeeling] = Field(
        default_factory=list, description="Every movie named in the conversation."
    )
    taste: str = Field(
        "", description="Mood, theme or setting in their words; no genres, years or titles."
    )
    count: int | None = Field(None, description="How many recommendations they ask for.")
    include_seen: bool = Field(False, description="true only if they accept rewatches.")


_REWATCH = re.compile(r"\b(?:again|re-?watch\w*|seen|watched|already|rewatchable)\b")
_NUMBER_WORDS = {
    1: "one",
    2: "two",
    3: "three",
    4: "four",
    5: "five",
    6: "six",
    7: "seven",
    8: "eight",
    9: "nine",
    10: "ten",
    12: "twelve",
    15: "fifteen",
    20: "twenty",
}


def _says_number(message: str, n: int) -> bool:
    """The message asks for `n` items in digits or words ("5", "five", "a couple")."""
    low = message.lower()
    if re.search(rf"\b{n}\b", low):
        return True
    word = _NUMBER_WORDS.get(n)
    return bool(word and re.search(rf"\b{word}\b", low)) or (n == 2 and "couple" in low)


def _content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


def _written(word: str, conversation: set[str]) -> bool:
    """`word` appears in the conversation (or shares its first five letters with a word that
    does: "scary" / "scare")."""
    return word in conversation or any(w[:5] == word[:5] for w in conversation if len(w) >= 5)


def _within_decade(
    year_from: int | None, year_to: int | None, message: str, notices: list[str]
) -> tuple[int | None, int | None]:
    """A range cut short inside a decade the message names ("the 90s" read as 1990-1990)
    becomes the decade, unless the message writes the narrower years itself."""
    written = {int(y) for y in re.findall(r"\b(\d{4})\b", message)}
    for start, end in decades(message):
        inside = [y for y in (year_from, year_to) if y is not None and start <= y <= end]
        if not inside or (year_from, year_to) == (start, end):
            continue
        new_from = start if year_from is None or year_from not in written else year_from
        new_to = end if year_to is None or year_to not in written else year_to
        if (new_from, new_to) != (year_from, year_to) and new_from <= new_to:
            notices.append(f"read the years as {new_from}-{new_to}, the decade the message names")
            return new_from, new_to
    return year_from, year_to


def to_request(
    raw: dict[str, object], dataset: Dataset, conversation: str, message: str
) -> Request | str:
    """The reading as a `Request`, or why it is invalid."""
    try:
        reading = Reading.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    genres = dataset.genres
    notices: list[str] = []
    said = genres.mentions(conversation)  # genres named in the conversation (or synonyms)
    resolved: dict[str, list[str]] = {"wanted": [], "unwanted": []}
    for key, words in (("wanted", reading.wanted_genres), ("unwanted", reading.unwanted_genres)):
        for word in words:
            found = genres.expand(word)
            if not found:
                return f"unknown genre {word!r} (genres: {', '.join(genres.genres)})"
            unsaid = [g for g in found if g not in said]
            if unsaid:
                notices.append(f"dropped the genre {word!r}: the person did not name it")
            resolved[key] += [g for g in found if g in said and g not in resolved[key]]
    latest = max((it.year for it in dataset.catalog if it.year), default=2100) + 1
    for year in (reading.year_from, reading.year_to):
        if year is not None and not EARLIEST_YEAR <= year <= latest:
            return f"year {year} is not a release year"
    if (
        reading.year_from is not None
        and reading.year_to is not None
        and reading.year_from > reading.year_to
    ):
        return f"year_from {reading.year_from} is after year_to {reading.year_to}"
    year_from, year_to = _within_decade(reading.year_from, reading.year_to, message, notices)
    written = set(_WORD.findall(conversation.lower()))
    mentions = []
    for movie in reading.movies:
        hits = dataset.titles.search(movie.title, limit=1, min_score=TITLE_SCORE)
        if not hits:
            notices.append(f"no title like {movie.title!r} in the catalog")
            continue
        item = dataset.catalog[hits[0].item_id]
        mentions.append(Mention(title=item.label, item_id=item.item_id, feeling=movie.feeling))
    taste = " ".join(reading.taste.split())
    content = _content_words(taste)
    if content and 2 * sum(_written(w, written) for w in content) < len(content):
        notices.append(f"dropped the taste {taste!r}: not the person's words")
        taste = ""
    count = reading.count
    if count is not None and not _says_number(message, count):
        notices.append(f"dropped the count {count}: the message does not ask for it")
        count = None
    if count is not None:
        count = min(MAX_K, max(MIN_K, count))
    include_seen = reading.include_seen and bool(_REWATCH.search(message.lower()))
    wanted = [g for g in resolved["wanted"] if g not in resolved["unwanted"]]
    any_genre = reading.any_genre and (len(wanted) >= 3 or joins_with_or(message))
    if reading.any_genre and not any_genre and len(wanted) > 1:
        notices.append(f"read {' and '.join(wanted)} as wanted together (no 'or' was said)")
    constraints = Constraints(
        genres_all=[] if any_genre else wanted,
        genres_any=wanted if any_genre else [],
        genres_none=resolved["unwanted"],
        year_min=year_from,
        year_max=year_to,
    )
    return Request(
        text=message,
        k=count,
        query=taste,
        constraints=constraints,
        mentions=mentions,
        include_seen=include_seen,
        reader="llm",
        notices=notices,
    )


__all__ = ["READ_TOOL", "MovieFeeling", "Reading", "to_request"]
