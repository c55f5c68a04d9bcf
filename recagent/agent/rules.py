"""Reading a request: count, genres in and out, years, reference titles, seen-or-not, and
refinements of the previous answer ("more like the second one", "older ones", "no horror").

Rules, not a model: they run offline, they are the planner's whole understanding, and in
LLM mode they also give the guard the request's hard constraints.
"""

from __future__ import annotations

import itertools
import re

from pydantic import BaseModel, ConfigDict, Field

from recagent.data.genres import GenreResolver, norm

MAX_MESSAGE_CHARS = 2000
MIN_K, MAX_K, DEFAULT_K = 1, 50, 10
NUMBERS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "fifteen": 15,
    "twenty": 20,
    "thirty": 30,
    "fifty": 50,
    "hundred": 100,
    "a few": 3,
    "a couple of": 2,
    "a couple": 2,
}
ORDINALS = {
    "first": 1,
    "second": 2,
    "third": 3,
    "fourth": 4,
    "fifth": 5,
    "sixth": 6,
    "seventh": 7,
    "eighth": 8,
    "ninth": 9,
    "tenth": 10,
    "last": -1,
}
_NUM = r"(\d{1,4}|" + "|".join(sorted(NUMBERS, key=len, reverse=True)) + r")"
_NOUN = r"(?:movies?|films?|recommendations?|picks?|items?|titles?|suggestions?|options?|shows?)"
_COUNT_LEAD = re.compile(
    rf"\b(?:top|best|give me|show me|recommend|suggest|list|need|want)\s+{_NUM}\b(?!\s*'?s\b)"
)
_DECADE = re.compile(r"\b(?:the\s+)?(early|late|mid)?[\s-]*(?:(19|20)(\d)0|'?(\d)0)'?s\b")
_RANGE = re.compile(
    r"\b(?:between|from)\s+(\d{4})\s+(?:and|to|-)\s+(\d{4})\b|\b(\d{4})\s*(?:-|–|to)\s*(\d{4})\b"
)
_BEFORE = re.compile(r"\b(?:before|pre|earlier than|older than|prior to|until|up to)\s+(\d{4})\b")
_AFTER = re.compile(r"\b(after|since|post|newer than|later than|from)\s+(\d{4})\b")
_IN_YEAR = re.compile(r"\b(?:in|of|from)\s+(\d{4})\b")
_OLD = re.compile(r"\b(classic|classics|old|oldies|old-school|golden age)\b")
_RECENT = re.compile(r"\b(recent|new|newest|latest|modern)\b(?!\s+to\b)")
_SEEN_OK = re.compile(
    r"\b(re-?watch|again|seen (?:it |them )?before|including (?:ones |those |what )?i(?:'ve| have) "
    r"(?:seen|watched)|even if i(?:'ve| have) (?:seen|watched)|already (?:seen|watched))\b"
)
_REF = re.compile(
    r"(?:(?<!\bi )(?<!\bi'd )(?<!\bwould )(?<!\bdon't )(?<!\bdo )\blike|\bsimilar to|\bsuch as|"
    r"\bas good as|\breminds? me of|\bin the (?:vein|style|spirit) of|\balong the lines of|"
    r"\bfans? of|\bsame as|\bakin to|\bin the mou?ld of)\s+(?P<title>.+?)"
    r"(?=\s*(?:,|;|\.(?:\s|$)|!|\?|\bbut\b|\band\b|\bor\b|\bfrom\b|\bwith\b|\bwithout\b|"
    r"\bthat\b|\bwhich\b|\bexcept\b|\bexcluding\b|\bminus\b|\bno\b|\bnot\b|$))"
)
_AND_TITLE = re.compile(r"\s*(?:,|and|&)\s+((?:[A-Z0-9][\w'’:.-]*\s?)+)")
_QUOTED = re.compile(r"[\"“”]([^\"“”]{2,80})[\"“”]")
_MORE_LIKE = re.compile(
    r"\bmore (?:like|similar to) (?:the |that |#|number )?(?P<n>\d+|"
    + "|".join(ORDINALS)
    + r")(?:\s*(?:one|item|movie|film|pick))?\b"
)
_OLDER = re.compile(r"\b(older|earlier|less recent)\b")
_NEWER = re.compile(r"\b(newer|more recent|later ones|fresher)\b")
_MORE = re.compile(r"\b(more|others|other ones|different ones|something else|next|another)\b")
_NEGATION = {
    "no",
    "not",
    "without",
    "except",
    "excluding",
    "exclude",
    "avoid",
    "nothing",
    "non",
    "minus",
    "skip",
    "hate",
    "dont",
    "don't",
    "never",
    "less",
    "zero",
}
_FILLER = {
    "recommend",
    "recommendations",
    "recommendation",
    "me",
    "some",
    "something",
    "please",
    "i",
    "want",
    "wanna",
    "would",
    "like",
    "to",
    "watch",
    "see",
    "looking",
    "for",
    "give",
    "show",
    "suggest",
    "movies",
    "movie",
    "films",
    "film",
    "a",
    "an",
    "the",
    "any",
    "good",
    "great",
    "haven't",
    "havent",
    "seen",
    "that",
    "yet",
    "can",
    "you",
    "could",
    "find",
    "get",
    "tonight",
    "today",
    "need",
    "what",
    "should",
    "is",
    "are",
    "there",
    "with",
    "of",
    "new",
    "my",
    "our",
    "us",
    "we",
    "in",
    "and",
    "or",
    "but",
    "from",
    "ones",
    "one",
    "also",
    "maybe",
    "perhaps",
    "kind",
    "sort",
    "type",
    "style",
    "picks",
    "pick",
    "titles",
    "top",
    "best",
    "list",
}


class Request(BaseModel):
    """What a message asks for. Genres are catalog genres; years are inclusive."""

    model_config = ConfigDict(extra="forbid")

    text: str
    k: int | None = None
    query: str = ""
    genres_all: list[str] = Field(default_factory=list)
    genres_any: list[str] = Field(default_factory=list)
    genres_none: list[str] = Field(default_factory=list)
    year_min: int | None = None
    year_max: int | None = None
    reference_titles: list[str] = Field(default_factory=list)
    include_seen: bool = False
    more_like_rank: int | None = None
    older: bool = False
    newer: bool = False
    more: bool = False
    notices: list[str] = Field(default_factory=list)

    @property
    def is_refinement(self) -> bool:
        """Adjusts the previous answer rather than asking something new."""
        asks_new = self.query or self.reference_titles or self.genres_all or self.genres_any
        adjusts = (
            self.more_like_rank
            or self.older
            or self.newer
            or self.more
            or self.genres_none
            or self.year_min
            or self.year_max
            or self.k
        )
        return bool(adjusts) and not asks_new


def clamp_k(k: int | None, notices: list[str], default: int = DEFAULT_K) -> int:
    if k is None:
        return default
    if k < MIN_K or k > MAX_K:
        clamped = min(MAX_K, max(MIN_K, k))
        notices.append(f"asked for {k} items; showing {clamped} (allowed: {MIN_K}-{MAX_K})")
        return clamped
    return k


def _number(token: str) -> int:
    return int(token) if token.isdigit() else NUMBERS[token]


def _decade(m: re.Match[str]) -> tuple[int, int]:
    part, century, digit, short = m.group(1), m.group(2), m.group(3), m.group(4)
    if century:
        start = int(century) * 100 + int(digit) * 10
    else:
        d = int(short)
        start = (2000 if d <= 2 else 1900) + d * 10
    if part == "early":
        return start, start + 4
    if part == "late":
        return start + 5, start + 9
    if part == "mid":
        return start + 3, start + 7
    return start, start + 9


class RequestParser:
    """Parses messages against one catalog (its genres and its most recent year)."""

    def __init__(self, genres: GenreResolver, latest_year: int | None = None) -> None:
        self.genres = genres
        self.latest_year = latest_year
        self._genre_re = genres.pattern
        # "3 romantic comedies", "five more films": a number, up to two words, then a noun
        self._count_re = re.compile(
            rf"\b{_NUM}\s+(?:(?!(?:but|not|no|without)\b)[a-z'-]+\s+){{0,2}}?"
            rf"(?:{_NOUN}|{genres.alternatives})\b"
        )

    def parse(self, message: str) -> Request:
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

        m = _COUNT_LEAD.search(low)
        if m:
            req.k = _number(m.group(1))
            spans.append(m.span())
        elif (m := self._count_re.search(low)) and not _DECADE.match(low, m.start()):
            req.k = _number(m.group(1))
            spans.append(m.span(1))
        self._years(low, req, spans)
        m = _MORE_LIKE.search(low)
        if m:
            n = m.group("n")
            req.more_like_rank = int(n) if n.isdigit() else ORDINALS[n]
            spans.append(m.span())
        if m := _SEEN_OK.search(low):
            req.include_seen = True
            spans.append(m.span())
        for m in _REF.finditer(low):
            if any(a <= m.start() < b for a, b in spans):
                continue
            title = text[m.start("title") : m.end("title")].strip(" '\"")
            if not title or self.genres.expand(title) or norm(title) in {"that", "this", "it"}:
                continue
            req.reference_titles.append(title)
            spans.append(m.span())
            # "like Toy Story and Aladdin": a capitalised title right after "and" or ","
            if more := _AND_TITLE.match(text, m.end()):
                req.reference_titles.append(more.group(1).strip())
                spans.append(more.span())
        for m in _QUOTED.finditer(text):
            if m.group(1) not in req.reference_titles:
                req.reference_titles.append(m.group(1).strip())
                spans.append(m.span())
        self._genres(low, req, spans)
        if not req.reference_titles and req.more_like_rank is None:
            for flag, pattern in (("older", _OLDER), ("newer", _NEWER), ("more", _MORE)):
                if m := pattern.search(low):
                    setattr(req, flag, True)
                    spans.append(m.span())
        req.query = self._query(text, spans)
        return req

    def _years(self, low: str, req: Request, spans: list[tuple[int, int]]) -> None:
        if m := _RANGE.search(low):
            a, b = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
            req.year_min, req.year_max = sorted((int(a), int(b)))
            spans.append(m.span())
        elif m := _DECADE.search(low):
            req.year_min, req.year_max = _decade(m)
            spans.append(m.span())
        else:
            if m := _BEFORE.search(low):
                req.year_max = int(m.group(1)) - 1
                spans.append(m.span())
            if (m := _AFTER.search(low)) and m.group(1) != "from":
                req.year_min = int(m.group(2)) + (1 if m.group(1) in ("after", "post") else 0)
                spans.append(m.span())
            elif (m := _IN_YEAR.search(low)) and req.year_max is None:
                req.year_min = req.year_max = int(m.group(1))
                spans.append(m.span())
        if req.year_min is None and req.year_max is None:
            if m := _OLD.search(low):
                req.year_max = 1979
                spans.append(m.span())
            elif (m := _RECENT.search(low)) and self.latest_year:
                req.year_min = self.latest_year - 4
                spans.append(m.span())

    def _genres(self, low: str, req: Request, spans: list[tuple[int, int]]) -> None:
        positive: list[tuple[int, list[str]]] = []
        tokens = [(m.start(), m.group()) for m in re.finditer(r"[a-z0-9'-]+", low)]
        for m in self._genre_re.finditer(low):
            if any(a <= m.start() < b for a, b in spans):
                continue
            found = self.genres.expand(m.group(1))
            if not found:
                continue
            before = [t for pos, t in tokens if pos < m.start()][-4:]
            non = low[max(0, m.start() - 4) : m.start()] == "non-"
            if non or _NEGATION & set(before):
                req.genres_none.extend(g for g in found if g not in req.genres_none)
                cues = [pos for pos, t in tokens if pos < m.start() and t in _NEGATION]
                cue = m.start() - 4 if non else max(cues, default=m.start())
                spans.append((cue, m.end()))
            else:
                positive.append((m.start(), found))
        wanted = [g for _, found in positive for g in found]
        wanted = [
            g for i, g in enumerate(wanted) if g not in wanted[:i] and g not in req.genres_none
        ]
        joined_by_or = any(" or " in low[a:b] for (a, _), (b, _) in itertools.pairwise(positive))
        distinct_phrases = len(positive)
        if joined_by_or or distinct_phrases >= 3:
            req.genres_any = wanted
        else:
            req.genres_all = wanted

    def _query(self, text: str, spans: list[tuple[int, int]]) -> str:
        keep = list(text)
        for a, b in spans:
            for i in range(a, min(b, len(keep))):
                keep[i] = " "
        words = re.findall(r"[A-Za-z0-9][A-Za-z0-9'-]*", "".join(keep))
        content = []
        for i, word in enumerate(words):
            negated = i > 0 and words[i - 1].lower() in _NEGATION  # "no gore": not wanted
            if word.lower() not in _FILLER and word.lower() not in _NEGATION and not negated:
                content.append(word)
        return " ".join(content)


__all__ = ["DEFAULT_K", "MAX_K", "Request", "RequestParser", "clamp_k"]
