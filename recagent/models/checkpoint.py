"""Model checkpoints: self-describing, written atomically, loaded with `weights_only=True`.

`<workspace>/models/<dataset>/<model>.pt` is one `torch.save`d dict of plain values and
tensors: the format (`recagent.<model>/1`), the model name and config, the item id map
(item_idx order), the dataset name and data fingerprint it was trained on, training
popularity, how training went, and the state dict. `<model>.manifest.json` beside it records
the same provenance for people and tools that do not load torch. A checkpoint whose dataset
or data version differs from the prepared dataset is refused (`ArtifactError`), never
silently reused. Every model (SASRec, HSTU, BERT4Rec, BST) is saved and loaded this way.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from pydantic import BaseModel, ValidationError

from recagent.data.dataset import Dataset
from recagent.errors import ArtifactError
from recagent.manifest import Manifest
from recagent.models.base import Scorer
from recagent.models.registry import ModelSpec, spec
from recagent.workspace import Workspace, atomic_path, atomic_write_text

if TYPE_CHECKING:
    from recagent.index.embedders import Embedder
    from recagent.models.sasrec_scorer import SASRecScorer

TEXT_PROJECTION = "text_projection"  # a text-aligned model's projection (models/align.py)
FORMAT = "recagent.sasrec/1"  # SASRec's; other models use recagent.<model>/1
CHECKPOINT_NAME = "sasrec.pt"
MANIFEST_NAME = "sasrec.manifest.json"


def format_of(model: str) -> str:
    return f"recagent.{model}/1"


def checkpoint_path(workspace: Workspace, dataset_name: str, model: str = "sasrec") -> Path:
    return workspace.models_dir(dataset_name) / f"{model}.pt"


def manifest_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}.manifest.json")


def save_checkpoint(
    path: Path,
    config: BaseModel,
    state: dict[str, torch.Tensor],
    dataset: Dataset,
    item_counts: np.ndarray,
    training: dict[str, Any],
    model: str = "sasrec",
    text_projection: dict[str, Any] | None = None,
) -> None:
    """Write the checkpoint of a `model` (`config` + `state`, its state dict) trained on
    `dataset`, then its manifest, each atomically. `training` holds plain values (best epoch,
    valid metrics, training options); `text_projection`, a text-aligned model's projection
    (`recagent.models.align.TextProjection.to_payload`)."""
    payload = {
        "format": format_of(model),
        "model": model,
        "dataset": dataset.name,
        "fingerprint": dataset.fingerprint,
        "interactions": {
            "fingerprint": dataset.interactions_fingerprint,
            "count": len(dataset.interactions.item_idx),
        },
        "config": config.model_dump(),
        "item_ids": dataset.catalog.item_ids,
        "item_counts": torch.as_tensor(np.asarray(item_counts, dtype=np.int64)),
        "training": training,
        "state_dict": {k: v.detach().cpu() for k, v in state.items()},
    }
    if text_projection is not None:
        payload[TEXT_PROJECTION] = text_projection
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    manifest = Manifest(
        kind="model",
        name=f"{dataset.name}/{model}",
        fingerprint=f"{dataset.fingerprint[:16]}-epoch{training.get('best_epoch')}",
        config={"model": config.model_dump(), "training": training.get("options", {})},
        inputs={f"dataset:{dataset.name}": dataset.fingerprint},
        stats={k: v for k, v in training.items() if k != "options"},
    )
    atomic_write_text(manifest_path(path), manifest.model_dump_json(indent=2) + "\n")


def read_checkpoint(path: Path, model: str = "sasrec") -> dict[str, Any]:
    """The raw payload (tensors on the CPU); `ArtifactError` if missing or unreadable."""
    title = model if model != "sasrec" else "SASRec"
    if not path.is_file():
        raise ArtifactError(f"no {title} checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        raise ArtifactError(f"{path} is not a readable {title} checkpoint ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != format_of(model):
        raise ArtifactError(f"{path} is not a {format_of(model)} checkpoint; retrain it")
    return payload


def check_compatible(
    payload: dict[str, Any], dataset: Dataset, path: Path, model: str = "sasrec"
) -> None:
    """Refuse a checkpoint trained on another dataset or another version of this one."""
    retrain = f"retrain with `recagent train {model} --dataset {dataset.name}`"
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


def model_from_payload(
    payload: dict[str, Any], device: torch.device, model_spec: ModelSpec | None = None
) -> Any:
    """The network a payload describes, on `device`, in eval mode."""
    model_spec = model_spec or spec(payload.get("model", "sasrec"))
    try:
        config = model_spec.config_type.model_validate(payload["config"])
        model = model_spec.build(len(payload["item_ids"]), config)
        model.load_state_dict(payload["state_dict"])
    except (ValidationError, RuntimeError, KeyError) as exc:
        raise ArtifactError(
            f"{model_spec.title} checkpoint does not match its own config ({exc})"
        ) from exc
    return model.to(device).eval()


def _grown(
    payload: dict[str, Any], dataset: Dataset, workspace: Workspace, embedder: Embedder | None
) -> tuple[dict[str, Any], list[str]] | None:
    """A text-aligned checkpoint of `dataset` whose catalog has since grown (every trained
    item still in it): re-indexed to the catalog, the new items embedded from their text.
    None for any other checkpoint.

    The rule for a model older than its data: only the catalog may have grown. Where the
    interactions changed too (new ratings, or ratings of the added items), the model is
    stale like any other model's: `ArtifactError`, saying how much older it is (its scores
    would ignore what people did since, and its valid numbers describe other data)."""
    if TEXT_PROJECTION not in payload or payload["dataset"] != dataset.name:
        return None
    trained = list(payload["item_ids"])
    if trained == dataset.catalog.item_ids or not set(trained) <= set(dataset.catalog.item_ids):
        return None
    learned = payload.get("interactions") or {}
    if learned.get("fingerprint") != dataset.interactions_fingerprint:
        now = len(dataset.interactions.item_idx)
        then = learned.get("count")
        since = (
            f"it learned from {then:,} interactions, the data now has {now:,}"
            if isinstance(then, int)
            else "it does not record which interactions it learned from"
        )
        grew = len(dataset.catalog.item_ids) - len(trained)
        model = payload.get("model", "sasrec")
        raise ArtifactError(
            f"the {model} model of {dataset.name!r} is older than the "
            f"data: the catalog grew by {grew:,} item{'s' if grew != 1 else ''} "
            f"and the interactions changed too ({since}); a text-aligned model scores added "
            "items from their text only while its interactions are current; retrain with "
            f"`recagent train {model} --dataset {dataset.name}`"
        )
    from recagent.config import IndexConfig
    from recagent.models.align import grow_catalog
    from recagent.represent.text_vectors import text_vectors

    embedder_name, template = payload[TEXT_PROJECTION]["settings"]
    index = IndexConfig(embedder=embedder_name, template=template)
    text = text_vectors(workspace, dataset, index, embedder)
    return grow_catalog(payload, dataset.catalog.item_ids, text)


def load_scorer(
    workspace: Workspace,
    dataset: Dataset,
    model: str = "sasrec",
    device: str = "cpu",
    embedder: Embedder | None = None,
) -> Scorer:
    """The trained `model` for `dataset`, ready to score (`ArtifactError` if there is none,
    or it was trained on other data). A model that needs another (BST its retriever) loads
    that one too.

    A text-aligned model (`--align-text`) scores items without training interactions from
    their text, and still loads after items were added to the catalog: those are embedded
    from their text (by `embedder`, default the one it was aligned with) and listed, with the
    reason, in the scorer's `text_only`."""
    from recagent.models.sasrec_scorer import resolve_device

    model_spec = spec(model)
    path = checkpoint_path(workspace, dataset.name, model)
    if not path.is_file():
        raise ArtifactError(
            f"no {model_spec.title} model for dataset {dataset.name!r} in {workspace.root}; "
            f"train one with `recagent train {model} --dataset {dataset.name}`"
        )
    payload = read_checkpoint(path, model)
    grown = _grown(payload, dataset, workspace, embedder)
    added: list[str] = []
    if grown is None:
        check_compatible(payload, dataset, path, model)
    else:
        payload, added = grown
    network = model_from_payload(payload, resolve_device(device), model_spec)
    config = model_spec.config_type.model_validate(payload["config"])

    def resolve(name: str) -> Scorer:
        return load_scorer(workspace, dataset, name, device)

    counts = payload["item_counts"].numpy()
    scorer = model_spec.scorer(network, payload["item_ids"], counts, config, resolve)
    if TEXT_PROJECTION in payload:
        from recagent.models.align import ADDED, NO_INTERACTIONS

        for item_id in np.asarray(payload["item_ids"])[counts[1:] == 0].tolist():
            scorer.text_only[item_id] = NO_INTERACTIONS
        scorer.text_only.update(dict.fromkeys(added, ADDED))
    return scorer


def load_sasrec_scorer(workspace: Workspace, dataset: Dataset, device: str = "cpu") -> SASRecScorer:
    """The trained SASRec for `dataset`, ready to score."""
    from recagent.models.sasrec_scorer import SASRecScorer

    scorer = load_scorer(workspace, dataset, "sasrec", device)
    assert isinstance(scorer, SASRecScorer)
    return scorer


__all__ = [
    "CHECKPOINT_NAME",
    "FORMAT",
    "MANIFEST_NAME",
    "TEXT_PROJECTION",
    "check_compatible",
    "checkpoint_path",
    "format_of",
    "load_sasrec_scorer",
    "load_scorer",
    "manifest_path",
    "model_from_payload",
    "read_checkpoint",
    "save_checkpoint",
]
