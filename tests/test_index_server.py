"""The same index code path against a real `chroma run` server on 127.0.0.1."""

from __future__ import annotations

import pytest

from recagent.config import IndexConfig
from recagent.data.dataset import Dataset
from recagent.errors import ArtifactError
from recagent.index.chroma import IndexUnavailableError, http_client, parse_chroma_url
from recagent.index.embedders import EmbedderError
from recagent.index.store import build_index, index_status, open_index
from recagent.workspace import Workspace
from tests.conftest import HashEmbedder, WrongDimEmbedder, free_port


def _collections(url: str) -> list[str]:
    client = http_client(url)
    try:
        return sorted(c.name for c in client.list_collections())
    finally:
        client.close()


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

    # a build that fails halfway leaves the live collection as it was, and no staging copy
    with pytest.raises(EmbedderError):
        build_index(workspace, recall_dataset, cfg, embedder=WrongDimEmbedder(good_batches=1))
    assert [c for c in _collections(chroma_server) if c.startswith("test-server-main")] == [
        "test-server-main"
    ]
    build_index(workspace, recall_dataset, cfg, embedder=HashEmbedder())  # replaces it
    with open_index(workspace, recall_dataset, cfg, embedder=HashEmbedder()) as index:
        assert index.collection.count() == 12


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
