"""Advisory file locks (fcntl): one builder per artifact, and leases that keep a version that
readers use from being deleted under them.

`build_lock` is what preparing a dataset, training a model and building an index take, one
lock file per artifact (`<workspace>/locks/` for datasets and indexes, `<checkpoint>.lock`
beside a model's checkpoint). The lock file names its holder (pid, host,
command, since when) so a second builder can say who it waits for, or, with `wait=False`,
exit with `LockedError` saying so. The kernel releases a lock when its process dies, however
it dies, so the lock of a dead builder is simply taken over (and the takeover said). Inside
one process the lock is reentrant, so a builder may call another step that takes it.

`Lease` is a shared lock on one version folder (see `workspace.VersionedDir`): readers hold
one while they read a version, builders hold one on their staging folder, and old versions
are deleted only by whoever gets the lock exclusively, so never while in use.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shlex
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ValidationError

from recagent.errors import RecagentError
from recagent.progress import Reporter, SilentReporter

log = logging.getLogger(__name__)


class LockHolder(BaseModel):
    """Who holds a build lock, as written in its lock file."""

    pid: int
    host: str
    command: str
    since: str

    @classmethod
    def me(cls) -> LockHolder:
        program = Path(sys.argv[0]).name
        program = "recagent" if program == "__main__.py" else program  # python -m recagent
        command = shlex.join([program, *sys.argv[1:]])[:200]
        since = datetime.now(UTC).isoformat(timespec="seconds")
        return cls(pid=os.getpid(), host=socket.gethostname(), command=command, since=since)

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} ({self.command}) since {self.since}"


class LockedError(RecagentError):
    """Another builder holds the lock of an artifact (and we were asked not to wait)."""


def _read_holder(fd: int) -> LockHolder | None:
    try:
        data = os.pread(fd, 4096, 0)
        return LockHolder.model_validate_json(data) if data.strip() else None
    except (OSError, ValidationError):
        return None


def _write_holder(fd: int, holder: LockHolder | None) -> None:
    os.ftruncate(fd, 0)
    if holder is not None:
        os.pwrite(fd, holder.model_dump_json().encode("utf-8"), 0)


def _holder_of(fd: int) -> str:
    """The holder's description; it may be writing it right now, so look a few times."""
    for _ in range(20):
        holder = _read_holder(fd)
        if holder is not None:
            return holder.describe()
        time.sleep(0.025)
    return "another process"


def _lock_file(path: Path, what: str, wait: bool, reporter: Reporter) -> int:
    """Open and lock `path` exclusively; returns the open descriptor."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder_of(fd)
            if not wait:
                raise LockedError(
                    f"{what} is being built by {holder}; wait for it to finish, or run again "
                    f"without --no-wait to wait (lock: {path})"
                ) from None
            log.warning("%s is being built by %s; waiting for it to finish", what, holder)
            with reporter.stage(f"waiting for {holder} to finish {what}"):
                fcntl.flock(fd, fcntl.LOCK_EX)
        stale = _read_holder(fd)
        if stale is not None:
            log.warning(
                "took over the lock of %s from %s, which ended without releasing it",
                what,
                stale.describe(),
            )
        _write_holder(fd, LockHolder.me())
        return fd
    except BaseException:
        os.close(fd)
        raise


@dataclass
class _Held:
    """This process's hold on one lock file: reentrant, one thread at a time."""

    mutex: threading.RLock = field(default_factory=threading.RLock)
    depth: int = 0
    fd: int = -1


_HELD: dict[Path, _Held] = {}
_HELD_MUTEX = threading.Lock()


@contextmanager
def build_lock(
    path: Path, what: str, *, wait: bool = True, reporter: Reporter | None = None
) -> Iterator[None]:
    """Hold the build lock at `path` for `what` (e.g. "index 'ml-100k'") during the block.

    Held by another process or thread: wait for it, saying who holds it, or with
    `wait=False` raise `LockedError` naming the holder."""
    reporter = reporter or SilentReporter()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = path.resolve()
    with _HELD_MUTEX:
        held = _HELD.setdefault(key, _Held())
    if not held.mutex.acquire(blocking=False):
        if not wait:
            raise LockedError(f"{what} is being built by another thread of this process")
        with reporter.stage(f"waiting for another build of {what}"):
            held.mutex.acquire()
    try:
        if held.depth == 0:
            held.fd = _lock_file(path, what, wait, reporter)
        held.depth += 1
        try:
            yield
        finally:
            held.depth -= 1
            if held.depth == 0:
                _write_holder(held.fd, None)
                os.close(held.fd)  # closing releases the lock
                held.fd = -1
    finally:
        held.mutex.release()


class Lease:
    """A shared lock on a version folder's lease file; `folder` is safe to read until
    `release`."""

    def __init__(self, folder: Path, fd: int | None) -> None:
        self.folder = folder
        self._fd = fd

    @classmethod
    def take(cls, folder: Path, name: str) -> Lease | None:
        """A lease on `folder` (waits while it is being deleted); None if it is gone."""
        path = folder / name
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except PermissionError:  # a read-only workspace: nobody can delete it either
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                return cls(folder, None) if folder.is_dir() else None
        except OSError:
            return None
        fcntl.flock(fd, fcntl.LOCK_SH)
        if not folder.is_dir():  # deleted while we waited for the lock
            os.close(fd)
            return None
        return cls(folder, fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextmanager
def exclusive(folder: Path, name: str) -> Iterator[bool]:
    """Yield True while holding `folder`'s lease file exclusively (nobody reads or builds
    it), False when someone holds a lease on it."""
    try:
        fd = os.open(folder / name, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


__all__ = ["Lease", "LockHolder", "LockedError", "build_lock", "exclusive"]
