"""SASRec checkpoints: self-describing, written atomically, loaded with `weights_only=True`.

`<workspace>/models/<dataset>/sasrec.pt` is one `torch.save`d dict of plain values and
tensors: the model config, the item id map (item_idx order), the dataset name and data
fingerprint it was trained on, training popularity, how training went, and the state dict.
`sasrec.manifest.json` beside it records the same provenance for people and tools that do
not load torch. A checkpoint whose dataset or data version differs from the prepared dataset
is refused (`ArtifactError`), never silently reused.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError

from recagent.data.dataset import Dataset
from recagent.errors import ArtifactError
from recagent.manifest import Manifest
from recagent.models.sasrec import SASRec, SASRecConfig
from recagent.models.sasrec_scorer import SASRecScorer, resolve_device
from recagent.workspace import Workspace, atomic_path, atomic_write_text

FORMAT = "recagent.sasrec/1"
CHECKPOINT_NAME = "sasrec.pt"
MANIFEST_NAME = "sasrec.manifest.json"


def checkpoint_path(workspace: Workspace, dataset_name: str) -> Path:
    return workspace.models_dir(dataset_name) / CHECKPOINT_NAME


def save_checkpoint(
    path: Path,
    config: SASRecConfig,
    state: dict[str, torch.Tensor],
    dataset: Dataset,
    item_counts: np.ndarray,
    training: dict[str, Any],
) -> None:
    """Write the checkpoint of a model (`config` + `state`, its state dict) trained on
    `dataset`, then its manifest, each atomically. `training` holds plain values (best epoch,
    valid metrics, training options)."""
    payload = {
        "format": FORMAT,
        "dataset": dataset.name,
        "fingerprint": dataset.fingerprint,
        "config": config.model_dump(),
        "item_ids": dataset.catalog.item_ids,
        "item_counts": torch.as_tensor(np.asarray(item_counts, dtype=np.int64)),
        "training": training,
        "state_dict": {k: v.detach().cpu() for k, v in state.items()},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    manifest = Manifest(
        kind="model",
        name=f"{dataset.name}/sasrec",
        fingerprint=f"{dataset.fingerprint[:16]}-epoch{training.get('best_epoch')}",
        config={"model": config.model_dump(), "training": training.get("options", {})},
        inputs={f"dataset:{dataset.name}": dataset.fingerprint},
        stats={k: v for k, v in training.items() if k != "options"},
    )
    atomic_write_text(path.with_name(MANIFEST_NAME), manifest.model_dump_json(indent=2) + "\n")


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The raw payload (tensors on the CPU); `ArtifactError` if missing or unreadable."""
    if not path.is_file():
        raise ArtifactError(f"no SASRec checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        raise ArtifactError(f"{path} is not a readable SASRec checkpoint ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ArtifactError(f"{path} is not a {FORMAT} checkpoint; retrain it")
    return payload


def check_compatible(payload: dict[str, Any], dataset: Dataset, path: Path) -> None:
    """Refuse a checkpoint trained on another dataset or another version of this one."""
    retrain = f"retrain with `recagent train sasrec --dataset {dataset.name}`"
    if payload["dataset"] != dataset.name:
        raise ArtifactError(
            f"{path} was trained on dataset {payload['dataset']!r}, not {dataset.name!r}; {retrain}"
        )
    if payload["fingerprint"] != dataset.fingerprint:
        raise ArtifactError(
            f"{path} was trained on another version of dataset {dataset.name!r} (data "
            f"{payload['fingerprint'][:12]}, prepared now {dataset.fingerprint[:12]}); {retrain}"
        )
    if list(payload["item_ids"]) != dataset.catalog.item_ids:
        raise ArtifactError(f"{path} has a different item catalog than {dataset.name!r}; {retrain}")


def model_from_payload(payload: dict[str, Any], device: torch.device) -> SASRec:
    try:
        config = SASRecConfig.model_validate(payload["config"])
        model = SASRec(len(payload["item_ids"]), config)
        model.load_state_dict(payload["state_dict"])
    except (ValidationError, RuntimeError, KeyError) as exc:
        raise ArtifactError(f"SASRec checkpoint does not match its own config ({exc})") from exc
    return model.to(device).eval()


def load_sasrec_scorer(workspace: Workspace, dataset: Dataset, device: str = "cpu") -> SASRecScorer:
    """The trained SASRec for `dataset`, ready to score (`ArtifactError` if there is none, or
    it was trained on other data)."""
    path = checkpoint_path(workspace, dataset.name)
    if not path.is_file():
        raise ArtifactError(
            f"no SASRec model for dataset {dataset.name!r} in {workspace.root}; train one with "
            f"`recagent train sasrec --dataset {dataset.name}`"
        )
    payload = read_checkpoint(path)
    check_compatible(payload, dataset, path)
    model = model_from_payload(payload, resolve_device(device))
    return SASRecScorer(model, payload["item_ids"], payload["item_counts"].numpy())


__all__ = [
    "CHECKPOINT_NAME",
    "FORMAT",
    "MANIFEST_NAME",
    "check_compatible",
    "checkpoint_path",
    "load_sasrec_scorer",
    "read_checkpoint",
    "save_checkpoint",
]
