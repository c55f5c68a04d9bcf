"""What a loader hands to `prepare`: items and raw interaction columns, still keyed by
external ids, plus what is needed to point an error at a line."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recagent.data.catalog import AttrValue, Item
from recagent.data.textfile import shown
from recagent.errors import DataError

_YEAR_SUFFIX = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})(?:[-–]\d{0,4})?\)\s*$")
_ARTICLES = ("The", "A", "An", "La", "Le", "Les", "L'", "Il", "El", "Das", "Der", "Die", "Los")
_TRAILING_ARTICLE = re.compile(r"^(?P<head>.+?), (?P<article>" + "|".join(_ARTICLES) + r")$")


def split_title_year(raw: str) -> tuple[str, int | None]:
    """'Usual Suspects, The (1995)' -> ('The Usual Suspects', 1995); HTML entities left in
    source data are decoded ('Marvel&rsquo;s' -> 'Marvel’s')."""
    raw = html.unescape(raw).strip() if "&" in raw else raw.strip()
    match = _YEAR_SUFFIX.match(raw)
    title, year = (match["title"], int(match["year"])) if match else (raw, None)
    return move_article(title.strip()), year


def move_article(title: str) -> str:
    """'Usual Suspects, The' -> 'The Usual Suspects'; also inside an 'a.k.a.' suffix."""
    head, paren, rest = title.partition(" (")
    match = _TRAILING_ARTICLE.match(head)
    if match:
        article = match["article"]
        sep = "" if article.endswith("'") else " "
        head = f"{article}{sep}{match['head']}"
    return head + (paren + rest if paren else "")


@dataclass
class RawData:
    """A loaded source before filtering and indexing."""

    items: list[Item]
    user_id: np.ndarray  # (n,) str
    item_id: np.ndarray  # (n,) str
    rating: np.ndarray | None  # (n,) float, None when the source has no ratings
    timestamp: np.ndarray | None  # (n,) int64 seconds, None when the source has none
    interactions_path: Path
    line_of_row: Callable[[int], int]
    users: dict[str, dict[str, AttrValue]] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the loader chose for the person


class ItemCollector:
    """Builds the item list, rejecting an id that appears twice with different titles."""

    def __init__(self, path: Path, line_of_row: Callable[[int], int]) -> None:
        self.path = path
        self._line_of_row = line_of_row
        self._rows: dict[str, tuple[int, str]] = {}
        self.items: list[Item] = []

    def add(self, row: int, raw_title: str, item: Item) -> None:
        raw_title = str(raw_title)
        seen = self._rows.get(item.item_id)
        if seen is None:
            self._rows[item.item_id] = (row, raw_title)
            self.items.append(item)
            return
        first_row, first_title = seen
        if first_title != raw_title:
            raise DataError(
                self.path,
                f"item id {shown(item.item_id)} appears twice with different titles: "
                f"{shown(first_title)} (line {self._line_of_row(first_row)}) and "
                f"{shown(raw_title)}",
                self._line_of_row(row),
            )


__all__ = ["ItemCollector", "RawData", "move_article", "split_title_year"]
