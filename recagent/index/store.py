"""The item index in Chroma: where it lives, how it is built, and how it is opened.

One code path serves both stores: the embedded one in the workspace
(``index/<dataset>/<version>/chroma``) and a Chroma server (``--chroma-url``). A build fills
a new collection in batches and, only once every item is in, makes it the live one: on the
embedded store inside a staging folder that `VersionedDir` commits atomically, on a server as
a new version that its pointer collection is switched to (`ServerVersions`). A crash or a bad
embedder therefore leaves the previous index in place (or no index), never a half-built one
live. One build of an index runs at a time (its build lock). An open `ItemIndex` keeps
reading the version it opened: in the workspace it holds a lease, so a rebuild never deletes
that version under it (it goes once the index is closed); on a server a retired version is
kept a while, and an index whose version did go follows the pointer to the live one when
that was built the same way.

The collection metadata records what built it (`IndexMeta`: dataset, catalog fingerprint,
embedder name and dimension, template hash). Opening compares that with what is configured:
another dataset's index is refused; a different embedder or template is refused (building
again is the caller's explicit choice); a changed catalog is rebuilt when the caller allows
it, else refused. Nothing stale is ever queried.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel

from recagent.config import IndexConfig
from recagent.data.catalog import Catalog
from recagent.data.dataset import Dataset
from recagent.errors import ArtifactError
from recagent.index.chroma import (
    IndexMeta,
    IndexUnavailableError,
    ServerVersions,
    catalog_fingerprint,
    chroma_errors,
    drop_collections,
    http_client,
    local_client,
)
from recagent.index.embedders import Embedder, checked_embed, make_embedder
from recagent.index.filters import item_metadata
from recagent.index.item_index import Hit, ItemIndex, QueryError
from recagent.index.text import ItemTemplate, load_template
from recagent.locks import Lease
from recagent.manifest import Manifest
from recagent.progress import Reporter, SilentReporter
from recagent.workspace import Workspace, check_name

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

CHROMA_DIR = "chroma"
# Beside the embedded store: every item's vector as a .npy table (row i = the catalog's item
# i + 1), memory-mapped when the index opens, so a filter that keeps a few thousand of a
# million items is scored exactly in milliseconds instead of by Chroma's `where`, which reads
# every record.
VECTORS_FILE = "vectors.npy"
State = Literal["fresh", "missing", "foreign", "mismatch", "stale"]


TEXT = "text"


@dataclass(frozen=True)
class IndexLocation:
    """Where one vector space of one dataset lives. The text space is the index; another
    space (`cowatch`: the item encoder's) is its own collection next to it, named
    `<collection>-<space>`, in its own versioned folder (`index/<dataset>.<space>`), so
    building one never touches the other."""

    dataset: str
    collection: str
    server: str | None
    workspace: Workspace
    space: str = TEXT

    @classmethod
    def of(
        cls, workspace: Workspace, dataset: str, config: IndexConfig, space: str = TEXT
    ) -> IndexLocation:
        name = config.collection or f"recagent-{check_name(dataset, 'dataset name')}"
        if space != TEXT:
            name = f"{name}-{check_name(space, 'space name')}"
        if len(name) < 3 or not (name[0].isalnum() and name[-1].isalnum()):
            raise ArtifactError(f"invalid collection name {name!r}")
        name = check_name(name, "collection name")
        return cls(dataset, name, config.chroma_url, workspace, space)

    @property
    def folder(self) -> str:
        """The workspace folder (and build-lock) name of this space."""
        return self.dataset if self.space == TEXT else f"{self.dataset}.{self.space}"

    def describe(self) -> str:
        if self.server:
            return f"collection {self.collection!r} on {self.server}"
        return f"collection {self.collection!r} in {self.workspace.index(self.folder).base}"

    @property
    def versions(self) -> ServerVersions:
        """The versions of this index on its server."""
        return ServerVersions(self.collection, self.describe())

    def open_store(self) -> tuple[ClientAPI | None, Lease | None]:
        """A client of the store holding the live index (None: nothing built yet), and for
        the workspace store the lease that keeps that version on disk until released."""
        if self.server:
            return http_client(self.server), None
        lease = self.workspace.index(self.folder).open_current()
        if lease is None:
            return None, None
        try:
            return local_client(lease.folder / CHROMA_DIR), lease
        except BaseException:
            lease.release()
            raise


class IndexStatus(BaseModel):
    """What `recagent index status` reports."""

    location: str
    state: State
    version: str | None = None  # the live version: a server's collection, a workspace folder
    meta: IndexMeta | None = None
    problems: dict[str, str] = {}


def wanted_meta(
    dataset: Dataset | tuple[str, Catalog],
    embedder: Embedder,
    template: ItemTemplate,
    config: IndexConfig,
) -> IndexMeta:
    """The metadata an index built now with this configuration would carry."""
    name, catalog = _named(dataset)
    return IndexMeta(
        dataset=name,
        catalog_fingerprint=catalog_fingerprint(catalog),
        embedder=embedder.name,
        dim=embedder.dim,
        template_name=template.name,
        template_hash=template.hash,
        items=len(catalog),
        hnsw=(
            f"M={config.hnsw_max_neighbors},ef_construction={config.hnsw_ef_construction},"
            f"ef_search={config.hnsw_ef_search}"
        ),
    )


def _state(have: IndexMeta, want: IndexMeta) -> tuple[State, dict[str, str]]:
    problems = have.mismatches(want)
    if "dataset" in problems:
        return "foreign", problems
    if problems.keys() & {"embedder", "dim", "template_hash"}:
        return "mismatch", problems
    if problems:
        return "stale", problems
    return "fresh", {}


def _live(client: ClientAPI, location: IndexLocation) -> Collection | None:
    """The live collection of the index (None: not built): on a server, the version its
    pointer names."""
    from chromadb.errors import NotFoundError

    if location.server:
        return location.versions.live(client)
    with chroma_errors(location.describe()):
        try:
            return client.get_collection(location.collection)
        except NotFoundError:
            return None


def _meta(collection: Collection | None, location: IndexLocation) -> IndexMeta | None:
    if collection is None:
        return None
    return IndexMeta.from_metadata(collection.metadata, location.describe())


def index_status(
    workspace: Workspace,
    dataset: Dataset | tuple[str, Catalog],
    config: IndexConfig,
    embedder: Embedder | None = None,
    space: str = TEXT,
) -> IndexStatus:
    """Is there an index (of `space`) for `dataset`, and does it match the configuration?"""
    location = IndexLocation.of(workspace, _named(dataset)[0], config, space)
    client, lease = location.open_store()
    try:
        live = None if client is None else _live(client, location)
        have = _meta(live, location)
    finally:
        _close(client, lease)
    if live is None or have is None:
        return IndexStatus(location=location.describe(), state="missing")
    want = wanted_meta(
        dataset, embedder or make_embedder(config), load_template(config.template), config
    )
    state, problems = _state(have, want)
    version = live.name if lease is None else lease.folder.name
    return IndexStatus(
        location=location.describe(), state=state, version=version, meta=have, problems=problems
    )


def build_index(
    workspace: Workspace,
    dataset: Dataset | tuple[str, Catalog],
    config: IndexConfig,
    *,
    embedder: Embedder | None = None,
    reporter: Reporter | None = None,
    wait: bool = True,
    space: str = TEXT,
) -> IndexMeta:
    """Embed every item and commit a new index, replacing the live one only at the end.

    Holds the index's build lock: another build of it waits (or, `wait=False`, is refused
    with `LockedError` naming this one)."""
    location = IndexLocation.of(workspace, _named(dataset)[0], config, space)
    report = reporter or SilentReporter()
    with workspace.build_lock("index", location.folder, wait=wait, reporter=report):
        return _build(workspace, dataset, config, embedder, report, location)


def _build(
    workspace: Workspace,
    dataset: Dataset | tuple[str, Catalog],
    config: IndexConfig,
    embedder: Embedder | None,
    report: Reporter,
    location: IndexLocation,
) -> IndexMeta:
    name, catalog = _named(dataset)
    embedder = embedder or make_embedder(config)
    template = load_template(config.template)
    meta = wanted_meta((name, catalog), embedder, template, config)
    job = _Fill(catalog, embedder, template, meta, config, report, location.describe())
    if location.server:
        client = http_client(location.server)
        try:
            _new_version(client, location.versions, job)
        finally:
            _close(client)
        return meta
    with workspace.index(location.folder).stage() as staging:
        client = local_client(staging / CHROMA_DIR)
        try:
            job.into(client, location.collection, staging / VECTORS_FILE)
        finally:
            _close(client)
        Manifest(
            kind="index",
            name=name,
            fingerprint=meta.catalog_fingerprint,
            config=config.model_dump(mode="json"),
            inputs={"dataset": dataset.fingerprint} if isinstance(dataset, Dataset) else {},
            stats=meta.model_dump(),
        ).write(staging)
    return meta


def _new_version(client: ClientAPI, versions: ServerVersions, job: _Fill) -> None:
    """On a server: build a new version, switch the pointer to it, and delete what no
    reader needs any more (see `ServerVersions`)."""
    try:
        before = versions.pointer(client)
    except ArtifactError:  # damaged: this build writes it anew
        drop_collections(client, [versions.pointer_name], job.where)
        before = None
    drop_collections(client, versions.unreferenced(client, before), job.where)  # crashed builds
    version = versions.new_version()
    job.into(client, version)
    drop_collections(client, versions.switch(client, version, before), job.where)


@dataclass(frozen=True)
class _Fill:
    """What one build embeds, with what, and where it reports."""

    catalog: Catalog
    embedder: Embedder
    template: ItemTemplate
    meta: IndexMeta
    config: IndexConfig
    report: Reporter
    where: str

    def into(self, client: ClientAPI, name: str, table: Path | None = None) -> None:
        """Create collection `name` and embed every item into it (and, given `table`, write
        the vectors there too, row i = the catalog's item i + 1: see `VECTORS_FILE`); on any
        failure, delete it."""
        config, where = self.config, self.where
        with chroma_errors(where):
            collection = client.create_collection(
                name,
                configuration={
                    "hnsw": {
                        "space": "cosine",
                        "ef_construction": config.hnsw_ef_construction,
                        "ef_search": config.hnsw_ef_search,
                        "max_neighbors": config.hnsw_max_neighbors,
                    }
                },
                metadata=self.meta.to_metadata(),
                embedding_function=None,
            )
        try:
            self._embed(collection, table)
        except BaseException:
            with suppress(IndexUnavailableError):
                drop_collections(client, [name], where)
            raise

    def _embed(self, collection: Collection, table: Path | None) -> None:
        items, step = list(self.catalog), self.config.batch_size
        label = f"indexing {len(items):,} items ({self.embedder.name})"
        rows = None
        if table is not None:
            shape = (len(items), self.meta.dim)
            rows = np.lib.format.open_memmap(table, mode="w+", dtype=np.float32, shape=shape)
        with self.report.stage(label, len(items)) as adv:
            for start in range(0, len(items), step):
                batch = items[start : start + step]
                texts = self.template.render_all(batch)
                vectors = checked_embed(self.embedder, texts, self.meta.dim)
                if rows is not None:
                    rows[start : start + len(batch)] = vectors
                with chroma_errors(self.where):
                    collection.upsert(
                        ids=[it.item_id for it in batch],
                        embeddings=vectors,
                        metadatas=[item_metadata(it.item_id, it.year, it.genres) for it in batch],
                        documents=texts,
                    )
                adv(len(batch))
        if rows is not None:
            rows.flush()
            del rows
        with chroma_errors(self.where):
            count = collection.count()
        if count != len(items):
            raise ArtifactError(
                f"{self.where}: stored {count} of {len(items)} items; not committed"
            )


def open_index(
    workspace: Workspace,
    dataset: Dataset | tuple[str, Catalog],
    config: IndexConfig,
    *,
    embedder: Embedder | None = None,
    reporter: Reporter | None = None,
    build_if_missing: bool = False,
    rebuild_if_stale: bool = False,
    space: str = TEXT,
) -> ItemIndex:
    """The fresh index of `dataset`, ready to query.

    Missing: built when `build_if_missing`, else `ArtifactError`. Built from an older catalog:
    rebuilt when `rebuild_if_stale`, else `ArtifactError`. Another dataset's index, or one
    built with another embedder or template: always `ArtifactError` (rebuild explicitly with
    `build_index` / `recagent index build --rebuild`)."""
    name, catalog = _named(dataset)
    embedder = embedder or make_embedder(config)
    template = load_template(config.template)
    location = IndexLocation.of(workspace, name, config, space)
    want = wanted_meta(dataset, embedder, template, config)
    client, lease = location.open_store()
    try:
        live = None if client is None else _live(client, location)
        have = _meta(live, location)
        state, problems = ("missing", {}) if have is None else _state(have, want)
        if state == "fresh":
            assert client is not None and live is not None and have is not None
            index = ItemIndex(
                live, catalog, embedder, have, config, location.describe(), client, template
            )
            index.lease = lease  # released when the index is closed
            if lease is not None:
                index.table_path = lease.folder / VECTORS_FILE
            if location.server:  # a rebuild may retire the version read: follow the pointer
                index.reopen = lambda: _live(client, location)
            return index
    except BaseException:
        _close(client, lease)
        raise
    _close(client, lease)
    detail = "; ".join(f"{k}: {v}" for k, v in problems.items())
    if state == "missing" and not build_if_missing:
        raise ArtifactError(
            f"no index for dataset {name!r} ({location.describe()}); run "
            f"`recagent index build --dataset {name}`"
        )
    if state == "foreign":
        raise ArtifactError(
            f"{location.describe()} holds the index of another dataset ({detail}); use "
            "another --collection, or replace it with `recagent index build --rebuild`"
        )
    if state == "mismatch":
        raise ArtifactError(
            f"the index was built differently from the configuration ({detail}); use the "
            f"same --embedder/--template, or rebuild: `recagent index build --dataset "
            f"{name} --rebuild`"
        )
    if state == "stale" and not rebuild_if_stale:
        raise ArtifactError(
            f"the index of {name!r} is stale ({detail}); rebuild it with "
            f"`recagent index build --dataset {name}`"
        )
    with workspace.build_lock("index", location.folder, reporter=reporter):
        # another process may have built it while this one waited for the lock
        if index_status(workspace, dataset, config, embedder, space).state != "fresh":
            _build(workspace, dataset, config, embedder, reporter or SilentReporter(), location)
    return open_index(workspace, dataset, config, embedder=embedder, space=space)


def _named(dataset: Dataset | tuple[str, Catalog]) -> tuple[str, Catalog]:
    return (dataset.name, dataset.catalog) if isinstance(dataset, Dataset) else dataset


def _close(client: ClientAPI | None, lease: Lease | None = None) -> None:
    try:
        if client is not None and hasattr(client, "close"):
            client.close()
    finally:
        if lease is not None:
            lease.release()


__all__ = [
    "TEXT",
    "Hit",
    "IndexLocation",
    "IndexStatus",
    "ItemIndex",
    "QueryError",
    "build_index",
    "index_status",
    "open_index",
    "wanted_meta",
]
