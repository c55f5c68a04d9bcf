"""A turn's events in words, as the web page shows them while the agent works."""

from __future__ import annotations

from recagent.agent.steps import describe
from recagent.data.dataset import Dataset
from recagent.tools.base import Evidence, ToolContext


def test_each_tool_call_in_words(mini_movies: Dataset) -> None:
    ctx = ToolContext(dataset=mini_movies)
    for item_id in ("1", "2", "3"):
        ctx.candidates.add(item_id, Evidence(tool="search_items", kind="text_match"))
    scifi_80s = {"genres_all": ["Sci-Fi"], "year_min": 1980, "year_max": 1989}
    cases = [
        ("search_items", {"query": "dark", "filters": scifi_80s}),
        ("similar_items", {"item_ids": ["4", "1", "2", "3"]}),
        ("similar_items", {"use_history": True}),
        ("score_candidates", {"item_ids": None}),
        ("filter_items", {"genres_none": ["Horror"], "from_catalog": True}),
        ("lookup_items", {"titles": ["Heat"]}),
        ("summarize_profile", {}),
    ]
    assert [describe("tool", case, ctx) for case in cases] == [
        "searching items for 'dark' (Sci-Fi, 1980-1989)",
        "finding items like Heat (1995), Toy Story (1995), Alien (1979) and 1 more",
        "finding items like your history",
        "scoring 3 candidates with the scorer",
        "adding catalog items that fit (no Horror)",
        "looking up 'Heat'",
        "summarizing the user's profile",
    ]
    said = describe("tool_call", ("read_request", {}), ctx)
    assert said == "the model reads the request and writes its plan"
    assert describe("step", "checking the answer", ctx) is None
    ctx.candidates.clear()
    asked = describe("tool", ("score_candidates", {"item_ids": None}), ctx)
    assert asked == "asking the scorer for this history's likely next items"
