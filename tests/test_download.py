"""Downloading official archives: verified by SHA-256, and a clear offline message."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from recagent.data import download
from recagent.data.download import Archive


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "served"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", root
    server.shutdown()


def _zip_of(folder: Path, dest: Path, top: str) -> str:
    with zipfile.ZipFile(dest, "w") as zf:
        for f in folder.iterdir():
            zf.write(f, f"{top}/{f.name}")
    return hashlib.sha256(dest.read_bytes()).hexdigest()


def test_offline_fails_at_once_and_says_source(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECAGENT_DOWNLOAD_MIRROR", f"http://127.0.0.1:{_closed_port()}/")
    start = time.monotonic()
    result = cli("data", "prepare", "--dataset", "ml-100k")
    assert result.exit_code == 2
    assert "--source" in result.stderr and "offline" in result.stderr
    assert time.monotonic() - start < 5


def test_checksum_mismatch_is_refused(cli, file_server, monkeypatch: pytest.MonkeyPatch) -> None:
    url, root = file_server
    (root / "ml-100k.zip").write_bytes(b"PK\x03\x04 definitely not the archive")
    monkeypatch.setenv("RECAGENT_DOWNLOAD_MIRROR", url)
    result = cli("data", "prepare", "--dataset", "ml-100k")
    assert result.exit_code == 2
    assert "checksum mismatch" in result.stderr
    assert not list((Path("home") / "datasets").glob("*/CURRENT"))


def test_verified_download_is_prepared(
    cli, file_server, tiny_ml100k: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, root = file_server
    digest = _zip_of(tiny_ml100k, root / "ml-100k.zip", "ml-100k")
    monkeypatch.setitem(download.ARCHIVES, "ml-100k", Archive("ml-100k.zip", digest, "ml-100k"))
    monkeypatch.setenv("RECAGENT_DOWNLOAD_MIRROR", url)
    result = cli("data", "prepare", "--dataset", "ml-100k")
    assert result.exit_code == 0, result.output
    (root / "ml-100k.zip").unlink()  # second run uses the verified cache, no network
    again = cli("data", "prepare", "--dataset", "ml-100k")
    assert again.exit_code == 0, again.output


def test_unpinned_dataset_asks_for_source(cli) -> None:
    result = cli("data", "prepare", "--dataset", "ml-latest")
    assert result.exit_code == 2
    assert "--source" in result.stderr
