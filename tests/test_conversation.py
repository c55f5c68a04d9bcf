"""Conversation memory on ML-100k: what a person says they loved becomes a history SASRec
scores, what they disliked never comes back, a dialogue that already happened can be
replayed, and with nothing asked the planner defers to SASRec."""

from __future__ import annotations

import json

import pytest

from recagent.agent.session import ChatSession
from recagent.config import AgentConfig
from recagent.data.pairs import ItemPairs, PairsConfig
from recagent.data.popularity import popularity
from recagent.prompts.registry import PromptRegistry
from tests.conftest import Stack

STAR_WARS, EMPIRE, JEDI, RAIDERS = "50", "172", "181", "174"


@pytest.fixture(scope="module")
def pairs(ml100k_stack: Stack) -> ItemPairs:
    return ItemPairs.build(ml100k_stack.dataset, PairsConfig(), train_only=False)


@pytest.fixture
def session(ml100k_stack: Stack, pairs: ItemPairs) -> ChatSession:
    s = ChatSession(
        ml100k_stack.dataset,
        PromptRegistry(),
        AgentConfig(),
        scorer=ml100k_stack.scorer,
        index=ml100k_stack.index,
        pairs=pairs,
        popularity=popularity(ml100k_stack.dataset, half_life_days=90),
    )
    s.set_user(None)
    return s


def test_a_new_user_who_names_loved_movies_gets_them_scored(session: ChatSession) -> None:
    ranked = session.ask(
        "I loved Star Wars (1977), The Empire Strikes Back (1980) and Raiders of the Lost "
        "Ark (1981). What next?"
    )
    loved = {STAR_WARS, EMPIRE, RAIDERS}
    assert session.ctx.history == [STAR_WARS, EMPIRE, RAIDERS]
    assert ranked.learned is not None
    assert {it.item_id for it in ranked.learned.items if it.feeling == "loved"} == loved
    assert len(ranked.items) == 10 and not loved & {it.item_id for it in ranked.items}
    for item in ranked.items:
        sequential = [ev for ev in item.evidence if ev.kind == "sequential"]
        assert sequential, f"{item.title} was not scored by SASRec"
        assert sequential[0].because_of and set(sequential[0].because_of) <= loved
    cited = {b for it in ranked.items for ev in it.evidence for b in ev.because_of}
    assert cited & loved
    assert any(
        any(t in it.explanation for t in ("Star Wars", "Empire", "Raiders")) for it in ranked.items
    )


def test_a_disliked_movie_never_comes_back(session: ChatSession) -> None:
    first = session.ask("I loved Star Wars (1977); more like it")
    assert JEDI in [it.item_id for it in first.items]  # a strong neighbour of Star Wars
    second = session.ask("I didn't like Return of the Jedi (1983). Something else?")
    assert JEDI not in [it.item_id for it in second.items]
    for message in ("more", "space adventures", "more like the first one", ""):
        later = session.ask(message)
        assert JEDI not in [it.item_id for it in later.items], message
    assert session.conversation.feelings[JEDI] == "disliked"


def test_rejecting_a_suggestion_by_its_place(session: ChatSession) -> None:
    first = session.ask("I loved Star Wars (1977)")
    third = first.items[2].item_id
    second = session.ask("not the third one")
    assert third not in [it.item_id for it in second.items]
    assert session.conversation.feelings[third] == "disliked"


def test_replaying_a_dialogue(session: ChatSession) -> None:
    from recagent.agent.request import ChatMessage

    message = session.replay(
        [
            ChatMessage(role="user", text="Hi! I like sci-fi, like Star Wars (1977)"),
            ChatMessage(role="assistant", text="Have you seen Return of the Jedi (1983)?"),
            ChatMessage(role="user", text="Yes, loved it. Anything else?"),
        ]
    )
    assert message == "Yes, loved it. Anything else?"  # the turn to answer, not observed
    ranked = session.ask(message)
    assert session.conversation.feelings == {STAR_WARS: "like_this", JEDI: "loved"}
    assert session.conversation.liked_genres["Sci-Fi"] == 1
    assert not {STAR_WARS, JEDI} & {it.item_id for it in ranked.items}


def test_with_nothing_asked_the_planner_defers_to_sasrec(session: ChatSession) -> None:
    session.set_user("42")
    ranked = session.ask("")
    seen = set(session.user_history)
    best = [i for i, _ in session.ctx.scorer.recommend(session.user_history, 10, exclude=seen)]
    assert [it.item_id for it in ranked.items] == best


def test_recommend_answers_the_next_turn_of_a_dialogue_file(
    cli, ml100k_stack: Stack, tmp_path
) -> None:
    dialogue = tmp_path / "dialogue.json"
    dialogue.write_text(
        json.dumps(
            [
                {"role": "user", "text": "I want something like Star Wars (1977)"},
                {"role": "assistant", "text": "Have you seen Return of the Jedi (1983)?"},
                {"role": "user", "text": "I did not like it. Other ideas?"},
            ]
        )
    )
    home = ["--home", str(ml100k_stack.workspace.root)]
    result = cli(*home, "recommend", "--dialogue", str(dialogue), "--json", "--k", "5")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    ids = [it["item_id"] for it in answer["items"]]
    assert len(ids) == 5 and JEDI not in ids and STAR_WARS not in ids
    assert {(i["item_id"], i["feeling"]) for i in answer["learned"]["items"]} == {
        (STAR_WARS, "like_this"),
        (JEDI, "disliked"),
    }
    bad = tmp_path / "bad.json"
    bad.write_text('[{"role": "narrator", "text": "x"}]')
    failed = cli(*home, "recommend", "--dialogue", str(bad))
    assert failed.exit_code == 2 and "bad.json" in failed.stderr
    assert "Traceback" not in failed.output


def test_the_flag_count_wins_and_says_so(session: ChatSession) -> None:
    ranked = session.ask("recommend three sci-fi movies", k=5)
    assert len(ranked.items) == 5
    assert any("asks for 3" in n and "--k 5 wins" in n for n in ranked.notices)
