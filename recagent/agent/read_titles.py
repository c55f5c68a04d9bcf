"""Titles in a message, by rule: where each is written and which catalog item it names, how
the person feels about it, and places in the last answer ("not the third one").

Titles are found through the catalog's title index: "Iron Man 2 (2010)", a quoted title,
"like Toy Story", "I just watched Heat", a title written out word for word. A "like X" whose
X is no catalog title is said, and its words stay in the free-text taste.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from recagent.agent.feelings import feeling_at
from recagent.agent.request import Feeling, Mention
from recagent.agent.vocabulary import ORDINALS, REFERENCE_CUE
from recagent.data.catalog import Catalog
from recagent.data.genres import GenreResolver, norm
from recagent.data.titles import TitleIndex, TitleSpan

CUE_TITLE_SCORE = 92.0  # "I just watched <words>": the words must be a title this surely
QUOTED_TITLE_SCORE = 85.0
REFERENCE_TITLE_SCORE = 85.0
LISTED_TITLE_SCORE = 85.0  # a title in a list the person asks about ("rank Heat, Fargo")

_REF = re.compile(
    REFERENCE_CUE + r"\s+(?P<title>.+?)"
    r"(?=\s*(?:,|;|\.(?:\s|$)|!|\?|\bbut\b|\band\b|\bor\b|\bfrom\b|\bwith\b|\bwithout\b|"
    r"\bthat\b|\bwhich\b|\bexcept\b|\bexcluding\b|\bminus\b|\bno\b|\bnot\b|$))"
)
_AND_TITLE = re.compile(r"\s*(?:,|and|&)\s+((?:[A-Z0-9][\w'’:.-]*\s?)+)")
_QUOTED = re.compile(r"[\"“”]([^\"“”]{2,80})[\"“”]")
_CUE_TITLE = re.compile(
    r"\b(?:watched|seen|saw|loved|liked|enjoyed|hated|disliked|love|adore|like|enjoy|hate|"
    r"not(?!\s+(?:really\s+|much\s+)?(?:like|liked|love|loved|enjoy|enjoyed|care|seen|watched))|"
    r"except|without|skip|anything but)\s+(?P<rest>[^,;.!?(]+)"
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
_NOT_A_START = frozenset(
    {
        "i",
        "me",
        "my",
        "you",
        "your",
        "we",
        "us",
        "there",
        "recommend",
        "suggest",
        "give",
        "show",
        "find",
        "watch",
        "see",
        "get",
        "like",
        "love",
        "enjoy",
        "please",
        "also",
        "really",
        "just",
        "maybe",
    }
)
_SEEN_ALL = re.compile(r"\b(?:seen|watched|saw)\s+(?:them all|all of them|those|these|all)\b")
_LIST_GAP = re.compile(r"\s*(?:,|&|\band\b|\bor\b|,\s*and\b)?\s*", re.I)
_LIST_SPLIT = re.compile(r"\s*(?:,|;|/|&|\band\b|\bor\b|\bthen\b|\n)\s*", re.I)
_LIST_NOISE = re.compile(
    r"^(?:(?:the movies?|the films?|movies?|films?|titles?|please|for me|these|those|them|"
    r"the following|:|-)\s*)+|(?:\s*(?:please|for me|\?|!|\.))+$",
    re.I,
)


@dataclass
class Found:
    """A title written in a message: the item (None: not in the catalog), where, as written,
    and whether a reference cue ("like") stood before it."""

    item_id: str | None
    start: int
    end: int
    written: str
    reference: bool = False


def overlaps(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    return any(a < end and start < b for a, b in spans)


class TitleReader:
    """Finds one catalog's titles in text."""

    def __init__(self, catalog: Catalog, titles: TitleIndex, genres: GenreResolver) -> None:
        self.catalog = catalog
        self.titles = titles
        self.genres = genres

    def find(
        self, text: str, low: str, spans: list[tuple[int, int]], notices: list[str]
    ) -> list[Found]:
        """Titles `text` names, in order of appearance; their spans join `spans`."""
        found: list[Found] = []

        def add(item_id: str | None, start: int, end: int, written: str, ref: bool = False) -> None:
            if not overlaps(start, end, spans):
                found.append(Found(item_id, start, end, written, ref))
                spans.append((start, end))

        for s in self.titles.with_years(text):
            add(s.item_id, s.start, s.end, text[s.start : s.end])
        for m in _QUOTED.finditer(text):
            hit = self.lookup(m.group(1), QUOTED_TITLE_SCORE)
            add(hit, m.start(), m.end(), m.group(1).strip())
        for m in _REF.finditer(low):
            title = text[m.start("title") : m.end("title")].strip(" '\"")
            start = m.start("title")
            if not title or self.genres.expand(title) or norm(title) in {"that", "this", "it"}:
                continue
            if overlaps(start, m.end("title"), spans) or _NOT_A_TITLE.match(title.lower()):
                continue
            hit = self.lookup(title, REFERENCE_TITLE_SCORE)
            if hit is None:
                notices.append(f"no title like {title!r} in the catalog; searching its words")
                continue
            add(hit, start, m.end("title"), title, True)
            # "like Toy Story and Aladdin": a capitalised title right after "and" or ","
            if (more := _AND_TITLE.match(text, m.end())) and (
                hit := self.lookup(extra := more.group(1).strip(), REFERENCE_TITLE_SCORE)
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
            longest = self.longest(text, m.start("rest"), m.end("rest"), CUE_TITLE_SCORE)
            if longest is not None:
                item_id, end = longest
                add(item_id, m.start("rest"), end, text[m.start("rest") : end])
        found.sort(key=lambda f: f.start)
        return found

    def listed(self, text: str, start: int, end: int) -> list[Found]:
        """The titles of a list the person writes ("Heat, Casino and Fargo"), each looked up
        on its own, in order; pieces that are no title are skipped."""
        out: list[Found] = []
        pos = start
        for piece in _LIST_SPLIT.split(text[start:end]):
            at = text.find(piece, pos, end) if piece else -1
            pos = at + len(piece) if at >= 0 else pos
            cleaned = _LIST_NOISE.sub("", piece).strip(" '\"“”")
            if len(cleaned) < 2 or at < 0:
                continue
            hit = self.lookup(cleaned, LISTED_TITLE_SCORE)
            if hit is None:
                longest = self.longest(text, at, at + len(piece), LISTED_TITLE_SCORE)
                hit = longest[0] if longest else None
            out.append(Found(hit, at, at + len(piece), cleaned))
        return out

    def best_in(self, text: str, start: int, end: int) -> Found | None:
        """The longest run of words in `text[start:end]` that is surely a title (a verdict's
        one title: "is Titanic a good pick for me")."""
        words = list(re.finditer(r"\S+", text[start:end]))
        for w in words:
            at = start + w.start()
            if _NOT_A_TITLE.match(w.group().lower()) or w.group().lower() in _NOT_A_START:
                continue
            longest = self.longest(text, at, end, CUE_TITLE_SCORE)
            if longest is not None:
                item_id, stop = longest
                return Found(item_id, at, stop, text[at:stop].strip(" '\"?!.,"))
        return None

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

    def longest(self, text: str, start: int, end: int, min_score: float) -> tuple[str, int] | None:
        """The longest run of words from `start` that is a title scoring `min_score`:
        (item_id, end)."""
        words = list(re.finditer(r"\S+", text[start:end]))[:8]
        for n in range(len(words), 0, -1):
            candidate = text[start : start + words[n - 1].end()].strip(" '\"?!.,")
            if len(candidate) < 3:
                continue
            hit = self.lookup(candidate, min_score)
            if hit is not None:
                return hit, start + words[n - 1].end()
        return None

    def lookup(self, title: str, min_score: float) -> str | None:
        hits = self.titles.search(title, limit=1, min_score=min_score)
        return hits[0].item_id if hits else None

    def feelings(self, text: str, found: list[Found]) -> list[Mention]:
        """How the person feels about each title found ("I loved A, B and C": all three)."""
        mentions: list[Mention] = []
        for i, f in enumerate(found):
            lo = found[i - 1].end if i else 0
            hi = found[i + 1].start if i + 1 < len(found) else len(text)
            feeling: Feeling = (
                "like_this" if f.reference else feeling_at(text, f.start, f.end, lo, hi)
            )
            if i and _LIST_GAP.fullmatch(text[lo : f.start]) and not _cue_near(text, f, hi):
                feeling = mentions[-1].feeling
            title = self.catalog[f.item_id].label if f.item_id else f.written
            mentions.append(Mention(title=title, item_id=f.item_id, feeling=feeling))
        return mentions

    def ordinals(self, text: str, low: str, spans: list[tuple[int, int]]) -> list[Mention]:
        """ "not the second one", "seen the first", "loved #3", "seen them all": a feeling
        about a place in the last answer (rank 0: all of it)."""
        out: list[Mention] = []
        for m in _ORDINAL_REF.finditer(low):
            if overlaps(m.start(), m.end(), spans):
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
            out.append(Mention(title=f"#{rank}", feeling=feeling, rank=rank))
            spans.append(m.span())
        if every := _SEEN_ALL.search(low):
            out.append(Mention(title="all of them", feeling="seen", rank=0))
            spans.append(every.span())
        return out


def _cue_near(text: str, f: Found, hi: int) -> bool:
    """Words of its own right after a title in a list ("A, B which I hated")."""
    right = text[f.end : min(hi, f.end + 40)].lower()
    return bool(re.search(r"\b(?:hate|hated|disliked|didn'?t|not|never|loved?|liked?)\b", right))


__all__ = ["Found", "TitleReader", "overlaps"]
