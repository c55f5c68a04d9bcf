"""The offline reader: counts, genres in and out, years, titles with how the person feels
about each, refinements, and the misreadings real requests used to cause."""

from __future__ import annotations

import pytest

from recagent.agent.request import MAX_K, Request, clamp_k, refine
from recagent.agent.rules import RuleReader
from recagent.data.catalog import Catalog, Item
from recagent.data.genres import GenreResolver
from recagent.data.titles import TitleIndex

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
TITLES = [
    ("1", "Toy Story", 1995, ("Animation", "Children's", "Comedy")),
    ("2", "Heat", 1995, ("Action", "Crime", "Thriller")),
    ("3", "Aladdin", 1992, ("Animation", "Children's", "Comedy", "Musical")),
    ("4", "Star Wars: Episode IV - A New Hope", 1977, ("Action", "Adventure", "Sci-Fi", "War")),
    ("5", "The Matrix", 1999, ("Action", "Sci-Fi", "Thriller")),
    ("6", "Alien", 1979, ("Horror", "Sci-Fi")),
    ("7", "Titanic", 1997, ("Drama", "Romance")),
    ("8", "Iron Man 2", 2010, ("Action", "Sci-Fi")),
    ("9", "Super Troopers", 2001, ("Comedy", "Crime")),
    ("10", "American Pie", 1999, ("Comedy", "Romance")),
    ("11", "It", 2017, ("Horror",)),
    ("12", "Dumb & Dumber (Dumb and Dumber)", 1994, ("Comedy",)),
    ("13", "Toy Story 2", 1999, ("Animation", "Children's", "Comedy")),
    ("14", "Documentary Now", 2015, ("Documentary",)),
    ("15", "Casablanca", 1942, ("Drama", "Romance", "War")),
]
CATALOG = Catalog(
    [Item(item_id=i, title=t, year=y, genres=g) for i, t, y, g in TITLES]
    + [
        Item(item_id=f"x{n}", title=f"Filler {n}", year=1990, genres=(g,))
        for n, g in enumerate(GENRES)
    ]
)


@pytest.fixture(scope="module")
def reader() -> RuleReader:
    return RuleReader(CATALOG, TitleIndex(CATALOG), GenreResolver(GENRES))


def _get(request: Request, key: str) -> object:
    if key == "reference_titles":
        return request.reference_titles
    if hasattr(request.constraints, key):
        return getattr(request.constraints, key)
    return getattr(request, key)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "dark sci-fi from the 80s",
            {"query": "dark", "genres_all": ["Sci-Fi"], "year_min": 1980, "year_max": 1989},
        ),
        (
            "something like Toy Story but no animation",
            {"reference_titles": ["Toy Story (1995)"], "genres_none": ["Animation"], "query": ""},
        ),
        ("5 movies like Heat", {"k": 5, "reference_titles": ["Heat (1995)"]}),
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
        ("a feel-good comedy I can rewatch", {"include_seen": True, "query": "feel-good"}),
        ("I like horror movies", {"query": "", "genres_all": ["Horror"]}),
        (
            "films like Toy Story and Aladdin",
            {"reference_titles": ["Toy Story (1995)", "Aladdin (1992)"]},
        ),
        ("I like horror movies", {"reference_titles": [], "genres_all": ["Horror"]}),
        ("something recent", {"year_min": 2013}),
        # the misreadings of issue 10
        ("not Star Wars, nothing too violent", {"genres_none": [], "query": ""}),
        (
            "I hate horror. Give me some comedies",
            {"genres_all": ["Comedy"], "genres_none": ["Horror"]},
        ),
        (
            "something like Toy Story but darker",
            {"query": "darker", "reference_titles": ["Toy Story (1995)"]},
        ),
        ("something like Cooking Pasta", {"reference_titles": [], "query": "Cooking Pasta"}),
    ],
)
def test_read(reader: RuleReader, message: str, expected: dict) -> None:
    request = reader.read(message)
    for key, value in expected.items():
        assert _get(request, key) == value, (key, request)


@pytest.mark.parametrize(
    ("message", "feelings"),
    [
        ("Hi I am looking for a movie like Super Troopers (2001)", {"9": "like_this"}),
        ("I have never seen it. I have seen American Pie (1999)", {"10": "seen"}),
        ("i watched Iron Man 2 and liked it, which other one would you recommend?", {"8": "liked"}),
        ("I just watched The Matrix and loved it", {"5": "loved"}),
        ("I didn't like Titanic (1997) but I loved Alien", {"7": "disliked", "6": "loved"}),
        ("anything but Titanic please", {"7": "disliked"}),
        ("No, i have not seen It (2017) But i'll try", {"11": "not_seen"}),
        ("I like movies like Dumb and Dumber (1994)", {"12": "like_this"}),
        ("not Star Wars", {"4": "disliked"}),
        ("Spider-Man: Homecoming (2017) was awesome", {}),  # not in the catalog: no guess
    ],
)
def test_titles_and_feelings(reader: RuleReader, message: str, feelings: dict[str, str]) -> None:
    request = reader.read(message)
    assert {m.item_id: m.feeling for m in request.mentions} == feelings


def test_just_watched_is_a_history_not_a_search(reader: RuleReader) -> None:
    request = reader.read("I just watched Toy Story 2 and loved it")
    assert request.query == ""
    assert [(m.item_id, m.feeling) for m in request.mentions] == [("13", "loved")]


def test_the_other_side_only_suggests(reader: RuleReader) -> None:
    request = reader.read("Have you seen It (2017)? You would like scary ones", role="assistant")
    assert [(m.item_id, m.feeling) for m in request.mentions] == [("11", "suggested")]
    assert request.constraints.is_empty() and not request.query


@pytest.mark.parametrize(
    ("message", "flag"),
    [
        ("more like the second one", "more_like_rank"),
        ("older ones", "older"),
        ("newer ones please", "newer"),
        ("no horror", "genres_none"),
        ("more", "more"),
        ("not the third one", "mentions"),
    ],
)
def test_refinements_are_recognised(reader: RuleReader, message: str, flag: str) -> None:
    request = reader.read(message)
    assert request.is_refinement
    assert _get(request, flag)


def test_a_rank_with_a_feeling(reader: RuleReader) -> None:
    [mention] = reader.read("not the third one").mentions
    assert (mention.rank, mention.feeling) == (3, "disliked")
    assert [(m.rank, m.feeling) for m in reader.read("seen them all").mentions] == [(0, "seen")]


def test_new_requests_are_not_refinements(reader: RuleReader) -> None:
    assert not reader.read("dark sci-fi from the 80s").is_refinement
    assert not reader.read("something like Heat").is_refinement


def test_refine_merges_with_previous(reader: RuleReader) -> None:
    first = reader.read("dark sci-fi from the 80s")
    years = [1982, 1985, 1988]
    no_horror = refine(reader.read("no horror"), first, years)
    assert no_horror.constraints.genres_none == ["Horror"] and no_horror.query == "dark"
    assert (no_horror.constraints.year_min, no_horror.constraints.year_max) == (1980, 1989)
    older = refine(reader.read("older ones"), first, years)
    assert older.constraints.year_max == 1984 and older.constraints.year_min is None
    assert older.query == "dark"
    second = refine(reader.read("more like the second one"), first, years)
    assert second.more_like_rank == 2 and second.query == ""


def test_long_message_is_trimmed_with_notice(reader: RuleReader) -> None:
    request = reader.read("horror " * 4000)
    assert len(request.text) <= 2000
    assert any("trimmed" in n for n in request.notices)


@pytest.mark.parametrize(
    ("k", "expected", "noticed"), [(0, 1, True), (1000, MAX_K, True), (7, 7, False)]
)
def test_k_is_clamped_and_said(k: int, expected: int, noticed: bool) -> None:
    notices: list[str] = []
    assert clamp_k(k, notices) == expected
    assert bool(notices) == noticed
