"""Recall filters: a resolved `Constraints` as Chroma metadata queries and as a catalog mask.

Genres are stored in Chroma as one boolean per genre the item has (``genre:Sci-Fi: true``);
absent keys mean "not this genre", so ``$ne: true`` selects items without it. Years are an
int ``year`` key (items of unknown year never pass a year filter). Every filter becomes a
Chroma ``where`` clause (`where_clause`) and, for the fast path that filters an over-fetched
unfiltered result here instead, the same predicate as a boolean mask over the catalog
(`CatalogMask`). Both are built from one resolved `Constraints`
(`recagent.data.constraints`), the model the guard and `filter_items` use too.
"""

from __future__ import annotations

import threading
from typing import Any
from weakref import WeakKeyDictionary

import numpy as np

from recagent.data.catalog import Catalog
from recagent.data.constraints import Constraints, Reason

GENRE_PREFIX = "genre:"


def where_clause(c: Constraints) -> dict[str, Any] | None:
    """The Chroma `where` filter for resolved constraints (None: no constraint)."""
    clauses: list[dict[str, Any]] = [{genre_key(g): True} for g in c.genres_all]
    if c.genres_any:
        ors = [{genre_key(g): True} for g in c.genres_any]
        clauses.append(ors[0] if len(ors) == 1 else {"$or": ors})
    clauses += [{genre_key(g): {"$ne": True}} for g in c.genres_none]
    if c.year_min is not None:
        clauses.append({"year": {"$gte": c.year_min}})
    if c.year_max is not None:
        clauses.append({"year": {"$lte": c.year_max}})
    if c.include_ids is not None:
        clauses.append({"item_id": {"$in": list(c.include_ids)}})
    if c.exclude_ids:
        clauses.append({"item_id": {"$nin": sorted(set(c.exclude_ids))}})
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


# Why `Constraints.admits` refuses an item, in the order it checks (a mask's codes are 1 + this
# tuple's index; 0: the item passes).
REASONS: tuple[Reason, ...] = ("excluded", "not_included", "genre", "excluded_genre", "year")


class CatalogMask:
    """The catalog as arrays, to evaluate filters in microseconds (row = item_idx - 1); one
    per catalog (`catalog_mask`)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.genres = catalog.genres
        column = {g: j for j, g in enumerate(self.genres)}
        # one contiguous row per genre (a column of an items x genres matrix would be read
        # strided: 20x slower at a million items)
        self.has_genre = np.zeros((len(self.genres), len(catalog)), dtype=bool)
        self.years = catalog.years()[1:]
        for row, item in enumerate(catalog):
            for g in item.genres:
                self.has_genre[column[g], row] = True
        self._column = column

    def _any(self, genres: list[str]) -> np.ndarray:
        return np.logical_or.reduce([self.has_genre[self._column[g]] for g in genres])

    def _all(self, genres: list[str]) -> np.ndarray:
        return np.logical_and.reduce([self.has_genre[self._column[g]] for g in genres])

    def rows(self, item_ids: list[str]) -> np.ndarray:
        return np.fromiter((self.catalog.idx(i) - 1 for i in item_ids), dtype=np.int64)

    def allowed(self, f: Constraints, *, ids: bool = True) -> np.ndarray:
        """Boolean per catalog row: does the item pass the resolved constraints `f` (ignoring
        ids when `ids` is False)?"""
        return self.reasons(f, ids=ids) == 0

    def reasons(self, f: Constraints, *, ids: bool = True) -> np.ndarray:
        """Per catalog row, why the resolved constraints `f` refuse the item, as
        `Constraints.admits` would say it: 1 + its index in `REASONS`, 0 when it passes."""
        code = np.zeros(len(self.catalog), dtype=np.int8)

        def mark(fails: np.ndarray, reason: Reason) -> None:
            code[(code == 0) & fails] = REASONS.index(reason) + 1

        if ids and f.exclude_ids:
            out = np.zeros(len(code), dtype=bool)
            out[self.rows(f.exclude_ids)] = True
            mark(out, "excluded")
        if ids and f.include_ids is not None:
            keep = np.zeros(len(code), dtype=bool)
            keep[self.rows(f.include_ids)] = True
            mark(~keep, "not_included")
        if f.genres_all or f.genres_any:
            ok = np.ones(len(code), dtype=bool)
            if f.genres_all:
                ok &= self._all(f.genres_all)
            if f.genres_any:
                ok &= self._any(f.genres_any)
            mark(~ok, "genre")
        if f.genres_none:
            mark(self._any(f.genres_none), "excluded_genre")
        if f.year_min is not None:
            mark((self.years < f.year_min) | (self.years < 0), "year")
        if f.year_max is not None:
            mark((self.years > f.year_max) | (self.years < 0), "year")
        return code


_MASKS: WeakKeyDictionary[Catalog, CatalogMask] = WeakKeyDictionary()
_MASKS_LOCK = threading.Lock()


def catalog_mask(catalog: Catalog) -> CatalogMask:
    """The mask of `catalog`, built once (a million items take about a second)."""
    with _MASKS_LOCK:
        mask = _MASKS.get(catalog)
        if mask is None:
            mask = _MASKS[catalog] = CatalogMask(catalog)
        return mask


__all__ = [
    "GENRE_PREFIX",
    "REASONS",
    "CatalogMask",
    "catalog_mask",
    "genre_key",
    "item_metadata",
    "where_clause",
]
