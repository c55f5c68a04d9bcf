"""One builder per artifact, with real processes: a second builder waits (saying for whom) or,
with --no-wait, exits 2 naming the holder; a dead holder's lock is taken over; two index
rebuilds at once both succeed while another process keeps querying the index."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from recagent.config import IndexConfig
from recagent.data.dataset import Dataset
from recagent.data.prepare import PrepareConfig, prepare
from recagent.errors import RecagentError
from recagent.index.store import index_status, open_index
from recagent.locks import LockedError, build_lock
from recagent.workspace import Workspace

HOLD = """
import sys
from pathlib import Path
from recagent.workspace import Workspace
with Workspace(Path(sys.argv[1])).build_lock(sys.argv[2], sys.argv[3]):
    print("locked", flush=True)
    sys.stdin.read()  # hold the lock until the test closes stdin
"""


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "RECAGENT_HOME": str(home), "COLUMNS": "200"}


class Holder:
    """A real process holding a workspace build lock until released or killed."""

    def __init__(self, home: Path, kind: str, name: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(home), kind, name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=_env(home),
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "locked"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def release(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.wait(timeout=30) == 0

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[list[Holder]]:
    held: list[Holder] = []
    yield held
    for h in held:
        if h.proc.poll() is None:
            h.kill()


def test_no_wait_exits_2_naming_the_holder(
    cli, tiny_ml100k: Path, tmp_path: Path, holder: list[Holder]
) -> None:
    holder.append(Holder(tmp_path / "home", "dataset", "ml-100k"))
    result = cli("data", "prepare", "--source", str(tiny_ml100k), "--no-wait")
    assert result.exit_code == 2, result.output
    message = " ".join(result.stderr.split())
    assert f"dataset 'ml-100k' is being built by pid {holder[0].pid}" in message
    assert f"on {socket.gethostname()}" in message and " since 20" in message
    assert "Traceback" not in result.output
    holder[0].release()
    assert cli("data", "prepare", "--source", str(tiny_ml100k), "--no-wait").exit_code == 0


def test_a_second_builder_waits_for_the_first(
    tiny_ml100k: Path, tmp_path: Path, holder: list[Holder]
) -> None:
    home = tmp_path / "home"
    holder.append(Holder(home, "dataset", "ml-100k"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "recagent", "data", "prepare", "--source", str(tiny_ml100k)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(home),
    )
    watchdog = threading.Timer(120, proc.kill)
    watchdog.start()
    assert proc.stderr is not None
    said = ""
    for line in proc.stderr:  # it says whom it waits for, then waits
        said += line
        if "waiting" in line:
            break
    assert proc.poll() is None  # still waiting
    assert f"pid {holder[0].pid}" in " ".join(said.split())
    holder[0].release()
    out, _ = proc.communicate(timeout=60)
    watchdog.cancel()
    assert proc.returncode == 0 and "prepared ml-100k" in out
    assert Dataset.load(Workspace(home), "ml-100k")


def test_the_lock_of_a_dead_builder_is_taken_over(
    cli, tiny_ml100k: Path, tmp_path: Path, holder: list[Holder]
) -> None:
    dead = Holder(tmp_path / "home", "dataset", "ml-100k")
    holder.append(dead)
    dead.kill()  # SIGKILL: no chance to release anything
    result = cli("data", "prepare", "--source", str(tiny_ml100k), "--no-wait")
    assert result.exit_code == 0, result.output
    message = " ".join(result.stderr.split())
    assert "took over the lock of dataset 'ml-100k'" in message
    assert f"pid {dead.pid}" in message


def test_the_lock_is_reentrant_in_a_process_and_exclusive_across_threads(
    tmp_path: Path,
) -> None:
    path = tmp_path / "x.lock"
    with build_lock(path, "thing"), build_lock(path, "thing"):
        failures: list[BaseException] = []

        def other() -> None:
            try:
                with build_lock(path, "thing", wait=False):
                    pass
            except LockedError as exc:
                failures.append(exc)

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        assert len(failures) == 1
    with build_lock(path, "thing", wait=False):  # released after the outer block
        pass


def test_two_index_rebuilds_at_once_and_a_reader(shared_data: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    ws = Workspace(home)
    ds = prepare(PrepareConfig(dataset="ml-100k", source=shared_data / "ml-100k"), ws)
    config = IndexConfig()
    open_index(ws, ds, config, build_if_missing=True).close()
    command = [sys.executable, "-m", "recagent", "index", "build", "--rebuild"]
    builders = [
        subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(home)
        )
        for _ in range(2)
    ]
    queries, errors = 0, []
    deadline = time.monotonic() + 300
    while any(b.poll() is None for b in builders) and time.monotonic() < deadline:
        try:
            with open_index(ws, ds, config) as index:
                assert len(index.search("a dark dystopian sci-fi film", k=5)) == 5
            queries += 1
        except RecagentError as exc:
            errors.append(exc)
    outputs = [b.communicate(timeout=60) for b in builders]
    for builder, (out, err) in zip(builders, outputs, strict=True):
        assert builder.returncode == 0, err[-3000:]
        assert "indexed 1,682 items" in out
    assert queries > 0 and not errors, errors[:3]
    assert index_status(ws, ds, config).state == "fresh"
    leftovers = [p.name for p in ws.index("ml-100k").base.iterdir()]
    assert not any(p.startswith(".staging") for p in leftovers), leftovers
