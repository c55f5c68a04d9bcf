"""The LLM's reading of a message: one typed tool call (`read_request`) that returns what the
person wants *and* the model's plan (`recagent.agent.plan`), validated field by field before
it becomes the turn's `Request`.

Nothing the model writes throws its whole reading away. A field that does not validate is
dropped alone; a genre the catalog lacks becomes search words ("dark sci-fi" -> Sci-Fi and
"dark"); a year past the catalog is clamped; reversed years are swapped; titles are resolved
by typo-tolerant lookup (one the catalog lacks is dropped and said). What the person did not
say is dropped and said: genres the conversation does not name, a count the message does not
name, rewatches it does not ask for, a taste in words the person never wrote (a small model
copying an example). What the message plainly says and the model lost is restored from the
rules' reading (a genre named outright, a count, the titles asked about). Every repair is
counted.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recagent.agent.request import MAX_K, MIN_K, Intent, Mention, Request
from recagent.agent.vocabulary import (
    EARLIEST_YEAR,
    KIND_CUES,
    STOPWORDS,
    decades,
    joins_with_or,
    says_number,
)
from recagent.data.constraints import Constraints
from recagent.data.dataset import Dataset

READ_TOOL = "read_request"
TITLE_SCORE = 85.0
_WORD = re.compile(r"[a-z0-9]+")
_REWATCH = re.compile(r"\b(?:again|re-?watch\w*|seen|watched|already|rewatchable)\b")
PlanTool = Literal[
    "search_items",
    "similar_items",
    "score_candidates",
    "suggest_titles",
    "lookup_items",
    "filter_items",
    "summarize_profile",
]


class MovieFeeling(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str
    feeling: Literal["loved", "liked", "seen", "disliked", "not_seen", "like_this"] = Field(
        description="like_this: they want things like it; not_seen: no opinion yet."
    )


class ModelStep(BaseModel):
    """One tool call of the model's plan."""

    model_config = ConfigDict(extra="forbid")

    tool: PlanTool
    query: str = Field("", description="search_items: words to search for.")
    titles: list[str] = Field(default_factory=list, description="similar_items: titles.")
    model: str = Field("", description="score_candidates: a model, or empty.")


class Reading(BaseModel):
    """Record what the person wants, from their own words only (leave out what they did not
    say), what kind of answer they ask for, titles you would recommend from what you know,
    and the tool calls that find the answer."""

    model_config = ConfigDict(extra="forbid")

    kind: Intent = Field(
        "recommend",
        description="rank: order titles they list; judge: is one title right for them; "
        "profile: their taste; why_not: why a title was left out; else recommend.",
    )
    wanted_genres: list[str] = Field(default_factory=list)
    any_genre: bool = Field(False, description="true: any of wanted_genres will do.")
    unwanted_genres: list[str] = Field(default_factory=list)
    year_from: int | None = None
    year_to: int | None = None
    movies: list[MovieFeeling] = Field(
        default_factory=list, description="Every title they named, and how they feel."
    )
    asked_about: list[str] = Field(
        default_factory=list, description="rank, judge, why_not: the titles asked about."
    )
    taste: str = Field("", description="Mood or theme in their words, not genres or titles.")
    count: int | None = Field(None, description="How many they ask for.")
    include_seen: bool = Field(False, description="true only if they accept rewatches.")
    titles: list[str] = Field(
        default_factory=list, description="Titles with year you would recommend."
    )
    plan: list[ModelStep] = Field(default_factory=list, description="Tool calls, in order.")


def _content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


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


def parse_reading(raw: dict[str, Any], repairs: Counter[str]) -> Reading | str:
    """The model's arguments as a `Reading`, dropping each field that does not validate
    (counted as `invalid_field`); a string when they are not an object at all."""
    if not isinstance(raw, dict):
        return "the reading is not an object"
    data = {k: v for k, v in raw.items() if k in Reading.model_fields}
    repairs["unknown_field"] += len(raw) - len(data)
    for _ in range(len(data) + 1):
        try:
            return Reading.model_validate(data)
        except ValidationError as exc:
            bad = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
            if not bad & set(data):
                return str(exc.errors()[0]["msg"])
            for key in bad & set(data):
                if key == "plan" and isinstance(data[key], list):
                    data[key] = _valid_steps(data[key], repairs)
                    continue
                data.pop(key)
                repairs["invalid_field"] += 1
    return "the reading could not be repaired"


def _valid_steps(steps: list[Any], repairs: Counter[str]) -> list[dict[str, Any]]:
    """The plan's steps that validate; the others are dropped and counted."""
    out = []
    for step in steps:
        try:
            out.append(ModelStep.model_validate(step).model_dump())
        except ValidationError:
            repairs["invalid_step"] += 1
    return out


def _genres(
    words: list[str], dataset: Dataset, said: set[str], notices: list[str]
) -> tuple[list[str], list[str]]:
    """Catalog genres for the model's genre words (those the conversation names), and the
    words that are no genre ("dark sci-fi" -> Sci-Fi, and "dark" left over)."""
    genres = dataset.genres
    found_all: list[str] = []
    leftover: list[str] = []
    for word in words:
        found = genres.expand(word)
        if not found:
            parts = re.findall(r"[\w'-]+", word)
            found = [g for part in parts for g in genres.expand(part)]
            leftover += [p for p in parts if not genres.expand(p) and p.lower() not in STOPWORDS]
        unsaid = [g for g in found if g not in said]
        if unsaid:
            notices.append(f"dropped the genre {word!r}: the person did not name it")
        found_all += [g for g in found if g in said and g not in found_all]
    return found_all, leftover


def to_request(
    raw: dict[str, Any],
    dataset: Dataset,
    conversation: str,
    message: str,
    rules: Request,
    repairs: Counter[str],
) -> Request | str:
    """The model's reading as a `Request`, each field repaired or dropped on its own and
    what it lost restored from the rules' reading `rules`; a string when the arguments are
    not a reading at all. Every repair is counted in `repairs`."""
    reading = parse_reading(raw, repairs)
    if isinstance(reading, str):
        return reading
    notices: list[str] = []
    said = dataset.genres.mentions(conversation)  # genres named in the conversation
    written = set(_WORD.findall(conversation.lower()))
    wanted, extra = _genres(reading.wanted_genres, dataset, said, notices)
    unwanted, _ = _genres(reading.unwanted_genres, dataset, said, notices)
    for word in extra:  # a genre the catalog lacks: its words search, if the person wrote them
        if _written(word.lower(), written):
            repairs["genre_to_taste"] += 1
            notices.append(f"read {word!r} as search words, not a genre")
        else:
            repairs["unknown_genre"] += 1
            notices.append(f"dropped the genre {word!r}: the catalog has no such genre")
    extra = [w for w in extra if _written(w.lower(), written)]
    c_rules = rules.constraints
    for genre in [*c_rules.genres_all, *c_rules.genres_any]:  # named plainly, lost by the model
        if genre not in wanted and genre not in unwanted:
            wanted.append(genre)
            repairs["genre_restored"] += 1
            notices.append(f"kept the genre {genre}: the message names it")
    for genre in c_rules.genres_none:
        if genre not in unwanted and genre not in wanted:
            unwanted.append(genre)
            repairs["genre_restored"] += 1
            notices.append(f"kept out the genre {genre}: the message rules it out")
    year_from, year_to = _years(reading, dataset, repairs, notices)
    year_from, year_to = _within_decade(year_from, year_to, message, notices)
    mentions = []
    for movie in reading.movies:
        item_id = _lookup(dataset, movie.title)
        if item_id is None:
            notices.append(f"no title like {movie.title!r} in the catalog")
            continue
        label = dataset.catalog[item_id].label
        mentions.append(Mention(title=label, item_id=item_id, feeling=movie.feeling))
    taste = " ".join([*reading.taste.split(), *extra])
    content = _content_words(reading.taste)
    if content and 2 * sum(_written(w, written) for w in content) < len(content):
        notices.append(f"dropped the taste {reading.taste!r}: not the person's words")
        taste = " ".join(extra)
    count = reading.count
    if count is not None and not says_number(message, count):
        notices.append(f"dropped the count {count}: the message does not ask for it")
        count = None
    if count is None and rules.k is not None:
        count = rules.k
        repairs["count_restored"] += 1
    if count is not None:
        count = min(MAX_K, max(MIN_K, count))
    intent, targets = _intent(reading, dataset, rules, repairs)
    if targets:  # titles asked about are no statement of taste unless the message says one
        felt = {m.item_id for m in rules.mentions if m.item_id}
        kept = [m for m in mentions if m.item_id not in targets or m.item_id in felt]
        repairs["feeling_dropped"] += len(mentions) - len(kept)
        mentions = kept
    include_seen = reading.include_seen and bool(_REWATCH.search(message.lower()))
    any_genre = reading.any_genre and (len(wanted) >= 3 or joins_with_or(message))
    if reading.any_genre and not any_genre and len(wanted) > 1:
        notices.append(f"read {' and '.join(wanted)} as wanted together (no 'or' was said)")
    constraints = Constraints(
        genres_all=[] if any_genre else wanted,
        genres_any=wanted if any_genre else [],
        genres_none=unwanted,
        year_min=year_from,
        year_max=year_to,
    )
    return Request(
        text=message,
        intent=intent,
        targets=targets,
        k=count,
        query=taste if intent == "recommend" else "",
        constraints=constraints,
        mentions=mentions,
        include_seen=include_seen,
        combine=rules.combine,
        reader="llm",
        notices=notices,
    )


def _lookup(dataset: Dataset, title: str) -> str | None:
    hits = dataset.titles.search(title, limit=1, min_score=TITLE_SCORE)
    return hits[0].item_id if hits else None


def _named_in(title: str, written: list[str]) -> bool:
    """The message writes (most of) the title: a title asked about is one the person wrote."""
    words = [w for w in _WORD.findall(title.lower()) if w not in STOPWORDS]
    return bool(words) and 2 * sum(w in written for w in words) >= len(words)


def _years(
    reading: Reading, dataset: Dataset, repairs: Counter[str], notices: list[str]
) -> tuple[int | None, int | None]:
    """The model's years, clamped to the catalog's and in order."""
    latest = max((it.year for it in dataset.catalog if it.year), default=2100)
    out: list[int | None] = []
    for year in (reading.year_from, reading.year_to):
        if year is not None and not EARLIEST_YEAR <= year <= latest:
            clamped = min(latest, max(EARLIEST_YEAR, year))
            notices.append(f"read the year {year} as {clamped}, the catalog's limit")
            repairs["year_clamped"] += 1
            year = clamped
        out.append(year)
    year_from, year_to = out
    if year_from is not None and year_to is not None and year_from > year_to:
        year_from, year_to = year_to, year_from
        repairs["years_swapped"] += 1
    return year_from, year_to


def _intent(
    reading: Reading, dataset: Dataset, rules: Request, repairs: Counter[str]
) -> tuple[Intent, list[str]]:
    """The kind of answer and the titles asked about. A kind the rules read from plain words
    ("rank these: ...") stands. Otherwise the model's kind stands only where the message
    bears it out: a question about the person's taste is one the rules read too (a small
    model calls "I like horror, any ideas?" a profile question); a ranking, a verdict or a
    "why not" needs the titles it is about written in the message and its own words there
    (`KIND_CUES`). Anything else is a plain recommendation; each override is counted."""
    if rules.intent != "recommend":
        if reading.kind != rules.intent:
            repairs["intent_restored"] += 1
        return rules.intent, list(rules.targets)
    if reading.kind == "recommend":
        return "recommend", []
    written = _WORD.findall(rules.text.lower())
    targets = [
        i
        for i in (_lookup(dataset, t) for t in reading.asked_about)
        if i is not None and _named_in(dataset.catalog[i].title, written)
    ]
    targets = list(dict.fromkeys(targets))
    cue = KIND_CUES.get(reading.kind)
    enough = 2 if reading.kind == "rank" else 1
    if cue is None or len(targets) < enough or not re.search(cue, rules.text.lower()):
        repairs["intent_overridden"] += 1
        return "recommend", []
    return reading.kind, targets


__all__ = ["READ_TOOL", "ModelStep", "MovieFeeling", "PlanTool", "Reading", "to_request"]
