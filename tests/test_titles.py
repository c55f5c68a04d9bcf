"""Finding titles as people write them, and other editions of the same work."""

from __future__ import annotations

import pytest

from recagent.data.catalog import Catalog, Item
from recagent.data.titles import TitleIndex

CATALOG = Catalog(
    [
        Item(item_id="1", title="Avengers: Infinity War - Part I", year=2018),
        Item(item_id="2", title="The Avengers", year=2012),
        Item(item_id="3", title="Iron Man 2", year=2010),
        Item(item_id="4", title="It", year=2017),
        Item(item_id="5", title="It", year=1990),
        Item(item_id="6", title="Dumb & Dumber (Dumb and Dumber)", year=1994),
        Item(item_id="7", title="Halo 4", year=2012),
        Item(item_id="8", title="Halo 4 (Xbox 360)", year=2012),
        Item(item_id="9", title="Battlefield 1 - Deluxe Edition", year=2016),
        Item(item_id="10", title="Battlefield 1", year=2016),
        Item(item_id="11", title="Some Like It Hot", year=1959),
        Item(item_id="12", title="Star Wars: Episode IV - A New Hope", year=1977),
        Item(item_id="13", title="Star Wars: Episode V - The Empire Strikes Back", year=1980),
    ]
)
TITLES = TitleIndex(CATALOG)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        (
            "Tell me any movie Like Avengers: Infinity War (2018)",
            [("1", "Avengers: Infinity War (2018)")],
        ),
        ("i watched Iron Man 2 (2010) and liked it", [("3", "Iron Man 2 (2010)")]),
        ("have you seen It (2017) or It (1990)?", [("4", "It (2017)"), ("5", "It (1990)")]),
        ("I liked Dumb and Dumber (1994)", [("6", "Dumb and Dumber (1994)")]),
        ("and The Mask (1994) was fun", []),  # not in this catalog: nothing guessed
    ],
)
def test_titles_with_years(text: str, found: list[tuple[str, str]]) -> None:
    spans = TITLES.with_years(text)
    assert [(s.item_id, text[s.start : s.end]) for s in spans] == found


@pytest.mark.parametrize(
    ("query", "best"),
    [
        ("dumb and dumber", "6"),
        ("star wars", "12"),
        ("the empire strikes back", "13"),
        ("infinity war", "1"),
        ("iron man 2", "3"),
    ],
)
def test_search_knows_other_names(query: str, best: str) -> None:
    assert TITLES.search(query, limit=1)[0].item_id == best


def test_a_stop_word_pair_is_not_a_title() -> None:
    assert [h.item_id for h in TITLES.search("like it", limit=3, min_score=92)] == []


def test_other_editions_are_the_same_work() -> None:
    assert TITLES.other_editions(["7"]) == {"8"}
    assert TITLES.other_editions(["8"]) == {"7"}
    assert TITLES.other_editions(["10"]) == {"9"}
    assert TITLES.other_editions(["4"]) == set()  # the 2017 remake is not the 1990 It
    assert TITLES.other_editions(["12"]) == set()
