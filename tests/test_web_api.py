"""The HTTP API on the mini stack (offline planner): every endpoint, SSE event order, feedback
and why, one-shot recommendations, the catalog and profiles, and every bad input answered
with a JSON error and the right 4xx status (never a traceback)."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from recagent.agent.session import ChatSession
from recagent.app import Services, load_services
from recagent.config import load_settings
from recagent.data.prepare import PrepareConfig, prepare
from recagent.web.server import create_app
from recagent.web.turns import KEEP_ALIVE
from recagent.workspace import Workspace
from tests.conftest import Stack
from tests.webkit import LOCAL, make_backend, sse_events

SSE = {"Accept": "text/event-stream"}
BASIC = {"Authorization": "Basic azN5"}
EXTERNAL = re.compile(
    r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//|@import|"""
    r"""fetch\(\s*["'`](?:https?:)?//"""
)


@pytest.fixture(scope="module")
def services(mini_stack: Stack) -> Services:
    settings = load_settings(home=mini_stack.workspace.root)
    return load_services(mini_stack.workspace, settings, "ml-100k", build_missing=False)


@pytest.fixture
def client(services: Services, tmp_path: Path) -> Iterator[TestClient]:
    backend = make_backend(services, tmp_path / "sessions.sqlite")
    with TestClient(create_app(backend), base_url=LOCAL) as c:
        yield c


def _session(client: TestClient, **body: object) -> str:
    response = client.post("/v1/sessions", json=body)
    assert response.status_code == 201, response.text
    return response.json()["session_id"]


def _error(response, status: int) -> str:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message"}
    assert "Traceback" not in response.text
    return body["error"]["message"]


def test_health_info_docs_and_the_page(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    info = client.get("/v1/info").json()
    assert info["dataset"] == "ml-100k" and info["mode"] == "planner" and not info["auth"]
    assert info["scorer"] == "SASRec" and info["index"]
    assert info["datasets"][0]["users"] == 30 and "3" in info["datasets"][0]["sample_users"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and not EXTERNAL.search(docs.text)  # offline docs too
    script = re.search(r"""src=["']([^"']+swagger-ui-bundle\.js)""", docs.text)
    assert script and client.get(script.group(1)).status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/sessions",
        "/v1/sessions/{session_id}/messages",
        "/v1/sessions/{session_id}/feedback",
        "/v1/recommend",
        "/v1/items",
        "/v1/items/{item_id}",
        "/v1/users/{user_id}/profile",
        "/v1/chat/completions",
    ):
        assert path in paths
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    for asset in ("/", "/static/app.js", "/static/style.css"):
        assert not EXTERNAL.search(client.get(asset).text)  # no CDN: works offline


def test_a_conversation_as_json(client: TestClient, mini_stack: Stack) -> None:
    created = client.post("/v1/sessions", json={"user_id": "3"}).json()
    assert created["user_note"].startswith("user 3:") and created["mode"] == "planner"
    sid = created["session_id"]
    ranked = client.post(f"/v1/sessions/{sid}/messages", json={"text": "a sci-fi film", "k": 4})
    assert ranked.status_code == 200, ranked.text
    items = ranked.json()["items"]
    history = set(mini_stack.dataset.user_history("3"))
    assert len(items) == 4 and all("Sci-Fi" in it["genres"] for it in items)
    assert not history & {it["item_id"] for it in items}
    again = client.get(f"/v1/sessions/{sid}").json()
    assert [t["text"] for t in again["turns"]] == ["a sci-fi film"]
    assert again["turns"][0]["answer"]["items"] == items


def test_streamed_turn_steps_then_one_answer(client: TestClient) -> None:
    sid = _session(client, user_id="3")
    with client.stream(
        "POST", f"/v1/sessions/{sid}/messages", json={"text": "a sci-fi film"}, headers=SSE
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
    kinds = [k for k, _ in events]
    assert kinds[-1] == "answer" and kinds.count("answer") == 1 and "error" not in kinds
    steps = [d["text"] for k, d in events if k == "step"]
    assert set(kinds[:-1]) == {"step"} and len(steps) >= 4
    assert steps[0] == "gathering candidates with the tools" and steps[-1] == "checking the answer"
    assert any("SASRec" in s for s in steps)
    assert any("finding items like your history" in s for s in steps)
    assert len(events[-1][1]["items"]) == 10


def test_dislike_removes_an_item_for_good_and_like_is_learned(client: TestClient) -> None:
    sid = _session(client)
    first = client.post(f"/v1/sessions/{sid}/messages", json={"text": "a comedy", "k": 5}).json()
    gone, kept = first["items"][0], first["items"][1]
    said = client.post(
        f"/v1/sessions/{sid}/feedback", json={"item_id": gone["item_id"], "feedback": "dislike"}
    ).json()
    assert said["said"] == f"I didn't like {gone['title']} ({gone['year']})"
    liked = client.post(
        f"/v1/sessions/{sid}/feedback", json={"item_id": kept["item_id"], "feedback": "like"}
    ).json()
    feelings = {it["item_id"]: it["feeling"] for it in liked["learned"]["items"]}
    assert feelings == {gone["item_id"]: "disliked", kept["item_id"]: "loved"}
    for text in ("a comedy", "more"):
        again = client.post(f"/v1/sessions/{sid}/messages", json={"text": text, "k": 5}).json()
        ids = {it["item_id"] for it in again["items"]}
        assert gone["item_id"] not in ids and kept["item_id"] not in ids  # seen once loved
    turns = client.get(f"/v1/sessions/{sid}").json()["turns"]
    assert [t["kind"] for t in turns] == ["message", "feedback", "feedback", "message", "message"]


def test_feedback_is_learned_as_saying_it(services: Services) -> None:
    """A card's like / dislike is the session's `feedback`: the same memory as the words."""
    by_button, by_words = services.session(), services.session()
    heat = next(i for i in services.dataset.catalog if i.title == "Heat")
    by_button.feedback(heat.item_id, liked=True)
    by_words.ask(f"I loved {heat.label}")
    assert by_button.conversation.feelings == by_words.conversation.feelings
    assert by_button.conversation.feelings == {heat.item_id: "loved"}
    by_button.feedback(heat.item_id, liked=False)
    assert by_button.conversation.disliked() == [heat.item_id]
    # the dislike acts like the words: Heat never comes back, even asked for by genre
    for genre in heat.genres:
        later = by_button.ask(f"{genre.lower()} movies", k=10)
        assert later.items and heat.item_id not in [it.item_id for it in later.items]


def test_why_explains_with_evidence_in_words(client: TestClient) -> None:
    sid = _session(client, user_id="3")
    ranked = client.post(f"/v1/sessions/{sid}/messages", json={"text": "a drama", "k": 3}).json()
    item = ranked["items"][0]
    why = client.get(f"/v1/sessions/{sid}/why/{item['item_id']}").json()
    assert why["explanation"] == item["explanation"] and why["evidence"]
    assert all(ev["words"] for ev in why["evidence"])
    assert any(ev["because_of"] for ev in why["evidence"])
    assert "not recommended" in _error(client.get(f"/v1/sessions/{sid}/why/nope"), 404)


def test_one_shot_recommend_items_and_profiles(client: TestClient, mini_stack: Stack) -> None:
    by_user = client.post("/v1/recommend", json={"user_id": "3", "text": "a drama", "k": 3})
    assert by_user.status_code == 200 and len(by_user.json()["items"]) == 3
    history = ["1", "2", "3"]
    by_history = client.post("/v1/recommend", json={"history": history, "k": 4}).json()
    assert len(by_history["items"]) == 4
    assert not set(history) & {it["item_id"] for it in by_history["items"]}
    found = client.get("/v1/items", params={"q": "Alien"}).json()["items"]
    assert found[0]["title"] == "Alien"
    assert client.get("/v1/items", params={"q": "Blade Runer"}).json()["items"][0]["item_id"] == "3"
    item = client.get("/v1/items/4").json()
    assert item["title"] == "Heat" and item["year"] == 1995
    profile = client.get("/v1/users/3/profile").json()
    assert profile["history_size"] == len(mini_stack.dataset.user_history("3"))
    assert profile["summary"] and profile["recent"]
    assert "user '999'" in _error(client.get("/v1/users/999/profile"), 404)
    assert "no item" in _error(client.get("/v1/items/999"), 404)


def test_bad_bodies(client: TestClient) -> None:
    sid = _session(client)
    url = f"/v1/sessions/{sid}/messages"
    json_header = {"Content-Type": "application/json"}
    assert "needs a JSON body" in _error(client.post(url), 400)
    assert "not valid JSON" in _error(client.post(url, content=b"{bad", headers=json_header), 400)
    assert "JSON object" in _error(client.post(url, content=b"[1, 2]", headers=json_header), 400)
    form = {"Content-Type": "application/x-www-form-urlencoded"}  # curl -d without -H
    assert "Content-Type: application/json" in _error(
        client.post(url, content=b'{"text": "x"}', headers=form), 415
    )
    assert "text: Field required" in _error(client.post(url, json={"k": 3}), 422)
    assert "k: Input should be less" in _error(client.post(url, json={"text": "x", "k": 51}), 422)
    assert "k: Input should be greater" in _error(client.post(url, json={"text": "x", "k": 0}), 422)
    assert "extra" in _error(client.post(url, json={"text": "x", "mood": "happy"}), 422).lower()
    big = b'{"text": "' + b"x" * 70_000 + b'"}'
    assert "larger than 65,536" in _error(client.post(url, content=big, headers=json_header), 413)

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"text": "'
        for _ in range(20):
            yield b"y" * 5000
        yield b'"}'

    assert "larger than" in _error(client.post(url, content=chunks(), headers=json_header), 413)


def test_unknown_things(client: TestClient) -> None:
    assert "no conversation" in _error(
        client.post("/v1/sessions/nope/messages", json={"text": "x"}), 404
    )
    assert "no conversation" in _error(client.get("/v1/sessions/nope"), 404)
    assert "no prepared dataset 'imdb'" in _error(
        client.post("/v1/sessions", json={"dataset": "imdb"}), 404
    )
    assert "no prepared dataset" in _error(
        client.get("/v1/items", params={"q": "x", "dataset": "imdb"}), 404
    )
    sid = _session(client)
    bad_item = client.post(
        f"/v1/sessions/{sid}/feedback", json={"item_id": "zzz", "feedback": "like"}
    )
    assert "no item 'zzz'" in _error(bad_item, 404)
    bad_kind = client.post(f"/v1/sessions/{sid}/feedback", json={"item_id": "1", "feedback": "meh"})
    assert "feedback" in _error(bad_kind, 422)
    unknown = client.post("/v1/recommend", json={"history": ["1", "nope"]})
    assert "unknown item ids nope" in _error(unknown, 422)
    assert "no such endpoint" in _error(client.get("/v1/nothing"), 404)
    _error(client.delete("/v1/info"), 405)


def test_a_keyless_server_answers_loopback_names_only(
    client: TestClient, services: Services
) -> None:
    """DNS rebinding: a page from another site re-pointed at 127.0.0.1 sends its own Host."""
    for host in ("127.0.0.1:8000", "localhost", "LOCALHOST:1234", "[::1]:8000"):
        assert client.get("/v1/info", headers={"host": host}).status_code == 200, host
    for host in ("evil.example:8000", "evil.example", "127.0.0.1.evil.example", ""):
        refused = client.get("/v1/info", headers={"host": host})
        assert "Host header" in _error(refused, 421), host
        assert client.post("/v1/sessions", json={}, headers={"host": host}).status_code == 421
    keyed = make_backend(services, services.workspace.root / "k.sqlite", api_key="k3y")
    with TestClient(create_app(keyed), base_url="http://recs.example") as other:
        answer = other.get("/v1/info", headers={"authorization": "Bearer k3y"})
        assert answer.status_code == 200  # with a key, any name may reach it


def test_a_bug_is_a_500_that_keeps_its_details_in_the_log(
    services: Services,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(ChatSession, "ask", broken)
    app = create_app(make_backend(services, tmp_path / "sessions.sqlite"))
    client = TestClient(app, base_url=LOCAL, raise_server_exceptions=False)
    sid = _session(client)
    plain = client.post(f"/v1/sessions/{sid}/messages", json={"text": "x"})
    assert "server's log" in _error(plain, 500) and "secret" not in plain.text
    with client.stream(
        "POST", f"/v1/sessions/{sid}/messages", json={"text": "x"}, headers=SSE
    ) as response:
        events = sse_events(response)
    assert events == [("error", {"message": events[0][1]["message"]})]
    assert "server's log" in events[0][1]["message"] and "secret" not in str(events)
    assert "secret internal detail" in caplog.text


def test_a_second_dataset_is_picked_and_loaded_on_first_use(
    mini_stack: Stack, tmp_path: Path, tiny_ml100k: Path
) -> None:
    home = tmp_path / "home-copy"
    shutil.copytree(mini_stack.workspace.root, home)
    workspace = Workspace(home)
    prepare(PrepareConfig(dataset="ml-100k", source=tiny_ml100k, name="tiny"), workspace)
    services = load_services(workspace, load_settings(home=home), "ml-100k", build_missing=False)
    with TestClient(
        create_app(make_backend(services, tmp_path / "s.sqlite")), base_url=LOCAL
    ) as client:
        listed = {d["name"]: d for d in client.get("/v1/info").json()["datasets"]}
        assert set(listed) == {"ml-100k", "tiny"} and not listed["tiny"]["loaded"]
        created = client.post("/v1/sessions", json={"dataset": "tiny", "user_id": "1"})
        assert created.status_code == 201 and created.json()["dataset"] == "tiny"
        sid = created.json()["session_id"]
        answer = client.post(f"/v1/sessions/{sid}/messages", json={"text": "", "k": 1}).json()
        assert len(answer["items"]) == 1
        tiny = next(d for d in client.get("/v1/info").json()["datasets"] if d["name"] == "tiny")
        assert tiny["loaded"] and tiny["users"] == 4 and tiny["sample_users"][0] == "1"
        assert any("ranking by popularity" in n for n in tiny["notes"])  # no SASRec trained


def test_a_slow_streamed_turn_keeps_the_connection_alive(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a turn is quiet, SSE comments go out every `sse_keepalive_s` (a proxy would cut a
    silent stream); clients skip them and still read one answer last."""
    real_ask = ChatSession.ask

    def slow(self: ChatSession, *args: Any, **kwargs: Any) -> Any:
        time.sleep(0.6)
        return real_ask(self, *args, **kwargs)

    monkeypatch.setattr(ChatSession, "ask", slow)
    backend = make_backend(services, tmp_path / "s.sqlite", sse_keepalive_s=0.1)
    with TestClient(create_app(backend), base_url=LOCAL) as client:
        sid = _session(client)
        with client.stream(
            "POST", f"/v1/sessions/{sid}/messages", json={"text": "a comedy"}, headers=SSE
        ) as response:
            raw = "".join(response.iter_text())
        assert raw.count(KEEP_ALIVE) >= 3 and raw.startswith(KEEP_ALIVE)
        events = sse_events(httpx.Response(200, text=raw))
        assert events[-1][0] == "answer" and [k for k, _ in events].count("answer") == 1
        chat = {"messages": [{"role": "user", "content": "a comedy"}], "stream": True}
        with client.stream("POST", "/v1/chat/completions", json=chat) as response:
            chunks = "".join(response.iter_text())
        assert KEEP_ALIVE in chunks and chunks.rstrip().endswith("data: [DONE]")


def test_openapi_declares_the_api_key_as_bearer_security(
    services: Services, tmp_path: Path
) -> None:
    """With a key, `/docs` can send it (an Authorize button): the API's operations declare
    HTTP bearer security; without one, nothing is declared."""
    keyed = make_backend(services, tmp_path / "k.sqlite", api_key="k3y")
    with TestClient(create_app(keyed), base_url=LOCAL) as client:
        spec = client.get("/openapi.json").json()
        schemes = spec["components"]["securitySchemes"]
        assert schemes["bearerAuth"]["type"] == "http"
        assert schemes["bearerAuth"]["scheme"] == "bearer"
        for path, method in (
            ("/v1/info", "get"),
            ("/v1/sessions/{session_id}/messages", "post"),
            ("/v1/chat/completions", "post"),
        ):
            assert spec["paths"][path][method]["security"] == [{"bearerAuth": []}], path
        assert "security" not in spec["paths"]["/healthz"]["get"]
        assert "k3y" not in json.dumps(spec)
        missing = client.get("/v1/info")  # the rule itself is as before
        assert "needs an API key" in _error(missing, 401)
        assert "wrong API key" in _error(client.get("/v1/info", headers=BASIC), 401)
        assert client.get("/v1/info", headers={"Authorization": "Bearer k3y"}).status_code == 200
    keyless = make_backend(services, tmp_path / "o.sqlite")
    with TestClient(create_app(keyless), base_url=LOCAL) as client:
        assert "securitySchemes" not in client.get("/openapi.json").json().get("components", {})
