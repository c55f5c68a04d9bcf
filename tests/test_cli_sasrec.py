"""`recagent train sasrec` and `recagent eval sasrec` end to end on a tiny dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import sasrec_ratings, write_ml100k

TINY = [
    "--no-align-text",  # plain SASRec: these tests are about training, not the text
    "--dim",
    "16",
    "--layers",
    "1",
    "--heads",
    "2",
    "--max-len",
    "8",
    "--dropout",
    "0",
    "--batch-size",
    "16",
    "--lr",
    "0.01",
]


@pytest.fixture
def prepared(cli, sasrec_source: Path) -> Path:
    result = cli("data", "prepare", "--dataset", "ml-100k", "--source", str(sasrec_source))
    assert result.exit_code == 0, result.output
    return sasrec_source


def test_train_then_eval(cli, prepared: Path) -> None:
    result = cli("train", "sasrec", *TINY, "--epochs", "3", "--json")
    assert result.exit_code == 0, result.output
    trained = json.loads(result.stdout)
    assert trained["dataset"] == "ml-100k" and trained["epochs_run"] == 3
    assert Path(trained["checkpoint"]).is_file()
    assert 0 < trained["valid"]["NDCG@10"] <= 1

    result = cli("eval", "sasrec", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["split"] == "test" and report["users"] == 30
    assert set(report["models"]) == {"sasrec", "popularity"}
    metrics = {"HR@10", "HR@20", "HR@50", "NDCG@10", "NDCG@20", "NDCG@50", "MRR"}
    assert set(report["models"]["sasrec"]) == metrics
    assert report["models"]["sasrec"]["MRR"] > report["models"]["popularity"]["MRR"]

    valid = json.loads(cli("eval", "sasrec", "--split", "valid", "--json").stdout)
    assert valid["models"]["sasrec"]["NDCG@10"] == pytest.approx(trained["valid"]["NDCG@10"])

    table = cli("eval", "sasrec", "--dataset", "ml-100k")
    assert table.exit_code == 0 and "NDCG@10" in table.stdout and "popularity" in table.stdout


def test_eval_refuses_a_stale_checkpoint(cli, prepared: Path, tmp_path: Path) -> None:
    assert cli("train", "sasrec", *TINY, "--epochs", "1").exit_code == 0
    newer = write_ml100k(tmp_path / "newer", sasrec_ratings(shift=5))
    assert cli("data", "prepare", "--dataset", "ml-100k", "--source", str(newer)).exit_code == 0
    result = cli("eval", "sasrec")
    assert result.exit_code == 2
    assert "another version of dataset 'ml-100k'" in result.stderr
    assert "recagent train sasrec" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dim", "16", "--heads", "3"], "must divide"),
        (["--epochs", "0"], "--epochs"),
        (["--dropout", "1.5"], "--dropout"),
        (["--device", "tpu"], "device"),
        (["--device", "cuda:7"], "device"),
    ],
)
def test_bad_train_options_are_one_line_errors(cli, prepared: Path, args, message) -> None:
    result = cli("train", "sasrec", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_unknown_loss_is_a_usage_error(cli, prepared: Path) -> None:
    result = cli("train", "sasrec", "--loss", "softmax")
    assert result.exit_code == 2
    assert "softmax" in result.output


def test_missing_dataset_and_checkpoint(cli, prepared: Path) -> None:
    result = cli("train", "sasrec", "--dataset", "nope")
    assert result.exit_code == 2 and "not prepared" in result.stderr
    result = cli("eval", "sasrec")
    assert result.exit_code == 2
    assert "no SASRec model for dataset 'ml-100k'" in result.stderr
    result = cli("eval", "sasrec", "--dataset", "../x")
    assert result.exit_code == 2
