"""The index on the embedded store: build, query, filters, staleness, crash safety."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from recagent.config import IndexConfig
from recagent.data.constraints import ConstraintError, Constraints
from recagent.data.dataset import Dataset
from recagent.data.prepare import PrepareConfig, prepare
from recagent.errors import ArtifactError
from recagent.index.embedders import EmbedderError
from recagent.index.item_index import MAX_K, ItemIndex, QueryError
from recagent.index.store import build_index, index_status, open_index
from recagent.workspace import Workspace
from tests.conftest import (
    RECALL_ITEMS,
    RECALL_RATINGS,
    HashEmbedder,
    WrongDimEmbedder,
    write_ml100k,
)


def titles(index: ItemIndex, hits) -> list[str]:  # type: ignore[no-untyped-def]
    return [index.catalog[h.item_id].title for h in hits]


def test_search_finds_items_by_their_text(recall_index: ItemIndex) -> None:
    hits = recall_index.search("space", k=3)
    assert len(hits) == 3
    assert all("Space" in t for t in titles(recall_index, hits))
    assert hits[0].score >= hits[1].score >= hits[2].score
    assert hits[0].text.startswith(recall_index.catalog[hits[0].item_id].title)
    assert len(recall_index) == 12


def test_filters_on_genres_years_and_ids(recall_index: ItemIndex) -> None:
    catalog = recall_index.catalog
    hits = recall_index.search("space", k=10, filters=Constraints(genres_any=["thriller"]))
    assert {catalog[h.item_id].title for h in hits} == {
        "Space Station Thriller",
        "Zombie Night Horror",
    }
    hits = recall_index.search("space", 10, Constraints(genres_none=["sci fi"], year_max=1980))
    for h in hits:
        item = catalog[h.item_id]
        assert "Sci-Fi" not in item.genres and item.year is not None and item.year <= 1980
    hits = recall_index.search("horror", 10, Constraints(include_ids=["3", "8"]))
    assert [h.item_id for h in hits] == ["3", "8"]
    assert recall_index.search("horror", 5, Constraints(year_min=2050)) == []


@pytest.mark.parametrize(
    "filters",
    [
        Constraints(genres_any=["Sci-Fi", "Horror"]),
        Constraints(genres_none=["Comedy"], year_min=1960),
        Constraints(exclude_ids=["1", "11"]),
        Constraints(include_ids=["1", "2", "3", "5"], genres_none=["Horror"]),
    ],
)
def test_local_filtering_and_chroma_where_agree(
    recall_index: ItemIndex, filters: Constraints
) -> None:
    results = {}
    # 1000: over-fetch the whole catalog; 8 and 5: over-fetch comes up short, retry, then
    # the vector table (or Chroma's where without one); 0: no over-fetch
    for limit in (1000, 8, 5, 0):
        recall_index.config = recall_index.config.model_copy(update={"max_overfetch": limit})
        hits = recall_index.search("space horror romance", 5, filters)
        results[limit] = ([h.item_id for h in hits], [h.score for h in hits])
    ids, scores = results[0]
    for limit in (1000, 8, 5):
        assert results[limit][0] == ids
        assert results[limit][1] == pytest.approx(scores, abs=1e-5)
    # exact search over the in-memory vectors finds the same items, with the same scores
    recall_index.config = recall_index.config.model_copy(update={"exact_max_items": 20_000})
    exact = recall_index.search("space horror romance", 5, filters)
    assert [h.item_id for h in exact] == ids
    assert [h.score for h in exact] == pytest.approx(scores, abs=1e-5)


def test_similar_to_items_excludes_inputs_and_says_why(recall_index: ItemIndex) -> None:
    hits = recall_index.similar_to_items(["1", "3"], k=4)
    ids = [h.item_id for h in hits]
    assert "1" not in ids and "3" not in ids and len(ids) == 4
    for h in hits:
        assert h.because_of and set(h.because_of) <= {"1", "3"}
    by_title = {recall_index.catalog[h.item_id].title: h for h in hits}
    assert by_title["Zombie Night Horror"].because_of[0] == "3"


@pytest.mark.parametrize("strategy", ["centroid", "maxsim"])
def test_similar_to_history_leaves_the_history_out(recall_index: ItemIndex, strategy: str) -> None:
    history = ["1", "11", "9"]  # space films
    hits = recall_index.similar_to_history(history, k=3, strategy=strategy)
    assert not {h.item_id for h in hits} & set(history)
    assert titles(recall_index, hits)[0] in {
        "Space Wars",
        "Galaxy Quest Comedy",
        "Robot Space Adventure",
    } or any("Space" in recall_index.catalog[b].title for b in hits[0].because_of)
    assert all(set(h.because_of) <= set(history) and h.because_of for h in hits)
    assert hits == sorted(hits, key=lambda h: -h.score)


def test_recent_history_counts_more(recall_index: ItemIndex) -> None:
    recall_index.config = recall_index.config.model_copy(update={"history_half_life": 0.5})
    old_space_recent_romance = ["1", "11", "5"]
    top = recall_index.similar_to_history(old_space_recent_romance, k=1)[0]
    assert "Romance" in recall_index.catalog[top.item_id].genres


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda ix: ix.search("   "), QueryError, "empty"),
        (lambda ix: ix.search(""), QueryError, "empty"),
        (lambda ix: ix.search("x" * 5000), QueryError, "characters"),
        (lambda ix: ix.search("space", k=0), QueryError, "k must be"),
        (lambda ix: ix.search("space", k=MAX_K + 1), QueryError, "k must be"),
        (
            lambda ix: ix.search("space", 5, Constraints(genres_any=["cooking"])),
            ConstraintError,
            "valid genres",
        ),
        (lambda ix: ix.similar_to_items(["nope"]), ConstraintError, "'nope'"),
        (lambda ix: ix.similar_to_items([]), QueryError, "empty"),
        (lambda ix: ix.similar_to_history([]), QueryError, "empty"),
        (lambda ix: ix.similar_to_history(["1"], strategy="mean"), QueryError, "strategy"),
    ],
)
def test_bad_queries_are_clear(recall_index: ItemIndex, call, error, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=message):
        call(recall_index)


def test_missing_index_is_refused_or_built(
    recall_dataset: Dataset, workspace: Workspace, recall_config: IndexConfig
) -> None:
    with pytest.raises(ArtifactError, match="recagent index build"):
        open_index(workspace, recall_dataset, recall_config, embedder=HashEmbedder())
    assert index_status(workspace, recall_dataset, recall_config, HashEmbedder()).state == "missing"
    with open_index(
        workspace, recall_dataset, recall_config, embedder=HashEmbedder(), build_if_missing=True
    ) as index:
        assert len(index) == 12
    status = index_status(workspace, recall_dataset, recall_config, HashEmbedder())
    assert status.state == "fresh" and status.meta is not None
    assert status.meta.embedder == "test:hash-bow" and status.meta.dim == 64


def test_rebuild_is_idempotent(recall_index: ItemIndex, workspace: Workspace) -> None:
    dataset = Dataset.load(workspace, "ml-100k")
    before = [(h.item_id, h.score) for h in recall_index.search("paris love", 3)]
    recall_index.close()
    for _ in range(2):
        build_index(workspace, dataset, recall_index.config, embedder=HashEmbedder())
    versions = [p for p in workspace.index("ml-100k").base.iterdir() if p.is_dir()]
    assert len(versions) == 1
    with open_index(workspace, dataset, recall_index.config, embedder=HashEmbedder()) as again:
        assert again.collection.count() == 12
        after = [(h.item_id, h.score) for h in again.search("paris love", 3)]
    assert [i for i, _ in after] == [i for i, _ in before]
    assert [s for _, s in after] == pytest.approx([s for _, s in before], abs=1e-6)


def test_embedder_or_template_change_is_refused_not_used(
    recall_index: ItemIndex, workspace: Workspace
) -> None:
    dataset, cfg = Dataset.load(workspace, "ml-100k"), recall_index.config
    recall_index.close()
    with pytest.raises(ArtifactError, match="dim: 64 -> 32"):
        open_index(workspace, dataset, cfg, embedder=HashEmbedder(dim=32))
    with pytest.raises(ArtifactError, match="embedder: test:hash-bow -> test:other"):
        open_index(workspace, dataset, cfg, embedder=HashEmbedder(name="test:other"))
    with pytest.raises(ArtifactError, match="template_hash"):
        open_index(
            workspace,
            dataset,
            cfg.model_copy(update={"template": "title"}),
            embedder=HashEmbedder(),
        )
    status = index_status(workspace, dataset, cfg, HashEmbedder(dim=32))
    assert status.state == "mismatch" and "dim" in status.problems


def test_changed_catalog_is_stale_then_rebuilt_on_request(
    recall_index: ItemIndex, workspace: Workspace, tmp_path: Path
) -> None:
    cfg = recall_index.config
    recall_index.close()
    items = [*RECALL_ITEMS, (13, "Space Cowboys (2000)", [1, 15, 18])]
    folder = write_ml100k(tmp_path / "changed", [*RECALL_RATINGS, (3, 13, 4, 34)], items)
    changed = prepare(PrepareConfig(dataset="ml-100k", source=folder), workspace)
    with pytest.raises(ArtifactError, match="stale"):
        open_index(workspace, changed, cfg, embedder=HashEmbedder())
    with open_index(workspace, changed, cfg, embedder=HashEmbedder(), rebuild_if_stale=True) as ix:
        assert len(ix) == 13 and ix.search("space cowboys", 1)[0].item_id == "13"


def test_another_datasets_index_is_refused(
    recall_index: ItemIndex, workspace: Workspace, tmp_path: Path
) -> None:
    cfg = recall_index.config
    recall_index.close()
    folder = write_ml100k(tmp_path / "other", RECALL_RATINGS, RECALL_ITEMS)
    other = prepare(PrepareConfig(dataset="ml-100k", name="other", source=folder), workspace)
    # someone copied ml-100k's index folder over to the dataset "other"
    shutil.copytree(workspace.index("ml-100k").base, workspace.index("other").base)
    for build in (False, True):
        with pytest.raises(ArtifactError, match=r"another dataset.*dataset: ml-100k -> other"):
            open_index(
                workspace,
                other,
                cfg.model_copy(update={"collection": "recagent-ml-100k"}),
                embedder=HashEmbedder(),
                build_if_missing=build,
                rebuild_if_stale=build,
            )


def test_a_failing_build_leaves_the_live_index_intact(
    recall_index: ItemIndex, workspace: Workspace
) -> None:
    dataset, cfg = Dataset.load(workspace, "ml-100k"), recall_index.config
    before = [h.item_id for h in recall_index.search("western", 3)]
    recall_index.close()
    with pytest.raises(EmbedderError, match="65-d"):
        build_index(workspace, dataset, cfg, embedder=WrongDimEmbedder(64, good_batches=1))
    base = workspace.index("ml-100k").base
    assert not [p for p in base.iterdir() if p.name.startswith(".staging")]
    with open_index(workspace, dataset, cfg, embedder=HashEmbedder()) as index:
        assert index.collection.count() == 12
        assert [h.item_id for h in index.search("western", 3)] == before


def test_hit_texts_are_the_stored_documents(recall_index: ItemIndex) -> None:
    hits = recall_index.search("space adventure", 6) + recall_index.similar_to_history(
        ["1", "5"], k=4
    )
    ids = list(dict.fromkeys(h.item_id for h in hits))
    stored = recall_index.collection.get(ids=ids, include=["documents"])
    documents = dict(zip(stored["ids"], stored["documents"], strict=True))
    assert recall_index.template is not None  # rendered here, not fetched
    assert [h.text for h in hits] == [documents[h.item_id] for h in hits]


def test_a_selective_filter_is_scored_from_the_vector_table(
    recall_index: ItemIndex, recall_dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The build writes every vector beside the embedded store (row i = item i + 1); a filter
    that keeps at most `exact_max_items` of a larger catalog, or one the over-fetch comes up
    short on, is scored exactly from it, never by Chroma's `where` (which reads every
    record: 1.5 s at a million items), with the same answer."""
    import numpy as np

    table = recall_index._table
    assert table is not None and table.shape[0] == len(recall_dataset.catalog)
    ids = recall_dataset.catalog.item_ids
    assert np.allclose(table, recall_index.embeddings(ids), atol=1e-6)

    f = Constraints(genres_any=["Sci-Fi", "Horror"], year_min=1960)
    kept = int(recall_index._mask.allowed(f.resolve(recall_dataset.catalog)).sum())
    assert 0 < kept <= 6 < len(ids)
    calls: list[object] = []
    real = recall_index.collection.query
    recall_index.collection.query = lambda *a, **kw: calls.append(kw) or real(*a, **kw)  # type: ignore[method-assign]

    def search(**config: int) -> list[tuple[str, float]]:
        recall_index.config = recall_index.config.model_copy(update=config)
        hits = recall_index.search("robot space horror", 3, f)
        return [(h.item_id, h.score) for h in hits]

    recall_index.__dict__["_table"] = None  # as an index built before the table
    where = search(max_overfetch=0, exact_max_items=0)
    assert calls and calls[-1]["where"]  # type: ignore[index]
    del recall_index.__dict__["_table"]
    calls.clear()
    for config in ({"exact_max_items": 6}, {"exact_max_items": 0}, {"exact_max_items": 0}):
        got = search(max_overfetch=0, **config)  # kept <= 6; no over-fetch, then by chunks
        monkeypatch.setattr("recagent.index.item_index.TABLE_CHUNK", 4)
        assert calls == []
        assert [i for i, _ in got] == [i for i, _ in where]
        assert [s for _, s in got] == pytest.approx([s for _, s in where], abs=1e-5)
