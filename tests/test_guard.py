"""The grounding guard repairs every kind of bad answer and counts what it repaired."""

from __future__ import annotations

from pathlib import Path

import pytest

from recagent.agent.conversation import Conversation
from recagent.agent.guard import Guard
from recagent.agent.ranking import Ranking
from recagent.agent.request import Mention, Request
from recagent.agent.schema import FinalPick
from recagent.agent.turn import AskOptions, Turn, build_turn
from recagent.data.constraints import Constraints
from recagent.data.dataset import Dataset
from recagent.data.prepare import PrepareConfig, prepare
from recagent.tools.base import Evidence, ToolContext
from recagent.workspace import Workspace
from tests.conftest import write_ml100k

# ids 1..8; genre positions: 11 = Horror, 15 = Sci-Fi, 3 = Animation
ITEMS = [
    (1, "Alien (1979)", [11, 15]),
    (2, "Blade Runner (1982)", [15]),
    (3, "The Terminator (1984)", [1, 15]),
    (4, "Toy Story (1995)", [3, 5]),
    (5, "Heat (1995)", [1, 6]),
    (6, "Brazil (1985)", [15]),
    (7, "Aliens (1986)", [1, 15]),
    (8, "Tron (1982)", [15]),
]


@pytest.fixture
def ctx(tmp_path: Path) -> ToolContext:
    ratings = [(1, i, 4, i) for i in range(1, 9)] + [(2, 1, 5, 1), (2, 5, 5, 2), (2, 4, 3, 3)]
    src = write_ml100k(tmp_path / "g", ratings, items=ITEMS)
    ds: Dataset = prepare(PrepareConfig(dataset="ml-100k", source=src), Workspace(tmp_path / "w"))
    context = ToolContext(dataset=ds, user_id="2", history=["1", "5", "4"])
    for rank, item_id in enumerate(["2", "3", "6", "7", "8", "4"], start=1):
        context.candidates.add(
            item_id,
            Evidence(
                tool="search_items",
                kind="text_match",
                score=1 / rank,
                rank=rank,
                because_of=["1"] if item_id == "7" else [],
            ),
        )
    return context


POOL = ["2", "3", "6", "7", "8", "4"]
RANKING = Ranking(scores={i: float(len(POOL) - n) for n, i in enumerate(POOL)}, order=POOL)


def _turn(ctx: ToolContext, request: Request | None = None, k: int = 3, reference_ids=()) -> Turn:
    """The turn the session builds for `request` (`reference_ids`: titles it names as "like
    this"), with `ctx.history` as the person's history."""
    request = (request or Request(text="x")).model_copy(deep=True)
    request.mentions += [
        Mention(title=ctx.catalog[i].title, item_id=i, feeling="like_this") for i in reference_ids
    ]
    conversation = Conversation(dataset=ctx.dataset.name)
    options = AskOptions(history=list(ctx.history))
    return build_turn(request, k, options, conversation, ctx.dataset, [], [], [])


def _run(
    ctx: ToolContext, picks: list[FinalPick], request: Request | None = None, k: int = 3, **kw
):
    guard = Guard(ctx, _turn(ctx, request, k, **kw))
    return guard.check(picks, RANKING, explain=lambda i: f"because {i}")


def test_good_answer_passes_untouched(ctx: ToolContext) -> None:
    picks = [FinalPick(item_id=i, explanation="Matches the request.") for i in ["2", "3", "6"]]
    result = _run(ctx, picks)
    assert [it.item_id for it in result.items] == ["2", "3", "6"]
    assert not result.repairs
    assert result.items[0].evidence[0].tool == "search_items"


def test_every_violation_is_repaired_and_counted(ctx: ToolContext) -> None:
    picks = [
        FinalPick(item_id="999"),  # not in the catalog
        FinalPick(item_id="5"),  # seen, and never returned by a tool
        FinalPick(item_id="1"),  # seen
        FinalPick(item_id="2"),
        FinalPick(item_id="2"),  # duplicate
    ]
    ctx.candidates.add("1", Evidence(tool="search_items", kind="text_match", score=0.1))
    result = _run(ctx, picks)
    assert [it.item_id for it in result.items] == ["2", "3", "6"]
    assert result.repairs == {
        "unknown_item": 1,
        "not_from_tool": 1,
        "seen": 1,
        "duplicate": 1,
        "backfilled": 2,
    }


def test_constraints_and_reference_items(ctx: ToolContext) -> None:
    request = Request(
        text="x",
        constraints=Constraints(
            genres_all=["Sci-Fi"], genres_none=["Horror"], year_min=1980, year_max=1985
        ),
        include_seen=True,
    )
    picks = [FinalPick(item_id=i) for i in ["4", "7", "8", "2"]]
    result = _run(ctx, picks, request, k=3, reference_ids=["2"])
    ids = [it.item_id for it in result.items]
    assert ids == ["3", "6", "8"]  # ordered by tool score, not by the picks
    assert result.repairs["genre"] == 1  # Toy Story: not Sci-Fi
    assert result.repairs["year"] == 1  # Aliens: 1986
    assert result.repairs["reference_item"] == 1  # Blade Runner was the reference
    for it in result.items:
        assert "Sci-Fi" in it.genres and "Horror" not in it.genres and 1980 <= it.year <= 1985


def test_count_is_honoured_or_shortfall_said(ctx: ToolContext) -> None:
    many = [FinalPick(item_id=i) for i in POOL]
    assert len(_run(ctx, many, k=2).items) == 2
    short = _run(ctx, [], k=10)
    assert len(short.items) == 5  # 6 candidates minus the seen Toy Story
    assert short.notices == ["only 5 item(s) match the request (asked for 10)"]


def test_seen_items_allowed_when_asked(ctx: ToolContext) -> None:
    result = _run(ctx, [FinalPick(item_id="4")], Request(text="x", include_seen=True), k=1)
    assert [it.item_id for it in result.items] == ["4"]


def test_unfaithful_explanation_is_rewritten(ctx: ToolContext) -> None:
    picks = [
        FinalPick(item_id="7", explanation="Because you loved Alien."),  # Alien is in the history
        FinalPick(item_id="6", explanation="Just like Blade Runner, which you rated 5."),  # not
    ]
    result = _run(ctx, picks, k=2)
    by_id = {it.item_id: it for it in result.items}
    assert by_id["7"].explanation == "Because you loved Alien."
    assert by_id["6"].explanation == "because 6"
    assert result.repairs["unfaithful_explanation"] == 1


def test_title_given_instead_of_id(ctx: ToolContext) -> None:
    result = _run(ctx, [FinalPick(item_id="Blade Runner")], k=1)
    assert [it.item_id for it in result.items] == ["2"]
    assert result.repairs["title_as_id"] == 1


@pytest.mark.parametrize(
    ("text", "faithful"),
    [
        ("A 1986 sci-fi action film, ranked #4 by the search.", True),
        ("A romantic comedy.", False),  # Aliens is not Romance or Comedy
        ("Released in 1990.", False),  # Aliens is from 1986
        ("Ranked 9th for you.", False),  # no evidence has rank 9
        ("Close to Alien, which you watched.", True),  # Alien is in the history
    ],
)
def test_explanation_claims_are_checked(ctx: ToolContext, text: str, faithful: bool) -> None:
    guard = Guard(ctx, _turn(ctx, k=1))
    assert guard.faithful("7", text, rank=1) is faithful


def test_title_line_is_not_an_explanation(ctx: ToolContext) -> None:
    picks = [
        FinalPick(item_id="7", explanation="Aliens (1986), Action, Sci-Fi"),
        FinalPick(item_id="6", explanation="Brazil (1985) - Sci-Fi."),
        FinalPick(item_id="2", explanation="Its search rank and your Alien both point here."),
    ]
    result = _run(ctx, picks, k=3)
    by_id = {it.item_id: it.explanation for it in result.items}
    assert by_id["7"] == "because 7" and by_id["6"] == "because 6"
    assert by_id["2"].startswith("Its search rank")
    assert result.repairs["empty_explanation"] == 2


@pytest.mark.parametrize(
    ("message", "holds"),
    [
        ("Three sci-fi picks for you.", True),  # every item is Sci-Fi
        ("These movies are all dark sci-fi comedies suitable for families.", False),
        ("Classics from 1982 and 1985.", True),
        ("Classics from 1999.", False),
        ("Blade Runner is ranked #1.", False),  # no rank claims in a message
        ("If you liked Alien, try these.", True),  # Alien is in the history
        ("Like The Terminator and Aliens.", False),  # Aliens is not in the list
    ],
)
def test_message_claims_are_checked(ctx: ToolContext, message: str, holds: bool) -> None:
    guard = Guard(ctx, _turn(ctx))
    items = guard.check([], RANKING, explain=lambda i: "x").items  # 2, 3, 6: all Sci-Fi
    assert [it.item_id for it in items] == ["2", "3", "6"]
    assert guard.message_holds(message, items) is holds
