"""Chroma plumbing: clients (embedded in the workspace, or a server), the provenance the
index records in its collection metadata, the versions of an index on a server, and
translation of Chroma failures into `RecagentError`s that say what to do.

On a server, each build of index `<name>` is its own collection `<name>.v<stamp>-<token>`;
a pointer collection `<name>.live` (no vectors) names the live one in its metadata and is
switched with one `modify` once the new version is complete. Readers resolve the pointer, so
they see the old version or the new one, never a half-built or deleted one. A version that
stops being live is kept for `RETIRED_GRACE_S` (and the latest one until the next build), so
an index opened before a rebuild goes on reading it; the next build deletes the rest. An
index built before versions existed (vectors under the plain `<name>`) still opens, and is
retired like a version by the first build.

chromadb is imported inside functions: it takes a second to import, and most commands never
touch the index.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, ValidationError

from recagent import __version__
from recagent.data.catalog import Catalog
from recagent.errors import ArtifactError, ConfigError, RecagentError
from recagent.manifest import Fingerprint

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

META_PREFIX = "recagent:"
LIVE_KEY = META_PREFIX + "live"  # the pointer's metadata: the live version
RETIRED_KEY = META_PREFIX + "retired"  # and JSON {version: when it stopped being live}
RETIRED_GRACE_S = 3600.0  # a retired version outlives its retirement by at least this


class IndexUnavailableError(RecagentError):
    """The Chroma store could not be reached or answered with an error."""


class CollectionGoneError(IndexUnavailableError):
    """The collection was deleted (on a server: a rebuild retired the version read)."""


def _settings():  # type: ignore[no-untyped-def]
    from chromadb.config import Settings as ChromaSettings

    return ChromaSettings(anonymized_telemetry=False, allow_reset=False)


def parse_chroma_url(url: str) -> tuple[str, int, bool]:
    """(host, port, ssl) from 'http://host:port', 'https://host' or 'host:port'."""
    parsed = urlparse(url if "://" in url else f"http://{url}")
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigError(f"invalid Chroma URL {url!r}: expected http://host:port")
    try:
        port = parsed.port or (443 if parsed.scheme == "https" else 8000)
    except ValueError as exc:
        raise ConfigError(f"invalid Chroma URL {url!r}: {exc}") from exc
    return parsed.hostname, port, parsed.scheme == "https"


def http_client(url: str) -> ClientAPI:
    """A client of the Chroma server at `url` (checked reachable)."""
    import chromadb

    host, port, ssl = parse_chroma_url(url)
    try:
        return chromadb.HttpClient(host=host, port=port, ssl=ssl, settings=_settings())
    except ValueError as exc:  # chromadb reports a refused connection as ValueError
        raise IndexUnavailableError(
            f"cannot reach the Chroma server at {url} ({exc}); start one with "
            "`chroma run --path DIR --port PORT`, or drop --chroma-url to use the workspace"
        ) from exc


def local_client(path: Path) -> ClientAPI:
    """A client of the embedded Chroma store in `path`."""
    import chromadb

    with chroma_errors(f"the Chroma store in {path}"):
        return chromadb.PersistentClient(path=str(path), settings=_settings())


@contextmanager
def chroma_errors(where: str) -> Iterator[None]:
    """Turn Chroma and transport failures into an `IndexUnavailableError` naming `where`."""
    import httpx
    from chromadb.errors import ChromaError, NotFoundError

    try:
        yield
    except NotFoundError as exc:
        raise CollectionGoneError(f"{where}: {type(exc).__name__}: {exc}") from exc
    except ChromaError as exc:
        raise IndexUnavailableError(f"{where}: {type(exc).__name__}: {exc}") from exc
    except httpx.HTTPError as exc:
        raise IndexUnavailableError(f"{where} is unreachable: {exc}") from exc


def catalog_fingerprint(catalog: Catalog) -> str:
    """Hash of everything about the items that the index stores."""
    fp = Fingerprint()
    for item in catalog:
        fields: list[object] = [item.item_id, item.title, item.year, item.genres, item.text]
        fields.append(item.attrs)
        if item.knowledge:  # (catalogs without knowledge keep the fingerprints they had)
            fields.append(item.knowledge)
        fp.text(json.dumps(fields, default=str))
    return fp.hexdigest()


class IndexMeta(BaseModel):
    """What built an index; stored flat in the collection metadata (keys `recagent:*`)."""

    model_config = ConfigDict(extra="forbid")

    dataset: str
    catalog_fingerprint: str
    embedder: str
    dim: int
    template_name: str
    template_hash: str
    items: int
    hnsw: str = ""
    recagent_version: str = __version__
    built_at: str = ""

    def to_metadata(self) -> dict[str, Any]:
        built = self.built_at or datetime.now(UTC).isoformat(timespec="seconds")
        data = self.model_dump() | {"built_at": built}
        return {META_PREFIX + k: v for k, v in data.items()}

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any] | None, where: str) -> IndexMeta:
        fields = {
            k[len(META_PREFIX) :]: v
            for k, v in (metadata or {}).items()
            if k.startswith(META_PREFIX)
        }
        if not fields:
            raise ArtifactError(
                f"{where} is not a recagent index (no recagent metadata); choose another "
                "collection or rebuild it with `recagent index build --rebuild`"
            )
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            raise ArtifactError(
                f"{where} has damaged recagent metadata ({exc.error_count()} problems); "
                "rebuild it with `recagent index build --rebuild`"
            ) from exc

    def mismatches(self, wanted: IndexMeta) -> dict[str, str]:
        """What differs from the index `wanted` describes: {field: 'have -> want'}."""
        out = {}
        for name in ("dataset", "embedder", "dim", "template_hash", "catalog_fingerprint"):
            have, want = getattr(self, name), getattr(wanted, name)
            if have != want:
                if name == "template_hash":
                    have, want = f"{self.template_name}#{have}", f"{wanted.template_name}#{want}"
                elif name == "catalog_fingerprint":
                    have, want = have[:12], want[:12]
                out[name] = f"{have} -> {want}"
        return out


def drop_collections(client: ClientAPI, names: list[str], where: str) -> None:
    """Delete collections (one already gone is no matter)."""
    for name in names:
        with suppress(CollectionGoneError), chroma_errors(where):
            client.delete_collection(name)


@dataclass(frozen=True)
class Pointer:
    """What the pointer collection of an index on a server says: the live version, and the
    versions retired before it with the time each stopped being live."""

    live: str
    retired: dict[str, datetime]

    def to_metadata(self) -> dict[str, Any]:
        retired = {name: at.isoformat(timespec="seconds") for name, at in self.retired.items()}
        return {LIVE_KEY: self.live, RETIRED_KEY: json.dumps(retired, sort_keys=True)}

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any] | None, where: str) -> Pointer:
        data = metadata or {}
        try:
            live = data[LIVE_KEY]
            retired = json.loads(data.get(RETIRED_KEY) or "{}")
            if not isinstance(live, str) or not isinstance(retired, dict):
                raise TypeError("unexpected types")
            return cls(live, {str(k): datetime.fromisoformat(v) for k, v in retired.items()})
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(
                f"{where}: the pointer to the live version is damaged ({exc!r}); rebuild the "
                "index with `recagent index build --rebuild`"
            ) from exc


@dataclass(frozen=True)
class ServerVersions:
    """The collections of index `name` on a Chroma server (see the module docstring)."""

    name: str
    where: str

    @property
    def pointer_name(self) -> str:
        return f"{self.name}.live"

    def new_version(self) -> str:
        """The name of a version built now: sorts by build time, unique per build."""
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        return f"{self.name}.v{stamp}-{secrets.token_hex(3)}"

    def is_version(self, collection: str) -> bool:
        return (
            re.fullmatch(re.escape(self.name) + r"\.v\d{8}-\d{6}-[0-9a-f]{6}", collection)
            is not None
        )

    def is_debris(self, collection: str) -> bool:
        """A staging collection left by a build that crashed before versions existed."""
        return re.fullmatch(re.escape(self.name) + r"-staging-[0-9a-f]{8}", collection) is not None

    def pointer(self, client: ClientAPI) -> Pointer | None:
        """The pointer, or None when no versioned build has been made."""
        from chromadb.errors import NotFoundError

        with chroma_errors(self.where):
            try:
                collection = client.get_collection(self.pointer_name)
            except NotFoundError:
                return None
            return Pointer.from_metadata(collection.metadata, self.where)

    def live(self, client: ClientAPI) -> Collection | None:
        """The live collection: the pointer's version, else an index built before versions
        existed (the plain name), else None. A pointer that moves on while it is followed
        (a rebuild finished) is read again."""
        from chromadb.errors import NotFoundError

        seen: str | None = None
        for _ in range(5):
            pointer = self.pointer(client)
            name = self.name if pointer is None else pointer.live
            if name == seen:
                return None  # the pointer names a version that is gone: no index
            with chroma_errors(self.where):
                try:
                    return client.get_collection(name)
                except NotFoundError:
                    if pointer is None:
                        return None
            seen = name
        raise IndexUnavailableError(
            f"{self.where}: the live version kept changing while being opened; try again"
        )

    def switch(self, client: ClientAPI, version: str, before: Pointer | None) -> list[str]:
        """Make `version` live with one write of the pointer; return the retired versions
        that can go now (retired over `RETIRED_GRACE_S` ago, and not the latest)."""
        now = datetime.now(UTC)
        retired = dict(before.retired) if before else {}
        previous = before.live if before else self._legacy(client)
        if previous is not None:
            retired[previous] = now
        cutoff = now - timedelta(seconds=RETIRED_GRACE_S)
        expired = [v for v, at in retired.items() if at < cutoff and v != previous]
        pointer = Pointer(version, {v: at for v, at in retired.items() if v not in expired})
        with chroma_errors(self.where):
            if before is None:
                client.create_collection(
                    self.pointer_name, metadata=pointer.to_metadata(), embedding_function=None
                )
            else:
                client.get_collection(self.pointer_name).modify(metadata=pointer.to_metadata())
        return expired

    def unreferenced(self, client: ClientAPI, pointer: Pointer | None) -> list[str]:
        """Collections of this index that no reader can have open: versions neither live nor
        retired (their build crashed), staging debris, and the pre-versions collection once
        a pointer exists and no longer lists it."""
        kept = set() if pointer is None else {pointer.live, *pointer.retired}
        with chroma_errors(self.where):
            names = [c.name for c in client.list_collections()]
        return [
            n
            for n in names
            if n not in kept
            and (
                self.is_version(n) or self.is_debris(n) or (n == self.name and pointer is not None)
            )
        ]

    def _legacy(self, client: ClientAPI) -> str | None:
        """The plain-named collection of an index built before versions existed, if any."""
        from chromadb.errors import NotFoundError

        with chroma_errors(self.where):
            try:
                client.get_collection(self.name)
            except NotFoundError:
                return None
        return self.name


__all__ = [
    "META_PREFIX",
    "CollectionGoneError",
    "IndexMeta",
    "IndexUnavailableError",
    "Pointer",
    "ServerVersions",
    "catalog_fingerprint",
    "chroma_errors",
    "drop_collections",
    "http_client",
    "local_client",
    "parse_chroma_url",
]
