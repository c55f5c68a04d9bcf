"""The words of an answer: the message above a list, the verdict on one title, what is known
of the person's taste. Written from the request and the tools' evidence (the model's own
message is used only when the guard holds it to the list)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from recagent.agent.conversation import Conversation
from recagent.agent.executor import Execution
from recagent.agent.guard import Explain, Guard
from recagent.agent.llm_agent import AgentTurn
from recagent.agent.ranking import Ranking
from recagent.agent.schema import (
    FinalPick,
    Learned,
    ProfileAnswer,
    RankedItem,
    RankedList,
    Verdict,
)
from recagent.agent.turn import Turn
from recagent.agent.understand import MODEL_PICKS
from recagent.agent.verdict import judge_item, why_not
from recagent.data.catalog import Catalog
from recagent.data.profile import UserProfile
from recagent.tools.base import Evidence, ToolContext
from recagent.tools.profile import SummarizeProfileResult, current_profile

KIND_WORDS = {
    "rank": "your titles, best first for you",
    "judge": "a verdict",
    "why_not": "why it was left out",
    "profile": "your taste",
}


def list_message(
    turn: Turn,
    items: Sequence[RankedItem],
    catalog: Catalog,
    model_text: str | None,
    guard: Guard,
    repairs: Counter[str],
) -> str:
    """The sentence above a list: the model's when it holds (`model_text`; None offline),
    else one written from the request."""
    if model_text is not None:
        if model_text and guard.message_holds(model_text, items):
            return model_text
        if model_text:
            repairs["unfaithful_message"] += 1
        return f"{len(items)} picks chosen with the tools."
    request = turn.request
    if turn.kind == "rank":
        return f"Offline mode (rule-based planner): {KIND_WORDS['rank']}."
    if request.query:
        what = f"“{request.query}”"
    elif turn.reference_ids:
        joiner = " and " if request.combine == "all" else ", "
        between = "something between " if request.combine == "all" else "things like "
        what = between + joiner.join(catalog[i].title for i in turn.reference_ids)
    elif turn.focus:
        what = "more like " + ", ".join(catalog[i].title for i in turn.focus)
    elif turn.seeds:
        what = "what you told me you like"
    elif turn.history:
        what = "your history"
    else:
        what = "what people watch lately"
    c = request.constraints.describe()
    return f"Offline mode (rule-based planner): {len(items)} picks for {what}" + (
        f" ({c})." if c else "."
    )


def verdict_item(verdict: Verdict, catalog: Catalog, evidence: list[Evidence]) -> RankedItem:
    """The judged title as the answer's one item, explained by its verdict."""
    item = catalog[verdict.item_id]
    reasons = "; ".join(verdict.reasons)
    return RankedItem(
        rank=1,
        item_id=item.item_id,
        title=item.title,
        year=item.year,
        genres=list(item.genres),
        explanation=verdict.summary + (f" ({reasons})" if reasons else ""),
        evidence=evidence,
    )


def profile_answer(profile: UserProfile, summary: str, learned: Learned) -> ProfileAnswer:
    """What is known of the person's taste: the profile tool's summary, and what this
    conversation taught."""
    if learned.items or learned.liked_genres or learned.disliked_genres:
        summary = f"{summary} In this conversation: {learned.describe()}."
    return ProfileAnswer(summary=summary, profile=profile, learned=learned)


def list_answer(
    ctx: ToolContext,
    turn: Turn,
    ranking: Ranking,
    guard: Guard,
    llm: AgentTurn | None,
    picks: list[FinalPick],
    repairs: Counter[str],
    explain: Explain,
    keep_pick_order: bool,
) -> RankedList:
    """A list answer (recommend, rank): the model's picks (`llm`: the model that answered,
    None offline) checked and completed by the guard, explained, with its message."""
    result = guard.check(
        picks, ranking, explain, keep_pick_order=keep_pick_order, expected=min(turn.k, MODEL_PICKS)
    )
    repairs.update(result.repairs)
    if llm is not None:
        repairs["malformed_tool_call"] += llm.malformed_calls
        repairs["truncated_explanation"] += llm.truncated
        if llm.answer is None:
            repairs["no_final_answer"] += 1
    model_text = (llm.answer.message if llm.answer else "") if llm is not None else None
    message = list_message(turn, result.items, ctx.catalog, model_text, guard, repairs)
    return RankedList(
        kind=turn.request.intent,
        items=result.items,
        message=message,
        mode="planner",
        notices=result.notices,
        repairs={k: v for k, v in repairs.items() if v},
    )


def about_answer(
    ctx: ToolContext, turn: Turn, conv: Conversation, execution: Execution
) -> RankedList:
    """An answer about the person (profile) or one of their titles (judge, why_not), from
    what the plan's steps found; `conv`: the conversation as this message leaves it."""
    profile = current_profile(ctx)
    if turn.kind == "profile":
        summaries = execution.result("summarize_profile")
        summary = (
            summaries[-1].summary
            if summaries and isinstance(summaries[-1], SummarizeProfileResult)
            else profile.text
        )
        answer = profile_answer(profile, summary, conv.learned(ctx.catalog))
        return RankedList(
            kind="profile", items=[], message=answer.summary, mode="planner", profile=answer
        )
    item_id = turn.request.targets[0]
    last = conv.last_request
    last_constraints = last.constraints if last is not None else None
    if turn.kind == "why_not":
        ranks = [
            ev.catalog_rank
            for i in turn.compare_ids
            for ev in ctx.candidates.evidence(i)
            if ev.catalog_rank
        ]
        verdict = why_not(ctx, turn, item_id, profile, conv.disliked(), last_constraints, ranks)
    else:
        verdict = judge_item(ctx, turn, item_id, profile, conv.disliked())
    item = verdict_item(verdict, ctx.catalog, ctx.candidates.evidence(item_id))
    return RankedList(
        kind=turn.request.intent,
        items=[item],
        message=verdict.summary,
        mode="planner",
        verdict=verdict,
    )


__all__ = [
    "KIND_WORDS",
    "about_answer",
    "list_answer",
    "list_message",
    "profile_answer",
    "verdict_item",
]
