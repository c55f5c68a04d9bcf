"""The offline reader: a message -> a `Request`, by rule.

Count, genres in and out, years, the titles a person mentions with how they feel about each
(found through the catalog's title index: "Iron Man 2 (2010)", "like Toy Story", a quoted
title, "I just watched Heat", a title written out word for word), seen-or-not, refinements
of the previous answer ("more like the second one", "older ones", "no horror", "not the
third one") and the words left over as a free-text taste. It runs offline, it is the
planner's whole understanding, and in LLM mode it is the fallback when the model's reading
is invalid.
"""

from __future__ import annotations

import itertools
import re

from recagent.agent.feelings import feeling_at
from recagent.agent.request import Feeling, Mention, Request
from recagent.data.catalog import Catalog
from recagent.data.genres import GenreResolver, norm
from recagent.data.titles import TitleIndex, TitleSpan

MAX_MESSAGE_CHARS = 2000
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
    # conversation and opinion words: how people talk, not what they want
    "hi",
    "hello",
    "hey",
    "thanks",
    "thank",
    "bye",
    "goodbye",
    "yes",
    "yeah",
    "ok",
    "okay",
    "sure",
    "just",
    "really",
    "watched",
    "saw",
    "loved",
    "liked",
    "love",
    "enjoyed",
    "enjoy",
    "it",
    "its",
    "it's",
    "this",
    "was",
    "am",
    "i'm",
    "im",
    "i've",
    "have",
    "has",
    "do",
    "did",
    "been",
    "be",
    "too",
    "so",
    "very",
    "which",
    "other",
    "others",
    "else",
    "anything",
    "open",
    "right",
    "now",
    "lately",
    "recently",
    "night",
    "last",
    "them",
    "they",
    "those",
    "these",
    "how",
    "about",
    "your",
    "at",
    "on",
    "if",
    "as",
    "all",
    "much",
    "more",
}


_CUE_TITLE = re.compile(
    r"\b(?:watched|seen|saw|loved|liked|enjoyed|hated|disliked|love|adore|like|enjoy|hate|"
    r"not|except|without|skip|anything but)\s+(?P<rest>[^,;.!?(]+)"
)
_YEAR_AHEAD = re.compile(r"\s*\(\s*\d{4}\s*\)")
_YEAR_SOON = re.compile(r"[^().!?;,]{0,40}?\(\s*(\d{4})\s*\)")
_NOT_A_TITLE = re.compile(
    r"^(?:it|that|this|them|those|these|one|ones|some|all|a|an|the one|movies?|films?|"
    r"everything|something|anything|him|her|he|she|they|you|what|when|how|to|too|so|very|"
    r"most|more|any|lots?|kind|type|genre|stuff|watching|seeing)\b"
)
_ORDINAL_REF = re.compile(
    r"\b(?:the\s+)?(?:(?P<word>"
    + "|".join(ORDINALS)
    + r")(?:\s+(?:one|item|movie|film|pick|suggestion))?"
    r"|#(?P<num>\d{1,2})|number\s+(?P<num2>\d{1,2}))\b"
)
_SEEN_ALL = re.compile(r"\b(?:seen|watched|saw)\s+(?:them all|all of them|those|these|all)\b")
_INTENSIFIERS = {"too", "very", "so", "overly", "really", "that", "as", "remotely", "even"}
CUE_TITLE_SCORE = 92.0  # "I just watched <words>": the words must be a title this surely
QUOTED_TITLE_SCORE = 85.0
REFERENCE_TITLE_SCORE = 85.0


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


def decades(text: str) -> list[tuple[int, int]]:
    """The decades written in `text` ("the 90s", "early 1980s") as year ranges."""
    return [_decade(m) for m in _DECADE.finditer(text.lower())]


def joins_with_or(text: str) -> bool:
    """The person offers alternatives ("comedy or drama", "either ...")."""
    return bool(re.search(r"\b(?:or|either|any of)\b", text.lower()))


def _overlaps(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    return any(a < end and start < b for a, b in spans)


class RuleReader:
    """Reads messages against one catalog: its genres, its titles, its most recent year."""

    def __init__(self, catalog: Catalog, titles: TitleIndex, genres: GenreResolver) -> None:
        self.catalog = catalog
        self.titles = titles
        self.genres = genres
        self.latest_year = max((it.year for it in catalog if it.year), default=None)
        self._genre_re = genres.pattern
        # "3 romantic comedies", "five more films": a number, up to two words, then a noun
        self._count_re = re.compile(
            rf"\b{_NUM}\s+(?:(?!(?:but|not|no|without)\b)[a-z'-]+\s+){{0,2}}?"
            rf"(?:{_NOUN}|{genres.alternatives})\b"
        )

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
        if role == "user" and (m := _MORE_LIKE.search(low)):
            n = m.group("n")
            req.more_like_rank = int(n) if n.isdigit() else ORDINALS[n]
            spans.append(m.span())
        found = self._titles(text, low, spans, req.notices)
        if role != "user":
            req.mentions = [
                Mention(title=self.catalog[s.item_id].label, item_id=s.item_id, feeling="suggested")
                for s in found
                if s.item_id
            ]
            return req
        self._count(low, req, spans)
        self._years(low, req, spans)
        if m := _SEEN_OK.search(low):
            req.include_seen = True
            spans.append(m.span())
        req.mentions = self._feelings(text, found)
        self._ordinals(text, low, req, spans)
        if m := _SEEN_ALL.search(low):
            req.mentions.append(Mention(title="all of them", feeling="seen", rank=0))
            spans.append(m.span())
        genre_spans: list[tuple[int, int]] = []
        self._genres(low, req, spans, genre_spans)
        if not req.asks_something() and req.more_like_rank is None:
            for flag, pattern in (("older", _OLDER), ("newer", _NEWER), ("more", _MORE)):
                if m := pattern.search(low):
                    setattr(req, flag, True)
                    spans.append(m.span())
        # the taste: what no rule read, without the genres (the constraints hold those, and a
        # genre word would match every item of the genre: "dark sci-fi" searches for "dark")
        req.query = self._query(text, spans + genre_spans)
        return req

    # ---- titles ---------------------------------------------------------------------------

    def _titles(
        self, text: str, low: str, spans: list[tuple[int, int]], notices: list[str]
    ) -> list[_Found]:
        """Titles the message names, in order of appearance, each with its span. A "like X"
        whose X is no catalog title is said, and its words stay in the free-text taste."""
        found: list[_Found] = []

        def add(item_id: str | None, start: int, end: int, written: str, ref: bool = False) -> None:
            if not _overlaps(start, end, spans):
                found.append(_Found(item_id, start, end, written, ref))
                spans.append((start, end))

        for s in self.titles.with_years(text):
            add(s.item_id, s.start, s.end, text[s.start : s.end])
        for m in _QUOTED.finditer(text):
            hit = self._lookup(m.group(1), QUOTED_TITLE_SCORE)
            add(hit, m.start(), m.end(), m.group(1).strip())
        for m in _REF.finditer(low):
            title = text[m.start("title") : m.end("title")].strip(" '\"")
            start = m.start("title")
            if not title or self.genres.expand(title) or norm(title) in {"that", "this", "it"}:
                continue
            if _overlaps(start, m.end("title"), spans) or _NOT_A_TITLE.match(title.lower()):
                continue
            hit = self._lookup(title, REFERENCE_TITLE_SCORE)
            if hit is None:
                notices.append(f"no title like {title!r} in the catalog; searching its words")
                continue
            add(hit, start, m.end("title"), title, True)
            # "like Toy Story and Aladdin": a capitalised title right after "and" or ","
            if (more := _AND_TITLE.match(text, m.end())) and (
                hit := self._lookup(extra := more.group(1).strip(), REFERENCE_TITLE_SCORE)
            ):
                add(hit, more.start(1), more.start(1) + len(extra), extra, True)
        for s in self._verbatim(text):
            add(s.item_id, s.start, s.end, text[s.start : s.end])
        for m in _CUE_TITLE.finditer(low):
            rest = m.group("rest")
            if _NOT_A_TITLE.match(rest) or self.genres.pattern.match(rest):
                continue
            if _YEAR_AHEAD.match(low, m.end("rest")):
                continue  # "Title (year)" that is not in the catalog: no guessing a prefix
            longest = self._longest_title(text, m.start("rest"), m.end("rest"))
            if longest is not None:
                item_id, end = longest
                add(item_id, m.start("rest"), end, text[m.start("rest") : end])
        found.sort(key=lambda f: f.start)
        return found

    def _verbatim(self, text: str) -> list[TitleSpan]:
        """Multi-word titles written out: capitalised as a title, or of three words or more
        (lower-case two-word phrases are too often ordinary words), and not the start of a
        longer title of another year ("Spider-Man: Homecoming (2017)")."""
        out = []
        for s in self.titles.verbatim(text):
            written = text[s.start : s.end]
            if not (written[:1].isupper() or len(written.split()) >= 3):
                continue
            ahead = _YEAR_SOON.match(text, s.end)
            if ahead and int(ahead.group(1)) != self.catalog[s.item_id].year:
                continue
            out.append(s)
        return out

    def _longest_title(self, text: str, start: int, end: int) -> tuple[str, int] | None:
        """The longest run of words from `start` that is surely a title: (item_id, end)."""
        words = list(re.finditer(r"\S+", text[start:end]))[:8]
        for n in range(len(words), 0, -1):
            candidate = text[start : start + words[n - 1].end()].strip(" '\"")
            if len(candidate) < 3:
                continue
            hit = self._lookup(candidate, CUE_TITLE_SCORE)
            if hit is not None:
                return hit, start + words[n - 1].end()
        return None

    def _lookup(self, title: str, min_score: float) -> str | None:
        hits = self.titles.search(title, limit=1, min_score=min_score)
        return hits[0].item_id if hits else None

    def _feelings(self, text: str, found: list[_Found]) -> list[Mention]:
        mentions: list[Mention] = []
        for i, f in enumerate(found):
            lo = found[i - 1].end if i else 0
            hi = found[i + 1].start if i + 1 < len(found) else len(text)
            feeling: Feeling = (
                "like_this" if f.reference else feeling_at(text, f.start, f.end, lo, hi)
            )
            if i and _LIST_GAP.fullmatch(text[lo : f.start]) and not _cue_near(text, f, hi):
                feeling = mentions[-1].feeling  # "I loved A, B and C": all three
            title = self.catalog[f.item_id].label if f.item_id else f.written
            mentions.append(Mention(title=title, item_id=f.item_id, feeling=feeling))
        return mentions

    def _ordinals(self, text: str, low: str, req: Request, spans: list[tuple[int, int]]) -> None:
        """ "not the second one", "seen the first", "loved #3": a feeling about a place in the
        last answer."""
        for m in _ORDINAL_REF.finditer(low):
            if _overlaps(m.start(), m.end(), spans):
                continue
            n = m.group("word") or m.group("num") or m.group("num2")
            rank = ORDINALS[n] if n in ORDINALS else int(n)
            left = low[max(0, m.start() - 40) : m.start()]
            if re.search(r"\b(?:not|no|skip|except|without|drop|remove)\s*$", left):
                feeling: Feeling = "disliked"
            else:
                feeling = feeling_at(text, m.start(), m.end())
                if feeling == "liked" and not re.search(r"\blike|enjoy|good|great", low):
                    continue  # a bare ordinal says nothing about the item
            req.mentions.append(Mention(title=f"#{rank}", feeling=feeling, rank=rank))
            spans.append(m.span())

    # ---- count, years, genres, taste -----------------------------------------------------

    def _count(self, low: str, req: Request, spans: list[tuple[int, int]]) -> None:
        m = _COUNT_LEAD.search(low)
        if m and not _overlaps(m.start(1), m.end(1), spans):
            req.k = _number(m.group(1))
            spans.append(m.span())
        elif (
            (m := self._count_re.search(low))
            and not _DECADE.match(low, m.start())
            and not _overlaps(m.start(1), m.end(1), spans)
        ):
            req.k = _number(m.group(1))
            spans.append(m.span(1))

    def _years(self, low: str, req: Request, spans: list[tuple[int, int]]) -> None:
        c = req.constraints

        def free(m: re.Match[str]) -> bool:
            return not _overlaps(m.start(), m.end(), spans)

        if (m := _RANGE.search(low)) and free(m):
            a, b = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
            c.year_min, c.year_max = sorted((int(a), int(b)))
            spans.append(m.span())
        elif (m := _DECADE.search(low)) and free(m):
            c.year_min, c.year_max = _decade(m)
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
        if c.year_min is None and c.year_max is None:
            if (m := _OLD.search(low)) and free(m):
                c.year_max = 1979
                spans.append(m.span())
            elif (m := _RECENT.search(low)) and free(m) and self.latest_year:
                c.year_min = self.latest_year - 4
                spans.append(m.span())

    def _genres(
        self,
        low: str,
        req: Request,
        spans: list[tuple[int, int]],
        genre_spans: list[tuple[int, int]],
    ) -> None:
        """Genres wanted (their spans go to `genre_spans`) and not wanted (to `spans`)."""
        c = req.constraints
        positive: list[tuple[int, list[str]]] = []
        tokens = [(m.start(), m.group()) for m in re.finditer(r"[a-z0-9'-]+", low)]
        for m in self._genre_re.finditer(low):
            if _overlaps(m.start(), m.end(), spans):
                continue  # inside a title ("Star Wars") or a phrase already read
            found = self.genres.expand(m.group(1))
            if not found:
                continue
            clause = max((b.end() for b in _CLAUSE_END.finditer(low, 0, m.start())), default=0)
            before = [t for pos, t in tokens if clause <= pos < m.start()][-4:]
            non = low[max(0, m.start() - 4) : m.start()] == "non-"
            if non or _NEGATION & set(before):
                c.genres_none.extend(g for g in found if g not in c.genres_none)
                cues = [pos for pos, t in tokens if clause <= pos < m.start() and t in _NEGATION]
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

    def _query(self, text: str, spans: list[tuple[int, int]]) -> str:
        """The words no rule read: the free-text taste ("dark", "feel-good", "heist")."""
        keep = list(text)
        for a, b in spans:
            for i in range(a, min(b, len(keep))):
                keep[i] = " "
        words = re.findall(r"[A-Za-z0-9][A-Za-z0-9'-]*", "".join(keep))
        content = []
        negated = False
        for word in words:
            w = word.lower()
            if w in _NEGATION:
                negated = True  # "no gore", "nothing too violent": not wanted
                continue
            if negated and w in _INTENSIFIERS:
                continue
            if not negated and w not in _FILLER:
                content.append(word)
            negated = False
        return " ".join(content)


_LIST_GAP = re.compile(r"\s*(?:,|&|\band\b|\bor\b|,\s*and\b)?\s*", re.I)


def _cue_near(text: str, f: _Found, hi: int) -> bool:
    """Words of its own right after a title in a list ("A, B which I hated")."""
    right = text[f.end : min(hi, f.end + 40)].lower()
    return bool(re.search(r"\b(?:hate|hated|disliked|didn'?t|not|never|loved?|liked?)\b", right))


class _Found:
    __slots__ = ("end", "item_id", "reference", "start", "written")

    def __init__(
        self, item_id: str | None, start: int, end: int, written: str, reference: bool
    ) -> None:
        self.item_id, self.start, self.end = item_id, start, end
        self.written, self.reference = written, reference


_CLAUSE_END = re.compile(r"[.!?;]|\bbut\b")

__all__ = ["MAX_MESSAGE_CHARS", "RuleReader"]
