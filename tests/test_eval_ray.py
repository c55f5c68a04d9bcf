"""Evaluation over Ray: a real local Ray cluster (two CPUs, started here, stopped after) gives
case for case the records a serial run gives (latency aside), a run cut short resumes on
Ray, workers in other processes answer from the shared LLM cache, and without Ray `--ray`
says how to get it."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from recagent.app import eval_services
from recagent.config import load_settings
from recagent.data.dataset import Dataset
from recagent.evals.cache import CachedChatModel, LLMCache
from recagent.evals.env import EvalEnv
from recagent.evals.harness import run
from recagent.evals.runs import RunConfig, RunDir, list_runs, new_run_id
from recagent.evals.summary import load_prices, summarize
from recagent.progress import SilentReporter
from recagent.workspace import Workspace
from tests.conftest import Stack
from tests.fakes import ScriptedChatModel
from tests.test_evals import DIALOGUES, _choose_step, _read_step

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ray_cluster() -> Any:
    """Two CPUs; workers find this repository's `tests` package and no LLM settings."""
    ray = pytest.importorskip("ray")
    with pytest.MonkeyPatch.context() as mp:  # what the cluster's processes inherit
        mp.setenv("RAY_USAGE_STATS_ENABLED", "0")
        mp.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
        for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "RECAGENT_CONFIG", "RECAGENT_DATASET"):
            mp.delenv(var, raising=False)
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            logging_level="ERROR",
            object_store_memory=100 * 1024**2,
        )
    yield ray
    ray.shutdown()


def _records(path: Path) -> dict[tuple[str, int], dict[str, Any]]:
    """A run's records by (pipeline, case), without the latency."""
    out = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        record.pop("latency_ms")
        out[(record["pipeline"], record["user_idx"])] = record
    return out


def _assert_same(got: dict, want: dict) -> None:
    """Record for record, naming the first field that differs."""
    assert set(got) == set(want)
    for key, record in want.items():
        diff = {f: (got[key].get(f), v) for f, v in record.items() if got[key].get(f) != v}
        assert not diff, (key, diff)


def test_ray_dialogues_match_serial(cli, mini_stack: Stack, tmp_path: Path, ray_cluster) -> None:
    """Through the CLI: the Ray workers build their own environment from the run's settings."""
    cases = tmp_path / "cases.jsonl"
    more = [{**c, "dialog_id": f"{c['dialog_id']}{n}"} for n in range(3) for c in DIALOGUES]
    cases.write_text("\n".join(json.dumps(c) for c in more) + "\n")
    home = ["--home", str(mini_stack.workspace.root)]
    args = [*home, "eval", "run", "--protocol", "dialogues", "--cases", str(cases), "--k", "20"]
    args += ["--pipelines", "popularity,vector,planner"]
    folders = []
    for extra in ([], ["--ray", "--workers", "2"]):
        result = cli(*args, *extra)
        assert result.exit_code == 0, result.output
        run_id = json.loads(cli(*home, "eval", "list", "--json").stdout)[-1]["run_id"]
        folders.append(mini_stack.workspace.runs_dir / run_id)
    serial, on_ray = (_records(f / "per_user.jsonl") for f in folders)
    assert len(serial) == 3 * len(more) and all(r["failure"] is None for r in serial.values())
    _assert_same(on_ray, serial)
    assert any(r["items"] for r in serial.values() if r["pipeline"] == "planner")
    summaries = [json.loads((f / "summary.json").read_text())["pipelines"] for f in folders]
    for name in ("popularity", "vector", "planner"):
        assert summaries[1][name]["accuracy"] == summaries[0][name]["accuracy"]


def _cached_env(root: str, dataset: str, cache: str, script: list[Any]) -> EvalEnv:
    """An env whose LLM is a scripted model behind the shared cache (pickles to Ray workers,
    which get an empty script: every LLM call there must be a cache hit)."""
    workspace = Workspace(Path(root))
    settings = load_settings(home=workspace.root)
    env = EvalEnv(eval_services(workspace, settings, Dataset.load(workspace, dataset)))
    model = ScriptedChatModel(script=list(script))
    env.__dict__["llm"] = CachedChatModel(
        inner=model, model_name="fake-model", store=LLMCache(Path(cache))
    )
    return env


def test_ray_resumes_a_cut_run_with_the_serial_records(
    mini_stack: Stack, tmp_path: Path, ray_cluster
) -> None:
    """Full ranking with the models, the planner and the LLM agent: a serial run fills the LLM
    cache; a run cut after a few records (and a half-written line) resumes on Ray, whose
    workers answer the agent from that cache, and ends with the serial run's records."""
    from recagent.evals.ray_runner import RayOptions

    users = 4
    pipes = ["popularity", "sasrec", "planner", "llm"]
    config = RunConfig(
        run_id=new_run_id(),
        protocol="full-rank",
        pipelines=pipes,
        dataset=mini_stack.dataset.name,
        k=10,
        users=users,
    )
    root, cache = str(mini_stack.workspace.root), str(tmp_path / "llm.sqlite")
    make_env = partial(_cached_env, root, config.dataset, cache)
    whole = RunDir(tmp_path / "a", config.run_id)
    whole.create(config)
    serial_env = make_env([_read_step, _choose_step] * users)
    records = run(config, serial_env, whole, SilentReporter())
    assert len(records) == users * len(pipes) and all(r.failure is None for r in records)

    cut = RunDir(tmp_path / "b", config.run_id)
    cut.create(config)
    lines = whole.records_path.read_text().splitlines(keepends=True)
    cut.records_path.write_text("".join(lines[:5]) + '{"pipeline": "sasrec", "user_')
    env = make_env([])
    options = RayOptions(partial(make_env, []), workers=2)
    resumed = run(config, env, cut, SilentReporter(), ray=options)
    _assert_same(_records(cut.records_path), _records(whole.records_path))
    assert env.llm.stats["misses"] == 0 and env.llm.stats["hits"] == 2 * users
    assert [r.key for r in resumed] == [r.key for r in records]  # the run's order, not arrival
    prices = load_prices()
    a, b = (
        summarize(config, recs, mini_stack.dataset, serial_env.popularity.scores, prices)
        for recs in (records, resumed)
    )
    for name in pipes:
        assert a["pipelines"][name]["accuracy"] == b["pipelines"][name]["accuracy"]


def test_ray_missing_says_how_to_install(
    cli, mini_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails
    home = ["--home", str(mini_stack.workspace.root)]
    before = len(list_runs(mini_stack.workspace.runs_dir))
    result = cli(*home, "eval", "run", "--pipelines", "popularity", "--users", "2", "--ray")
    assert result.exit_code == 2 and "pip install 'recagent[ray]'" in result.stderr
    assert "Traceback" not in result.output
    assert len(list_runs(mini_stack.workspace.runs_dir)) == before  # no run was started
    stray = cli(*home, "eval", "run", "--pipelines", "popularity", "--address", "auto")
    assert stray.exit_code == 2 and "--address is for --ray" in stray.stderr


def test_llm_concurrency_bounds_the_calls_in_flight(
    mini_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`[llm] concurrency` reaches the eval's LLM, whose slots hold --workers threads to it."""
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("RECAGENT_LLM__CONCURRENCY", "2")
    settings = load_settings(home=mini_stack.workspace.root)
    env = EvalEnv(eval_services(mini_stack.workspace, settings, mini_stack.dataset), "openai:m")
    limiter = env.llm.limiter
    assert limiter is not None and limiter.concurrency == 2
    in_flight, peak, lock = 0, 0, threading.Lock()

    def call(_: int) -> None:
        nonlocal in_flight, peak
        with limiter.slot():
            with lock:
                in_flight += 1
                peak = max(peak, in_flight)
            time.sleep(0.02)
            with lock:
                in_flight -= 1

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(call, range(18)))
    assert peak == 2
