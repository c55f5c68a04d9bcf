"""The first run keeps its promises: the training time cap is a cap (within a batch, not an
epoch), a download that cannot connect fails fast, and an offline first run says at once that
it uses the local copy (not after training)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from recagent.data import download
from recagent.data.download import DownloadError, fetch_archive
from recagent.data.prepare import PrepareConfig, prepare
from recagent.models.sasrec import SASRecConfig
from recagent.models.train import SASRecTrainConfig, train_sasrec
from recagent.workspace import Workspace
from tests.conftest import mini_movie_items, mini_movie_ratings, sasrec_ratings, write_ml100k


def test_the_time_limit_stops_within_a_batch_not_an_epoch(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "home")
    source = write_ml100k(tmp_path / "src", sasrec_ratings(users=600))
    ds = prepare(PrepareConfig(dataset="ml-100k", source=source), ws)
    config = SASRecConfig(dim=16, layers=1, heads=2, dropout=0.0, max_len=8, loss="full-ce")
    # ~1,200 windows one per batch: an epoch takes seconds, far past the limit
    options = SASRecTrainConfig(epochs=5, batch_size=1, time_limit_s=0.3)
    result = train_sasrec(ds, config, options, ws)
    assert result.stopped == "time_limit"
    assert result.epochs_run == 1 and not result.history[0].complete
    assert result.seconds < options.time_limit_s + 1.5  # one batch and one validation over
    assert result.retention.kept == "new"  # the cut-short epoch was validated and saved


@pytest.fixture
def blackhole() -> Iterator[str]:
    """A URL whose server never completes a TCP connection (its backlog is full)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port))
    yield f"http://127.0.0.1:{port}/"
    filler.close()
    server.close()


def test_a_download_that_cannot_connect_fails_fast(
    blackhole: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(download, "CONNECT_TIMEOUT_S", 1.0)
    start = time.monotonic()
    with pytest.raises(DownloadError, match="you may be offline"):
        fetch_archive("ml-100k", tmp_path / "downloads", blackhole)
    assert time.monotonic() - start < 3


def test_an_offline_first_run_says_it_uses_the_local_copy_at_once(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setenv("RECAGENT_DOWNLOAD_MIRROR", f"http://127.0.0.1:{closed}/")
    monkeypatch.setenv("RECAGENT_AGENT__FIRST_RUN_TRAIN_S", "3")
    write_ml100k(tmp_path / "data" / "ml-100k", mini_movie_ratings(), items=mini_movie_items())
    result = cli("recommend", "--llm", "offline", "--user", "3", "a sci-fi film", "--k", "3")
    assert result.exit_code == 0, result.output
    err = " ".join(result.stderr.split())
    said = err.find("preparing ml-100k from the local copy data/ml-100k")
    assert 0 <= said < err.find("training SASRec"), err  # before training, not at the end
    assert "downloading ml-100k (failed)" in err  # no spinner left frozen
