"""Hard filters on recall: genres, release years, explicit ids.

Genres are stored in Chroma as one boolean per genre the item has (``genre:Sci-Fi: true``);
absent keys mean "not this genre", so ``$ne: true`` selects items without it. Years are an
int ``year`` key (items of unknown year never pass a year filter). Every filter becomes a
Chroma ``where`` clause (`where_clause`) and, for the fast path that filters an over-fetched
unfiltered result here instead, the same predicate as a boolean mask over the catalog
(`CatalogMask`). Both are built from one `ResolvedFilters`, so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from recagent.data.catalog import Catalog
from recagent.data.genres import resolver_for
from recagent.errors import RecagentError

GENRE_PREFIX = "genre:"
MAX_IDS = 10_000


class FilterError(RecagentError):
    """A filter names something the catalog does not have."""


class ItemFilters(BaseModel):
    """Hard constraints on which items recall may return."""

    model_config = ConfigDict(extra="forbid")

    genres_any: list[str] = Field(
        default_factory=list, description="Keep items with at least one of these genres."
    )
    genres_none: list[str] = Field(
        default_factory=list, description="Drop items with any of these genres."
    )
    year_min: int | None = Field(None, description="Released in or after this year.")
    year_max: int | None = Field(None, description="Released in or before this year.")
    include_ids: list[str] | None = Field(
        None, max_length=MAX_IDS, description="Only these item ids."
    )
    exclude_ids: list[str] = Field(
        default_factory=list, max_length=MAX_IDS, description="Never these item ids."
    )

    @model_validator(mode="after")
    def _years_in_order(self) -> ItemFilters:
        low, high = self.year_min, self.year_max
        if low is not None and high is not None and low > high:
            raise ValueError(f"year_min {self.year_min} is after year_max {self.year_max}")
        return self

    def is_empty(self) -> bool:
        return not (
            self.genres_any
            or self.genres_none
            or self.year_min is not None
            or self.year_max is not None
            or self.include_ids is not None
            or self.exclude_ids
        )


def resolve_genres(names: list[str], genres: list[str]) -> tuple[str, ...]:
    """The catalog genres `names` mean: case, spaces and punctuation ignored ("sci fi" ->
    "Sci-Fi"), plurals and the synonyms of `recagent.data.genres` accepted ("romcom" ->
    Romance and Comedy). Unknown -> `FilterError` listing the valid genres."""
    resolver = resolver_for(tuple(genres))
    out: list[str] = []
    for name in names:
        found = resolver.expand(name)
        if not found:
            valid = ", ".join(genres) if genres else "(this catalog has no genres)"
            raise FilterError(f"unknown genre {name!r}; valid genres: {valid}")
        out.extend(found)
    return tuple(dict.fromkeys(out))


def resolve_genre(name: str, genres: list[str]) -> str:
    """The single catalog genre `name` means (the first, for a phrase naming several)."""
    return resolve_genres([name], genres)[0]


@dataclass(frozen=True)
class ResolvedFilters:
    """Filters checked against a catalog: canonical genre names, known ids."""

    genres_any: tuple[str, ...] = ()
    genres_none: tuple[str, ...] = ()
    year_min: int | None = None
    year_max: int | None = None
    include_ids: tuple[str, ...] | None = None
    exclude_ids: frozenset[str] = frozenset()

    @classmethod
    def of(cls, filters: ItemFilters | None, catalog: Catalog) -> ResolvedFilters:
        if filters is None:
            return cls()
        genres = catalog.genres
        wanted = [*(filters.include_ids or []), *filters.exclude_ids]
        unknown = [i for i in wanted if i not in catalog]
        if unknown:
            shown = ", ".join(repr(i) for i in unknown[:5])
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            raise FilterError(f"unknown item id(s) in filters: {shown}{more}")
        return cls(
            genres_any=resolve_genres(filters.genres_any, genres),
            genres_none=resolve_genres(filters.genres_none, genres),
            year_min=filters.year_min,
            year_max=filters.year_max,
            include_ids=(
                None if filters.include_ids is None else tuple(dict.fromkeys(filters.include_ids))
            ),
            exclude_ids=frozenset(filters.exclude_ids),
        )

    def without_ids(self, ids: set[str]) -> ResolvedFilters:
        """The same filters, also excluding `ids`."""
        return ResolvedFilters(
            self.genres_any,
            self.genres_none,
            self.year_min,
            self.year_max,
            self.include_ids,
            self.exclude_ids | ids,
        )

    def is_empty(self) -> bool:
        return self == ResolvedFilters()

    def where_clause(self) -> dict[str, Any] | None:
        """The Chroma `where` filter for these constraints (None: no constraint)."""
        clauses: list[dict[str, Any]] = []
        if self.genres_any:
            ors = [{genre_key(g): True} for g in self.genres_any]
            clauses.append(ors[0] if len(ors) == 1 else {"$or": ors})
        clauses += [{genre_key(g): {"$ne": True}} for g in self.genres_none]
        if self.year_min is not None:
            clauses.append({"year": {"$gte": self.year_min}})
        if self.year_max is not None:
            clauses.append({"year": {"$lte": self.year_max}})
        if self.include_ids is not None:
            clauses.append({"item_id": {"$in": list(self.include_ids)}})
        if self.exclude_ids:
            clauses.append({"item_id": {"$nin": sorted(self.exclude_ids)}})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def genre_key(genre: str) -> str:
    return GENRE_PREFIX + genre


def item_metadata(item_id: str, year: int | None, genres: tuple[str, ...]) -> dict[str, Any]:
    """What the index stores beside each vector, in the encoding `where_clause` queries."""
    meta: dict[str, Any] = {"item_id": item_id}
    if year is not None:
        meta["year"] = year
    meta.update({genre_key(g): True for g in genres})
    return meta


class CatalogMask:
    """The catalog as arrays, to evaluate filters in microseconds (row = item_idx - 1)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.genres = catalog.genres
        column = {g: j for j, g in enumerate(self.genres)}
        self.has_genre = np.zeros((len(catalog), len(self.genres)), dtype=bool)
        self.years = catalog.years()[1:]
        for row, item in enumerate(catalog):
            for g in item.genres:
                self.has_genre[row, column[g]] = True
        self._column = column

    def rows(self, item_ids: tuple[str, ...] | frozenset[str] | list[str]) -> np.ndarray:
        return np.fromiter((self.catalog.idx(i) - 1 for i in item_ids), dtype=np.int64)

    def allowed(self, f: ResolvedFilters, *, ids: bool = True) -> np.ndarray:
        """Boolean per catalog row: does the item pass `f` (ignoring ids when `ids` is False)?"""
        ok = np.ones(len(self.catalog), dtype=bool)
        if f.genres_any:
            ok &= self.has_genre[:, [self._column[g] for g in f.genres_any]].any(axis=1)
        if f.genres_none:
            ok &= ~self.has_genre[:, [self._column[g] for g in f.genres_none]].any(axis=1)
        if f.year_min is not None:
            ok &= (self.years >= f.year_min) & (self.years >= 0)
        if f.year_max is not None:
            ok &= (self.years <= f.year_max) & (self.years >= 0)
        if ids and f.include_ids is not None:
            keep = np.zeros_like(ok)
            keep[self.rows(f.include_ids)] = True
            ok &= keep
        if ids and f.exclude_ids:
            ok[self.rows(f.exclude_ids)] = False
        return ok


__all__ = [
    "GENRE_PREFIX",
    "CatalogMask",
    "FilterError",
    "ItemFilters",
    "ResolvedFilters",
    "genre_key",
    "item_metadata",
    "resolve_genre",
    "resolve_genres",
]
