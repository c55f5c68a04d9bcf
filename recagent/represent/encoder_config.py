"""The settings of the item encoder (recagent.represent.encoder), kept free of torch so the
command line can show and validate them without loading it."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from recagent.data.dataset import Dataset
from recagent.data.pairs_config import PairsConfig
from recagent.workspace import Workspace

CHECKPOINT = "item-encoder.pt"


def checkpoint_path(workspace: Workspace, dataset: Dataset) -> Path:
    """Where the item encoder of `dataset` is saved."""
    return workspace.models_dir(dataset.name) / CHECKPOINT


# chosen on ML-100k's valid pairs (benchmarks/RESULTS.md, "Item representations"): 20
# partners and damping by the partner's total ** 0.3 (as the agent's co-watched lists) beat
# 10 undamped partners, 0.194-0.196 vs 0.167 valid Recall@50
PAIR_DEFAULTS = PairsConfig(window=10, min_rating=4.0, partners=20, damping=0.3, drop_quantile=0.99)


class EncoderConfig(BaseModel):
    """How the item encoder is trained (recorded in its checkpoint)."""

    model_config = ConfigDict(extra="forbid")

    hidden: int = Field(512, ge=8, le=8192, description="Hidden width of the projection.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the hidden layer.")
    alphas: list[float] = Field(
        default_factory=lambda: [0.0, 0.1, 0.5],
        min_length=1,
        description="Weights of the genre loss to try; the best on valid is kept.",
    )
    epochs: int = Field(80, ge=1, le=1000, description="Most passes over the pairs per alpha.")
    batch_size: int = Field(512, ge=2, le=65536, description="Pairs per in-batch InfoNCE.")
    lr: float = Field(3e-3, gt=0, le=1)
    weight_decay: float = Field(1e-4, ge=0, le=1)
    temperature: float = Field(0.07, gt=0, le=1, description="Initial (learnable) temperature.")
    pairs_per_epoch: int = Field(
        50_000,
        ge=2,
        description="Most pairs one epoch trains on (a fresh random sample each epoch), so "
        "a large catalog is evaluated, and stopped, as often as a small one.",
    )
    eval_every: int = Field(2, ge=1, description="Epochs between valid evaluations.")
    patience: int = Field(5, ge=1, description="Evaluations without improvement before stopping.")
    valid_window: int = Field(10, ge=1, description="History items paired with a held-out one.")
    select_k: int = Field(50, ge=1, description="Valid Recall@k that picks the epoch and alpha.")
    seed: int = 0
    pairs: PairsConfig = Field(default_factory=lambda: PAIR_DEFAULTS.model_copy())


__all__ = ["CHECKPOINT", "PAIR_DEFAULTS", "EncoderConfig", "checkpoint_path"]
