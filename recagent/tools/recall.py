"""Recall tools: find catalog items by description, or near given items or the user's history.

Both wrap `recagent.index.ItemIndex` (in `ctx.index`), add every returned item to the turn's
candidate set with its evidence, and turn bad input into a `ToolError` with a hint.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from recagent.errors import RecagentError
from recagent.index.filters import FilterError, ItemFilters
from recagent.index.item_index import Hit
from recagent.tools.base import Evidence, ItemRef, ToolContext, ToolError, register_tool

MAX_TOOL_K = 100
NO_INDEX = ToolError(
    error="no item index is loaded, so recall is unavailable",
    hint="build it with `recagent index build`; meanwhile use the other tools",
)


class SearchItemsArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(
        description="What to look for, in plain words: mood, theme, genre, setting, era "
        "(e.g. 'dark dystopian science fiction', 'light romantic comedy set in Paris').",
    )
    k: int = Field(10, ge=1, le=MAX_TOOL_K, description="How many items to return.")
    filters: ItemFilters | None = Field(
        None,
        description="Hard constraints: genres_any, genres_none, year_min, year_max, "
        "include_ids, exclude_ids.",
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
    k: int = Field(10, ge=1, le=MAX_TOOL_K, description="How many items to return.")
    filters: ItemFilters | None = Field(None, description="Hard constraints, as in search_items.")
    exclude_seen: bool = Field(True, description="Leave out items the user already has.")


class RecallHit(BaseModel):
    """One recalled item and why."""

    model_config = ConfigDict(extra="forbid")

    item: ItemRef
    score: float
    matched_text: str
    because_of: list[ItemRef] = Field(default_factory=list)


class RecallResult(BaseModel):
    """Items found, best first. All of them are now in the candidate set."""

    model_config = ConfigDict(extra="forbid")

    tool: str
    items: list[RecallHit]
    note: str | None = None
    ok: bool = True


def _filters(args_filters: ItemFilters | None, ctx: ToolContext, exclude_seen: bool) -> ItemFilters:
    filters = args_filters or ItemFilters()
    if exclude_seen and ctx.history:
        seen = [i for i in ctx.history if i in ctx.catalog]
        filters = filters.model_copy(update={"exclude_ids": [*filters.exclude_ids, *seen]})
    return filters


def _result(tool: str, kind: str, hits: list[Hit], ctx: ToolContext, k: int) -> RecallResult:
    items = []
    for rank, hit in enumerate(hits, start=1):
        ctx.candidates.add(
            hit.item_id,
            Evidence(
                tool=tool,
                kind=kind,  # type: ignore[arg-type]
                score=round(hit.score, 4),
                rank=rank,
                matched_text=hit.text,
                because_of=hit.because_of,
            ),
        )
        items.append(
            RecallHit(
                item=ctx.ref(hit.item_id),
                score=round(hit.score, 4),
                matched_text=hit.text,
                because_of=[ctx.ref(i) for i in hit.because_of],
            )
        )
    note = None
    if len(items) < k:
        note = f"only {len(items)} items passed the filters; loosen them to see more"
    return RecallResult(tool=tool, items=items, note=note)


def _error(exc: RecagentError) -> ToolError:
    if isinstance(exc, FilterError):
        return ToolError(
            error=str(exc),
            hint="use genre names exactly as listed, and item ids from earlier results",
        )
    return ToolError(error=str(exc))


@register_tool("search_items", SearchItemsArgs)
def search_items(args: SearchItemsArgs, ctx: ToolContext) -> BaseModel:
    """Find catalog items whose description matches what the user asks for, by meaning
    (not exact words). Use it for requests like 'a dark dystopian sci-fi film' or 'something
    light and funny for kids'. Put hard constraints in `filters` (genres_any, genres_none,
    year_min, year_max, include_ids, exclude_ids) rather than in the query. Returns items
    best first with their id, title, year, genres, a similarity score and the text that
    matched; items the user already has are left out unless exclude_seen is false. Refer to
    items by their item_id."""
    if ctx.index is None:
        return NO_INDEX
    try:
        filters = _filters(args.filters, ctx, args.exclude_seen)
        hits = ctx.index.search(args.query, args.k, filters)
    except RecagentError as exc:
        return _error(exc)
    return _result("search_items", "text_match", hits, ctx, args.k)


@register_tool("similar_items", SimilarItemsArgs)
def similar_items(args: SimilarItemsArgs, ctx: ToolContext) -> BaseModel:
    """Find items similar to given items ('more like Toy Story') or, with use_history=true,
    to what this user watched recently. Give item_ids (from earlier results) or
    use_history=true, not both. Each result names, in because_of, the input items it is
    similar to, so explanations can cite them. Items the user already has and the input
    items themselves are never returned. Same `filters` as search_items."""
    if ctx.index is None:
        return NO_INDEX
    if args.use_history == bool(args.item_ids):
        return ToolError(
            error="give item_ids or set use_history=true (exactly one of them)",
            hint="to find items like the user's past choices, call with use_history=true",
        )
    try:
        filters = _filters(args.filters, ctx, args.exclude_seen)
        if args.use_history:
            if not ctx.history:
                return ToolError(
                    error="this user has no history yet",
                    hint="use search_items with a description, or similar_items with item_ids",
                )
            hits = ctx.index.similar_to_history(ctx.history, args.k, filters)
            return _result("similar_items", "similar_to_history", hits, ctx, args.k)
        hits = ctx.index.similar_to_items(args.item_ids, args.k, filters)
    except RecagentError as exc:
        return _error(exc)
    return _result("similar_items", "similar_to_items", hits, ctx, args.k)


__all__ = [
    "RecallHit",
    "RecallResult",
    "SearchItemsArgs",
    "SimilarItemsArgs",
    "search_items",
    "similar_items",
]
