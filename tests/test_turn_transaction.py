"""The turn as one transaction, and the bugs review found in it: places in "the last answer"
mean the last answer, a turn that fails learns nothing, the run log is written after the
answer leaves, the readers share one vocabulary, explanations name the model that ranked,
the guard reads years without titles and never lets the person's own title pass as a pick,
and tied evidence never ranks by the order tools found it."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest

from recagent.agent import session as session_module
from recagent.agent.conversation import Conversation
from recagent.agent.guard import Guard
from recagent.agent.planner import Explainer
from recagent.agent.ranking import BlendConfig, blend, order_by
from recagent.agent.reading import to_request
from recagent.agent.request import Request
from recagent.agent.rules import RuleReader
from recagent.agent.runlog import RunLog, TurnRecord
from recagent.agent.schema import RankedItem
from recagent.agent.session import ChatSession
from recagent.agent.turn import AskOptions, build_turn
from recagent.agent.vocabulary import says_number
from recagent.config import AgentConfig
from recagent.data.dataset import Dataset
from recagent.data.pairs import ItemPairs, PairsConfig
from recagent.prompts.registry import PromptRegistry
from recagent.tools.base import CandidateSet, Evidence, ToolContext


def _planner(dataset: Dataset, runlog: RunLog | None = None) -> ChatSession:
    pairs = ItemPairs.build(dataset, PairsConfig(), train_only=False)
    s = ChatSession(dataset, PromptRegistry(), AgentConfig(), pairs=pairs, runlog=runlog)
    s.set_user(None)
    return s


def test_not_the_third_one_means_the_last_answer(mini_movies: Dataset) -> None:
    s = _planner(mini_movies)
    first = s.ask("an action or a comedy film", k=4)
    second = s.ask("more", k=4)
    assert len(second.items) == 4
    assert not {i.item_id for i in first.items} & {i.item_id for i in second.items}
    s.ask("not the third one", k=4)
    third = second.items[2].item_id
    assert s.conversation.feelings == {third: "disliked"}


def test_seen_them_all_is_the_last_answer_only(mini_movies: Dataset) -> None:
    s = _planner(mini_movies)
    first = s.ask("an action or a comedy film", k=3)
    second = s.ask("more", k=3)
    s.ask("I've seen them all", k=3)
    seen = {i for i, f in s.conversation.feelings.items() if f == "seen"}
    assert seen == {it.item_id for it in second.items}
    assert not seen & {it.item_id for it in first.items}


def test_a_turn_that_fails_learns_nothing(
    mini_movies: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = _planner(mini_movies)
    s.ask("a drama", k=3)
    before = s.conversation.model_copy(deep=True)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the ranking broke")

    monkeypatch.setattr(session_module, "rank", broken)
    with pytest.raises(RuntimeError):
        s.ask("I loved Heat (1995) and hated Alien (1979); more please", k=3)
    assert s.conversation == before  # neither the feelings nor the answer moved
    monkeypatch.undo()
    after = s.ask("I loved Heat (1995)", k=3)
    assert s.conversation.feelings == {"4": "loved"} and after.items


def test_the_run_log_is_written_after_the_answer_leaves(
    mini_movies: Dataset, tmp_path: Path
) -> None:
    release = threading.Event()
    written: list[TurnRecord] = []

    class SlowLog(RunLog):
        def append(self, record: TurnRecord) -> None:
            release.wait(10)
            written.append(record)
            super().append(record)

    log = SlowLog(tmp_path / "log.sqlite")
    s = _planner(mini_movies, runlog=log)
    ranked = s.ask("a drama", k=3)  # returns while the writer still waits
    assert ranked.items and not written
    release.set()
    log.flush()
    assert [r.message for r in log.last(5)] == ["a drama"]


@pytest.fixture
def reader(mini_movies: Dataset) -> RuleReader:
    return RuleReader(mini_movies.catalog, mini_movies.titles, mini_movies.genres)


def test_i_didnt_like_a_title_is_a_dislike_not_a_reference(reader: RuleReader) -> None:
    for message in ("I didn't like Heat", "I did not like Heat", "I really don't like Heat"):
        request = reader.read(message)
        assert [(m.item_id, m.feeling) for m in request.mentions] == [("4", "disliked")], message
        assert request.reference_titles == []
    assert reader.read("something like Heat").reference_titles == ["Heat (1995)"]


def test_a_year_before_films_is_a_year_not_a_count(reader: RuleReader) -> None:
    request = reader.read("show me 1995 films")
    assert request.k is None
    assert (request.constraints.year_min, request.constraints.year_max) == (1995, 1995)
    assert reader.read("show me 12 films").k == 12


@pytest.mark.parametrize(
    ("message", "count"),
    [("eleven dramas", 11), ("a few comedies", 3), ("thirty films", 30), ("a dozen", 12)],
)
def test_the_models_count_is_kept_when_the_message_says_it_in_words(
    mini_movies: Dataset, reader: RuleReader, message: str, count: int
) -> None:
    assert says_number(message, count)
    repairs: Counter[str] = Counter()
    request = to_request(
        {"count": count}, mini_movies, message, message, reader.read(message), repairs
    )
    assert not isinstance(request, str) and request.k == count
    assert "count_restored" not in repairs


def test_explanations_name_the_model_that_ranked(mini_movies: Dataset) -> None:
    ctx = ToolContext(dataset=mini_movies, history=["1"])
    for n, item_id in enumerate(("2", "3", "4"), start=1):
        ctx.candidates.add(
            item_id,
            Evidence(
                tool="score_candidates", kind="sequential", score=1 / n, rank=n, detail="hstu"
            ),
        )
    turn = build_turn(
        Request(text="x"),
        3,
        AskOptions(history=["1"]),
        Conversation(dataset="mini"),
        mini_movies,
        [],
        [],
        [],
    )
    text = Explainer(PromptRegistry()).explain(ctx, "2", turn)
    assert "HSTU ranks it #1" in text and "SASRec" not in text


def _guard_on(dataset: Dataset, history: list[str], evidence: dict[str, list[str]]) -> Guard:
    ctx = ToolContext(dataset=dataset, history=history)
    for item_id, because in evidence.items():
        ctx.candidates.add(
            item_id, Evidence(tool="similar_items", kind="similar_to_items", because_of=because)
        )
    turn = build_turn(
        Request(text="x"),
        3,
        AskOptions(history=history),
        Conversation(dataset=dataset.name),
        dataset,
        [],
        [],
        [],
    )
    return Guard(ctx, turn)


def test_a_title_with_a_year_in_it_is_no_year_claim(mini_movies: Dataset) -> None:
    catalog = mini_movies.catalog
    odyssey = catalog["5"].model_copy(update={"title": "2001: A Space Odyssey", "year": 1968})
    catalog._items[4] = odyssey
    guard = _guard_on(mini_movies, ["5"], {"3": ["5"]})
    assert guard.faithful("3", "Like 2001: A Space Odyssey, a slow cerebral sci-fi")
    assert not guard.faithful("3", "Like 2001: A Space Odyssey, but from 1975")


def test_the_persons_own_title_is_a_reason_never_a_pick(mini_movies: Dataset) -> None:
    guard = _guard_on(mini_movies, ["1"], {"3": ["1"], "2": ["1"]})  # Toy Story seen
    items = [
        RankedItem(rank=1, item_id="3", title="Blade Runner", genres=["Sci-Fi"], explanation="x"),
        RankedItem(
            rank=2, item_id="2", title="Alien", genres=["Horror", "Sci-Fi"], explanation="x"
        ),
    ]
    assert not guard.message_holds("I recommend Toy Story, Blade Runner and Alien.", items)
    assert guard.message_holds("Since you loved Toy Story, try Blade Runner and Alien.", items)


def test_ties_are_broken_by_the_catalog_not_by_who_found_them_first() -> None:
    def ranked(order: list[str]) -> list[str]:
        candidates = CandidateSet()
        for item_id in order:
            candidates.add(item_id, Evidence(tool="t", kind="text_match", score=0.5))
        scores = blend(candidates, BlendConfig().with_taste)
        assert len(set(scores.values())) == 1  # one tie, shared by all
        return order_by(scores, {"a": 1, "b": 2, "c": 3})

    assert ranked(["c", "a", "b"]) == ranked(["b", "c", "a"]) == ["a", "b", "c"]
