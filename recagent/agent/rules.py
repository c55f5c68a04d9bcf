"""The offline reader: a message -> a `Request`, by rule.

It composes small pure readers: the kind of answer asked for and the titles asked about
(`read_intent`), the titles mentioned with how the person feels about each and places in
the last answer (`read_titles`), the count, years and genres (`read_constraints`), whether
rewatches are fine, refinements of the previous answer ("more like the second one", "older
ones", "more") and the words left over as a free-text taste. It runs offline, it is the
planner's whole understanding, and in LLM mode it is the check on the model's reading.
"""

from __future__ import annotations

import re

from recagent.agent.read_constraints import ConstraintReader, taste
from recagent.agent.read_intent import read_intent
from recagent.agent.read_titles import TitleReader
from recagent.agent.request import Mention, Request
from recagent.agent.vocabulary import ORDINALS
from recagent.data.catalog import Catalog
from recagent.data.genres import GenreResolver
from recagent.data.titles import TitleIndex

MAX_MESSAGE_CHARS = 2000
_SEEN_OK = re.compile(
    r"\b(re-?watch|again|seen (?:it |them )?before|including (?:ones |those |what )?i(?:'ve| have) "
    r"(?:seen|watched)|even if i(?:'ve| have) (?:seen|watched)|already (?:seen|watched))\b"
)
_MORE_LIKE = re.compile(
    r"\bmore (?:like|similar to) (?:the |that |#|number )?(?P<n>\d+|"
    + "|".join(ORDINALS)
    + r")(?:\s*(?:one|item|movie|film|pick))?\b"
)
_OLDER = re.compile(r"\b(older|earlier|less recent)\b")
_NEWER = re.compile(r"\b(newer|more recent|later ones|fresher)\b")
_MORE = re.compile(r"\b(more|others|other ones|different ones|something else|next|another)\b")


class RuleReader:
    """Reads messages against one catalog: its genres, its titles, its most recent year."""

    def __init__(self, catalog: Catalog, titles: TitleIndex, genres: GenreResolver) -> None:
        self.catalog = catalog
        self.titles = TitleReader(catalog, titles, genres)
        latest = max((it.year for it in catalog if it.year), default=None)
        self.constraints = ConstraintReader(genres, latest)

    def read(self, message: str, role: str = "user") -> Request:
        """The request in `message`. `role` "assistant": a message of the other side of a
        dialogue, whose titles are suggestions and whose words ask for nothing."""
        notices: list[str] = []
        text = " ".join(message.split())
        if len(text) > MAX_MESSAGE_CHARS:
            notices.append(
                f"message trimmed from {len(text):,} to {MAX_MESSAGE_CHARS:,} characters"
            )
            text = text[:MAX_MESSAGE_CHARS]
        low = text.lower().replace("’", "'")
        spans: list[tuple[int, int]] = []
        req = Request(text=text, notices=notices)
        if role != "user":
            found = self.titles.find(text, low, spans, req.notices)
            req.mentions = [
                Mention(title=self.catalog[f.item_id].label, item_id=f.item_id, feeling="suggested")
                for f in found
                if f.item_id
            ]
            return req
        if m := _MORE_LIKE.search(low):
            n = m.group("n")
            req.more_like_rank = int(n) if n.isdigit() else ORDINALS[n]
            spans.append(m.span())
        intent = read_intent(text, low, self.titles)
        req.intent = intent.intent
        for f in intent.targets:
            if f.item_id is None:
                req.notices.append(f"no title like {f.written!r} in the catalog")
            elif f.item_id not in req.targets:
                req.targets.append(f.item_id)
            spans.append((f.start, f.end))
        if intent.intent in ("rank", "judge", "why_not") and not req.targets:
            req.intent = "recommend"  # no title of the catalog to answer about
        between = [
            Mention(title=self.catalog[f.item_id].label, item_id=f.item_id, feeling="like_this")
            for f in intent.between
            if f.item_id
        ]
        if between:
            req.combine = "all"
            spans += [(f.start, f.end) for f in intent.between]
        if intent.span:
            spans.append(intent.span)
        found = self.titles.find(text, low, spans, req.notices)
        self.constraints.count(low, req, spans)
        self.constraints.years(low, req, spans)
        if m := _SEEN_OK.search(low):
            req.include_seen = True
            spans.append(m.span())
        req.mentions = between + self.titles.feelings(text, found)
        req.mentions += self.titles.ordinals(text, low, spans)
        genre_spans: list[tuple[int, int]] = []
        self.constraints.genres_in(low, req, spans, genre_spans)
        if not req.asks_something() and req.more_like_rank is None:
            for flag, pattern in (("older", _OLDER), ("newer", _NEWER), ("more", _MORE)):
                if m := pattern.search(low):
                    setattr(req, flag, True)
                    spans.append(m.span())
        # the taste: what no rule read, without the genres (the constraints hold those, and a
        # genre word would match every item of the genre: "dark sci-fi" searches for "dark")
        req.query = taste(text, spans + genre_spans) if req.intent == "recommend" else ""
        return req


__all__ = ["MAX_MESSAGE_CHARS", "RuleReader"]
