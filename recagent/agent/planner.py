"""The rule-based planner: writes a turn's plan by rules (offline mode, the steps an LLM's
plan leaves out, and the fallback when an LLM fails), and words an item's evidence with the
`explanation` prompt.

For items to try (recommend) the plan is: the sequence model's best next items for the
history -> recall (the taste, the references, the titles just named as loved, the items the
conversation named, the stored history) -> what is popular lately -> the hard filters -> the
sequence model scores every candidate. For the person's own titles (rank, judge, why_not)
it puts those titles on the table and scores them against the history and the whole
catalog; for their taste (profile) it asks the profile tool.
"""

from __future__ import annotations

from typing import Any

from recagent.agent.plan import Plan, PlanStep
from recagent.agent.steps import scorer_name
from recagent.agent.turn import Turn, recall_filters
from recagent.data.catalog import Catalog
from recagent.data.profile import UserProfile
from recagent.prompts.registry import PromptRegistry
from recagent.tools.base import ToolContext, carried_by
from recagent.tools.profile import current_profile

RECALL_K = 100
SCORE_K = 100  # score_candidates scores every candidate; k only limits what it lists


def recall_args(turn: Turn) -> dict[str, Any]:
    """The arguments every recall step of the turn shares."""
    return {"filters": recall_filters(turn), "exclude_seen": not turn.request.include_seen}


def pool_size(turn: Turn) -> int:
    n = len(turn.allowed_ids) if turn.allowed_ids is not None else RECALL_K
    return max(1, min(n, RECALL_K))


def constraint_args(turn: Turn) -> dict[str, Any]:
    """The turn's hard constraints as `filter_items` arguments."""
    filters = {
        k: v for k, v in recall_filters(turn).items() if k not in ("exclude_ids", "include_ids")
    }
    return {**filters, "exclude_seen": not turn.request.include_seen}


def seed_steps(turn: Turn) -> list[PlanStep]:
    """The sequence model's best next items for the history (recommend, with a history)."""
    if turn.kind != "recommend" or not turn.history or turn.allowed_ids is not None:
        return []
    return [PlanStep(tool="score_candidates", args={"from_catalog": True, "k": pool_size(turn)})]


def recall_steps(turn: Turn, catalog: Catalog) -> list[PlanStep]:
    """Recall for items to try: the taste, references, focus, seeds, the stored history."""
    if turn.kind != "recommend":
        return []
    request, n, recall = turn.request, pool_size(turn), recall_args(turn)
    steps = []
    if request.query:
        search = {**recall, "filters": dict(recall["filters"])}
        c = turn.constraints
        if turn.reference_ids and not (c.genres_all or c.genres_any):
            # "like Toy Story but darker": the twist, among the references' genres
            genres = sorted({g for i in turn.reference_ids for g in catalog[i].genres})
            if genres:
                search["filters"]["genres_any"] = genres
        steps.append(PlanStep(tool="search_items", args={"query": request.query, "k": n, **search}))
    if turn.reference_ids:
        args = {"item_ids": list(turn.reference_ids), "k": n, **recall}
        if request.combine == "all" and len(turn.reference_ids) > 1:
            args["combine"] = "all"
        steps.append(PlanStep(tool="similar_items", args=args))
    # films the person said they liked are a taste (what people who liked them go on to
    # like), not "more like this" (look-alikes): recagent.represent.blend
    focus = [i for i in turn.focus if i not in turn.reference_ids]
    if focus:
        args = {"item_ids": focus, "liked": True, "k": n, **recall}
        steps.append(PlanStep(tool="similar_items", args=args))
    seeds = [i for i in turn.seeds if i not in turn.reference_ids and i not in focus]
    if seeds:
        args = {"item_ids": seeds[-50:], "liked": True, "k": n, **recall}
        steps.append(PlanStep(tool="similar_items", args=args))
    if turn.stored_history:
        steps.append(PlanStep(tool="similar_items", args={"use_history": True, "k": n, **recall}))
    constraints = constraint_args(turn)
    if turn.allowed_ids is not None:
        args = {**constraints, "include_ids": list(turn.allowed_ids), "from_catalog": True}
        steps.append(PlanStep(tool="filter_items", args={**args, "k": len(turn.allowed_ids)}))
    else:
        args = {**constraints, "from_catalog": True, "k": n}
        steps.append(PlanStep(tool="filter_items", args=args))
    return steps


def finish_steps(turn: Turn, model: str | None = None) -> list[PlanStep]:
    """The hard filters, then the sequence model scores every candidate not yet scored."""
    if turn.kind == "profile":
        return []
    steps = []
    if turn.kind == "recommend":
        steps.append(PlanStep(tool="filter_items", args=constraint_args(turn)))
    if turn.history:
        args: dict[str, Any] = {"k": SCORE_K}
        if turn.kind != "recommend":
            args["item_ids"] = list(dict.fromkeys([*turn.request.targets, *turn.compare_ids]))
        if model:
            args["model"] = model
        steps.append(PlanStep(tool="score_candidates", args=args))
    return steps


def own_title_steps(turn: Turn) -> list[PlanStep]:
    """rank, judge, why_not: the person's titles on the table, and how close they are to
    the history; judge and why_not also read the profile."""
    if turn.kind not in ("rank", "judge", "why_not"):
        return []
    targets = list(turn.request.targets)
    steps = [
        PlanStep(
            tool="filter_items",
            args={
                "include_ids": targets,
                "from_catalog": True,
                "exclude_seen": False,
                "k": len(targets),
            },
        )
    ]
    if turn.stored_history or turn.history:
        steps.append(
            PlanStep(
                tool="similar_items",
                args={
                    "use_history": True,
                    "k": len(targets),
                    "filters": {"include_ids": targets},
                    "exclude_seen": False,
                },
            )
        )
    if turn.kind != "rank":
        steps.append(PlanStep(tool="summarize_profile"))
    return steps


def write_plan(turn: Turn, catalog: Catalog) -> Plan:
    """The turn's plan, by rules."""
    if turn.kind == "profile":
        steps = [PlanStep(tool="summarize_profile")]
    else:
        steps = [*seed_steps(turn), *recall_steps(turn, catalog), *own_title_steps(turn)]
        steps += finish_steps(turn)
    return Plan(kind=turn.request.intent, steps=steps, mode="rules")


class Explainer:
    """An item's evidence in words, with the `explanation` prompt."""

    def __init__(self, registry: PromptRegistry) -> None:
        self.registry = registry

    def explain(
        self, ctx: ToolContext, item_id: str, turn: Turn, profile: UserProfile | None = None
    ) -> str:
        profile = profile or current_profile(ctx)
        item = ctx.catalog[item_id]
        evidence = ctx.candidates.evidence(item_id)

        def titles(ids: list[str]) -> list[str]:
            return [ctx.catalog[i].title for i in ids if i in ctx.catalog]

        values: dict[str, Any] = {"title": item.title}
        for ev in evidence:
            if ev.kind == "text_match" and (ev.score or 0) >= ctx.match_threshold:
                values["query"] = turn.request.query or ev.matched_text or ""
            elif ev.kind == "similar_to_items":
                # the part of the similarity that found it: looks alike (text), and/or the
                # same people liked both (the co-watch space, learned from co-watching)
                parts = carried_by(ev.detail)
                if "text" in parts:
                    values["similar_to"] = titles(ev.because_of)
                    values["alike_genres"] = shared_genres(ctx, item_id, ev.because_of)
                if "cowatch" in parts:
                    values.setdefault("watched_with", titles(ev.because_of))
            elif ev.kind == "co_watched":
                values["watched_with"] = list(
                    dict.fromkeys([*titles(ev.because_of), *values.get("watched_with", [])])
                )
            elif ev.kind == "similar_to_history":
                values["history_items"] = titles(ev.because_of)
            elif ev.kind == "sequential" and turn.history:
                ranked = strong_rank(ctx, item_id, "sequential")
                if ranked:
                    values["model_rank"], values["n_candidates"] = ranked
                    values["model_name"] = scorer_name(ctx, ev.detail)
            elif ev.kind == "popularity":
                values["popularity"] = int(ctx.dataset.popularity[ctx.catalog.idx(item_id)])
                if not ctx.dataset.interactions.has_ratings:  # views, purchases, clicks...
                    values["popularity_unit"] = "interactions"
            elif ev.kind == "title_match":
                values["title_match"] = True
            elif ev.kind == "suggested":
                values["suggested"] = True
        asked = set(turn.constraints.genres_all) | set(turn.constraints.genres_any)
        said = [g for g in turn.liked_genres if g in item.genres and g not in asked]
        liked = said or [g for g in profile.liked_genres if g in item.genres and g not in asked]
        if liked:
            values["liked_genres"] = liked
        return self.registry.render("explanation", **values).text


def shared_genres(ctx: ToolContext, item_id: str, like: list[str]) -> list[str]:
    """The genres `item_id` shares with the first of `like`, the most telling first (the
    fewest items have it: Sci-Fi says more than Action)."""
    if not like or like[0] not in ctx.catalog:
        return []
    theirs = set(ctx.catalog[like[0]].genres)
    counts = ctx.catalog.genre_counts()
    shared = [g for g in ctx.catalog[item_id].genres if g in theirs]
    return sorted(shared, key=lambda g: counts.get(g, 0))


def strong_rank(ctx: ToolContext, item_id: str, kind: str) -> tuple[int, int] | None:
    """(rank, of how many) among this turn's candidates when the rank is a reason to cite:
    in the top 10, or the top tenth."""
    ranked = ctx.candidates.rank_of(item_id, kind)
    if ranked and ranked[0] <= max(10, ranked[1] // 10):
        return ranked
    return None


__all__ = [
    "RECALL_K",
    "SCORE_K",
    "Explainer",
    "constraint_args",
    "finish_steps",
    "own_title_steps",
    "recall_args",
    "recall_steps",
    "seed_steps",
    "strong_rank",
    "write_plan",
]
