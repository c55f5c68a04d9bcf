"""`suggest_titles`: the model's own knowledge, grounded in the catalog.

A model may name titles it would recommend from what it knows about them. Each is looked up
in the catalog (typos and a missing year tolerated; another edition of a title counts as
that title), unknown ones are dropped and counted, and the ones found join the turn's
candidates with the evidence "suggested by the model", in the model's order. From there the
sequence model scores them like any candidate, and the ranking and the guard treat them the
same way.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from recagent.data.dataset import Dataset
from recagent.tools.base import Evidence, ItemRef, ToolContext, tool_spec

TOOL = "suggest_titles"
SUGGESTED = "suggested by the model"
TITLE_SCORE = 86.0  # how surely a written title must match a catalog title


class SuggestTitlesArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    titles: list[str] = Field(
        min_length=1,
        max_length=30,
        description="Titles you would recommend, best first, with the year where you know it: "
        '"Heat (1995)".',
    )


class SuggestTitlesResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    found: list[ItemRef] = Field(description="The titles the catalog has, in your order.")
    not_found: list[str] = Field(default_factory=list, description="Not in the catalog.")
    seen: list[str] = Field(
        default_factory=list, description="Titles the user already has (kept out)."
    )


def ground_titles(
    dataset: Dataset, titles: list[str], history: set[str]
) -> tuple[list[str], list[str], list[str]]:
    """Written titles as catalog items, in order: (found item ids, titles the catalog lacks,
    labels of the ones the person already has, an edition of them included)."""
    found: list[str] = []
    missing: list[str] = []
    seen: list[str] = []
    for raw in titles:
        text = raw.strip()
        if not text:
            continue
        hits = dataset.titles.search(text, limit=1, min_score=TITLE_SCORE)
        if not hits:
            missing.append(text)
            continue
        item_id = hits[0].item_id
        editions = dataset.titles.other_editions([item_id]) | {item_id}
        if editions & history:
            seen.append(dataset.catalog[item_id].label)
        elif item_id not in found:
            found.append(item_id)
    return found, missing, seen


def suggest_titles(args: SuggestTitlesArgs, ctx: ToolContext) -> BaseModel:
    """Put titles you know and would recommend on the table: each is looked up in the catalog
    (typos and a missing year are fine) and the ones it has join the candidates as
    "suggested by the model", to be scored and checked like any other. Titles the catalog
    lacks are reported, never recommended."""
    found, missing, seen = ground_titles(ctx.dataset, args.titles, set(ctx.history))
    for rank, item_id in enumerate(found, start=1):
        score = 1.0 - (rank - 1) / max(len(found), 1)
        ctx.candidates.add(
            item_id,
            Evidence(
                tool=TOOL, kind="suggested", score=round(score, 4), rank=rank, detail=SUGGESTED
            ),
        )
    return SuggestTitlesResult(found=[ctx.ref(i) for i in found], not_found=missing, seen=seen)


SPECS = (tool_spec(TOOL, SuggestTitlesArgs, suggest_titles),)

__all__ = [
    "SUGGESTED",
    "SuggestTitlesArgs",
    "SuggestTitlesResult",
    "ground_titles",
    "suggest_titles",
]
