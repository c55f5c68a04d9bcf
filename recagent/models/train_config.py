"""How a model is trained: the options every model shares (recorded in its checkpoint; they
do not change the architecture). Torch-free, so the command line validates them without
loading it. Each model subclasses `TrainConfig` with its own defaults."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from recagent.models.align_config import AlignConfig

Metric = Literal["NDCG@10", "HR@10", "NDCG@20", "HR@20", "NDCG@50", "HR@50", "MRR"]


class TrainConfig(BaseModel):
    """Training options shared by every model. Defaults are SASRec's (see `SASRecConfig`)."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(200, ge=1, description="Most epochs to run.")
    batch_size: int = Field(32, ge=1, le=65_536)
    lr: float = Field(3e-3, gt=0, le=1.0)
    weight_decay: float = Field(
        0.0, ge=0, description="AdamW decay on weight matrices (never norms, biases, embeddings)."
    )
    patience: int = Field(
        12, ge=1, description="Stop after this many epochs without a better valid metric."
    )
    metric: Metric = Field(
        "NDCG@10", description="The valid metric that picks the best epoch (and checkpoint)."
    )
    seed: int = 0
    device: str = "cpu"
    windows: Literal["last", "all"] = Field(
        "all",
        description="Train on each user's last max_len items only, or on all of a long "
        "history cut into windows.",
    )
    window_step: int | None = Field(
        None,
        ge=1,
        description="Items between the ends of a long history's windows (None: max_len, "
        "windows that do not overlap; smaller: overlapping, sliding windows).",
    )
    lr_patience: int | None = Field(
        4,
        ge=1,
        description="Halve the learning rate after this many epochs without a better valid "
        "metric (None: constant rate).",
    )
    valid_users: int | None = Field(
        5000,
        ge=100,
        description="Validate each epoch on a fixed seeded sample of this many users when "
        "there are more (None: always all). The final checkpoint's valid numbers are from the "
        "same sample; `recagent eval <model> --split valid` scores all users.",
    )
    time_limit_s: float | None = Field(None, gt=0, description="Stop after this much time.")
    align_text: AlignConfig = Field(
        default_factory=AlignConfig,
        description="Align the item table with the item text first (CTRL-lite; models with "
        "an `item_emb` table).",
    )


__all__ = ["Metric", "TrainConfig"]
