"""A turn's events in words, for people watching it run: "searching items for 'dark sci-fi'",
"scoring 100 candidates with SASRec", "checking the answer".

`ChatSession.ask(on_event=...)` reports "step" (a stage, already in words), "tool" (a tool
the turn runs: name and arguments, told as it starts), "tool_call" (a call the model makes)
and "token" (model text). `describe` turns the tool events into one line each.
"""

from __future__ import annotations

from typing import Any

from recagent.agent.plan import Plan
from recagent.data.constraints import Constraints
from recagent.models.registry import title as model_title
from recagent.tools.base import ToolContext

MAX_NAMED = 3  # items named in a step before "and N more"
MODEL_CALLS = {
    "read_request": "the model reads the request and writes its plan",
    "final_answer": "the model picks and explains its answer",
}


def _titles(ctx: ToolContext, item_ids: list[str]) -> str:
    known = [ctx.catalog[i].label for i in item_ids if i in ctx.catalog]
    shown = ", ".join(known[:MAX_NAMED])
    more = len(known) - MAX_NAMED
    return shown + (f" and {more} more" if more > 0 else "") if known else "the given items"


def _filters(args: dict[str, Any]) -> str:
    raw = args.get("filters") or {}
    if not isinstance(raw, dict):
        return ""
    fields = set(Constraints.model_fields) - {"include_ids", "exclude_ids"}
    try:
        words = Constraints.model_validate({k: v for k, v in raw.items() if k in fields}).describe()
    except ValueError:
        return ""
    return f" ({words})" if words else ""


def scorer_name(ctx: ToolContext, name: str | None = None) -> str:
    """What people call the model `name` (default: the one that scores by default): SASRec,
    HSTU, BERT4Rec, BST, fusion, popularity. The one place a scorer is named in words."""
    name = name or (ctx.scorer.name if ctx.scorer is not None else None)
    return model_title(name) if name else "the scorer"


def describe(kind: str, data: Any, ctx: ToolContext) -> str | None:
    """One line for a "plan", "tool" or "tool_call" event (None for other kinds)."""
    if kind == "plan" and isinstance(data, Plan):
        tools = [s.tool for s in data.steps]
        who = {"rules": "the planner's", "plan": "the model's", "loop": "the model's"}[data.mode]
        return f"{who} plan: {len(tools)} steps ({', '.join(dict.fromkeys(tools))})"
    if kind == "tool_call":
        name, _ = data
        return MODEL_CALLS.get(name, f"the model calls {name}")
    if kind != "tool":
        return None
    name, args = data
    if name == "search_items":
        return f"searching items for '{args.get('query', '')}'{_filters(args)}"
    if name == "similar_items":
        if args.get("use_history"):
            return f"finding items like your history{_filters(args)}"
        return f"finding items like {_titles(ctx, list(args.get('item_ids') or []))}"
    if name == "score_candidates":
        ids = args.get("item_ids")
        model = scorer_name(ctx, args.get("model"))
        how_many = len(ids) if ids is not None else len(ctx.candidates)
        if args.get("from_catalog") or (ids is None and not how_many):
            return f"asking {model} for this history's likely next items"
        return f"scoring {how_many} candidates with {model}"
    if name == "suggest_titles":
        titles = list(args.get("titles") or [])
        return (
            "looking up the model's own picks: "
            + ", ".join(f"'{t}'" for t in titles[:MAX_NAMED])
            + (f" and {len(titles) - MAX_NAMED} more" if len(titles) > MAX_NAMED else "")
        )
    if name == "filter_items":
        if args.get("from_catalog"):
            return f"adding catalog items that fit{_filters({'filters': args})}"
        return f"applying the constraints{_filters({'filters': args})}"
    if name == "lookup_items":
        titles = list(args.get("titles") or [])
        return "looking up " + ", ".join(f"'{t}'" for t in titles[:MAX_NAMED])
    if name == "summarize_profile":
        return "summarizing the user's profile"
    if name == "get_history":
        return "reading the user's history"
    return f"calling {name}"


__all__ = ["describe", "scorer_name"]
