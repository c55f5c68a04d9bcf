"""Requests beyond "N items like this", with the planner on ML-100k: a ranking of the person's
own titles, a verdict on one title, "something between A and B", what is known of their
taste, and why a title was left out; each with the plan that ran. And the packaged requests
protocol: the planner passes at least 90% of its checks with every plan right."""

from __future__ import annotations

import pytest

from recagent.agent.session import ChatSession
from recagent.config import AgentConfig
from recagent.data.pairs import ItemPairs, PairsConfig
from recagent.data.popularity import popularity
from recagent.evals.requests import answer_request, load_request_cases
from recagent.evals.runs import RunConfig
from recagent.prompts.registry import PromptRegistry
from tests.conftest import Stack

HEAT, CASINO, FARGO, ALIEN, TOY_STORY, TITANIC = "273", "693", "100", "183", "1", "313"


@pytest.fixture(scope="module")
def pairs(ml100k_stack: Stack) -> ItemPairs:
    return ItemPairs.build(ml100k_stack.dataset, PairsConfig(), train_only=False)


def _session(stack: Stack, pairs: ItemPairs) -> ChatSession:
    return ChatSession(
        stack.dataset,
        PromptRegistry(),
        AgentConfig(),
        scorer=stack.scorer,  # type: ignore[arg-type]
        index=stack.index,  # type: ignore[arg-type]
        pairs=pairs,
        popularity=popularity(stack.dataset, half_life_days=90),
    )


@pytest.fixture
def session(ml100k_stack: Stack, pairs: ItemPairs) -> ChatSession:
    s = _session(ml100k_stack, pairs)
    s.set_user("42")
    return s


def test_rank_the_persons_own_list(session: ChatSession) -> None:
    ranked = session.ask("rank these for me: Heat, Casino, Fargo")
    assert ranked.kind == "rank"
    assert sorted(it.item_id for it in ranked.items) == sorted([HEAT, CASINO, FARGO])
    scores = [it.score for it in ranked.items]
    assert scores == sorted(scores, reverse=True)  # best first, by the tools' blend
    assert ranked.plan is not None
    scored = [s for s in ranked.plan.steps if s.tool == "score_candidates" and s.ok]
    assert scored and {CASINO, FARGO} <= set(scored[0].args["item_ids"])
    # nothing about the ranking is learned as a feeling
    assert not session.conversation.feelings


def test_a_verdict_on_one_title(session: ChatSession) -> None:
    seen = session.ask("is Heat a good pick for me?")  # user 42 has seen Heat
    assert seen.kind == "judge" and seen.verdict is not None
    assert seen.verdict.item_id == HEAT and seen.verdict.label == "seen"
    fresh = session.ask("would I like Casino?")
    verdict = fresh.verdict
    assert verdict is not None and verdict.item_id == CASINO
    assert verdict.label in ("good_pick", "maybe", "not_for_you")
    assert verdict.catalog_rank is not None and verdict.catalog_size is not None
    assert f"#{verdict.catalog_rank} of {verdict.catalog_size:,}" in " ".join(verdict.reasons)
    assert [it.item_id for it in fresh.items] == [CASINO]
    assert fresh.message == verdict.summary


def test_between_two_references_is_near_both(session: ChatSession) -> None:
    session.set_user(None)
    ranked = session.ask("something between Alien and Toy Story")
    assert ranked.kind == "recommend" and ranked.request is not None
    assert ranked.request.combine == "all"
    assert ranked.plan is not None
    step = next(s for s in ranked.plan.steps if s.tool == "similar_items" and s.args.get("combine"))
    assert set(step.args["item_ids"]) == {ALIEN, TOY_STORY} and step.args["combine"] == "all"
    ids = [it.item_id for it in ranked.items]
    assert ALIEN not in ids and TOY_STORY not in ids
    catalog = session.dataset.catalog
    alien, toy = set(catalog[ALIEN].genres), set(catalog[TOY_STORY].genres)
    both = [i for i in ids[:5] if set(catalog[i].genres) & alien and set(catalog[i].genres) & toy]
    assert len(both) >= 2
    assert "between" in ranked.message


def test_liked_films_are_a_taste_and_more_like_asks_for_look_alikes(
    session: ChatSession,
) -> None:
    session.set_user(None)
    liked = session.ask("I loved Alien, what should I watch?")
    assert liked.plan is not None
    steps = [s for s in liked.plan.steps if s.tool == "similar_items"]
    assert any(s.args.get("liked") and ALIEN in s.args["item_ids"] for s in steps)
    more = session.ask("more like Toy Story")
    assert more.plan is not None
    ref = next(
        s
        for s in more.plan.steps
        if s.tool == "similar_items" and TOY_STORY in s.args.get("item_ids", [])
    )
    assert not ref.args.get("liked")


def test_what_do_you_know_about_my_taste(session: ChatSession) -> None:
    ranked = session.ask("what do you know about my taste?")
    assert ranked.kind == "profile" and ranked.profile is not None and not ranked.items
    top = ranked.profile.profile.top_genres[0].genre
    assert top in ranked.profile.summary and ranked.message == ranked.profile.summary
    assert ranked.plan is not None and ranked.plan.tools() == ["summarize_profile"]


def test_why_not_a_title(session: ChatSession) -> None:
    session.set_user(None)
    session.ask("comedies from the 90s")
    ranked = session.ask("why not Alien?")
    assert ranked.kind == "why_not" and ranked.verdict is not None
    assert ranked.verdict.item_id == ALIEN and ranked.verdict.label == "excluded"
    assert "genres asked for" in ranked.verdict.summary


def test_the_packaged_requests_pass_with_the_planner(ml100k_stack: Stack, pairs: ItemPairs) -> None:
    cases = load_request_cases(None, ml100k_stack.dataset)
    assert len(cases) >= 40

    class One:
        name = "planner"

        def session(self) -> ChatSession:
            return _session(ml100k_stack, pairs)

    config = RunConfig(run_id="t", protocol="requests", pipelines=["planner"], dataset="ml-100k")
    records = [answer_request(One(), case, config, "planner") for case in cases]
    assert not [r.failure for r in records if r.failure]
    checks = [v for r in records for v in r.checks.values()]
    failed = {r.user_id: [k for k, v in r.checks.items() if not v] for r in records}
    assert sum(checks) >= 0.9 * len(checks), {k: v for k, v in failed.items() if v}
    assert all(r.plan_ok for r in records), [r.user_id for r in records if not r.plan_ok]


def test_a_verdict_predicts_stars_with_the_best_rating_predictor_on_valid(
    ml100k_stack: Stack, pairs: ItemPairs, tmp_path
) -> None:
    from recagent.models.ratings import CHOICE_FILE, CLASSICAL, choose_on_valid
    from recagent.workspace import Workspace

    ws = Workspace(tmp_path / "home")
    chosen = choose_on_valid(ws, ml100k_stack.dataset)
    assert chosen is not None and set(chosen.valid) == set(CLASSICAL)
    assert chosen.valid[chosen.name] == min(chosen.valid.values())
    assert chosen.valid["biases"] < chosen.valid["global-mean"]  # ratings carry signal
    assert (ws.models_dir(ml100k_stack.dataset.name) / CHOICE_FILE).is_file()
    session = ChatSession(
        ml100k_stack.dataset,
        PromptRegistry(),
        AgentConfig(),
        scorer=ml100k_stack.scorer,  # type: ignore[arg-type]
        pairs=pairs,
        rating_model=lambda: chosen,
    )
    session.set_user("42")
    verdict = session.ask("would I like Casino?").verdict
    assert verdict is not None and verdict.rating_model == chosen.name
    expected = round(chosen.stars(ml100k_stack.dataset, "42", CASINO), 1)
    assert verdict.predicted_stars == expected
    assert f"about {expected:g} of 5 stars" in " ".join(verdict.reasons)
    session.set_user(None)  # a new person: no sequence model place, the stars decide
    fresh = session.ask("is Titanic a good pick for me?").verdict
    assert fresh is not None and fresh.predicted_stars is not None
    stars = fresh.predicted_stars
    want = "good_pick" if stars >= 4.0 else "maybe" if stars >= 3.5 else "not_for_you"
    assert fresh.label == want
