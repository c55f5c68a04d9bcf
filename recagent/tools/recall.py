"""Recall tools: find catalog items by description, or near given items or the user's history.

Both wrap `recagent.index.ItemIndex` (in `ctx.index`); `similar_items` also returns the items
people consume together with the given ones (`ctx.pairs`, `recagent.data.pairs`). Every
returned item joins the turn's candidate set with its evidence; bad input becomes a
`ToolError` with a hint.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from recagent.data.constraints import ConstraintError, Constraints
from recagent.errors import RecagentError
from recagent.index.item_index import Hit
from recagent.tools.base import (
    COWATCH,
    Evidence,
    ItemRef,
    ToolContext,
    ToolError,
    similarity_detail,
    tool_spec,
)

MAX_TOOL_K = 100
HISTORY_SEEDS = 20  # the most recent history items that "watched together" starts from
NO_INDEX = ToolError(
    error="no item index is loaded, so recall is unavailable",
    hint="build it with `recagent index build`; meanwhile use the other tools",
)


class SearchItemsArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(
        description="What to look for, in the user's own words: mood, theme, setting.",
    )
    k: int = Field(10, ge=1, le=MAX_TOOL_K, description="How many items to return.")
    filters: Constraints | None = Field(
        None,
        description="Hard constraints: genres_all, genres_any, genres_none, year_min, "
        "year_max, include_ids, exclude_ids.",
    )
    exclude_seen: bool = Field(True, description="Leave out items the user already has.")

    @field_validator("query")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        value = " ".join(value.split())
        if not value:
            raise ValueError("the query is empty; describe what the user is looking for")
        return value


class SimilarItemsArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_ids: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Item ids to find neighbours of (ids from earlier tool results).",
    )
    use_history: bool = Field(False, description="Use the user's own history instead of item_ids.")
    liked: bool = Field(
        False,
        description="true: the person said they liked item_ids (a taste, like a history): "
        "rank by what people who liked them go on to like; false: 'more like these': "
        "look-alikes that the same people liked.",
    )
    combine: Literal["any", "all"] = Field(
        "any",
        description="any: near any of item_ids; all: near every one of them ('something "
        "between Alien and Toy Story').",
    )
    k: int = Field(10, ge=1, le=MAX_TOOL_K, description="How many items to return.")
    filters: Constraints | None = Field(None, description="Hard constraints, as in search_items.")
    exclude_seen: bool = Field(True, description="Leave out items the user already has.")


class RecallHit(BaseModel):
    """One recalled item and why."""

    model_config = ConfigDict(extra="forbid")

    item: ItemRef
    score: float
    how: str = Field(
        "similar text",
        description="similar text; looks alike and/or liked by the same people (the "
        "similarity space that found it); or watched together.",
    )
    matched_text: str = ""
    because_of: list[ItemRef] = Field(default_factory=list)


class RecallResult(BaseModel):
    """Items found, best first. All of them are now in the candidate set."""

    model_config = ConfigDict(extra="forbid")

    tool: str
    items: list[RecallHit]
    note: str | None = None
    ok: bool = True


def _filters(args_filters: Constraints | None, ctx: ToolContext, exclude_seen: bool) -> Constraints:
    filters = (args_filters or Constraints()).resolve(ctx.catalog)
    if exclude_seen and ctx.history:
        filters = filters.excluding(i for i in ctx.history if i in ctx.catalog)
    return filters


def _result(
    tool: str,
    kind: str,
    hits: list[Hit],
    ctx: ToolContext,
    k: int,
    weak_below: float = 0.0,
    how: str | None = None,
) -> RecallResult:
    items = []
    for rank, hit in enumerate(hits, start=1):
        weak = hit.score < weak_below
        said = similarity_detail(hit.carried_by) if hit.carried_by else how
        detail = f"weak match (below {weak_below:.2f})" if weak else said
        ctx.candidates.add(
            hit.item_id,
            Evidence(
                tool=tool,
                kind=kind,  # type: ignore[arg-type]
                score=round(hit.score, 4),
                rank=rank,
                matched_text=hit.text,
                because_of=hit.because_of,
                detail=detail,
            ),
        )
        items.append(
            RecallHit(
                item=ctx.ref(hit.item_id),
                score=round(hit.score, 4),
                how=said or "similar text",
                matched_text=hit.text,
                because_of=[ctx.ref(i) for i in hit.because_of],
            )
        )
    note = None
    if len(items) < k:
        note = f"only {len(items)} items passed the filters; loosen them to see more"
    return RecallResult(tool=tool, items=items, note=note)


def _error(exc: RecagentError) -> ToolError:
    if isinstance(exc, ConstraintError):
        return ToolError(
            error=str(exc),
            hint="use genre names exactly as listed, and item ids from earlier results",
        )
    return ToolError(error=str(exc))


def search_items(args: SearchItemsArgs, ctx: ToolContext) -> BaseModel:
    """Find catalog items whose description matches what the user asks for, by meaning
    (not exact words): the mood, theme or setting in the user's own words. Put hard
    constraints in `filters` (genres, years, ids) rather than in the query. Returns items
    best first with their id, title, year, genres, a similarity score and the text that
    matched, and says which are only weak matches; items the user already has are left out
    unless exclude_seen is false. Refer to items by their item_id."""
    if ctx.index is None:
        return NO_INDEX
    try:
        filters = _filters(args.filters, ctx, args.exclude_seen)
        hits = ctx.index.search(args.query, args.k, filters)
    except RecagentError as exc:
        return _error(exc)
    threshold = ctx.match_threshold
    result = _result("search_items", "text_match", hits, ctx, args.k, weak_below=threshold)
    strong = sum(h.score >= threshold for h in hits)
    if hits and strong < len(hits):
        result.note = (
            f"only {strong} of {len(hits)} items match the query well (similarity >= "
            f"{threshold:.2f}); the others are weak matches: do not call them matches"
        )
    return result


def similar_items(args: SimilarItemsArgs, ctx: ToolContext) -> BaseModel:
    """Find items like given items ('more like Toy Story') or, with use_history=true, like
    what this user watched recently: up to k that look alike and/or that the same people
    liked (`how` says which), and up to k that people who liked those items also liked
    (how="watched together"). Give item_ids (from earlier results) or use_history=true, not
    both; liked=true when the person said they liked item_ids (a taste, not "more like
    these"); combine="all" keeps to items near every one of item_ids. Each result names, in
    because_of, the input items behind it, so explanations can cite them. Items the user
    already has and the input items themselves are never returned. Same `filters` as
    search_items."""
    if ctx.index is None and ctx.pairs is None:
        return NO_INDEX
    if args.use_history == bool(args.item_ids):
        return ToolError(
            error="give item_ids or set use_history=true (exactly one of them)",
            hint="to find items like the user's past choices, call with use_history=true",
        )
    if args.use_history and not ctx.history:
        return ToolError(
            error="this user has no history yet",
            hint="use search_items with a description, or similar_items with item_ids",
        )
    if unknown := ctx.unknown_ids(args.item_ids):
        return ToolError(
            error=f"unknown item id(s): {', '.join(repr(i) for i in unknown[:5])}",
            hint="use item ids exactly as other tools returned them",
        )
    kind = "similar_to_history" if args.use_history else "similar_to_items"
    seeds = ctx.history[-HISTORY_SEEDS:] if args.use_history else list(args.item_ids)
    try:
        filters = _filters(args.filters, ctx, args.exclude_seen)
        hits: list[Hit] = []
        space = ctx.similar_index or ctx.index
        if space is not None:
            if args.use_history:
                hits = space.similar_to_history(ctx.history, args.k, filters)
            elif args.combine == "all" and len(args.item_ids) > 1:
                hits = space.similar_to_all(args.item_ids, args.k, filters)
            else:
                hits = space.similar_to_items(args.item_ids, args.k, filters, taste=args.liked)
        # the co-watch space's hits are all COWATCH; a blend's say what carried each one
        how = COWATCH if ctx.similar_index is not None else None
        result = _result("similar_items", kind, hits, ctx, args.k, how=how)
        if ctx.pairs is not None:
            together = ctx.pairs.related(seeds, args.k, filters.excluding(seeds))
            _add_co_watched(result, together, ctx)
    except RecagentError as exc:
        return _error(exc)
    if ctx.index is None:
        result.note = "no item index: only items watched together were found"
    return result


def _add_co_watched(
    result: RecallResult, together: list[tuple[str, float, list[str]]], ctx: ToolContext
) -> None:
    by_id = {hit.item.item_id: hit for hit in result.items}
    for rank, (item_id, score, because) in enumerate(together, start=1):
        ctx.candidates.add(
            item_id,
            Evidence(
                tool="similar_items",
                kind="co_watched",
                score=round(score, 4),
                rank=rank,
                because_of=because,
            ),
        )
        if item_id in by_id:
            by_id[item_id].how = f"{by_id[item_id].how}, watched together"
            continue
        result.items.append(
            RecallHit(
                item=ctx.ref(item_id),
                score=round(score, 4),
                how="watched together",
                because_of=[ctx.ref(i) for i in because],
            )
        )


SPECS = (
    tool_spec("search_items", SearchItemsArgs, search_items),
    tool_spec("similar_items", SimilarItemsArgs, similar_items),
)

__all__ = [
    "RecallHit",
    "RecallResult",
    "SearchItemsArgs",
    "SimilarItemsArgs",
    "search_items",
    "similar_items",
]
