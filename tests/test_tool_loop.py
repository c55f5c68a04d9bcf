"""Loop mode: the model calls the tools one at a time through LangChain's agent, driven here
by a scripted chat model over the mini catalog's real stack (tiny SASRec, WordLlama index).
The calls are the plan that ran, in order; invalid calls are repaired; the step budget ends
a model that never answers; the guard closes the turn; a model that fails falls back."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import openai
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from recagent.agent.session import ChatSession
from recagent.agent.tool_loop import ToolLoop
from recagent.config import AgentConfig, LLMConfig
from recagent.data.pairs import ItemPairs, PairsConfig
from recagent.prompts.registry import PromptRegistry
from tests.conftest import Stack
from tests.fakes import ScriptedChatModel, tool_call

FAST = LLMConfig(timeout_s=2, max_retries=1, backoff_max_s=0.05)
HEAT, ALIEN, BLADE_RUNNER = "4", "2", "3"


def _session(
    stack: Stack, script: list[Any], **agent: Any
) -> tuple[ChatSession, ScriptedChatModel]:
    model = ScriptedChatModel(script=script)
    cfg = AgentConfig(mode="loop", **agent)
    registry = PromptRegistry()
    session = ChatSession(
        stack.dataset,
        registry,
        cfg,
        scorer=stack.scorer,  # type: ignore[arg-type]
        index=stack.index,  # type: ignore[arg-type]
        pairs=ItemPairs.build(stack.dataset, PairsConfig(), train_only=False),
        loop=ToolLoop(model, registry, FAST, cfg),
        model_name="scripted",
    )
    session.set_user(None)
    return session, model


def call(name: str, **args: Any) -> AIMessage:
    return AIMessage(content="", tool_calls=[tool_call(name, args)])


def answer(pick: Callable[[list[str]], list[str]] | None = None) -> Any:
    """final_answer with `pick(ids the tools returned)`, or the first three of them."""

    def step(messages: list[BaseMessage]) -> AIMessage:
        results = " ".join(str(m.content) for m in messages if isinstance(m, ToolMessage))
        found = list(dict.fromkeys(re.findall(r'"item_id":"(\w+)"', results)))
        ids = pick(found) if pick else found[:3]
        items = [{"item_id": i, "explanation": ""} for i in ids]
        return AIMessage(content="", tool_calls=[tool_call("final_answer", {"items": items})])

    return step


def test_the_models_calls_run_in_its_order_and_are_the_plan(mini_stack: Stack) -> None:
    script = [
        call("search_items", query="space", k=10),
        call("similar_items", item_ids=[BLADE_RUNNER], k=10),
        call("suggest_titles", titles=["Alien (1979)", "Not A Real Film (2099)"]),
        call("score_candidates", k=20),
        answer(),
    ]
    events: list[tuple[str, Any]] = []
    session, model = _session(mini_stack, script)
    ranked = session.ask(
        "some sci-fi", k=3, on_event=lambda kind, data: events.append((kind, data))
    )
    assert ranked.mode == "llm" and ranked.plan is not None and ranked.plan.mode == "loop"
    loop = [s.tool for s in ranked.plan.steps if s.source == "loop"]
    assert loop == ["search_items", "similar_items", "suggest_titles", "score_candidates"]
    assert [s.source for s in ranked.plan.steps][-1] == "rules"  # the hard filters, after it
    assert ranked.repairs["unknown_title"] == 1  # the film the catalog lacks
    # each call was streamed as the model made it
    made = [d[0] for k, d in events if k == "tool_call"]
    assert made == [*loop, "final_answer"]
    assert len(model.calls) == 5 and len(ranked.items) == 3
    assert all("Sci-Fi" in it.genres for it in ranked.items)  # the rules' reading holds


def test_an_invalid_call_is_repaired(mini_stack: Stack) -> None:
    script = [
        call("similar_items", item_ids=["Heat (1995)", "zzz"], k=500, colour="red"),
        call("teleport", where="mars"),
        answer(),
    ]
    session, _ = _session(mini_stack, script)
    ranked = session.ask("more like Heat", k=3)
    assert ranked.plan is not None
    similar, unknown = ranked.plan.steps[0], ranked.plan.steps[1]
    assert similar.ok and similar.args["item_ids"] == [HEAT] and similar.args["k"] == 100
    assert unknown.ok is None and unknown.tool == "teleport"
    for key in ("title_as_id", "unknown_id", "k_clamped", "unknown_argument", "unknown_tool"):
        assert ranked.repairs[key] == 1, key
    assert len(ranked.items) == 3 and HEAT not in [it.item_id for it in ranked.items]


def test_the_step_budget_ends_a_model_that_never_answers(mini_stack: Stack) -> None:
    script = [call("search_items", query=f"space {n}", k=5) for n in range(10)]
    session, model = _session(mini_stack, script, loop_max_steps=3)
    ranked = session.ask("some sci-fi", k=4)
    assert len(model.calls) == 3
    assert ranked.repairs["step_budget_reached"] == 1 and ranked.repairs["no_final_answer"] == 1
    assert len(ranked.items) == 4 and ranked.mode == "llm"  # filled from the tools' ranking


def test_the_guard_closes_the_loops_answer(mini_stack: Stack) -> None:
    kept: list[str] = []

    def pick(found: list[str]) -> list[str]:
        kept.append(found[0])
        return [ALIEN, "999", found[0]]  # a horror film, an invented id, one that holds

    script = [call("search_items", query="fun", k=10), answer(pick)]
    session, _ = _session(mini_stack, script)
    ranked = session.ask("an action or a comedy film", k=3)
    ids = [it.item_id for it in ranked.items]
    assert ALIEN not in ids and "999" not in ids and kept[0] in ids
    assert ranked.repairs["unknown_item"] == 1 and ranked.repairs["not_from_tool"] == 1
    assert ranked.repairs["backfilled"] == 2 and len(ids) == 3
    assert all({"Action", "Comedy"} & set(it.genres) for it in ranked.items)


def test_a_model_that_fails_falls_back_to_the_planner(mini_stack: Stack) -> None:
    def down(messages: list[BaseMessage]) -> AIMessage:
        raise openai.APIConnectionError(request=httpx.Request("POST", "http://127.0.0.1:9/v1"))

    session, _ = _session(mini_stack, [down, down, down])
    ranked = session.ask("some sci-fi", k=3)
    assert ranked.mode == "planner" and ranked.fallback_reason
    assert ranked.plan is not None and {s.source for s in ranked.plan.steps} == {"rules"}
    assert len(ranked.items) == 3


def test_a_verdict_in_loop_mode_rests_on_the_planners_steps_it_left_out(
    mini_stack: Stack,
) -> None:
    script = [call("lookup_items", titles=["Blade Runner"]), answer(lambda found: [])]
    session, _ = _session(mini_stack, script)
    session.set_user("1")
    ranked = session.ask("is Blade Runner a good pick for me?")
    assert ranked.kind == "judge" and ranked.verdict is not None
    assert ranked.verdict.item_id == BLADE_RUNNER and [i.item_id for i in ranked.items] == [
        BLADE_RUNNER
    ]
    assert ranked.plan is not None
    sources = {(s.tool, s.source) for s in ranked.plan.steps}
    assert ("lookup_items", "loop") in sources and ("score_candidates", "rules") in sources
