"""Fetching the official MovieLens archives, checked against pinned SHA-256 digests."""

from __future__ import annotations

import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from recagent.errors import RecagentError
from recagent.manifest import file_sha256
from recagent.workspace import atomic_path

OFFICIAL_BASE = "https://files.grouplens.org/datasets/movielens/"
CONNECT_TIMEOUT_S = 5.0  # name lookup and TCP connect together: offline fails fast
READ_TIMEOUT_S = 30.0  # silence from a connected server


@dataclass(frozen=True)
class Archive:
    file: str
    sha256: str
    folder: str  # top-level folder inside the zip


# Digests of the official archives (they never change for these releases).
ARCHIVES: dict[str, Archive] = {
    "ml-100k": Archive(
        "ml-100k.zip", "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229", "ml-100k"
    ),
    "ml-1m": Archive(
        "ml-1m.zip", "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20", "ml-1m"
    ),
    "ml-20m": Archive(
        "ml-20m.zip", "96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3", "ml-20m"
    ),
    "ml-25m": Archive(
        "ml-25m.zip", "8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa", "ml-25m"
    ),
    "ml-latest-small": Archive(
        "ml-latest-small.zip",
        "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
        "ml-latest-small",
    ),
}

Progress = Callable[[int, int | None], None]  # (bytes so far, total or None)


class DownloadError(RecagentError):
    pass


def _offline_hint(dataset: str) -> str:
    return (
        f"pass --source DIR pointing at an extracted copy of {dataset} "
        "(e.g. --source ../shared/data/ml-100k)"
    )


def fetch_archive(
    dataset: str, cache_dir: Path, base_url: str | None = None, progress: Progress | None = None
) -> Path:
    """Download (once), verify and extract `dataset`; return the extracted folder."""
    archive = ARCHIVES.get(dataset)
    if archive is None:
        raise DownloadError(
            f"no pinned download for {dataset!r} (its contents change between releases); "
            + _offline_hint(dataset)
        )
    extracted = cache_dir / archive.folder
    if (extracted / ".verified").is_file():
        return extracted
    zip_path = cache_dir / archive.file
    if not (zip_path.is_file() and file_sha256(zip_path) == archive.sha256):
        url = (base_url or OFFICIAL_BASE).rstrip("/") + "/" + archive.file
        _download(url, zip_path, dataset, progress)
        digest = file_sha256(zip_path)
        if digest != archive.sha256:
            zip_path.unlink(missing_ok=True)
            raise DownloadError(
                f"{url}: checksum mismatch (got sha256 {digest[:16]}..., expected "
                f"{archive.sha256[:16]}...); the file was deleted. Try again, or "
                + _offline_hint(dataset)
            )
    _extract(zip_path, cache_dir, archive.folder)
    (extracted / ".verified").write_text(archive.sha256 + "\n")
    return extracted


def _resolve(host: str, port: int, timeout: float) -> list[Any]:
    """`getaddrinfo`, which has no timeout of its own, given at most `timeout` seconds."""
    found: list[Any] = []
    failed: list[OSError] = []

    def lookup() -> None:
        try:
            found.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            failed.append(exc)

    thread = threading.Thread(target=lookup, daemon=True)
    thread.start()
    thread.join(timeout)
    if failed:
        raise failed[0]
    if thread.is_alive():
        raise TimeoutError(f"looking up {host} took over {timeout:g} s")
    return found


def check_connect(url: str, timeout: float | None = None) -> None:
    """Reach the server of `url` (or the proxy configured for it) within `timeout` seconds,
    name lookup included; `OSError` if it cannot be reached."""
    timeout = CONNECT_TIMEOUT_S if timeout is None else timeout
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        via = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = via.hostname or host, via.port or 80
    deadline = time.monotonic() + timeout
    last: OSError = TimeoutError(f"no address for {host}")
    addresses = _resolve(host, port, timeout)
    for n, (family, kind, proto, _, address) in enumerate(addresses):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            with socket.socket(family, kind, proto) as sock:
                sock.settimeout(left / (len(addresses) - n))  # a dead address leaves time
                sock.connect(address)
            return
        except OSError as exc:
            last = exc
    if time.monotonic() >= deadline:
        raise TimeoutError(f"no connection to {host}:{port} within {timeout:g} s")
    raise last


def _download(url: str, dest: Path, dataset: str, progress: Progress | None) -> None:
    try:
        check_connect(url)
        with (
            urllib.request.urlopen(url, timeout=READ_TIMEOUT_S) as response,
            atomic_path(dest) as tmp,
            tmp.open("wb") as out,
        ):
            length = int(response.headers.get("Content-Length") or 0) or None
            done = 0
            while block := response.read(1 << 16):
                out.write(block)
                done += len(block)
                if progress:
                    progress(done, length)
    except (TimeoutError, urllib.error.URLError, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(
            f"could not download {url} ({reason}); you may be offline: " + _offline_hint(dataset)
        ) from None


def _extract(zip_path: Path, cache_dir: Path, folder: str) -> None:
    target = cache_dir / folder
    shutil.rmtree(target, ignore_errors=True)
    try:
        with zipfile.ZipFile(zip_path) as zf:
            for member in zf.namelist():
                # Refuse members that would land outside the cache (zip-slip).
                dest = (cache_dir / member).resolve()
                if not dest.is_relative_to(cache_dir.resolve()):
                    raise DownloadError(f"{zip_path}: unsafe path {member!r} in archive")
            zf.extractall(cache_dir)
    except zipfile.BadZipFile as exc:
        zip_path.unlink(missing_ok=True)
        raise DownloadError(f"{zip_path}: not a valid zip archive ({exc})") from None


__all__ = ["ARCHIVES", "DownloadError", "check_connect", "fetch_archive"]
