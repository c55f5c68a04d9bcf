"""A message's count, years, genres in and out, and the words left over as a free-text
taste, by rule. Each reader is a pure function of the lower-cased message and the spans that
earlier readers took (a title's words are not a genre, a year inside a title is no filter)."""

from __future__ import annotations

import itertools
import re

from recagent.agent.read_titles import overlaps
from recagent.agent.request import Request
from recagent.agent.vocabulary import (
    DECADE,
    FILLER,
    INTENSIFIERS,
    NEGATION,
    NUMBER,
    decade_range,
    joins_with_or,
    number_value,
)
from recagent.data.genres import GenreResolver

Spans = list[tuple[int, int]]
NOUN = r"(?:movies?|films?|recommendations?|picks?|items?|titles?|suggestions?|options?|shows?)"
_COUNT_LEAD = re.compile(
    rf"\b(?:top|best|give me|show me|recommend|suggest|list|need|want)\s+{NUMBER}\b(?!\s*'?s\b)"
)
_RANGE = re.compile(
    r"\b(?:between|from)\s+(\d{4})\s+(?:and|to|-)\s+(\d{4})\b|\b(\d{4})\s*(?:-|–|to)\s*(\d{4})\b"
)
_BEFORE = re.compile(r"\b(?:before|pre|earlier than|older than|prior to|until|up to)\s+(\d{4})\b")
_AFTER = re.compile(r"\b(after|since|post|newer than|later than|from)\s+(\d{4})\b")
_IN_YEAR = re.compile(r"\b(?:in|of|from)\s+(\d{4})\b")
_OLD = re.compile(r"\b(classic|classics|old|oldies|old-school|golden age)\b")
_RECENT = re.compile(r"\b(recent|new|newest|latest|modern)\b(?!\s+to\b)")
_CLAUSE_END = re.compile(r"[.!?;]|\bbut\b")


class ConstraintReader:
    """Reads counts, years and genres against one catalog's genres and latest year."""

    def __init__(self, genres: GenreResolver, latest_year: int | None) -> None:
        self.genres = genres
        self.latest_year = latest_year
        # "3 romantic comedies", "five more films": a number, up to two words, then a noun
        self._count_re = re.compile(
            rf"\b{NUMBER}\s+(?:(?!(?:but|not|no|without)\b)[a-z'-]+\s+){{0,2}}?"
            rf"(?:{NOUN}|{genres.alternatives})\b"
        )
        # "1995 films", "1980 comedies": a year written bare before what it qualifies
        self._year_noun = re.compile(rf"\b(1[89]\d\d|20\d\d)\s+(?:{NOUN}|{genres.alternatives})\b")

    def count(self, low: str, req: Request, spans: Spans) -> None:
        m = _COUNT_LEAD.search(low)
        if m and not overlaps(m.start(1), m.end(1), spans):
            req.k = number_value(m.group(1))
            spans.append(m.span())
        elif (
            (m := self._count_re.search(low))
            and not DECADE.match(low, m.start())
            and not overlaps(m.start(1), m.end(1), spans)
        ):
            req.k = number_value(m.group(1))
            spans.append(m.span(1))

    def years(self, low: str, req: Request, spans: Spans) -> None:
        c = req.constraints

        def free(m: re.Match[str]) -> bool:
            return not overlaps(m.start(), m.end(), spans)

        if (m := _RANGE.search(low)) and free(m):
            a, b = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
            c.year_min, c.year_max = sorted((int(a), int(b)))
            spans.append(m.span())
        elif (m := DECADE.search(low)) and free(m):
            c.year_min, c.year_max = decade_range(m)
            spans.append(m.span())
        else:
            if (m := _BEFORE.search(low)) and free(m):
                c.year_max = int(m.group(1)) - 1
                spans.append(m.span())
            if (m := _AFTER.search(low)) and free(m) and m.group(1) != "from":
                c.year_min = int(m.group(2)) + (1 if m.group(1) in ("after", "post") else 0)
                spans.append(m.span())
            elif (m := _IN_YEAR.search(low)) and free(m) and c.year_max is None:
                c.year_min = c.year_max = int(m.group(1))
                spans.append(m.span())
            elif (m := self._year_noun.search(low)) and free(m) and c.year_max is None:
                c.year_min = c.year_max = int(m.group(1))
                spans.append(m.span(1))
        if c.year_min is None and c.year_max is None:
            if (m := _OLD.search(low)) and free(m):
                c.year_max = 1979
                spans.append(m.span())
            elif (m := _RECENT.search(low)) and free(m) and self.latest_year:
                c.year_min = self.latest_year - 4
                spans.append(m.span())

    def genres_in(self, low: str, req: Request, spans: Spans, genre_spans: Spans) -> None:
        """Genres wanted (their spans go to `genre_spans`) and not wanted (to `spans`)."""
        c = req.constraints
        positive: list[tuple[int, list[str]]] = []
        tokens = [(m.start(), m.group()) for m in re.finditer(r"[a-z0-9'-]+", low)]
        for m in self.genres.pattern.finditer(low):
            if overlaps(m.start(), m.end(), spans):
                continue  # inside a title ("Star Wars") or a phrase already read
            found = self.genres.expand(m.group(1))
            if not found:
                continue
            clause = max((b.end() for b in _CLAUSE_END.finditer(low, 0, m.start())), default=0)
            before = [t for pos, t in tokens if clause <= pos < m.start()][-4:]
            non = low[max(0, m.start() - 4) : m.start()] == "non-"
            if non or NEGATION & set(before):
                c.genres_none.extend(g for g in found if g not in c.genres_none)
                cues = [pos for pos, t in tokens if clause <= pos < m.start() and t in NEGATION]
                cue = m.start() - 4 if non else max(cues, default=m.start())
                spans.append((cue, m.end()))
            else:
                positive.append((m.start(), found))
                genre_spans.append(m.span())
        wanted = [g for _, found in positive for g in found]
        wanted = [g for i, g in enumerate(wanted) if g not in wanted[:i] and g not in c.genres_none]
        pairs = itertools.pairwise(positive)
        joined_by_or = any(joins_with_or(low[a:b]) for (a, _), (b, _) in pairs)
        if joined_by_or or len(positive) >= 3:
            c.genres_any = wanted
        else:
            c.genres_all = wanted


def taste(text: str, spans: Spans) -> str:
    """The words no rule read: the free-text taste ("dark", "feel-good", "heist"); words
    after a negation ("no gore", "nothing too violent") are not wanted."""
    keep = list(text)
    for a, b in spans:
        for i in range(a, min(b, len(keep))):
            keep[i] = " "
    words = re.findall(r"[A-Za-z0-9][A-Za-z0-9'-]*", "".join(keep))
    content = []
    negated = False
    for word in words:
        w = word.lower()
        if w in NEGATION:
            negated = True
            continue
        if negated and w in INTENSIFIERS:
            continue
        if not negated and w not in FILLER:
            content.append(word)
        negated = False
    return " ".join(content)


__all__ = ["NOUN", "ConstraintReader", "taste"]
