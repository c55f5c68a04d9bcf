"""Every registered model under one contract: training past popularity, self-describing
checkpoints that round-trip, the leaderboard and the default model, fusion, and the
`recagent train|eval <model>` and `recagent models` commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from recagent.metrics import summarize
from recagent.models import leaderboard
from recagent.models.base import ExplainsScores, ReadsSequence, Reranks, Scorer
from recagent.models.checkpoint import (
    checkpoint_path,
    load_scorer,
    manifest_path,
    read_checkpoint,
)
from recagent.models.evaluation import rank_cases
from recagent.models.fusion import FusionConfig, FusionScorer, fit_fusion, fuse, rank_matrix
from recagent.models.popularity import PopularityScorer
from recagent.models.registry import MODELS
from recagent.models.scorers import default_name, load_named

MODEL_NAMES = list(MODELS)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_trains_past_popularity_on_valid(tiny_models, name: str) -> None:
    ds, result = tiny_models.dataset, tiny_models.results[name]
    assert result.model == name and result.best_epoch >= 1
    assert result.valid["NDCG@10"] == max(h.valid_ndcg10 for h in result.history)
    popularity = summarize(rank_cases(PopularityScorer.from_dataset(ds), ds.split.cases("valid")))
    assert result.valid["MRR"] > popularity["MRR"] + 0.1


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_checkpoint_is_self_describing_and_round_trips(tiny_models, name: str) -> None:
    ws, ds = tiny_models.workspace, tiny_models.dataset
    path = checkpoint_path(ws, ds.name, name)
    payload = read_checkpoint(path, name)
    assert payload["format"] == f"recagent.{name}/1" and payload["model"] == name
    assert payload["fingerprint"] == ds.fingerprint and payload["item_ids"] == ds.catalog.item_ids
    assert payload["training"]["best_epoch"] == tiny_models.results[name].best_epoch
    manifest = json.loads(manifest_path(path).read_text())
    assert manifest["name"] == f"{ds.name}/{name}"
    first, again = load_scorer(ws, ds, name), load_scorer(ws, ds, name)
    assert isinstance(first, Scorer) and first.name == name
    for key, value in first.model.state_dict().items():  # type: ignore[attr-defined]
        torch.testing.assert_close(again.model.state_dict()[key], value)  # type: ignore[attr-defined]
    cases = ds.split.cases("valid")
    valid = summarize(rank_cases(again, cases))
    assert valid == pytest.approx(tiny_models.results[name].valid)
    scores = again.score(ds.catalog.ids_at(cases[0].history))
    assert scores.shape == (ds.n_items + 1,) and np.isneginf(scores[0])


def test_capabilities_are_protocols_not_classes(tiny_models) -> None:
    ws, ds = tiny_models.workspace, tiny_models.dataset
    scorers = {n: load_scorer(ws, ds, n) for n in MODEL_NAMES}
    for name in ("sasrec", "lrurec", "hstu", "bert4rec"):
        assert isinstance(scorers[name], ReadsSequence | ExplainsScores)
        assert not isinstance(scorers[name], Reranks)
    assert isinstance(scorers["bst"], Reranks) and isinstance(scorers["bst"], ExplainsScores)
    popularity = PopularityScorer.from_dataset(ds)
    assert not isinstance(popularity, ReadsSequence | ExplainsScores | Reranks)
    history = ds.catalog.ids_at(ds.split.cases("test")[0].history)
    for scorer in scorers.values():
        attended = scorer.attended(history, 2)  # type: ignore[attr-defined]
        assert 1 <= len(attended) <= 2 and all(i in history for i, _ in attended)


def test_training_records_valid_and_the_best_is_the_default(tiny_models) -> None:
    ws, ds = tiny_models.workspace, tiny_models.dataset
    entries = leaderboard.current(ws, ds.name, ds.fingerprint)
    for name in MODEL_NAMES:
        assert entries[name]["valid"].metrics == pytest.approx(tiny_models.results[name].valid)
    best = max(MODEL_NAMES, key=lambda n: tiny_models.results[n].valid["NDCG@10"])
    assert default_name(ws, ds) in (best, "fusion")


def test_a_retrained_model_is_not_judged_by_its_predecessor(tiny_models, tmp_path: Path) -> None:
    import shutil

    from recagent.workspace import Workspace

    ws = Workspace(tmp_path / "copy")
    shutil.copytree(
        tiny_models.workspace.models_dir(tiny_models.dataset.name),
        ws.models_dir("ml-100k"),
        dirs_exist_ok=True,
    )
    ds = tiny_models.dataset
    assert set(leaderboard.current(ws, ds.name, ds.fingerprint)) >= set(MODEL_NAMES)
    path = checkpoint_path(ws, ds.name, "hstu")
    path.write_bytes(path.read_bytes() + b"\0")  # another checkpoint now
    assert "hstu" not in leaderboard.current(ws, ds.name, ds.fingerprint)
    assert "sasrec" in leaderboard.current(ws, ds.name, ds.fingerprint)
    assert leaderboard.current(ws, ds.name, "other data") == {}


def test_fusion_of_ranks_and_scores() -> None:
    a = np.array([[-np.inf, 3.0, 2.0, 1.0]])
    b = np.array([[-np.inf, 1.0, 2.0, 3.0]])
    assert rank_matrix(a).tolist() == [[4, 1, 2, 3]]
    rrf = fuse([a, b], "rrf", k=60)
    assert rrf[0, 1] == pytest.approx(1 / 61 + 1 / 63) and rrf[0, 2] == pytest.approx(2 / 62)
    assert np.isneginf(rrf[0, 0])
    z = fuse([a, a], "score")
    assert list(np.argsort(-z[0, 1:])) == [0, 1, 2]


def test_fitted_fusion_scores_like_its_members(tiny_models) -> None:
    ws, ds = tiny_models.workspace, tiny_models.dataset
    members = {n: load_scorer(ws, ds, n) for n in ("sasrec", "hstu")}
    trials = fit_fusion(members, ds)
    assert len(trials) == 2 and {t.method for t in trials} == {"rrf", "score"}
    assert trials[0].valid["NDCG@10"] >= trials[1].valid["NDCG@10"]
    fusion = FusionScorer(
        list(members.values()), FusionConfig(members=list(members), method=trials[0].method)
    )
    valid = summarize(rank_cases(fusion, ds.split.cases("valid")))
    assert valid == pytest.approx(trials[0].valid)
    assert fusion.max_len == 8 and fusion.attended(ds.catalog.ids_at([1, 2]), 1)


def test_cli_trains_evaluates_and_lists_every_model(cli, sasrec_source: Path) -> None:
    assert (
        cli("data", "prepare", "--dataset", "ml-100k", "--source", str(sasrec_source)).exit_code
        == 0
    )
    common = ["--epochs", "2", "--batch-size", "16", "--lr", "0.01", "--json"]
    out = cli(
        "train",
        "sasrec",
        "--no-align-text",
        "--dim",
        "16",
        "--layers",
        "1",
        "--max-len",
        "8",
        *common,
    )
    assert out.exit_code == 0, out.output
    out = cli(
        "train",
        "hstu",
        "--set",
        "dim=16",
        "--set",
        "qk_dim=8",
        "--set",
        "v_dim=8",
        "--set",
        "max_len=8",
        *common,
    )
    assert out.exit_code == 0, out.output
    trained = json.loads(out.stdout)
    assert trained["model"] == "hstu" and trained["epochs_run"] == 2
    out = cli(
        "train",
        "bert4rec",
        "--preset",
        "hf",
        "--set",
        "dim=16",
        "--set",
        "max_len=8",
        "--set",
        "ff_dim=16",
        *common,
    )
    assert out.exit_code == 0, out.output
    out = cli(
        "train",
        "bst",
        "--set",
        "dim=12",
        "--set",
        "gap_dim=4",
        "--set",
        "mlp=[8]",
        "--set",
        "heads=2",
        *common,
    )
    assert out.exit_code == 0, out.output
    out = cli("train", "lrurec", "--set", "dim=8", "--set", "max_len=8", *common)
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["model"] == "lrurec"

    report = json.loads(cli("eval", "hstu", "--split", "valid", "--json").stdout)
    assert set(report["models"]) == {"hstu", "popularity"}
    assert report["models"]["hstu"]["NDCG@10"] == pytest.approx(trained["valid"]["NDCG@10"])
    bst = json.loads(cli("eval", "bst", "--json").stdout)
    assert bst["retriever"]["name"] == "sasrec" and bst["retriever"]["pool"] == 100
    table = cli("eval", "bst")
    assert "reranked" in " ".join(table.stdout.split()) or "bst" in table.stdout
    assert "sasrec's top 100" in table.stderr and "recall@100" in table.stderr

    fused = cli("train", "fusion", "--json")
    assert fused.exit_code == 0, fused.output
    assert len(json.loads(fused.stdout)) == 2 * (10 + 10 + 5 + 1)  # subsets of 5 models x 2
    assert cli("eval", "fusion", "--split", "valid").exit_code == 0

    listed = json.loads(cli("models", "--json").stdout)
    rows = {r["model"]: r for r in listed["models"]}
    assert all(rows[m]["trained"] for m in (*MODEL_NAMES, "fusion"))
    assert "test_NDCG@10" in rows["bst"] and "valid_NDCG@10" in rows["hstu"]
    valid = {
        m: r["valid_NDCG@10"] for m, r in rows.items() if "valid_NDCG@10" in r and m != "popularity"
    }
    assert listed["default"] == max(valid, key=lambda m: valid[m])
    assert "models of ml-100k" in cli("models").stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["hstu", "--set", "heads"], "KEY=VALUE"),
        (["hstu", "--set", "nope=1"], "--nope"),
        (["hstu", "--preset", "huge"], "no preset 'huge'"),
        (["bst", "--set", "retriever=bst"], "cannot rerank its own"),
        (["bert4rec", "--set", "dim=10", "--set", "heads=3"], "must divide"),
        (["fusion"], "two or more trained models"),
    ],
)
def test_bad_model_options_are_one_line_errors(cli, sasrec_source: Path, args, message) -> None:
    assert (
        cli("data", "prepare", "--dataset", "ml-100k", "--source", str(sasrec_source)).exit_code
        == 0
    )
    result = cli("train", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output


def test_unknown_and_untrained_models(tiny_models) -> None:
    from recagent.errors import ArtifactError, ConfigError

    with pytest.raises(ConfigError, match="unknown model"):
        load_named(tiny_models.workspace, tiny_models.dataset, "lru")
    from recagent.workspace import Workspace

    with pytest.raises(ArtifactError, match="recagent train hstu"):
        load_named(
            Workspace(tiny_models.workspace.root.parent / "empty"), tiny_models.dataset, "hstu"
        )


def test_chat_services_and_eval_pipelines_use_the_default_model(tiny_models) -> None:
    from recagent.app import build_session, eval_services, load_services
    from recagent.config import load_settings
    from recagent.evals.env import EvalEnv
    from recagent.progress import SilentReporter

    ws, ds = tiny_models.workspace, tiny_models.dataset
    best = default_name(ws, ds)
    assert best is not None
    settings = load_settings(home=ws.root)
    services = load_services(ws, settings, ds.name, SilentReporter(), build_missing=False)
    assert services.scorer.name == best
    session = build_session(services, settings, ws, "offline")
    assert session.ctx.scorer is services.scorer
    assert session.ctx.scorers.get("hstu").name == "hstu"
    env = EvalEnv(eval_services(ws, settings, ds))
    assert env.default_name == best and env.default_scorer.name == best
    history = ds.catalog.ids_at(ds.split.cases("test")[0].history)
    for name in ("hstu", "bert4rec", "bst", "lrurec"):
        top = env.pipeline(name).recommend(history, 5).item_ids
        assert len(top) == 5 and not set(top) & set(history)
    assert set(env.fingerprints(["hstu", "planner"])) >= {"data", "hstu", best}


def test_leaderboard_records_from_two_runs_at_once_both_stay(tiny_models, tmp_path: Path) -> None:
    import shutil
    import threading

    from recagent.workspace import Workspace

    ws = Workspace(tmp_path / "home")
    shutil.copytree(tiny_models.workspace.root, ws.root)
    ds = tiny_models.dataset
    (ws.models_dir(ds.name) / leaderboard.LEADERBOARD).unlink()

    def record(name: str) -> None:
        for n in range(40):
            metrics = {"NDCG@10": n / 100}
            leaderboard.record(ws, ds.name, ds.fingerprint, name, "valid", metrics, 1)

    threads = [threading.Thread(target=record, args=(m,)) for m in ("hstu", "bert4rec")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    board = leaderboard.current(ws, ds.name, ds.fingerprint)
    assert {m: board[m]["valid"].metrics["NDCG@10"] for m in board} == {
        "hstu": 0.39,
        "bert4rec": 0.39,
    }


def test_lrurec_is_the_default_where_it_wins_and_cites_what_moved_its_state(
    tiny_models, tmp_path: Path
) -> None:
    """With LRURec the best trained model on valid (here: the only one left), people's
    sessions and the harness score with it, and its evidence names the history items that
    moved its state most, in those words."""
    import shutil

    from recagent.app import load_services
    from recagent.config import load_settings
    from recagent.evals.env import EvalEnv
    from recagent.progress import SilentReporter
    from recagent.tools.base import ToolContext
    from recagent.tools.registry import run_tool
    from recagent.tools.score import ScoreCandidatesResult
    from recagent.web.views import evidence_words
    from recagent.workspace import Workspace

    ds = tiny_models.dataset
    ws = Workspace(tmp_path / "home")
    shutil.copytree(tiny_models.workspace.root, ws.root, dirs_exist_ok=True)
    for name in MODEL_NAMES:
        if name != "lrurec":
            checkpoint_path(ws, ds.name, name).unlink()
    assert default_name(ws, ds) == "lrurec"
    settings = load_settings(home=ws.root)
    services = load_services(ws, settings, ds.name, SilentReporter(), build_missing=False)
    assert services.scorer.name == "lrurec"
    from recagent.app import eval_services

    assert EvalEnv(eval_services(ws, settings, ds)).default_scorer.name == "lrurec"
    history = ds.catalog.ids_at(ds.split.cases("test")[0].history)
    ctx = ToolContext(dataset=ds, user_id=None, history=history, scorer=services.scorer)
    result = run_tool("score_candidates", {"history": history, "k": 3}, ctx)
    assert isinstance(result, ScoreCandidatesResult), result
    cited = [ref.item_id for ref in result.attended]
    moved = [i for i, _ in services.scorer.attended(history, len(cited))]  # type: ignore[attr-defined]
    assert result.model == "lrurec" and cited == moved and set(cited) <= set(history)
    top = result.items[0].item.item_id
    evidence = next(ev for ev in ctx.candidates.evidence(top) if ev.kind == "sequential")
    said = evidence_words(evidence, ds.catalog)
    assert said.startswith("LRURec ranked 1") and "its state moved most by" in said


def test_recommend_is_the_top_of_a_full_sort_without_sorting_everything() -> None:
    """Only what can reach the top k is sorted (a million items); the answer is the full
    sort's: best first, ties to the lower item_idx, NaN last, excluded never."""
    from recagent.models.base import Scorer

    rng = np.random.default_rng(0)
    scores = np.round(rng.standard_normal(2001), 1)  # many ties
    scores[[7, 70, 700]] = np.nan
    scores[0] = -np.inf

    class Fixed(Scorer):
        name = "fixed"

        def score_batch(self, histories, times=None):  # type: ignore[no-untyped-def]
            return np.tile(scores, (len(histories), 1))

    ids = [f"i{i}" for i in range(1, 2001)]
    scorer = Fixed(ids)
    exclude = ids[::5]
    row = np.where(np.isnan(scores), -np.inf, scores)
    allowed = np.array([i > 0 and ids[i - 1] not in set(exclude) for i in range(2001)])
    full = [i for i in np.lexsort((np.arange(2001), -row)) if allowed[i]]
    for k in (0, 1, 10, 37, 1600, 1700):
        got = scorer.recommend(["i1"], k, exclude=exclude)
        assert [item for item, _ in got] == [ids[i - 1] for i in full[:k]], k


def test_a_large_catalog_is_ranked_in_smaller_batches_with_the_same_ranks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Full-ranking evaluation bounds the scores it holds at once (1,024 users of a million
    items held 4 GB of scores and peaked at 18 GB); the ranks do not depend on it."""
    import recagent.models.evaluation as evaluation
    from recagent.data.split import EvalCase
    from recagent.models.base import Scorer

    rng = np.random.default_rng(1)
    table = rng.standard_normal((50, 301))

    class ByLast(Scorer):
        name = "by-last"

        def score_batch(self, histories, times=None):  # type: ignore[no-untyped-def]
            rows = table[[int(h[-1]) % 50 for h in histories]].copy()
            rows[:, 0] = -np.inf
            return rows

    scorer = ByLast([str(i) for i in range(1, 301)])
    cases = [EvalCase(u, rng.integers(1, 301, 5), int(rng.integers(1, 301))) for u in range(1, 41)]
    batches: list[int] = []
    whole = evaluation.rank_cases(scorer, cases, advance=batches.append)
    assert batches == [40]
    monkeypatch.setattr(evaluation, "SCORES_PER_BATCH", 3 * 301)
    batches.clear()
    assert np.array_equal(evaluation.rank_cases(scorer, cases, advance=batches.append), whole)
    assert batches == [3] * 13 + [1]
