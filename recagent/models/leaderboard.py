"""The workspace's record of how each trained model did on a dataset, and its best model.

`<workspace>/models/<dataset>/leaderboard.json` keeps, per model and split, the metrics of its
last evaluation with the data fingerprint and the identity (SHA-256) of the checkpoint they
were measured on. Training records the best epoch's valid metrics; `recagent eval <model>`
records what it measures. An entry counts only while its data and checkpoint are the ones in
the workspace now, so a retrained model is never judged by its predecessor's numbers.

`best_model` is the default scorer everywhere (the agent, the tools, `recommend`, the eval
pipelines): the model with the best valid NDCG@10, fusion included (it wins only by beating
every single model on valid). The test split never decides anything.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ValidationError

from recagent.locks import build_lock
from recagent.manifest import file_sha256
from recagent.models.registry import MODELS
from recagent.workspace import Workspace, atomic_write_text

LEADERBOARD = "leaderboard.json"
FUSION = "fusion.json"
SELECT_BY = "NDCG@10"
Split = Literal["valid", "test"]


class Entry(BaseModel):
    metrics: dict[str, float]
    users: int
    fingerprint: str
    checkpoint: str
    at: str


class Board(BaseModel):
    models: dict[str, dict[str, Entry]] = {}


def _path(workspace: Workspace, dataset: str) -> Path:
    return workspace.models_dir(dataset) / LEADERBOARD


def identity(workspace: Workspace, dataset: str, model: str) -> str | None:
    """What an entry of `model` must have been measured on: its checkpoint's SHA-256 (for
    fusion, of its settings and its members' checkpoints); None if it is not trained.
    Popularity has no checkpoint: its identity is constant."""
    folder = workspace.models_dir(dataset)
    if model == "popularity":
        return "counts"
    if model == "fusion":
        path = folder / FUSION
        if not path.is_file():
            return None
        try:
            members = json.loads(path.read_text())["members"]
        except (ValueError, KeyError, TypeError):
            return None
        parts = [path.read_text()] + [identity(workspace, dataset, m) or "" for m in members]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()
    path = folder / f"{model}.pt"
    return file_sha256(path) if path.is_file() else None


def load(workspace: Workspace, dataset: str) -> Board:
    path = _path(workspace, dataset)
    if not path.is_file():
        return Board()
    try:
        return Board.model_validate_json(path.read_text())
    except (ValidationError, ValueError):
        return Board()  # damaged: start over (every entry can be measured again)


def record(
    workspace: Workspace,
    dataset: str,
    fingerprint: str,
    model: str,
    split: Split,
    metrics: dict[str, float],
    users: int,
) -> None:
    """Keep `model`'s metrics on `split` (of the data `fingerprint`, its checkpoint now)."""
    checkpoint = identity(workspace, dataset, model)
    if checkpoint is None:
        return
    path = _path(workspace, dataset)
    # read, change, write: one process at a time, so runs of two models both stay recorded
    with build_lock(path.with_name(f"{path.name}.lock"), f"leaderboard of {dataset!r}"):
        board = load(workspace, dataset)
        board.models.setdefault(model, {})[split] = Entry(
            metrics=metrics,
            users=users,
            fingerprint=fingerprint,
            checkpoint=checkpoint,
            at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        )
        atomic_write_text(path, board.model_dump_json(indent=2) + "\n")


def current(workspace: Workspace, dataset: str, fingerprint: str) -> dict[str, dict[str, Entry]]:
    """The entries still true: same data, same checkpoint as in the workspace now."""
    out: dict[str, dict[str, Entry]] = {}
    for model, splits in load(workspace, dataset).models.items():
        now = identity(workspace, dataset, model)
        for split, entry in splits.items():
            if entry.fingerprint == fingerprint and entry.checkpoint == now:
                out.setdefault(model, {})[split] = entry
    return out


def best_model(workspace: Workspace, dataset: str, fingerprint: str) -> str | None:
    """The model with the best valid NDCG@10 (ties: the first in the registry's order, fusion
    last), or None when no trained model has been measured on valid."""
    order = [*MODELS, "fusion"]
    scored = [
        (entry["valid"].metrics.get(SELECT_BY, -1.0), -order.index(m) if m in order else -99, m)
        for m, entry in current(workspace, dataset, fingerprint).items()
        if "valid" in entry and m != "popularity"
    ]
    return max(scored)[2] if scored else None


__all__ = [
    "FUSION",
    "SELECT_BY",
    "Board",
    "Entry",
    "best_model",
    "current",
    "identity",
    "load",
    "record",
]
