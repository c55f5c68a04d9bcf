"""Chroma plumbing: clients (embedded in the workspace, or a server), the provenance the
index records in its collection metadata, and translation of Chroma failures into
`RecagentError`s that say what to do.

chromadb is imported inside functions: it takes a second to import, and most commands never
touch the index.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
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

META_PREFIX = "recagent:"


class IndexUnavailableError(RecagentError):
    """The Chroma store could not be reached or answered with an error."""


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
    from chromadb.errors import ChromaError

    try:
        yield
    except ChromaError as exc:
        raise IndexUnavailableError(f"{where}: {type(exc).__name__}: {exc}") from exc
    except httpx.HTTPError as exc:
        raise IndexUnavailableError(f"{where} is unreachable: {exc}") from exc


def catalog_fingerprint(catalog: Catalog) -> str:
    """Hash of everything about the items that the index stores."""
    fp = Fingerprint()
    for item in catalog:
        fp.text(
            json.dumps(
                [item.item_id, item.title, item.year, item.genres, item.text, item.attrs],
                default=str,
            )
        )
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


__all__ = [
    "META_PREFIX",
    "IndexMeta",
    "IndexUnavailableError",
    "catalog_fingerprint",
    "chroma_errors",
    "http_client",
    "local_client",
    "parse_chroma_url",
]
