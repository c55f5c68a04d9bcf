"""Live check against a real OpenAI-compatible model (e.g. `../shared/tools/local-llm start`).
Skipped unless OPENAI_BASE_URL is set; CI never runs it."""

from __future__ import annotations

import json

import pytest

from tests.conftest import LIVE_LLM_ENV, Stack

pytestmark = [
    pytest.mark.live_llm,
    pytest.mark.skipif(
        not LIVE_LLM_ENV["OPENAI_BASE_URL"],
        reason="live LLM test: set OPENAI_BASE_URL (e.g. from `local-llm env`) to run it",
    ),
]

REQUESTS = [
    (
        "dark sci-fi from the 80s",
        lambda it: "Sci-Fi" in it["genres"] and 1980 <= it["year"] <= 1989,
    ),
    (
        "something like Toy Story but no animation",
        lambda it: "Animation" not in it["genres"] and it["item_id"] != "1",
    ),
    (
        "a romantic comedy from the 90s",
        lambda it: {"Romance", "Comedy"} <= set(it["genres"]) and 1990 <= it["year"] <= 1999,
    ),
]


@pytest.fixture
def live_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", LIVE_LLM_ENV["OPENAI_BASE_URL"] or "")
    monkeypatch.setenv("OPENAI_API_KEY", LIVE_LLM_ENV["OPENAI_API_KEY"] or "local")
    monkeypatch.setenv("RECAGENT_LLM__TIMEOUT_S", "600")


@pytest.mark.parametrize(
    ("message", "ok"), REQUESTS, ids=["80s-scifi", "like-toy-story", "90s-romcom"]
)
def test_llm_mode_keeps_the_constraints(cli, live_env, ml100k_stack: Stack, message, ok) -> None:
    result = cli(
        "--home",
        str(ml100k_stack.workspace.root),
        "recommend",
        "--user",
        "42",
        message,
        "--k",
        "5",
        "--json",
    )
    assert result.exit_code == 0, result.output
    ranked = json.loads(result.stdout)
    print(
        f"\n{message!r}: mode={ranked['mode']} repairs={ranked['repairs']} "
        f"notices={ranked['notices']}"
    )
    assert ranked["mode"] == "llm", ranked["fallback_reason"]
    history = set(ml100k_stack.dataset.user_history("42"))
    assert ranked["items"]
    for item in ranked["items"]:
        assert ok(item), item
        assert item["item_id"] not in history


@pytest.mark.parametrize(("message", "ok"), REQUESTS[:2], ids=["80s-scifi", "like-toy-story"])
def test_loop_mode_with_a_real_model(
    cli, live_env, monkeypatch: pytest.MonkeyPatch, ml100k_stack: Stack, message, ok
) -> None:
    """The model calls the tools one at a time; whatever it does, the guard closes the turn
    and the answer keeps the request's constraints."""
    monkeypatch.setenv("RECAGENT_AGENT__MODE", "loop")
    monkeypatch.setenv("RECAGENT_AGENT__LOOP_MAX_STEPS", "4")
    result = cli(
        "--home", str(ml100k_stack.workspace.root), "recommend", message, "--k", "5", "--json"
    )
    assert result.exit_code == 0, result.output
    ranked = json.loads(result.stdout)
    steps = ranked["plan"]["steps"]
    print(f"\n{message!r}: mode={ranked['mode']} repairs={ranked['repairs']}")
    print("\n".join(f"  {s['source']}: {s['tool']} {s['args']} ok={s['ok']}" for s in steps))
    assert ranked["mode"] == "llm", ranked["fallback_reason"]
    assert ranked["plan"]["mode"] == "loop"
    assert len(ranked["items"]) == 5
    for item in ranked["items"]:
        assert ok(item), item


def test_knowledge_ratings_and_palr_with_a_real_model(
    cli, live_env, ml100k_stack: Stack, tmp_path
) -> None:
    """A real model writes knowledge for three items (answers stored, a rerun asks nothing),
    predicts stars for a few held-out ratings and runs PALR-lite on a few users: whatever it
    writes is read or counted, never a crash."""
    import shutil

    from recagent.knowledge.store import KnowledgeStore

    home = tmp_path / "home"
    shutil.copytree(ml100k_stack.workspace.root, home)
    args = ["--home", str(home)]
    built = cli(*args, "knowledge", "build", "--items", "3", "--workers", "1")
    assert built.exit_code == 0, built.output
    answers = KnowledgeStore.of(ml100k_stack.workspace.__class__(home), "ml-100k").answers()
    assert len(answers) == 3 and all(a.model for a in answers)
    print([(a.item_id, a.status, a.aspects) for a in answers])
    again = cli(*args, "knowledge", "build", "--items", "3")
    assert "3 answered before, 0 to ask" in again.stderr
    ratings = cli(
        *args, "eval", "run", "--protocol", "ratings", "--users", "3", "--pipelines",
        "biases,llm-zero,llm-few",
    )  # fmt: skip
    assert ratings.exit_code == 0, ratings.output
    palr = cli(
        *args, "eval", "run", "--protocol", "candidates", "--users", "2", "--pipelines", "palr"
    )
    assert palr.exit_code == 0, palr.output
    runs = json.loads(cli(*args, "eval", "list", "--json").stdout)
    assert [r["status"] for r in runs[-2:]] == ["complete", "complete"]
