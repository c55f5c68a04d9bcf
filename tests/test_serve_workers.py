"""Several server processes over one workspace (`recagent serve --workers N`): a
conversation's turns run one at a time across processes (a lock in the session store, with
a lease that outlives no crashed worker), a worker whose copy is older than the store's
reloads it first (no lost update), and the option is validated."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from recagent.agent.session import ChatSession
from recagent.app import Services, load_services
from recagent.config import load_settings
from recagent.web.server import create_app
from recagent.web.sessions import SessionStore, StaleSession
from tests.conftest import Stack, default_sigint
from tests.webkit import LOCAL, make_backend, running

URL = re.compile(r"serving on (http://127\.0\.0\.1:\d+/)")
TURN_S = 0.3  # each turn sleeps this long first, so that turns without a lock would overlap
MESSAGES = [
    "a comedy",
    "a drama",
    "a western",
    "a thriller",
    "a romance",
    "a sci-fi film",
    "an action film",
    "a horror film",
]
# Loaded by every Python process started with this folder on PYTHONPATH (the server and
# the workers uvicorn spawns): each turn sleeps TURN_S, then is recorded with its process.
HOOK = """
import json, os, time
from recagent.agent.session import ChatSession

_ask = ChatSession.ask


def _recorded_ask(self, message, *args, **kwargs):
    start = time.time()
    time.sleep(float(os.environ["RECAGENT_TEST_TURN_S"]))
    out = _ask(self, message, *args, **kwargs)
    line = {"pid": os.getpid(), "session": self.session_id, "text": message,
            "start": start, "end": time.time()}
    with open(os.environ["RECAGENT_TEST_TURN_LOG"], "a") as fh:
        fh.write(json.dumps(line) + "\\n")
    return out


ChatSession.ask = _recorded_ask
"""


@pytest.fixture(scope="module")
def services(mini_stack: Stack) -> Services:
    settings = load_settings(home=mini_stack.workspace.root)
    return load_services(mini_stack.workspace, settings, "ml-100k", build_missing=False)


def test_the_lock_across_processes(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "sessions.sqlite")
    assert store.try_lock("s", "worker-1", lease_s=30)
    assert not store.try_lock("s", "worker-2", lease_s=30)  # held
    assert store.try_lock("s", "worker-1", lease_s=30)  # its holder may take it again
    assert store.renew_lock("s", "worker-1", lease_s=30)
    assert not store.renew_lock("s", "worker-2", lease_s=30)
    store.unlock("s", "worker-2")  # not its lock: nothing happens
    assert not store.try_lock("s", "worker-2", lease_s=30)
    store.unlock("s", "worker-1")
    assert store.try_lock("s", "worker-2", lease_s=0.05)  # then worker-2 "crashes"
    assert not store.try_lock("s", "worker-3", lease_s=30)
    time.sleep(0.1)
    assert store.try_lock("s", "worker-3", lease_s=30)  # its lease ran out
    assert not store.renew_lock("s", "worker-2", lease_s=30)


def test_a_worker_reloads_what_another_worker_stored(services: Services, tmp_path: Path) -> None:
    """Two backends over one store stand for two workers: each turn starts from the stored
    conversation, whichever worker answered the turn before."""
    db = tmp_path / "sessions.sqlite"
    one, two = make_backend(services, db), make_backend(services, db)
    with (
        TestClient(create_app(one), base_url=LOCAL) as a,
        TestClient(create_app(two), base_url=LOCAL) as b,
    ):
        sid = a.post("/v1/sessions", json={"user_id": "3"}).json()["session_id"]
        assert b.get(f"/v1/sessions/{sid}").json()["turns"] == []  # b has its own copy now
        first = a.post(f"/v1/sessions/{sid}/messages", json={"text": "a comedy", "k": 3}).json()
        more = b.post(f"/v1/sessions/{sid}/messages", json={"text": "more", "k": 3}).json()
        # "more" continued a's comedy request, without what a had shown
        assert all("Comedy" in it["genres"] for it in more["items"])
        shown = {it["item_id"] for it in first["items"]}
        assert not shown & {it["item_id"] for it in more["items"]}
        for client in (a, b):
            turns = client.get(f"/v1/sessions/{sid}").json()["turns"]
            assert [t["text"] for t in turns] == ["a comedy", "more"]
        liked = a.post(f"/v1/sessions/{sid}/feedback", json={"item_id": "1", "feedback": "like"})
        assert liked.status_code == 200
        assert len(b.get(f"/v1/sessions/{sid}").json()["turns"]) == 3
        # a copy that missed a change is never stored over it
        stale = two.sessions.get(sid)
        a.post(f"/v1/sessions/{sid}/messages", json={"text": "a drama", "k": 3})
        with pytest.raises(StaleSession, match="another server worker"):
            two.sessions.save(stale)
        texts = [t["text"] for t in b.get(f"/v1/sessions/{sid}").json()["turns"]]
        assert texts[-1] == "a drama" and len(texts) == 4


def test_server_processes_never_interleave_one_conversation(
    services: Services,
    mini_stack: Stack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`recagent serve --workers 2` and a second server (this test's process) share one
    workspace; eight messages to one conversation arrive at once through both. Every turn
    starts after the previous one ended, whichever process ran it, and the conversation
    holds all eight, in the order they ran, as both servers tell it."""
    home = tmp_path / "home"
    shutil.copytree(mini_stack.workspace.root, home)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HOOK)
    log = tmp_path / "turns.jsonl"
    env = {
        **os.environ,
        "RECAGENT_HOME": str(home),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")])),
        "RECAGENT_TEST_TURN_LOG": str(log),
        "RECAGENT_TEST_TURN_S": str(TURN_S),
    }
    real_ask = ChatSession.ask

    def recorded_ask(self: ChatSession, message: str, *args: Any, **kwargs: Any) -> Any:
        start = time.time()
        time.sleep(TURN_S)
        out = real_ask(self, message, *args, **kwargs)
        line = {"pid": os.getpid(), "session": self.session_id, "text": message}
        with log.open("a") as fh:
            fh.write(json.dumps({**line, "start": start, "end": time.time()}) + "\n")
        return out

    monkeypatch.setattr(ChatSession, "ask", recorded_ask)
    exe = Path(sys.executable).parent / "recagent"
    proc = subprocess.Popen(
        [str(exe), "serve", "--port", "0", "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=default_sigint,
        env=env,
    )
    output: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            if "all 2 workers are serving" in line:
                ready.set()
        ready.set()  # it ended

    threading.Thread(target=read, daemon=True).start()
    try:
        assert ready.wait(240) and proc.poll() is None, "".join(output)
        found = URL.search("".join(output))
        assert found, "".join(output)
        workers_url = found.group(1).rstrip("/")
        backend = make_backend(services, home / "server" / "sessions.sqlite")
        with running(backend) as other_url:
            sid, answers, views = asyncio.run(_send_at_once(workers_url, other_url))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("recagent serve --workers 2 did not stop on Ctrl-C")
    assert proc.returncode == 130, "".join(output)  # stopped by Ctrl-C, as every command is
    assert "Traceback" not in "".join(output)
    assert all(status == 200 for status in answers), answers
    spans = sorted(
        (json.loads(line) for line in log.read_text().splitlines()),
        key=lambda span: span["start"],
    )
    spans = [span for span in spans if span["session"] == sid]
    assert sorted(span["text"] for span in spans) == sorted(MESSAGES)
    for earlier, later in itertools.pairwise(spans):
        assert later["start"] >= earlier["end"], (earlier, later)  # never at the same time
    pids = {span["pid"] for span in spans}
    assert os.getpid() in pids and len(pids) >= 2 and proc.pid not in pids  # workers answer
    ran = [span["text"] for span in spans]
    for view in views:  # what each server shows: all eight turns, in the order they ran
        assert [t["text"] for t in view["turns"]] == ran


async def _send_at_once(
    workers_url: str, other_url: str
) -> tuple[str, list[int], list[dict[str, Any]]]:
    async with (
        httpx.AsyncClient(base_url=workers_url, timeout=120) as workers,
        httpx.AsyncClient(base_url=other_url, timeout=120) as other,
    ):
        created = await workers.post("/v1/sessions", json={"user_id": "3"})
        assert created.status_code == 201, created.text
        sid = created.json()["session_id"]
        sent = [
            (workers if n % 2 == 0 else other).post(
                f"/v1/sessions/{sid}/messages", json={"text": text, "k": 3}
            )
            for n, text in enumerate(MESSAGES)
        ]
        answers = await asyncio.gather(*sent)
        views = [(await c.get(f"/v1/sessions/{sid}")).json() for c in (workers, other)]
    return sid, [a.status_code for a in answers], views


def test_workers_must_be_at_least_one(cli, mini_stack: Stack) -> None:
    home = ["--home", str(mini_stack.workspace.root)]
    for bad in ("0", "-2"):
        refused = cli(*home, "serve", "--workers", bad)
        assert refused.exit_code == 2, refused.stderr
        assert "--workers" in refused.stderr and "greater than or equal to 1" in refused.stderr
        assert "Traceback" not in refused.stderr + refused.stdout
    helped = cli("serve", "--help")
    assert helped.exit_code == 0 and "--workers" in helped.stdout
