"""Manifests: what produced an artifact, so later steps can tell a stale one from a fresh one."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recagent import __version__
from recagent.errors import ArtifactError
from recagent.workspace import atomic_write_text

MANIFEST_NAME = "manifest.json"


class Manifest(BaseModel):
    """Provenance of one artifact (a prepared dataset, a checkpoint, an index, a run)."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    name: str
    fingerprint: str = Field(description="Hash of the artifact's content.")
    config: dict[str, Any] = Field(default_factory=dict, description="Options that built it.")
    inputs: dict[str, str] = Field(
        default_factory=dict, description="Fingerprints of the artifacts it was built from."
    )
    stats: dict[str, Any] = Field(default_factory=dict)
    recagent_version: str = __version__
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def write(self, folder: Path) -> None:
        atomic_write_text(folder / MANIFEST_NAME, self.model_dump_json(indent=2) + "\n")

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        path = folder / MANIFEST_NAME
        try:
            return cls.model_validate_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ArtifactError(f"{folder} has no {MANIFEST_NAME}; rebuild it") from exc
        except ValidationError as exc:
            raise ArtifactError(
                f"{path} is damaged ({exc.error_count()} problems); rebuild it"
            ) from exc


class Fingerprint:
    """An incremental SHA-256 over strings, JSON values and numpy arrays."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()

    def text(self, value: str) -> Fingerprint:
        data = value.encode("utf-8")
        self._h.update(len(data).to_bytes(8, "little") + data)
        return self

    def json(self, value: Any) -> Fingerprint:
        return self.text(json.dumps(value, sort_keys=True, default=str))

    def array(self, value: np.ndarray) -> Fingerprint:
        arr = np.ascontiguousarray(value)
        self.text(f"{arr.dtype.str}{arr.shape}")
        self._h.update(arr.tobytes())
        return self

    def bytes(self, value: bytes) -> Fingerprint:
        self._h.update(len(value).to_bytes(8, "little") + value)
        return self

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


__all__ = ["MANIFEST_NAME", "Fingerprint", "Manifest", "file_sha256"]
