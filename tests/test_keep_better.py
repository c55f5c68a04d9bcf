"""A training run never throws away a better model: finished, time-capped or interrupted (a
real SIGINT to a real `recagent train sasrec`), it replaces the saved checkpoint only if it
is at least as good, or with --replace, and says which it kept with both numbers."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from recagent.data.prepare import PrepareConfig, prepare
from recagent.models.checkpoint import checkpoint_path, read_checkpoint
from recagent.models.train import train_sasrec
from recagent.workspace import Workspace
from tests.conftest import TrainedSASRec, default_sigint, sasrec_ratings, write_ml100k

PLAIN = ["--no-align-text"]  # plain SASRec: these tests are about keeping the better run
TINY = [*PLAIN, "--dim", "16", "--layers", "1", "--heads", "2", "--max-len", "8", "--dropout", "0"]
NO_LEARNING = [*TINY, "--batch-size", "16", "--lr", "1e-7", "--lr-patience", "0"]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _saved_ndcg(path: Path) -> float:
    return float(read_checkpoint(path)["training"]["valid"]["NDCG@10"])


@pytest.fixture
def trained(tiny_sasrec: TrainedSASRec, tmp_path: Path) -> Path:
    """A workspace (its root) holding the tiny dataset and its well-trained SASRec."""
    home = tmp_path / "home"
    ws = Workspace(home)
    source = write_ml100k(tmp_path / "src", sasrec_ratings())
    prepare(PrepareConfig(dataset="ml-100k", source=source), ws)
    target = checkpoint_path(ws, "ml-100k")
    target.parent.mkdir(parents=True)
    target.write_bytes(checkpoint_path(tiny_sasrec.workspace, "ml-100k").read_bytes())
    return home


def test_sigint_to_a_real_training_keeps_the_better_model(trained: Path) -> None:
    path = checkpoint_path(Workspace(trained), "ml-100k")
    before, good = _digest(path), _saved_ndcg(path)
    env = {**os.environ, "RECAGENT_HOME": str(trained), "COLUMNS": "200"}
    args = [*NO_LEARNING, "--epochs", "100000", "--patience", "100000"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "recagent", "-v", "train", "sasrec", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    assert proc.stderr is not None
    watchdog = threading.Timer(120, proc.kill)  # never hang the suite
    watchdog.start()
    seen = []
    for line in proc.stderr:  # wait until an epoch has finished (and been offered)
        seen.append(line)
        if "epoch 2:" in line:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    watchdog.cancel()
    err = " ".join(("".join(seen) + err).split())
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert _digest(path) == before  # the better model is untouched
    assert "interrupted" in err and "kept the existing model" in err
    assert f"{good:.4f}" in err  # both numbers: the kept model's and this run's
    assert "this run's best (valid NDCG@10 0." in err and "--replace" in err


class _InterruptAtStart:
    """A Ctrl-C before the first epoch ends."""

    @contextmanager
    def stage(self, description: str, total: float | None = None) -> Iterator[object]:
        raise KeyboardInterrupt
        yield


def test_an_interrupt_before_the_first_epoch_writes_nothing(
    trained: Path, tiny_sasrec: TrainedSASRec, tiny_sasrec_config, tiny_train_options
) -> None:
    ws = Workspace(trained)
    path = checkpoint_path(ws, "ml-100k")
    before = _digest(path)
    with pytest.raises(KeyboardInterrupt):
        train_sasrec(
            tiny_sasrec.dataset, tiny_sasrec_config, tiny_train_options, ws, _InterruptAtStart()
        )
    assert _digest(path) == before
    empty = Workspace(trained.parent / "empty")
    with pytest.raises(KeyboardInterrupt):
        train_sasrec(
            tiny_sasrec.dataset, tiny_sasrec_config, tiny_train_options, empty, _InterruptAtStart()
        )
    assert not checkpoint_path(empty, "ml-100k").exists()


def test_a_finished_worse_run_keeps_the_old_model_unless_replace(cli, trained: Path) -> None:
    path = checkpoint_path(Workspace(trained), "ml-100k")
    before, good = _digest(path), _saved_ndcg(path)
    home = ["--home", str(trained)]

    kept = cli(*home, "train", "sasrec", *NO_LEARNING, "--epochs", "2", "--json")
    assert kept.exit_code == 0, kept.output
    retention = json.loads(kept.stdout)["retention"]
    assert retention["kept"] == "old" and retention["old"]["value"] == pytest.approx(good)
    assert retention["new"]["value"] < good
    assert _digest(path) == before
    assert "kept the existing model" in " ".join(kept.stderr.split())
    # the table, for a text-aligned run that kept the old model (no projection was fitted)
    aligned = [a for a in NO_LEARNING if a not in PLAIN]
    table = cli(*home, "train", "sasrec", *aligned, "--epochs", "2")
    assert table.exit_code == 0, table.output
    assert "valid NDCG@10" in table.stdout and _digest(path) == before

    replaced = cli(*home, "train", "sasrec", *NO_LEARNING, "--epochs", "2", "--replace", "--json")
    assert replaced.exit_code == 0, replaced.output
    result = json.loads(replaced.stdout)
    assert result["retention"]["kept"] == "new"
    assert "asked to replace it" in result["retention"]["reason"]
    assert _saved_ndcg(path) == pytest.approx(result["valid"]["NDCG@10"])
    assert result["valid"]["NDCG@10"] < good


def test_a_better_run_replaces_and_other_data_never_counts(
    tiny_sasrec: TrainedSASRec, tiny_sasrec_config, tiny_train_options, tmp_path: Path
) -> None:
    ws = Workspace(tmp_path / "home")
    ds = prepare(
        PrepareConfig(dataset="ml-100k", source=write_ml100k(tmp_path / "a", sasrec_ratings())),
        ws,
    )
    weak = tiny_train_options.model_copy(update={"epochs": 1, "lr": 1e-7, "lr_patience": None})
    first = train_sasrec(ds, tiny_sasrec_config, weak, ws)
    assert first.retention.kept == "new" and first.retention.old is None
    better = train_sasrec(ds, tiny_sasrec_config, tiny_train_options, ws)
    assert better.retention.kept == "new" and "at least as good" in better.retention.reason
    assert better.retention.old is not None
    assert better.retention.old.value == pytest.approx(first.valid["NDCG@10"])

    newer = write_ml100k(tmp_path / "b", sasrec_ratings(shift=5))
    ds2 = prepare(PrepareConfig(dataset="ml-100k", source=newer), ws)
    again = train_sasrec(ds2, tiny_sasrec_config, weak, ws)  # the old model is of other data
    assert again.retention.kept == "new" and again.retention.old is None
    assert read_checkpoint(checkpoint_path(ws, "ml-100k"))["fingerprint"] == ds2.fingerprint


@pytest.mark.parametrize("name", ["hstu", "bert4rec", "bst"])
def test_every_model_type_keeps_the_better_checkpoint(tiny_models, name: str, tmp_path) -> None:
    """The rule is the trainer's, not SASRec's: a worse run of any model leaves its checkpoint
    and its leaderboard entry alone, and `replace=True` overrides."""
    import shutil

    from recagent.models import leaderboard
    from recagent.models.registry import spec
    from recagent.models.train import train_model
    from tests.conftest import TINY_MODELS

    ws = Workspace(tmp_path / "home")
    shutil.copytree(tiny_models.workspace.root, ws.root)
    ds = tiny_models.dataset
    path = checkpoint_path(ws, ds.name, name)
    before, good = _digest(path), tiny_models.results[name].valid["NDCG@10"]
    values, options = TINY_MODELS[name]
    model_spec = spec(name)
    weak = model_spec.train_type(**{**options, "epochs": 1, "lr": 1e-7, "lr_patience": None})
    run = train_model(name, ds, model_spec.config(**values), weak, ws)
    assert run.valid["NDCG@10"] < good
    assert run.retention.kept == "old" and run.retention.old is not None
    assert run.retention.old.value == pytest.approx(good)
    assert _digest(path) == before
    entry = leaderboard.current(ws, ds.name, ds.fingerprint)[name]["valid"]
    assert entry.metrics["NDCG@10"] == pytest.approx(good)

    forced = train_model(name, ds, model_spec.config(**values), weak, ws, replace=True)
    assert forced.retention.kept == "new" and _digest(path) != before
    entry = leaderboard.current(ws, ds.name, ds.fingerprint)[name]["valid"]
    assert entry.metrics["NDCG@10"] == pytest.approx(forced.valid["NDCG@10"])
