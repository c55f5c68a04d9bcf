"""Reading requests: counts, genres in and out, years, titles, refinements."""

from __future__ import annotations

import pytest

from recagent.agent.request import MAX_K, RequestParser, clamp_k
from recagent.agent.schema import RankedItem, RankedList
from recagent.agent.session import refine
from recagent.data.genres import GenreResolver

GENRES = [
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
]


@pytest.fixture(scope="module")
def parser() -> RequestParser:
    return RequestParser(GenreResolver(GENRES), latest_year=1998)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "dark sci-fi from the 80s",
            {"query": "dark sci-fi", "genres_all": ["Sci-Fi"], "year_min": 1980, "year_max": 1989},
        ),
        (
            "something like Toy Story but no animation",
            {"reference_titles": ["Toy Story"], "genres_none": ["Animation"], "query": ""},
        ),
        ("5 movies like Heat", {"k": 5, "reference_titles": ["Heat"]}),
        (
            "recommend me 3 romantic comedies from the 90s that I haven't seen",
            {
                "k": 3,
                "genres_all": ["Romance", "Comedy"],
                "year_min": 1990,
                "year_max": 1999,
                "include_seen": False,
            },
        ),
        ("sci-fi or horror, top 20", {"k": 20, "genres_any": ["Sci-Fi", "Horror"]}),
        (
            "non-horror thrillers from the 90's",
            {"genres_all": ["Thriller"], "genres_none": ["Horror"]},
        ),
        ("movies before 1970 without musicals", {"year_max": 1969, "genres_none": ["Musical"]}),
        ("late 70s crime", {"year_min": 1975, "year_max": 1979, "genres_all": ["Crime"]}),
        ("a feel-good comedy I can rewatch", {"include_seen": True, "query": "feel-good comedy"}),
        ("films like Toy Story and Aladdin", {"reference_titles": ["Toy Story", "Aladdin"]}),
        ("I like horror movies", {"reference_titles": [], "genres_all": ["Horror"]}),
        ("Toy Story 2 but not animated", {"k": None, "genres_none": ["Animation"]}),
        ("something recent", {"year_min": 1994}),
    ],
)
def test_parse(parser: RequestParser, message: str, expected: dict) -> None:
    request = parser.parse(message)
    for key, value in expected.items():
        assert getattr(request, key) == value, (key, request)


@pytest.mark.parametrize(
    ("message", "flag"),
    [
        ("more like the second one", "more_like_rank"),
        ("older ones", "older"),
        ("newer ones please", "newer"),
        ("no horror", "genres_none"),
        ("more", "more"),
    ],
)
def test_refinements_are_recognised(parser: RequestParser, message: str, flag: str) -> None:
    request = parser.parse(message)
    assert request.is_refinement
    assert getattr(request, flag)


def test_new_requests_are_not_refinements(parser: RequestParser) -> None:
    assert not parser.parse("dark sci-fi from the 80s").is_refinement
    assert not parser.parse("something like Heat").is_refinement


def test_refine_merges_with_previous(parser: RequestParser) -> None:
    first = parser.parse("dark sci-fi from the 80s")
    items = [
        RankedItem(rank=i, item_id=str(i), title=f"T{i}", year=y, explanation="x")
        for i, y in enumerate([1982, 1985, 1988], start=1)
    ]
    last = RankedList(items=items, mode="planner")
    no_horror = refine(parser.parse("no horror"), first, last)
    assert no_horror.genres_none == ["Horror"] and no_horror.query == "dark sci-fi"
    assert (no_horror.year_min, no_horror.year_max) == (1980, 1989)
    older = refine(parser.parse("older ones"), first, last)
    assert older.year_max == 1984 and older.year_min is None and older.query == "dark sci-fi"
    second = refine(parser.parse("more like the second one"), first, last)
    assert second.more_like_rank == 2 and second.query == ""


def test_long_message_is_trimmed_with_notice(parser: RequestParser) -> None:
    request = parser.parse("horror " * 4000)
    assert len(request.text) <= 2000
    assert any("trimmed" in n for n in request.notices)


@pytest.mark.parametrize(
    ("k", "expected", "noticed"), [(0, 1, True), (1000, MAX_K, True), (7, 7, False)]
)
def test_k_is_clamped_and_said(k: int, expected: int, noticed: bool) -> None:
    notices: list[str] = []
    assert clamp_k(k, notices) == expected
    assert bool(notices) == noticed
