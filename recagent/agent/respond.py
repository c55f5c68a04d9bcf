"""The words of an answer: the message above a list, the verdict on one title, what is known
of the person's taste. Written from the request and the tools' evidence (the model's own
message is used only when the guard holds it to the list)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from recagent.agent.guard import Guard
from recagent.agent.schema import Learned, ProfileAnswer, RankedItem, Verdict
from recagent.agent.turn import Turn
from recagent.data.catalog import Catalog
from recagent.data.profile import UserProfile

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


def verdict_item(verdict: Verdict, catalog: Catalog, evidence: list) -> RankedItem:  # type: ignore[type-arg]
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


__all__ = ["KIND_WORDS", "list_message", "profile_answer", "verdict_item"]
