"""Catalog tools: find items by title, apply hard filters, read the user's history."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recagent.data.catalog import Catalog, Item
from recagent.data.constraints import ConstraintError, Constraints
from recagent.index.filters import REASONS, catalog_mask
from recagent.tools.base import Evidence, ItemRef, ToolContext, ToolError, tool_spec
from recagent.topk import top_k

MAX_IDS = 500


class LookupItemsArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    titles: list[str] = Field(
        min_length=1, max_length=10, description="Titles as the user wrote them, typos are fine."
    )
    limit: int = Field(3, ge=1, le=10, description="Matches to return per title.")


class TitleHit(BaseModel):
    item: ItemRef
    match_score: float = Field(description="0-100, how well the title matches.")


class LookupResult(BaseModel):
    query: str
    matches: list[TitleHit]


class LookupItemsResult(BaseModel):
    results: list[LookupResult]
    not_found: list[str] = Field(default_factory=list)
    hint: str | None = None


def lookup_items(args: LookupItemsArgs, ctx: ToolContext) -> BaseModel:
    """Find catalog items by title, tolerant of typos ("toy stroy" finds Toy Story). Use it
    to turn titles the user mentions into item_ids (for example before similar_items). A
    year helps: "Heat (1995)". Returns the best matches per title with a match score."""
    results, missing = [], []
    for raw in args.titles:
        text = raw.strip()
        if not text:
            continue
        hits = ctx.dataset.titles.search(text, limit=args.limit)
        if not hits:
            missing.append(text)
        for hit in hits:
            ctx.candidates.add(
                hit.item_id,
                Evidence(
                    tool="lookup_items", kind="title_match", score=hit.score, matched_text=text
                ),
            )
        matches = [TitleHit(item=ctx.ref(h.item_id), match_score=h.score) for h in hits]
        results.append(LookupResult(query=text, matches=matches))
    if not results and not missing:
        return ToolError(error="no titles given", hint='pass titles like ["Toy Story"]')
    hint = "no close title in the catalog; try search_items with a description" if missing else None
    return LookupItemsResult(results=results, not_found=missing, hint=hint)


class FilterItemsArgs(Constraints):
    """Constraints (genres, years, ids) plus what to filter and how much to list."""

    item_ids: list[str] | None = Field(
        None,
        max_length=MAX_IDS,
        description="Items to filter; omit to filter the candidates found so far this turn.",
    )
    exclude_seen: bool = Field(
        True, description="Drop items the user already has in their history."
    )
    from_catalog: bool = Field(
        False,
        description="Search the whole catalog (most popular lately first) instead of the "
        "candidates; use when other tools found too little.",
    )
    k: int = Field(20, ge=1, le=200, description="How many kept items to list in the result.")


class FilterItemsResult(BaseModel):
    kept: int
    removed: dict[str, int] = Field(default_factory=dict)
    items: list[ItemRef]
    note: str | None = None


_REASONS = {
    "genre": "genre not wanted",
    "excluded_genre": "excluded genre",
    "year": "outside the years",
    "excluded": "excluded",
    "not_included": "not in include_ids",
}


def filter_items(args: FilterItemsArgs, ctx: ToolContext) -> BaseModel:
    """Apply hard constraints: genres to keep (all of / any of) or drop, a year range, and
    (by default) drop items the user has already seen. Without item_ids it filters the
    candidates found so far this turn and keeps only those that pass, so score_candidates
    then ranks the filtered set. With from_catalog=true it lists the catalog items most
    popular lately that pass (useful for a new user or a narrow request)."""
    try:
        constraints = Constraints.model_validate(
            args.model_dump(include=set(Constraints.model_fields))
        ).resolve(ctx.catalog)
    except ConstraintError as exc:  # unknown genre (the message lists the valid ones) or id
        return ToolError(error=str(exc), hint="use genres from that list and known item ids")
    seen = set(ctx.history) if args.exclude_seen else set()
    removed: dict[str, int] = {}

    def passes(item: Item) -> bool:
        why = "already seen" if item.item_id in seen else None
        if why is None and (reason := constraints.admits(item)) is not None:
            why = _REASONS[reason]
        if why:
            removed[why] = removed.get(why, 0) + 1
        return why is None

    if args.from_catalog:
        counts = ctx.popularity_counts
        rows = _catalog_pass(constraints, seen, ctx.catalog, removed)
        top = [ctx.catalog.at(int(i) + 1) for i in most_popular(counts[1:], rows, args.k)]
        for item in top:
            count = float(counts[ctx.catalog.idx(item.item_id)])
            ctx.candidates.add(
                item.item_id,
                Evidence(tool="filter_items", kind="popularity", score=round(count, 4)),
            )
        return FilterItemsResult(
            kept=len(rows),
            removed=removed,
            items=[ItemRef.of(it) for it in top],
            note=f"{min(args.k, len(rows))} added to the candidates",
        )

    explicit = args.item_ids is not None
    ids = args.item_ids if explicit else ctx.candidates.ids()
    unknown = ctx.unknown_ids(ids or [])
    if unknown:
        return ToolError(
            error=f"unknown item_ids: {', '.join(unknown[:10])}",
            hint="use item_ids returned by other tools, or lookup_items to find titles",
        )
    kept = [i for i in ids or [] if passes(ctx.catalog[i])]
    if not explicit:
        ctx.candidates.retain(kept)
    note = None
    if not ids:
        note = (
            "nothing to filter: find candidates first (search_items, similar_items) "
            "or use from_catalog=true"
        )
    elif not kept:
        note = "nothing passed; relax the constraints or use from_catalog=true"
    return FilterItemsResult(
        kept=len(kept), removed=removed, items=[ctx.ref(i) for i in kept[: args.k]], note=note
    )


def _catalog_pass(
    constraints: Constraints, seen: set[str], catalog: Catalog, removed: dict[str, int]
) -> np.ndarray:
    """Rows (item_idx - 1) of the catalog items that pass, counting in `removed` why the
    others do not (as `passes` says it: seen first, then the constraints' reason), over
    arrays: a million items take milliseconds."""
    code = catalog_mask(catalog).reasons(constraints)
    seen_rows = [i - 1 for i in (catalog.idx_or_none(x) for x in seen) if i is not None]
    code[seen_rows] = -1
    labels = {-1: "already seen"} | {n + 1: _REASONS[r] for n, r in enumerate(REASONS)}
    values, counts = np.unique(code[code != 0], return_counts=True)
    for value, count in zip(values.tolist(), counts.tolist(), strict=True):
        removed[labels[value]] = removed.get(labels[value], 0) + count
    return np.flatnonzero(code == 0)


def most_popular(counts: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """The `k` of `rows` with the highest `counts[row]`, highest first; ties: the later row
    first (the order of a stable ascending sort, reversed)."""
    return rows[top_k(counts[rows], k, later_first=True)]  # rows ascending


class GetHistoryArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(20, ge=1, le=200, description="How many of the most recent items.")


class HistoryEntry(BaseModel):
    item: ItemRef
    rating: float | None = None


class GetHistoryResult(BaseModel):
    user_id: str | None
    total: int
    recent_first: list[HistoryEntry]


def get_history(args: GetHistoryArgs, ctx: ToolContext) -> BaseModel:
    """The current user's history, most recent first, with their ratings when known. Items
    here are already seen: do not recommend them unless the user asks for that."""
    ratings: list[float | None] = list(ctx.history_ratings or [None] * len(ctx.history))
    entries = [
        HistoryEntry(item=ctx.ref(i), rating=r)
        for i, r in zip(ctx.history[::-1], ratings[::-1], strict=True)
        if i in ctx.catalog
    ]
    return GetHistoryResult(
        user_id=ctx.user_id, total=len(ctx.history), recent_first=entries[: args.limit]
    )


SPECS = (
    tool_spec("lookup_items", LookupItemsArgs, lookup_items),
    tool_spec("filter_items", FilterItemsArgs, filter_items),
    tool_spec("get_history", GetHistoryArgs, get_history),
)

__all__ = ["filter_items", "get_history", "lookup_items"]
