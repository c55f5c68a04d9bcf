"""Filters: genre names people type, the Chroma `where` encoding, and the catalog mask."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from recagent.data.catalog import Catalog, Item
from recagent.index.filters import (
    CatalogMask,
    FilterError,
    ItemFilters,
    ResolvedFilters,
    item_metadata,
    resolve_genre,
)

GENRES = ["Action", "Children's", "Comedy", "Film-Noir", "Horror", "Romance", "Sci-Fi"]
CATALOG = Catalog(
    [
        Item(item_id="a", title="A", year=1990, genres=("Action", "Sci-Fi")),
        Item(item_id="b", title="B", year=2000, genres=("Comedy",)),
        Item(item_id="c", title="C", genres=("Horror",)),
        Item(item_id="d", title="D", year=1970, genres=("Romance", "Comedy")),
    ]
)


@pytest.mark.parametrize(
    ("typed", "genre"),
    [
        ("sci fi", "Sci-Fi"),
        ("SCIFI", "Sci-Fi"),
        ("science fiction", "Sci-Fi"),
        ("comedies", "Comedy"),
        ("kids", "Children's"),
        ("children", "Children's"),
        ("noir", "Film-Noir"),
        ("romantic", "Romance"),
        ("horror", "Horror"),
    ],
)
def test_genre_spellings(typed: str, genre: str) -> None:
    assert resolve_genre(typed, GENRES) == genre


def test_unknown_genre_lists_the_valid_ones() -> None:
    with pytest.raises(FilterError, match=r"unknown genre 'cooking'; valid genres: Action, "):
        resolve_genre("cooking", GENRES)


def test_where_clause_encoding() -> None:
    f = ResolvedFilters.of(
        ItemFilters(genres_any=["comedy", "horror"], genres_none=["romance"], year_min=1980),
        CATALOG,
    )
    assert f.where_clause() == {
        "$and": [
            {"$or": [{"genre:Comedy": True}, {"genre:Horror": True}]},
            {"genre:Romance": {"$ne": True}},
            {"year": {"$gte": 1980}},
        ]
    }
    single = ResolvedFilters.of(ItemFilters(exclude_ids=["b"]), CATALOG)
    assert single.where_clause() == {"item_id": {"$nin": ["b"]}}
    assert ResolvedFilters.of(ItemFilters(), CATALOG).where_clause() is None
    assert item_metadata("c", None, ("Horror",)) == {"item_id": "c", "genre:Horror": True}


def test_mask_matches_the_filters() -> None:
    mask = CatalogMask(CATALOG)

    def kept(**kw: object) -> list[str]:
        f = ResolvedFilters.of(ItemFilters(**kw), CATALOG)
        return [CATALOG.id_at(i + 1) for i, ok in enumerate(mask.allowed(f)) if ok]

    assert kept(genres_any=["comedy"]) == ["b", "d"]
    assert kept(genres_none=["comedy"]) == ["a", "c"]
    assert kept(year_min=1980) == ["a", "b"]  # unknown years never pass a year filter
    assert kept(year_max=1995) == ["a", "d"]
    assert kept(include_ids=["a", "c"], exclude_ids=["c"]) == ["a"]


def test_bad_filters() -> None:
    with pytest.raises(ValidationError, match="after year_max"):
        ItemFilters(year_min=2000, year_max=1990)
    with pytest.raises(FilterError, match="'zz'"):
        ResolvedFilters.of(ItemFilters(exclude_ids=["zz"]), CATALOG)
    with pytest.raises(ValidationError):
        ItemFilters(genre=["x"])  # type: ignore[call-arg]
