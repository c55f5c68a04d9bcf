"""Training, checkpoints and their refusal when the data changed."""

from __future__ import annotations

import json
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from recagent.data.prepare import PrepareConfig, prepare
from recagent.errors import ArtifactError, ConfigError
from recagent.evals.fullrank import rank_cases
from recagent.metrics import summarize
from recagent.models.checkpoint import (
    MANIFEST_NAME,
    checkpoint_path,
    load_sasrec_scorer,
    read_checkpoint,
)
from recagent.models.popularity import PopularityScorer
from recagent.models.train import ensure_sasrec_scorer, train_sasrec, training_windows
from recagent.workspace import Workspace
from tests.conftest import sasrec_ratings, write_ml100k


def test_trains_past_popularity_on_valid(tiny_sasrec) -> None:
    ds, result = tiny_sasrec.dataset, tiny_sasrec.result
    assert result.best_epoch >= 1
    assert result.valid["NDCG@10"] == max(h.valid_ndcg10 for h in result.history)
    popularity = summarize(rank_cases(PopularityScorer.from_dataset(ds), ds.split.cases("valid")))
    assert result.valid["MRR"] > popularity["MRR"] + 0.3


def test_checkpoint_round_trip(tiny_sasrec) -> None:
    ws, ds, scorer = tiny_sasrec.workspace, tiny_sasrec.dataset, tiny_sasrec.scorer
    path = checkpoint_path(ws, ds.name)
    payload = read_checkpoint(path)
    assert payload["dataset"] == ds.name
    assert payload["fingerprint"] == ds.fingerprint
    assert payload["item_ids"] == ds.catalog.item_ids
    assert payload["training"]["best_epoch"] == tiny_sasrec.result.best_epoch
    again = load_sasrec_scorer(ws, ds)
    for key, value in scorer.model.state_dict().items():
        torch.testing.assert_close(again.model.state_dict()[key], value)
    histories = [c.history for c in ds.split.cases("test")]
    np.testing.assert_array_equal(again.score_batch(histories), scorer.score_batch(histories))
    valid = summarize(rank_cases(again, ds.split.cases("valid")))
    assert valid == pytest.approx(tiny_sasrec.result.valid)
    manifest = json.loads((path.parent / MANIFEST_NAME).read_text())
    assert manifest["inputs"] == {f"dataset:{ds.name}": ds.fingerprint}


def test_refuses_a_checkpoint_of_another_dataset(tiny_sasrec, tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "other-home")
    source = write_ml100k(tmp_path / "other", sasrec_ratings())
    other = prepare(PrepareConfig(dataset="ml-100k", name="other", source=source), ws)
    target = checkpoint_path(ws, "other")
    target.parent.mkdir(parents=True)
    shutil.copy(checkpoint_path(tiny_sasrec.workspace, tiny_sasrec.dataset.name), target)
    with pytest.raises(ArtifactError, match="trained on dataset 'ml-100k', not 'other'"):
        load_sasrec_scorer(ws, other)


def test_refuses_a_checkpoint_of_an_older_data_version(tiny_sasrec, tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "home2")
    shutil.copytree(tiny_sasrec.workspace.models_dir("ml-100k"), ws.models_dir("ml-100k"))
    source = write_ml100k(tmp_path / "v2", sasrec_ratings(shift=3))
    newer = prepare(PrepareConfig(dataset="ml-100k", source=source), ws)
    with pytest.raises(ArtifactError, match="another version of dataset 'ml-100k'"):
        load_sasrec_scorer(ws, newer)


def test_missing_or_damaged_checkpoint(tiny_sasrec, tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "empty")
    with pytest.raises(ArtifactError, match="recagent train sasrec --dataset ml-100k"):
        load_sasrec_scorer(ws, tiny_sasrec.dataset)
    path = checkpoint_path(ws, "ml-100k")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ArtifactError, match="not a readable SASRec checkpoint"):
        load_sasrec_scorer(ws, tiny_sasrec.dataset)


def test_training_is_seeded(tiny_sasrec, tiny_sasrec_config, tiny_train_options, tmp_path):
    options = tiny_train_options.model_copy(update={"epochs": 2})
    runs = [
        train_sasrec(tiny_sasrec.dataset, tiny_sasrec_config, options, Workspace(tmp_path / n))
        for n in ("a", "b")
    ]
    assert [h.loss for h in runs[0].history] == [h.loss for h in runs[1].history]
    assert runs[0].valid == runs[1].valid


class _InterruptAt:
    """A reporter whose progress callback raises KeyboardInterrupt at a given epoch, as a
    Ctrl-C arriving during training would."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    @contextmanager
    def stage(self, description: str, total: float | None = None):
        seen = [0]

        def advance(n: float = 1, **fields: object) -> None:
            seen[0] += 1
            if seen[0] == self.epoch:
                raise KeyboardInterrupt

        yield advance


def test_ctrl_c_keeps_the_best_checkpoint(
    tiny_sasrec, tiny_sasrec_config, tiny_train_options, tmp_path: Path
) -> None:
    ws = Workspace(tmp_path / "home")
    result = train_sasrec(
        tiny_sasrec.dataset, tiny_sasrec_config, tiny_train_options, ws, _InterruptAt(3)
    )
    assert result.stopped == "interrupted"
    assert result.epochs_run == 3
    payload = read_checkpoint(checkpoint_path(ws, "ml-100k"))
    assert payload["training"]["best_epoch"] == result.best_epoch
    load_sasrec_scorer(ws, tiny_sasrec.dataset)


def test_ensure_trains_when_missing(
    tiny_sasrec, tiny_sasrec_config, tiny_train_options, tmp_path: Path
) -> None:
    ws = Workspace(tmp_path / "fresh")
    options = tiny_train_options.model_copy(update={"epochs": 1})
    scorer = ensure_sasrec_scorer(ws, tiny_sasrec.dataset, None, tiny_sasrec_config, options)
    assert checkpoint_path(ws, "ml-100k").is_file()
    before = checkpoint_path(ws, "ml-100k").stat().st_mtime_ns
    again = ensure_sasrec_scorer(ws, tiny_sasrec.dataset, None, tiny_sasrec_config, options)
    assert checkpoint_path(ws, "ml-100k").stat().st_mtime_ns == before  # reused, not retrained
    assert again.n_items == scorer.n_items


def test_a_training_cut_by_its_time_limit_says_how_to_finish(
    tiny_sasrec, tiny_sasrec_config, tiny_train_options, tmp_path: Path
) -> None:
    ws = Workspace(tmp_path / "budget")
    options = tiny_train_options.model_copy(update={"epochs": 50, "time_limit_s": 1e-6})
    notes: list[str] = []
    ensure_sasrec_scorer(ws, tiny_sasrec.dataset, None, tiny_sasrec_config, options, notes)
    assert len(notes) == 1 and "recagent train sasrec --dataset ml-100k" in notes[0]
    assert read_checkpoint(checkpoint_path(ws, "ml-100k"))["training"]["best_epoch"] == 1
    ensure_sasrec_scorer(ws, tiny_sasrec.dataset, None, tiny_sasrec_config, options, notes)
    assert len(notes) == 1  # the saved model is reused without a new note


def test_a_long_training_says_after_its_first_epoch_how_long_and_how_to_cap_it(
    cli, sasrec_source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recagent.models import train
    from recagent.models.train_config import TrainConfig

    assert train.expected_time("X", 1.0, TrainConfig(epochs=200)) is None  # 200 s: quiet
    said = train.expected_time("BERT4Rec", 28.0, TrainConfig(epochs=200, patience=10))
    assert said is not None and "an epoch takes 28 s" in said and "~93 min" in said
    assert "10 epochs without a better valid NDCG@10" in said and "--time-limit" in said
    assert train.expected_time("X", 28.0, TrainConfig(time_limit_s=60)) is None  # capped
    monkeypatch.setattr(train, "LONG_RUN_S", 0.0)  # every run is long: the command says so
    assert (
        cli("data", "prepare", "--dataset", "ml-100k", "--source", str(sasrec_source)).exit_code
        == 0
    )
    out = cli("train", "lrurec", "--epochs", "2", "--set", "dim=8", "--set", "max_len=8")
    assert out.exit_code == 0, out.output
    said = "".join(out.stderr.split())  # the log handler wraps lines
    assert "LRURec:anepochtakes" in said and "--time-limitMINUTES" in said
    capped = cli("train", "lrurec", "--epochs", "2", "--time-limit", "5", "--set", "dim=8")
    assert capped.exit_code == 0 and "an epoch takes" not in capped.stderr


def test_windows_cover_every_target_once() -> None:
    seqs = [np.arange(1, 12), np.array([5, 6]), np.array([7])]
    inputs, targets, lengths = training_windows(seqs, max_len=4, windows="all")
    flat = sorted(t for t in targets.flatten().tolist() if t)
    assert flat == sorted([*range(2, 12), 6])
    assert lengths.tolist() == [4, 4, 2, 1]
    assert inputs[0].tolist() == [7, 8, 9, 10] and targets[0].tolist() == [8, 9, 10, 11]
    last = training_windows(seqs, max_len=4, windows="last")[1]
    assert last.shape[0] == 2


def test_a_dataset_without_eval_users_is_refused(tiny_sasrec_config, tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "home")
    source = write_ml100k(tmp_path / "src", [(1, 1, 4, 1), (1, 2, 4, 2), (2, 1, 4, 3)])
    ds = prepare(PrepareConfig(dataset="ml-100k", source=source), ws)
    with pytest.raises(ConfigError, match="nothing to validate"):
        train_sasrec(ds, tiny_sasrec_config, workspace=ws)


def test_learning_rate_halves_on_a_plateau(
    tiny_sasrec, tiny_sasrec_config, tiny_train_options, tmp_path: Path
) -> None:
    options = tiny_train_options.model_copy(update={"lr_patience": 1, "patience": 3, "epochs": 30})
    result = train_sasrec(
        tiny_sasrec.dataset, tiny_sasrec_config, options, Workspace(tmp_path / "h")
    )
    rates = [h.lr for h in result.history]
    assert rates[: result.best_epoch + 1] == [0.01] * (result.best_epoch + 1)
    # halved after each epoch that did not improve on the best
    after = rates[result.best_epoch :]
    assert after == [0.01 / 2**i for i in range(len(after))] and len(after) == 3
    assert result.stopped == "early_stopping"
