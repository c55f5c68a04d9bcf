"""The item catalog: what can be recommended, with the text and metadata tools search over."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

AttrValue = str | int | float | bool | None


class Item(BaseModel):
    """One catalog item. `item_id` is the external id as found in the source data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    item_id: str
    title: str
    year: int | None = None
    genres: tuple[str, ...] = ()
    text: str = Field("", description="Free text: description, tags, plot...")
    attrs: dict[str, AttrValue] = Field(default_factory=dict)
    knowledge: str = Field(
        "",
        description="What an LLM knows about the item (`recagent knowledge build`); kept in "
        "the workspace's knowledge store, not in the prepared catalog file.",
    )

    @property
    def label(self) -> str:
        """Title with year, as people write it: 'Toy Story (1995)'."""
        return f"{self.title} ({self.year})" if self.year else self.title


class Catalog:
    """Items in a fixed order. Position `i` in that order is `item_idx = i + 1` (0 = padding)."""

    def __init__(self, items: Sequence[Item]) -> None:
        self._items: list[Item] = list(items)
        self._index: dict[str, int] = {}
        for i, item in enumerate(self._items):
            if item.item_id in self._index:
                raise ValueError(f"duplicate item_id {item.item_id!r} in catalog")
            self._index[item.item_id] = i + 1
        self._genres: list[str] | None = None
        self._genre_counts: dict[str, int] | None = None

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Item]:
        return iter(self._items)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._index

    def __getitem__(self, item_id: str) -> Item:
        return self._items[self._index[item_id] - 1]

    def get(self, item_id: str) -> Item | None:
        idx = self._index.get(item_id)
        return None if idx is None else self._items[idx - 1]

    def idx(self, item_id: str) -> int:
        """Internal index of an item id (KeyError when unknown)."""
        return self._index[item_id]

    def idx_or_none(self, item_id: str) -> int | None:
        return self._index.get(item_id)

    def at(self, item_idx: int) -> Item:
        """The item with internal index `item_idx` (1-based)."""
        if item_idx < 1:
            raise IndexError("item_idx 0 is padding")
        return self._items[item_idx - 1]

    def id_at(self, item_idx: int) -> str:
        return self.at(item_idx).item_id

    def ids_at(self, item_idx: Iterable[int]) -> list[str]:
        return [self._items[int(i) - 1].item_id for i in item_idx]

    @property
    def item_ids(self) -> list[str]:
        return [item.item_id for item in self._items]

    @property
    def genres(self) -> list[str]:
        """All genres present, sorted."""
        if self._genres is None:
            self._genres = sorted({g for item in self._items for g in item.genres})
        return self._genres

    def genre_counts(self) -> dict[str, int]:
        """How many items have each genre."""
        if self._genre_counts is None:
            counts: dict[str, int] = {}
            for item in self._items:
                for g in item.genres:
                    counts[g] = counts.get(g, 0) + 1
            self._genre_counts = counts
        return self._genre_counts

    def years(self) -> np.ndarray:
        """Year per item_idx (index 0 = padding), -1 where unknown."""
        out = np.full(len(self) + 1, -1, dtype=np.int32)
        for i, item in enumerate(self._items, start=1):
            if item.year is not None:
                out[i] = item.year
        return out

    def save_jsonl(self, path: Path) -> None:
        with path.open("w", encoding="utf-8") as fh:
            for item in self._items:
                fh.write(item.model_dump_json(exclude_defaults=True, exclude={"knowledge"}) + "\n")

    @classmethod
    def load_jsonl(cls, path: Path) -> Catalog:
        items = []
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                data = json.loads(line)
                data["genres"] = tuple(data.get("genres", ()))
                items.append(Item.model_construct(**{**_DEFAULTS, **data}))
        return cls(items)


_DEFAULTS: dict[str, object] = {
    "year": None,
    "genres": (),
    "text": "",
    "attrs": {},
    "knowledge": "",
}

__all__ = ["AttrValue", "Catalog", "Item"]
