"""Finding items by title: typo-tolerant search ("toy stroy" -> Toy Story), spotting titles
mentioned inside a sentence (used to check that explanations cite real evidence), and
locating titles in what people write ("i watched Iron Man 2 (2010) and liked it")."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from rapidfuzz import fuzz, process

from recagent.data.catalog import Catalog
from recagent.data.genres import norm

_YEAR = re.compile(r"\(?\b(1[89]\d\d|20\d\d)\b\)?\s*$")
_YEAR_IN_TEXT = re.compile(r"\(\s*(1[89]\d\d|20\d\d)\s*\)")
_WORD = re.compile(r"[a-z0-9]+")
_COMMON = frozenset(
    [
        "the",
        "a",
        "an",
        "of",
        "and",
        "in",
        "on",
        "to",
        "at",
        "for",
        "with",
        "from",
        "by",
        "is",
        "it",
        "s",
        "my",
        "me",
        "i",
        "you",
        "like",
        "love",
    ]
)
_CONNECTORS = frozenset(
    [
        "and",
        "or",
        "but",
        "like",
        "of",
        "to",
        "in",
        "on",
        "at",
        "is",
        "was",
        "if",
        "so",
        "also",
        "then",
        "with",
        "about",
        "seen",
        "watched",
        "saw",
        "loved",
        "liked",
        "love",
        "enjoyed",
        "movie",
        "film",
        "called",
    ]
)
_ARTICLE = re.compile(r"^(the|a|an|la|le|les|el|il|das|der|die) ")
MAX_MENTION_WORDS = 10
FUZZY_TITLE_SCORE = 90.0  # a year-anchored title that is not exact must match this well


@dataclass(frozen=True)
class TitleSpan:
    """A catalog title found in a text: `text[start:end]` is how it was written."""

    item_id: str
    start: int
    end: int
    exact: bool


@dataclass(frozen=True)
class TitleMatch:
    item_id: str
    score: float  # 0..100
    title: str


class TitleIndex:
    def __init__(self, catalog: Catalog, popularity: np.ndarray | None = None) -> None:
        self.catalog = catalog
        self._ids = catalog.item_ids
        self._keys = [norm(item.title) for item in catalog]
        self._bare = [_ARTICLE.sub("", k) for k in self._keys]
        self._years = [item.year for item in catalog]
        pop = popularity if popularity is not None else np.zeros(len(catalog) + 1)
        self._pop = pop[1:] / max(1.0, float(pop.max()))
        # other names a title goes by: "Dumb & Dumber (Dumb and Dumber)", the series before a
        # colon ("Star Wars"), the subtitle after it ("The Empire Strikes Back")
        self._alt_keys: list[str] = []
        self._alt_pos: list[int] = []
        for pos, item in enumerate(catalog):
            for alt in _alternates(item.title):
                key = _ARTICLE.sub("", norm(alt))
                if key and key != self._bare[pos]:
                    self._alt_keys.append(key)
                    self._alt_pos.append(pos)
        self._by_key: dict[str, list[str]] = {}
        self._by_bare_year: dict[tuple[str, int | None], list[str]] = {}
        for pos, (item_id, key) in enumerate(zip(self._ids, self._keys, strict=True)):
            if len(key.split()) >= 2 or len(key) >= 6:
                self._by_key.setdefault(key, []).append(item_id)
            self._by_bare_year.setdefault((self._bare[pos], self._years[pos]), []).append(item_id)
        for key, pos in zip(self._alt_keys, self._alt_pos, strict=True):
            if len(key.split()) >= 2:
                self._by_key.setdefault(key, []).append(self._ids[pos])
            self._by_bare_year.setdefault((key, self._years[pos]), []).append(self._ids[pos])
        self._word_sets = [frozenset(k.split()) for k in self._bare]
        self._by_word: dict[str, list[int]] = {}
        for pos, title_words in enumerate(self._word_sets):
            for w in title_words - _COMMON:
                self._by_word.setdefault(w, []).append(pos)
        self._of_year: dict[int, list[int]] = {}
        for pos, year in enumerate(self._years):
            if year is not None:
                self._of_year.setdefault(year, []).append(pos)

    def search(self, text: str, limit: int = 5, min_score: float = 80.0) -> list[TitleMatch]:
        """Best title matches for `text` (a title, maybe misspelt, maybe with a year)."""
        year = None
        match = _YEAR.search(text.strip())
        if match and match.start() > 0:
            year = int(match.group(1))
            text = text[: match.start()]
        query = norm(text)
        bare = _ARTICLE.sub("", query)
        if not bare:
            return []
        # Whole-title similarity (articles ignored), plus word-set overlap for longer queries
        # ("usual suspects" -> "The Usual Suspects", "dumb and dumber" -> "Dumb & Dumber (Dumb
        # and Dumber)"), slightly discounted, for titles sharing most words with the query
        # and at least two uncommon ones ("like it" is not "Some Like It Hot").
        scores: dict[int, float] = {}
        n = limit * 4
        for _, score, pos in process.extract(bare, self._bare, scorer=fuzz.ratio, limit=n):
            scores[pos] = score
        for _, score, alt in process.extract(bare, self._alt_keys, scorer=fuzz.ratio, limit=n):
            pos = self._alt_pos[alt]
            scores[pos] = max(scores.get(pos, 0.0), 0.95 * score)
        words = set(bare.split())
        if len(words) >= 2:
            for pos in self._sharing(words):
                title_words = self._word_sets[pos]
                shared = len(words & title_words)
                rare = len((words & title_words) - _COMMON)
                if rare >= 2 and 2 * shared >= max(len(words), len(title_words)):
                    score = 0.95 * fuzz.token_set_ratio(bare, self._bare[pos])
                    scores[pos] = max(scores.get(pos, 0.0), score)
        ranked = []
        for pos, score in scores.items():
            if score < min_score:
                continue
            key = self._keys[pos]
            bonus = 5.0 if key == query else 0.0
            bonus += 3.0 if year is not None and self._years[pos] == year else 0.0
            bonus -= 10.0 if year is not None and self._years[pos] not in (None, year) else 0.0
            ranked.append((score + bonus + 2.0 * self._pop[pos], pos, key))
        ranked.sort(key=lambda t: -t[0])
        out: list[TitleMatch] = []
        for total, pos, _ in ranked[:limit]:
            item = self.catalog[self._ids[pos]]
            out.append(TitleMatch(item.item_id, round(min(100.0, float(total)), 1), item.title))
        return out

    def mentions(self, text: str) -> set[str]:
        """Item ids whose (multi-word or long) title appears verbatim in `text`."""
        return {i for group in self.mention_groups(text) for i in group}

    def mention_groups(self, text: str) -> list[set[str]]:
        """For each (multi-word or long) title written verbatim in `text`, the items that
        carry it ("The Avengers": the 1998 film and the 2012 one)."""
        groups: list[set[str]] = []
        for _, _, ids in self.mention_spans(text):
            if ids not in groups:
                groups.append(ids)
        return groups

    def mention_spans(self, text: str) -> list[tuple[int, int, set[str]]]:
        """(start, end, the items carrying it) for each title written verbatim in `text`:
        the longest title at each place, none inside another ("Infinity War" mentions
        Avengers: Infinity War, not also the film "Infinity")."""
        words = list(_WORD.finditer(text.lower()))
        spans: list[tuple[int, int, set[str]]] = []
        i = 0
        while i < len(words):
            for n in range(min(MAX_MENTION_WORDS, len(words) - i), 0, -1):
                ids = self._by_key.get(" ".join(w.group() for w in words[i : i + n]))
                if ids:
                    spans.append((words[i].start(), words[i + n - 1].end(), set(ids)))
                    i += n
                    break
            else:
                i += 1
        return spans

    def _sharing(self, words: set[str]) -> set[int]:
        """Titles sharing an uncommon word with `words`."""
        out: set[int] = set()
        for w in words - _COMMON:
            out.update(self._by_word.get(w, ()))
        return out

    def with_years(self, text: str) -> list[TitleSpan]:
        """Titles written with their year, as dialogues write them ("Iron Man 2 (2010)"):
        for each "(year)", the longest run of up to `MAX_MENTION_WORDS` words before it that
        is a catalog title of that year once normalised (articles ignored), else the best
        typo-tolerant match of that year scoring at least `FUZZY_TITLE_SCORE`."""
        spans: list[TitleSpan] = []
        floor = 0
        low = text.lower()
        for m in _YEAR_IN_TEXT.finditer(text):
            year = int(m.group(1))
            words = list(_WORD.finditer(low, floor, m.start()))[-MAX_MENTION_WORDS:]
            found = self._exact_before(low, words, m.start(), year)
            if found is None:
                found = self._fuzzy_before(text, words, m.start(), year)
            if found is not None:
                item_id, start, exact = found
                spans.append(TitleSpan(item_id, start, m.end(), exact))
            floor = m.end()
        return spans

    def _exact_before(
        self, low: str, words: list[re.Match[str]], end: int, year: int
    ) -> tuple[str, int, bool] | None:
        for first in range(len(words)):  # longest first
            key = _ARTICLE.sub("", " ".join(w.group() for w in words[first:]))
            ids = self._by_bare_year.get((key, year))
            if ids:
                # an alternate name matched ("Infinity War"): take in the words before it that
                # belong to the full title too ("Avengers: Infinity War")
                title_words = self._word_sets[self.catalog.idx(ids[0]) - 1]
                while first > 0 and words[first - 1].group() in title_words - _COMMON:
                    first -= 1
                return ids[0], words[first].start(), True
        return None

    def _fuzzy_before(
        self, text: str, words: list[re.Match[str]], end: int, year: int
    ) -> tuple[str, int, bool] | None:
        """The run of words before `end` that matches a title of `year` best (the longest on
        ties), if well enough: the
        whole-title similarity, or (two words or more, covering at least half the title's
        words) the word-set similarity, slightly discounted."""
        titles = self._of_year.get(year)
        if not titles:
            return None
        best: tuple[float, float, int, int, int] | None = None
        for first in range(len(words)):
            run = _ARTICLE.sub("", " ".join(w.group() for w in words[first:]))
            run_words = set(run.split())
            for pos in titles:
                title = self._bare[pos]
                score = fuzz.ratio(run, title)
                title_words = set(title.split())
                if run.split()[0] in _CONNECTORS and run.split()[0] not in title_words:
                    continue  # "and Guardians of the Galaxy": the title starts after "and"
                shared = len(run_words & title_words)
                if len(run_words) >= 2 and 2 * shared >= max(len(title_words), len(run_words)):
                    score = max(score, 0.95 * fuzz.token_set_ratio(run, title))
                # best score; then the run with the fewest words outside the title; then longest
                key = (score, shared / len(run_words), len(run_words), words[first].start(), pos)
                if score >= FUZZY_TITLE_SCORE and (best is None or key[:3] > best[:3]):
                    best = key
        return None if best is None else (self._ids[best[4]], best[3], False)

    def verbatim(self, text: str, min_words: int = 2) -> list[TitleSpan]:
        """Titles of at least `min_words` words written out word for word (case and
        punctuation aside), longest first where they overlap."""
        low = text.lower()
        words = list(_WORD.finditer(low))
        spans: list[TitleSpan] = []
        taken = -1
        for i in range(len(words)):
            if words[i].start() < taken:
                continue
            for n in range(min(MAX_MENTION_WORDS, len(words) - i), min_words - 1, -1):
                key = " ".join(w.group() for w in words[i : i + n])
                ids = self._by_key.get(key)
                if ids:
                    end = words[i + n - 1].end()
                    spans.append(TitleSpan(self._most_popular(ids), words[i].start(), end, True))
                    taken = end
                    break
        return spans

    @cached_property
    def _editions(self) -> tuple[list[str], list[bool], dict[str, list[int]]]:
        keys: list[str] = []
        marked: list[bool] = []
        by_key: dict[str, list[int]] = {}
        for pos, item in enumerate(self.catalog):
            key, had = edition_key(item.title)
            keys.append(key)
            marked.append(had)
            by_key.setdefault(key, []).append(pos)
        return keys, marked, by_key

    def other_editions(self, item_ids: Iterable[str]) -> set[str]:
        """Other catalog items that are the same work as one of `item_ids`: the title is
        equal once edition and platform words are dropped ("Halo 4" / "Halo 4 (Xbox 360)",
        "... Game of the Year Edition"), and one of the two titles has such words or both
        have the same year (so the remake "It (2017)" is not the same as "It (1990)")."""
        keys, marked, by_key = self._editions
        out: set[str] = set()
        for item_id in item_ids:
            if item_id not in self.catalog:
                continue
            pos = self.catalog.idx(item_id) - 1
            for other in by_key.get(keys[pos], ()):
                if other == pos or not keys[pos]:
                    continue
                if marked[pos] or marked[other] or self._years[pos] == self._years[other]:
                    out.add(self._ids[other])
        return out

    def _most_popular(self, ids: list[str]) -> str:
        return max(ids, key=lambda i: (self._pop[self.catalog.idx(i) - 1], -self.catalog.idx(i)))


_EDITION = re.compile(
    r"\b(?:(?:game of the year|goty|collector'?s|director'?s cut|anniversary|deluxe|definitive|"
    r"remastered|remaster|complete|ultimate|special|limited|gold|platinum hits|greatest hits|"
    r"enhanced|extended|hd|4k)(?:\s+edition)?|edition|"
    r"xbox(?:\s+(?:360|one|series\s+[xs]))?|playstation\s*\d?|ps[1-5]|psp|ps\s+vita|pc|mac|"
    r"nintendo\s+(?:switch|ds|3ds|64|wii)|switch|wii\s*u?|gamecube|3ds|ds)\b"
)


def edition_key(title: str) -> tuple[str, bool]:
    """The title without edition and platform words (and their brackets), and whether it had
    any."""
    low = title.lower()
    stripped = _EDITION.sub(" ", low)
    key = " ".join(_WORD.findall(stripped))
    return _ARTICLE.sub("", key), stripped != low


_PARENS = re.compile(r"\(([^()]*)\)")
_AKA = re.compile(r"^(?:a\.k\.a\.|aka)\s+", re.I)
_PART = re.compile(r"^(?:part|episode|vol|volume|chapter|book)\b", re.I)


def _alternates(title: str) -> list[str]:
    """Other names in a catalog title: parenthesised alternates, the main title without
    them, the series before a colon and a subtitle after it."""
    out = [_AKA.sub("", m.group(1)).strip() for m in _PARENS.finditer(title)]
    main = _PARENS.sub("", title).strip()
    out.append(main)
    if ":" in main:
        series, _, rest = main.partition(":")
        out.append(series)
        for part in re.split(r"\s+-\s+|:", rest):
            part = part.strip()
            if len(part.split()) >= 2 and not _PART.match(part):
                out.append(part)
    return [a for a in out if a and a != title]


__all__ = ["TitleIndex", "TitleMatch", "TitleSpan", "edition_key"]
