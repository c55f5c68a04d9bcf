"""Conversations on a real server: isolated, in order within one conversation and at the
same time across conversations (work runs off the event loop), forgotten when idle, and
kept across a server restart."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from recagent.agent.conversation import Conversation
from recagent.agent.runlog import RunLog
from recagent.agent.session import ChatSession
from recagent.app import Services, load_services
from recagent.config import load_settings
from recagent.web import sessions as sessions_module
from recagent.web.server import create_app
from recagent.web.sessions import MAX_TURNS, SessionStore, StoredSession
from tests.conftest import Stack
from tests.webkit import LOCAL, make_backend, running

TURN_S = 0.4  # how long each turn takes in the timing tests


@pytest.fixture(scope="module")
def services(mini_stack: Stack) -> Services:
    settings = load_settings(home=mini_stack.workspace.root)
    return load_services(mini_stack.workspace, settings, "ml-100k", build_missing=False)


@dataclass
class Turns:
    started: list[str] = field(default_factory=list)
    spans: list[tuple[str, float, float]] = field(default_factory=list)  # (text, start, end)


@pytest.fixture
def slow_turns(monkeypatch: pytest.MonkeyPatch) -> Turns:
    """Every turn takes TURN_S longer (as a slow model would); records when each ran."""
    turns = Turns()
    lock = threading.Lock()
    real_ask = ChatSession.ask

    def ask(self: ChatSession, message: str, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        start = time.monotonic()
        with lock:
            turns.started.append(message)
        time.sleep(TURN_S)
        out = real_ask(self, message, *args, **kwargs)  # type: ignore[arg-type]
        with lock:
            turns.spans.append((message, start, time.monotonic()))
        return out

    monkeypatch.setattr(ChatSession, "ask", ask)
    return turns


async def _say(client: httpx.AsyncClient, sid: str, text: str) -> dict:
    response = await client.post(f"/v1/sessions/{sid}/messages", json={"text": text, "k": 3})
    assert response.status_code == 200, response.text
    return response.json()


def test_one_conversation_in_order_many_at_once(
    services: Services, tmp_path: Path, slow_turns: Turns
) -> None:
    async def scenario(url: str) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            a = (await client.post("/v1/sessions", json={})).json()["session_id"]
            b = (await client.post("/v1/sessions", json={})).json()["session_id"]

            async def two(sid: str, first: str, second: str) -> None:
                earlier = asyncio.create_task(_say(client, sid, first))
                while first not in slow_turns.started:  # sent while the first is running
                    await asyncio.sleep(0.01)
                await asyncio.gather(earlier, _say(client, sid, second))

            await asyncio.gather(
                two(a, "a comedy", "a drama"), two(b, "a horror film", "a western")
            )
            turns_a = (await client.get(f"/v1/sessions/{a}")).json()["turns"]
            assert [t["text"] for t in turns_a] == ["a comedy", "a drama"]  # sent in order

    with running(make_backend(services, tmp_path / "s.sqlite")) as url:
        asyncio.run(scenario(url))
    by_text = {text: (start, end) for text, start, end in slow_turns.spans}
    # within a conversation: the second turn starts after the first ended
    assert by_text["a drama"][0] >= by_text["a comedy"][1]
    assert by_text["a western"][0] >= by_text["a horror film"][1]
    # across conversations: their first turns ran at the same time
    comedy, horror = by_text["a comedy"], by_text["a horror film"]
    assert max(comedy[0], horror[0]) < min(comedy[1], horror[1])


def test_conversations_are_isolated(services: Services, tmp_path: Path) -> None:
    with TestClient(
        create_app(make_backend(services, tmp_path / "s.sqlite")), base_url=LOCAL
    ) as client:
        a = client.post("/v1/sessions", json={"user_id": "3"}).json()["session_id"]
        b = client.post("/v1/sessions", json={}).json()["session_id"]
        client.post(f"/v1/sessions/{a}/messages", json={"text": "I loved Heat (1995)"})
        learned_b = client.get(f"/v1/sessions/{b}").json()["learned"]
        assert (
            learned_b["items"] == [] and client.get(f"/v1/sessions/{b}").json()["user_id"] is None
        )
        assert (
            client.get(f"/v1/sessions/{a}").json()["learned"]["items"][0]["title"] == "Heat (1995)"
        )


def test_a_restart_loses_no_conversation(services: Services, tmp_path: Path) -> None:
    db = tmp_path / "sessions.sqlite"
    with TestClient(create_app(make_backend(services, db)), base_url=LOCAL) as client:
        sid = client.post("/v1/sessions", json={"user_id": "3"}).json()["session_id"]
        first = client.post(f"/v1/sessions/{sid}/messages", json={"text": "a comedy", "k": 4})
        shown = [it["item_id"] for it in first.json()["items"]]
        client.post(
            f"/v1/sessions/{sid}/feedback", json={"item_id": shown[0], "feedback": "dislike"}
        )
        before = client.get(f"/v1/sessions/{sid}").json()
    with TestClient(
        create_app(make_backend(services, db)), base_url=LOCAL
    ) as client:  # a new server process
        after = client.get(f"/v1/sessions/{sid}").json()
        assert after == before
        assert after["learned"]["items"][0] == {
            "item_id": shown[0],
            "title": services.dataset.catalog[shown[0]].label,
            "feeling": "disliked",
        }
        more = client.post(f"/v1/sessions/{sid}/messages", json={"text": "more", "k": 4}).json()
        logged = RunLog(services.workspace.log_db).last(2)
        assert [r.session_id for r in logged] == [sid, sid]  # one id across the restart
        # "more" continues the comedy request, without what was shown or disliked
        assert all("Comedy" in it["genres"] for it in more["items"])
        assert not set(shown) & {it["item_id"] for it in more["items"]}


def test_idle_conversations_expire(services: Services, tmp_path: Path) -> None:
    backend = make_backend(services, tmp_path / "sessions.sqlite", session_ttl_s=60)
    now = [1_000_000.0]
    backend.sessions.clock = lambda: now[0]  # the store's clock, moved by hand
    with TestClient(create_app(backend), base_url=LOCAL) as client:
        idle = client.post("/v1/sessions", json={}).json()["session_id"]
        busy = client.post("/v1/sessions", json={}).json()["session_id"]
        for _ in range(3):
            now[0] += 30
            assert client.get(f"/v1/sessions/{busy}").status_code == 200
        response = client.get(f"/v1/sessions/{idle}")  # idle for 90 s
        assert response.status_code == 404 and "expired" in response.json()["error"]["message"]
        assert backend.sessions.store.load(idle) is None
        now[0] += 61
        assert backend.sessions.sweep() == 1  # `busy`, idle now too
        assert backend.sessions.store.load(busy) is None and len(backend.sessions) == 0


def test_too_many_conversations_wait_in_the_store(services: Services, tmp_path: Path) -> None:
    backend = make_backend(services, tmp_path / "sessions.sqlite", max_live_sessions=2)
    with TestClient(create_app(backend), base_url=LOCAL) as client:
        first = client.post("/v1/sessions", json={"user_id": "3"}).json()["session_id"]
        client.post(f"/v1/sessions/{first}/messages", json={"text": "a comedy", "k": 2})
        for _ in range(2):
            client.post("/v1/sessions", json={})
        assert len(backend.sessions) == 2  # the first went back to the store
        again = client.get(f"/v1/sessions/{first}").json()
        assert again["user_id"] == "3" and [t["text"] for t in again["turns"]] == ["a comedy"]
        assert len(backend.sessions) == 2


def test_memory_keeps_the_turns_the_store_keeps(services: Services, tmp_path: Path) -> None:
    """Only the last MAX_TURNS turns are stored, so only those stay in memory: a restart
    shows the conversation as it was."""
    db = tmp_path / "sessions.sqlite"
    backend = make_backend(services, db)
    extra = 5
    with TestClient(create_app(backend), base_url=LOCAL) as client:
        sid = client.post("/v1/sessions", json={}).json()["session_id"]
        ids = services.dataset.catalog.item_ids
        said = []
        for n in range(MAX_TURNS + extra):
            item_id, feeling = ids[n % len(ids)], "like" if n % 2 else "dislike"
            out = client.post(
                f"/v1/sessions/{sid}/feedback", json={"item_id": item_id, "feedback": feeling}
            )
            assert out.status_code == 200, out.text
            said.append(out.json()["said"])
        before = client.get(f"/v1/sessions/{sid}").json()
    assert [t["text"] for t in before["turns"]] == said[extra:]  # the last MAX_TURNS
    with TestClient(create_app(make_backend(services, db)), base_url=LOCAL) as client:
        assert client.get(f"/v1/sessions/{sid}").json() == before


def test_every_store_connection_is_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[sqlite3.Connection] = []
    real_connect = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = real_connect(*args, **kwargs)
        opened.append(conn)
        return conn

    monkeypatch.setattr(sessions_module.sqlite3, "connect", connect)
    store = SessionStore(tmp_path / "sessions.sqlite")
    record = StoredSession(
        session_id="s1",
        created_at=1.0,
        updated_at=2.0,
        conversation=Conversation(dataset="ml-100k"),
        version=1,
    )
    store.save(record, expected=0)
    assert store.load("s1") is not None and store.version("s1") == 1
    assert store.try_lock("s1", "me", 30) and store.renew_lock("s1", "me", 30)
    store.unlock("s1", "me")
    store.delete_idle(0.0)
    store.delete("s1")
    assert len(opened) >= 8
    for conn in opened:
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            conn.execute("SELECT 1")


def test_lookups_answer_while_every_turn_slot_is_busy(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Turns and quick lookups have separate thread pools: with every turn slot held by a
    turn that does not end, the catalog, profiles and conversations still answer."""
    release = threading.Event()
    busy = threading.Semaphore(0)
    real_ask = ChatSession.ask

    def stuck(self: ChatSession, *args: Any, **kwargs: Any) -> Any:
        busy.release()
        release.wait(30)
        return real_ask(self, *args, **kwargs)

    monkeypatch.setattr(ChatSession, "ask", stuck)
    backend = make_backend(services, tmp_path / "s.sqlite", turn_threads=2)

    async def scenario(url: str) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            sids = [
                (await client.post("/v1/sessions", json={})).json()["session_id"] for _ in "abc"
            ]
            turns = [
                asyncio.create_task(_say(client, sid, "a comedy")) for sid in sids[:2]
            ]  # one per slot
            for _ in turns:
                assert await asyncio.to_thread(busy.acquire, True, 10)
            quick = httpx.AsyncClient(base_url=url, timeout=5)  # a stuck lookup fails fast
            async with quick:
                found = await quick.get("/v1/items", params={"q": "Toy Story"})
                assert found.status_code == 200 and found.json()["items"]
                assert (await quick.get("/v1/users/3/profile")).status_code == 200
                shown = await quick.get(f"/v1/sessions/{sids[2]}")
                assert shown.status_code == 200 and shown.json()["turns"] == []
                liked = await quick.post(
                    f"/v1/sessions/{sids[2]}/feedback", json={"item_id": "1", "feedback": "like"}
                )
                assert liked.status_code == 200
                assert (await quick.post("/v1/sessions", json={})).status_code == 201
            assert not any(t.done() for t in turns)  # the turns were held all along
            release.set()
            await asyncio.gather(*turns)

    try:
        with running(backend) as url:
            asyncio.run(scenario(url))
    finally:
        release.set()
