"""The evaluation harness: protocols, resume after a crash, the LLM cache, failures, reports."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml
from langchain_core.messages import AIMessage, BaseMessage

from recagent.app import eval_services
from recagent.config import load_settings
from recagent.evals.cache import CachedChatModel, LLMCache
from recagent.evals.env import EvalEnv
from recagent.evals.harness import list_errors, run
from recagent.evals.protocols import base_cases, random_candidates
from recagent.evals.rerank import parse_ids
from recagent.evals.runs import RunConfig, RunDir, list_runs, new_run_id
from recagent.evals.summary import load_prices, summarize
from recagent.manifest import file_sha256
from recagent.progress import SilentReporter
from recagent.prompts.registry import PromptRegistry
from tests.conftest import Stack
from tests.fakes import ScriptedChatModel, tool_call


def _env(stack: Stack) -> EvalEnv:
    settings = load_settings(home=stack.workspace.root)
    return EvalEnv(eval_services(stack.workspace, settings, stack.dataset))


def _config(stack: Stack, **kw) -> RunConfig:
    base = {
        "run_id": new_run_id(),
        "protocol": "full-rank",
        "pipelines": ["popularity"],
        "dataset": stack.dataset.name,
        "k": 10,
    }
    return RunConfig(**{**base, **kw})


def _run(stack: Stack, tmp_path: Path, config: RunConfig, env: EvalEnv | None = None):
    run_dir = RunDir(tmp_path / "runs", config.run_id)
    run_dir.create(config)
    env = env or _env(stack)
    records = run(config, env, run_dir, SilentReporter())
    summary = summarize(config, records, stack.dataset, env.popularity.scores, load_prices())
    return run_dir, records, summary


def test_candidate_sampler(mini_stack: Stack) -> None:
    ds = mini_stack.dataset
    for case in base_cases(ds, "test", users=10, seed=3):
        cands = random_candidates(ds, case, seed=3)
        assert len(cands) == 20 and len(set(cands)) == 20
        assert case.target in cands
        assert not set(cands) & set(case.history)
        assert cands == random_candidates(ds, case, seed=3)  # deterministic per seed
        assert cands != random_candidates(ds, case, seed=4)


def test_runs_started_in_the_same_second_list_in_the_order_they_started(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    for n, run_id in enumerate(["20261207-120000-ffff", "20261207-120000-0000"]):
        run = RunDir(root, run_id)
        config = {"protocol": "full-rank", "pipelines": ["popularity"], "dataset": "d", "k": 10}
        run.create(RunConfig(run_id=run_id, **config))
        os.utime(run.config_path, ns=(n * 10**9, n * 10**9))
    assert [r.path.name for r in list_runs(root)] == [
        "20261207-120000-ffff",
        "20261207-120000-0000",
    ]


def test_list_errors_counts_what_rankers_break() -> None:
    clean, errors = list_errors(["a", "x", "a", "h", "b"], ["a", "b", "c"], ["h"])
    assert clean == ["a", "b"]
    assert errors == {"outside": 2, "duplicates": 1, "seen": 1, "missing": 1}
    assert parse_ids('Sure! ["12", "7", 3]') == ["12", "7", "3"]


def test_full_rank_all_offline_pipelines(mini_stack: Stack, tmp_path: Path) -> None:
    pipes = ["popularity", "sasrec", "vector", "hybrid", "planner"]
    _, records, summary = _run(mini_stack, tmp_path, _config(mini_stack, pipelines=pipes))
    users = len(mini_stack.dataset.split.eval_users)
    assert len(records) == users * len(pipes)
    assert all(r.failure is None for r in records), [r.failure for r in records if r.failure][:3]
    for name in pipes:
        entry = summary["pipelines"][name]
        acc = entry["accuracy"]
        assert set(acc) == {"HR@10", "HR@20", "HR@50", "NDCG@10", "NDCG@20", "NDCG@50", "MRR"}
        assert acc["NDCG@10"]["ci"][0] <= acc["NDCG@10"]["mean"] <= acc["NDCG@10"]["ci"][1]
        assert 0 < entry["beyond"]["coverage"] <= 1
    assert summary["pipelines"]["planner"]["beyond"]["explanation_faithfulness"] == 1.0


def test_resume_after_crash_gives_the_same_summary(mini_stack: Stack, tmp_path: Path) -> None:
    config = _config(mini_stack, pipelines=["popularity", "sasrec"])
    _, _, whole = _run(mini_stack, tmp_path / "a", config)

    crashed = config.model_copy(update={"run_id": new_run_id()})
    env = _env(mini_stack)
    real = env.pipeline

    class Crash(Exception):
        pass

    def crashing(name: str):  # the sasrec pipeline dies (KeyboardInterrupt-like) mid-run
        pipe = real(name)
        if name != "sasrec":
            return pipe
        calls = {"n": 0}
        inner = pipe.full_rank

        def full_rank(*args):  # type: ignore[no-untyped-def]
            calls["n"] += 1
            if calls["n"] == 5:
                raise KeyboardInterrupt
            return inner(*args)

        pipe.full_rank = full_rank  # type: ignore[method-assign]
        return pipe

    env.pipeline = crashing  # type: ignore[method-assign]
    run_dir = RunDir(tmp_path / "b" / "runs", crashed.run_id)
    run_dir.create(crashed)
    with pytest.raises(KeyboardInterrupt):
        run(crashed, env, run_dir, SilentReporter())
    partial = len(run_dir.records())
    assert 0 < partial < 2 * len(mini_stack.dataset.split.eval_users)
    with run_dir.records_path.open("a") as fh:  # a crash can also cut a line in half
        fh.write('{"pipeline": "sasrec", "user_')
    records = run(crashed, _env(mini_stack), run_dir, SilentReporter())
    resumed = summarize(crashed, records, mini_stack.dataset, env.popularity.scores, load_prices())
    for name in ("popularity", "sasrec"):
        assert resumed["pipelines"][name]["accuracy"] == whole["pipelines"][name]["accuracy"]


def test_failing_user_is_recorded_and_run_continues(mini_stack: Stack, tmp_path: Path) -> None:
    env = _env(mini_stack)
    real = env.pipeline("popularity")
    target_user = int(mini_stack.dataset.split.eval_users[2])

    class Flaky:
        name = "popularity"

        def recommend(self, history, k, request=None, candidates=None, user_id=None):  # type: ignore[no-untyped-def]
            if user_id == mini_stack.dataset.interactions.user_id_at(target_user):
                raise RuntimeError("boom")
            return real.recommend(history, k, request, candidates, user_id)

    env.pipeline = lambda name: Flaky()  # type: ignore[method-assign]
    _, records, summary = _run(mini_stack, tmp_path, _config(mini_stack), env)
    failed = [r for r in records if r.failure]
    assert len(failed) == 1 and "boom" in failed[0].failure
    assert len(records) == len(mini_stack.dataset.split.eval_users)
    assert summary["pipelines"]["popularity"]["failures"] == 1


def _ranking_reply(messages: list[BaseMessage]) -> AIMessage:
    """A fake LLM ranker: returns the candidate ids in reverse order, plus an outside id."""
    lines = [ln for ln in messages[-1].content.splitlines() if " | " in ln]
    ids = [ln.split(" | ")[0].strip() for ln in lines][-20:]
    return AIMessage(content=json.dumps(["not-an-id", *reversed(ids)]))


def test_llm_cache_makes_rerun_free(mini_stack: Stack, tmp_path: Path) -> None:
    users = 6
    scripted = ScriptedChatModel(script=[_ranking_reply] * users)
    cache = LLMCache(tmp_path / "llm.sqlite")
    config = _config(mini_stack, protocol="candidates", pipelines=["llm-rerank"], users=users)

    def env_with(model: ScriptedChatModel) -> EvalEnv:
        env = _env(mini_stack)
        env.__dict__["llm"] = CachedChatModel(inner=model, model_name="fake-model", store=cache)
        return env

    _, first, summary = _run(mini_stack, tmp_path / "1", config, env_with(scripted))
    assert len(scripted.calls) == users
    errors = summary["pipelines"]["llm-rerank"]["ranker_errors"]
    assert errors["outside_per_request"] == 1.0 and errors["missing_per_request"] == 0.0

    again = ScriptedChatModel(script=[])  # any call would fail: the script is empty
    second_config = config.model_copy(update={"run_id": new_run_id()})
    _, second, summary2 = _run(mini_stack, tmp_path / "2", second_config, env_with(again))
    assert again.calls == []
    assert [r.rank for r in first] == [r.rank for r in second]
    assert (
        summary2["pipelines"]["llm-rerank"]["accuracy"]
        == summary["pipelines"]["llm-rerank"]["accuracy"]
    )


def test_conversation_protocol_with_rules_simulator(mini_stack: Stack, tmp_path: Path) -> None:
    config = _config(mini_stack, protocol="conversation", pipelines=["planner"], users=8)
    _, records, summary = _run(mini_stack, tmp_path, config)
    assert {r.pipeline for r in records} == {"planner[attrs]", "planner[no-attrs]"}
    for name in ("planner[attrs]", "planner[no-attrs]"):
        conv = summary["pipelines"][name]["conversation"]
        assert 0 <= conv["hit_rate"] <= 1 and conv["title_leaks"] == 0
    assert all(1 <= (r.turns or 0) <= 5 for r in records)


def test_cli_run_list_compare_and_report_files(cli, mini_stack: Stack) -> None:
    home = ["--home", str(mini_stack.workspace.root)]
    first = cli(*home, "eval", "run", "--pipelines", "popularity,sasrec", "--k", "10")
    assert first.exit_code == 0, first.output
    runs = json.loads(cli(*home, "eval", "list", "--json").stdout)
    run_id = runs[-1]["run_id"]
    assert runs[-1]["status"] == "complete" and set(runs[-1]["headline"]) == {
        "popularity",
        "sasrec",
    }
    folder = mini_stack.workspace.runs_dir / run_id
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["protocol"] == "full-rank"
    assert "| pipeline |" in (folder / "report.md").read_text()
    for png in ("metrics.png", "latency.png", "cost.png"):
        assert (folder / png).read_bytes()[:4] == b"\x89PNG"
    config = json.loads((folder / "config.json").read_text())
    assert (
        config["fingerprints"]["data"] == mini_stack.dataset.fingerprint and config["prompt_hashes"]
    )
    compared = cli(*home, "eval", "compare", run_id, run_id, "--json")
    deltas = json.loads(compared.stdout)["deltas"]
    assert deltas and all(d["delta"] == 0 and d["p_ttest"] == 1.0 for d in deltas)
    assert cli(*home, "eval", "resume", run_id).exit_code == 0


def test_cli_bad_input(cli, mini_stack: Stack) -> None:
    home = ["--home", str(mini_stack.workspace.root)]
    assert cli(*home, "eval", "run", "--pipelines", "bogus").exit_code == 2
    assert cli(*home, "eval", "run", "--protocol", "nope").exit_code == 2
    assert cli(*home, "eval", "resume", "no-such-run").exit_code == 2
    llm = cli(*home, "eval", "run", "--pipelines", "llm-rerank", "--protocol", "candidates")
    assert llm.exit_code == 2 and "OPENAI_BASE_URL" in llm.stderr


def _leaky_simulator(messages: list[BaseMessage]) -> AIMessage:
    """A simulated user that breaks the rule and names the secret title."""
    system = " ".join(messages[0].content.split())
    title = system.split("specific title: ", 1)[1].split(". NEVER")[0]
    title = title.rsplit(" (", 1)[0]  # the label carries the year
    return AIMessage(content=f"I want {title} please")


def test_llm_simulator_title_leaks_are_redacted(mini_stack: Stack, tmp_path: Path) -> None:
    users, turns = 2, 5
    scripted = ScriptedChatModel(script=[_leaky_simulator] * (users * turns * 2))
    env = _env(mini_stack)
    env.__dict__["llm"] = CachedChatModel(inner=scripted, model_name="fake-model")
    config = _config(mini_stack, protocol="conversation", pipelines=["planner"], users=users,
                     simulator="llm")  # fmt: skip
    _, records, summary = _run(mini_stack, tmp_path, config, env)
    assert all(r.failure is None for r in records)
    leaks = sum(e["conversation"]["title_leaks"] for e in summary["pipelines"].values())
    assert leaks == sum(r.turns or 0 for r in records)  # every message leaked, every one redacted
    assert all(r.llm_calls >= 1 for r in records)  # the simulator's calls are counted


def _read_step(messages: list[BaseMessage]) -> AIMessage:
    return AIMessage(content="", tool_calls=[tool_call("read_request", {})])


def _choose_step(messages: list[BaseMessage]) -> AIMessage:
    ids = re.findall(r"^- (\S+): ", str(messages[-1].content), re.M)
    items = [{"item_id": i, "explanation": "From its evidence for you."} for i in ids[::-1]]
    return AIMessage(content="", tool_calls=[tool_call("final_answer", {"items": items})])


def test_llm_pipeline_cache_hits_on_rerun(mini_stack: Stack, tmp_path: Path) -> None:
    """The agent's calls carry ids LangChain assigns at random; the cache must ignore them."""
    users = 3
    cache = LLMCache(tmp_path / "llm.sqlite")
    config = _config(mini_stack, pipelines=["llm"], users=users)

    def env_with(model: ScriptedChatModel) -> EvalEnv:
        env = _env(mini_stack)
        env.__dict__["llm"] = CachedChatModel(inner=model, model_name="fake-model", store=cache)
        return env

    scripted = ScriptedChatModel(script=[_read_step, _choose_step] * users)
    _, first, _ = _run(mini_stack, tmp_path / "1", config, env_with(scripted))
    assert len(scripted.calls) == 2 * users and all(r.failure is None for r in first)
    assert all(r.model == "fake-model" for r in first)
    again = ScriptedChatModel(script=[])  # any call would fail: the script is empty
    second_config = config.model_copy(update={"run_id": new_run_id()})
    _, second, _ = _run(mini_stack, tmp_path / "2", second_config, env_with(again))
    assert again.calls == []
    assert [r.items for r in first] == [r.items for r in second]


def test_resume_refuses_changed_prompts(cli, mini_stack: Stack, tmp_path: Path) -> None:
    root = tmp_path / "home"
    shutil.copytree(mini_stack.workspace.root, root)
    home = ["--home", str(root)]
    assert cli(*home, "eval", "run", "--pipelines", "popularity", "--users", "3").exit_code == 0
    run_id = json.loads(cli(*home, "eval", "list", "--json").stdout)[-1]["run_id"]
    config = json.loads((root / "runs" / run_id / "config.json").read_text())
    assert config["fingerprints"]["data"] and config["prompt_hashes"]
    prompts = root / "prompts"
    prompts.mkdir(exist_ok=True)
    shipped = PromptRegistry().get("explanation")
    (prompts / "explanation.yaml").write_text(
        yaml.safe_dump({**shipped.model_dump(mode="json"), "version": 99})
    )
    refused = cli(*home, "eval", "resume", run_id)
    assert refused.exit_code == 2 and "prompt explanation" in refused.stderr


def test_sasrec_fingerprint_is_the_checkpoints(mini_stack: Stack) -> None:
    env = _env(mini_stack)
    fingerprints = env.fingerprints(["sasrec"])
    path = mini_stack.workspace.models_dir(mini_stack.dataset.name) / "sasrec.pt"
    assert fingerprints["sasrec"] == file_sha256(path)


DIALOGUES = [
    {  # the person loved Toy Story; the other side then suggested Heat (gold, not named)
        "dialog_id": "1",
        "turn": 2,
        "messages": [
            {"role": "user", "text": "I loved Toy Story (1995), what else?"},
        ],
        "gold": [{"title": "Heat (1995)", "item_id": "4"}],
    },
    {  # gold already named in the dialogue: counted in 'all' only
        "dialog_id": "2",
        "turn": 3,
        "messages": [
            {"role": "user", "text": "Any sci-fi? I liked Alien (1979)"},
            {"role": "assistant", "text": "Have you seen Blade Runner (1982)?"},
        ],
        "gold": [{"title": "Blade Runner (1982)", "movieId": "3"}, {"title": "?", "movieId": None}],
    },
]


def _sampled_case_ids(cli, home: list[str], args: list[str], stack: Stack) -> list[str]:
    """The case ids one pipeline ran on in a seeded `--users 2` sample of the same case file."""
    sampled = cli(*home, *args, "--pipelines", "planner", "--users", "2", "--seed", "1")
    assert sampled.exit_code == 0, sampled.output
    run_id = json.loads(cli(*home, "eval", "list", "--json").stdout)[-1]["run_id"]
    rows = (stack.workspace.runs_dir / run_id / "per_user.jsonl").read_text().splitlines()
    return [json.loads(row)["user_id"] for row in rows]


def test_dialogues_protocol(cli, mini_stack: Stack, tmp_path: Path) -> None:
    cases = tmp_path / "cases.jsonl"
    cases.write_text("\n".join(json.dumps(c) for c in DIALOGUES) + "\n")
    home = ["--home", str(mini_stack.workspace.root)]
    args = ["eval", "run", "--protocol", "dialogues", "--cases", str(cases), "--k", "20"]
    result = cli(*home, *args, "--pipelines", "popularity,sasrec,vector,planner")
    assert result.exit_code == 0, result.output
    run_id = json.loads(cli(*home, "eval", "list", "--json").stdout)[-1]["run_id"]
    folder = mini_stack.workspace.runs_dir / run_id
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["protocol"] == "dialogues"
    planner = summary["pipelines"]["planner"]["accuracy"]
    assert planner["Recall@10"]["n"] == 1 and planner["Recall@10 all"]["n"] == 2
    records = [json.loads(x) for x in (folder / "per_user.jsonl").read_text().splitlines()]
    by_case = {(r["pipeline"], r["user_id"]): r for r in records}
    assert (
        by_case[("planner", "2:3")]["gold"] == ["3"]
        and by_case[("planner", "2:3")]["gold_new"] == []
    )
    for r in records:  # what the person said they loved or liked is never recommended back
        loved = {"1:2": "1", "2:3": "2"}[r["user_id"]]
        assert len(r["items"]) <= 20 and loved not in r["items"], r
    assert all(
        r["steps"] > 0 and r["tool_calls"] > 0 for r in records if r["pipeline"] == "planner"
    )
    assert "| planner |" in (folder / "report.md").read_text()
    ids = _sampled_case_ids(cli, home, args, mini_stack)
    assert len(ids) == 2 and len(set(ids)) == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": []}\n')
    failed = cli(*home, *args[:-2], "--cases", str(bad), "--k", "20")
    assert failed.exit_code == 2 and "bad.jsonl, line 1" in failed.stderr
    missing = cli(*home, "eval", "run", "--protocol", "dialogues")
    assert missing.exit_code == 2 and "--cases" in missing.stderr


def test_the_env_builds_a_cached_llm_from_settings(
    mini_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    settings = load_settings(home=mini_stack.workspace.root)
    env = EvalEnv(
        eval_services(mini_stack.workspace, settings, mini_stack.dataset),
        llm_spec="openai:some-model",
    )
    assert isinstance(env.llm, CachedChatModel) and env.llm.model_name == "some-model"
    assert isinstance(env.llm.store, LLMCache)


def test_requests_protocol_end_to_end(cli, mini_stack: Stack, tmp_path: Path) -> None:
    """Its own case file on the mini catalog: the run, the summary of checks and plans, the
    report, a paired comparison, and a bad file refused naming its line."""
    cases = [
        {
            "id": "rank",
            "text": "rank these for me: Heat, Alien, Toy Story",
            "kind": "rank",
            "plan": [{"tool": "score_candidates", "titles": ["Heat (1995)"]}],
            "checks": [
                {"check": "kind"},
                {
                    "check": "items_are",
                    "titles": ["Heat (1995)", "Alien (1979)", "Toy Story (1995)"],
                },
            ],
            "user_id": "3",
        },
        {
            "id": "judge",
            "text": "is Blade Runner a good pick for me?",
            "kind": "judge",
            "checks": [{"check": "verdict", "titles": ["Blade Runner (1982)"]}],
        },
        {
            "id": "wrong-on-purpose",
            "text": "a comedy",
            "kind": "profile",
            "checks": [{"check": "kind"}, {"check": "count", "n": 10}],
        },
    ]
    path = tmp_path / "requests.jsonl"
    path.write_text("\n".join(json.dumps(c) for c in cases) + "\n")
    home = ["--home", str(mini_stack.workspace.root)]
    args = ["eval", "run", "--protocol", "requests", "--cases", str(path), "--pipelines", "planner"]
    result = cli(*home, *args)
    assert result.exit_code == 0, result.output
    run_id = json.loads(cli(*home, "eval", "list", "--json").stdout)[-1]["run_id"]
    folder = mini_stack.workspace.runs_dir / run_id
    summary = json.loads((folder / "summary.json").read_text())
    entry = summary["pipelines"]["planner"]
    assert entry["requests"]["checks"] == 5 and entry["requests"]["checks_passed"] == 4
    assert entry["requests"]["failed_cases"] == ["wrong-on-purpose"]
    assert entry["accuracy"]["plan_accuracy"]["mean"] == pytest.approx(2 / 3)
    records = [json.loads(x) for x in (folder / "per_user.jsonl").read_text().splitlines()]
    assert all(r["steps"] > 0 and r["tool_calls"] > 0 for r in records)
    assert "| planner |" in (folder / "report.md").read_text()
    ids = _sampled_case_ids(cli, home, args, mini_stack)
    assert len(ids) == 2 and len(set(ids)) == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({**cases[0], "checks": [{"check": "items_are", "titles": ["Nope (2050)"]}]})
        + "\n"
    )
    failed = cli(
        *home,
        "eval",
        "run",
        "--protocol",
        "requests",
        "--cases",
        str(bad),
        "--pipelines",
        "planner",
    )
    assert failed.exit_code == 2 and "line 1" in failed.output and "Nope (2050)" in failed.output
    wrong = cli(*home, "eval", "run", "--protocol", "requests", "--pipelines", "sasrec")
    assert wrong.exit_code == 2 and "planner,llm" in wrong.output


def test_palr_writes_keywords_then_orders_the_candidates(mini_stack: Stack, tmp_path: Path) -> None:
    users = 5
    keywords = AIMessage(content="dark, 1980s, sci-fi, slow burn")
    scripted = ScriptedChatModel(script=[keywords, _ranking_reply] * users)
    config = _config(mini_stack, protocol="candidates", pipelines=["palr"], users=users)
    env = _env(mini_stack)
    env.__dict__["llm"] = CachedChatModel(inner=scripted, model_name="fake-model", store=None)
    _, records, summary = _run(mini_stack, tmp_path, config, env)
    assert len(scripted.calls) == 2 * users and all(r.llm_calls == 2 for r in records)
    first, second = (scripted.calls[i]["messages"][-1].content for i in (0, 1))
    assert "keywords" in first and " | " in first  # step 1 sees the history
    assert "A user's preferences: dark, 1980s, sci-fi, slow burn" in second  # step 2 uses them
    errors = summary["pipelines"]["palr"]["ranker_errors"]
    assert errors["outside_per_request"] == 1.0 and errors["missing_per_request"] == 0.0
    assert all(r.rank is not None and len(r.items) == 10 for r in records)
