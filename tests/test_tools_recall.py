"""search_items / similar_items: schemas the LLM sees, results, evidence, typed errors."""

from __future__ import annotations

import json

import pytest

from recagent.index.item_index import ItemIndex
from recagent.tools.base import ToolContext, ToolError, result_text
from recagent.tools.recall import RecallResult
from recagent.tools.registry import TOOLS, Runner, langchain_tools, run_tool


def _runner(ctx: ToolContext) -> Runner:
    """Each call run as is (the loop's executor repairs first; here the tool's own checks)."""
    return lambda name, args: result_text(run_tool(name, args, ctx))


@pytest.fixture
def ctx(recall_index: ItemIndex) -> ToolContext:
    from recagent.data.dataset import Dataset

    dataset = Dataset("ml-100k", recall_index.catalog, None, None)  # type: ignore[arg-type]
    return ToolContext(dataset=dataset, user_id="1", history=["1", "11"], index=recall_index)


def test_tools_are_registered_with_prompt_text_and_schemas() -> None:
    for name in ("search_items", "similar_items"):
        spec = TOOLS[name]
        assert len(spec.description) > 200 and "item_id" in spec.description
        props = spec.args.model_json_schema()["properties"]
        assert {"k", "filters", "exclude_seen"} <= props.keys()
    assert "genres_any" in json.dumps(TOOLS["search_items"].args.model_json_schema())


def test_search_items_returns_refs_and_records_evidence(ctx: ToolContext) -> None:
    result = run_tool("search_items", {"query": "space", "k": 3}, ctx)
    assert isinstance(result, RecallResult) and len(result.items) == 3
    ids = [hit.item.item_id for hit in result.items]
    assert not set(ids) & {"1", "11"}  # the user's history is left out by default
    assert all(hit.item.title and hit.matched_text for hit in result.items)
    assert ctx.candidates.ids() == ids
    evidence = ctx.candidates.evidence(ids[0])[0]
    assert (evidence.tool, evidence.kind, evidence.rank) == ("search_items", "text_match", 1)
    assert evidence.matched_text == result.items[0].matched_text
    seen = run_tool("search_items", {"query": "space", "k": 3, "exclude_seen": False}, ctx)
    assert "1" in [h.item.item_id for h in seen.items]  # type: ignore[attr-defined]


def test_similar_items_from_ids_and_from_history(ctx: ToolContext) -> None:
    result = run_tool("similar_items", {"item_ids": ["3"], "k": 2}, ctx)
    assert isinstance(result, RecallResult)
    assert all(h.because_of[0].item_id == "3" for h in result.items)
    first = result.items[0].item.item_id
    assert ctx.candidates.evidence(first)[0].kind == "similar_to_items"
    assert ctx.candidates.evidence(first)[0].because_of == ["3"]

    result = run_tool(
        "similar_items", {"use_history": True, "k": 2, "filters": {"genres_any": ["sci-fi"]}}, ctx
    )
    assert isinstance(result, RecallResult) and len(result.items) == 2
    for hit in result.items:
        assert hit.item.item_id not in {"1", "11"} and "Sci-Fi" in hit.item.genres
        assert {b.item_id for b in hit.because_of} <= {"1", "11"}
        kinds = [e.kind for e in ctx.candidates.evidence(hit.item.item_id)]
        assert "similar_to_history" in kinds


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("search_items", {"query": "  "}, "query is empty"),
        ("search_items", {"query": "x", "k": 0}, "k"),
        ("search_items", {"query": "x", "k": 10_000}, "k"),
        ("search_items", {"query": "x", "filters": {"genres_any": ["cooking"]}}, "valid genres"),
        ("search_items", {"query": "x", "filters": {"genre": ["x"]}}, "genre"),
        ("search_items", {"query": "x", "filters": {"exclude_ids": ["nope"]}}, "'nope'"),
        ("similar_items", {"item_ids": ["nope"]}, "'nope'"),
        ("similar_items", {}, "exactly one"),
        ("similar_items", {"item_ids": ["1"], "use_history": True}, "exactly one"),
    ],
)
def test_bad_arguments_become_tool_errors(ctx: ToolContext, name, args, message) -> None:  # type: ignore[no-untyped-def]
    result = run_tool(name, args, ctx)
    assert isinstance(result, ToolError), result
    assert message in result.error
    assert ctx.calls[-1].ok is False and len(ctx.candidates) == 0


def test_missing_index_and_empty_history(ctx: ToolContext) -> None:
    ctx.history = []
    result = run_tool("similar_items", {"use_history": True}, ctx)
    assert isinstance(result, ToolError) and result.hint and "search_items" in result.hint
    ctx.index = None
    for name, args in (("search_items", {"query": "x"}), ("similar_items", {"item_ids": ["1"]})):
        result = run_tool(name, args, ctx)
        assert isinstance(result, ToolError) and "recagent index build" in (result.hint or "")


def test_langchain_tools_call_through(ctx: ToolContext) -> None:
    tools = {t.name: t for t in langchain_tools(["search_items", "similar_items"], _runner(ctx))}
    text = tools["search_items"].invoke({"query": "paris", "k": 2})
    payload = json.loads(text)
    assert payload["ok"] is True and len(payload["items"]) == 2
    bad = json.loads(tools["search_items"].invoke({"query": "paris", "k": -1}))
    assert bad["ok"] is False
