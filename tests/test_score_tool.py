"""The `score_candidates` tool on a tiny trained SASRec: schema, output, evidence, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recagent.models.popularity import PopularityScorer
from recagent.tools.base import Evidence, ToolContext, ToolError, result_text
from recagent.tools.registry import TOOLS, Runner, langchain_tools, run_tool
from recagent.tools.score import ScoreCandidatesResult


def _runner(ctx: ToolContext) -> Runner:
    """Each call run as is (the loop's executor repairs first; here the tool's own checks)."""
    return lambda name, args: result_text(run_tool(name, args, ctx))


def _ctx(tiny_sasrec, history: list[str] | None = None, scorer=None) -> ToolContext:
    ds = tiny_sasrec.dataset
    return ToolContext(
        dataset=ds,
        user_id="1",
        history=ds.user_history("1")[:-1] if history is None else history,
        scorer=tiny_sasrec.scorer if scorer is None else scorer,
    )


def test_schema_is_what_the_llm_sees(tiny_sasrec) -> None:
    spec = TOOLS["score_candidates"]
    assert "next" in spec.description and "history" in spec.description
    props = spec.args.model_json_schema()["properties"]
    assert set(props) == {"item_ids", "from_catalog", "history", "user_id", "k", "model"}
    (tool,) = langchain_tools(["score_candidates"], _runner(_ctx(tiny_sasrec)))
    assert tool.name == "score_candidates"
    assert set(tool.args) == {"item_ids", "from_catalog", "history", "user_id", "k", "model"}


def test_ranks_the_turns_candidates_and_records_evidence(tiny_sasrec) -> None:
    ctx = _ctx(tiny_sasrec)
    history = ctx.history
    expected_next = tiny_sasrec.dataset.user_history("1")[-1]
    seen = history[-1]
    for item_id in ["3", expected_next, "1", seen]:
        ctx.candidates.add(item_id, Evidence(tool="search_items", kind="text_match"))
    result = run_tool("score_candidates", {"k": 2}, ctx)
    assert isinstance(result, ScoreCandidatesResult), result
    assert result.model == "sasrec"
    assert result.scored == 3 and result.seen == [seen]
    assert [s.rank for s in result.items] == [1, 2]
    assert result.items[0].item.item_id == expected_next  # the cycle continues
    assert result.items[0].score >= result.items[1].score
    assert result.history_used == min(len(history), 8)
    assert 1 <= len(result.attended) <= 3
    assert all(a.item_id in history for a in result.attended)
    # every scored candidate got sequential evidence, the top-k and the rest alike
    for item_id in ["3", expected_next, "1"]:
        ev = ctx.candidates.evidence(item_id)[-1]
        assert ev.kind == "sequential" and ev.tool == "score_candidates"
        assert ev.because_of == [a.item_id for a in result.attended]
    assert ctx.candidates.evidence(seen)[-1].kind == "text_match"


def test_without_candidates_it_ranks_the_whole_catalog(tiny_sasrec) -> None:
    ctx = _ctx(tiny_sasrec)
    result = run_tool("score_candidates", {"k": 5}, ctx)
    assert isinstance(result, ScoreCandidatesResult)
    ids = [s.item.item_id for s in result.items]
    assert len(ids) == 5 and not set(ids) & set(ctx.history)
    assert result.scored == tiny_sasrec.dataset.n_items - len(set(ctx.history))
    assert ctx.candidates.ids() == ids


def test_explicit_history_and_known_user(tiny_sasrec) -> None:
    ctx = _ctx(tiny_sasrec, history=[])
    by_history = run_tool("score_candidates", {"history": ["4", "5", "6"], "k": 1}, ctx)
    assert by_history.items[0].item.item_id == "7"
    by_user = run_tool("score_candidates", {"user_id": "2", "item_ids": ["1", "2"]}, ctx)
    assert isinstance(by_user, ScoreCandidatesResult)
    both = run_tool("score_candidates", {"user_id": "2", "history": ["1"]}, ctx)
    assert isinstance(both, ToolError)


def test_empty_history_and_popularity_fallback(tiny_sasrec) -> None:
    ctx = _ctx(tiny_sasrec, history=[])
    result = run_tool("score_candidates", {"item_ids": ["1", "2", "3"]}, ctx)
    assert result.history_used == 0 and result.attended == []
    assert ctx.candidates.evidence("1")[-1].kind == "popularity"
    pop = _ctx(tiny_sasrec, scorer=PopularityScorer.from_dataset(tiny_sasrec.dataset))
    result = run_tool("score_candidates", {"item_ids": ["1", "2"]}, pop)
    assert result.model == "popularity"


def test_errors_come_back_as_tool_errors(tiny_sasrec) -> None:
    ctx = _ctx(tiny_sasrec)
    unknown = run_tool("score_candidates", {"item_ids": ["1", "nope"]}, ctx)
    assert isinstance(unknown, ToolError) and "nope" in unknown.error and unknown.hint
    bad_history = run_tool("score_candidates", {"history": ["zzz"]}, ctx)
    assert isinstance(bad_history, ToolError) and "zzz" in bad_history.error
    no_user = run_tool("score_candidates", {"user_id": "999"}, ctx)
    assert isinstance(no_user, ToolError) and no_user.hint
    bad_k = run_tool("score_candidates", {"k": 0}, ctx)
    assert isinstance(bad_k, ToolError) and "k" in bad_k.error
    no_model = ToolContext(dataset=tiny_sasrec.dataset, history=["1"])
    missing = run_tool("score_candidates", {}, no_model)
    assert isinstance(missing, ToolError) and "recagent train sasrec" in missing.hint


def test_langchain_tool_returns_compact_json(tiny_sasrec) -> None:
    ctx = _ctx(tiny_sasrec)
    (tool,) = langchain_tools(["score_candidates"], _runner(ctx))
    out = json.loads(tool.invoke({"item_ids": ["1", "2", "3"], "k": 2}))
    assert [i["rank"] for i in out["items"]] == [1, 2]
    err = json.loads(tool.invoke({"item_ids": ["x"]}))
    assert err["ok"] is False


def _shelf_ctx(tiny_models, default: str = "sasrec") -> ToolContext:
    from recagent.models.scorers import ScorerShelf

    ws, ds = tiny_models.workspace, tiny_models.dataset
    shelf = ScorerShelf(ws, ds)
    return ToolContext(
        dataset=ds,
        user_id="1",
        history=ds.user_history("1")[:-1],
        scorer=shelf.get(default),
        scorers=shelf,
    )


@pytest.mark.parametrize("model", ["hstu", "bert4rec", "bst", "sasrec"])
def test_any_sequential_model_gives_sequential_evidence(tiny_models, model: str) -> None:
    ctx = _shelf_ctx(tiny_models)
    candidates = [i for i in ctx.dataset.catalog.item_ids if i not in ctx.history][:4]
    for item_id in candidates:
        ctx.candidates.add(item_id, Evidence(tool="search_items", kind="text_match"))
    result = run_tool("score_candidates", {"k": 3, "model": model}, ctx)
    assert isinstance(result, ScoreCandidatesResult), result
    assert result.model == model and result.scored == len(candidates)
    assert 1 <= len(result.attended) <= 3
    assert all(a.item_id in ctx.history for a in result.attended)
    for item_id in candidates:
        ev = ctx.candidates.evidence(item_id)[-1]
        assert ev.kind == "sequential" and ev.because_of == [a.item_id for a in result.attended]


def test_bst_reranks_the_candidates_it_is_given(tiny_models) -> None:
    ctx = _shelf_ctx(tiny_models)
    bst = ctx.scorers.get("bst")
    history = ctx.history
    candidates = [i for i in ctx.dataset.catalog.item_ids if i not in history][:5]
    result = run_tool("score_candidates", {"item_ids": candidates, "k": 5, "model": "bst"}, ctx)
    assert isinstance(result, ScoreCandidatesResult)
    expected = bst.score(history, candidates)
    order = [candidates[i] for i in np.argsort(-expected, kind="stable")]
    assert [s.item.item_id for s in result.items] == order


def test_an_explicit_model_scores_instead_of_the_default(tiny_models) -> None:
    ctx = _shelf_ctx(tiny_models, default="sasrec")
    hstu = ctx.scorers.get("hstu")
    candidates = [i for i in ctx.dataset.catalog.item_ids if i not in ctx.history][:6]
    args = {"item_ids": candidates, "k": 6}
    by_hstu = run_tool("score_candidates", {**args, "model": "hstu"}, ctx)
    by_default = run_tool("score_candidates", args, ctx)
    assert isinstance(by_hstu, ScoreCandidatesResult) and by_hstu.model == "hstu"
    assert isinstance(by_default, ScoreCandidatesResult) and by_default.model == "sasrec"
    expected = hstu.score(ctx.history, candidates)
    assert [s.score for s in by_hstu.items] == sorted(
        (round(float(v), 4) for v in expected), reverse=True
    )
    assert ctx.scorer.name == "sasrec"  # naming a model does not change the default


def test_an_unknown_or_untrained_model_is_a_tool_error(tiny_models, tiny_sasrec) -> None:
    from recagent.models.registry import ALL

    result = run_tool("score_candidates", {"model": "lru"}, _shelf_ctx(tiny_models))
    assert isinstance(result, ToolError) and "unknown model 'lru'" in result.error
    assert all(name in result.error for name in ALL)  # every model there is
    trained = "sasrec, hstu, bert4rec, bst"
    assert result.hint is not None and trained in result.hint and "popularity" in result.hint
    assert "default (sasrec)" in result.hint
    result = run_tool("score_candidates", {"model": "hstu"}, _ctx(tiny_sasrec))
    assert isinstance(result, ToolError) and "only the default model (sasrec)" in result.error
    from recagent.models.scorers import ScorerShelf
    from recagent.workspace import Workspace

    ctx = _ctx(tiny_sasrec)
    ctx.scorers = ScorerShelf(Workspace(tiny_sasrec.workspace.root.parent / "none"), ctx.dataset)
    result = run_tool("score_candidates", {"model": "hstu"}, ctx)
    assert isinstance(result, ToolError) and "recagent train hstu" in result.error
    assert result.hint is not None and "models available here: popularity;" in result.hint


def test_the_default_is_the_best_model_on_valid(tiny_models, tmp_path) -> None:
    """A session from the app's services scores with the best model on valid NDCG@10 when no
    model is named, follows the leaderboard when another model measures better, and never
    lets the test split decide."""
    import shutil

    from recagent.app import open_services
    from recagent.config import load_settings
    from recagent.models import leaderboard
    from recagent.workspace import Workspace

    ws = Workspace(tmp_path / "home")
    shutil.copytree(tiny_models.workspace.root, ws.root)
    settings = load_settings(home=ws.root)
    ds = tiny_models.dataset

    def default_model() -> str:
        services = open_services(ws, settings, ds.name, build_missing=False)
        session = services.session()
        session.ctx.history = ds.user_history("1")[:-1]
        result = run_tool("score_candidates", {"k": 3}, session.ctx)
        assert isinstance(result, ScoreCandidatesResult), result
        assert session.ctx.scorers.get(result.model) is session.ctx.scorer
        return result.model

    valid = {n: r.valid["NDCG@10"] for n, r in tiny_models.results.items()}
    assert default_model() == max(valid, key=lambda n: valid[n])
    for name in ("bert4rec", "hstu"):  # each measured best in turn becomes the default
        best = max(valid.values()) + 0.01
        leaderboard.record(ws, ds.name, ds.fingerprint, name, "valid", {"NDCG@10": best}, 9)
        valid[name] = best
        assert default_model() == name
    leaderboard.record(ws, ds.name, ds.fingerprint, "sasrec", "test", {"NDCG@10": 1.0}, 9)
    assert default_model() == "hstu"  # a test number never chooses
