"""The workspace: one directory holding every artifact, written atomically.

Layout under the root (``RECAGENT_HOME``)::

    datasets/<name>/      prepared datasets (versioned, see `VersionedDir`)
    models/<dataset>/     trained model checkpoints
    index/<dataset>/      vector indexes
    prompts/              the user's prompt overrides
    runs/                 evaluation runs
    downloads/            fetched archives

A versioned artifact directory holds ``CURRENT`` (the name of the live version) and the
version folders themselves. A new version is built in a staging folder and becomes live by
an atomic rewrite of ``CURRENT``; a crash while building leaves the previous version live.
Readers take a lease on the version they read (`VersionedDir.open_current`), so replacing it
never deletes it under them: old versions are removed once nobody holds a lease on them.

Builders of one artifact take its build lock (`Workspace.build_lock`, files under
``locks/``), so two of them never build the same artifact at once.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from recagent.errors import ArtifactError, ConfigError
from recagent.locks import Lease, build_lock, exclusive
from recagent.progress import Reporter

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_CURRENT = "CURRENT"
_STAGING_PREFIX = ".staging-"
_LEASE = ".lease"


def check_name(name: str, what: str = "name") -> str:
    """Reject names that could escape the workspace or confuse a file system."""
    if not _NAME.match(name) or ".." in name:
        raise ConfigError(
            f"invalid {what} {name!r}: use letters, digits, '.', '_' and '-' "
            "(starting with a letter or digit)"
        )
    return name


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so readers see the old file or the new one, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; it replaces `path` only if the block succeeds.

    For writers that insist on a file name (``torch.save``, ``np.savez``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class VersionedDir:
    """A directory artifact whose versions are swapped in atomically."""

    def __init__(self, base: Path) -> None:
        self.base = base

    def current(self) -> Path | None:
        """The live version's folder, or None when nothing has been committed yet. To read
        files in it, take a lease instead (`open_current`)."""
        pointer = self.base / _CURRENT
        if not pointer.is_file():
            return None
        folder = self.base / pointer.read_text(encoding="utf-8").strip()
        return folder if folder.is_dir() else None

    def open_current(self) -> Lease | None:
        """A lease on the live version (its folder stays until released), or None when
        nothing has been committed yet."""
        for _ in range(100):  # the live version may be replaced between looking and leasing
            folder = self.current()
            if folder is None:
                return None
            lease = Lease.take(folder, _LEASE)
            if lease is not None:
                return lease
        raise ArtifactError(f"{self.base}: the live version keeps changing; try again")

    @contextmanager
    def stage(self) -> Iterator[Path]:
        """Yield an empty folder to build a version in; commit it if the block succeeds."""
        self.base.mkdir(parents=True, exist_ok=True)
        staging = self.base / f"{_STAGING_PREFIX}{secrets.token_hex(6)}"
        staging.mkdir()
        lease = Lease.take(staging, _LEASE)  # no one prunes a folder being built
        try:
            try:
                yield staging
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            version = f"v-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
            staging.rename(self.base / version)
            atomic_write_text(self.base / _CURRENT, version + "\n")
        finally:
            if lease is not None:
                lease.release()
        self._prune(keep=version)

    def _prune(self, keep: str) -> None:
        """Delete the other versions and leftover staging folders nobody holds a lease on."""
        for child in self.base.iterdir():
            if child.is_dir() and child.name != keep:
                with exclusive(child, _LEASE) as unused:
                    if unused:
                        shutil.rmtree(child, ignore_errors=True)


class Workspace:
    """Paths of every artifact under one root directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser()

    def _dir(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    @property
    def datasets_dir(self) -> Path:
        return self._dir("datasets")

    @property
    def prompts_dir(self) -> Path:
        return self._dir("prompts")

    @property
    def runs_dir(self) -> Path:
        return self._dir("runs")

    @property
    def cache_dir(self) -> Path:
        """Things that are only ever recomputed, never lost work (LLM answers, embeddings)."""
        return self._dir("cache")

    @property
    def downloads_dir(self) -> Path:
        return self._dir("downloads")

    @property
    def log_db(self) -> Path:
        return self._dir("logs.sqlite")

    def build_lock(
        self, kind: str, name: str, *, wait: bool = True, reporter: Reporter | None = None
    ) -> AbstractContextManager[None]:
        """The lock one builder of artifact `kind` `name` holds (see `recagent.locks`)."""
        path = self._dir("locks", f"{kind}-{check_name(name, f'{kind} name')}.lock")
        return build_lock(path, f"{kind} {name!r}", wait=wait, reporter=reporter)

    def dataset(self, name: str) -> VersionedDir:
        return VersionedDir(self.datasets_dir / check_name(name, "dataset name"))

    def models_dir(self, dataset: str) -> Path:
        return self._dir("models", check_name(dataset, "dataset name"))

    def index(self, dataset: str) -> VersionedDir:
        return VersionedDir(self._dir("index", check_name(dataset, "dataset name")))

    def dataset_names(self) -> list[str]:
        """Names of the datasets that have a committed version."""
        if not self.datasets_dir.is_dir():
            return []
        return sorted(
            d.name for d in self.datasets_dir.iterdir() if VersionedDir(d).current() is not None
        )


__all__ = [
    "VersionedDir",
    "Workspace",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "check_name",
]
