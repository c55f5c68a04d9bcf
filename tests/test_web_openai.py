"""recagent over HTTP with models on both sides: the OpenAI-compatible endpoint driven by
the `openai` client itself (stream and non-stream), the API key rule, and an LLM behind the
server (its tokens streamed, its failure mid-turn falling back to the planner and said in
the stream, its slowness never delaying another conversation)."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from recagent.agent.llm import LLMChoice, make_chat_model
from recagent.app import AgentLLM, Services, load_services
from recagent.config import LLMConfig, load_settings
from tests.conftest import Stack
from tests.fakes import FakeOpenAIServer
from tests.webkit import make_backend, running, sse_events

SSE = {"Accept": "text/event-stream"}
CANDIDATE = re.compile(r"^- (\S+): ", re.M)
READ_SCIFI = {"tool_calls": [{"name": "read_request", "arguments": {"wanted_genres": ["Sci-Fi"]}}]}


def _final_from_shortlist(body: dict) -> dict:
    ids = CANDIDATE.findall(body["messages"][-1]["content"])[:3]
    picks = [{"item_id": i, "explanation": "x"} for i in ids]
    return {"tool_calls": [{"name": "final_answer", "arguments": {"items": picks}}]}


@pytest.fixture(scope="module")
def services(mini_stack: Stack) -> Services:
    settings = load_settings(home=mini_stack.workspace.root)
    fast = LLMConfig(timeout_s=10, max_retries=1, backoff_max_s=0.05)
    settings = settings.model_copy(update={"llm": fast})
    return load_services(mini_stack.workspace, settings, "ml-100k", build_missing=False)


def _llm(server: FakeOpenAIServer, services: Services, tmp_path: Path) -> AgentLLM:
    choice = LLMChoice("openai", "fake-model", server.base_url)
    return AgentLLM(make_chat_model(choice, services.settings.llm), "fake-model", tmp_path)


def test_the_openai_client_non_stream_and_stream(services: Services, tmp_path: Path) -> None:
    with running(make_backend(services, tmp_path / "s.sqlite")) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        assert {"recagent", "recagent:ml-100k"} <= {m.id for m in client.models.list()}
        messages = [
            {"role": "system", "content": "You are a movie assistant."},
            {"role": "user", "content": "I loved Heat (1995)"},
            {"role": "assistant", "content": "Noted."},
            {"role": "user", "content": "a sci-fi film please"},
        ]
        options = {"recagent": {"user_id": "3", "k": 3}}
        done = client.chat.completions.create(
            model="recagent",
            messages=messages,
            extra_body=options,  # type: ignore[arg-type]
        )
        text = done.choices[0].message.content or ""
        ranked = (done.model_extra or {})["recagent"]
        assert done.choices[0].finish_reason == "stop" and len(ranked["items"]) == 3
        for it in ranked["items"]:
            assert f"{it['rank']}. {it['title']} ({it['year']})" in text
            assert it["explanation"] in text and "Sci-Fi" in it["genres"]
        learned = {i["title"]: i["feeling"] for i in ranked["learned"]["items"]}
        assert learned == {"Heat (1995)": "loved"}  # the earlier message was replayed

        chunks = list(
            client.chat.completions.create(
                model="recagent:ml-100k",
                messages=messages,  # type: ignore[arg-type]
                stream=True,
                extra_body=options,
            )
        )
        streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert streamed == text
        assert chunks[-1].choices[0].finish_reason == "stop"
        assert (chunks[-1].model_extra or {})["recagent"]["items"] == ranked["items"]

        with pytest.raises(openai.NotFoundError, match="no model 'gpt-4o'"):
            client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
            )
        with pytest.raises(openai.UnprocessableEntityError, match="last message"):
            client.chat.completions.create(
                model="recagent", messages=[{"role": "assistant", "content": "hi"}]
            )


def test_the_api_key_rule(services: Services, tmp_path: Path) -> None:
    backend = make_backend(services, tmp_path / "s.sqlite", api_key="s3cret-key")
    with running(backend) as url:
        assert httpx.get(f"{url}/healthz").status_code == 200  # the probe needs no key
        assert httpx.get(f"{url}/").status_code == 200  # the page asks for the key itself
        missing = httpx.get(f"{url}/v1/info")
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert "needs an API key" in missing.json()["error"]["message"]
        wrong = httpx.get(f"{url}/v1/info", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"]["message"] == "wrong API key"
        assert "s3cret" not in wrong.text
        right = httpx.get(f"{url}/v1/info", headers={"Authorization": "Bearer s3cret-key"})
        assert right.status_code == 200 and right.json()["auth"] is True
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{url}/v1", api_key="nope", max_retries=0).models.list()
        good = openai.OpenAI(base_url=f"{url}/v1", api_key="s3cret-key", max_retries=0)
        assert good.models.list().data


def _stream(url: str, sid: str, text: str) -> list[tuple[str, dict]]:
    with httpx.stream(
        "POST",
        f"{url}/v1/sessions/{sid}/messages",
        json={"text": text, "k": 3},
        headers=SSE,
        timeout=60,
    ) as response:
        return sse_events(response)


def test_an_llm_turn_streams_its_tokens(services: Services, tmp_path: Path) -> None:
    with FakeOpenAIServer([READ_SCIFI, _final_from_shortlist]) as llm_server:
        backend = make_backend(
            services, tmp_path / "s.sqlite", _llm(llm_server, services, tmp_path)
        )
        with running(backend) as url:
            sid = httpx.post(f"{url}/v1/sessions", json={}).json()["session_id"]
            events = _stream(url, sid, "something sci-fi")
    kinds = [k for k, _ in events]
    assert kinds[-1] == "answer" and events[-1][1]["mode"] == "llm"
    assert events[-1][1]["model"] == "fake-model"
    tokens = "".join(d["text"] for k, d in events if k == "token")
    assert '"wanted_genres"' in tokens and '"Sci-Fi"' in tokens  # the model's own writing
    assert kinds.index("token") < kinds.index("answer")
    steps = [d["text"] for k, d in events if k == "step"]
    assert "reading the request and planning" in steps
    assert "the model reads the request and writes its plan" in steps
    assert any(s.startswith("the model's plan: ") for s in steps)
    assert any(s.startswith("choosing ") for s in steps)
    assert llm_server.chat_requests[0]["stream"] is True


def test_an_llm_failure_mid_stream_falls_back_and_says_so(
    services: Services, tmp_path: Path
) -> None:
    failing = [READ_SCIFI, {"status": 500}, {"status": 500}]  # reads, then fails to choose
    with FakeOpenAIServer(failing) as llm_server:
        backend = make_backend(
            services, tmp_path / "s.sqlite", _llm(llm_server, services, tmp_path)
        )
        with running(backend) as url:
            sid = httpx.post(f"{url}/v1/sessions", json={}).json()["session_id"]
            events = _stream(url, sid, "something sci-fi")
    kinds = [k for k, _ in events]
    fallback = next(i for i, (k, d) in enumerate(events) if "LLM unavailable" in d.get("text", ""))
    assert kinds.index("token") < fallback < kinds.index("answer") == len(events) - 1
    assert "rule-based planner" in events[fallback][1]["text"]
    answer = events[-1][1]
    assert answer["mode"] == "planner" and answer["fallback_reason"]
    assert any("rule-based planner" in n for n in answer["notices"])
    assert len(answer["items"]) == 3 and all("Sci-Fi" in it["genres"] for it in answer["items"])


def test_a_slow_llm_conversation_does_not_delay_another(services: Services, tmp_path: Path) -> None:
    slow = [{"sleep": 2.0, **READ_SCIFI}, {"sleep": 2.0, "status": 500}, {"status": 500}]
    with FakeOpenAIServer(slow) as llm_server:
        backend = make_backend(
            services, tmp_path / "s.sqlite", _llm(llm_server, services, tmp_path)
        )
        with running(backend) as url:
            new = f"{url}/v1/sessions"
            slow_sid = httpx.post(new, json={}).json()["session_id"]
            fast_sid = httpx.post(new, json={"offline": True}).json()["session_id"]
            alone = max(_timed(url, fast_sid, text) for text in ("a comedy", "a drama", "more"))
            thread = threading.Thread(target=_stream, args=(url, slow_sid, "sci-fi"))
            thread.start()
            time.sleep(0.5)  # the slow turn is waiting for its model now
            beside = _timed(url, fast_sid, "a drama")
            assert thread.is_alive()
            thread.join()
    assert beside < alone + 0.5, (alone, beside)


def _timed(url: str, sid: str, text: str) -> float:
    started = time.monotonic()
    response = httpx.post(f"{url}/v1/sessions/{sid}/messages", json={"text": text}, timeout=30)
    assert response.status_code == 200 and response.json()["mode"] == "planner"
    return time.monotonic() - started


def test_reply_text_words_every_kind() -> None:
    from recagent.agent.schema import Learned, ProfileAnswer, RankedItem, RankedList, Verdict
    from recagent.data.profile import GenreShare, RatingStyle, UserProfile
    from recagent.web.openai_api import reply_text

    item = RankedItem(rank=1, item_id="4", title="Heat", year=1995, explanation="Why not.")
    verdict = Verdict(
        item_id="4",
        title="Heat",
        label="maybe",
        summary="Maybe: Heat could suit you.",
        reasons=["SASRec ranks it #40 of 1,600 unseen titles for your history"],
    )
    judged = RankedList(
        kind="judge", items=[item], message=verdict.summary, mode="planner", verdict=verdict
    )
    text = reply_text(judged)
    assert text.startswith("Maybe: Heat") and "- SASRec ranks it #40" in text
    assert "1. Heat" not in text
    profile = UserProfile(
        n_items=3,
        top_genres=[GenreShare(genre="Crime", share=0.67, count=2)],
        rating_style=RatingStyle(label="no ratings"),
    )
    about = ProfileAnswer(summary="Mostly crime.", profile=profile, learned=Learned())
    taste = RankedList(
        kind="profile", items=[], message="Mostly crime.", mode="planner", profile=about
    )
    assert reply_text(taste) == "Mostly crime.\n\nTop genres: Crime 67%"
    listed = RankedList(kind="rank", items=[item], message="Your titles.", mode="planner")
    assert "1. Heat (1995): Why not." in reply_text(listed)
