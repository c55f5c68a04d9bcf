"""Agent speed on ML-100k: planner turn latency (warm), tool overhead per call, and the first
run from nothing (data + SASRec + index + one answer).

    flock /tmp/recagent-bench.lock python benchmarks/agent_latency.py turns
    flock /tmp/recagent-bench.lock python benchmarks/agent_latency.py first-run
    flock /tmp/recagent-bench.lock python benchmarks/agent_latency.py first-run-chat

Targets (issue 5): planner turn p50 < 300 ms warm; tool overhead < 50 ms per call; first run
from nothing < 4 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import common

from recagent.app import build_session, load_services
from recagent.config import load_settings
from recagent.data.prepare import PrepareConfig, prepare
from recagent.progress import RichReporter
from recagent.workspace import Workspace

MESSAGES = [
    "dark sci-fi from the 80s",
    "something like Toy Story but no animation",
    "a romantic comedy from the 90s",
    "",
    "no horror",
    "older ones",
    "more like the second one",
    "5 movies like Heat",
    "classic westerns",
    "a feel-good comedy",
]
USERS = ["1", "42", "100", "250", "500", "700", "900"]


def turns(home: Path) -> dict:
    ws = Workspace(home)
    settings = load_settings(home=home)
    if "ml-100k" not in ws.dataset_names():
        prepare(PrepareConfig(dataset="ml-100k", source=common.SHARED / "ml-100k"), ws)
    services = load_services(ws, settings, "ml-100k", RichReporter(), build_missing=True)
    session = build_session(services, settings, ws, "offline")
    session.runlog = None
    session.set_user("1")
    for message in MESSAGES[:3]:  # warm up: imports, caches, first model call
        session.ask(message)
    latencies: list[float] = []
    per_tool: dict[str, list[float]] = defaultdict(list)
    for user in USERS:
        session.set_user(user)
        for message in MESSAGES:
            started = time.perf_counter()
            session.ask(message)
            latencies.append((time.perf_counter() - started) * 1000)
            for call in session.ctx.calls:
                per_tool[call.name].append(call.duration_ms)
    qs = statistics.quantiles(latencies, n=20)
    result = {
        "turns": len(latencies),
        "turn_ms_p50": statistics.median(latencies),
        "turn_ms_p95": qs[18],
        "tool_ms_median": {k: statistics.median(v) for k, v in sorted(per_tool.items())},
        "tool_ms_p95": {
            k: statistics.quantiles(v, n=20)[18] for k, v in sorted(per_tool.items()) if len(v) > 1
        },
        "tool_calls": {k: len(v) for k, v in sorted(per_tool.items())},
        "machine": common.machine(),
    }
    common.write_result("agent_turns", result)
    return result


def first_run() -> dict:
    """`recagent recommend` on an empty workspace, offline, with the shared data as source."""
    home = common.WORK / "first-run-home"
    shutil.rmtree(home, ignore_errors=True)
    src = common.WORK / "first-run-src"
    shutil.rmtree(src, ignore_errors=True)
    (src / "data").mkdir(parents=True)
    shutil.copytree(common.SHARED / "ml-100k", src / "data" / "ml-100k")  # found as ./data/ml-100k
    env = {
        **os.environ,
        "RECAGENT_HOME": str(home),
        "RECAGENT_DOWNLOAD_MIRROR": "http://127.0.0.1:9/",
    }
    env.pop("OPENAI_BASE_URL", None)
    env.pop("OPENAI_API_KEY", None)
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "recagent", "recommend", "--user", "42", "dark sci-fi from the 80s"],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    result = {
        "seconds": seconds,
        "exit_code": proc.returncode,
        "stdout_tail": proc.stdout[-1500:],
        "stderr_tail": proc.stderr[-1500:],
        "machine": common.machine(),
    }
    common.write_result("agent_first_run", result)
    return result


def first_run_chat() -> dict:
    """`recagent chat` on an empty workspace, run from the repository root on a machine with
    no network (ML-100k then comes from ../shared/data): one request, then /quit. Records the
    wall time and what the SASRec training did against its first-run cap."""
    home = common.WORK / "first-run-chat-home"
    shutil.rmtree(home, ignore_errors=True)
    env = {**os.environ, "RECAGENT_HOME": str(home), "COLUMNS": "300"}
    for var in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "RECAGENT_DOWNLOAD_MIRROR"):
        env.pop(var, None)
    command = [sys.executable, "-m", "recagent", "-v", "chat", "--user", "42"]
    before = common.machine()  # what else was running as it started
    started = time.perf_counter()
    proc = subprocess.run(
        command,
        input="dark sci-fi from the 80s\n/quit\n",
        cwd=common.ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    err = " ".join(proc.stderr.split())
    trained = re.search(r"stopped by (.+?) after (\d+) epochs and ([\d.]+) s", err)
    result = {
        "command": "recagent -v chat --user 42  (stdin: one request, /quit)",
        "seconds": seconds,
        "exit_code": proc.returncode,
        "cap_s": load_settings().agent.first_run_train_s,
        "training": {
            "stopped_by": trained.group(1),
            "epochs": int(trained.group(2)),
            "seconds": float(trained.group(3)),
        }
        if trained
        else None,
        "local_copy_note": "from the local copy" in err,
        "answered": "┏" in proc.stdout,
        "stdout_tail": proc.stdout[-1500:],
        "stderr_tail": proc.stderr[-3000:],
        "machine": before,
        "load_avg_after": os.getloadavg(),
    }
    common.write_result("agent_first_run_chat", result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("what", choices=["turns", "first-run", "first-run-chat"])
    parser.add_argument("--home", type=Path, default=common.HOME)
    args = parser.parse_args()
    runs = {"turns": lambda: turns(args.home), "first-run": first_run}
    result = runs.get(args.what, first_run_chat)()
    shown = {k: v for k, v in result.items() if k not in ("machine", "stdout_tail", "stderr_tail")}
    print(shown)


if __name__ == "__main__":
    main()
