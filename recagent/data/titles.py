"""Finding items by title: typo-tolerant search ("toy stroy" -> Toy Story) and spotting titles
mentioned inside a sentence (used to check that explanations cite real evidence)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from rapidfuzz import fuzz, process

from recagent.data.catalog import Catalog
from recagent.data.genres import norm

_YEAR = re.compile(r"\(?\b(1[89]\d\d|20\d\d)\b\)?\s*$")
_ARTICLE = re.compile(r"^(the|a|an|la|le|les|el|il|das|der|die) ")
MAX_MENTION_WORDS = 10


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
        self._by_key: dict[str, list[str]] = {}
        for item_id, key in zip(self._ids, self._keys, strict=True):
            if len(key.split()) >= 2 or len(key) >= 6:
                self._by_key.setdefault(key, []).append(item_id)

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
        # ("usual suspects" -> "The Usual Suspects"), slightly discounted.
        scores: dict[int, float] = {}
        n = limit * 4
        for _, score, pos in process.extract(bare, self._bare, scorer=fuzz.ratio, limit=n):
            scores[pos] = score
        if len(bare.split()) >= 2:
            for _, score, pos in process.extract(
                bare, self._bare, scorer=fuzz.token_set_ratio, limit=n
            ):
                scores[pos] = max(scores.get(pos, 0.0), 0.95 * score)
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
        words = norm(text).split()
        found: set[str] = set()
        for n in range(1, MAX_MENTION_WORDS + 1):
            for i in range(len(words) - n + 1):
                ids = self._by_key.get(" ".join(words[i : i + n]))
                if ids:
                    found.update(ids)
        return found


__all__ = ["TitleIndex", "TitleMatch"]
