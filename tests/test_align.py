"""Text alignment (CTRL-lite): stage 1 pulls the item table toward the text, the shuffled
control breaks the pairing, the projection survives the checkpoint, items without
interactions or added after training are scored from their text (with a note), and text
vectors from another embedder are refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from recagent.config import IndexConfig
from recagent.data.dataset import Dataset
from recagent.data.prepare import PrepareConfig, prepare
from recagent.errors import ArtifactError, ConfigError
from recagent.models.align import (
    ADDED,
    NO_INTERACTIONS,
    TextProjection,
    align_table,
    paired_text,
)
from recagent.models.align_config import AlignConfig
from recagent.models.checkpoint import (
    TEXT_PROJECTION,
    checkpoint_path,
    load_scorer,
    read_checkpoint,
)
from recagent.models.sasrec_config import SASRecConfig, SASRecTrainConfig
from recagent.models.train import train_sasrec
from recagent.represent.text_vectors import TextVectors, text_vectors
from recagent.tools.base import ToolContext
from recagent.tools.registry import run_tool
from recagent.tools.score import ScoreCandidatesResult
from recagent.workspace import Workspace
from tests.conftest import HashEmbedder, sasrec_ratings, write_ml100k

ITEMS = 20
CONFIG = SASRecConfig(dim=16, layers=1, heads=2, dropout=0.0, max_len=8, loss="full-ce")
ALIGN = AlignConfig(enabled=True, steps=60, projection_steps=60, batch_size=16)
OPTIONS = SASRecTrainConfig(epochs=3, batch_size=16, lr=0.01, patience=2, seed=0, align_text=ALIGN)


def _items(extra: int = 0) -> list[tuple[int, str, list[int]]]:
    """Items 1..20 of the patterned data, plus `extra` more nobody has rated (yet)."""
    return [(i, f"Movie {i} (199{i % 10})", [1 + i % 18]) for i in range(1, ITEMS + extra + 1)]


def _prepare(ws: Workspace, root: Path, extra: int) -> Dataset:
    source = write_ml100k(root / f"src{extra}", sasrec_ratings(), items=_items(extra))
    return prepare(PrepareConfig(dataset="ml-100k", source=source), ws)


def _text(ws: Workspace, ds: Dataset, embedder: HashEmbedder | None = None) -> TextVectors:
    return text_vectors(ws, ds, IndexConfig(), embedder=embedder or HashEmbedder(dim=32))


@pytest.fixture(scope="module")
def aligned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, Dataset, Path]:
    """The patterned data with one unrated item (21), and an aligned SASRec trained on it."""
    root = tmp_path_factory.mktemp("aligned")
    ws = Workspace(root / "home")
    ds = _prepare(ws, root, extra=1)
    train_sasrec(ds, CONFIG, OPTIONS, ws, text=_text(ws, ds))
    return ws, ds, root


def test_stage_one_pulls_the_item_table_toward_the_text() -> None:
    torch.manual_seed(0)
    text = torch.nn.functional.normalize(torch.randn(41, 32), dim=-1)
    text[0] = 0
    table = torch.nn.Embedding(41, 16, padding_idx=0)
    before = table.weight.detach().clone()
    warm = np.arange(1, 41)
    stats = align_table(table, text, warm, AlignConfig(steps=150, batch_size=32), seed=0)
    assert stats["stage1_loss_last"] < 0.5 * stats["stage1_loss_first"]
    assert stats["stage1_matched_cosine"] > stats["stage1_mismatched_cosine"] + 0.5
    assert not torch.equal(table.weight, before)
    assert torch.count_nonzero(table.weight[0]) == 0  # padding stays zero


def test_shuffled_control_changes_the_pairing_only() -> None:
    matrix = np.zeros((11, 4), dtype=np.float32)
    matrix[1:] = np.random.default_rng(0).normal(size=(10, 4))
    text = TextVectors(matrix, "test", "key")
    true = paired_text(text, 10, AlignConfig())
    shuffled = paired_text(text, 10, AlignConfig(shuffle_text=True, shuffle_seed=1))
    assert torch.equal(true, torch.from_numpy(matrix))
    moved = (shuffled[1:] != true[1:]).any(1).sum().item()
    assert moved >= 7  # most items get another item's text
    assert torch.count_nonzero(shuffled[0]) == 0
    assert sorted(map(tuple, shuffled.tolist())) == sorted(map(tuple, true.tolist()))
    again = paired_text(text, 10, AlignConfig(shuffle_text=True, shuffle_seed=1))
    assert torch.equal(shuffled, again)  # seeded
    with pytest.raises(ConfigError, match="text vectors have 10 items"):
        paired_text(text, 12, AlignConfig())


def test_checkpoint_keeps_the_projection(aligned) -> None:
    ws, ds, _ = aligned
    payload = read_checkpoint(checkpoint_path(ws, ds.name))
    saved = payload[TEXT_PROJECTION]
    assert saved["source"] == _text(ws, ds).source and saved["in_dim"] == 32
    assert payload["training"]["alignment"]["cold_items"] == 1
    options = payload["training"]["options"]["align_text"]
    assert options["enabled"] and not options["shuffle_text"]
    projection = TextProjection.from_payload(saved)
    rows = torch.from_numpy(_text(ws, ds).matrix)
    # the unrated item's row in the saved table is its projected text
    table = payload["state_dict"]["item_emb.weight"]
    assert torch.allclose(table[21], projection.embed(rows[21:22])[0], atol=1e-6)
    assert projection.embed(rows[21:22]).norm().item() == pytest.approx(projection.norm, rel=1e-5)


def test_an_unrated_item_is_scored_from_its_text(aligned) -> None:
    ws, ds, _ = aligned
    scorer = load_scorer(ws, ds)
    assert scorer.text_only == {"21": NO_INTERACTIONS}
    ctx = ToolContext(dataset=ds, user_id="1", history=ds.user_history("1")[:-1], scorer=scorer)
    result = run_tool("score_candidates", {"item_ids": ["21", "3"], "k": 2}, ctx)
    assert isinstance(result, ScoreCandidatesResult), result
    assert result.scored == 2
    assert result.notes == [
        "1 item scored from their text only: no training interactions (returned here: 21)"
    ]


def test_an_item_added_after_training_is_scored_from_its_text(aligned) -> None:
    ws, old, root = aligned
    grown = _prepare(ws, root, extra=2)  # the catalog gains item 22 after training
    assert grown.fingerprint != old.fingerprint
    scorer = load_scorer(ws, grown, embedder=HashEmbedder(dim=32))
    assert scorer.n_items == ITEMS + 2
    assert scorer.text_only == {"21": NO_INTERACTIONS, "22": ADDED}
    history = grown.user_history("1")[:-1]
    scores = scorer.score(history, ["22", "21", "3"])
    assert np.isfinite(scores).all()
    ctx = ToolContext(dataset=grown, user_id="1", history=history, scorer=scorer)
    result = run_tool("score_candidates", {"item_ids": ["22", "3"], "k": 2}, ctx)
    assert isinstance(result, ScoreCandidatesResult), result
    assert {i.item.item_id for i in result.items} == {"22", "3"}
    assert result.notes == [
        "1 item scored from their text only: added after training (returned here: 22)"
    ]
    whole = run_tool("score_candidates", {"from_catalog": True, "k": 30}, ctx)
    assert isinstance(whole, ScoreCandidatesResult), whole
    assert len(whole.notes) == 2 and whole.scored == ITEMS + 2 - len(set(history))
    # the trained items keep their trained scores (re-indexed, not retrained)
    before = load_scorer(ws, old).score(history, ["3", "5", "21"])
    assert np.allclose(scorer.score(history, ["3", "5", "21"]), before, atol=1e-5)


def test_a_grown_catalog_with_new_interactions_is_older_than_the_data(aligned) -> None:
    """Only the catalog may grow under a text-aligned model: new ratings (here of the added
    item) make it stale like any model, and the refusal says by how much."""
    ws, old, root = aligned
    rated = [*sasrec_ratings(), (1, ITEMS + 1, 5, 999_999)]  # someone rated item 21
    source = write_ml100k(root / "src-rated", rated, items=_items(2))
    grown = prepare(PrepareConfig(dataset="ml-100k", source=source), ws)
    assert grown.interactions_fingerprint != old.interactions_fingerprint
    count = len(old.interactions.item_idx)
    with pytest.raises(ArtifactError, match="older than the data") as refused:
        load_scorer(ws, grown, embedder=HashEmbedder(dim=32))
    said = str(refused.value)
    assert f"learned from {count:,} interactions, the data now has {count + 1:,}" in said
    assert "grew by 1 item " in said and "recagent train sasrec --dataset ml-100k" in said
    # the same interactions over a grown catalog (item_idx moved, ids did not) still load
    again = _prepare(ws, root, extra=2)
    assert again.interactions_fingerprint == old.interactions_fingerprint
    assert load_scorer(ws, again, embedder=HashEmbedder(dim=32)).text_only["22"] == ADDED


def test_text_from_another_embedder_is_refused(aligned, tmp_path: Path) -> None:
    ws, _, root = aligned
    grown = _prepare(ws, root, extra=3)
    other = HashEmbedder(dim=24, name="test:other")
    with pytest.raises(ArtifactError, match="text projection was fit on 32-d vectors"):
        load_scorer(ws, grown, embedder=other)


def test_a_plain_model_still_refuses_a_grown_catalog(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "home")
    ds = _prepare(ws, tmp_path, extra=0)
    plain = OPTIONS.model_copy(update={"align_text": AlignConfig()})
    train_sasrec(ds, CONFIG, plain, ws)
    assert load_scorer(ws, ds).text_only == {}
    grown = _prepare(ws, tmp_path, extra=1)
    with pytest.raises(ArtifactError, match="another version"):
        load_scorer(ws, grown)


def test_alignment_needs_text_and_sasrec(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "home")
    ds = _prepare(ws, tmp_path, extra=0)
    with pytest.raises(ConfigError, match="text vectors"):
        train_sasrec(ds, CONFIG, OPTIONS, ws)


def test_cli_trains_with_align_text(cli, sasrec_source: Path) -> None:
    from tests.test_cli_sasrec import TINY

    prepared = cli("data", "prepare", "--dataset", "ml-100k", "--source", str(sasrec_source))
    assert prepared.exit_code == 0, prepared.output
    wrong = cli("train", "sasrec", *TINY, "--epochs", "1", "--shuffle-text")  # TINY: no text
    assert wrong.exit_code != 0 and "--shuffle-text only apply with --align-text" in wrong.output
    tiny = [a for a in TINY if a != "--no-align-text"]
    plain = cli("train", "sasrec", *TINY, "--epochs", "1", "--json")
    assert plain.exit_code == 0 and json.loads(plain.stdout)["alignment"] == {}
    by_default = cli(
        "train", "sasrec", *tiny, "--epochs", "1", "--align-steps", "20", "--replace", "--json"
    )
    assert by_default.exit_code == 0, by_default.output
    assert json.loads(by_default.stdout)["alignment"]["projection_temperature"] > 0
    args = ["--epochs", "2", "--align-text", "--align-steps", "20", "--shuffle-text", "--json"]
    result = cli("train", "sasrec", *tiny, *args, "--replace")
    assert result.exit_code == 0, result.output
    trained = json.loads(result.stdout)
    assert trained["alignment"]["projection_temperature"] in (0.05, 0.1, 0.2)
    payload = read_checkpoint(Path(trained["checkpoint"]))
    assert payload["training"]["options"]["align_text"]["shuffle_text"] is True
    assert payload[TEXT_PROJECTION]["shuffled"] is True
    helped = " ".join(cli("train", "sasrec", "--help").output.split())
    assert "--align-text" in helped and "--no-align-text" in helped
