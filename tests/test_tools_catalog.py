"""The catalog and profile tools: typed results, evidence in the candidate set, typed errors,
and the LLM-worded profile cached per (user, history, prompt, model)."""

from __future__ import annotations

from pathlib import Path

from langchain_core.messages import AIMessage

from recagent.agent.profile_writer import ProfileWriter
from recagent.config import LLMConfig
from recagent.data.dataset import Dataset
from recagent.data.profile import compute_profile
from recagent.prompts.registry import PromptRegistry
from recagent.tools.base import ToolContext, ToolError, result_text
from recagent.tools.registry import TOOLS, Runner, langchain_tools, run_tool
from tests.fakes import ScriptedChatModel


def _runner(ctx: ToolContext) -> Runner:
    """Each call run as is (the loop's executor repairs first; here the tool's own checks)."""
    return lambda name, args: result_text(run_tool(name, args, ctx))


def _ctx(ds: Dataset, user: str | None = "3") -> ToolContext:
    history = ds.user_history(user) if user else []
    return ToolContext(dataset=ds, user_id=user, history=history)


def test_every_tool_has_prompt_text_and_a_schema() -> None:
    expected = {
        "search_items",
        "similar_items",
        "score_candidates",
        "summarize_profile",
        "lookup_items",
        "filter_items",
        "get_history",
    }
    assert expected <= set(TOOLS)
    for spec in TOOLS.values():
        assert len(spec.description) > 60, spec.name
        assert spec.args.model_json_schema()["type"] == "object"


def test_lookup_is_typo_tolerant_and_adds_evidence(mini_movies: Dataset) -> None:
    ctx = _ctx(mini_movies)
    result = run_tool(
        "lookup_items", {"titles": ["toy stroy", "Blade Runer", "Nonexistent Film"]}, ctx
    )
    assert result.results[0].matches[0].item.item_id == "1"
    assert result.results[1].matches[0].item.title == "Blade Runner"
    assert result.not_found == ["Nonexistent Film"] and result.hint
    assert ctx.candidates.evidence("1")[0].kind == "title_match"


def test_filter_items_on_candidates_and_catalog(mini_movies: Dataset) -> None:
    ctx = _ctx(mini_movies)
    run_tool("filter_items", {"from_catalog": True, "genres_any": ["sci fi"], "k": 50}, ctx)
    assert ctx.candidates.ids() and all(
        "Sci-Fi" in mini_movies.catalog[i].genres for i in ctx.candidates.ids()
    )
    assert not set(ctx.candidates.ids()) & set(ctx.history)
    kept = run_tool("filter_items", {"genres_none": ["Horror"], "year_min": 1960}, ctx)
    assert kept.kept == len(ctx.candidates)
    for item_id in ctx.candidates.ids():
        item = mini_movies.catalog[item_id]
        assert "Horror" not in item.genres and item.year >= 1960
    assert ctx.candidates.returned("2") or "2" in ctx.history  # Alien: returned, then dropped


def test_filter_items_errors_are_typed(mini_movies: Dataset) -> None:
    ctx = _ctx(mini_movies)
    bad_genre = run_tool("filter_items", {"genres_any": ["telenovela"]}, ctx)
    assert isinstance(bad_genre, ToolError) and "Sci-Fi" in bad_genre.error
    bad_ids = run_tool("filter_items", {"item_ids": ["999"]}, ctx)
    assert isinstance(bad_ids, ToolError) and "999" in bad_ids.error
    swapped = run_tool("filter_items", {"year_min": 1990, "year_max": 1980}, ctx)
    assert isinstance(swapped, ToolError)
    assert isinstance(run_tool("lookup_items", {"titles": []}, ctx), ToolError)


def test_get_history_and_profile(mini_movies: Dataset) -> None:
    ctx = _ctx(mini_movies)
    ctx.history_ratings = [4.0] * len(ctx.history)
    history = run_tool("get_history", {"limit": 3}, ctx)
    assert [e.item.item_id for e in history.recent_first] == ctx.history[::-1][:3]
    profile = run_tool("summarize_profile", {}, ctx)
    assert profile.profile.n_items == len(ctx.history) and profile.summary
    assert profile.profile.top_genres[0].share > 0


def test_langchain_tools_bind_the_context(mini_movies: Dataset) -> None:
    ctx = _ctx(mini_movies)
    tools = {t.name: t for t in langchain_tools(list(TOOLS), _runner(ctx))}
    text = tools["get_history"].invoke({"limit": 2})
    assert '"user_id":"3"' in text
    assert "error" in tools["filter_items"].invoke({"k": "lots"})


def test_profile_writer_is_cached(mini_movies: Dataset, tmp_path: Path) -> None:
    model = ScriptedChatModel(script=[AIMessage(content="Loves sci-fi and  horror.")])
    writer = ProfileWriter(model, "fake", PromptRegistry(), tmp_path / "profiles", LLMConfig())
    profile = compute_profile(mini_movies.catalog, mini_movies.user_history("3"), user_id="3")
    assert writer(profile) == "Loves sci-fi and horror."
    assert writer(profile) == "Loves sci-fi and horror."  # second time from the cache
    assert len(model.calls) == 1
    system, human = model.calls[0]["messages"]
    assert "data" in system.content and '"n_items"' in human.content


def test_llm_facing_schemas_have_no_length_bounds() -> None:
    """llama.cpp compiles tool schemas to grammars and crashed on `maxItems: 1000`."""
    from recagent.tools.base import llm_schema

    for spec in TOOLS.values():
        text = str(llm_schema(spec.args))
        assert "maxItems" not in text and "maxLength" not in text and "'title'" not in text


def test_the_catalog_mask_refuses_exactly_what_admits_refuses(ml100k: Dataset) -> None:
    """filter_items(from_catalog) and the index's filters work on arrays (a million items
    in milliseconds); item by item they must say what `Constraints.admits` says, and list the
    most popular kept items in the order of a full sort."""
    import numpy as np

    from recagent.data.constraints import Constraints
    from recagent.index.filters import REASONS, catalog_mask
    from recagent.tools.catalog import _REASONS

    catalog = ml100k.catalog
    ids = catalog.item_ids
    cases = [
        Constraints(genres_any=["sci fi", "horror"], year_min=1980),
        Constraints(genres_all=["Comedy", "Romance"], genres_none=["Drama"], year_max=1995),
        Constraints(include_ids=ids[:300], exclude_ids=ids[100:120], genres_none=["Action"]),
        Constraints(exclude_ids=ids[::7], year_min=1990, year_max=1990),
    ]
    mask = catalog_mask(catalog)
    assert catalog_mask(catalog) is mask  # built once per catalog
    for raw in cases:
        c = raw.resolve(catalog)
        code = mask.reasons(c)
        expected = [c.admits(item) for item in catalog]
        got = [None if v == 0 else REASONS[v - 1] for v in code.tolist()]
        assert got == expected
        assert mask.allowed(c).tolist() == [e is None for e in expected]

    user = str(ml100k.interactions.user_ids[0])
    ctx = _ctx(ml100k, user)
    args = {"from_catalog": True, "genres_any": ["comedy"], "year_min": 1990, "k": 40}
    result = run_tool("filter_items", args, ctx)
    c = Constraints(genres_any=["comedy"], year_min=1990).resolve(catalog)
    seen = set(ctx.history)
    removed: dict[str, int] = {}
    counts = ml100k.popularity
    kept = []
    for i in counts[1:].argsort(kind="stable")[::-1]:  # the full sort, as it was done
        item = catalog.at(int(i) + 1)
        why = "already seen" if item.item_id in seen else None
        if why is None and (reason := c.admits(item)) is not None:
            why = _REASONS[reason]
        if why:
            removed[why] = removed.get(why, 0) + 1
        else:
            kept.append(item.item_id)
    assert result.kept == len(kept) and result.removed == removed
    assert [ref.item_id for ref in result.items] == kept[:40]
    assert np.isin(kept[:40], ctx.candidates.ids()).all()


def test_profile_reasoning_reads_what_the_items_are_like(
    mini_movies: Dataset, tmp_path: Path
) -> None:
    """KAR's preference reasoning: with item knowledge, the profile prompt says what the
    person's items are like; cached per history like any profile."""
    from recagent.data.catalog import Catalog

    history = mini_movies.user_history("3")
    knowledge = {history[-1]: "Mood tone: bleak. Themes: survival."}  # the latest item
    catalog = Catalog(
        [
            it.model_copy(update={"knowledge": knowledge.get(it.item_id, "")})
            for it in mini_movies.catalog
        ]
    )
    model = ScriptedChatModel(script=[AIMessage(content="Likes bleak survival stories.")] * 2)
    writer = ProfileWriter(
        model, "fake", PromptRegistry(), tmp_path / "profiles", LLMConfig(), catalog=catalog
    )
    profile = compute_profile(catalog, history, user_id="3")
    assert writer(profile) == writer(profile) == "Likes bleak survival stories."
    assert len(model.calls) == 1
    human = model.calls[0]["messages"][1].content
    assert "what_their_items_are_like" in human and "Themes: survival." in human
    longer = compute_profile(catalog, [*history, catalog.id_at(40)], user_id="3")
    writer(longer)  # another history: written again
    assert len(model.calls) == 2
