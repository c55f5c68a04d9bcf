"""An evaluation run on disk: `runs/<id>/` with `config.json` (everything that determines the
result), `per_user.jsonl` (appended and flushed record by record, so a crash loses nothing),
`summary.json`, `report.md` and plots."""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from recagent import __version__
from recagent.errors import ArtifactError
from recagent.workspace import atomic_write_json, check_name


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: str
    protocol: Literal[
        "full-rank", "candidates", "conversation", "dialogues", "requests", "tags", "ratings"
    ]
    pipelines: list[str]
    dataset: str
    split: Literal["valid", "test"] = "test"
    users: int | None = None
    seed: int = 0
    k: int = 50
    workers: int = 1
    candidates_from: Literal["random", "hybrid"] = "random"
    simulator: Literal["rules", "llm"] = "rules"
    max_turns: int = 5
    cases: str | None = Field(
        None, description="The dialogues (or requests) protocol's case file; tags: tags.csv."
    )
    llm: str | None = None
    use_cache: bool = True
    llm_rpm: float = 0.0
    fingerprints: dict[str, str] = Field(
        default_factory=dict, description="data, checkpoints, index"
    )
    prompt_hashes: dict[str, str] = Field(default_factory=dict)
    recagent_version: str = __version__
    created_at: str = Field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S"))


class Record(BaseModel):
    """One (pipeline, user) result."""

    pipeline: str
    user_idx: int
    user_id: str
    target: str
    rank: float | None = Field(None, description="1-based rank of the target; None = miss")
    gold: list[str] = Field(default_factory=list, description="dialogues: what came next")
    gold_new: list[str] = Field(
        default_factory=list, description="dialogues: the gold items not named before"
    )
    items: list[str] = Field(default_factory=list)
    latency_ms: float = 0.0
    llm_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    repairs: int = 0
    tool_calls: int = 0
    tool_failures: int = 0
    explanations: int = 0
    unfaithful_explanations: int = 0
    errors: dict[str, int] = Field(default_factory=dict)
    target_in_candidates: bool | None = None
    turns: int | None = None
    hit_turn: int | None = None
    model: str | None = None
    failure: str | None = None
    # the requests protocol
    kind: str | None = None
    checks: dict[str, bool] = Field(default_factory=dict, description="check -> passed")
    plan_ok: bool | None = None
    steps: int = 0
    model_steps: int = Field(0, description="Steps the model wrote (plan and loop modes).")
    titles_proposed: int = Field(0, description="Titles the model named (suggest_titles).")
    titles_found: int = Field(0, description="... that the catalog has.")
    model_gold: list[str] = Field(
        default_factory=list, description="dialogues: gold items only the model's titles found."
    )
    # the ratings protocol
    rating: float | None = Field(None, description="ratings: the stars the user gave")
    prediction: float | None = Field(None, description="ratings: the stars predicted")

    @property
    def key(self) -> tuple[str, int]:
        return (self.pipeline, self.user_idx)


VARIANTS = ("attrs", "no-attrs")  # conversation: the simulator knows / does not know attributes


def run_order(pipelines: list[str]) -> dict[str, int]:
    """Each record label's place in a run (a conversation run's labels carry the variant)."""
    labels = [label for p in pipelines for label in (p, *(f"{p}[{v}]" for v in VARIANTS))]
    return {label: i for i, label in enumerate(labels)}


def new_run_id() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


class RunDir:
    def __init__(self, root: Path, run_id: str) -> None:
        self.path = root / check_name(run_id, "run id")
        self._lock = threading.Lock()

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def records_path(self) -> Path:
        return self.path / "per_user.jsonl"

    @property
    def summary_path(self) -> Path:
        return self.path / "summary.json"

    def create(self, config: RunConfig) -> None:
        self.path.mkdir(parents=True, exist_ok=False)
        atomic_write_json(self.config_path, config.model_dump(mode="json"))

    def config(self) -> RunConfig:
        if not self.config_path.is_file():
            raise ArtifactError(f"no evaluation run {self.path.name!r} (see `recagent eval list`)")
        return RunConfig.model_validate_json(self.config_path.read_text(encoding="utf-8"))

    def repair(self) -> None:
        """Drop a last line cut off by a crash, so appends start on a fresh line."""
        path = self.records_path
        if not path.is_file():
            return
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            with path.open("r+b") as fh:
                fh.truncate(data.rfind(b"\n") + 1)

    def append(self, record: Record) -> None:
        line = record.model_dump_json() + "\n"
        with self._lock, self.records_path.open("a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def records(self) -> list[Record]:
        """Every complete record (a line cut off by a crash is ignored), in the run's order:
        pipelines as configured, then cases, however the workers of a parallel run happened to
        finish them."""
        if not self.records_path.is_file():
            return []
        out, seen = [], set()
        for line in self.records_path.read_text(encoding="utf-8").splitlines():
            try:
                record = Record.model_validate_json(line)
            except ValueError:
                continue
            if record.key not in seen:
                seen.add(record.key)
                out.append(record)
        if self.config_path.is_file():
            order = run_order(self.config().pipelines)
            out.sort(key=lambda r: (order.get(r.pipeline, len(order)), r.user_idx))
        return out

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_json(self.summary_path, summary)

    def summary(self) -> dict[str, Any] | None:
        if not self.summary_path.is_file():
            return None
        return json.loads(self.summary_path.read_text(encoding="utf-8"))


def list_runs(root: Path) -> list[RunDir]:
    if not root.is_dir():
        return []
    folders = [p for p in root.iterdir() if (p / "config.json").is_file()]
    # Oldest first. Two runs started in the same second share the id's time part and differ
    # only by a random suffix, so their order comes from when each wrote its config.
    folders.sort(key=lambda p: (p.name[:15], (p / "config.json").stat().st_mtime_ns, p.name))
    return [RunDir(root, p.name) for p in folders]


__all__ = ["VARIANTS", "Record", "RunConfig", "RunDir", "list_runs", "new_run_id", "run_order"]
