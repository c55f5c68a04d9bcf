"""The one constraints model: genre names people type, `admits` with its reasons, and the
same predicate as a Chroma `where` clause and as a catalog mask."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from recagent.data.catalog import Catalog, Item
from recagent.data.constraints import ConstraintError, Constraints
from recagent.index.filters import CatalogMask, item_metadata, where_clause

GENRES = ["Action", "Children's", "Comedy", "Film-Noir", "Horror", "Romance", "Sci-Fi"]
CATALOG = Catalog(
    [
        Item(item_id="a", title="A", year=1990, genres=("Action", "Sci-Fi")),
        Item(item_id="b", title="B", year=2000, genres=("Comedy",)),
        Item(item_id="c", title="C", genres=("Horror",)),
        Item(item_id="d", title="D", year=1970, genres=("Romance", "Comedy")),
        Item(item_id="e", title="E", year=1980, genres=tuple(GENRES)),
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
    assert Constraints(genres_any=[typed]).resolve(CATALOG).genres_any == [genre]


def test_unknown_genre_lists_the_valid_ones() -> None:
    with pytest.raises(ConstraintError, match=r"unknown genre 'cooking'; valid genres: Action, "):
        Constraints(genres_none=["cooking"]).resolve(CATALOG)


def test_admits_says_why() -> None:
    c = Constraints(
        genres_any=["comedy", "sci fi"], genres_none=["romance"], year_min=1980, exclude_ids=["e"]
    ).resolve(CATALOG)
    assert [c.admits(it) for it in CATALOG] == [None, None, "genre", "excluded_genre", "excluded"]
    both = Constraints(genres_all=["action", "sci-fi"]).resolve(CATALOG)
    assert [both.admits(it) is None for it in CATALOG] == [True, False, False, False, True]
    years = Constraints(year_max=1985).resolve(CATALOG)
    assert [years.admits(it) for it in CATALOG] == ["year", "year", "year", None, None]
    only = Constraints(include_ids=["a"]).resolve(CATALOG)
    assert only.admits(CATALOG["b"]) == "not_included"


def test_where_clause_encoding() -> None:
    c = Constraints(genres_any=["comedy", "horror"], genres_none=["romance"], year_min=1980)
    assert where_clause(c.resolve(CATALOG)) == {
        "$and": [
            {"$or": [{"genre:Comedy": True}, {"genre:Horror": True}]},
            {"genre:Romance": {"$ne": True}},
            {"year": {"$gte": 1980}},
        ]
    }
    both = Constraints(genres_all=["comedy", "horror"]).resolve(CATALOG)
    assert where_clause(both) == {"$and": [{"genre:Comedy": True}, {"genre:Horror": True}]}
    single = Constraints(exclude_ids=["b"]).resolve(CATALOG)
    assert where_clause(single) == {"item_id": {"$nin": ["b"]}}
    assert where_clause(Constraints().resolve(CATALOG)) is None
    assert item_metadata("c", None, ("Horror",)) == {"item_id": "c", "genre:Horror": True}


def test_mask_agrees_with_admits() -> None:
    mask = CatalogMask(CATALOG)
    cases = [
        Constraints(genres_any=["comedy"]),
        Constraints(genres_all=["comedy", "romance"]),
        Constraints(genres_none=["comedy"]),
        Constraints(year_min=1980),  # unknown years never pass a year filter
        Constraints(year_max=1995),
        Constraints(include_ids=["a", "c"], exclude_ids=["c"]),
    ]
    for c in cases:
        r = c.resolve(CATALOG)
        by_mask = [CATALOG.id_at(i + 1) for i, ok in enumerate(mask.allowed(r)) if ok]
        assert by_mask == [it.item_id for it in CATALOG if r.admits(it) is None], c


def test_excluding_keeps_the_resolution() -> None:
    c = Constraints(genres_any=["sci fi"]).resolve(CATALOG).excluding(["a"])
    assert c.genres_any == ["Sci-Fi"] and c.exclude_ids == ["a"]
    assert [it.item_id for it in CATALOG if c.admits(it) is None] == ["e"]


def test_bad_constraints() -> None:
    with pytest.raises(ValidationError, match="after year_max"):
        Constraints(year_min=2000, year_max=1990)
    with pytest.raises(ConstraintError, match="'zz'"):
        Constraints(exclude_ids=["zz"]).resolve(CATALOG)
    with pytest.raises(ValidationError):
        Constraints(genre=["x"])  # type: ignore[call-arg]
