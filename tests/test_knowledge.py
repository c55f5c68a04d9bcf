"""Item knowledge (KAR-lite) and the tags protocol, against a scripted OpenAI-compatible server:
what reaches the prompt, resuming, caching by prompt and item, unknown and malformed answers,
the knowledge in the catalog and the index template, and the tag protocol's measurement."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recagent.data.dataset import Dataset
from recagent.data.prepare import PrepareConfig, prepare
from recagent.index.chroma import catalog_fingerprint
from recagent.index.text import load_template
from recagent.knowledge.parse import knowledge_text, read_knowledge
from recagent.knowledge.store import KnowledgeStore, store_path
from recagent.workspace import Workspace
from tests.fakes import FakeOpenAIServer

# (title, year, genres, the themes the fake model "knows", the tag users gave it or ""): titles
# and genres say nothing of the tags, so only knowledge can find them
MOVIES = [
    *[(f"Project {i}", 1990 + i, "Drama", "bank robbery crew", "heist") for i in range(12)],
    *[
        (f"Project {i}", 1990 + i, "Drama", "time machine paradox", "time travel")
        for i in range(12, 24)
    ],
    *[(f"Project {i}", 1990 + i, "Drama", "family on a farm", "") for i in range(24, 36)],
]
USER_TAGS = ("in netflix queue",)  # a list, not a description: never a case


def write_source(folder: Path) -> Path:
    """An ml-latest-small-style folder: movies, ratings, and users' tags (heist, time travel,
    and a non-descriptive one) that also land in the items' free text."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["movieId,title,genres"]
    for i, (title, year, genres, _, _) in enumerate(MOVIES, start=1):
        rows.append(f"{i},{title} ({year}),{genres}")
    (folder / "movies.csv").write_text("\n".join(rows) + "\n")
    rng = np.random.default_rng(0)
    ratings = ["userId,movieId,rating,timestamp"]
    for user in range(1, 21):
        for t, item in enumerate(rng.choice(len(MOVIES), 8, replace=False)):
            ratings.append(f"{user},{item + 1},{rng.integers(1, 6)}.0,{1000 * user + t}")
    (folder / "ratings.csv").write_text("\n".join(ratings) + "\n")
    tags = ["userId,movieId,tag,timestamp"]
    for i, (*_, tag) in enumerate(MOVIES, start=1):
        if tag:
            tags.append(f"1,{i},{tag.title()},1")
            tags.append(f"2,{i}, {tag} ,2")
        tags.append(f"3,{i},{USER_TAGS[0]},3")
    (folder / "tags.csv").write_text("\n".join(tags) + "\n")
    return folder


@pytest.fixture
def tagged(tmp_path: Path) -> tuple[Workspace, Dataset, Path]:
    src = write_source(tmp_path / "src")
    ws = Workspace(tmp_path / "home")
    ds = prepare(PrepareConfig(dataset="ml-latest-small", source=src, name="small"), ws)
    return ws, ds, src / "tags.csv"


def knows(body: dict[str, Any]) -> dict[str, Any]:
    """The fake model: answers from the title it was sent (and only that)."""
    prompt = body["messages"][-1]["content"]
    line = next(ln for ln in prompt.splitlines() if ln.startswith("Item: "))
    known = {f"Item: {title} ({year})": (title, themes) for title, year, _, themes, _ in MOVIES}
    found = next((v for k, v in known.items() if line.startswith(k + " ")), None)
    if found is None:
        return {"content": '{"unknown": true}'}
    title, themes = found
    if title == "Project 27":
        return {"content": '{"unknown": true}'}
    if title == "Project 28":
        return {"content": "I am not sure what to say."}
    if title == "Project 29":  # prose around a fenced object, a list, a trailing comma
        return {
            "content": 'Sure!\n```json\n{"themes": ["family", "farm life"], "mood_tone": '
            '"calm",}\n```'
        }
    return {"content": json.dumps({"sub_genre": "caper", "themes": themes, "acclaim": "n/a"})}


def llm_env(monkeypatch: pytest.MonkeyPatch, server: FakeOpenAIServer) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("RECAGENT_LLM__MAX_RETRIES", "0")


def test_reading_answers() -> None:
    aspects = ["sub_genre", "mood_tone", "themes"]
    got = read_knowledge('{"themes": "heist", "Mood Tone": ["dark", "tense"], "x": ""}', aspects)
    assert got.status == "ok" and list(got.aspects) == ["mood_tone", "themes"]
    assert knowledge_text(got.aspects) == "Mood tone: dark, tense. Themes: heist."
    assert read_knowledge('{"unknown": true}', aspects).status == "unknown"
    assert read_knowledge('{"themes": "unknown", "sub_genre": "N/A"}', aspects).status == "unknown"
    assert read_knowledge("no idea", aspects).status == "unparsed"
    lines = read_knowledge("sub_genre: neo-noir\n- themes: memory, identity", aspects)
    assert lines.aspects == {"sub_genre": "neo-noir", "themes": "memory, identity"}
    asks = {"mood_tone": "adjectives for its mood and tone", "themes": "its main themes"}
    echo = read_knowledge(
        '{"mood_tone": "adjective for its mood and tone", "themes": "heist"}', asks
    )
    assert echo.aspects == {"themes": "heist"}  # a value that repeats the question is none
    assert read_knowledge('{"mood_tone": "dark and moody in tone"}', asks).aspects


def test_build_sends_only_title_year_genres_stores_every_answer_and_resumes(
    cli, tagged, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, ds, _ = tagged
    assert "Heist" in ds.catalog["1"].text  # the free text holds users' tags ...
    home = ["--home", str(ws.root)]
    fail_after = 10
    answered: list[str] = []

    def flaky(body: dict[str, Any]) -> dict[str, Any]:
        if len(server.chat_requests) > fail_after:
            return {"status": 500}
        answered.append(body["messages"][-1]["content"].split("Item: ")[1].splitlines()[0])
        return knows(body)

    with FakeOpenAIServer([flaky] * 200) as server:
        llm_env(monkeypatch, server)
        first = cli(*home, "knowledge", "build", "-d", "small", "--workers", "1")
        assert first.exit_code == 2 and "in a row" in first.stderr  # stopped, not crashed
        asked = [r["messages"][-1]["content"] for r in server.chat_requests]
        assert len(asked) == fail_after + 5  # 10 answers, then 5 failures in a row
        for prompt in asked:  # ... and none of it, nor any tag, reaches the prompt
            assert not any(t in prompt.lower() for t in ("heist", "time travel", "netflix"))
        assert len(KnowledgeStore.of(ws, "small").answers()) == fail_after
        fail_after = 10**6
        second = cli(*home, "knowledge", "build", "-d", "small")
        assert second.exit_code == 0, second.stderr
        assert f"10 answered before, {len(MOVIES) - 10} to ask" in second.stderr
        assert sorted(answered) == sorted(set(answered)) and len(answered) == len(MOVIES)
        report = " ".join(second.stdout.split())
        assert "1 unknown to the model, 1 unreadable, 0 failed" in report
        third = cli(*home, "knowledge", "build", "-d", "small")
        assert third.exit_code == 0 and f"{len(MOVIES)} answered before, 0 to ask" in third.stderr
        assert len(answered) == len(MOVIES)
    status = json.loads(cli(*home, "knowledge", "status", "-d", "small").stdout)
    assert status["with_knowledge"] == len(MOVIES) - 2
    assert status["unknown_to_the_model"] == 1 and status["unreadable"] == 1
    assert status["models"] == ["fake-model"]
    shown = json.loads(cli(*home, "knowledge", "show", "1", "-d", "small").stdout)
    assert shown["aspects"]["themes"] == "bank robbery crew" and "acclaim" not in shown["aspects"]


def test_a_changed_prompt_or_item_asks_again_and_nothing_else(
    cli, tagged, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ws, _, _ = tagged
    home = ["--home", str(ws.root)]
    with FakeOpenAIServer([knows] * 200) as server:
        llm_env(monkeypatch, server)
        assert cli(*home, "knowledge", "build", "-d", "small", "--items", "5").exit_code == 0
        assert len(server.chat_requests) == 5
        more = cli(*home, "knowledge", "build", "-d", "small", "--items", "7")
        assert "5 answered before, 2 to ask" in more.stderr and len(server.chat_requests) == 7
        first, second = [a.item_id for a in KnowledgeStore.of(ws, "small").answers()][:2]
        ids = tmp_path / "ids.txt"
        ids.write_text(f"{first}\n{second}\n# a comment\n{second}\n")
        again = cli(*home, "knowledge", "build", "-d", "small", "--ids", str(ids))
        assert "2 items" in again.stderr and len(server.chat_requests) == 7
        # the user edits the prompt: everything is asked again
        prompts = ws.root / "prompts"
        prompts.mkdir(exist_ok=True)
        default = (
            Path(__file__).parents[1] / "recagent" / "prompts" / "item_knowledge.yaml"
        ).read_text()
        (prompts / "item_knowledge.yaml").write_text(
            default.replace("Answer with the JSON object only.", "Only the JSON object.")
        )
        edited = cli(*home, "knowledge", "build", "-d", "small", "--ids", str(ids))
        assert "0 answered before, 2 to ask" in edited.stderr and len(server.chat_requests) == 9
    bad = tmp_path / "bad.txt"
    bad.write_text("1\nnope\n")
    out = cli(*home, "knowledge", "build", "-d", "small", "--ids", str(bad))
    assert out.exit_code == 2 and "nope" in out.stderr
    offline = cli(*home, "knowledge", "build", "-d", "small", "--llm", "offline")
    assert offline.exit_code == 2 and "needs an LLM" in offline.stderr
    reread = cli(*home, "knowledge", "build", "-d", "small", "--reread", "--llm", "offline")
    assert reread.exit_code == 0 and "0 stored answers read differently" in reread.stdout


def test_knowledge_reaches_the_catalog_and_the_index_template(
    cli, tagged, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, ds, _ = tagged
    before = catalog_fingerprint(ds.catalog)
    assert catalog_fingerprint(Dataset.load(ws, "small").catalog) == before  # none built yet
    with FakeOpenAIServer([knows] * 200) as server:
        llm_env(monkeypatch, server)
        assert cli("--home", str(ws.root), "knowledge", "build", "-d", "small").exit_code == 0
    loaded = Dataset.load(ws, "small")
    assert catalog_fingerprint(loaded.catalog) != before  # an index built before is stale
    vault = loaded.catalog["1"]
    assert vault.knowledge == "Sub genre: caper. Themes: bank robbery crew."
    text = load_template("title_genres_knowledge").render(vault)
    assert text == "Project 0 (1990). Genres: Drama. " + vault.knowledge
    assert loaded.catalog["28"].knowledge == ""  # Project 27: unknown to the model
    assert store_path(ws, "small").is_file()
    # the prepared catalog file itself is untouched
    assert "knowledge" not in (ws.dataset("small").current() / "items.jsonl").read_text()


def test_tags_protocol_measures_the_knowledge_space_and_its_control(
    cli, tagged, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, _, tags = tagged
    home = ["--home", str(ws.root)]
    plain_only = cli(
        *home, "eval", "run", "-d", "small", "--protocol", "tags", "--cases", str(tags),
        "--pipelines", "plain,knowledge",
    )  # fmt: skip
    assert plain_only.exit_code == 2 and "knowledge build" in plain_only.stderr
    assert not ws.runs_dir.exists() or not list(ws.runs_dir.iterdir())  # refused before a run
    with FakeOpenAIServer([knows] * 200) as server:
        llm_env(monkeypatch, server)
        assert cli(*home, "knowledge", "build", "-d", "small").exit_code == 0
    monkeypatch.delenv("OPENAI_BASE_URL")
    done = cli(*home, "eval", "run", "-d", "small", "--protocol", "tags", "--cases", str(tags))
    assert done.exit_code == 0, done.stderr
    run_id = json.loads(cli(*home, "eval", "list", "--json").stdout)[-1]["run_id"]
    summary = json.loads((ws.runs_dir / run_id / "summary.json").read_text())
    pipes = summary["pipelines"]
    assert set(pipes) == {"plain", "knowledge", "shuffled-knowledge"}
    assert all(p["users"] == 2 for p in pipes.values())  # heist, time travel; not the list tag
    ndcg = {name: p["accuracy"]["NDCG@10"]["mean"] for name, p in pipes.items()}
    assert ndcg["knowledge"] == 1.0  # the model's themes name what people tagged
    assert ndcg["plain"] < 0.9 and ndcg["shuffled-knowledge"] < ndcg["knowledge"]
    config = json.loads((ws.runs_dir / run_id / "config.json").read_text())
    assert config["fingerprints"]["catalog"] and config["protocol"] == "tags"
    lines = (ws.runs_dir / run_id / "per_user.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines if line]
    assert {r["user_id"] for r in records} == {"heist", "time travel"}
    unknown = cli(*home, "eval", "run", "-d", "small", "--protocol", "tags", "--cases",
                  str(tags), "--pipelines", "sasrec")  # fmt: skip
    assert unknown.exit_code == 2 and "plain" in unknown.stderr


def test_the_index_finds_items_by_their_knowledge(
    cli, tagged, monkeypatch: pytest.MonkeyPatch
) -> None:
    """search_items' index, built with a knowledge template, finds what the items are; one
    built before the knowledge is stale, not silently out of date."""
    from recagent.config import IndexConfig
    from recagent.errors import ArtifactError
    from recagent.index.store import open_index

    ws, before, _ = tagged
    config = IndexConfig(template="title_genres_knowledge")
    open_index(ws, before, config, build_if_missing=True).close()
    with FakeOpenAIServer([knows] * 200) as server:
        llm_env(monkeypatch, server)
        assert cli("--home", str(ws.root), "knowledge", "build", "-d", "small").exit_code == 0
    ds = Dataset.load(ws, "small")
    with pytest.raises(ArtifactError, match="stale"):
        open_index(ws, ds, config)
    index = open_index(ws, ds, config, rebuild_if_stale=True)
    try:
        hits = index.search("a bank robbery crew", k=5)
    finally:
        index.close()
    heists = {str(i) for i in range(1, 13)}
    assert {h.item_id for h in hits} <= heists
    assert "Themes: bank robbery crew." in hits[0].text
