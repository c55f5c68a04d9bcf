"""The rule-based planner: offline mode's tool calls, the gathering step of a clear LLM turn,
and the fallback when an LLM fails. Also the one place a turn's candidates are ranked.

`gather` calls the same tools an LLM would, in a fixed order: SASRec's best next items for
the history -> recall (the taste, the reference items, the items the conversation
named, the stored history) -> what is popular lately -> hard filters -> SASRec scores for
every candidate. `rank` blends the evidence once (`recagent.agent.ranking`), and `explain`
words an item's evidence with the `explanation` prompt.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recagent.agent.ranking import GENRE_FIT, BlendConfig, Ranking, blend, order_by
from recagent.agent.turn import Turn
from recagent.data.profile import UserProfile
from recagent.prompts.registry import PromptRegistry
from recagent.tools.base import COWATCH, Evidence, ToolContext, ToolError, run_tool
from recagent.tools.profile import current_profile

RECALL_K = 100
SCORE_K = 100  # score_candidates scores every candidate; k only limits what it lists
DISLIKED_NEIGHBOURS = 200


def recall_filters(turn: Turn) -> dict[str, Any]:
    """The turn's hard constraints as the recall tools' `filters` (seen items are left out by
    the tools themselves, through `exclude_seen`)."""
    c = turn.constraints
    filters: dict[str, Any] = {
        key: value
        for key, value in c.model_dump(exclude={"include_ids", "exclude_ids"}).items()
        if value not in (None, [])
    }
    excluded = [i for i, why in turn.exclusions.items() if why != "seen"]
    if excluded:
        filters["exclude_ids"] = excluded
    if turn.allowed_ids is not None:
        filters["include_ids"] = list(turn.allowed_ids)
    return filters


class Planner:
    def __init__(self, registry: PromptRegistry, blend_config: BlendConfig | None = None) -> None:
        self.registry = registry
        self.blend_config = blend_config or BlendConfig()

    def gather(self, ctx: ToolContext, turn: Turn) -> list[str]:
        """Fill the turn's candidate set with evidence; returns notes on tools that failed."""
        notes: list[str] = []
        request = turn.request
        filters = recall_filters(turn)
        recall = {"filters": filters, "exclude_seen": not request.include_seen}
        n = len(turn.allowed_ids) if turn.allowed_ids is not None else RECALL_K
        n = max(1, min(n, RECALL_K))

        def call(tool: str, args: dict[str, Any]) -> None:
            result = run_tool(tool, args, ctx)
            if isinstance(result, ToolError):
                notes.append(f"{tool}: {result.error}")

        current_profile(ctx)  # computed once for the explanations (never worded by an LLM here)
        if turn.history and turn.allowed_ids is None:
            call("score_candidates", {"item_ids": None, "k": n})  # SASRec's next items
        if request.query:
            search = dict(recall)
            c = turn.constraints
            if turn.reference_ids and not (c.genres_all or c.genres_any):
                # "like Toy Story but darker": the twist, among the references' genres
                genres = {g for i in turn.reference_ids for g in ctx.catalog[i].genres}
                search["filters"] = {**filters, "genres_any": sorted(genres)}
            call("search_items", {"query": request.query, "k": n, **search})
        if turn.reference_ids:
            call("similar_items", {"item_ids": turn.reference_ids, "k": n, **recall})
        seeds = [i for i in turn.seeds if i not in turn.reference_ids]
        if seeds:
            call("similar_items", {"item_ids": seeds[-50:], "k": n, **recall})
        if turn.stored_history:
            call("similar_items", {"use_history": True, "k": n, **recall})
        constraints = {
            **{k: v for k, v in filters.items() if k not in ("exclude_ids", "include_ids")},
            "exclude_seen": not request.include_seen,
        }
        if turn.allowed_ids is not None:
            for item_id in turn.allowed_ids:
                if item_id in ctx.catalog and item_id not in turn.exclusions:
                    ctx.candidates.add(item_id, Evidence(tool="harness", kind="filter"))
        else:
            call("filter_items", {**constraints, "from_catalog": True, "k": n})
        call("filter_items", constraints)
        unscored = [
            i
            for i in ctx.candidates.ids()
            if not any(ev.kind == "sequential" for ev in ctx.candidates.evidence(i))
        ]
        if turn.history and unscored:
            call("score_candidates", {"item_ids": unscored, "k": min(len(unscored), SCORE_K)})
        return notes

    def rank(self, ctx: ToolContext, turn: Turn) -> Ranking:
        """Blend the candidates' evidence once: the order every later step uses."""
        ids = [i for i in ctx.candidates.ids() if i not in turn.exclusions]
        counts = ctx.popularity_counts
        extra: dict[str, dict[str, float]] = {
            "popularity": {i: float(counts[ctx.catalog.idx(i)]) for i in ids},
            "text_match": {  # a weak text match is no match: it does not rank
                i: ev.score
                for i in ids
                for ev in ctx.candidates.evidence(i)
                if ev.kind == "text_match"
                and ev.score is not None
                and ev.score >= ctx.match_threshold
            },
        }
        if turn.liked_genres or turn.disliked_genres:
            liked, disliked = set(turn.liked_genres), set(turn.disliked_genres)
            fit = {}
            for i in ids:
                have = set(ctx.catalog[i].genres)
                share = len(have & liked) / len(liked) if liked else 0.0
                fit[i] = share - (1.0 if have & disliked else 0.0)
            extra[GENRE_FIT] = fit
        if turn.disliked:
            self._push_away(ctx, turn.disliked, ids)
        cfg = self.blend_config
        weights = cfg.with_content if turn.has_content else cfg.history_only
        if extra["text_match"] and not turn.reference_ids and not turn.seeds:
            weights = cfg.with_taste  # a description that items match well, nothing named
        elif not turn.history and not turn.has_content:
            weights = {"popularity": 1.0, GENRE_FIT: 1.0}
        scores = blend(ctx.candidates, weights, extra)
        for item_id in turn.exclusions:
            scores.pop(item_id, None)
        return Ranking(scores=scores, order=order_by(scores))

    @staticmethod
    def _push_away(ctx: ToolContext, disliked: list[str], ids: list[str]) -> None:
        """Mark candidates that people watch with, or that read like, a disliked item."""
        near: dict[str, tuple[float, list[str]]] = {}
        if ctx.pairs is not None:
            for item_id, score, because in ctx.pairs.related(disliked, DISLIKED_NEIGHBOURS):
                near[item_id] = (score, because)
        if ctx.index is not None and ids:
            vectors = ctx.index.embeddings(disliked)
            cand = ctx.index.embeddings(ids)
            sims = cand @ vectors.T  # (candidates, disliked)
            for row, item_id in enumerate(ids):
                best = int(np.argmax(sims[row]))
                score = float(sims[row, best])
                if score > near.get(item_id, (-1.0, []))[0]:
                    near[item_id] = (score, [disliked[best]])
        wanted = set(ids)
        for item_id, (score, because) in near.items():
            if item_id in wanted:
                ctx.candidates.add(
                    item_id,
                    Evidence(
                        tool="rank",
                        kind="similar_to_disliked",
                        score=round(score, 4),
                        because_of=because,
                    ),
                )

    def explain(
        self, ctx: ToolContext, item_id: str, turn: Turn, profile: UserProfile | None = None
    ) -> str:
        """An explanation written from the item's evidence with the `explanation` prompt."""
        profile = profile or current_profile(ctx)
        item = ctx.catalog[item_id]
        evidence = ctx.candidates.evidence(item_id)

        def titles(ids: list[str]) -> list[str]:
            return [ctx.catalog[i].title for i in ids if i in ctx.catalog]

        values: dict[str, Any] = {"title": item.title}
        for ev in evidence:
            if ev.kind == "text_match" and (ev.score or 0) >= ctx.match_threshold:
                values["query"] = turn.request.query or ev.matched_text or ""
            elif ev.kind == "similar_to_items" and ev.detail == COWATCH:
                # from the item encoder's space: learned from co-watching, not look-alike text
                values.setdefault("watched_with", titles(ev.because_of))
            elif ev.kind == "similar_to_items":
                values["similar_to"] = titles(ev.because_of)
            elif ev.kind == "co_watched":
                values["watched_with"] = list(
                    dict.fromkeys([*titles(ev.because_of), *values.get("watched_with", [])])
                )
            elif ev.kind == "similar_to_history":
                values["history_items"] = titles(ev.because_of)
            elif ev.kind == "sequential" and turn.history:
                ranked = strong_rank(ctx, item_id, "sequential")
                if ranked:
                    values["sasrec_rank"], values["n_candidates"] = ranked
            elif ev.kind == "popularity":
                values["popularity"] = int(ctx.dataset.popularity[ctx.catalog.idx(item_id)])
                if not ctx.dataset.interactions.has_ratings:  # views, purchases, clicks...
                    values["popularity_unit"] = "interactions"
            elif ev.kind == "title_match":
                values["title_match"] = True
        asked = set(turn.constraints.genres_all) | set(turn.constraints.genres_any)
        said = [g for g in turn.liked_genres if g in item.genres and g not in asked]
        liked = said or [g for g in profile.liked_genres if g in item.genres and g not in asked]
        if liked:
            values["liked_genres"] = liked
        return self.registry.render("explanation", **values).text


def strong_rank(ctx: ToolContext, item_id: str, kind: str) -> tuple[int, int] | None:
    """(rank, of how many) among this turn's candidates when the rank is a reason to cite:
    in the top 10, or the top tenth."""
    ranked = ctx.candidates.rank_of(item_id, kind)
    if ranked and ranked[0] <= max(10, ranked[1] // 10):
        return ranked
    return None


__all__ = ["RECALL_K", "SCORE_K", "Planner", "recall_filters", "strong_rank"]
