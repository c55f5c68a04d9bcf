"""The same index code path against a real `chroma run` server on 127.0.0.1, and its
versions: a rebuild swaps the live version under readers without an error or a mixed answer."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

from recagent.config import IndexConfig
from recagent.data.dataset import Dataset
from recagent.errors import ArtifactError
from recagent.index import chroma
from recagent.index.chroma import (
    IndexUnavailableError,
    ServerVersions,
    http_client,
    parse_chroma_url,
)
from recagent.index.embedders import EmbedderError
from recagent.index.item_index import ItemIndex
from recagent.index.store import build_index, index_status, open_index, wanted_meta
from recagent.index.text import load_template
from recagent.workspace import Workspace
from tests.conftest import HashEmbedder, WrongDimEmbedder, free_port, hash_vector


def _collections(url: str) -> list[str]:
    client = http_client(url)
    try:
        return sorted(c.name for c in client.list_collections())
    finally:
        client.close()


def _of_index(url: str, name: str) -> list[str]:
    """The collections of index `name`: its pointer, versions and debris (not other spaces)."""
    return [c for c in _collections(url) if c == name or c.startswith((f"{name}.", f"{name}-s"))]


class SaltedEmbedder(HashEmbedder):
    """HashEmbedder under the same name, with one word added `salt` times to every text: a
    build with each salt stores other vectors, so its answers tell which version gave them,
    while the index metadata (and so whether a reader's configuration matches) stays the
    same."""

    def __init__(self, salt: int) -> None:
        super().__init__()
        self.salt = salt

    def embed(self, texts):  # type: ignore[no-untyped-def]
        return np.stack([hash_vector(t + " version" * self.salt, self.dim) for t in texts])


Answer = tuple[tuple[str, float, tuple[str, ...]], ...]


def _answer(index: ItemIndex) -> Answer:
    """One query that reads the server three times (input vectors, neighbours, hit vectors)."""
    hits = index.similar_to_items(["3", "8"], 4)
    return tuple((h.item_id, round(h.score, 5), tuple(h.because_of)) for h in hits)


def test_build_and_query_on_a_server(
    chroma_server: str, recall_dataset: Dataset, workspace: Workspace
) -> None:
    cfg = IndexConfig(chroma_url=chroma_server, collection="test-server-main", batch_size=5)
    with open_index(
        workspace, recall_dataset, cfg, embedder=HashEmbedder(), build_if_missing=True
    ) as index:
        top = index.search("cowboy western", 2)
        assert {recall_dataset.catalog[h.item_id].title for h in top} == {
            "Cowboy Western Trail",
            "Western Gunfight at Noon",
        }
        assert index.similar_to_items(["3"], 1)[0].because_of == ["3"]
    assert not workspace.index("ml-100k").base.exists()  # nothing written locally
    status = index_status(workspace, recall_dataset, cfg, HashEmbedder())
    assert status.state == "fresh" and chroma_server in status.location

    first = status.version
    assert first is not None and ServerVersions("test-server-main", "").is_version(first)
    assert _of_index(chroma_server, "test-server-main") == ["test-server-main.live", first]

    # a build that fails halfway leaves the live version as it was, and no other copy
    with pytest.raises(EmbedderError):
        build_index(workspace, recall_dataset, cfg, embedder=WrongDimEmbedder(good_batches=1))
    assert _of_index(chroma_server, "test-server-main") == ["test-server-main.live", first]
    build_index(workspace, recall_dataset, cfg, embedder=HashEmbedder())  # replaces it
    with open_index(workspace, recall_dataset, cfg, embedder=HashEmbedder()) as index:
        assert index.collection.count() == 12
        second = index.collection.name
    assert second != first and index_status(workspace, recall_dataset, cfg).version == second
    # the retired version stays a while for the readers that opened it
    assert _of_index(chroma_server, "test-server-main") == [
        "test-server-main.live",
        *sorted([first, second]),
    ]


def test_rebuilds_under_readers_never_fail_nor_mix_versions(
    chroma_server: str,
    recall_dataset: Dataset,
    workspace: Workspace,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # no grace: each build deletes the version before the previous one, so the index held
    # open loses its collection and has to follow the pointer; queries go to the server
    monkeypatch.setattr(chroma, "RETIRED_GRACE_S", 0.0)
    name = "test-server-swap"
    cfg = IndexConfig(chroma_url=chroma_server, collection=name, batch_size=4, exact_max_items=0)
    build_index(workspace, recall_dataset, cfg, embedder=SaltedEmbedder(0))

    def fresh_answer() -> Answer:
        with open_index(workspace, recall_dataset, cfg, embedder=HashEmbedder()) as index:
            return _answer(index)

    answers = {0: fresh_answer()}  # salt -> the answer of that version
    got: dict[str, list[Answer]] = {"opened": [], "held": []}
    errors: list[BaseException] = []
    stop = threading.Event()

    def loop(key: str, answer: Callable[[], Answer]) -> None:
        try:
            while not stop.is_set():
                got[key].append(answer())
        except BaseException as exc:  # recorded; the test fails on any
            errors.append(exc)

    held = open_index(workspace, recall_dataset, cfg, embedder=HashEmbedder())
    readers = [
        threading.Thread(target=loop, args=("opened", fresh_answer)),
        threading.Thread(target=loop, args=("held", lambda: _answer(held))),
    ]
    for thread in readers:
        thread.start()
    try:
        for salt in range(1, 5):
            build_index(workspace, recall_dataset, cfg, embedder=SaltedEmbedder(salt))
            answers[salt] = fresh_answer()
        seen = {key: len(found) for key, found in got.items()}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not errors:  # a few queries on the last version
            if all(len(got[key]) >= seen[key] + 3 for key in got):
                break
            time.sleep(0.01)
    finally:
        stop.set()
        for thread in readers:
            thread.join(timeout=30)
        held.close()
    assert errors == []
    assert len(set(answers.values())) == len(answers)  # the versions answer differently
    for key, found in got.items():
        assert found and set(found) <= set(answers.values()), key  # each from one version
    assert got["held"][-1] == answers[4] and held._generation >= 1  # it followed the pointer
    live = index_status(workspace, recall_dataset, cfg, HashEmbedder()).version
    assert live is not None and live in _of_index(chroma_server, name)
    assert len(_of_index(chroma_server, name)) == 3  # the pointer, live and previous


def test_an_index_built_before_versions_opens_and_is_retired(
    chroma_server: str,
    recall_dataset: Dataset,
    workspace: Workspace,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = "test-server-legacy"
    cfg = IndexConfig(chroma_url=chroma_server, collection=name)
    template = load_template(cfg.template)
    items = list(recall_dataset.catalog)
    texts = template.render_all(items)
    client = http_client(chroma_server)
    try:  # the way builds stored an index before: vectors under the plain name
        old = client.create_collection(
            name,
            configuration={"hnsw": {"space": "cosine"}},
            metadata=wanted_meta(recall_dataset, HashEmbedder(), template, cfg).to_metadata(),
            embedding_function=None,
        )
        old.upsert(
            ids=[it.item_id for it in items],
            embeddings=HashEmbedder().embed(texts),
            documents=texts,
        )
    finally:
        client.close()
    status = index_status(workspace, recall_dataset, cfg, HashEmbedder())
    assert (status.state, status.version) == ("fresh", name)
    reader = open_index(workspace, recall_dataset, cfg, embedder=HashEmbedder())
    try:
        before = _answer(reader)
        build_index(workspace, recall_dataset, cfg, embedder=HashEmbedder(), wait=True)
        assert _answer(reader) == before  # it reads the old collection, kept for a while
        assert reader.collection.name == name
    finally:
        reader.close()
    version = index_status(workspace, recall_dataset, cfg, HashEmbedder()).version
    assert version is not None and version != name
    assert _of_index(chroma_server, name) == sorted([name, f"{name}.live", version])
    monkeypatch.setattr(chroma, "RETIRED_GRACE_S", 0.0)
    build_index(workspace, recall_dataset, cfg, embedder=HashEmbedder())
    assert name not in _of_index(chroma_server, name)  # past its grace, it goes


def test_a_crashed_build_is_cleaned_up_by_the_next(
    chroma_server: str, recall_dataset: Dataset, workspace: Workspace
) -> None:
    name = "test-server-crash"
    cfg = IndexConfig(chroma_url=chroma_server, collection=name)
    build_index(workspace, recall_dataset, cfg, embedder=HashEmbedder())
    live = index_status(workspace, recall_dataset, cfg, HashEmbedder()).version
    orphan = ServerVersions(name, "").new_version()
    others = [f"{name}.v2", f"{name}.vx.live", f"{name}-cowatch"]  # not this index's
    client = http_client(chroma_server)
    try:  # what a build killed halfway leaves, now and before versions existed
        for leftover in [orphan, f"{name}-staging-1a2b3c4d", *others]:
            client.create_collection(leftover, embedding_function=None).add(
                ids=["1"], embeddings=[[1.0, 0.0]]
            )
    finally:
        client.close()
    status = index_status(workspace, recall_dataset, cfg, HashEmbedder())
    assert (status.state, status.version) == ("fresh", live)  # never the half-built one
    build_index(workspace, recall_dataset, cfg, embedder=HashEmbedder())
    now = index_status(workspace, recall_dataset, cfg, HashEmbedder()).version
    assert now not in (None, live, orphan)
    remaining = [c for c in _collections(chroma_server) if c.startswith(name)]
    assert remaining == sorted([f"{name}.live", str(live), str(now), *others])


def test_status_names_the_live_version(
    cli,  # type: ignore[no-untyped-def]
    chroma_server: str,
    recall_dataset: Dataset,
) -> None:
    args = ("--chroma-url", chroma_server, "--collection", "test-server-cli")
    assert cli("index", "build", *args).exit_code == 0
    out = cli("index", "status", *args).stdout
    assert "fresh" in out and "live version: test-server-cli.v" in out


def test_a_collection_of_another_dataset_is_refused(
    chroma_server: str, recall_dataset: Dataset, workspace: Workspace
) -> None:
    cfg = IndexConfig(chroma_url=chroma_server, collection="test-server-shared")
    build_index(workspace, recall_dataset, cfg, embedder=HashEmbedder())
    other = Dataset(
        "other", recall_dataset.catalog, recall_dataset.interactions, recall_dataset.manifest
    )
    with pytest.raises(ArtifactError, match="another dataset"):
        open_index(workspace, other, cfg, embedder=HashEmbedder(), build_if_missing=True)


def test_unreachable_server_is_one_clear_error(
    recall_dataset: Dataset, workspace: Workspace
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    cfg = IndexConfig(chroma_url=url)
    with pytest.raises(IndexUnavailableError, match=f"cannot reach the Chroma server at {url}"):
        open_index(workspace, recall_dataset, cfg, embedder=HashEmbedder())
    with pytest.raises(IndexUnavailableError):
        build_index(workspace, recall_dataset, cfg, embedder=HashEmbedder())


def test_chroma_urls() -> None:
    assert parse_chroma_url("http://h:1234") == ("h", 1234, False)
    assert parse_chroma_url("https://h") == ("h", 443, True)
    assert parse_chroma_url("localhost:9") == ("localhost", 9, False)
    with pytest.raises(Exception, match="invalid Chroma URL"):
        parse_chroma_url("ftp://h")
