"""Evaluation harness on ML-100k: wall time of a full-rank run over all 943 users with
popularity + sasrec + vector + hybrid + planner, and the harness's overhead over calling the
same pipelines directly (same users, same order, one process).

    flock /tmp/recagent-bench.lock python benchmarks/eval_harness.py full-rank
    flock /tmp/recagent-bench.lock python benchmarks/eval_harness.py overhead

Targets (issue 6): full-rank for the five pipelines < 2 minutes on 2 cores; harness overhead
< 5%.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import common

from recagent.app import eval_services
from recagent.config import load_settings
from recagent.data.dataset import Dataset
from recagent.data.prepare import PrepareConfig, prepare
from recagent.evals.env import EvalEnv
from recagent.evals.harness import build_cases, evaluate_case, run
from recagent.evals.report import write_report
from recagent.evals.runs import RunConfig, RunDir, new_run_id
from recagent.evals.summary import load_prices, summarize
from recagent.progress import RichReporter, SilentReporter
from recagent.workspace import Workspace

PIPELINES = ["popularity", "sasrec", "vector", "hybrid", "planner"]


def _env(home: Path) -> EvalEnv:
    ws = Workspace(home)
    if "ml-100k" not in ws.dataset_names():
        prepare(PrepareConfig(dataset="ml-100k", source=common.SHARED / "ml-100k"), ws)
    settings = load_settings(home=home)
    env = EvalEnv(eval_services(ws, settings, Dataset.load(ws, "ml-100k"), RichReporter()))
    env.sasrec, env.index, env.popularity  # noqa: B018 - load (or build) before timing
    return env


def full_rank(home: Path, pipelines: list[str]) -> dict:
    env = _env(home)
    config = RunConfig(
        run_id=new_run_id(), protocol="full-rank", pipelines=pipelines, dataset="ml-100k"
    )
    env.stamp(config)  # as `recagent eval run` does
    run_dir = RunDir(env.workspace.runs_dir, config.run_id)
    run_dir.create(config)
    started = time.perf_counter()
    records = run(config, env, run_dir, RichReporter())
    seconds = time.perf_counter() - started
    summary = summarize(config, records, env.dataset, env.popularity.scores, load_prices())
    run_dir.write_summary(summary)
    report = write_report(summary, config.model_dump(mode="json"), run_dir.path)
    print(f"report: {report}")
    result = {
        "run_id": config.run_id,
        "seconds": seconds,
        "users": summary["users"],
        "per_pipeline": {
            name: {
                "NDCG@10": e["accuracy"]["NDCG@10"]["mean"],
                "HR@10": e["accuracy"]["HR@10"]["mean"],
                "p50_ms": e["beyond"]["latency_p50_ms"],
                "p95_ms": e["beyond"]["latency_p95_ms"],
                "failures": e["failures"],
            }
            for name, e in summary["pipelines"].items()
        },
        "machine": common.machine(),
    }
    common.write_result("eval_full_rank", result)
    return result


def _direct(objs: list, cases: list, config: RunConfig) -> float:
    """The same per-user work as the harness (`evaluate_case`), without its bookkeeping."""
    started = time.perf_counter()
    for obj in objs:
        for case in cases:
            evaluate_case(obj, case, config)
    return time.perf_counter() - started


def _harness(env: EvalEnv, config: RunConfig) -> float:
    """A whole harness run: cases, records appended with fsync, resume bookkeeping."""
    config = config.model_copy(update={"run_id": new_run_id()})
    run_dir = RunDir(env.workspace.runs_dir, config.run_id)
    run_dir.create(config)
    started = time.perf_counter()
    run(config, env, run_dir, SilentReporter())
    return time.perf_counter() - started


def overhead(home: Path, repeats: int = 3) -> dict:
    """Median over `repeats` of the pipelines called directly vs through the harness, on 200
    users; the order alternates so warm caches favour neither."""
    env = _env(home)
    pipelines = ["sasrec", "hybrid", "planner"]
    config = RunConfig(
        run_id=new_run_id(), protocol="full-rank", pipelines=pipelines, dataset="ml-100k", users=200
    )
    cases = build_cases(config, env)
    objs = [env.pipeline(p) for p in pipelines]
    direct, harness = [], []
    for i in range(repeats):
        if i % 2:
            harness.append(_harness(env, config))
            direct.append(_direct(objs, cases, config))
        else:
            direct.append(_direct(objs, cases, config))
            harness.append(_harness(env, config))
    d, h = statistics.median(direct), statistics.median(harness)
    result = {
        "direct_s": direct,
        "harness_s": harness,
        "direct_median_s": d,
        "harness_median_s": h,
        "overhead": h / d - 1,
        "users": 200,
        "pipelines": pipelines,
        "machine": common.machine(),
    }
    common.write_result("eval_overhead", result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("what", choices=["full-rank", "overhead"])
    parser.add_argument("--home", type=Path, default=common.HOME)
    parser.add_argument("--pipelines", default=",".join(PIPELINES))
    args = parser.parse_args()
    if args.what == "full-rank":
        result = full_rank(args.home, args.pipelines.split(","))
    else:
        result = overhead(args.home)
    print({k: v for k, v in result.items() if k != "machine"})


if __name__ == "__main__":
    main()
