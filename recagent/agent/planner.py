"""The rule-based planner: offline mode, and the fallback when an LLM fails.

It calls the same tools an LLM would, in a fixed order: profile -> reference lookup ->
recall (request text, reference items, history) -> hard filters -> SASRec scores -> blend
-> top-k, and writes each explanation from the evidence with the `explanation` prompt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from recagent.agent.ranking import BlendConfig, blend, order_by
from recagent.agent.request import Request
from recagent.data.profile import UserProfile
from recagent.prompts.registry import PromptRegistry
from recagent.tools.base import ToolContext, ToolError, run_tool
from recagent.tools.profile import current_profile

RECALL_K = 100
MIN_POOL = 30
REFERENCE_MIN_SCORE = 85.0
SCORE_K = 100  # score_candidates scores every candidate; k only limits what it lists


@dataclass
class Plan:
    """What the planner found: the ranked pool, scores, references and notes."""

    ranked: list[str]
    scores: dict[str, float]
    reference_ids: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def recall_filters(
    request: Request, exclude: list[str], include: list[str] | None = None
) -> dict[str, Any]:
    """Constraints pushed down into vector recall (the rest is enforced by filter_items)."""
    filters: dict[str, Any] = {}
    if request.genres_any:
        filters["genres_any"] = request.genres_any
    elif request.genres_all:
        filters["genres_any"] = request.genres_all[:1]  # recall coarse, filter_items exact
    if request.genres_none:
        filters["genres_none"] = request.genres_none
    if request.year_min is not None:
        filters["year_min"] = request.year_min
    if request.year_max is not None:
        filters["year_max"] = request.year_max
    if exclude:
        filters["exclude_ids"] = exclude
    if include is not None:
        filters["include_ids"] = include
    return filters


class Planner:
    def __init__(self, registry: PromptRegistry, blend_config: BlendConfig | None = None) -> None:
        self.registry = registry
        self.blend_config = blend_config or BlendConfig()

    def resolve_references(
        self, ctx: ToolContext, titles: list[str]
    ) -> tuple[list[str], list[str]]:
        """Item ids for the titles the user referred to, and the titles not found."""
        if not titles:
            return [], []
        result = run_tool("lookup_items", {"titles": titles, "limit": 1}, ctx)
        if isinstance(result, ToolError):
            return [], titles
        ids, missing = [], list(getattr(result, "not_found", []))
        for entry in getattr(result, "results", []):
            good = [m for m in entry.matches if m.match_score >= REFERENCE_MIN_SCORE]
            if good:
                ids.append(good[0].item.item_id)
            elif entry.query not in missing:
                missing.append(entry.query)
        return ids, missing

    def plan(
        self,
        ctx: ToolContext,
        request: Request,
        k: int,
        reference_ids: list[str],
        exclude: list[str],
        preset: list[str] | None = None,
    ) -> Plan:
        """Call the tools and rank what they found. With `preset`, rank only those items
        (the evaluation's candidate protocol)."""
        notes: list[str] = []
        filters = recall_filters(request, list(exclude) + reference_ids, preset)
        recall = {"filters": filters, "exclude_seen": not request.include_seen}
        n = len(preset) if preset else RECALL_K
        run_tool("summarize_profile", {}, ctx)
        if request.query:
            self._recall(ctx, "search_items", {"query": request.query, "k": n, **recall}, notes)
        if reference_ids:
            self._recall(ctx, "similar_items", {"item_ids": reference_ids, "k": n, **recall}, notes)
        if ctx.history:
            self._recall(ctx, "similar_items", {"use_history": True, "k": n, **recall}, notes)
        if preset is None:
            constraints = {
                "genres_any": request.genres_any,
                "genres_all": request.genres_all,
                "genres_none": request.genres_none,
                "year_min": request.year_min,
                "year_max": request.year_max,
                "exclude_seen": not request.include_seen,
            }
            run_tool("filter_items", constraints, ctx)
            if len(ctx.candidates) < max(MIN_POOL, 2 * k):
                run_tool(
                    "filter_items",
                    {**constraints, "from_catalog": True, "k": max(MIN_POOL, 3 * k)},
                    ctx,
                )
        if ctx.candidates.ids():
            scored = run_tool("score_candidates", {"k": min(len(ctx.candidates), SCORE_K)}, ctx)
            if isinstance(scored, ToolError):
                notes.append(f"score_candidates: {scored.error}")
        has_content = bool(request.query or reference_ids)
        scores = blend(ctx.candidates, has_content, self.blend_config)
        return Plan(
            ranked=order_by(scores), scores=scores, reference_ids=reference_ids, notes=notes
        )

    @staticmethod
    def _recall(ctx: ToolContext, tool: str, args: dict[str, Any], notes: list[str]) -> None:
        result = run_tool(tool, args, ctx)
        if isinstance(result, ToolError):
            notes.append(f"{tool}: {result.error}")

    def explain(
        self, ctx: ToolContext, item_id: str, request: Request, profile: UserProfile | None = None
    ) -> str:
        """An explanation written from the item's evidence with the `explanation` prompt."""
        profile = profile or current_profile(ctx)
        item = ctx.catalog[item_id]
        evidence = ctx.candidates.evidence(item_id)

        def titles(ids: list[str]) -> list[str]:
            return [ctx.catalog[i].title for i in ids if i in ctx.catalog]

        values: dict[str, Any] = {"title": item.title}
        for ev in evidence:
            if ev.kind == "text_match":
                values["query"] = request.query or ev.matched_text or ""
            elif ev.kind == "similar_to_items":
                values["similar_to"] = titles(ev.because_of)
            elif ev.kind == "similar_to_history":
                values["history_items"] = titles(ev.because_of)
            elif ev.kind == "sequential" and ev.rank:
                values["sasrec_rank"] = ev.rank
                values["n_candidates"] = len(ctx.candidates)
            elif ev.kind == "popularity":
                values["popularity"] = int(ctx.popularity_counts[ctx.catalog.idx(item_id)])
            elif ev.kind == "title_match":
                values["title_match"] = True
        liked = [g for g in profile.liked_genres if g in item.genres]
        if liked:
            values["liked_genres"] = liked
        return self.registry.render("explanation", **values).text


__all__ = ["Plan", "Planner", "recall_filters"]
