"""Shared by the SASRec benchmark scripts: where they work, how they prepare data, how they
record a run. Scripts import this as `common` (they run as `python benchmarks/<script>.py`)."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / ".work"  # gitignored: venvs, workspaces, results
RESULTS = WORK / "results"
HOME = WORK / "home"  # the recagent workspace the benchmarks use
SHARED = Path(os.environ.get("RECAGENT_TEST_DATA", ROOT.parent / "shared" / "data"))


def machine() -> dict[str, Any]:
    """What the numbers were measured on, and what else was running at the start."""
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    busy = subprocess.run(
        ["ps", "-eo", "pcpu,args", "--sort=-pcpu", "--no-headers"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.splitlines()[:5]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_avg": os.getloadavg(),
        "top_processes": [b.strip()[:160] for b in busy],
        "at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    print(f"wrote {path}")
    return path


def read_results(prefix: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(RESULTS.glob(f"{prefix}*.json"))]


def median(values: list[float]) -> float:
    return statistics.median(values)


def overrides(pairs: list[str], *models: type) -> list[dict]:
    """`key=value` settings, each sent to the first of `models` that has the field."""
    out: list[dict] = [{} for _ in models]
    for pair in pairs:
        key, _, value = pair.partition("=")
        for i, model in enumerate(models):
            if key in model.model_fields:
                out[i][key] = value
                break
        else:
            raise SystemExit(f"--set {pair}: no such model or training setting")
    return out


def tag(pairs: list[str]) -> str:
    """A file-name suffix for `key=value` settings: `-dropout0.5-dim128`."""
    return "".join(f"-{p.replace('=', '')}" for p in pairs)


def add_set_option(parser: Any) -> None:
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change one model or training setting (repeatable), e.g. --set dropout=0.5",
    )


def training_record(result: Any, config: Any, options: Any) -> dict[str, Any]:
    """What every model benchmark run records about its training (a `TrainResult` and the
    model and training settings it came from)."""
    return {
        "config": config.model_dump(),
        "options": options.model_dump(),
        "stopped": result.stopped,
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "seconds_to_best": result.seconds_to_best,
        "fit_seconds": result.seconds,
        "seconds_per_epoch": result.seconds / result.epochs_run,
        "peak_rss_mib": peak_rss_mib(),
    }


def prepare_dataset(name: str) -> Any:
    """Prepare (once) one of the benchmark datasets in the benchmark workspace."""
    from recagent.data.dataset import Dataset
    from recagent.data.prepare import PrepareConfig, prepare
    from recagent.errors import ArtifactError
    from recagent.workspace import Workspace

    configs = {
        # ML-100k as distributed: every rating, same-second ties in file order
        "ml-100k": PrepareConfig(dataset="ml-100k", source=SHARED / "ml-100k"),
        # the whole catalog as people chat with it (no k-core): `recagent data prepare`
        "ml-latest-small": PrepareConfig(
            dataset="ml-latest-small", source=SHARED / "ml-latest-small"
        ),
        # the LlamaRec protocol: all ratings, 5-core users and items, ties by item id
        "ml-latest-small-5core": PrepareConfig(
            dataset="ml-latest-small",
            name="ml-latest-small-5core",
            source=SHARED / "ml-latest-small",
            min_user_interactions=5,
            min_item_interactions=5,
            tie_break="item",
        ),
    }
    ws = Workspace(HOME)
    try:
        return Dataset.load(ws, name)
    except ArtifactError:
        return prepare(configs[name], ws)


__all__ = [
    "HOME",
    "RESULTS",
    "ROOT",
    "SHARED",
    "WORK",
    "machine",
    "median",
    "peak_rss_mib",
    "prepare_dataset",
    "read_results",
    "write_result",
]
